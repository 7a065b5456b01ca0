/*
 * Unit tests of src/catalog/samples_scan.c: the split of a body at its
 * "samples" member, the samples iterator (every verdict of check_sample()
 * and every kind of malformed JSON), the element count, and a differential
 * test against jansson plus check_sample()'s rules (tests/fuzz/samples_ref.h)
 * on a few hundred generated arrays, valid and mutated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/samples_scan.h"
#include "../fuzz/samples_ref.h"

/* --- helpers --- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rng() >> 33) % n;
}

/* Splits body at "samples"; returns the code, rest in *out (caller frees). */
static int split(const char *body, struct buf *rest, const char **span, size_t *len,
                 struct err_detail *d)
{
    buf_init(rest, 1 << 20);
    err_clear(d);
    return cat_json_split(body, strlen(body), "samples", rest, span, len, d);
}

/* Asserts the split of body gives rest `want_rest` and value `want_span` (or NULL). */
static void split_ok(const char *body, const char *want_rest, const char *want_span)
{
    struct buf rest;
    struct err_detail d;
    const char *span;
    size_t len;
    int rc = split(body, &rest, &span, &len, &d);
    if (rc)
        fail_msg("split of '%s': %s %s", body, err_name(rc), d.msg);
    assert_string_equal(rest.p, want_rest);
    if (want_span) {
        assert_non_null(span);
        assert_int_equal(len, strlen(want_span));
        assert_memory_equal(span, want_span, len);
    } else {
        assert_null(span);
        assert_int_equal(len, 0);
    }
    buf_free(&rest);
}

/* Asserts the split of body fails with rc and a message containing msg. */
static void split_fails(const char *body, int want, const char *msg)
{
    struct buf rest;
    struct err_detail d;
    const char *span = "x";
    size_t len = 1;
    int rc = split(body, &rest, &span, &len, &d);
    if (rc != want || !strstr(d.msg, msg))
        fail_msg("split of '%s': %s '%s', want %s '%s'", body, err_name(rc), d.msg,
                 err_name(want), msg);
    assert_null(span);
    buf_free(&rest);
}

static struct cat_sample_iter it;
static struct cat_sample smp;

/*
 * Iterates over span; returns the first non-1 code, with the samples seen
 * in *seen and the detail in d.
 */
static int iterate(const char *span, size_t *seen, struct err_detail *d)
{
    err_clear(d);
    *seen = 0;
    int rc = cat_samples_begin(&it, span, span ? strlen(span) : 0, d);
    while (!rc && (rc = cat_samples_next(&it, &smp, d)) == 1) {
        (*seen)++;
        rc = 0;
    }
    return rc;
}

/* Asserts iterating over span stops with want, field and message. */
static void iter_fails(const char *span, int want, const char *field, const char *msg)
{
    struct err_detail d;
    size_t seen;
    int rc = iterate(span, &seen, &d);
    if (rc != want || (field && strcmp(d.field, field)) ||
        (want == ERR_PARSE ? !strstr(d.msg, msg) : strcmp(d.msg, msg) != 0))
        fail_msg("'%s': %s '%s' '%s', want %s '%s' '%s'", span, err_name(rc), d.field,
                 d.msg, err_name(want), field ? field : "", msg);
}

/* Asserts the old and the new way agree on body (samples_ref.h). */
static void agree(const char *body, size_t n)
{
    char why[512];
    if (sref_diff(body, n, why, sizeof(why)))
        fail_msg("%s\n  body: %.*s", why, (int)(n < 400 ? n : 400), body);
}

#define S4 "\"scheduled_ns\":1,\"sent_ns\":2,\"input_tokens\":3,\"output_tokens\":4"

/* --- split --- */

