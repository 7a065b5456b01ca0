/*
 * Streaming reader of the "samples" array of a benchmark run body: the
 * split of the body into the samples value and the rest (which jansson then
 * parses as before), and an iterator that parses and validates one sample
 * at a time with the rules of check_sample() in samples.c, without building
 * a tree and without allocating.
 *
 * DESIGN
 * The grammar is jansson's (load.c of jansson 2.14, which the server uses
 * with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL): whitespace is space, tab,
 * CR and LF; strings reject raw control characters, bad escapes, lone
 * surrogates and invalid UTF-8, and allow \u0000 except in member names;
 * numbers are -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and those with a
 * fraction or exponent are reals; every value, scalars included, counts one
 * level of nesting, and level 2049 is an error.
 *
 * The iterator reads a sample object with a hand-written fast path: member
 * names that are byte-for-byte one of the seven columns are recognised by
 * one memcmp, duplicates among them by a bit mask, and integers are
 * converted inline. Everything else (escaped names, unknown members, nested
 * values, elements that are not objects) goes through the general, slower
 * routines below; a sample that needs them is never valid, but its JSON
 * must still be checked completely, so that malformed JSON is ERR_PARSE as
 * with jansson. Duplicate names in nested objects and unknown members are
 * found with a small open-addressing table of names, emptied per sample by
 * a generation number instead of a memset.
 *
 * The split only scans the structure: it validates the member names at the
 * top level (it must decode them), commas and colons there, and the
 * nesting of brackets; the values are checked by jansson (the rest) and by
 * cat_samples_count (the samples value). A body is thus accepted as a whole
 * exactly when all three accept their part.
 */
#include "catalog/samples_scan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "catalog/record.h"

typedef unsigned char uchar;

static const char *const cols[CAT_SAMPLE_COLS] = {
    "scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns",
    "input_tokens", "output_tokens", "error",
};
static const uint8_t col_len[CAT_SAMPLE_COLS] = {12, 7, 14, 13, 12, 13, 5};
#define NULLABLE ((1u << 2) | (1u << 3) | (1u << 6))
#define ELEM_DEPTH 3   /* body object 1, samples array 2, a sample 3 */

/* --- lexical pieces, shared by the split and the iterator --- */

static inline const uchar *ws(const uchar *p, const uchar *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline int is_digit(unsigned c)
{
    return c - '0' <= 9u;
}

/* In strings: 0 plain ASCII, 1 '"', 2 '\\', 3 control, 4 not ASCII. */
static uchar str_class[256];
/* In the structural scan: 1 for '"', '[', ']', '{', '}'. */
static uchar split_class[256];
/* Ends a scalar in the structural scan: whitespace and , : [ ] { } ". */
static uchar scalar_end[256];

__attribute__((constructor)) static void init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        str_class[c] = c < 0x20 ? 3 : c >= 0x80 ? 4 : c == '"' ? 1 : c == '\\' ? 2 : 0;
        split_class[c] = c == '"' || c == '[' || c == ']' || c == '{' || c == '}';
        scalar_end[c] = split_class[c] || c == ',' || c == ':' || c == ' ' ||
                        c == '\t' || c == '\n' || c == '\r';
    }
}

/*
 * Length of the UTF-8 sequence at p that jansson accepts (utf8_check_first
 * and utf8_check_full: no overlong forms, no surrogates, at most U+10FFFF),
 * or 0.
 */
static size_t utf8_seq(const uchar *p, const uchar *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

/* Value of the 4 hex digits at p (which must have 4 bytes), or -1. */
static long hex4(const uchar *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (c | 0x20) - 'a' + 10;
        else
            return -1;
    }
    return v;
}

/* Encodes cp (a scalar value) as UTF-8 into out; returns the length. */
static int utf8_put(uint32_t cp, uchar out[4])
{
    if (cp < 0x80) {
        out[0] = (uchar)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uchar)(0xc0 | cp >> 6);
        out[1] = (uchar)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uchar)(0xe0 | cp >> 12);
        out[1] = (uchar)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uchar)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uchar)(0xf0 | cp >> 18);
    out[1] = (uchar)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uchar)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uchar)(0x80 | (cp & 0x3f));
    return 4;
}

