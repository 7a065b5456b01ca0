/*
 * The benchmark client's event loop (see client.h).
 *
 * DESIGN: everything runs on one libevent loop in one thread. Requests
 * are released by a timer following the arrival process (or, at rate inf,
 * whenever a slot frees); a released request waits in a FIFO while the
 * concurrency cap is reached, and its queueing delay is measured. A
 * transport (transport_native.c by default, transport_curl.c) moves the
 * bytes; every read takes one timestamp, and every SSE event parsed out of
 * that read carries it (stream.c), which is what "measured when the bytes
 * were read" means and costs one clock read per read, not per event. A
 * 100 ms tick enforces request timeouts and draws the progress line.
 */
#include "bench/client.h"

#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "bench/backend.h"
#include "bench/client_int.h"
#include "bench/dataset.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define REQ_BLOCK 4096

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

void bench_traceparent(const struct bench_run *r, uint64_t id, char out[TRACE_PARENT_LEN + 1])
{
    struct trace_ctx c = r->trace;
    uint64_t z = r->span_seed ^ (id * 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    if (!z)
        z = 1;
    for (int i = 0; i < 8; i++)
        c.span_id[i] = (uint8_t)(z >> (56 - 8 * i));
    trace_format_parent(&c, out);
}

void bench__request_body(struct client *cl, struct bench_req *r, struct buf *body)
{
    const struct bench_load *l = cl->l;
    size_t k = r->id, m = r->id - (size_t)l->warmup; /* see bench_load.todo */
    if (!r->warmup && l->todo && m < l->ntodo)
        k = (size_t)l->warmup + l->todo[m];
    const struct bench_prompt *pr = &l->prompts[k % l->nprompts];
    struct bench_reqspec spec = {l->model, pr->text, pr->len, pr->output_len, l->ignore_eos};
    bench_backend_body(l->backend, &spec, body);
    r->input_tokens = pr->input_tokens;
}

void bench__finish(struct client *cl, struct bench_req *r, int err)
{
    r->err = (uint8_t)err;
    if (!r->http_status && !err)
        r->http_status = 200;
    if (err)
        cl->failed++;
    cl->done++;
    cl->inflight--;
    if (!err)
        cl->tokens_done += r->output_tokens;
    if (cl->l->on_finish && !r->warmup)
        cl->l->on_finish(cl->l->on_finish_arg, r);
    if (cl->l->max_errors && cl->measuring && (int)cl->failed >= cl->l->max_errors) {
        cl->run->stopped_by_errors = 1;
        cl->stop_issuing = 1;
    }
    dispatch_pending(cl);
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

/*
 * Starts released requests while the concurrency cap allows. In a closed
 * loop (rate inf, and the warm-up) a request is released the moment a
 * slot frees. Breaks the loop when the phase has nothing left.
 */
static void dispatch_pending(struct client *cl)
{
    int closed = isinf(cl->l->rate) || !cl->measuring;
    while (slot_free(cl)) {
        if (cl->phead == cl->ptail) {
            int64_t now = time_mono_ns();
            if (!closed || !more_to_issue(cl, now) || !new_req(cl, now))
                break;
        }
        struct bench_req *r = req_at(cl, cl->pending[cl->phead++]);
        cl->inflight++;
        if (cl->l->on_start && !r->warmup)
            cl->l->on_start(cl->l->on_finish_arg);
        if (cl->tr->start(cl, r)) {
            bench__finish(cl, r, BENCH_E_CONNECT);
            return; /* bench__finish dispatched what could go */
        }
    }
    if (cl->inflight == 0 && cl->phead == cl->ptail && !more_to_issue(cl, time_mono_ns()))
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

/*
 * Ends the run as interrupted: at once, or with a drain, by releasing no
 * more requests and breaking the loop when the last one in flight ends or
 * the drain's time is up (on_tick checks).
 */
static void interrupt(struct client *cl, int64_t now)
{
    if (!cl->run->interrupted) {
        cl->run->interrupted = 1;
        cl->drain_until = cl->l->drain_s > 0 ? now + (int64_t)(cl->l->drain_s * 1e9) : now;
        cl->stop_issuing = 1;
        cl->phead = cl->ptail; /* released but not started: never sent */
    }
    if (now >= cl->drain_until || cl->inflight == 0)
        event_base_loopbreak(cl->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd, (void)what;
    int64_t now = time_mono_ns();
    cl->tr->sweep(cl, now);
    progress(cl, now, 0);
    if (cl->run->interrupted || (cl->l->stop && *cl->l->stop))
        interrupt(cl, now);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd, (void)what;
    interrupt(cl, time_mono_ns());
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
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
    if (cl->tr)
        cl->tr->shutdown(cl);
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
    cl->url = l->url;
    cl->tr = l->transport_curl ? &bench_curl_transport : &bench_native_transport;
    cl->run = out;
    if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
        memset(nonce, 0, sizeof(nonce));
    snprintf(out->nonce, sizeof(out->nonce), "%02x%02x%02x%02x", nonce[0], nonce[1], nonce[2],
             nonce[3]);
    if (l->join) {
        out->trace = *l->join;
    } else {
        trace_random_id(out->trace.trace_id, 16);
        memset(out->trace.span_id, 0, 8);
        out->trace.flags = 1; /* sampled */
    }
    trace_random_id((uint8_t *)&out->span_seed, sizeof(out->span_seed));
    rng_seed(&cl->rng, l->seed);
    out->kernel_ts = l->kernel_ts && !l->transport_curl;
    signal(SIGPIPE, SIG_IGN);
    int rc = setup(cl, d);
    if (!rc)
        rc = cl->tr->init(cl, d);
    if (!rc && l->stop && *l->stop)
        out->interrupted = 1;
    if (!rc && l->warmup > 0 && !out->interrupted)
        run_phase(cl);
    if (!rc && !out->interrupted) {
        cl->measuring = 1;
        cl->failed = 0;
        cl->done = 0;
        cl->tokens_done = 0;
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        out->start_ns = time_mono_ns();
        run_phase(cl);
        out->end_ns = time_mono_ns();
        getrusage(RUSAGE_SELF, &ru1);
        out->cpu_user_s = tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime);
        out->cpu_sys_s = tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime);
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