static void test_split_positions(void **state)
{
    (void)state;
    split_ok("{\"samples\":[1],\"a\":1,\"b\":2}", "{\"a\":1,\"b\":2}", "[1]");
    split_ok("{\"a\":1,\"samples\":[1],\"b\":2}", "{\"a\":1,\"b\":2}", "[1]");
    split_ok("{\"a\":1,\"b\":2,\"samples\":[1]}", "{\"a\":1,\"b\":2}", "[1]");
    split_ok("{\"samples\":[1]}", "{}", "[1]");
    split_ok("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":2}", NULL);
    split_ok("{}", "{}", NULL);
    split_ok(" \r\n\t{ } \n", " \r\n\t{ } \n", NULL);
    split_ok("  { \"samples\" :\n[ 1 , 2 ] }  ", "  {  }  ", "[ 1 , 2 ]");
    split_ok("{ \"a\" : 1 , \"samples\" : [] , \"b\" : 2 }", "{ \"a\" : 1  , \"b\" : 2 }",
             "[]");
    split_ok("{ \"samples\" : [] , \"b\" : 2 }", "{  \"b\" : 2 }", "[]");
    split_ok("{\"samples\":null,\"x\":[]}", "{\"x\":[]}", "null");
    split_ok("{\"samples\":\"s\\\"]}\"}", "{}", "\"s\\\"]}\"");
    split_ok("{\"samples\":-12.5e3 }", "{ }", "-12.5e3");
    /* Escaped names decode before the comparison. */
    split_ok("{\"\\u0073amples\":[2],\"a\":1}", "{\"a\":1}", "[2]");
    split_ok("{\"sample\\u0073\":[2]}", "{}", "[2]");
    split_ok("{\"samples \":[2]}", "{\"samples \":[2]}", NULL);
    split_ok("{\"Samples\":[2]}", "{\"Samples\":[2]}", NULL);
    split_ok("{\"samples\\u0000\":[2]}", "{\"samples\\u0000\":[2]}", NULL);
    /* Only the top level counts; strings with brackets and quotes are skipped. */
    split_ok("{\"a\":{\"samples\":[1]},\"b\":[{\"samples\":2}],\"samples\":[3]}",
             "{\"a\":{\"samples\":[1]},\"b\":[{\"samples\":2}]}", "[3]");
    split_ok("{\"a\":\"{\\\"samples\\\":[1]} ]\",\"samples\":[{\"s\":\"]}\\\\\"}]}",
             "{\"a\":\"{\\\"samples\\\":[1]} ]\"}", "[{\"s\":\"]}\\\\\"}]");
    split_ok("{\"a\":\"x\",\"samples\":{\"samples\":[]}}", "{\"a\":\"x\"}",
             "{\"samples\":[]}");
}

static void test_split_errors(void **state)
{
    (void)state;
    split_fails("{\"samples\":[],\"samples\":[]}", ERR_PARSE, "duplicate member 'samples'");
    split_fails("{\"samples\":[],\"a\":1,\"\\u0073amples\":null}", ERR_PARSE,
                "duplicate member 'samples'");
    split_fails("[1]", ERR_PARSE, "the body must be a JSON object");
    split_fails("5", ERR_PARSE, "the body must be a JSON object");
    split_fails("", ERR_PARSE, "the body must be a JSON object");
    split_fails("   ", ERR_PARSE, "the body must be a JSON object");
    split_fails("\"{}\"", ERR_PARSE, "the body must be a JSON object");
    split_fails("{", ERR_PARSE, "at byte 1: string or '}' expected");
    split_fails("{\"a\"", ERR_PARSE, "at byte 4: ':' expected");
    split_fails("{\"a\":", ERR_PARSE, "at byte 5: value expected");
    split_fails("{\"a\":}", ERR_PARSE, "at byte 5: value expected");
    split_fails("{\"a\":1", ERR_PARSE, "at byte 6: ',' or '}' expected");
    split_fails("{\"a\":1 \"b\":2}", ERR_PARSE, "at byte 7: ',' or '}' expected");
    split_fails("{\"a\":1,}", ERR_PARSE, "at byte 7: string or '}' expected");
    split_fails("{\"a\":1} x", ERR_PARSE, "at byte 8: end of input expected");
    split_fails("{\"a\":1}}", ERR_PARSE, "at byte 7: end of input expected");
    split_fails("{\"a", ERR_PARSE, "at byte 1: unterminated string");
    split_fails("{\"a\":\"x}", ERR_PARSE, "at byte 5: unterminated string");
    split_fails("{\"a\":\"x\\", ERR_PARSE, "unterminated string");
    split_fails("{\"a\":[1,2}", ERR_PARSE, "at byte 9: mismatched bracket");
    split_fails("{\"a\":{\"b\":[}}", ERR_PARSE, "mismatched bracket");
    split_fails("{\"samples\":[[1]", ERR_PARSE,
                "at byte 11: unterminated array or object");
    split_fails("{\"a\":\"x\ty\"}", ERR_PARSE,
                "at byte 7: control character in string");
    split_fails("{\"a\\q\":1}", ERR_PARSE, "at byte 3: invalid escape");
    split_fails("{\"\\ud800x\":1}", ERR_PARSE, "invalid escape");
    split_fails("{\"a\":1 2}", ERR_PARSE, "',' or '}' expected");
    split_fails("{\"samples\":[1] [2]}", ERR_PARSE, "',' or '}' expected");

    /* An over-long key, and a rest that does not fit. */
    struct buf rest;
    struct err_detail d;
    const char *span;
    size_t len;
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    buf_init(&rest, 100);
    assert_int_equal(cat_json_split("{}", 2, key, &rest, &span, &len, &d), ERR_INVAL);
    buf_free(&rest);
    buf_init(&rest, 4);
    assert_int_equal(cat_json_split("{\"a\":1,\"samples\":[]}", 20, "samples", &rest, &span,
                                    &len, &d), ERR_TOOBIG);
    assert_null(span);
    buf_free(&rest);
    /* n bounds the body: what follows is never read. */
    buf_init(&rest, 100);
    assert_int_equal(cat_json_split("{\"samples\":[1]}garbage", 15, "samples", &rest, &span,
                                    &len, &d), 0);
    assert_string_equal(rest.p, "{}");
    buf_free(&rest);
}