/* A decoded string: its length, FNV-1a hash, and what it contained. */
struct str_out {
    size_t len;
    uint32_t hash;
    int esc;   /* it had escapes: the decoded bytes differ from the raw ones */
    int nul;   /* it contains a NUL byte (\u0000) */
};

#define FNV32_INIT 2166136261u

static inline void put(struct str_out *o, char *dst, size_t cap, unsigned b)
{
    if (o->len < cap)
        dst[o->len] = (char)b;
    o->len++;
    o->hash = (o->hash ^ b) * 16777619u;
}

/* Decodes the escape at p (a backslash) into o; returns the bytes read, 0 if bad. */
static size_t str_escape(const uchar *p, const uchar *end, char *dst, size_t cap,
                         struct str_out *o)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    if (end - p < 2)
        return 0;
    o->esc = 1;
    if (p[1] != 'u') {
        for (const char *s = simple; *s; s += 2) {
            if (p[1] == (uchar)s[0]) {
                put(o, dst, cap, (uchar)s[1]);
                return 2;
            }
        }
        return 0;
    }
    long cp = end - p >= 6 ? hex4(p + 2) : -1;
    size_t used = 6;
    if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
        return 0;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return 0;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        used = 12;
    }
    uchar u[4];
    int k = utf8_put((uint32_t)cp, u);
    for (int i = 0; i < k; i++)
        put(o, dst, cap, u[i]);
    o->nul |= cp == 0;
    return used;
}

/*
 * Checks and decodes the string whose opening quote is at *pp: the first
 * cap decoded bytes go to dst, the rest is counted in o->len. Returns NULL
 * with *pp after the closing quote, or the fault with *pp at it.
 */
static const char *scan_str(const uchar **pp, const uchar *end, char *dst, size_t cap,
                            struct str_out *o)
{
    const uchar *p = *pp + 1;
    o->len = 0;
    o->hash = FNV32_INIT;
    o->esc = o->nul = 0;
    for (;;) {
        if (p >= end)
            return "unterminated string";
        unsigned c = *p;
        switch (str_class[c]) {
        case 0:
            put(o, dst, cap, c);
            p++;
            continue;
        case 1:
            *pp = p + 1;
            return NULL;
        case 2: {
            size_t k = str_escape(p, end, dst, cap, o);
            if (!k) {
                *pp = p;
                return "invalid escape";
            }
            p += k;
            continue;
        }
        case 3:
            *pp = p;
            return "control character in string";
        default: {
            size_t k = utf8_seq(p, end);
            if (!k) {
                *pp = p;
                return "invalid UTF-8";
            }
            for (size_t i = 0; i < k; i++)
                put(o, dst, cap, p[i]);
            p += k;
        }
        }
    }
}

/* Reads the decoded bytes of a checked string, one at a time. */
struct dec {
    const uchar *p, *end;
    uchar pend[4];
    int npend, ipend;
};

/* The next decoded byte, or -1 at the end. */
static int dec_next(struct dec *s)
{
    if (s->ipend < s->npend)
        return s->pend[s->ipend++];
    if (s->p >= s->end)
        return -1;
    struct str_out o = {0, 0, 0, 0};
    size_t k = *s->p == '\\' ? str_escape(s->p, s->end, (char *)s->pend, 4, &o) : 0;
    if (!k) /* plain; an escape is never bad here (the string was checked) */
        return *s->p++;
    s->p += k;
    s->npend = (int)o.len;
    s->ipend = 1;
    return s->pend[0];
}

/* Decodes the first cap bytes of the checked raw string [p, p+n) into out. */
static size_t dec_prefix(const uchar *p, size_t n, char *out, size_t cap)
{
    struct dec s = {p, p + n, {0}, 0, 0};
    size_t len = 0;
    int b;
    while (len < cap && (b = dec_next(&s)) >= 0)
        out[len++] = (char)b;
    return len;
}

