/*
 * Incremental HTTP/1.1 response parser for the benchmark client's native
 * transport: status line, headers, then a body framed by Content-Length,
 * chunked transfer coding, or the end of the connection. Bytes arrive over
 * arbitrary read boundaries; body bytes (de-chunked) go to a callback as
 * they arrive, so a streamed response is never held whole.
 *
 * Bounded: the status line and headers together at most H1_MAX_HEAD bytes,
 * at most H1_MAX_HEADERS header lines, a chunk-size line at most 64 bytes.
 * Anything malformed is ERR_PARSE; over a bound, ERR_TOOBIG.
 */
#ifndef MC_BENCH_H1_H
#define MC_BENCH_H1_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define H1_MAX_HEAD 16384
#define H1_MAX_HEADERS 64

enum h1_state {
    H1_S_HEAD,       /* reading status line and headers */
    H1_S_BODY_LEN,   /* Content-Length body */
    H1_S_CHUNK_SIZE, /* chunked: the size line */
    H1_S_CHUNK_DATA, /* chunked: data */
    H1_S_CHUNK_CRLF, /* chunked: the CRLF after data */
    H1_S_TRAILER,    /* chunked: trailers up to the blank line */
    H1_S_BODY_EOF,   /* body until the connection closes */
    H1_S_DONE,
};

struct h1_parser {
    enum h1_state state;
    int status;              /* e.g. 200 */
    int keep_alive;          /* 1 unless "Connection: close" or HTTP/1.0 */
    int chunked;
    int64_t content_length;  /* -1 when absent */
    int64_t remaining;       /* bytes left of the body or current chunk */
    int head_only;           /* the request was HEAD: no body */
    char content_type[64];
    char head[H1_MAX_HEAD];  /* the head (or a chunk/trailer line) so far */
    size_t head_len;
    int nheaders;
};

/* Receives body bytes; return non-zero to stop h1_feed with that value. */
typedef int (*h1_body_cb)(void *arg, const char *p, size_t n);

/* Resets p for a new response. */
void h1_init(struct h1_parser *p, int head_only);
/*
 * Parses up to n bytes. Sets *used to the bytes consumed (the rest belongs
 * to the next response). Returns 1 when the response is complete, 0 when
 * more bytes are needed, ERR_PARSE / ERR_TOOBIG on bad input, or the
 * callback's non-zero value.
 */
int h1_feed(struct h1_parser *p, const char *s, size_t n, size_t *used, h1_body_cb cb,
            void *arg);
/*
 * Tells the parser the connection closed. Returns 1 when that completes
 * the response (a body delimited by EOF), else ERR_PARSE (truncated).
 */
int h1_eof(struct h1_parser *p);

#endif