/* Bodies nested around jansson's depth limit of 2048, split and iterated. */
static void test_depth(void **state)
{
    (void)state;
    size_t cap = 16 * 2100 + 64;
    char *b = malloc(cap);
    assert_non_null(b);
    for (int k = 2045; k <= 2049; k++) {
        for (int where = 0; where < 4; where++) {
            /* k nested arrays (or objects) as samples, or as another member. */
            size_t n = 0;
            n += (size_t)snprintf(b + n, cap - n, "{%s", where & 1 ? "\"x\":" : "\"samples\":");
            for (int i = 0; i < k; i++)
                n += (size_t)snprintf(b + n, cap - n, "%s", where & 2 ? "[{\"a\":" : "[");
            n += (size_t)snprintf(b + n, cap - n, "1");
            for (int i = 0; i < k; i++)
                n += (size_t)snprintf(b + n, cap - n, "%s", where & 2 ? "}]" : "]");
            n += (size_t)snprintf(b + n, cap - n, "}");
            agree(b, n);
        }
    }
    free(b);
}

/* --- the iterator: verdicts --- */

static void test_iter_values(void **state)
{
    (void)state;
    struct err_detail d;
    const char *span =
        "[ {\"scheduled_ns\":123456789,\"sent_ns\":123456999,\"first_token_ns\":223456789,"
        "\"last_token_ns\":923456789,\"input_tokens\":512,\"output_tokens\":128,\"error\":null},"
        " {\"output_tokens\" : 0, \"error\": \"timeout\", \"input_tokens\":9223372036854775807,"
        "\"sent_ns\":-0, \"scheduled_ns\":0, \"last_token_ns\": null} ,"
        "{" S4 ",\"error\":\"caf\\u00e9\\n\\ud83d\\ude00\\/\"}]";
    assert_int_equal(cat_samples_begin(&it, span, strlen(span), &d), 0);
    assert_int_equal(cat_samples_next(&it, &smp, &d), 1);
    assert_int_equal(smp.v[0], 123456789);
    assert_int_equal(smp.v[1], 123456999);
    assert_int_equal(smp.v[2], 223456789);
    assert_int_equal(smp.v[3], 923456789);
    assert_int_equal(smp.v[4], 512);
    assert_int_equal(smp.v[5], 128);
    assert_int_equal(smp.nulls, 1u << 6);
    assert_null(smp.error);
    assert_int_equal(cat_samples_next(&it, &smp, &d), 1);
    assert_int_equal(smp.v[0], 0);
    assert_int_equal(smp.v[1], 0);
    assert_int_equal(smp.v[4], INT64_MAX);
    assert_int_equal(smp.v[5], 0);
    assert_int_equal(smp.nulls, (1u << 2) | (1u << 3));
    assert_int_equal(smp.error_len, 7);
    assert_memory_equal(smp.error, "timeout", 7);
    assert_true(smp.error > span && smp.error < span + strlen(span)); /* not copied */
    assert_int_equal(cat_samples_next(&it, &smp, &d), 1);
    assert_int_equal(smp.nulls, (1u << 2) | (1u << 3));
    assert_int_equal(smp.error_len, strlen("caf\xc3\xa9\n\xf0\x9f\x98\x80/"));
    assert_memory_equal(smp.error, "caf\xc3\xa9\n\xf0\x9f\x98\x80/", smp.error_len);
    assert_ptr_equal(smp.error, smp.errbuf);
    assert_int_equal(cat_samples_next(&it, &smp, &d), 0);
    assert_int_equal(cat_samples_next(&it, &smp, &d), 0);

    /* No samples: absent, null, empty. */
    size_t seen, count = 7;
    assert_int_equal(iterate(NULL, &seen, &d), 0);
    assert_int_equal(iterate(" null ", &seen, &d), 0);
    assert_int_equal(iterate("[]", &seen, &d), 0);
    assert_int_equal(iterate(" [ \n ] ", &seen, &d), 0);
    assert_int_equal(seen, 0);
    assert_int_equal(cat_samples_count(NULL, 0, &count, &d), 0);
    assert_int_equal(count, 0);
    assert_int_equal(cat_samples_count("null", 4, &count, &d), 0);
    assert_int_equal(count, 0);
    assert_int_equal(cat_samples_count(span, strlen(span), &count, &d), 0);
    assert_int_equal(count, 3);
}

