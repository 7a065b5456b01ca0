/*
 * Unit tests of src/core: the capped buffer, the JSON writer, the codecs
 * (base64url, percent-encoding, UTF-8, UUIDv7), time formats, the
 * allocation hook and error names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/err.h"
#include "core/jw.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* --- helpers --- */

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng() >> 56);
}

/* Asserts b holds exactly want and has no error. */
static void assert_buf(const struct buf *b, const char *want)
{
    assert_int_equal(buf_err(b), 0);
    assert_non_null(b->p);
    assert_int_equal(b->len, strlen(want));
    assert_string_equal(b->p, want);
}

/* --- struct buf --- */

static void test_buf_basic(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_null(b.p);
    buf_puts(&b, "ab");
    buf_putc(&b, 'c');
    buf_append(&b, "dxx", 1);
    buf_printf(&b, "-%d-%s", 42, "z");
    assert_buf(&b, "abcd-42-z");
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    buf_puts(&b, "again");
    size_t n = 0;
    char *s = buf_steal(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(s, "again");
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    mem_free(s);
    buf_free(&b);
}

static void test_buf_cap_toobig_sticks(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    buf_puts(&b, "12345678"); /* exactly max: allowed */
    assert_buf(&b, "12345678");
    buf_putc(&b, '9');        /* one past max */
    assert_int_equal(buf_err(&b), ERR_TOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.p, "12345678");
    /* Once failed, every later append is a no-op, even one that would fit. */
    buf_reset(&b);
    buf_puts(&b, "1234");
    buf_puts(&b, "56789");
    assert_int_equal(buf_err(&b), ERR_TOOBIG);
    buf_puts(&b, "x");
    buf_printf(&b, "%s", "y");
    buf_i64(&b, 7);
    assert_int_equal(buf_err(&b), ERR_TOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.p, "1234");
    assert_null(buf_reserve(&b, 0));
    buf_free(&b);
}

static void test_buf_i64_extremes(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-1, "-1"},
        {7, "7"},
        {-10, "-10"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, 64);
        buf_i64(&b, cases[i].v);
        assert_buf(&b, cases[i].want);
        buf_free(&b);
    }
}

static void test_buf_printf_longer_than_256(void **state)
{
    (void)state;
    char want[1001];
    memset(want, 'q', 1000);
    want[1000] = '\0';
    struct buf b;
    buf_init(&b, 4096);
    buf_puts(&b, "<");
    buf_printf(&b, "%s|%d", want, 12345);
    buf_puts(&b, ">");
    assert_int_equal(buf_err(&b), 0);
    assert_int_equal(b.len, 1 + 1000 + 6 + 1);
    assert_int_equal(b.p[0], '<');
    assert_memory_equal(b.p + 1, want, 1000);
    assert_string_equal(b.p + 1001, "|12345>");
    buf_free(&b);

    /* A long printf over the cap fails without changing the contents. */
    buf_init(&b, 300);
    buf_puts(&b, "ab");
    buf_printf(&b, "%s", want);
    assert_int_equal(buf_err(&b), ERR_TOOBIG);
    assert_string_equal(b.p, "ab");
    buf_free(&b);
}

static void test_buf_nomem(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    mem_fail_after(0);
    buf_puts(&b, "x");
    mem_fail_after(-1);
    assert_int_equal(buf_err(&b), ERR_NOMEM);
    assert_int_equal(b.len, 0);
    buf_free(&b);

    /* The first allocation succeeds, growing past it fails. */
    char big[600];
    memset(big, 'a', sizeof(big));
    buf_init(&b, 1 << 20);
    mem_fail_after(1);
    buf_puts(&b, "keep");
    buf_append(&b, big, sizeof(big));
    mem_fail_after(-1);
    assert_int_equal(buf_err(&b), ERR_NOMEM);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.p, "keep");
    buf_puts(&b, "more"); /* sticky */
    assert_int_equal(b.len, 4);
    buf_free(&b);

    /* Injection off again: allocations work. */
    buf_init(&b, 64);
    buf_puts(&b, "ok");
    assert_buf(&b, "ok");
    buf_free(&b);
}

/* --- jw --- */

