/*
 * The benchmark client: one thread, one libevent loop, keep-alive
 * connections to one target, requests released by an arrival process
 * (gamma-distributed gaps, or as fast as the concurrency cap allows),
 * responses parsed incrementally (h1.c → sse.c → backend.c) with a
 * CLOCK_MONOTONIC timestamp taken once per read.
 */
#ifndef MC_BENCH_CLIENT_H
#define MC_BENCH_CLIENT_H

#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/req.h"
#include "core/err.h"
#include "core/trace.h"

/* Where requests go: http://host:port[/prefix]. */
struct bench_target {
    char host[256];
    char port[8];
    char prefix[256];          /* path prefix without a trailing '/' */
    char host_header[280];
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/*
 * Parses and resolves an http:// base URL for the native transport. 0 or
 * ERR_INVAL with detail.
 */
int bench_target_parse(const char *url, struct bench_target *t, struct err_detail *d) MC_WUR;

/* One prompt of a dataset (see dataset.h). */
struct bench_prompt;

struct bench_load {
    int backend;                  /* enum bench_backend */
    const char *url;              /* the base URL as given */
    int transport_curl;           /* 1: libcurl (https, HTTP/2, proxies); 0: native */
    int kernel_ts;                /* native: time reads by the kernel's receive stamp */
    const char *cacert;           /* curl: CA bundle to verify https servers, or NULL */
    const char *model;
    int ignore_eos;
    const char *const *headers;   /* extra "Name: value" lines */
    int nheaders;
    const char *api_key;          /* sent as Authorization: Bearer */
    const struct trace_ctx *join; /* --traceparent: the trace to join; NULL: a new one */
    int num_prompts;              /* measured requests; 0 with duration_s */
    double duration_s;            /* stop issuing after this; 0 with num_prompts */
    int warmup;                   /* requests before measuring, not counted */
    double rate;                  /* requests/s; INFINITY: closed loop */
    double burstiness;            /* gamma shape; 1 = Poisson */
    int max_concurrency;          /* 0: unlimited */
    uint64_t seed;
    double request_timeout_s;     /* 0: none */
    int max_errors;               /* stop after this many failures; 0: never */
    size_t max_event;             /* cap of one SSE event */
    int progress;                 /* 0 quiet, 1 live line (TTY), 2 a line every 5 s */
    const struct bench_prompt *prompts;
    size_t nprompts;
    /* Set by the caller's own SIGINT/SIGTERM handler before the loop owns
       the signals, or by another thread (a preemption watcher) while it
       runs: the run then ends as interrupted, at once or after a drain (see
       drain_s). Checked every 100 ms. May be NULL. */
    const volatile sig_atomic_t *stop;
    /* On stop (a signal or *stop): 0 ends at once; > 0 stops releasing
       requests and lets those in flight finish, for at most this long. */
    double drain_s;
    /* Resuming a point: the planned measured requests still to do, as
       their indices (ascending) among the point's num_prompts; the k-th
       measured request of this run takes prompt warmup + todo[k], so the
       runs of a point together issue each planned prompt exactly once.
       num_prompts must then be ntodo. NULL: request k takes warmup + k. */
    const size_t *todo;
    size_t ntodo;
    /* Called on the loop's thread for each measured request as it
       finishes (r and its itl_ns are the run's: copy what must outlive the
       call), or NULL. */
    void (*on_finish)(void *arg, const struct bench_req *r);
    void *on_finish_arg;
    /* Called on the loop's thread as each measured request is handed to
       the transport (each is then finished exactly once), with
       on_finish_arg, or NULL. */
    void (*on_start)(void *arg);
};

/* The index among the point's planned measured requests of finished request r. */
static inline size_t bench_planned_index(const struct bench_load *l, const struct bench_req *r)
{
    size_t m = r->id - (size_t)l->warmup;
    return l->todo && m < l->ntodo ? l->todo[m] : m;
}

struct bench_run {
    struct bench_req *reqs;       /* finished measured requests, in issue order */
    size_t n;
    size_t incomplete;            /* in flight when the run was interrupted */
    int64_t start_ns, end_ns;     /* the measured interval */
    int interrupted;              /* SIGINT/SIGTERM */
    int stopped_by_errors;        /* --max-errors reached */
    double dispatch_lag_ms_max;   /* worst lateness of a release vs its schedule */
    double dispatch_lag_ms_mean;
    uint64_t reads, events;       /* reads with data, SSE events: events per read */
    int kernel_ts;                /* reads were timed by the kernel's receive stamps */
    /* Read lag: from the kernel's receipt of bytes to the loop's read of
       them (kernel_ts only). A histogram of 4 sub-buckets per power of 2 ns. */
    uint64_t lag_hist[256];
    uint64_t lag_n;
    int64_t lag_sum_ns, lag_max_ns;
    double cpu_user_s, cpu_sys_s; /* this process's CPU time over the measured interval */
    char nonce[9];                /* prefix of this run's X-Request-Id values */
    struct trace_ctx trace;       /* the run's trace (span_id: the parent, or 0) and flags */
    uint64_t span_seed;           /* request spans: a mix of this and the request id */
};

/*
 * Runs the load. Returns 0 (also when interrupted or stopped by errors;
 * see the flags) or an error with detail (nothing could start).
 */
int bench_run(const struct bench_target *t, const struct bench_load *l, struct bench_run *out,
              struct err_detail *d) MC_WUR;
void bench_run_free(struct bench_run *r);

/* Writes the X-Request-Id of request id of run r into out[40]. */
void bench_request_id(const struct bench_run *r, uint64_t id, char out[40]);
/* Writes the W3C traceparent of request id of run r into out (the run's
   trace id, a span id of that request, the run's flags). */
void bench_traceparent(const struct bench_run *r, uint64_t id, char out[TRACE_PARENT_LEN + 1]);

#endif
