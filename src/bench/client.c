/*
 * The benchmark client's event loop (see client.h).
 *
 * DESIGN: everything runs on one libevent loop in one thread. Each
 * connection has a read event (persistent) and a write event (armed only
 * while a request is partly written). A read takes one timestamp; every
 * SSE event parsed out of that read carries it, which is what "measured
 * when the bytes were read" means and costs one clock read per read, not
 * per event. Requests are released by a timer following the arrival
 * process; a released request waits in a FIFO while the concurrency cap
 * is reached (its queueing delay is measured). A 100 ms tick enforces
 * request timeouts and draws the progress line. Responses are parsed
 * incrementally: h1.c (framing) → sse.c (events) → backend.c (meaning),
 * with no JSON tree per event.
 */
#include "bench/client.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "bench/arrival.h"
#include "bench/backend.h"
#include "bench/dataset.h"
#include "bench/h1.h"
#include "bench/sse.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define RBUF_SIZE 65536
#define MAX_CONNS 60000
#define REQ_BLOCK 4096
#define STOP 2 /* a body callback's "abandon this response" */

struct client;

struct conn {
    struct client *cl;
    int fd;
    struct event *rev, *wev;
    int connected;
    struct h1_parser h1;
    struct sse_parser sse;
    struct bench_req *req;       /* in flight on this connection, or NULL */
    struct buf out;              /* request bytes not yet written */
    size_t out_off;
    int ended;                   /* the stream's end event was seen */
    int64_t ts;                  /* timestamp of the read being parsed */
    struct conn *next, *prev;    /* idle list */
    struct conn *bnext, *bprev;  /* busy list: connections with a request */
    int64_t started;             /* when the current request was put on it */
};

