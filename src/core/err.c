/*
 * Error names and messages for the codes in err.h, and the helper that
 * records a detail message in a caller's fixed buffer.
 */
#include "core/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *str;
} errs[] = {
    {ERR_OK, "ERR_OK", "success"},
    {ERR_NOMEM, "ERR_NOMEM", "out of memory"},
    {ERR_INVAL, "ERR_INVAL", "invalid input"},
    {ERR_NOTFOUND, "ERR_NOTFOUND", "not found"},
    {ERR_EXISTS, "ERR_EXISTS", "already exists"},
    {ERR_CONFLICT, "ERR_CONFLICT", "conflict"},
    {ERR_PRECOND, "ERR_PRECOND", "precondition failed"},
    {ERR_TOOBIG, "ERR_TOOBIG", "too large"},
    {ERR_BUSY, "ERR_BUSY", "busy"},
    {ERR_UNAVAIL, "ERR_UNAVAIL", "unavailable"},
    {ERR_IO, "ERR_IO", "I/O error"},
    {ERR_CORRUPT, "ERR_CORRUPT", "stored data is corrupt"},
    {ERR_INTERNAL, "ERR_INTERNAL", "internal error"},
    {ERR_PARSE, "ERR_PARSE", "malformed input"},
    {ERR_RANGE, "ERR_RANGE", "out of range"},
    {ERR_REPLAY, "ERR_REPLAY", "idempotency key reused with another request"},
    {ERR_DENIED, "ERR_DENIED", "credentials refused"},
};

const char *err_name(int code)
{
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        if (errs[i].code == code)
            return errs[i].name;
    return "ERR_UNKNOWN";
}

const char *err_str(int code)
{
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        if (errs[i].code == code)
            return errs[i].str;
    return "unknown error";
}

/*
 * Replaces each byte that is not part of a valid UTF-8 sequence with '?':
 * a detail may quote client text, cut by a precision ("%.64s") or by the
 * buffer's size in the middle of a character.
 */
static void scrub_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4 : 0;
        size_t k = 1;
        while (k < len && (p[k] & 0xc0) == 0x80)
            k++;
        if (len == 0 || k < len) { /* never read past a cut sequence's end */
            *p++ = '?';
            continue;
        }
        uint32_t cp = len == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
                    : len == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu)
                    : len == 4 ? (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 |
                                 (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu)
                               : 0;
        int bad = len == 0 || k < len || (len == 2 && cp < 0x80) ||
                  (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                  (len == 4 && (cp < 0x10000 || cp > 0x10ffff));
        if (bad) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
}

int err_set(struct err_detail *d, int code, const char *field,
            const char *fmt, ...)
{
    if (!d)
        return code;
    snprintf(d->field, sizeof(d->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    scrub_utf8(d->field);
    scrub_utf8(d->msg);
    return code;
}

void err_clear(struct err_detail *d)
{
    if (d) {
        d->field[0] = '\0';
        d->msg[0] = '\0';
    }
}