/*
 * Checks the number at *pp. Returns NULL with *pp after it and *ok set when
 * it is an integer in 0..INT64_MAX (its value in *v; "-0" is 0 as with
 * strtoll), or the fault.
 */
static const char *scan_number(const uchar **pp, const uchar *end, int64_t *v, int *ok)
{
    const uchar *p = *pp;
    int neg = 0, big = 0;
    uint64_t acc = 0;
    if (p < end && *p == '-')
        neg = 1, p++;
    if (p >= end || !is_digit(*p))
        return "invalid number";
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return "invalid number";
    } else {
        for (; p < end && is_digit(*p); p++) {
            unsigned dg = *p - '0';
            if (acc > ((uint64_t)INT64_MAX - dg) / 10)
                big = 1;
            else if (!big)
                acc = acc * 10 + dg;
        }
    }
    int real = 0;
    if (p < end && *p == '.') {
        if (++p >= end || !is_digit(*p))
            return "invalid number";
        while (p < end && is_digit(*p))
            p++;
        real = 1;
    }
    if (p < end && (*p | 0x20) == 'e') {
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return "invalid number";
        while (p < end && is_digit(*p))
            p++;
        real = 1;
    }
    *pp = p;
    *ok = !real && !big && (!neg || acc == 0);
    *v = *ok ? (int64_t)acc : 0;
    return NULL;
}

/* Checks the literal (true, false, null) at *pp; NULL or the fault. */
static const char *scan_literal(const uchar **pp, const uchar *end)
{
    const uchar *p = *pp;
    const char *w = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
    size_t n = strlen(w);
    if ((size_t)(end - p) < n || memcmp(p, w, n) != 0)
        return "invalid token";
    *pp = p + n;
    return NULL;
}

/* --- the iterator's general routines --- */

/* Fails the scan with ERR_PARSE at byte `at` of the span. */
static int perr(struct cat_sample_iter *it, const uchar *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct cat_sample_iter *it, const uchar *at, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return err_set(it->d, ERR_PARSE, NULL, "malformed JSON at byte %zu of samples: %s",
                   (size_t)(at - it->base), what);
}

/* 1 when the checked raw names a and b decode to the same bytes. */
static int names_equal(const uchar *a, size_t an, int aesc, const uchar *b, size_t bn,
                       int besc)
{
    if (!aesc && !besc)
        return an == bn && memcmp(a, b, an) == 0;
    struct dec x = {a, a + an, {0}, 0, 0}, y = {b, b + bn, {0}, 0, 0};
    for (;;) {
        int cx = dec_next(&x), cy = dec_next(&y);
        if (cx != cy)
            return 0;
        if (cx < 0)
            return 1;
    }
}

/*
 * Records the raw name [raw, raw+n) of object obj. Returns 1 when that
 * object already has a member of that (decoded) name, else 0. Beyond half
 * of the table's slots per sample, names are no longer recorded.
 */
static int name_seen(struct cat_sample_iter *it, uint32_t obj, const uchar *raw, size_t n,
                     const struct str_out *o)
{
    if (it->nnames >= CAT_SCAN_NAMES / 2 || n > 0x7fffffff)
        return 0;
    for (uint32_t i = o->hash;; i++) {
        struct cat_scan_name *e = &it->names[i % CAT_SCAN_NAMES];
        if (e->obj < it->gen) {
            e->obj = obj;
            e->off = (size_t)(raw - it->base);
            e->len = (uint32_t)n | (uint32_t)o->esc << 31;
            e->hash = o->hash;
            it->nnames++;
            return 0;
        }
        if (e->obj == obj && e->hash == o->hash &&
            names_equal(it->base + e->off, e->len & 0x7fffffff, (int)(e->len >> 31), raw, n,
                        o->esc))
            return 1;
    }
}

/*
 * Reads a member name of object obj at *pp, its colon and the whitespace
 * after it; *pp ends at the value. Returns 0 or ERR_PARSE (not a string,
 * malformed, NUL in the name, a duplicate, no colon).
 */
