/*
 * Private interfaces of the simulator's parts (src/sim/): the PRNG, the
 * engine model, the HTTP request-head parser, request parameters, response
 * rendering, metrics, the truth file, and the connection/server structs
 * that tie them together. Nothing outside src/sim/ (and its unit tests)
 * includes this header.
 */
#ifndef MC_SIM_SIM_INT_H
#define MC_SIM_SIM_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/rng.h"
#include "sim/sim.h"

/* ---- Engine model (engine.c) ---- */

enum sim__seq_state {
    SIM_SEQ_IDLE,     /* not in the engine */
    SIM_SEQ_WAITING,  /* queued FIFO for a slot */
    SIM_SEQ_PREFILL,  /* admitted; first token due at ready_ns */
    SIM_SEQ_DECODE,   /* member of the decode step in flight */
    SIM_SEQ_JOINING,  /* prefilled during a step; joins the next one */
};

/* One sequence. The owner embeds it and sets the first block before submit. */
struct sim__seq {
    int64_t prompt_tokens;
    int64_t out_target;   /* tokens to generate, >= 1 */
    int64_t stall_at;     /* pause after this many tokens; 0: before the first; -1: none */
    int64_t stall_ns;     /* length of that pause */
    void *owner;
    /* engine state; the owner only reads it */
    int state;
    int64_t emitted;      /* tokens generated so far */
    int64_t ready_ns;     /* PREFILL: when the first token is due */
    int64_t stall_until;  /* no token before this instant */
    struct sim__seq *prev, *next;
};

struct sim__list {
    struct sim__seq *head, *tail;
    size_t n;
};

/*
 * Called for every generated token, after s->emitted was incremented; the
 * token is the last one when s->emitted == s->out_target, and the engine has
 * then already forgotten s. The callback may call sim__engine_cancel() on s
 * (and on no other sequence) and may free s; the engine does not touch s
 * after the call.
 */
typedef void (*sim__token_fn)(void *arg, struct sim__seq *s, int64_t now);

struct sim__engine_cfg {
    int max_num_seqs;
    double prefill_tok_per_s;
    double itl_ms, itl_ms_per_seq, jitter;
};

struct sim__engine {
    struct sim__engine_cfg cfg;
    struct rng *rng;
    sim__token_fn on_token;
    void *arg;
    struct sim__list waiting, prefill, decode, joining;
    size_t running;          /* prefill + decode + joining */
    int64_t prefill_free_ns; /* the prefill unit is busy until then */
    int64_t step_end;        /* end of the step in flight; 0: none */
    int64_t step_len;        /* its length */
    uint64_t steps;          /* steps completed */
};

void sim__engine_init(struct sim__engine *e, const struct sim__engine_cfg *cfg,
                      struct rng *rng, sim__token_fn fn, void *arg);
/* Queues s (state IDLE) at now and admits what fits. */
void sim__engine_submit(struct sim__engine *e, struct sim__seq *s, int64_t now);
/* Takes s out of the engine whatever its state; frees its slot. */
void sim__engine_cancel(struct sim__engine *e, struct sim__seq *s, int64_t now);
/* Does what is due at now: first tokens, at most one decode step, admissions. */
void sim__engine_run(struct sim__engine *e, int64_t now);
/* When sim__engine_run next has work, or -1 when idle. */
int64_t sim__engine_next(const struct sim__engine *e);

/* ---- HTTP request head (http.c) ---- */

#define SIM_HEAD_MAX 16384
#define SIM_BODY_MAX ((int64_t)4 << 20)
#define SIM_PATH_MAX 1024
#define SIM_ID_MAX 128

enum sim__method { SIM_M_OTHER, SIM_M_GET, SIM_M_POST, SIM_M_HEAD };

struct sim__head {
    int method;
    char path[SIM_PATH_MAX + 1];     /* without the query string */
    int http10;                      /* HTTP/1.0: no chunked replies */
    int keep_alive;
    int has_te;                      /* any Transfer-Encoding */
    int expect_continue;
    int64_t content_length;          /* -1 when absent */
    char request_id[SIM_ID_MAX + 1]; /* X-Request-Id, "" when absent */
    char fault[24];                  /* X-Sim-Fault, "" when absent */
    char traceparent[56];            /* traceparent as received (cut to 55), "" when absent */
    size_t len;                      /* bytes of head through the blank line */
};

/*
 * Parses the request head at the start of p (n bytes). Returns 1 when a
 * complete head was parsed into h, 0 when more bytes are needed, ERR_TOOBIG
 * when the head passes SIM_HEAD_MAX, ERR_RANGE for a path or X-Request-Id
 * over its cap, ERR_PARSE for malformed syntax.
 */
int sim__head_parse(const char *p, size_t n, struct sim__head *h) MC_WUR;

/* ---- Request parameters (params.c) ---- */

enum sim__api { SIM_API_COMPL, SIM_API_CHAT, SIM_API_TGI };

struct sim__params {
    int api;
    int stream;
    int include_usage, continuous_usage;
    int details;          /* TGI parameters.details */
    int ignore_eos;
    int64_t max_tokens;
    int64_t prompt_tokens;
};