static void test_iter_verdicts(void **state)
{
    (void)state;
    iter_fails("5", ERR_INVAL, "samples", "samples must be an array");
    iter_fails("\"[]\"", ERR_INVAL, "samples", "samples must be an array");
    iter_fails("{\"a\":[]}", ERR_INVAL, "samples", "samples must be an array");
    iter_fails("true", ERR_INVAL, "samples", "samples must be an array");
    iter_fails("[{" S4 "}, 5]", ERR_INVAL, "samples", "samples[1] must be an object");
    iter_fails("[[]]", ERR_INVAL, "samples", "samples[0] must be an object");
    iter_fails("[null]", ERR_INVAL, "samples", "samples[0] must be an object");
    iter_fails("[\"{}\"]", ERR_INVAL, "samples", "samples[0] must be an object");

    static const char *const req[] = {"scheduled_ns", "sent_ns", "input_tokens",
                                      "output_tokens"};
    for (int i = 0; i < 4; i++) {
        char span[512], field[64], msg[128];
        /* Missing, then null. */
        for (int null = 0; null < 2; null++) {
            size_t n = (size_t)snprintf(span, sizeof(span), "[{");
            for (int k = 0; k < 4; k++)
                if (k != i || null)
                    n += (size_t)snprintf(span + n, sizeof(span) - n, "%s\"%s\":%s",
                                          n > 2 ? "," : "", req[k], k == i ? "null" : "1");
            snprintf(span + n, sizeof(span) - n, "}]");
            snprintf(field, sizeof(field), "samples[0].%s", req[i]);
            snprintf(msg, sizeof(msg), "samples[0].%s is required", req[i]);
            iter_fails(span, ERR_INVAL, field, msg);
        }
    }

    static const char *const bad_int[] = {
        "-1", "1.0", "1e3", "0E0", "-0.0", "1.5e-3", "\"1\"", "true", "false", "[]", "[1]",
        "{}", "{\"a\":1}", "9223372036854775808", "99999999999999999999999",
        "-9223372036854775808", "-99999999999999999999999", "1e400",
    };
    for (size_t i = 0; i < sizeof(bad_int) / sizeof(bad_int[0]); i++) {
        char span[256];
        snprintf(span, sizeof(span),
                 "[{\"scheduled_ns\":1,\"sent_ns\":%s,\"input_tokens\":3,\"output_tokens\":4}]",
                 bad_int[i]);
        iter_fails(span, ERR_INVAL, "samples[0].sent_ns",
                   "samples[0].sent_ns must be an integer >= 0");
        snprintf(span, sizeof(span), "[{" S4 ",\"first_token_ns\":%s}]", bad_int[i]);
        iter_fails(span, ERR_INVAL, "samples[0].first_token_ns",
                   "samples[0].first_token_ns must be an integer >= 0");
    }

    static const char *const bad_err[] = {
        "1", "true", "[]", "{}", "\"a\\u0000b\"", "\"\\u0001\"", "\"\\u001f\"", "\"\\u007f\"",
        "\"\x7f\"", "\"\\b\"", "\"\\f\"",
    };
    const char *emsg = "samples[0].error must be a string of at most 1024 characters";
    for (size_t i = 0; i < sizeof(bad_err) / sizeof(bad_err[0]); i++) {
        char span[256];
        snprintf(span, sizeof(span), "[{" S4 ",\"error\":%s}]", bad_err[i]);
        iter_fails(span, ERR_INVAL, "samples[0].error", emsg);
    }
    /* 1024 bytes of decoded UTF-8 pass, 1025 do not (characters do not count). */
    char *span = malloc(8000);
    assert_non_null(span);
    for (int extra = 0; extra <= 1; extra++) {
        for (int esc = 0; esc <= 1; esc++) {
            size_t n = (size_t)snprintf(span, 8000, "[{" S4 ",\"error\":\"");
            for (int i = 0; i < 512; i++) /* 2 bytes each */
                n += (size_t)snprintf(span + n, 8000 - n, "%s", esc ? "\\u00e9" : "\xc3\xa9");
            n += (size_t)snprintf(span + n, 8000 - n, "%s\"}]", extra ? "\\t" : "");
            struct err_detail d;
            size_t seen;
            int rc = iterate(span, &seen, &d);
            if (extra) {
                assert_int_equal(rc, ERR_INVAL);
                assert_string_equal(d.msg, emsg);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(seen, 1);
            }
            agree(span, strlen(span));
        }
    }
    free(span);

    /* Unknown members: the first, its name cut to 24 bytes in the field, 64 in the message. */
    iter_fails("[{" S4 ",\"zz\":1,\"yy\":2}]", ERR_INVAL, "samples[0].zz", "unknown field 'zz'");
    iter_fails("[{\"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\":"
               "{\"x\":[1]}," S4 "}]",
               ERR_INVAL, "samples[0].abcdefghijklmnopqrstuvwx",
               "unknown field 'abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01'");
    iter_fails("[{" S4 ",\"\\u00e9\\u0041\":1}]", ERR_INVAL, "samples[0].\xc3\xa9" "A",
               "unknown field '\xc3\xa9" "A'");
    iter_fails("[{" S4 ",\"Error\":null}]", ERR_INVAL, "samples[0].Error",
               "unknown field 'Error'");
    /* Column order decides, not member order; unknown members come last. */
    iter_fails("[{\"zz\":1,\"output_tokens\":-1,\"sent_ns\":\"x\"}]", ERR_INVAL,
               "samples[0].scheduled_ns", "samples[0].scheduled_ns is required");
    iter_fails("[{\"zz\":1,\"output_tokens\":-1,\"scheduled_ns\":1,\"sent_ns\":\"x\"}]",
               ERR_INVAL, "samples[0].sent_ns", "samples[0].sent_ns must be an integer >= 0");
    iter_fails("[{\"zz\":1," S4 ",\"error\":5}]", ERR_INVAL, "samples[0].error", emsg);
    /* Escaped spellings of the columns are the columns. */
    struct err_detail d;
    size_t seen;
    assert_int_equal(iterate("[{\"\\u0073cheduled_ns\":1,\"sent\\u005fns\":2,\"input_tokens\":3,"
                             "\"output_tokens\":4}]", &seen, &d), 0);
    assert_int_equal(seen, 1);
    assert_int_equal(smp.v[1], 2);
    /* The index counts up; an error is sticky. */
    iter_fails("[{" S4 "},{" S4 "},{" S4 ",\"error\":\"\\u0000\"}]", ERR_INVAL,
               "samples[2].error", "samples[2].error must be a string of at most 1024 characters");
    assert_int_equal(cat_samples_next(&it, &smp, &d), ERR_INVAL);
}