static int member_name(struct cat_sample_iter *it, const uchar **pp, uint32_t obj)
{
    const uchar *p = *pp, *q = p;
    struct str_out o;
    char name[64];
    const char *why;
    if (p >= it->end || *p != '"')
        return perr(it, p, "string or '}' expected");
    if ((why = scan_str(&q, it->end, name, sizeof(name), &o)))
        return perr(it, q, "%s", why);
    if (o.nul)
        return perr(it, p, "NUL byte in member name");
    if (name_seen(it, obj, p + 1, (size_t)(q - p) - 2, &o))
        return perr(it, p, "duplicate member '%.*s'", (int)(o.len < 64 ? o.len : 64), name);
    q = ws(q, it->end);
    if (q >= it->end || *q != ':')
        return perr(it, q, "':' expected");
    *pp = ws(q + 1, it->end);
    return 0;
}

/* Checks one scalar at *pp; 0 with *pp after it, or ERR_PARSE. */
static int skip_scalar(struct cat_sample_iter *it, const uchar **pp)
{
    const uchar *p = *pp;
    const char *why;
    int64_t v;
    int ok;
    if (p >= it->end)
        return perr(it, p, "value expected");
    switch (*p) {
    case '"': {
        struct str_out o;
        why = scan_str(pp, it->end, NULL, 0, &o);
        break;
    }
    case 't':
    case 'f':
    case 'n':
        why = scan_literal(pp, it->end);
        break;
    default:
        why = *p == '-' || is_digit(*p) ? scan_number(pp, it->end, &v, &ok)
                                           : "invalid token";
    }
    return why ? perr(it, *pp, "%s", why) : 0;
}

/*
 * Checks the value at *pp, of nesting depth `depth`, completely (syntax,
 * depth, duplicate and NUL member names) without recursion: it->obj[] is
 * the stack of open containers. Returns 0 with *pp after it, or ERR_PARSE.
 */
static int skip_value(struct cat_sample_iter *it, const uchar **pp, unsigned depth)
{
    const uchar *p = *pp, *end = it->end;
    const unsigned base = depth;
    int rc;
    for (;;) {
        if (depth > CAT_SCAN_MAX_DEPTH)
            return perr(it, p, "nesting deeper than %d", CAT_SCAN_MAX_DEPTH);
        if (p < end && (*p == '{' || *p == '[')) {
            uint32_t o = *p == '{' ? it->next_obj++ : 0;
            it->obj[depth] = o;
            p = ws(p + 1, end);
            if (p < end && *p == (o ? '}' : ']')) {
                p++;
            } else {
                if (o && (rc = member_name(it, &p, o)))
                    return rc;
                depth++;
                continue;
            }
        } else if ((rc = skip_scalar(it, &p))) {
            return rc;
        }
        /* A value at `depth` ended at p: close what it completes. */
        for (;;) {
            if (depth == base) {
                *pp = p;
                return 0;
            }
            uint32_t o = it->obj[depth - 1];
            p = ws(p, end);
            if (p < end && *p == ',') {
                p = ws(p + 1, end);
                if (o && (rc = member_name(it, &p, o)))
                    return rc;
                break;
            }
            if (p >= end || *p != (o ? '}' : ']'))
                return perr(it, p, o ? "',' or '}' expected" : "',' or ']' expected");
            p++;
            depth--;
        }
    }
}

/* --- one sample --- */

/* What parsing one element found, for the checks in column order. */
struct elem {
    int is_obj;
    unsigned present, nulls, bad;    /* bit c: column c */
    const uchar *unk;                /* the first unknown member's raw name, or NULL */
    size_t unk_len;
};