static void expect_escape(const char *s, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 4096);
    jw_escape(&b, s, n);
    assert_buf(&b, want);
    /* The output is one valid JSON string that decodes back to the input. */
    json_error_t e;
    json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    assert_non_null(v);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), n);
    assert_memory_equal(json_string_value(v), s, n);
    json_decref(v);
    buf_free(&b);
}
#define EXPECT_ESCAPE(lit, want) expect_escape(lit, sizeof(lit) - 1, want)

static void test_jw_escape(void **state)
{
    (void)state;
    EXPECT_ESCAPE("", "\"\"");
    EXPECT_ESCAPE("plain", "\"plain\"");
    EXPECT_ESCAPE("say \"hi\"", "\"say \\\"hi\\\"\"");
    EXPECT_ESCAPE("a\\b", "\"a\\\\b\"");
    EXPECT_ESCAPE("l1\nl2\r\t\b\f", "\"l1\\nl2\\r\\t\\b\\f\"");
    EXPECT_ESCAPE("\x01", "\"\\u0001\"");
    EXPECT_ESCAPE("x\x1fy", "\"x\\u001fy\"");
    EXPECT_ESCAPE("\x00z", "\"\\u0000z\"");
    EXPECT_ESCAPE("\x7f", "\"\x7f\"");
    EXPECT_ESCAPE("caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"");
    EXPECT_ESCAPE("</script>", "\"</script>\"");
}

static void test_jw_nested_commas(void **state)
{
    (void)state;
    struct buf b;
    struct jw w;
    buf_init(&b, 4096);
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "a");
    jw_arr_open(&w);
    jw_i64(&w, 1);
    jw_i64(&w, -2);
    jw_obj_open(&w);
    jw_key(&w, "b");
    jw_null(&w);
    jw_key(&w, "c");
    jw_arr_open(&w);
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_arr_open(&w);
    jw_bool(&w, 1);
    jw_bool(&w, 0);
    jw_arr_close(&w);
    jw_arr_close(&w);
    jw_key(&w, "k_q");
    jw_cstr(&w, NULL);
    jw_key(&w, "e");
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_key(&w, "r");
    jw_raw(&w, "[1,2]", 5);
    jw_key(&w, "s");
    jw_cstr(&w, "v");
    jw_obj_close(&w);
    assert_buf(&b, "{\"a\":[1,-2,{\"b\":null,\"c\":[]},[true,false]],"
                   "\"k_q\":null,\"e\":{},\"r\":[1,2],\"s\":\"v\"}");
    json_t *v = json_loadb(b.p, b.len, 0, NULL);
    assert_non_null(v);
    json_decref(v);
    buf_free(&b);
}

static void test_jw_depth_cap(void **state)
{
    (void)state;
    struct buf b;
    struct jw w;
    buf_init(&b, 4096);
    jw_init(&w, &b);
    for (int i = 0; i < JW_DEPTH - 1; i++)
        jw_arr_open(&w);
    assert_int_equal(buf_err(&b), 0);
    jw_arr_open(&w);
    assert_int_equal(buf_err(&b), ERR_TOOBIG);
    buf_free(&b);
}

static void expect_num(double v, const char *want)
{
    char out[40];
    int n = jw_fmt_double(out, sizeof(out), v);
    if (n != (int)strlen(want) || strcmp(out, want) != 0)
        fail_msg("jw_fmt_double(%.17g) = \"%s\" (%d), want \"%s\"", v, out, n, want);
    /* jw_num writes the same text as a value. */
    struct buf b;
    struct jw w;
    buf_init(&b, 256);
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_num(&w, v);
    jw_num(&w, v);
    jw_arr_close(&w);
    char arr[100];
    snprintf(arr, sizeof(arr), "[%s,%s]", want, want);
    assert_buf(&b, arr);
    buf_free(&b);
}

static void test_jw_num(void **state)
{
    (void)state;
    expect_num(0.1, "0.1");
    expect_num(0.5, "0.5");
    expect_num(-2.25, "-2.25");
    expect_num(1e300, "1e+300");
    expect_num(-1e-300, "-1e-300");
    expect_num(0.1 + 0.2, "0.30000000000000004");
    expect_num(0.0, "0");
    expect_num(3.0, "3");
    expect_num(-42.0, "-42");
    expect_num(1e15, "1000000000000000");
    expect_num(4503599627370496.0, "4503599627370496");
    expect_num(9007199254740992.0, "9007199254740992");
    expect_num(NAN, "null");
    expect_num(INFINITY, "null");
    expect_num(-INFINITY, "null");
}

