/*
 * Fuzz target: the decoders of outside-facing text in core/codec.c.
 *
 *  - codec_b64url_decode (cursors): arbitrary input; when it decodes, the
 *    decoder claims to be strict, so re-encoding must give the input back.
 *  - codec_pct_decode (paths, query strings), with and without plus_space:
 *    length and NUL contract of codec.h.
 *  - codec_utf8_valid: compared with an independent validator written from
 *    the RFC 3629 byte-range grammar.
 *  - round trips: b64url_encode -> decode and pct_encode -> decode (both
 *    modes) return the input.
 * Every property violation abort()s so libFuzzer reports it as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/mem.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_codec: property failed at line %d: %s\n",      \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* RFC 3629 section 4 (UTF8-octets grammar), plus "no NUL" as codec.h says. */
static int ref_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == 0x00)
            return 0;
        if (c <= 0x7f) {
            i++;
            continue;
        }
        unsigned char lo = 0x80, hi = 0xbf;
        size_t need;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c == 0xe0) {
            need = 2, lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            need = 2;
        } else if (c == 0xed) {
            need = 2, hi = 0x9f;
        } else if (c == 0xf0) {
            need = 3, lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else if (c == 0xf4) {
            need = 3, hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        /* Only the first continuation byte has a narrowed range. */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += need + 1;
    }
    return 1;
}

static void check_b64(const uint8_t *data, size_t size)
{
    /* 1. Decode the raw input as if it were a cursor. */
    size_t cap = size; /* decoded is at most 3/4 of the input */
    unsigned char *out = malloc(cap ? cap : 1);
    CHECK(out);
    long n = codec_b64url_decode((const char *)data, size, out, cap);
    CHECK(n >= -1 && (n < 0 || (size_t)n <= cap));
    if (n >= 0) {
        CHECK((size_t)n == size * 3 / 4);
        /* Strict decoder: what it accepts is exactly what encode produces. */
        struct buf b;
        buf_init(&b, size + 8);
        codec_b64url_encode(&b, out, (size_t)n);
        CHECK(!buf_err(&b));
        CHECK(b.len == size && (size == 0 || memcmp(b.p, data, size) == 0));
        buf_free(&b);
        /* With one byte less room it must refuse (overflow of out). */
        if (n > 0) {
            unsigned char *small = malloc((size_t)n - 1 ? (size_t)n - 1 : 1);
            CHECK(small);
            CHECK(codec_b64url_decode((const char *)data, size, small, (size_t)n - 1) == -1);
            free(small);
        }
    }
    free(out);

    /* 2. Round trip: encode the input, decode it back. */
    struct buf e;
    buf_init(&e, size * 2 + 16);
    codec_b64url_encode(&e, data, size);
    CHECK(!buf_err(&e));
    CHECK(e.len == (size * 4 + 2) / 3);
    unsigned char *dec = malloc(size ? size : 1);
    CHECK(dec);
    long m = codec_b64url_decode(e.p ? e.p : "", e.len, dec, size);
    CHECK(m == (long)size);
    CHECK(size == 0 || memcmp(dec, data, size) == 0);
    free(dec);
    buf_free(&e);
}

static void check_pct(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    int has_nul = memchr(data, 0, size) != NULL;

    /* 1. Decode the raw input in both modes. */
    for (int plus = 0; plus <= 1; plus++) {
        char *out = malloc(size + 1); /* codec.h: capacity >= n + 1 */
        CHECK(out);
        long n = codec_pct_decode(s, size, out, plus);
        CHECK(n >= -1 && (n < 0 || (size_t)n <= size));
        if (n >= 0) {
            CHECK(out[n] == '\0');
            CHECK(strlen(out) == (size_t)n); /* a decoded NUL is an error */
            CHECK(!has_nul);
            if (!memchr(data, '%', size) && !(plus && memchr(data, '+', size)))
                CHECK((size_t)n == size && memcmp(out, s, size) == 0);
        }
        free(out);
    }

    /* 2. Round trip: encode then decode (both modes) gives the input back,
       unless it holds a NUL, which the decoder refuses by contract. */
    struct buf e;
    buf_init(&e, size * 3 + 16);
    codec_pct_encode(&e, s, size);
    CHECK(!buf_err(&e));
    const char *enc = e.p ? e.p : "";
    for (size_t i = 0; i < e.len; i++) {
        unsigned char c = (unsigned char)enc[i];
        CHECK(c > 0x20 && c < 0x7f && c != '/' && c != '+' && c != '?' && c != '&' &&
              c != '=' && c != '#');
    }
    for (int plus = 0; plus <= 1; plus++) {
        char *out = malloc(e.len + 1);
        CHECK(out);
        long n = codec_pct_decode(enc, e.len, out, plus);
        if (has_nul) {
            CHECK(n == -1);
        } else {
            CHECK(n == (long)size);
            CHECK(memcmp(out, s, size) == 0);
        }
        free(out);
    }
    buf_free(&e);
}

static void check_utf8(const uint8_t *data, size_t size)
{
    int got = codec_utf8_valid((const char *)data, size);
    int want = ref_utf8_valid(data, size);
    if (got != want) {
        fprintf(stderr, "fuzz_codec: codec_utf8_valid=%d, RFC 3629 says %d\n", got, want);
        abort();
    }
    /* Every prefix that ends on a character boundary of valid text is valid. */
    if (got && size > 0) {
        size_t cut = size - 1;
        while (cut > 0 && (data[cut] & 0xc0) == 0x80)
            cut--;
        CHECK(codec_utf8_valid((const char *)data, cut) == 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The decoders take (pointer, length), not C strings: an exact-size heap
       copy lets ASan catch any read past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    check_b64(copy, size);
    check_pct(copy, size);
    check_utf8(copy, size);
    free(copy);
    return 0;
}
