/*
 * Differential oracle of catalog/samples_scan (header-only, shared by
 * fuzz_samples_scan.c and tests/unit/test_samples_scan.c): a body is parsed
 * once the old way (json_loadb with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
 * then the rules of check_sample() in src/catalog/samples.c, copied below
 * onto the jansson tree) and once the new way (cat_json_split, jansson on
 * the rest, cat_samples_count, cat_samples_begin/next), and the two must
 * agree:
 *
 *  - jansson accepts an object: the split succeeds, the rest parses to the
 *    same object without "samples", the span parses to the same samples
 *    value; count and every sample's verdict (code, field, message, values)
 *    are those of the old code;
 *  - jansson accepts a non-object: the split says it must be an object;
 *  - jansson rejects the body: the new way rejects it too, with ERR_PARSE
 *    (split, rest or count) unless jansson's reason is a number out of
 *    range, where a sample's ERR_INVAL is enough (samples_scan.h).
 * Bodies with a raw NUL byte that jansson accepts are not compared: see
 * samples_scan.h.
 */
#ifndef MC_TEST_SAMPLES_REF_H
#define MC_TEST_SAMPLES_REF_H

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "catalog/record.h"
#include "catalog/samples_scan.h"
#include "core/buf.h"
#include "core/err.h"

static const char *const sref_cols[7] = {
    "scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns",
    "input_tokens", "output_tokens", "error",
};

/* check_sample() of samples.c, with the values it binds into s. */
static int sref_sample_error(struct err_detail *d, size_t i, int c, const char *what)
{
    char field[ERR_FIELD_LEN];
    snprintf(field, sizeof(field), "samples[%zu].%s", i, sref_cols[c]);
    return err_set(d, ERR_INVAL, field, "%s %s", field, what);
}

static int sref_check_sample(json_t *s, size_t i, struct cat_sample *out,
                             struct err_detail *d)
{
    if (!json_is_object(s))
        return err_set(d, ERR_INVAL, "samples", "samples[%zu] must be an object", i);
    size_t present = 0;
    out->nulls = 0;
    for (int c = 0; c < 7; c++) {
        json_t *v = json_object_get(s, sref_cols[c]);
        present += v != NULL;
        int nullable = c == 2 || c == 3 || c == 6;
        if (!v || json_is_null(v)) {
            if (!nullable)
                return sref_sample_error(d, i, c, "is required");
            out->nulls |= 1u << c;
            if (c < 6)
                out->v[c] = 0;
        } else if (c == 6) {
            if (!json_is_string(v) || json_string_length(v) > 1024 ||
                chk_printable(json_string_value(v), json_string_length(v)))
                return sref_sample_error(d, i, c, "must be a string of at most 1024 characters");
            out->error = json_string_value(v);
            out->error_len = json_string_length(v);
        } else {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return sref_sample_error(d, i, c, "must be an integer >= 0");
            out->v[c] = json_integer_value(v);
        }
    }
    if (json_object_size(s) > present) {
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v) {
            int known = 0;
            for (int c = 0; c < 7; c++)
                known |= strcmp(k, sref_cols[c]) == 0;
            if (!known) {
                char field[ERR_FIELD_LEN];
                snprintf(field, sizeof(field), "samples[%zu].%.24s", i, k);
                return err_set(d, ERR_INVAL, field, "unknown field '%.64s'", k);
            }
        }
    }
    if (out->nulls & (1u << 6)) {
        out->error = NULL;
        out->error_len = 0;
    }
    return 0;
}

/* Records the first disagreement in why; returns 1. */
static int sref_fail(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sref_fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return 1;
}

/* Runs the iterator over span against the jansson array arr; 0 or 1. */
static int sref_iterate(const char *span, size_t len, json_t *arr, char *why, size_t cap)
{
    static struct cat_sample_iter it;
    static struct cat_sample got, want;
    struct err_detail d, dw;
    err_clear(&d);
    int rc = cat_samples_begin(&it, span, len, &d);
    if (rc)
        return sref_fail(why, cap, "begin on an array: %s %s", err_name(rc), d.msg);
    for (size_t i = 0;; i++) {
        err_clear(&d);
        err_clear(&dw);
        rc = cat_samples_next(&it, &got, &d);
        if (i == json_array_size(arr)) {
            if (rc != 0)
                return sref_fail(why, cap, "next after the end: %d %s", rc, d.msg);
            return 0;
        }
        int rw = sref_check_sample(json_array_get(arr, i), i, &want, &dw);
        if (rw) {
            if (rc != rw || strcmp(d.field, dw.field) || strcmp(d.msg, dw.msg))
                return sref_fail(why, cap, "samples[%zu]: got %s '%s' '%s', want %s '%s' '%s'",
                                 i, err_name(rc), d.field, d.msg, err_name(rw), dw.field,
                                 dw.msg);
            return 0;
        }
        if (rc != 1)
            return sref_fail(why, cap, "samples[%zu]: got %s '%s', want it valid", i,
                             err_name(rc), d.msg);
        if (got.nulls != want.nulls)
            return sref_fail(why, cap, "samples[%zu]: nulls %#x, want %#x", i, got.nulls,
                             want.nulls);
        for (int c = 0; c < 6; c++)
            if (got.v[c] != want.v[c])
                return sref_fail(why, cap, "samples[%zu].%s: %lld, want %lld", i, sref_cols[c],
                                 (long long)got.v[c], (long long)want.v[c]);
        if ((got.error == NULL) != (want.error == NULL) || got.error_len != want.error_len ||
            (got.error && memcmp(got.error, want.error, got.error_len)))
            return sref_fail(why, cap, "samples[%zu].error differs", i);
    }
}