/* Whatever jw_fmt_double writes reads back as the same double. */
static void test_jw_num_round_trip_random(void **state)
{
    (void)state;
    int checked = 0;
    while (checked < 20000) {
        uint64_t bits = rng();
        double v;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        char out[40];
        int n = jw_fmt_double(out, sizeof(out), v);
        assert_true(n > 0 && n < 32);
        char *end;
        double back = strtod(out, &end);
        assert_ptr_equal(end, out + n);
        if (back != v)
            fail_msg("%s does not read back as %.17g", out, v);
        checked++;
    }
}

/*
 * jw.h: "Shortest text that reads back as the same double". 0.1 + 0.7 is
 * 0.7999999999999999 (16 significant digits round-trip), so the 17-digit
 * "0.79999999999999993" is not the shortest.
 */
static void test_jw_num_shortest_16_digits(void **state)
{
    (void)state;
    expect_num(0.1 + 0.7, "0.7999999999999999");
    expect_num(1.0 / 3.0 * 2.0, "0.6666666666666666");
}

/* --- base64url --- */

static void expect_b64(const void *p, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_puts(&b, ""); /* allocate, so that an empty result is "" */
    codec_b64url_encode(&b, p, n);
    assert_buf(&b, want);
    unsigned char out[64];
    long m = codec_b64url_decode(b.p, b.len, out, sizeof(out));
    assert_int_equal(m, (long)n);
    assert_memory_equal(out, p, n);
    buf_free(&b);
}

static void expect_b64_bad(const char *s)
{
    unsigned char out[64];
    long m = codec_b64url_decode(s, strlen(s), out, sizeof(out));
    if (m != -1)
        fail_msg("base64url '%s' decoded to %ld bytes, want -1", s, m);
}

static void test_b64url_vectors(void **state)
{
    (void)state;
    expect_b64("", 0, "");
    expect_b64("f", 1, "Zg");
    expect_b64("fo", 2, "Zm8");
    expect_b64("foo", 3, "Zm9v");
    expect_b64("foob", 4, "Zm9vYg");
    expect_b64("fooba", 5, "Zm9vYmE");
    expect_b64("foobar", 6, "Zm9vYmFy");
    expect_b64("\xfb\xff", 2, "-_8");
    expect_b64("\xff\xff\xff", 3, "____");
    expect_b64("\x00\x00\x00", 3, "AAAA");
}

static void test_b64url_random_round_trip(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 300; len += len < 10 ? 1 : 17) {
        for (int rep = 0; rep < 20; rep++) {
            unsigned char in[300], out[300];
            fill_random(in, len);
            struct buf b;
            buf_init(&b, 1024);
            codec_b64url_encode(&b, in, len);
            assert_int_equal(buf_err(&b), 0);
            assert_int_equal(b.len, (len * 4 + 2) / 3);
            assert_null(b.len ? strpbrk(b.p, "+/=") : NULL);
            long m = codec_b64url_decode(b.p ? b.p : "", b.len, out, sizeof(out));
            assert_int_equal(m, (long)len);
            assert_memory_equal(out, in, len);
            /* Exactly enough room works; one byte less is refused. */
            if (len > 0) {
                m = codec_b64url_decode(b.p, b.len, out, len - 1);
                assert_int_equal(m, -1);
            }
            buf_free(&b);
        }
    }
}