/* --- the iterator: malformed JSON --- */

static void test_iter_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *span, *msg;
    } cases[] = {
        {"[{\"scheduled_ns\":01," S4 "}]", "at byte 17 of samples: invalid number"},
        {"[{\"scheduled_ns\":-," S4 "}]", "at byte 17 of samples: invalid number"},
        {"[{\"scheduled_ns\":--1}]", "invalid number"},
        {"[{\"scheduled_ns\":1.," S4 "}]", "invalid number"},
        {"[{\"scheduled_ns\":1.e5}]", "invalid number"},
        {"[{\"scheduled_ns\":1e}]", "invalid number"},
        {"[{\"scheduled_ns\":1e+}]", "invalid number"},
        {"[{\"scheduled_ns\":.5}]", "invalid token"},
        {"[{\"scheduled_ns\":+1}]", "invalid token"},
        {"[{\"scheduled_ns\":0x10}]", "',' or '}' expected"},
        {"[{\"scheduled_ns\":1 2}]", "',' or '}' expected"},
        {"[{\"scheduled_ns\":1a}]", "',' or '}' expected"},
        {"[{\"scheduled_ns\":nul}]", "invalid token"},
        {"[{\"scheduled_ns\":nulls}]", "',' or '}' expected"},
        {"[{\"error\":tru}]", "invalid token"},
        {"[{\"scheduled_ns\":NaN}]", "invalid token"},
        {"[{\"scheduled_ns\":1,}]", "string or '}' expected"},
        {"[{" S4 "},]", "value expected"},
        {"[{" S4 "},", "value expected"},
        {"[{" S4 "}", "',' or ']' expected"},
        {"[{" S4 "} {" S4 "}]", "',' or ']' expected"},
        {"[{" S4 "}] x", "end of input expected"},
        {"[{" S4 "}]]", "end of input expected"},
        {"[,]", "invalid token"},
        {"[", "unterminated array"},
        {"[{", "string or '}' expected"},
        {"[{\"scheduled_ns\"", "':' expected"},
        {"[{\"scheduled_ns\" 1}]", "':' expected"},
        {"[{\"scheduled_ns\":", "value expected"},
        {"[{\"sched", "unterminated string"},
        {"[{\"error\":\"abc}]", "unterminated string"},
        {"[{\"error\":\"a\nb\"}]", "at byte 12 of samples: control character in string"},
        {"[{\"error\":\"a\x01\"}]", "control character in string"},
        {"[{\"error\":\"\\x\"}]", "at byte 11 of samples: invalid escape"},
        {"[{\"error\":\"\\u12g4\"}]", "invalid escape"},
        {"[{\"error\":\"\\u12\"}]", "invalid escape"},
        {"[{\"error\":\"\\ud800\"}]", "invalid escape"},
        {"[{\"error\":\"\\ud800\\u0041\"}]", "invalid escape"},
        {"[{\"error\":\"\\udc00\\ud800\"}]", "invalid escape"},
        {"[{\"error\":\"\xc3\x28\"}]", "at byte 11 of samples: invalid UTF-8"},
        {"[{\"error\":\"\xc0\xaf\"}]", "invalid UTF-8"},
        {"[{\"error\":\"\xed\xa0\x80\"}]", "invalid UTF-8"},
        {"[{\"error\":\"\xf4\x90\x80\x80\"}]", "invalid UTF-8"},
        {"[{\"error\":\"\xe2\x82\"}]", "invalid UTF-8"},
        {"[{\"x\xff\":1}]", "invalid UTF-8"},
        {"[{\"a\\u0000\":1}]", "at byte 2 of samples: NUL byte in member name"},
        {"[{\"sent_ns\":1,\"sent_ns\":2}]", "at byte 14 of samples: duplicate member 'sent_ns'"},
        {"[{\"error\":null,\"\\u0065rror\":null}]", "duplicate member 'error'"},
        {"[{\"zz\":1,\"z\\u007a\":2}]", "duplicate member 'zz'"},
        {"[{\"x\":{\"a\":1,\"b\":{\"a\":1},\"a\":2}}]", "duplicate member 'a'"},
        {"[[{\"a\":1,\"a\":1}]]", "duplicate member 'a'"},
        {"[{\"x\":[1,2}]", "',' or ']' expected"},
        {"[{\"x\":{\"a\" 1}}]", "':' expected"},
        {"[{\"x\":{\"a\":1]}]", "',' or '}' expected"},
        {"[\x01]", "invalid token"},
        {"[{\"scheduled_ns\":1}\xef\xbb\xbf]", "',' or ']' expected"},
        {"{\"a\" 1}", "':' expected"},
        {"tru", "invalid token"},
        {"nul", "invalid token"},
        {"null x", "end of input expected"},
        {"", "value expected"},
        {"  ", "value expected"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        iter_fails(cases[i].span, ERR_PARSE, NULL, cases[i].msg);
        /* count finds the same fault, also after samples that are invalid. */
        struct err_detail d;
        size_t count;
        err_clear(&d);
        int rc = cat_samples_count(cases[i].span, strlen(cases[i].span), &count, &d);
        if (rc != ERR_PARSE || !strstr(d.msg, cases[i].msg))
            fail_msg("count of '%s': %s '%s'", cases[i].span, err_name(rc), d.msg);
        assert_string_equal(d.field, "");
        /* And jansson agrees that the body is malformed. */
        char body[512];
        int n = snprintf(body, sizeof(body), "{\"samples\":%s}", cases[i].span);
        if (cases[i].span[0] != '\0' && strcmp(cases[i].span, "  "))
            agree(body, (size_t)n);
    }
    /* A span with a NUL inside: n, not strlen, bounds it. */
    struct err_detail d;
    size_t count;
    assert_int_equal(cat_samples_count("[1,\0 2]", 7, &count, &d), ERR_PARSE);
    assert_non_null(strstr(d.msg, "at byte 3"));
    /* count keeps going past invalid samples to a later fault. */
    const char *late = "[5, {\"x\":1}, {" S4 "}, {" S4 ",}]";
    assert_int_equal(cat_samples_count(late, strlen(late), &count, &d), ERR_PARSE);
    iter_fails(late, ERR_INVAL, "samples", "samples[0] must be an object");
}

