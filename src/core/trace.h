/*
 * Distributed tracing core: W3C trace context (traceparent, tracestate),
 * ids, the per-thread current span, span records, and the bounded queue an
 * exporter drains (src/trace/). Nothing here speaks HTTP.
 *
 * A request's thread opens a server span (trace_server_begin), which makes
 * it the thread's current span; db and cache wrappers open child spans
 * (trace_child_begin/trace_child_end) under it. When tracing is off, or
 * the request is not sampled, the thread has no current span and every
 * child call costs one branch. Ended spans go to a bounded ring (capacity
 * fixed by trace_init); a full ring drops the span and counts it, so a
 * request never waits for the exporter.
 *
 * trace_init and trace_metrics run before the threads that trace start;
 * trace_fini after they stop.
 */
#ifndef MC_CORE_TRACE_H
#define MC_CORE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct buf;
struct metrics;

#define TRACE_PARENT_LEN 55      /* "00-" 32 "-" 16 "-" 2 */
#define TRACE_STATE_MAX 512      /* tracestate longer than this is dropped */
#define TRACE_MAX_ATTRS 6
#define TRACE_ATTR_VALUE 64      /* string attribute values are cut to this */
#define TRACE_NAME_MAX 80

/* A span context: the ids that travel in a traceparent. */
struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;               /* bit 0: sampled */
};

enum trace_kind { TRACE_KIND_INTERNAL = 1, TRACE_KIND_SERVER = 2, TRACE_KIND_CLIENT = 3 };

struct trace_attr {
    const char *key;             /* static string */
    int is_int;
    int64_t i;
    char s[TRACE_ATTR_VALUE];
};

/* One finished (or open) span, as queued for export. */
struct trace_span {
    struct trace_ctx ctx;
    uint8_t parent_id[8];        /* all zero: a root span */
    char name[TRACE_NAME_MAX];
    int kind;                    /* enum trace_kind */
    int error;                   /* status: 0 unset/ok, 1 error */
    int64_t start_ns, end_ns;    /* Unix time, ns */
    int nattrs;
    struct trace_attr attrs[TRACE_MAX_ATTRS];
    char state[TRACE_STATE_MAX + 1]; /* the incoming tracestate (server spans), or "" */
};

/*
 * Parses a traceparent value (s[0..n)) strictly: version 00, 32 lowercase
 * hex digits of trace id not all zero, 16 of parent id not all zero, 2 of
 * flags, separated by '-', nothing else. Returns 0 with *out filled, or
 * ERR_PARSE (out unchanged).
 */
int trace_parse_parent(const char *s, size_t n, struct trace_ctx *out) MC_WUR;
/* Writes "00-<trace>-<span>-<flags>" (TRACE_PARENT_LEN chars and a NUL) into out. */
void trace_format_parent(const struct trace_ctx *c, char out[TRACE_PARENT_LEN + 1]);
/* 1 when a tracestate value may be passed on: at most TRACE_STATE_MAX bytes
   of printable ASCII (no control characters); else 0. */
int trace_state_ok(const char *s);
/* Writes n bytes of id as 2n lowercase hex digits and a NUL into out. */
void trace_hex(const uint8_t *id, size_t n, char *out);
/* Fills id[0..n) with random bytes, not all zero. */
void trace_random_id(uint8_t *id, size_t n);

/*
 * Turns tracing on with a queue of `capacity` spans (>= 1) and a sampling
 * ratio in [0, 1] for traces that start here. Returns 0 or ERR_NOMEM /
 * ERR_INVAL. Without it, nothing is traced.
 */
int trace_init(size_t capacity, double sample_ratio) MC_WUR;
/* Turns tracing off and frees the queue (spans still queued are lost). */
void trace_fini(void);
/* 1 when trace_init succeeded and trace_fini has not run. */
int trace_enabled(void);
/*
 * Registers modelcat_trace_spans_{dropped,exported,failed}_total in m.
 * Returns 0 or ERR_NOMEM.
 */
int trace_metrics(struct metrics *m) MC_WUR;
/* Counts n spans exported (ok = 1) or lost to a failed export (ok = 0). */
void trace_count_export(uint64_t n, int ok);

/*
 * Opens the server span of a request on this thread. parent (may be NULL)
 * is the incoming traceparent's context: its trace id is kept, its span
 * becomes the parent, and its sampled flag decides (parent-based);
 * otherwise a new trace is sampled at the configured ratio. Returns 1 and
 * makes sp the thread's current span when the request is traced; 0 (sp
 * untouched, nothing to end) when tracing is off or it is not sampled.
 */
int trace_server_begin(struct trace_span *sp, const struct trace_ctx *parent,
                       const char *name);
/* Ends the thread's current span sp: stamps its end, queues it, and leaves
   the thread without a current span. */
void trace_server_end(struct trace_span *sp);
/* The thread's current span, or NULL. */
struct trace_span *trace_current(void);

/*
 * Opens a child of the thread's current span into sp. Returns 1 when there
 * is one (the child is open); 0 when the thread is not tracing (one
 * branch; sp untouched).
 */
int trace_child_begin(struct trace_span *sp, const char *name, int kind);
/* Unix time in ns (the clock spans are stamped with). */
int64_t trace_now_ns(void);
/*
 * Queues a finished child of the thread's current span that started at
 * start_ns (trace_now_ns) and ends now, named name, with db.system and
 * db.operation attributes (either may be NULL). No-op when the thread is
 * not tracing. For calls timed across functions (a query until its first
 * row) where keeping an open span would be awkward.
 */
void trace_child_done(const char *name, int kind, int64_t start_ns, const char *system,
                      const char *operation, int error);
/* Ends and queues a child opened by trace_child_begin; error 1 marks it failed. */
void trace_child_end(struct trace_span *sp, int error);

/* Adds a string attribute (value cut to TRACE_ATTR_VALUE - 1 bytes); past
   TRACE_MAX_ATTRS it is dropped. key must be a static string. */
void trace_attr_str(struct trace_span *sp, const char *key, const char *value);
/* Adds an integer attribute (see trace_attr_str). */
void trace_attr_int(struct trace_span *sp, const char *key, int64_t value);

/* Queues a finished span; drops and counts it when the queue is full or
   tracing is off. Returns 1 when queued, 0 when dropped. */
int trace_enqueue(const struct trace_span *sp);
/* Moves up to max queued spans into out (oldest first); returns how many. */
size_t trace_dequeue(struct trace_span *out, size_t max);
/* Spans waiting in the queue. */
size_t trace_queued(void);
/*
 * Waits until at least `want` spans are queued or timeout_ms passes, or
 * trace_wake is called. Returns the spans queued.
 */
size_t trace_wait(size_t want, int timeout_ms);
/* Wakes trace_wait (e.g. at shutdown). */
void trace_wake(void);

/*
 * Encodes spans[0..n) as one OTLP/HTTP JSON ExportTraceServiceRequest
 * (resourceSpans, service.name "modelcat" and service.version version,
 * one scopeSpans) into out. Returns buf_err(out) (0 or ERR_TOOBIG).
 */
int trace_otlp_encode(struct buf *out, const struct trace_span *spans, size_t n,
                      const char *version);

#endif