/* Parses the value of integer column c at *pp into s->v[c] and e. */
static inline int int_value(struct cat_sample_iter *it, const uchar **pp, int c,
                            struct cat_sample *s, struct elem *e)
{
    const uchar *p = *pp, *end = it->end;
    unsigned ch = p < end ? *p : 0;
    if (ch - '1' <= 8u) {
        /* Fast path: up to 18 digits (no overflow), then a delimiter. */
        const uchar *q = p, *lim = end - p > 18 ? p + 18 : end;
        uint64_t acc = 0;
        while (q < lim && is_digit(*q))
            acc = acc * 10 + (*q++ - '0');
        if (q == end || (!is_digit(*q) && *q != '.' && (*q | 0x20) != 'e')) {
            s->v[c] = (int64_t)acc;
            *pp = q;
            return 0;
        }
    }
    if (ch == '-' || ch - '0' <= 9u) {
        int ok;
        const char *why = scan_number(pp, end, &s->v[c], &ok);
        if (why)
            return perr(it, p, "%s", why);
        e->bad |= ok ? 0 : 1u << c;
        return 0;
    }
    if (ch == 'n') {
        if (scan_literal(pp, end))
            return perr(it, p, "invalid token");
        e->nulls |= 1u << c;
        return 0;
    }
    e->bad |= 1u << c;
    return skip_value(it, pp, ELEM_DEPTH + 1);
}

/* Parses the value of the error column at *pp into s and e. */
static int error_value(struct cat_sample_iter *it, const uchar **pp, struct cat_sample *s,
                       struct elem *e)
{
    const uchar *p = *pp;
    if (p < it->end && *p == '"') {
        struct str_out o;
        const char *why = scan_str(pp, it->end, s->errbuf, CAT_SAMPLE_ERROR_MAX, &o);
        if (why)
            return perr(it, *pp, "%s", why);
        s->error = o.esc ? s->errbuf : (const char *)p + 1;
        s->error_len = o.len;
        if (o.len > CAT_SAMPLE_ERROR_MAX || chk_printable(s->error, o.len))
            e->bad |= 1u << 6;
        return 0;
    }
    if (p < it->end && *p == 'n') {
        if (scan_literal(pp, it->end))
            return perr(it, p, "invalid token");
        e->nulls |= 1u << 6;
        return 0;
    }
    e->bad |= 1u << 6;
    return skip_value(it, pp, ELEM_DEPTH + 1);
}

/* Column whose name, followed by its closing quote, starts at p; else -1. */
static inline int fast_col(const uchar *p, const uchar *end)
{
    int c;
    if (end - p < 16)
        return -1;
    switch (p[0]) {
    case 's': c = p[1] == 'c' ? 0 : 1; break;
    case 'f': c = 2; break;
    case 'l': c = 3; break;
    case 'i': c = 4; break;
    case 'o': c = 5; break;
    case 'e': c = 6; break;
    default: return -1;
    }
    return memcmp(p, cols[c], col_len[c]) == 0 && p[col_len[c]] == '"' ? c : -1;
}

/*
 * Reads a member name of the sample object at *pp (at its quote) and
 * returns its column (0..6), 7 for another name, or ERR_PARSE; *pp ends
 * after the closing quote. *obj is the object's id, taken when first needed.
 */
static int sample_name(struct cat_sample_iter *it, const uchar **pp, uint32_t *obj,
                       struct elem *e)
{
    const uchar *p = *pp;
    int c = fast_col(p + 1, it->end);
    if (c >= 0) {
        *pp = p + 2 + col_len[c];
        return c;
    }
    struct str_out o;
    char name[16];
    const char *why = scan_str(pp, it->end, name, sizeof(name), &o);
    if (why)
        return perr(it, *pp, "%s", why);
    if (o.nul)
        return perr(it, p, "NUL byte in member name");
    for (c = 0; c < CAT_SAMPLE_COLS; c++)
        if (o.len == col_len[c] && memcmp(name, cols[c], o.len) == 0)
            return c;
    size_t n = (size_t)(*pp - p) - 2;
    if (!*obj)
        *obj = it->next_obj++;
    if (name_seen(it, *obj, p + 1, n, &o)) {
        char full[64];
        size_t k = dec_prefix(p + 1, n, full, sizeof(full));
        return perr(it, p, "duplicate member '%.*s'", (int)k, full);
    }
    if (!e->unk) {
        e->unk = p + 1;
        e->unk_len = n;
    }
    return CAT_SAMPLE_COLS;
}