static void test_b64url_decode_rejects(void **state)
{
    (void)state;
    /* Characters outside the url-safe alphabet, padding, whitespace. */
    expect_b64_bad("Zm9v+w");
    expect_b64_bad("Zm9v/w");
    expect_b64_bad("Zg==");
    expect_b64_bad("Zm 9v");
    expect_b64_bad("Zm9v\n");
    expect_b64_bad("Zm9\xc3\xa9");
    /* Length 4k+1 can't be produced by the encoder. */
    expect_b64_bad("A");
    expect_b64_bad("Zm9vY");
    expect_b64_bad("Zm9vYmFyZ");
    /* Non-canonical trailing bits. */
    expect_b64_bad("Zh");   /* canonical "Zg" */
    expect_b64_bad("Zm9");  /* canonical "Zm8" */
    expect_b64_bad("-_9");  /* canonical "-_8" */
    /* The canonical forms of the same bytes are accepted. */
    unsigned char out[8];
    assert_int_equal(codec_b64url_decode("Zg", 2, out, sizeof(out)), 1);
    assert_int_equal(codec_b64url_decode("Zm8", 3, out, sizeof(out)), 2);
}

/* --- percent-encoding --- */

static void expect_pct(const char *in, int plus, const char *want)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1);
    assert_non_null(out);
    long m = codec_pct_decode(in, n, out, plus);
    if (m < 0)
        fail_msg("'%s' (plus=%d) refused, want '%s'", in, plus, want);
    assert_int_equal(m, (long)strlen(want));
    assert_string_equal(out, want);
    free(out);
}

static void expect_pct_bad(const char *in, int plus)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1);
    assert_non_null(out);
    long m = codec_pct_decode(in, n, out, plus);
    free(out);
    if (m != -1)
        fail_msg("'%s' (plus=%d) decoded to %ld bytes, want -1", in, plus, m);
}

static void test_pct_decode(void **state)
{
    (void)state;
    expect_pct("", 0, "");
    expect_pct("abc", 0, "abc");
    expect_pct("a%20b", 0, "a b");
    expect_pct("org%2Fname", 0, "org/name");
    expect_pct("org%2fname", 0, "org/name");
    expect_pct("%41%62%7e", 0, "Ab~");
    expect_pct("%C3%A9", 0, "\xc3\xa9");
    expect_pct("%25", 0, "%");
    expect_pct("%2541", 0, "%41"); /* decoded once only */
    /* '+' is a space only in query strings; an encoded plus stays a plus. */
    expect_pct("a+b", 0, "a+b");
    expect_pct("a+b", 1, "a b");
    expect_pct("a%2Bb", 1, "a+b");
    expect_pct("+%2B+", 1, " + ");
}

static void test_pct_decode_rejects(void **state)
{
    (void)state;
    expect_pct_bad("%", 0);
    expect_pct_bad("a%", 0);
    expect_pct_bad("%2", 0);
    expect_pct_bad("ab%4", 1);
    expect_pct_bad("%zz", 0);
    expect_pct_bad("%g0", 0);
    expect_pct_bad("%0g", 0);
    expect_pct_bad("%-1", 0);
    expect_pct_bad("% 20", 0);
    expect_pct_bad("%00", 0);
    expect_pct_bad("a%00b", 1);
    /* A raw NUL inside the given length is refused too. */
    char out[8];
    assert_int_equal(codec_pct_decode("a\0b", 3, out, 0), -1);
}

static void expect_pct_enc(const char *in, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 1024);
    buf_puts(&b, "");
    codec_pct_encode(&b, in, n);
    assert_buf(&b, want);
    /* And decoding gives back the input. */
    char out[256];
    assert_int_equal(codec_pct_decode(b.p, b.len, out, 0), (long)n);
    assert_memory_equal(out, in, n);
    buf_free(&b);
}

static void test_pct_encode(void **state)
{
    (void)state;
    expect_pct_enc("", 0, "");
    expect_pct_enc("AZaz09-._~", 10, "AZaz09-._~");
    expect_pct_enc("org/name", 8, "org%2Fname");
    expect_pct_enc("a b+c%d", 7, "a%20b%2Bc%25d");
    expect_pct_enc("\xc3\xa9?#&=", 6, "%C3%A9%3F%23%26%3D");
    expect_pct_enc("\x7f\x01", 2, "%7F%01");
}

/* --- UTF-8 --- */

