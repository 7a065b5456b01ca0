/*
 * Private to the benchmark client: the loop's state shared by client.c
 * (arrivals, scheduling, the run), stream.c (what a response means) and
 * the two transports, transport_native.c (our HTTP/1.1 client, the
 * default) and transport_curl.c (libcurl: TLS, HTTP/2, proxies).
 */
#ifndef MC_BENCH_CLIENT_INT_H
#define MC_BENCH_CLIENT_INT_H

#include <event2/event.h>

#include "bench/arrival.h"
#include "bench/client.h"
#include "bench/sse.h"
#include "core/buf.h"

#define BENCH_STOP 2 /* a body callback's "abandon this response" */

struct client;

/* A transport moves requests and responses; the client decides the rest. */
struct bench_transport {
    const char *name;
    int (*init)(struct client *cl, struct err_detail *d);
    /* Starts r; 0, or -1 when it could not even be started (counted failed). */
    int (*start)(struct client *cl, struct bench_req *r);
    /* Fails requests in flight longer than the timeout (called every tick). */
    void (*sweep)(struct client *cl, int64_t now);
    /* Drops everything in flight (left incomplete) and frees the transport. */
    void (*shutdown)(struct client *cl);
};

extern const struct bench_transport bench_native_transport;
extern const struct bench_transport bench_curl_transport;

/* One response being read: SSE → backend events → the request record. */
struct bench_stream {
    struct client *cl;
    struct bench_req *req;
    struct sse_parser sse;
    int ended;        /* the stream's last event was seen */
    int64_t ts;       /* timestamp of the bytes being parsed */
};

struct client {
    const struct bench_load *l;
    const struct bench_target *t;
    const char *url;              /* base URL, for the curl transport */
    const struct bench_transport *tr;
    void *tp;                     /* the transport's state */
    struct bench_run *run;
    struct event_base *base;
    struct event *sched, *tick, *sigint, *sigterm;
    struct rng rng;
    struct bench_req **blocks;    /* every issued request, in blocks so that */
    size_t nreqs, nblocks;        /* pointers to them stay valid */
    size_t *pending;              /* released, waiting for a slot */
    size_t phead, ptail;
    int inflight;
    size_t done, failed;
    int64_t next_arrival;
    int64_t phase_start;
    int measuring, stop_issuing;
    int64_t drain_until;          /* interrupted: when the drain gives up */
    double lag_sum;
    int64_t last_progress;
    int64_t tokens_done;
};

void bench__stream_init(struct bench_stream *s, struct client *cl);
void bench__stream_free(struct bench_stream *s);
/* Prepares s for request r. */
void bench__stream_begin(struct bench_stream *s, struct bench_req *r);
/* Feeds body bytes read at s->ts; 0, or BENCH_STOP with r->err set. */
int bench__stream_body(struct bench_stream *s, const char *p, size_t n);
/* The error the finished response amounts to (BENCH_OK when none). */
int bench__stream_verdict(struct bench_stream *s, int http_status);

/* Writes the HTTP body of request r (its prompt, the backend's format). */
void bench__request_body(struct client *cl, struct bench_req *r, struct buf *body);

/*
 * Records the end of request r (err BENCH_OK or a failure) and starts what
 * may start next. Transports call it exactly once per started request.
 */
void bench__finish(struct client *cl, struct bench_req *r, int err);

#endif
