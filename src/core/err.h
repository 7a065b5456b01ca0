/*
 * Error codes shared by every component. Functions return 0 on success or
 * one of these negative codes; detail for a human goes into a caller-supplied
 * fixed buffer (struct err_detail), so error paths never allocate.
 */
#ifndef MC_CORE_ERR_H
#define MC_CORE_ERR_H

#include <stddef.h>

#define MC_WUR __attribute__((warn_unused_result))

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,      /* allocation failed */
    ERR_INVAL = -2,      /* invalid argument or input */
    ERR_NOTFOUND = -3,   /* no such object */
    ERR_EXISTS = -4,     /* object already exists (unique key) */
    ERR_CONFLICT = -5,   /* referenced by others, or state conflict */
    ERR_PRECOND = -6,    /* precondition (If-Match) failed */
    ERR_TOOBIG = -7,     /* over a configured cap */
    ERR_BUSY = -8,       /* store busy beyond its timeout; retryable */
    ERR_UNAVAIL = -9,    /* dependency unreachable */
    ERR_IO = -10,        /* I/O or store error */
    ERR_CORRUPT = -11,   /* stored data malformed */
    ERR_INTERNAL = -12,  /* a bug */
    ERR_PARSE = -13,     /* malformed syntax (JSON, cursor, ...) */
    ERR_RANGE = -14,     /* value out of bounds */
    ERR_REPLAY = -15,    /* idempotency key reused with another request */
    ERR_DENIED = -16,    /* credentials refused */
};

#define ERR_FIELD_LEN 64
#define ERR_MSG_LEN 256

/* Where the fault lies, for messages that reach a user. */
struct err_detail {
    char field[ERR_FIELD_LEN]; /* offending field or parameter, "" if none */
    char msg[ERR_MSG_LEN];     /* one sentence, no trailing newline */
};

/* Short symbolic name of code ("ERR_NOTFOUND"); never NULL. */
const char *err_name(int code);
/* Human description of code; never NULL. */
const char *err_str(int code);

/*
 * Fills d (which may be NULL) with field and a printf-style message and
 * returns code, so callers can write `return err_set(d, ERR_INVAL, "id", ...)`.
 */
int err_set(struct err_detail *d, int code, const char *field,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Empties d. */
void err_clear(struct err_detail *d);

#endif