#define UTF8(lit) codec_utf8_valid(lit, sizeof(lit) - 1)

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_int_equal(codec_utf8_valid("", 0), 1);
    assert_int_equal(UTF8("ascii ~\x7f"), 1);
    assert_int_equal(UTF8("\xc2\x80"), 1);             /* U+0080 */
    assert_int_equal(UTF8("caf\xc3\xa9"), 1);
    assert_int_equal(UTF8("\xdf\xbf"), 1);             /* U+07FF */
    assert_int_equal(UTF8("\xe0\xa0\x80"), 1);         /* U+0800 */
    assert_int_equal(UTF8("\xe2\x82\xac"), 1);         /* euro */
    assert_int_equal(UTF8("\xed\x9f\xbf"), 1);         /* U+D7FF */
    assert_int_equal(UTF8("\xee\x80\x80"), 1);         /* U+E000 */
    assert_int_equal(UTF8("\xef\xbf\xbf"), 1);         /* U+FFFF */
    assert_int_equal(UTF8("\xf0\x90\x80\x80"), 1);     /* U+10000 */
    assert_int_equal(UTF8("\xf0\x9f\x98\x80"), 1);     /* emoji */
    assert_int_equal(UTF8("\xf4\x8f\xbf\xbf"), 1);     /* U+10FFFF */
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    /* Overlong encodings. */
    assert_int_equal(UTF8("\xc0\x80"), 0);
    assert_int_equal(UTF8("\xc0\xaf"), 0);
    assert_int_equal(UTF8("\xc1\xbf"), 0);
    assert_int_equal(UTF8("\xe0\x80\x80"), 0);
    assert_int_equal(UTF8("\xe0\x9f\xbf"), 0);
    assert_int_equal(UTF8("\xf0\x80\x80\x80"), 0);
    assert_int_equal(UTF8("\xf0\x8f\xbf\xbf"), 0);
    /* UTF-16 surrogates. */
    assert_int_equal(UTF8("\xed\xa0\x80"), 0);
    assert_int_equal(UTF8("\xed\xbf\xbf"), 0);
    assert_int_equal(UTF8("\xed\xa0\xbd\xed\xb8\x80"), 0);
    /* Beyond U+10FFFF, and lead bytes that can't start anything valid. */
    assert_int_equal(UTF8("\xf4\x90\x80\x80"), 0);
    assert_int_equal(UTF8("\xf5\x80\x80\x80"), 0);
    assert_int_equal(UTF8("\xf7\xbf\xbf\xbf"), 0);
    assert_int_equal(UTF8("\xf8\x88\x80\x80\x80"), 0);
    assert_int_equal(UTF8("\xfe"), 0);
    assert_int_equal(UTF8("\xff"), 0);
    /* Stray continuation bytes and truncated sequences. */
    assert_int_equal(UTF8("\x80"), 0);
    assert_int_equal(UTF8("a\xbf"), 0);
    assert_int_equal(UTF8("\xc3"), 0);
    assert_int_equal(UTF8("\xe2\x82"), 0);
    assert_int_equal(UTF8("\xf0\x9f\x98"), 0);
    assert_int_equal(UTF8("\xe2\x82z"), 0);
    assert_int_equal(UTF8("\xc3\xc3\xa9"), 0);
    /* Truncated by the length even though more bytes follow in memory. */
    assert_int_equal(codec_utf8_valid("\xe2\x82\xac", 2), 0);
    /* NUL. */
    assert_int_equal(UTF8("a\0b"), 0);
}

/* --- UUIDv7 --- */

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid7(const char *u, int64_t ms)
{
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else
            assert_true(is_lower_hex(u[i]));
    }
    assert_int_equal(u[14], '7');                   /* version */
    assert_non_null(strchr("89ab", u[19]));         /* variant 10xx */
    char ts[13];
    snprintf(ts, sizeof(ts), "%012llx", (unsigned long long)ms);
    char got[13];
    memcpy(got, u, 8);
    memcpy(got + 8, u + 9, 4);
    got[12] = '\0';
    assert_string_equal(got, ts);                   /* 48-bit ms, big-endian */
}