#define SIM_MAX_TOKENS 1000000

/* Whitespace-separated words in s: the simulator's token count. */
int64_t sim__count_words(const char *s, size_t n);
/*
 * Parses a request body for api (p->stream preset by the route for TGI).
 * Returns 0; ERR_PARSE when the body is not a JSON object; ERR_INVAL for a
 * bad member (d->field names it); ERR_NOTFOUND when "model" names another
 * model than `model`. d->msg is fit for the client.
 */
int sim__params_parse(int api, const char *body, size_t n, const char *model,
                      struct sim__params *p, struct err_detail *d) MC_WUR;

/* ---- Rendering (render.c) ---- */

/* What rendering one response needs. */
struct sim__out {
    int api, stream, include_usage, continuous_usage, details;
    const char *id;        /* "cmpl-...", "chatcmpl-..." (unused for TGI) */
    const char *model;
    int64_t created;       /* Unix seconds */
    int64_t prompt_tokens;
    int64_t out_target;
    int early_stop;        /* finished before max_tokens: "stop"/"eos_token" */
};

/* Text of token i (0-based): " tok<i>". Returns its length. */
int sim__tok_text(char out[24], int64_t i);
/* One SSE event for token i; last marks the final token. */
void sim__render_token(struct buf *b, const struct sim__out *o, int64_t i, int last);
/* The chat role-only chunk event. */
void sim__render_role(struct buf *b, const struct sim__out *o);
/* OpenAI: the usage chunk if asked for. n: tokens sent. */
void sim__render_usage(struct buf *b, const struct sim__out *o, int64_t n);
/* OpenAI: "data: [DONE]". */
void sim__render_done(struct buf *b);
/* A complete non-streamed response body for n tokens. */
void sim__render_full(struct buf *b, const struct sim__out *o, int64_t n);
/* An HTTP error body in api's shape. type: "BadRequestError", ... */
void sim__render_error(struct buf *b, int api, int code, const char *type,
                       const char *msg);
/* An SSE error event in api's shape (type InternalServerError, code 500). */
void sim__render_error_event(struct buf *b, int api, const char *msg);
/* GET /v1/models. */
void sim__render_models(struct buf *b, const char *model, int64_t created);
/*
 * Chunked framing: sim__chunk_open marks where an event starts, and
 * sim__chunk_close turns what was appended since into one chunk.
 */
size_t sim__chunk_open(struct buf *b);
void sim__chunk_close(struct buf *b, size_t at);

/* ---- Metrics (metrics.c) ---- */

#define SIM_HIST_MAX 24

struct sim__hist {
    const double *le;
    const char *const *le_str;
    int n;                          /* finite buckets */
    uint64_t counts[SIM_HIST_MAX];  /* per bucket, not cumulative */
    uint64_t count;
    double sum;
};

enum sim__finish { SIM_FIN_STOP, SIM_FIN_LENGTH, SIM_FIN_ABORT, SIM_FIN__N };

struct sim__metrics {
    uint64_t prompt_tokens, generation_tokens;
    uint64_t success[SIM_FIN__N];
    struct sim__hist ttft, itl, e2e;
};

void sim__metrics_init(struct sim__metrics *m);
/* The atomic process totals behind sim_totals (metrics.c). */
void sim__total_request(enum sim__finish f);
void sim__total_token(void);
void sim__hist_observe(struct sim__hist *h, double v);
/*
 * Prometheus text exposition with vLLM's names, labelled model_name;
 * kv_usage (0..1) is reported as vllm:gpu_cache_usage_perc.
 */
void sim__metrics_render(struct buf *b, const struct sim__metrics *m, const char *model,
                         int64_t running, int64_t waiting, double kv_usage);

/* ---- Truth file (truth.c) ---- */

struct sim__truth {
    FILE *f;
    char *vbuf;
};

struct sim__truth_rec {
    const char *request_id;
    const char *traceparent;          /* as received; "" or NULL when none */
    const char *endpoint;
    int status;                       /* HTTP status sent; 0 when none */
    int64_t arrival_ns;
    int64_t first_ns, last_ns;        /* -1: no content event reached the socket */
    int64_t prompt_tokens, output_tokens;
    const char *fault;                /* NULL, or the fault's name */
};

/* Opens path for writing (truncating); t->f stays NULL when path is NULL. */
int sim__truth_open(struct sim__truth *t, const char *path, struct err_detail *d) MC_WUR;
/* Appends one JSON line (buffered). */
void sim__truth_write(struct sim__truth *t, const struct sim__truth_rec *r);
/* Flushes and closes; returns 0 or ERR_IO. */
int sim__truth_close(struct sim__truth *t);

/* ---- Server, connections and requests (server.c, conn.c, gen.c) ---- */

struct event;
struct event_base;
struct evbuffer;
struct evconnlistener;
struct sim_server;

#define SIM_OUT_MAX ((size_t)96 << 20)      /* one response or event batch */
#define SIM_BACKLOG_MAX ((size_t)128 << 20) /* unwritten output per connection */