struct client {
    const struct bench_load *l;
    const struct bench_target *t;
    struct bench_run *run;
    struct event_base *base;
    struct event *sched, *tick, *sigint, *sigterm;
    struct bench_rng rng;
    struct bench_req **blocks;   /* every issued request (warm-up first), in */
    size_t nreqs, nblocks;       /* blocks of REQ_BLOCK so pointers stay valid */
    size_t *pending;             /* released, waiting for a slot: indexes */
    size_t phead, ptail, pcap;
    struct conn *idle, *busy;
    int nconns, inflight;
    size_t done, failed, total;  /* total: requests to issue (0 = by duration) */
    int64_t next_arrival;        /* of the next request, ns */
    int64_t phase_start;         /* start of warm-up or of measurement */
    int measuring, stop_issuing;
    double lag_sum;
    int64_t last_progress;
    int64_t tokens_done;
    char rbuf[RBUF_SIZE];
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void dispatch_pending(struct client *cl);

/* --- target --- */

int bench_target_parse(const char *url, struct bench_target *t, struct err_detail *d)
{
    memset(t, 0, sizeof(*t));
    if (strncmp(url, "http://", 7) != 0)
        return err_set(d, ERR_INVAL, "base-url",
                       "--base-url must be http://host:port (https needs --transport curl)");
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof(t->host_header))
        return err_set(d, ERR_INVAL, "base-url", "--base-url has no host");
    snprintf(t->host_header, sizeof(t->host_header), "%.*s", (int)hl, h);
    snprintf(t->prefix, sizeof(t->prefix), "%s", slash ? slash : "");
    size_t pl = strlen(t->prefix);
    while (pl && t->prefix[pl - 1] == '/')
        t->prefix[--pl] = '\0';
    const char *hp = t->host_header, *colon;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (!rb)
            return err_set(d, ERR_INVAL, "base-url", "bad IPv6 address in --base-url");
        snprintf(t->host, sizeof(t->host), "%.*s", (int)(rb - hp - 1), hp + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strrchr(hp, ':');
        snprintf(t->host, sizeof(t->host), "%.*s",
                 (int)(colon ? (size_t)(colon - hp) : strlen(hp)), hp);
    }
    snprintf(t->port, sizeof(t->port), "%s", colon ? colon + 1 : "80");
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(t->host, t->port, &hints, &ai);
    if (rc || !ai)
        return err_set(d, ERR_INVAL, "base-url", "cannot resolve %s:%s: %s", t->host,
                       t->port, gai_strerror(rc));
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

void bench_request_id(const struct bench_run *r, uint64_t id, char out[40])
{
    snprintf(out, 40, "%s-%llu", r->nonce, (unsigned long long)id);
}

/* --- connections --- */

static void idle_push(struct client *cl, struct conn *c)
{
    c->prev = NULL;
    c->next = cl->idle;
    if (cl->idle)
        cl->idle->prev = c;
    cl->idle = c;
}

static void idle_remove(struct client *cl, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void busy_add(struct client *cl, struct conn *c)
{
    c->bprev = NULL;
    c->bnext = cl->busy;
    if (cl->busy)
        cl->busy->bprev = c;
    cl->busy = c;
}

static void busy_remove(struct client *cl, struct conn *c)
{
    if (c->bprev)
        c->bprev->bnext = c->bnext;
    else if (cl->busy == c)
        cl->busy = c->bnext;
    if (c->bnext)
        c->bnext->bprev = c->bprev;
    c->bnext = c->bprev = NULL;
}

static void conn_free(struct conn *c)
{
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fd >= 0)
        close(c->fd);
    sse_free(&c->sse);
    buf_free(&c->out);
    c->cl->nconns--;
    mem_free(c);
}

static struct conn *conn_open(struct client *cl)
{
    struct conn *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cl = cl;
    cl->nconns++;
    buf_init(&c->out, 4 << 20);
    sse_init(&c->sse, cl->l->max_event);
    c->fd = socket(cl->t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto fail;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rev = event_new(cl->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(cl->base, c->fd, EV_WRITE, on_write, c);
    if (!c->rev || !c->wev)
        goto fail;
    if (connect(c->fd, (struct sockaddr *)&cl->t->addr, cl->t->addrlen) == 0)
        c->connected = 1;
    else if (errno != EINPROGRESS)
        goto fail;
    event_add(c->rev, NULL);
    return c;
fail:
    conn_free(c);
    return NULL;
}

/* --- request lifecycle --- */

static void finish(struct client *cl, struct conn *c, int err)
{
    struct bench_req *r = c->req;
    c->req = NULL;
    busy_remove(cl, c);
    if (err) {
        r->err = (uint8_t)err;
        cl->failed++;
    }
    cl->done++;
    cl->inflight--;
    if (!r->warmup && !err)
        cl->tokens_done += r->output_tokens;
    if (cl->l->max_errors && cl->measuring && (int)cl->failed >= cl->l->max_errors) {
        cl->run->stopped_by_errors = 1;
        cl->stop_issuing = 1;
    }
}

/* Ends the connection's request with err and drops the connection. */
static void conn_abort(struct conn *c, int err)
{
    struct client *cl = c->cl;
    if (c->req)
        finish(cl, c, err);
    conn_free(c);
    dispatch_pending(cl);
}

/* The response on c is complete. */
static void response_done(struct conn *c)
{
    struct client *cl = c->cl;
    struct bench_req *r = c->req;
    int st = c->h1.status, err = 0;
    r->http_status = st;
    if (st == 429)
        err = BENCH_E_HTTP_429;
    else if (st >= 500)
        err = BENCH_E_HTTP_5XX;
    else if (st >= 400)
        err = BENCH_E_HTTP_4XX;
    else if (st != 200)
        err = BENCH_E_MALFORMED;
    else if (r->err)
        err = r->err;
    else if (!c->ended)
        err = BENCH_E_TRUNCATED;
    if (r->tok_src == BENCH_TOK_EVENTS)
        r->output_tokens = r->events;
    if (r->err)
        r->err = 0; /* finish() sets it from err */
    int keep = c->h1.keep_alive && !err;
    finish(cl, c, err);
    if (keep) {
        sse_free(&c->sse);
        sse_init(&c->sse, cl->l->max_event);
        idle_push(cl, c);
    } else {
        conn_free(c);
    }
    dispatch_pending(cl);
}

static int on_event(void *arg, const struct sse_event *e)
{
    struct conn *c = arg;
    struct bench_req *r = c->req;
    struct bench_ev ev;
    if (bench_backend_event(c->cl->l->backend, e->data, e->len, &ev)) {
        r->err = BENCH_E_MALFORMED;
        return 1;
    }
    c->cl->run->events++;
    if (ev.error) {
        r->err = BENCH_E_STREAM_ERROR;
        return 1;
    }
    if (ev.content) {
        if (!r->first_ns) {
            r->first_ns = c->ts;
        } else {
            if (r->itl_len == r->itl_cap) {
                int cap = r->itl_cap ? r->itl_cap * 2 : 64;
                int64_t *p = mem_realloc(r->itl_ns, (size_t)cap * sizeof(*p));
                if (!p)
                    return 1;
                r->itl_ns = p;
                r->itl_cap = cap;
            }
            r->itl_ns[r->itl_len++] = c->ts - r->last_ns;
        }
        r->last_ns = c->ts;
        r->events++;
    }
    if (ev.completion_tokens >= 0) {
        r->output_tokens = (int32_t)ev.completion_tokens;
        r->tok_src = (uint8_t)ev.tok_src;
    }
    if (ev.prompt_tokens >= 0)
        r->input_tokens = (int32_t)ev.prompt_tokens;
    if (ev.end)
        c->ended = 1;
    return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
    struct conn *c = arg;
    if (c->h1.status != 200)
        return 0; /* an error body: its status says enough */
    int rc = sse_feed(&c->sse, p, n, on_event, c);
    if (rc == ERR_TOOBIG)
        c->req->err = BENCH_E_OVERSIZED;
    return rc ? STOP : 0; /* on_event set req->err */
}

/* Writes what is pending on c; arms the write event if the socket is full. */
static void flush_out(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        if (n <= 0) {
            conn_abort(c, c->connected ? BENCH_E_RESET : BENCH_E_CONNECT);
            return;
        }
        c->out_off += (size_t)n;
    }
    c->req->sent_ns = time_mono_ns();
    buf_reset(&c->out);
    c->out_off = 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            conn_abort(c, BENCH_E_CONNECT);
            return;
        }
        c->connected = 1;
    }
    if (c->req)
        flush_out(c);
}