/* Parses the sample object at *pp into s and e; 0 or ERR_PARSE. */
static int parse_object(struct cat_sample_iter *it, const uchar **pp, struct cat_sample *s,
                        struct elem *e)
{
    const uchar *p = ws(*pp + 1, it->end), *end = it->end;
    uint32_t obj = 0;
    int rc;
    e->is_obj = 1;
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    for (;;) {
        if (p >= end || *p != '"')
            return perr(it, p, "string or '}' expected");
        const uchar *name = p;
        int c = sample_name(it, &p, &obj, e);
        if (c < 0)
            return c;
        if (c < CAT_SAMPLE_COLS) {
            if (e->present & (1u << c))
                return perr(it, name, "duplicate member '%s'", cols[c]);
            e->present |= 1u << c;
        }
        p = ws(p, end);
        if (p >= end || *p != ':')
            return perr(it, p, "':' expected");
        p = ws(p + 1, end);
        rc = c < 6 ? int_value(it, &p, c, s, e)
           : c == 6 ? error_value(it, &p, s, e)
                    : skip_value(it, &p, ELEM_DEPTH + 1);
        if (rc)
            return rc;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            *pp = p + 1;
            return 0;
        }
        return perr(it, p, "',' or '}' expected");
    }
}

/*
 * Parses the element at it->p and the delimiter after it (',' or the end
 * of the array, which must end the span); 0 or ERR_PARSE.
 */
static int parse_element(struct cat_sample_iter *it, struct cat_sample *s, struct elem *e)
{
    const uchar *p = it->p, *end = it->end;
    int rc;
    if (it->next_obj > 0xf0000000u) { /* ids would wrap: empty the table */
        memset(it->names, 0, sizeof(it->names));
        it->next_obj = 1;
    }
    it->gen = it->next_obj;
    it->nnames = 0;
    memset(e, 0, sizeof(*e));
    if (p < end && *p == '{')
        rc = parse_object(it, &p, s, e);
    else
        rc = skip_value(it, &p, ELEM_DEPTH);
    if (rc)
        return rc;
    p = ws(p, end);
    if (p < end && *p == ',') {
        p = ws(p + 1, end);
        if (p >= end || *p == ']')
            return perr(it, p, "value expected");
    } else if (p < end && *p == ']') {
        if ((p = ws(p + 1, end)) != end)
            return perr(it, p, "end of input expected");
        it->rc = 1;
    } else {
        return perr(it, p, "',' or ']' expected");
    }
    it->p = p;
    return 0;
}

/* The error of column c of samples[i], as sample_error() in samples.c. */
static int col_error(struct err_detail *d, size_t i, int c, const char *what)
{
    char field[ERR_FIELD_LEN];
    snprintf(field, sizeof(field), "samples[%zu].%s", i, cols[c]);
    return err_set(d, ERR_INVAL, field, "%s %s", field, what);
}

/* check_sample()'s verdict on a parsed element: 0 (s completed) or ERR_INVAL. */
static int verdict(const struct elem *e, size_t i, struct cat_sample *s,
                   struct err_detail *d)
{
    if (!e->is_obj)
        return err_set(d, ERR_INVAL, "samples", "samples[%zu] must be an object", i);
    for (int c = 0; c < CAT_SAMPLE_COLS; c++) {
        unsigned bit = 1u << c;
        if (!(e->present & bit) || (e->nulls & bit)) {
            if (!(NULLABLE & bit))
                return col_error(d, i, c, "is required");
        } else if (e->bad & bit) {
            return col_error(d, i, c, c == 6 ? "must be a string of at most 1024 characters"
                                             : "must be an integer >= 0");
        }
    }
    if (e->unk) {
        char k[64], field[ERR_FIELD_LEN];
        size_t n = dec_prefix(e->unk, e->unk_len, k, sizeof(k));
        snprintf(field, sizeof(field), "samples[%zu].%.*s", i, (int)(n < 24 ? n : 24), k);
        return err_set(d, ERR_INVAL, field, "unknown field '%.*s'", (int)n, k);
    }
    s->nulls = (~e->present | e->nulls) & NULLABLE;
    if (s->nulls & (1u << 2))
        s->v[2] = 0;
    if (s->nulls & (1u << 3))
        s->v[3] = 0;
    if (s->nulls & (1u << 6)) {
        s->error = NULL;
        s->error_len = 0;
    }
    return 0;
}

