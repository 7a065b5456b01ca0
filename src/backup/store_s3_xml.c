/*
 * The S3 backend's bounded XML scanner: finds <Key>, <Size>,
 * <IsTruncated>, <NextContinuationToken>, <UploadId> and <Code> in a
 * response body of known length (at most 64 KiB, store_s3.c caps it),
 * without allocating and without reading outside the buffer. S3 escapes
 * '<' in text, so a tag search cannot be fooled by a key's content; a
 * malformed body gives ERR_PARSE, never a partial key. Fuzzed by
 * tests/fuzz/fuzz_s3_list.c.
 */
#include <stdint.h>
#include <string.h>

#include "backup/store_s3_int.h"
#include "core/err.h"

/* First occurrence of the n bytes of s in [p, e), or NULL. */
static const char *find(const char *p, const char *e, const char *s, size_t n)
{
    if (p >= e || (size_t)(e - p) < n)
        return NULL;
    return memmem(p, (size_t)(e - p), s, n);
}

/*
 * Finds the first <name>text</name> (store_s3_int.h). The closing tag is
 * searched after the opening one only, so nested or reversed tags fail.
 */
int backup__s3_xml_elem(const char *p, const char *e, const char *name,
                 const char **tb, const char **te)
{
    char open[64], close[64];
    size_t nl = strlen(name);
    if (nl + 4 > sizeof(open))
        return 0;
    open[0] = '<';
    memcpy(open + 1, name, nl);
    open[nl + 1] = '>';
    close[0] = '<';
    close[1] = '/';
    memcpy(close + 2, name, nl);
    close[nl + 2] = '>';
    const char *b = find(p, e, open, nl + 2);
    if (!b)
        return 0;
    b += nl + 2;
    const char *c = find(b, e, close, nl + 3);
    if (!c)
        return 0;
    *tb = b;
    *te = c;
    return 1;
}

/*
 * Copies the XML text [b, e) into out (cap bytes with the NUL), decoding
 * the five named entities and &#N; / &#xN; for N < 128 (S3 escapes only
 * those in keys and tokens). Returns the length, or -1 when it does not
 * fit, holds a NUL or control byte, or an entity we do not decode.
 */
long backup__s3_xml_text(const char *b, const char *e, char *out, size_t cap)
{
    static const struct { const char *s; char c; } ent[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''},
    };
    size_t n = 0;
    while (b < e) {
        char c = *b;
        if (c == '&') {
            size_t left = (size_t)(e - b), i, k = 0;
            for (i = 0; i < sizeof(ent) / sizeof(ent[0]); i++) {
                k = strlen(ent[i].s);
                if (left >= k && memcmp(b, ent[i].s, k) == 0)
                    break;
            }
            if (i < sizeof(ent) / sizeof(ent[0])) {
                c = ent[i].c;
                b += k;
            } else if (left >= 4 && b[1] == '#') {
                int hex = b[2] == 'x', base = hex ? 16 : 10;
                const char *q = b + 2 + hex;
                long v = 0;
                int digits = 0;
                for (; q < e && *q != ';' && digits < 4; q++, digits++) {
                    int dv = *q >= '0' && *q <= '9' ? *q - '0'
                           : hex && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
                           : hex && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;
                    if (dv < 0 || dv >= base)
                        return -1;
                    v = v * base + dv;
                }
                if (q >= e || *q != ';' || digits == 0 || v <= 0 || v >= 128)
                    return -1;
                c = (char)v;
                b = q + 1;
            } else {
                return -1;
            }
        } else {
            b++;
        }
        if ((unsigned char)c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return -1;
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return (long)n;
}

/* Parses a decimal uint64 from [b, e); 0 or -1. */
static int parse_u64(const char *b, const char *e, uint64_t *out)
{
    uint64_t v = 0;
    if (b >= e || e - b > 20)
        return -1;
    for (; b < e; b++) {
        if (*b < '0' || *b > '9')
            return -1;
        unsigned d = (unsigned)(*b - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/*
 * Parses one ListObjectsV2 page of len bytes (not NUL-terminated): calls
 * cb(arg, key, size) for each <Contents>, in order, with the decoded key;
 * sets *truncated from <IsTruncated> and copies <NextContinuationToken>
 * into token (cap bytes; "" when absent). Returns 0, cb's non-zero
 * return, or ERR_PARSE for a page that is not a list result, a Contents
 * without a usable Key or Size, a key over 1024 bytes, or a truncated
 * page without a token. Reads nothing outside [xml, xml+len).
 */
int backup__s3_xml_list(const char *xml, size_t len,
                 int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                 int *truncated, char *token, size_t cap)
{
    const char *p = xml, *e = xml + len, *tb, *te;
    char key[S3_KEY_MAX + 1];
    *truncated = 0;
    if (cap)
        token[0] = '\0';
    if (!find(p, e, "<ListBucketResult", 17))
        return ERR_PARSE;
    for (;;) {
        const char *cs = find(p, e, "<Contents>", 10);
        if (!cs)
            break;
        const char *ce = find(cs + 10, e, "</Contents>", 11);
        if (!ce)
            return ERR_PARSE;
        uint64_t size;
        if (!backup__s3_xml_elem(cs + 10, ce, "Key", &tb, &te) ||
            backup__s3_xml_text(tb, te, key, sizeof(key)) <= 0)
            return ERR_PARSE;
        if (!backup__s3_xml_elem(cs + 10, ce, "Size", &tb, &te) || parse_u64(tb, te, &size))
            return ERR_PARSE;
        int r = cb(arg, key, size);
        if (r)
            return r;
        p = ce + 11;
    }
    if (backup__s3_xml_elem(xml, e, "IsTruncated", &tb, &te))
        *truncated = te - tb == 4 && memcmp(tb, "true", 4) == 0;
    if (*truncated) {
        if (!backup__s3_xml_elem(xml, e, "NextContinuationToken", &tb, &te) ||
            backup__s3_xml_text(tb, te, token, cap) <= 0)
            return ERR_PARSE;
    }
    return 0;
}