/* --- differential: generated arrays against jansson + check_sample --- */

struct gen {
    char *p;
    size_t n, cap;
};

static void put(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(g->p + g->n, g->cap - g->n, fmt, ap);
        va_end(ap);
        if (g->n + (size_t)k < g->cap) {
            g->n += (size_t)k;
            return;
        }
        g->cap = 2 * (g->cap + (size_t)k);
        g->p = realloc(g->p, g->cap);
        assert_non_null(g->p);
    }
}

static void gen_int(struct gen *g)
{
    static const char *const odd[] = {
        "0", "-0", "-1", "1.0", "1e3", "2E+2", "-3.5e-1", "9223372036854775807",
        "9223372036854775808", "18446744073709551616", "-9223372036854775808", "null",
        "\"7\"", "true", "false", "[]", "{}", "[1,{\"a\":null}]", "{\"a\":[1]}", "00", "1.",
        "-", "1e999",
    };
    unsigned r = pick(10);
    if (r < 6)
        put(g, "%llu", (unsigned long long)(rng() >> pick(64)));
    else if (r < 7)
        put(g, "%u", pick(1000));
    else
        put(g, "%s", odd[pick(sizeof(odd) / sizeof(odd[0]))]);
}

static void gen_string(struct gen *g)
{
    static const char *const parts[] = {
        "a", "timeout", " ", "\\n", "\\t", "\\r", "\\\"", "\\\\", "\\/", "\\b", "\\f",
        "\\u00e9", "\\u0041", "\\ud83d\\ude00", "\\u0000", "\\u007f", "\\u001f", "\xc3\xa9",
        "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x7f", "\\uD834\\uDD1E", "\\ud800", "\xc3",
        "\t",
    };
    put(g, "\"");
    unsigned k = pick(8);
    if (pick(20) == 0)
        k = 1020 + pick(8); /* around the 1024-byte limit */
    for (unsigned i = 0; i < k; i++)
        put(g, "%s", k > 100 ? "x" : parts[pick(pick(3) ? 4 : sizeof(parts) / sizeof(parts[0]))]);
    put(g, "\"");
}