/* --- the iterator's interface --- */

int cat_samples_begin(struct cat_sample_iter *it, const char *span, size_t n,
                      struct err_detail *d)
{
    it->base = (const uchar *)(span ? span : "");
    it->end = it->base + (span ? n : 0);
    it->d = d;
    it->index = 0;
    it->rc = 1;
    it->next_obj = 1;
    it->gen = 1;
    it->nnames = 0;
    memset(it->names, 0, sizeof(it->names));
    const uchar *p = ws(it->base, it->end), *v = p;
    if (!span) /* absent */
        return 0;
    if (p == it->end)
        return it->rc = perr(it, p, "value expected");
    if (*p == '[') {
        p = ws(p + 1, it->end);
        if (p < it->end && *p == ']') {
            p = ws(p + 1, it->end);
            if (p != it->end)
                return it->rc = perr(it, p, "end of input expected");
            return 0;
        }
        if (p == it->end)
            return it->rc = perr(it, p, "unterminated array");
        it->p = p;
        it->rc = 0;
        return 0;
    }
    int rc = skip_value(it, &p, ELEM_DEPTH - 1);
    if (!rc && (p = ws(p, it->end)) != it->end)
        rc = perr(it, p, "end of input expected");
    if (!rc && !(v[0] == 'n' && it->end - v >= 4 && memcmp(v, "null", 4) == 0))
        rc = err_set(d, ERR_INVAL, "samples", "samples must be an array");
    it->rc = rc ? rc : 1; /* null: no samples */
    return rc;
}

int cat_samples_next(struct cat_sample_iter *it, struct cat_sample *s, struct err_detail *d)
{
    struct elem e;
    if (it->rc)
        return it->rc > 0 ? 0 : it->rc;
    it->d = d;
    int rc = parse_element(it, s, &e);
    if (!rc)
        rc = verdict(&e, it->index++, s, d);
    if (rc) {
        it->rc = rc;
        return rc;
    }
    return 1;
}

int cat_samples_count(const char *span, size_t n, size_t *count, struct err_detail *d)
{
    struct cat_sample_iter it;
    struct cat_sample s;
    struct elem e;
    *count = 0;
    int rc = cat_samples_begin(&it, span, n, d);
    while (!rc && !it.rc) {
        if (!(rc = parse_element(&it, &s, &e)))
            (*count)++;
    }
    return rc;
}

/* --- the split --- */

static int split_err(const uchar *body, const uchar *at, struct err_detail *d,
                     const char *why)
{
    return err_set(d, ERR_PARSE, NULL, "malformed JSON at byte %zu: %s",
                   (size_t)(at - body), why);
}

/* Skips a string at *pp structurally (escapes, no control characters). */
static const char *split_string(const uchar **pp, const uchar *end)
{
    const uchar *p = *pp + 1;
    for (;;) {
        while (p < end && str_class[*p] != 1 && str_class[*p] != 2 && str_class[*p] != 3)
            p++;
        if (p >= end)
            return "unterminated string";
        if (*p == '"') {
            *pp = p + 1;
            return NULL;
        }
        if (*p < 0x20) {
            *pp = p;
            return "control character in string";
        }
        if (end - p < 2)
            return "unterminated string";
        p += 2;
    }
}

/*
 * Skips the value at *pp (depth 2: a member of the body) by its structure:
 * strings, matching brackets up to jansson's depth, and scalars as runs of
 * bytes up to a delimiter. Returns 0 with *pp after it, or ERR_PARSE.
 */