/* 1 when every sample of the span passes (the new way accepts it all). */
static int sref_all_valid(const char *span, size_t len)
{
    static struct cat_sample_iter it;
    static struct cat_sample s;
    struct err_detail d;
    int rc = cat_samples_begin(&it, span, len, &d);
    while (!rc && (rc = cat_samples_next(&it, &s, &d)) == 1)
        rc = 0;
    return rc == 0;
}

/*
 * Compares the old and the new way on body. Returns 0 when they agree,
 * else 1 with the disagreement in why.
 */
static int sref_diff(const char *body, size_t n, char *why, size_t cap)
{
    json_error_t jerr;
    struct err_detail d;
    struct buf rest;
    const char *span;
    size_t len, count = 0;
    int bad = 0;
    err_clear(&d);
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    buf_init(&rest, n + 1);
    int rs = cat_json_split(body, n, "samples", &rest, &span, &len, &d);
    json_t *r = rs ? NULL : json_loadb(rest.p ? rest.p : "", rest.len,
                                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    int rc = rs ? rs : cat_samples_count(span, len, &count, &d);
    if (j && memchr(body, '\0', n)) {
        /* A raw NUL is never JSON: jansson 2.14 took one that follows a
           number or literal for its own empty-buffer mark and skipped it. */
    } else if (j && json_is_object(j)) {
        json_t *want = json_object_get(j, "samples");
        if (rs) {
            bad = sref_fail(why, cap, "split of a valid body: %s %s", err_name(rs), d.msg);
        } else if (!r) {
            bad = sref_fail(why, cap, "jansson rejects the rest '%.200s'", rest.p);
        } else {
            json_t *jr = json_deep_copy(j);
            json_object_del(jr, "samples");
            if (!json_equal(jr, r))
                bad = sref_fail(why, cap, "the rest differs: '%.200s'", rest.p);
            json_decref(jr);
        }
        if (!bad && !want != !span)
            bad = sref_fail(why, cap, "span %s, but samples %s", span ? "set" : "NULL",
                            want ? "present" : "absent");
        if (!bad && want) {
            json_t *js = json_loadb(span, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                                    JSON_ALLOW_NUL, NULL);
            if (!js || !json_equal(js, want))
                bad = sref_fail(why, cap, "span '%.*s' is not the samples value",
                                (int)(len < 200 ? len : 200), span);
            json_decref(js);
        }
        if (!bad && json_is_array(want)) {
            if (rc || count != json_array_size(want))
                bad = sref_fail(why, cap, "count: %s %s, %zu, want %zu", err_name(rc), d.msg,
                                count, json_array_size(want));
            else
                bad = sref_iterate(span, len, want, why, cap);
        } else if (!bad && (!want || json_is_null(want))) {
            if (rc || count)
                bad = sref_fail(why, cap, "count of no samples: %s %s", err_name(rc), d.msg);
        } else if (!bad && (rc != ERR_INVAL || strcmp(d.msg, "samples must be an array"))) {
            bad = sref_fail(why, cap, "count of a non-array: %s %s", err_name(rc), d.msg);
        }
    } else if (j) {
        if (rs != ERR_PARSE || strcmp(d.msg, "the body must be a JSON object"))
            bad = sref_fail(why, cap, "split of a non-object: %s %s", err_name(rs), d.msg);
    } else {
        int range = strstr(jerr.text, "too big") || strstr(jerr.text, "overflow");
        /* Many member names in one sample may hide a duplicate (samples_scan.h). */
        size_t colons = 0;
        for (size_t i = 0; !rs && span && i < len; i++)
            colons += span[i] == ':';
        int parse = rs == ERR_PARSE || (!rs && !r) || (!rs && rc == ERR_PARSE);
        if (!range && colons < CAT_SCAN_NAMES / 2 && !parse)
            bad = sref_fail(why, cap, "jansson: '%s' at %d, but split %s, rest %s, count %s",
                            jerr.text, jerr.position, err_name(rs), r ? "ok" : "bad",
                            err_name(rc));
        else if (!parse && !rc && sref_all_valid(span, len))
            bad = sref_fail(why, cap, "jansson: '%s' at %d, but every sample passes",
                            jerr.text, jerr.position);
    }
    json_decref(j);
    json_decref(r);
    buf_free(&rest);
    return bad;
}

#endif