static void gen_key(struct gen *g, int c)
{
    static const char *const esc[] = {
        "\\u0073cheduled_ns", "sent\\u005fns", "first_token_n\\u0073", "last_token_ns",
        "input_tokens", "output_token\\u0073", "\\u0065rror",
    };
    static const char *const unknown[] = {"x", "Error", "sent", "a\\u00e9", "scheduled_ns ",
                                          "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"};
    if (c < 7)
        put(g, "\"%s\"", pick(10) ? sref_cols[c] : esc[c]);
    else
        put(g, "\"%s\"", unknown[pick(sizeof(unknown) / sizeof(unknown[0]))]);
}

static void gen_sample(struct gen *g)
{
    if (pick(25) == 0) {
        gen_int(g); /* not an object */
        return;
    }
    int order[9] = {0, 1, 2, 3, 4, 5, 6, 7, 7};
    int n = 7 + (pick(8) == 0) + (pick(20) == 0);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)pick((unsigned)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    put(g, "{");
    int first = 1;
    for (int i = 0; i < n; i++) {
        int c = order[i];
        if (c < 7 && pick(12) == 0)
            continue; /* missing */
        if (c < 7 && pick(40) == 0)
            i--; /* duplicate */
        put(g, "%s", first ? "" : pick(4) ? "," : " , ");
        first = 0;
        gen_key(g, c);
        put(g, pick(4) ? ":" : " : ");
        if (c == 6)
            pick(3) ? put(g, "null") : pick(6) ? gen_string(g) : gen_int(g);
        else if (c < 7)
            pick(6) ? put(g, "%u", pick(1u << 30)) : gen_int(g);
        else
            pick(2) ? gen_int(g) : gen_string(g);
    }
    put(g, "}");
}

/* Changes a few bytes of g[from..]: deletions, insertions, replacements. */
static void mutate(struct gen *g, size_t from)
{
    static const char alphabet[] = "{}[],:\" \\0123456789-.eEtrufalsn\x01\x80\xc3\xff";
    unsigned k = 1 + pick(3);
    for (unsigned i = 0; i < k && g->n > from; i++) {
        size_t at = from + pick((unsigned)(g->n - from));
        char c = alphabet[pick(sizeof(alphabet) - 1)];
        switch (pick(3)) {
        case 0:
            memmove(g->p + at, g->p + at + 1, g->n - at - 1);
            g->n--;
            break;
        case 1:
            put(g, " ");
            memmove(g->p + at + 1, g->p + at, g->n - at - 1);
            g->p[at] = c;
            break;
        default:
            g->p[at] = c;
        }
    }
}

