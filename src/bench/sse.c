/*
 * SSE parser (see sse.h). The hot path is a memchr for the line end in
 * the read buffer and one copy of the data field into the event buffer;
 * a line is copied into the line buffer only when a read splits it.
 */
#include "bench/sse.h"

#include <string.h>

void sse_init(struct sse_parser *p, size_t max_event)
{
    buf_init(&p->line, max_event + 64);
    buf_init(&p->data, max_event);
    p->type[0] = '\0';
    p->has_data = 0;
    p->skip_lf = 0;
    p->events = 0;
}

void sse_free(struct sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
}

int sse_pending(const struct sse_parser *p)
{
    return p->line.len > 0 || p->has_data;
}

/* Handles one complete line (without its terminator). */
static int on_line(struct sse_parser *p, const char *l, size_t n, sse_cb cb, void *arg)
{
    if (n == 0) { /* blank line: dispatch */
        int rc = 0;
        if (p->has_data) {
            size_t len = p->data.len;
            if (len && p->data.p[len - 1] == '\n')
                len--; /* the last data line's '\n' is not part of the data */
            p->data.p[len] = '\0';
            struct sse_event ev = {p->data.p, len, p->type};
            p->events++;
            rc = cb(arg, &ev);
        }
        buf_reset(&p->data);
        p->has_data = 0;
        p->type[0] = '\0';
        return rc;
    }
    if (l[0] == ':')
        return 0; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = (size_t)(l + n - v);
    if (vl && *v == ' ')
        v++, vl--;
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        buf_append(&p->data, v, vl);
        buf_putc(&p->data, '\n');
        p->has_data = 1;
        return buf_err(&p->data) ? ERR_TOOBIG : 0;
    }
    if (fl == 5 && memcmp(l, "event", 5) == 0) {
        size_t k = vl < sizeof(p->type) - 1 ? vl : sizeof(p->type) - 1;
        memcpy(p->type, v, k);
        p->type[k] = '\0';
    }
    return 0; /* id, retry and unknown fields are ignored */
}

int sse_feed(struct sse_parser *p, const char *s, size_t n, sse_cb cb, void *arg)
{
    const char *end = s + n;
    if (p->skip_lf && s < end) {
        if (*s == '\n')
            s++;
        p->skip_lf = 0;
    }
    while (s < end) {
        const char *nl = s;
        while (nl < end && *nl != '\n' && *nl != '\r')
            nl++;
        if (nl == end) { /* the rest is a partial line */
            buf_append(&p->line, s, (size_t)(end - s));
            return buf_err(&p->line) ? ERR_TOOBIG : 0;
        }
        int rc;
        if (p->line.len) {
            buf_append(&p->line, s, (size_t)(nl - s));
            if (buf_err(&p->line))
                return ERR_TOOBIG;
            rc = on_line(p, p->line.p, p->line.len, cb, arg);
            buf_reset(&p->line);
        } else {
            rc = on_line(p, s, (size_t)(nl - s), cb, arg);
        }
        if (*nl == '\r') {
            if (nl + 1 == end)
                p->skip_lf = 1;
            else if (nl[1] == '\n')
                nl++;
        }
        s = nl + 1;
        if (rc)
            return rc;
    }
    return 0;
}
