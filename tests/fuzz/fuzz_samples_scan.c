/*
 * Fuzz target: catalog/samples_scan, the streaming reader of the samples
 * array of POST /api/v1/benchmarks, against jansson and check_sample().
 *
 * Each input is used three ways:
 *  - as a whole body: the oracle of samples_ref.h compares split + jansson
 *    on the rest + count + iteration with json_loadb on the body and
 *    check_sample()'s rules (verdicts, fields, messages, values);
 *  - wrapped as {"samples":<input>}, the same, so that arbitrary bytes
 *    reach the iterator as a samples value;
 *  - as a span of its own: count and iteration must agree (count passes
 *    exactly when no malformed JSON stops the iteration before an invalid
 *    sample, and counts the samples an all-valid iteration yields).
 * Any disagreement abort()s; sanitizers catch reads out of the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "samples_ref.h"

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_samples_scan: property failed at line %d: %s: ", \
                    __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Count and iteration over span agree. */
static void span_alone(const char *span, size_t n)
{
    static struct cat_sample_iter it;
    static struct cat_sample s;
    struct err_detail d;
    size_t count = 0, seen = 0;
    err_clear(&d);
    int rc = cat_samples_count(span, n, &count, &d);
    CHECK(rc == 0 || rc == ERR_PARSE || rc == ERR_INVAL, "%s", err_name(rc));
    CHECK(rc == 0 || rc == ERR_INVAL || strstr(d.msg, " at byte "), "%s", d.msg);
    int rb = cat_samples_begin(&it, span, n, &d);
    int ri = rb;
    while (!rb && (ri = cat_samples_next(&it, &s, &d)) == 1) {
        seen++;
        for (int c = 0; c < 6; c++)
            CHECK(s.v[c] >= 0, "negative value");
        CHECK(!(s.nulls & ~0x4cu), "nulls %#x", s.nulls);
        CHECK((s.error == NULL) == !!(s.nulls & 0x40), "error vs nulls");
        CHECK(!s.error || (s.error_len <= 1024 && codec_utf8_valid(s.error, s.error_len)),
              "error string");
    }
    /* Sticky end and errors. */
    int again = rb ? rb : cat_samples_next(&it, &s, &d);
    CHECK(again == ri, "again %d, first %d", again, ri);
    if (rc == 0) {
        CHECK(ri != ERR_PARSE, "count passes, iteration: %s", d.msg);
        CHECK(ri != 0 || seen == count, "seen %zu, count %zu", seen, count);
    }
    if (ri == 0)
        CHECK(rc == 0 && seen == count, "iteration passes, count %s", err_name(rc));
    if (rc == ERR_PARSE)
        CHECK(ri == ERR_PARSE || ri == ERR_INVAL, "count ERR_PARSE, iteration %d", ri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    const char *body = (const char *)data;
    CHECK(!sref_diff(body, size, why, sizeof(why)), "%s", why);

    static const char pre[] = "{\"samples\":", post[] = "}";
    size_t wn = sizeof(pre) - 1 + size + sizeof(post) - 1;
    char *w = malloc(wn); /* exactly: sanitizers see reads past the end */
    if (!w)
        return 0;
    memcpy(w, pre, sizeof(pre) - 1);
    if (size)
        memcpy(w + sizeof(pre) - 1, data, size);
    memcpy(w + sizeof(pre) - 1 + size, post, sizeof(post) - 1);
    CHECK(!sref_diff(w, wn, why, sizeof(why)), "wrapped: %s", why);
    free(w);

    span_alone(size ? body : NULL, size);
    return 0;
}
