/*
 * Incremental parser of Server-Sent Events (WHATWG HTML, "Parsing an event
 * stream") for the streaming responses of inference engines. Bytes arrive
 * over arbitrary read boundaries; each complete event is handed to a
 * callback with its data lines joined by '\n'.
 *
 * Accepted: "data:x" and "data: x" (one leading space dropped), comments
 * (":" lines, TGI's keep-alives), LF, CRLF and CR line ends (a CR at the end
 * of one read and an LF at the start of the next are one line end), "event:"
 * types, fields without a colon. Every buffer is capped: an event whose
 * data passes max_event bytes is reported as ERR_TOOBIG and the stream
 * should be abandoned.
 */
#ifndef MC_BENCH_SSE_H
#define MC_BENCH_SSE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct sse_event {
    const char *data;   /* NUL-terminated; valid during the callback only */
    size_t len;
    const char *type;   /* "" when no "event:" field was given */
};

/* Returns 0 to go on, anything else to stop sse_feed with that value. */
typedef int (*sse_cb)(void *arg, const struct sse_event *ev);

struct sse_parser {
    struct buf line;     /* a line split across reads */
    struct buf data;     /* data of the event being assembled */
    char type[32];
    int has_data;        /* a data field was seen since the last dispatch */
    int skip_lf;         /* previous read ended in CR */
    size_t events;       /* events dispatched so far */
};

/* Prepares p; max_event caps one event's data (and one line). */
void sse_init(struct sse_parser *p, size_t max_event);
void sse_free(struct sse_parser *p);
/*
 * Parses n bytes. Returns 0, ERR_TOOBIG (an event or line over the cap;
 * the parser is then unusable), or the first non-zero callback result.
 */
int sse_feed(struct sse_parser *p, const char *s, size_t n, sse_cb cb, void *arg);
/* 1 when bytes of an unfinished event are buffered (a truncated stream). */
int sse_pending(const struct sse_parser *p);

#endif
