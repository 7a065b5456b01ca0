/*
 * Growable byte buffer with a hard cap. The contents are always
 * NUL-terminated (the NUL is not counted in len). Once an append would pass
 * `max`, the buffer keeps what it had, remembers the failure in `err`, and
 * every later append is a no-op; check buf_err() once at the end.
 */
#ifndef MC_CORE_BUF_H
#define MC_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct buf {
    char *p;      /* owned; NULL until the first append */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    size_t max;   /* cap on len */
    int err;      /* first error: 0, ERR_NOMEM or ERR_TOOBIG */
};

/* Empty buffer that may grow to max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);
/* Frees the storage; b is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Sets len to 0 and clears the error; keeps the storage. */
void buf_reset(struct buf *b);
/* Gives the storage to the caller (free with mem_free); b becomes empty. */
char *buf_steal(struct buf *b, size_t *len);

void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf__putc_slow(struct buf *b, char c);

/* Appends one byte; the common case (room left) is a store and a NUL. */
static inline void buf_putc(struct buf *b, char c)
{
    if (b->len + 1 < b->cap && !b->err) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
    } else {
        buf__putc_slow(b, c);
    }
}
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_i64(struct buf *b, int64_t v);

/* Makes room for n more bytes; returns a pointer to them or NULL. */
char *buf_reserve(struct buf *b, size_t n);

static inline int buf_err(const struct buf *b) { return b->err; }

#endif
