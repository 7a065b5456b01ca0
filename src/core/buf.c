/*
 * Capped growable buffer (see buf.h). Growth doubles, so appends are
 * amortised O(1); the cap turns a runaway producer into ERR_TOOBIG instead
 * of an unbounded allocation.
 */
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void buf_init(struct buf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->err = 0;
}

void buf_free(struct buf *b)
{
    mem_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->p)
        b->p[0] = '\0';
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

char *buf_reserve(struct buf *b, size_t n)
{
    if (b->err)
        return NULL;
    if (n > b->max || b->len > b->max - n) {
        b->err = ERR_TOOBIG;
        return NULL;
    }
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        char *p = mem_realloc(b->p, cap);
        if (!p) {
            b->err = ERR_NOMEM;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    char *d = buf_reserve(b, n);
    if (!d)
        return;
    if (n)
        memcpy(d, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf__putc_slow(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    char *d = buf_reserve(b, (size_t)n);
    if (!d)
        return;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_i64(struct buf *b, int64_t v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *s = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--s = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--s = '-';
    buf_append(b, s, (size_t)(e - s));
}