static int split_value(const uchar *body, const uchar **pp, const uchar *end,
                       struct err_detail *d)
{
    uint8_t is_obj[CAT_SCAN_MAX_DEPTH / 8 + 1];
    const uchar *p = *pp;
    const char *why;
    unsigned depth = 2;
    if (p < end && *p == '"') {
        if ((why = split_string(&p, end)))
            return split_err(body, p, d, why);
        *pp = p;
        return 0;
    }
    if (p >= end || (*p != '{' && *p != '[')) {
        while (p < end && !scalar_end[*p])
            p++;
        if (p == *pp)
            return split_err(body, p, d, "value expected");
        *pp = p;
        return 0;
    }
    for (;;) {
        if (p >= end)
            return split_err(body, *pp, d, "unterminated array or object");
        unsigned c = *p;
        if (c == '{' || c == '[') {
            if (depth > CAT_SCAN_MAX_DEPTH)
                return split_err(body, p, d, "nesting too deep");
            if (c == '{')
                is_obj[depth >> 3] |= (uint8_t)(1u << (depth & 7));
            else
                is_obj[depth >> 3] &= (uint8_t)~(1u << (depth & 7));
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            depth--;
            if ((c == '}') != ((is_obj[depth >> 3] >> (depth & 7)) & 1u))
                return split_err(body, p, d, "mismatched bracket");
            p++;
            if (depth == 2) {
                *pp = p;
                return 0;
            }
        } else if (c == '"') {
            if ((why = split_string(&p, end)))
                return split_err(body, p, d, why);
        } else {
            p++;
            while (p < end && !split_class[*p])
                p++;
        }
    }
}

int cat_json_split(const char *body, size_t n, const char *key, struct buf *rest,
                   const char **span, size_t *span_len, struct err_detail *d)
{
    const uchar *b = (const uchar *)body, *end = b + n, *p;
    const uchar *comma = NULL, *cut0 = NULL, *cut1 = NULL, *v0 = NULL, *v1 = NULL;
    size_t klen = strlen(key);
    int pending = 0, rc;
    char name[256];
    *span = NULL;
    *span_len = 0;
    if (klen >= sizeof(name))
        return err_set(d, ERR_INVAL, NULL, "member name too long");
    p = ws(b, end);
    if (p >= end || *p != '{')
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        p++;
    else
        for (;;) {
            const uchar *k = p, *v;
            struct str_out o;
            const char *why;
            if (p >= end || *p != '"')
                return split_err(b, p, d, "string or '}' expected");
            if ((why = scan_str(&p, end, name, sizeof(name), &o)))
                return split_err(b, p, d, why);
            p = ws(p, end);
            if (p >= end || *p != ':')
                return split_err(b, p, d, "':' expected");
            p = v = ws(p + 1, end);
            if ((rc = split_value(b, &p, end, d)))
                return rc;
            if (o.len == klen && memcmp(name, key, klen) == 0) {
                if (v0)
                    return err_set(d, ERR_PARSE, NULL, "duplicate member '%.64s'", key);
                v0 = v;
                v1 = p;
                cut0 = comma ? comma : k;
                cut1 = p;
                pending = !comma;
            }
            p = ws(p, end);
            if (p < end && *p == ',') {
                if (pending)
                    cut1 = p + 1, pending = 0;
                comma = p;
                p = ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return split_err(b, p, d, "',' or '}' expected");
        }
    if ((p = ws(p, end)) != end)
        return split_err(b, p, d, "end of input expected");
    if (v0) {
        buf_append(rest, b, (size_t)(cut0 - b));
        buf_append(rest, cut1, (size_t)(end - cut1));
    } else {
        buf_append(rest, b, n);
    }
    if (buf_err(rest))
        return err_set(d, buf_err(rest), NULL, "the body is too large");
    *span = (const char *)v0;
    *span_len = v0 ? (size_t)(v1 - v0) : 0;
    return 0;
}
