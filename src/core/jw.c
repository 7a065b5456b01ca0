/*
 * Streaming JSON writer (see jw.h). Strings are escaped per RFC 8259;
 * bytes >= 0x80 are copied through, so the caller must pass valid UTF-8
 * (everything we store was validated as UTF-8 on the way in).
 */
#include "core/jw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w, struct buf *b)
{
    w->b = b;
    w->depth = 0;
    w->first[0] = 1;
}

/* Before a value or key at the current level: a comma unless first. */
static void sep(struct jw *w)
{
    if (w->depth > 0 && !w->first[w->depth])
        buf_putc(w->b, ',');
    w->first[w->depth] = 0;
}

static void nest_open(struct jw *w, char c)
{
    sep(w);
    buf_putc(w->b, c);
    if (w->depth + 1 < JW_DEPTH) {
        w->depth++;
        w->first[w->depth] = 1;
    } else {
        w->b->err = ERR_TOOBIG;
    }
}

static void nest_close(struct jw *w, char c)
{
    buf_putc(w->b, c);
    if (w->depth > 0)
        w->depth--;
}

void jw_obj_open(struct jw *w) { nest_open(w, '{'); }
void jw_obj_close(struct jw *w) { nest_close(w, '}'); }
void jw_arr_open(struct jw *w) { nest_open(w, '['); }
void jw_arr_close(struct jw *w) { nest_close(w, ']'); }

void jw_key(struct jw *w, const char *key)
{
    sep(w);
    /* Keys are our own identifiers: nothing to escape. */
    size_t n = strlen(key);
    char *d = buf_reserve(w->b, n + 3);
    if (d) {
        d[0] = '"';
        memcpy(d + 1, key, n);
        d[n + 1] = '"';
        d[n + 2] = ':';
        w->b->len += n + 3;
        w->b->p[w->b->len] = '\0';
    }
    /* The value that follows must not write a separator. */
    w->first[w->depth] = 1;
}

/* 1 for bytes that must be escaped, or (>= 0x80) checked as UTF-8. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, ['\\'] = 1,
    [0x80 ... 0xff] = 1,
};

/* Length (2..4) of the valid UTF-8 sequence at s, or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if ((s[0] & 0xe0) == 0xc0) { len = 2; cp = s[0] & 0x1f; }
    else if ((s[0] & 0xf0) == 0xe0) { len = 3; cp = s[0] & 0x0f; }
    else if ((s[0] & 0xf8) == 0xf0) { len = 4; cp = s[0] & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * Length of the prefix of s that needs no escaping. Tests 8 bytes at a time
 * for a byte < 0x20, '"' or '\\' (the classic haszero/hasless word tricks;
 * a hit only sends that word to the byte loop), since strings are most of
 * every response.
 */
static size_t plain_prefix(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v, q, bs;
        memcpy(&v, s + i, 8);
        q = v ^ (ones * '"');
        bs = v ^ (ones * '\\');
        uint64_t ctl = (v - ones * 0x20) & ~v & highs;  /* some byte < 0x20 */
        uint64_t quo = (q - ones) & ~q & highs;          /* some byte == '"' */
        uint64_t bsl = (bs - ones) & ~bs & highs;        /* some byte == '\\' */
        if (ctl | quo | bsl | (v & highs))               /* ... or non-ASCII */
            break;
    }
    while (i < n && !needs_escape[(unsigned char)s[i]])
        i++;
    return i;
}

void jw_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = plain_prefix(s, n);
    if (k == n) { /* the common case: copy in one go */
        char *d = buf_reserve(b, n + 2);
        if (d) {
            d[0] = '"';
            memcpy(d + 1, s, n);
            d[n + 1] = '"';
            b->len += n + 2;
            b->p[b->len] = '\0';
        }
        return;
    }
    buf_putc(b, '"');
    size_t run = 0; /* start of the current run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t len = utf8_seq((const unsigned char *)s + i, n - i);
            if (len) {
                i += len - 1;
                continue;
            }
            /* Not UTF-8 (text cut mid-character, raw bytes from a client):
               U+FFFD keeps the document valid JSON. */
            buf_append(b, s + run, i - run);
            buf_append(b, "\\ufffd", 6);
            run = i + 1;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u'; e[2] = '0'; e[3] = '0';
            e[4] = hex[c >> 4]; e[5] = hex[c & 15];
            en = 6;
        }
        buf_append(b, e, en);
    }
    buf_append(b, s + run, n - run);
    buf_putc(b, '"');
}

void jw_str(struct jw *w, const char *s, size_t n)
{
    sep(w);
    jw_escape(w->b, s, n);
}

void jw_cstr(struct jw *w, const char *s)
{
    if (s)
        jw_str(w, s, strlen(s));
    else
        jw_null(w);
}

void jw_i64(struct jw *w, int64_t v)
{
    sep(w);
    buf_i64(w->b, v);
}

int jw_fmt_double(char *out, size_t outlen, double v)
{
    if (!isfinite(v))
        return snprintf(out, outlen, "null");
    /* Integers up to 2^53 print without exponent or fraction. */
    if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v)
        return snprintf(out, outlen, "%lld", (long long)v);
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}

void jw_num(struct jw *w, double v)
{
    char tmp[40];
    int n = jw_fmt_double(tmp, sizeof(tmp), v);
    sep(w);
    buf_append(w->b, tmp, (size_t)n);
}

void jw_bool(struct jw *w, int v)
{
    sep(w);
    buf_puts(w->b, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
    sep(w);
    buf_puts(w->b, "null");
}

void jw_raw(struct jw *w, const char *json, size_t n)
{
    sep(w);
    buf_append(w->b, json, n);
}
