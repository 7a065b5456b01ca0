/*
 * Shared checks of the fuzz targets (header-only: each target is one
 * translation unit plus replay.c).
 *
 * Text that reaches a client in a JSON body must be valid UTF-8 (RFC 8259;
 * the API answers "application/json; charset=utf-8"), and the JSON writer
 * copies bytes >= 0x80 through unchecked. The checks below abort() when it
 * is not. Setting MC_FUZZ_LAX_UTF8=1 in the environment turns a failure
 * that is *only* about UTF-8 into one note on stderr per process, so a
 * fuzzing session can look past a known, reported defect of that kind;
 * anything else (a body that is not JSON at all) still aborts.
 */
#ifndef MC_FUZZ_UTIL_H
#define MC_FUZZ_UTIL_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/err.h"

static inline int fz_lax_utf8(void)
{
    static int lax = -1;
    if (lax < 0) {
        const char *e = getenv("MC_FUZZ_LAX_UTF8");
        lax = e && *e && strcmp(e, "0") != 0;
    }
    return lax;
}

static int fz_noted;

/*
 * A UTF-8-only defect was found: 1 to report it (and abort, unless lax),
 * 0 when lax mode already noted one and it should pass silently.
 */
static inline int fz_utf8_report(void)
{
    return !fz_lax_utf8() || !fz_noted;
}

/* After the report: aborts, or notes once in lax mode. */
static inline void fz_utf8_defect(const char *target, const char *what)
{
    if (!fz_lax_utf8()) {
        fprintf(stderr, "%s: invalid UTF-8 in %s\n", target, what);
        abort();
    }
    if (!fz_noted) {
        fz_noted = 1;
        fprintf(stderr, "%s: NOTE (MC_FUZZ_LAX_UTF8): invalid UTF-8 in %s; "
                        "not reporting invalid UTF-8 again\n", target, what);
    }
}

/* Copy of [s, s+n) with each byte of an invalid UTF-8 sequence as '?'. */
static inline char *fz_utf8_scrub(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        abort();
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (c == 0 || (len && i + len <= n && codec_utf8_valid(s + i, len))) {
            if (!len)
                len = 1;
            memcpy(o + i, s + i, len);
            i += len;
        } else {
            o[i++] = '?';
        }
    }
    o[n] = '\0';
    return o;
}

/*
 * The n bytes at p (a response body) must be valid JSON. Aborts with the
 * body and jansson's reason; a body that is JSON once invalid UTF-8 is
 * scrubbed counts as a UTF-8 defect (see above).
 */
static inline void fz_check_json(const char *target, const char *what, const char *p,
                                 size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(p ? p : "", n, 0, &jerr);
    if (j) {
        json_decref(j);
        return;
    }
    char *clean = fz_utf8_scrub(p ? p : "", n);
    json_t *j2 = json_loadb(clean, n, 0, NULL);
    free(clean);
    if (j2 && !fz_utf8_report()) {
        json_decref(j2);
        return;
    }
    fprintf(stderr, "%s: %s is not valid JSON (%s): %.*s\n", target, what, jerr.text,
            (int)n, p ? p : "");
    if (!j2)
        abort();
    json_decref(j2);
    fz_utf8_defect(target, what);
}

/*
 * Error detail (field and message) reaches the client verbatim in a JSON
 * error body (api/api.c api_fail -> api_error): it must be valid UTF-8.
 */
static inline void fz_check_detail(const char *target, const char *what, int rc,
                                   const struct err_detail *d)
{
    if (!rc)
        return;
    int fok = codec_utf8_valid(d->field, strlen(d->field)) || !d->field[0];
    int mok = codec_utf8_valid(d->msg, strlen(d->msg)) || !d->msg[0];
    if ((!fok || !mok) && fz_utf8_report()) {
        fprintf(stderr, "%s: %s returned %s with invalid UTF-8 in err_detail.%s\n"
                        "  field: \"%s\"\n  msg: \"%s\"\n",
                target, what, err_name(rc), fok ? "msg" : "field", d->field, d->msg);
        fz_utf8_defect(target, "err_detail");
    }
}

#endif