/* Formats request r into c->out. */
static void build_request(struct client *cl, struct conn *c, struct bench_req *r)
{
    const struct bench_load *l = cl->l;
    const struct bench_prompt *pr = &l->prompts[r->id % l->nprompts];
    struct bench_reqspec spec = {l->model, pr->text, pr->len, pr->output_len, l->ignore_eos};
    struct buf body;
    char rid[40];
    buf_init(&body, 4 << 20);
    bench_backend_body(l->backend, &spec, &body);
    bench_request_id(cl->run, r->id, rid);
    buf_printf(&c->out, "POST %s%s HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
               "X-Request-Id: %s\r\nContent-Length: %zu\r\n",
               cl->t->prefix, bench_backend_path(l->backend), cl->t->host_header, rid,
               body.len);
    if (l->api_key)
        buf_printf(&c->out, "Authorization: Bearer %s\r\n", l->api_key);
    for (int i = 0; i < l->nheaders; i++)
        buf_printf(&c->out, "%s\r\n", l->headers[i]);
    buf_puts(&c->out, "\r\n");
    buf_append(&c->out, body.p, body.len);
    buf_free(&body);
    r->input_tokens = pr->input_tokens;
}

/* Puts request r on a connection: an idle one, or a new one. */
static int start(struct client *cl, struct bench_req *r)
{
    struct conn *c = cl->idle;
    if (c)
        idle_remove(cl, c);
    else if (cl->nconns >= MAX_CONNS || !(c = conn_open(cl)))
        return -1;
    c->req = r;
    c->ended = 0;
    c->started = time_mono_ns();
    busy_add(cl, c);
    h1_init(&c->h1, 0);
    cl->inflight++;
    build_request(cl, c, r);
    if (buf_err(&c->out)) {
        conn_abort(c, BENCH_E_OVERSIZED);
        return 0;
    }
    if (c->connected)
        flush_out(c);
    else
        event_add(c->wev, NULL);
    return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct client *cl = c->cl;
    (void)what;
    ssize_t n = read(fd, cl->rbuf, sizeof(cl->rbuf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    c->ts = time_mono_ns();
    if (!c->req) { /* an idle connection closed, or sent garbage */
        idle_remove(cl, c);
        conn_free(c);
        return;
    }
    if (n <= 0) {
        if (n == 0 && h1_eof(&c->h1) == 1) {
            c->h1.keep_alive = 0;
            response_done(c);
        } else {
            conn_abort(c, BENCH_E_RESET);
        }
        return;
    }
    cl->run->reads++;
    size_t used = 0;
    int rc = h1_feed(&c->h1, cl->rbuf, (size_t)n, &used, on_body, c);
    if (rc == 1 && used == (size_t)n)
        response_done(c);
    else if (rc == STOP)
        conn_abort(c, c->req->err ? c->req->err : BENCH_E_MALFORMED);
    else if (rc != 0) /* framing error, or bytes after the response */
        conn_abort(c, rc == ERR_TOOBIG ? BENCH_E_OVERSIZED : BENCH_E_MALFORMED);
}

/* --- the arrival process --- */

static struct bench_req *req_at(struct client *cl, size_t i)
{
    return &cl->blocks[i / REQ_BLOCK][i % REQ_BLOCK];
}

/* Creates the next request, released (scheduled) at time `at`. */
static struct bench_req *new_req(struct client *cl, int64_t at)
{
    if (cl->nreqs == cl->nblocks * REQ_BLOCK) {
        size_t nb = cl->nblocks + 1;
        struct bench_req **b = mem_realloc(cl->blocks, nb * sizeof(*b));
        size_t *q = mem_realloc(cl->pending, nb * REQ_BLOCK * sizeof(*q));
        if (b)
            cl->blocks = b;
        if (q)
            cl->pending = q;
        if (!b || !q || !(b[cl->nblocks] = mem_malloc(REQ_BLOCK * sizeof(**b))))
            return NULL;
        cl->nblocks = nb;
    }
    struct bench_req *r = req_at(cl, cl->nreqs);
    memset(r, 0, sizeof(*r));
    r->id = cl->nreqs;
    r->scheduled_ns = at;
    r->warmup = !cl->measuring;
    cl->pending[cl->ptail++] = cl->nreqs++;
    return r;
}

/* 1 while the current phase still has requests to release. */
static int more_to_issue(struct client *cl, int64_t now)
{
    if (cl->stop_issuing)
        return 0;
    if (!cl->measuring)
        return cl->nreqs < (size_t)cl->l->warmup;
    if (cl->l->duration_s > 0)
        return now - cl->phase_start < (int64_t)(cl->l->duration_s * 1e9);
    return cl->nreqs - (size_t)cl->l->warmup < (size_t)cl->l->num_prompts;
}

static int slot_free(const struct client *cl)
{
    return !cl->l->max_concurrency || cl->inflight < cl->l->max_concurrency;
}

/* Starts released requests while the concurrency cap allows. */
static void dispatch_pending(struct client *cl)
{
    int64_t now = 0;
    /* Closed loop (rate inf): a request is released when a slot frees. */
    if (isinf(cl->l->rate) || !cl->measuring) {
        while (cl->phead == cl->ptail && slot_free(cl) &&
               more_to_issue(cl, now ? now : (now = time_mono_ns())))
            if (!new_req(cl, now))
                break;
    }
    while (cl->phead < cl->ptail && slot_free(cl)) {
        struct bench_req *r = req_at(cl, cl->pending[cl->phead++]);
        if (start(cl, r)) {
            r->err = BENCH_E_CONNECT;
            cl->failed++;
            cl->done++;
        }
    }
    if (cl->inflight == 0 && cl->phead == cl->ptail &&
        !more_to_issue(cl, time_mono_ns()))
        event_base_loopbreak(cl->base);
}

/* Open loop: releases every request whose time has come, re-arms. */
static void on_sched(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    int64_t now = time_mono_ns();
    (void)fd, (void)what;
    while (cl->next_arrival <= now && more_to_issue(cl, cl->next_arrival)) {
        double lag = (double)(now - cl->next_arrival) / 1e6;
        cl->lag_sum += lag;
        if (lag > cl->run->dispatch_lag_ms_max)
            cl->run->dispatch_lag_ms_max = lag;
        if (!new_req(cl, cl->next_arrival))
            break;
        cl->next_arrival += (int64_t)(bench_arrival_gap_s(&cl->rng, cl->l->rate,
                                                          cl->l->burstiness) * 1e9);
    }
    dispatch_pending(cl);
    if (more_to_issue(cl, cl->next_arrival)) {
        int64_t wait = cl->next_arrival - time_mono_ns();
        struct timeval tv = {0, 0};
        if (wait > 0) {
            tv.tv_sec = wait / 1000000000;
            tv.tv_usec = (wait % 1000000000) / 1000;
        }
        evtimer_add(cl->sched, &tv);
    }
}

/* --- timeouts, progress, signals --- */

static void progress(struct client *cl, int64_t now, int final)
{
    const struct bench_load *l = cl->l;
    if (!l->progress || !cl->measuring)
        return;
    if (!final && l->progress == 2 && now - cl->last_progress < 5000000000LL)
        return;
    cl->last_progress = now;
    double el = (double)(now - cl->phase_start) / 1e9;
    size_t done = cl->done;
    double rps = el > 0 ? (double)done / el : 0, tps = el > 0 ? (double)cl->tokens_done / el : 0;
    char eta[32] = "";
    if (l->num_prompts && rps > 0)
        snprintf(eta, sizeof(eta), " ETA %.0fs", ((double)l->num_prompts - (double)done) / rps);
    else if (l->duration_s > 0)
        snprintf(eta, sizeof(eta), " ETA %.0fs", l->duration_s > el ? l->duration_s - el : 0);
    char total[24] = "";
    if (l->num_prompts)
        snprintf(total, sizeof(total), "/%d", l->num_prompts);
    fprintf(stderr, "%s%zu%s done, %d in flight, %.1f req/s, %.0f tok/s, %zu errors%s%s",
            l->progress == 1 ? "\r\033[K" : "", done, total, cl->inflight, rps, tps,
            cl->failed, eta, l->progress == 1 && !final ? "" : "\n");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd, (void)what;
    int64_t now = time_mono_ns();
    if (cl->l->request_timeout_s > 0) {
        int64_t limit = (int64_t)(cl->l->request_timeout_s * 1e9);
        for (struct conn *c = cl->busy, *next; c; c = next) {
            next = c->bnext;
            if (c->req && now - c->started > limit)
                conn_abort(c, BENCH_E_TIMEOUT);
        }
    }
    progress(cl, now, 0);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd, (void)what;
    cl->run->interrupted = 1;
    event_base_loopbreak(cl->base);
}

/* Runs the loop until the current phase has issued and finished everything. */
static void run_phase(struct client *cl)
{
    cl->phase_start = time_mono_ns();
    cl->next_arrival = cl->phase_start;
    if (cl->measuring && !isinf(cl->l->rate))
        on_sched(-1, 0, cl);
    else
        dispatch_pending(cl);
    if (cl->inflight || cl->phead < cl->ptail || more_to_issue(cl, time_mono_ns()))
        event_base_dispatch(cl->base);
}

static int setup(struct client *cl, struct err_detail *d)
{
    struct timeval tick = {0, 100000};
    cl->base = event_base_new();
    if (!cl->base)
        return err_set(d, ERR_NOMEM, NULL, "cannot create the event loop");
    cl->sched = evtimer_new(cl->base, on_sched, cl);
    cl->tick = event_new(cl->base, -1, EV_PERSIST, on_tick, cl);
    cl->sigint = evsignal_new(cl->base, SIGINT, on_signal, cl);
    cl->sigterm = evsignal_new(cl->base, SIGTERM, on_signal, cl);
    if (!cl->sched || !cl->tick || !cl->sigint || !cl->sigterm)
        return err_set(d, ERR_NOMEM, NULL, "cannot create events");
    event_add(cl->tick, &tick);
    event_add(cl->sigint, NULL);
    event_add(cl->sigterm, NULL);
    return 0;
}

static void teardown(struct client *cl)
{
    while (cl->busy) {
        struct conn *c = cl->busy;
        busy_remove(cl, c);
        c->req = NULL;
        conn_free(c);
    }
    while (cl->idle) {
        struct conn *c = cl->idle;
        idle_remove(cl, c);
        conn_free(c);
    }
    if (cl->sched) event_free(cl->sched);
    if (cl->tick) event_free(cl->tick);
    if (cl->sigint) event_free(cl->sigint);
    if (cl->sigterm) event_free(cl->sigterm);
    if (cl->base) event_base_free(cl->base);
    mem_free(cl->pending);
}

/*
 * Moves the finished measured requests, in issue order, into one array in
 * out; frees the blocks and everything else.
 */
static int collect(struct client *cl, struct bench_run *out, int keep)
{
    size_t k = 0;
    out->reqs = keep && cl->nreqs ? mem_malloc(cl->nreqs * sizeof(*out->reqs)) : NULL;
    for (size_t i = 0; i < cl->nreqs; i++) {
        struct bench_req *r = req_at(cl, i);
        int finished = r->err || r->http_status;
        if (!out->reqs || r->warmup || !finished) {
            out->incomplete += !r->warmup && !finished;
            mem_free(r->itl_ns);
            continue;
        }
        out->reqs[k++] = *r;
    }
    for (size_t b = 0; b < cl->nblocks; b++)
        mem_free(cl->blocks[b]);
    mem_free(cl->blocks);
    out->n = k;
    return keep && cl->nreqs && !out->reqs ? ERR_NOMEM : 0;
}

int bench_run(const struct bench_target *t, const struct bench_load *l, struct bench_run *out,
              struct err_detail *d)
{
    struct client *cl = mem_calloc(1, sizeof(*cl));
    unsigned char nonce[4];
    memset(out, 0, sizeof(*out));
    if (!cl)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    if (!l->nprompts)
        return mem_free(cl), err_set(d, ERR_INVAL, "dataset", "the dataset is empty");
    cl->l = l;
    cl->t = t;
    cl->run = out;
    if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
        memset(nonce, 0, sizeof(nonce));
    snprintf(out->nonce, sizeof(out->nonce), "%02x%02x%02x%02x", nonce[0], nonce[1], nonce[2],
             nonce[3]);
    bench_rng_seed(&cl->rng, l->seed);
    signal(SIGPIPE, SIG_IGN);
    int rc = setup(cl, d);
    if (!rc && l->warmup > 0)
        run_phase(cl);
    if (!rc && !out->interrupted) {
        cl->measuring = 1;
        cl->failed = 0;
        cl->done = 0;
        cl->tokens_done = 0;
        out->start_ns = time_mono_ns();
        run_phase(cl);
        out->end_ns = time_mono_ns();
        progress(cl, out->end_ns, 1);
    }
    size_t released = cl->nreqs > (size_t)l->warmup ? cl->nreqs - (size_t)l->warmup : 0;
    out->dispatch_lag_ms_mean = released ? cl->lag_sum / (double)released : 0;
    teardown(cl);
    int crc = collect(cl, out, rc == 0);
    if (!rc && crc)
        rc = err_set(d, crc, NULL, "out of memory");
    mem_free(cl);
    return rc;
}

void bench_run_free(struct bench_run *r)
{
    for (size_t i = 0; i < r->n; i++)
        mem_free(r->reqs[i].itl_ns);
    mem_free(r->reqs);
    r->reqs = NULL;
    r->n = 0;
}
