/*
 * Error names and messages for the codes in err.h, and the helper that
 * records a detail message in a caller's fixed buffer.
 */
#include "core/err.h"

#include <stdarg.h>
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
    return code;
}

void err_clear(struct err_detail *d)
{
    if (d) {
        d->field[0] = '\0';
        d->msg[0] = '\0';
    }
}