enum sim__fault {
    SIM_FAULT_NONE,
    SIM_FAULT_ERROR,       /* HTTP 500 at once */
    SIM_FAULT_ERROR_EVENT, /* an error event after half the tokens, in a 200 stream */
    SIM_FAULT_STALL,       /* a pause of --stall-ms after half the tokens */
    SIM_FAULT_DROP,        /* the connection closed after half the tokens */
};

/* One generation request; lives inside its connection. */
struct sim__req {
    struct sim__seq seq;
    struct sim__out out;
    const char *endpoint;
    int fault;
    int status;               /* HTTP status sent; 0: none yet */
    int complete;             /* nothing more will be sent for it */
    int64_t half;             /* faults strike after this many tokens */
    int64_t written;          /* content events handed over */
    int64_t arrival_ns, first_ns, last_ns, prev_tok_ns, last_write_ns;
    uint64_t first_mark, last_mark; /* output offsets ending those events; 0: none */
    char rid[SIM_ID_MAX + 1];       /* X-Request-Id or a generated id */
    char traceparent[56];           /* the request's traceparent header, "" when none */
    char id[SIM_ID_MAX + 16];       /* "cmpl-" + rid, ... */
};

enum sim__conn_state {
    SIM_C_HEAD,   /* reading a request head */
    SIM_C_BODY,   /* reading its body */
    SIM_C_BUSY,   /* a response is in progress */
    SIM_C_LINGER, /* error sent, write side shut: discarding input until EOF */
};

struct sim_conn {
    struct sim_server *srv;
    int fd;
    struct event *rev, *wev;
    struct evbuffer *backlog; /* output write(2) did not take; NULL until needed */
    struct buf in;
    struct buf held;          /* token events not yet written (--stream-interval) */
    int held_first;           /* held holds the first token */
    struct sim__head head;
    int state;
    int chunked;              /* the response in progress is chunked */
    int closing;              /* close once the backlog is written */
    int reading;              /* rev is added */
    int dead;                 /* a write failed: the peer is gone */
    int sent_continue;
    int reject;               /* over --max-connections: answer 503 and close */
    int linger;               /* close through SIM_C_LINGER, not at once */
    int64_t linger_until;
    uint64_t sent;            /* bytes handed to the socket */
    uint64_t queued;          /* bytes given to sim__conn_send */
    int active;               /* req is in use */
    int64_t rx_ns;            /* kernel receive time of the last read, CLOCK_MONOTONIC */
    struct sim__req req;
    struct sim_conn *prev, *next;
};

struct sim_server {
    const struct sim_opts *o;
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *tick, *house, *relisten, *sig_term, *sig_int;
    struct rng rng, id_rng;
    struct sim__engine eng;
    struct sim__metrics met;
    struct sim__truth truth;
    struct buf out;           /* scratch: one response or one batch of events */
    struct sim_conn *conns;
    int nconns;
    int64_t armed;            /* instant the engine timer is set for; -1: none */
};

/* conn.c */
/* Takes over the accepted socket fd; NULL (fd closed) when out of memory. */
struct sim_conn *sim__conn_accept(struct sim_server *s, int fd);
/* Closes lingering connections whose time is up. */
void sim__conn_reap(struct sim_server *s, int64_t now);
/*
 * Hands n bytes to the socket: write(2) at once, or after what is already
 * queued; what the socket does not take waits in the backlog for EV_WRITE.
 * Returns 0, or -1 when the peer is gone (the caller then frees c).
 */
int sim__conn_send(struct sim_conn *c, const char *p, size_t n);
/* A response head into b; clen < 0: streamed (chunked, or close on 1.0). */
void sim__conn_head(struct sim_conn *c, struct buf *b, int status, const char *ctype,
                    int64_t clen);
/* Sends a whole response and ends the exchange (sim__conn_next). */
void sim__conn_reply(struct sim_conn *c, int status, const char *ctype, const char *body,
                     size_t n);
/* The exchange is over: next request on keep-alive, else close after flush. */
void sim__conn_next(struct sim_conn *c);
/* Closes c now; an active request is written off with reason (see gen.c). */
void sim__conn_free(struct sim_conn *c, const char *reason);

/* server.c */
void sim__dispatch(struct sim_conn *c, const char *body, size_t n, int64_t now);
/* Arms the one engine timer for sim__engine_next(). */
void sim__rearm(struct sim_server *s);

/* gen.c */
void sim__gen_start(struct sim_conn *c, int api, int stream, const char *body, size_t n,
                    int64_t now);
/* The engine's token callback (arg: the server). */
void sim__gen_token(void *arg, struct sim__seq *seq, int64_t now);
/* c's output reached a mark: finish the request if it is complete. */
void sim__gen_flushed(struct sim_conn *c);
/* c closes with its request active: cancel, count, write the truth line. */
void sim__gen_gone(struct sim_conn *c, const char *reason);
/* TGI keep-alive comments for streams quiet for a second or more. */
void sim__gen_keepalive(struct sim_server *s, int64_t now);

#endif