static void test_uuid7(void **state)
{
    (void)state;
    char a[37], b[37];
    const int64_t base = 1700000000123;
    assert_int_equal(codec_uuid7(a, base), 0);
    check_uuid7(a, base);
    assert_int_equal(codec_uuid7(b, base), 0);
    check_uuid7(b, base);
    assert_string_not_equal(a, b); /* random part differs */
    assert_int_equal(codec_uuid7(a, 0), 0);
    check_uuid7(a, 0);
    assert_int_equal(codec_uuid7(a, 0xffffffffffffLL), 0);
    check_uuid7(a, 0xffffffffffffLL);
    /* Later milliseconds sort later as text, whatever the random bits. */
    char prev[37];
    assert_int_equal(codec_uuid7(prev, base), 0);
    for (int64_t ms = base + 1; ms < base + 300; ms += 1 + (int64_t)(rng() % 5)) {
        char cur[37];
        assert_int_equal(codec_uuid7(cur, ms), 0);
        check_uuid7(cur, ms);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof(cur));
    }
    assert_int_equal(codec_uuid7(a, 255), 0);
    assert_int_equal(codec_uuid7(b, 256), 0);
    assert_true(strcmp(a, b) < 0);
}

/* --- FNV-1a --- */

static void test_fnv1a(void **state)
{
    (void)state;
    /* Published FNV-1a 64 test vectors. */
    assert_true(codec_fnv1a64("", 0, CODEC_FNV_INIT) == 0xcbf29ce484222325ULL);
    assert_true(codec_fnv1a64("a", 1, CODEC_FNV_INIT) == 0xaf63dc4c8601ec8cULL);
    assert_true(codec_fnv1a64("foobar", 6, CODEC_FNV_INIT) == 0x85944171f73967e8ULL);
    /* Incremental hashing equals one pass. */
    uint64_t h = codec_fnv1a64("foo", 3, CODEC_FNV_INIT);
    assert_true(codec_fnv1a64("bar", 3, h) == 0x85944171f73967e8ULL);
}

/* --- time --- */