static void test_differential(void **state)
{
    (void)state;
    struct gen g = {NULL, 0, 0};
    int valid = 0, invalid = 0, malformed = 0;
    for (int round = 0; round < 600; round++) {
        g.n = 0;
        put(&g, "{\"model\":\"m\",");
        size_t from = g.n;
        put(&g, "\"samples\":[");
        unsigned k = pick(6);
        for (unsigned i = 0; i < k; i++) {
            if (i)
                put(&g, ",");
            gen_sample(&g);
        }
        put(&g, "],\"seed\":[1,{\"a\":\"}\"}]}");
        if (round % 3 == 2)
            mutate(&g, from);
        agree(g.p, g.n);

        json_t *j = json_loadb(g.p, g.n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        if (!j) {
            malformed++;
        } else {
            json_t *a = json_object_get(j, "samples");
            int ok = json_is_array(a);
            struct err_detail d;
            for (size_t i = 0; ok && i < json_array_size(a); i++)
                ok = !sref_check_sample(json_array_get(a, i), i, &smp, &d);
            ok ? valid++ : invalid++;
            json_decref(j);
        }
    }
    free(g.p);
    print_message("differential: %d valid, %d invalid, %d malformed bodies\n", valid, invalid,
                  malformed);
    assert_true(valid > 50 && invalid > 50 && malformed > 50);
}

/* The seed corpus of the fuzz target, through the same oracle. */
static void test_corpus(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        ("{\"samples\":[{\"scheduled_ns\":1,\"sent_ns\":2,\"input_tokens\":3,"
         "\"output_tokens\":4,\"x\":{\"a\":1,\"a\":2}}]}"),
        "{\"samples\":[{\"scheduled_ns\":1,\"x\":{\"a\":1,\"b\":[{\"a\":1}],\"a\":2}}]}",
        "{\"samples\":[1,{\"a\":[],\"\\u0061\":{}}]}",
        "{\"samples\":[{\"a\\u0000\":1}]}",
        "{\"samples\":[{\"error\":\"\\u0000\"}]}",
        "{\"samples\":[{\"scheduled_ns\":1e999}]}",
        "{\"samples\":[{\"scheduled_ns\":99999999999999999999}]}",
        "{\"samples\":[{\"x\":-99999999999999999999}]}",
        "{\"samples\":1e999}",
        "{\"samples\":{\"a\":1,\"a\":2}}",
        "{\"samples\":[],\"a\":{\"b\":1,\"b\":2}}",
        "{\"a\":{\"samples\":1,\"samples\":2},\"samples\":null}",
        "{\"samples\":[\"\\ud83d\\ude00\", \"\xf0\x9f\x98\x80\"]}",
        "[]",
        "{\"samples\":[]} ",
        "{\"samples\":[]}\x00",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        agree(bodies[i], strlen(bodies[i]) + (i == sizeof(bodies) / sizeof(bodies[0]) - 1));
}

/* The table of member names: per object, per sample, and its capacity. */
static void test_names(void **state)
{
    (void)state;
    struct err_detail d;
    size_t count;
    /* Same names in different objects, samples or array elements are no duplicates. */
    const char *ok = "[{\"x\":{\"a\":1,\"b\":{\"a\":2}},\"y\":{\"a\":3},"
                     "\"z\":[{\"a\":1},{\"a\":1}]},{\"x\":{\"a\":1}},{\"x\":{\"a\":1}}]";
    assert_int_equal(cat_samples_count(ok, strlen(ok), &count, &d), 0);
    assert_int_equal(count, 3);
    const char *body = "{\"samples\":[{\"x\":{\"a\":1,\"b\":{\"a\":2}},\"y\":{\"a\":3}}]}";
    agree(body, strlen(body));

    struct gen {
        char *p;
        size_t n;
    } g;
    size_t cap = 1 << 20;
    g.p = malloc(cap);
    assert_non_null(g.p);
    /* Many samples with nested names: the table empties per sample. */
    g.n = (size_t)snprintf(g.p, cap, "[");
    for (int i = 0; i < 3000; i++)
        g.n += (size_t)snprintf(g.p + g.n, cap - g.n, "%s{\"u%d\":{\"k%d\":1,\"j\":[]}}",
                                i ? "," : "", i % 7, i % 5);
    g.n += (size_t)snprintf(g.p + g.n, cap - g.n, "]");
    assert_int_equal(cat_samples_count(g.p, g.n, &count, &d), 0);
    assert_int_equal(count, 3000);
    /* A duplicate after k other names in one sample: found up to the capacity. */
    for (int k = 100; k <= 400; k += 300) {
        g.n = (size_t)snprintf(g.p, cap, "{\"samples\":[{" S4 ",\"x\":{");
        for (int i = 0; i < k; i++)
            g.n += (size_t)snprintf(g.p + g.n, cap - g.n, "\"n%d\":%d,", i, i);
        g.n += (size_t)snprintf(g.p + g.n, cap - g.n, "\"n0\":0}}]}");
        size_t seen;
        const char *span = g.p + 11;
        g.p[g.n - 1] = '\0';
        int rc = iterate(span, &seen, &d);
        if (k < CAT_SCAN_NAMES / 2) {
            assert_int_equal(rc, ERR_PARSE);
            assert_non_null(strstr(d.msg, "duplicate member 'n0'"));
        } else { /* documented: beyond the capacity, the sample's own error */
            assert_int_equal(rc, ERR_INVAL);
            assert_string_equal(d.msg, "unknown field 'x'");
        }
        g.p[g.n - 1] = '}';
        agree(g.p, g.n);
    }
    free(g.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_positions),
        cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_iter_values),
        cmocka_unit_test(test_iter_verdicts),
        cmocka_unit_test(test_iter_malformed),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