static void expect_rfc3339(int64_t ms, const char *want)
{
    char out[32];
    int n = time_fmt_rfc3339(out, sizeof(out), ms);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_rfc3339(void **state)
{
    (void)state;
    expect_rfc3339(0, "1970-01-01T00:00:00.000Z");
    expect_rfc3339(1700000000123, "2023-11-14T22:13:20.123Z");
    expect_rfc3339(1709164800000, "2024-02-29T00:00:00.000Z");     /* leap day */
    expect_rfc3339(1709251199999, "2024-02-29T23:59:59.999Z");
    expect_rfc3339(1709251200000, "2024-03-01T00:00:00.000Z");
    expect_rfc3339(951782400000, "2000-02-29T00:00:00.000Z");      /* 400-year leap */
    expect_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    expect_rfc3339(-86400000, "1969-12-31T00:00:00.000Z");
    expect_rfc3339(253402300799999, "9999-12-31T23:59:59.999Z");
    char out[32];
    assert_int_equal(time_fmt_rfc3339(out, sizeof(out), 253402300800000), -1); /* year 10000 */
    assert_int_equal(time_fmt_rfc3339(out, 24, 0), -1);  /* no room for the NUL */
    assert_int_equal(time_fmt_rfc3339(out, 25, 0), 24);
}

static void expect_date(const char *s, int want)
{
    int rc = time_parse_date(s, strlen(s));
    if (rc != want)
        fail_msg("time_parse_date(\"%s\") = %d, want %d", s, rc, want);
}

static void test_parse_date(void **state)
{
    (void)state;
    expect_date("2024-02-29", 0);
    expect_date("2000-02-29", 0);
    expect_date("2024-12-31", 0);
    expect_date("2024-01-01", 0);
    expect_date("2023-02-29", ERR_PARSE);
    expect_date("1900-02-29", ERR_PARSE);
    expect_date("2024-02-30", ERR_PARSE);
    expect_date("2024-04-31", ERR_PARSE);
    expect_date("2024-13-01", ERR_PARSE);
    expect_date("2024-00-10", ERR_PARSE);
    expect_date("2024-01-00", ERR_PARSE);
    expect_date("2024-01-32", ERR_PARSE);
    expect_date("2024-1-01", ERR_PARSE);
    expect_date("2024-01-1", ERR_PARSE);
    expect_date("24-01-01", ERR_PARSE);
    expect_date("2024/01/01", ERR_PARSE);
    expect_date("2024-01-01T", ERR_PARSE);
    expect_date("2024-0a-01", ERR_PARSE);
    expect_date("+024-01-01", ERR_PARSE);
    expect_date("", ERR_PARSE);
    /* The length given is what counts. */
    assert_int_equal(time_parse_date("2024-02-29xyz", 10), 0);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t a = time_mono_ns(), b = time_mono_ns();
    assert_true(b >= a);
    int64_t w = time_wall_ms();
    assert_true(w > 1700000000000LL); /* after Nov 2023 */
}

/* --- mem --- */

static void test_mem_fail_after(void **state)
{
    (void)state;
    mem_fail_after(2);
    void *a = mem_malloc(8), *b = mem_calloc(2, 4), *c = mem_malloc(8);
    char *d = mem_strdup("x");
    void *e = mem_realloc(NULL, 8);
    mem_fail_after(-1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_null(d);
    assert_null(e);
    mem_free(a);
    mem_free(b);
    char *s = mem_strndup("hello", 3);
    assert_string_equal(s, "hel");
    mem_free(s);
}

/* --- errors --- */

static void test_err(void **state)
{
    (void)state;
    struct err_detail d;
    err_clear(&d);
    assert_string_equal(d.field, "");
    assert_string_equal(d.msg, "");
    assert_int_equal(err_set(&d, ERR_INVAL, "limit", "limit %d is over %s", 500, "200"),
                     ERR_INVAL);
    assert_string_equal(d.field, "limit");
    assert_string_equal(d.msg, "limit 500 is over 200");
    assert_int_equal(err_set(&d, ERR_NOTFOUND, NULL, "gone"), ERR_NOTFOUND);
    assert_string_equal(d.field, "");
    assert_int_equal(err_set(NULL, ERR_BUSY, "x", "y"), ERR_BUSY);
    /* Long details are truncated into the fixed buffers. */
    char longs[600];
    memset(longs, 'f', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    err_set(&d, ERR_RANGE, longs, "%s", longs);
    assert_int_equal(strlen(d.field), ERR_FIELD_LEN - 1);
    assert_int_equal(strlen(d.msg), ERR_MSG_LEN - 1);
    err_clear(&d);
    assert_string_equal(d.msg, "");
    err_clear(NULL);

    assert_string_equal(err_name(0), "ERR_OK");
    assert_string_equal(err_name(ERR_NOMEM), "ERR_NOMEM");
    assert_string_equal(err_name(ERR_NOTFOUND), "ERR_NOTFOUND");
    assert_string_equal(err_name(ERR_PRECOND), "ERR_PRECOND");
    assert_string_equal(err_name(ERR_REPLAY), "ERR_REPLAY");
    assert_string_equal(err_name(-999), "ERR_UNKNOWN");
    assert_string_equal(err_name(1), "ERR_UNKNOWN");
    assert_string_equal(err_str(ERR_NOTFOUND), "not found");
    assert_string_equal(err_str(-999), "unknown error");
    /* Every code from ERR_OK to ERR_REPLAY has a distinct name and a text. */
    for (int a = ERR_REPLAY; a <= 0; a++) {
        assert_string_not_equal(err_name(a), "ERR_UNKNOWN");
        assert_string_not_equal(err_str(a), "unknown error");
        assert_int_equal(strncmp(err_name(a), "ERR_", 4), 0);
        for (int b = a + 1; b <= 0; b++)
            assert_string_not_equal(err_name(a), err_name(b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_buf_cap_toobig_sticks),
        cmocka_unit_test(test_buf_i64_extremes),
        cmocka_unit_test(test_buf_printf_longer_than_256),
        cmocka_unit_test(test_buf_nomem),
        cmocka_unit_test(test_jw_escape),
        cmocka_unit_test(test_jw_nested_commas),
        cmocka_unit_test(test_jw_depth_cap),
        cmocka_unit_test(test_jw_num),
        cmocka_unit_test(test_jw_num_round_trip_random),
        cmocka_unit_test(test_jw_num_shortest_16_digits),
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_random_round_trip),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_pct_decode_rejects),
        cmocka_unit_test(test_pct_encode),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_uuid7),
        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_parse_date),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_mem_fail_after),
        cmocka_unit_test(test_err),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
