/*
 * Generation requests, from the parsed body to the truth line: validation
 * errors, fault choice (X-Sim-Fault or the --*-rate draws), the engine
 * sequence, streaming each token as the engine produces it (or the whole
 * body at the end), usage and [DONE] tails, injected faults, metrics, and
 * the truth record once the last content byte has reached the socket.
 *
 * A request is "complete" when nothing more will be sent for it; it is
 * finished (truth written, connection free for the next request) when it
 * is complete and the socket has taken the bytes its timestamps wait for.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "sim/sim_int.h"

static const char *const fault_names[] = {NULL, "error", "error-event", "stall", "drop"};

static const char *endpoint_of(int api, int stream)
{
    switch (api) {
    case SIM_API_COMPL: return "/v1/completions";
    case SIM_API_CHAT: return "/v1/chat/completions";
    default: return stream ? "/generate_stream" : "/generate";
    }
}

/* The fault an X-Sim-Fault value asks for; -1 when unknown. */
static int fault_parse(const char *v)
{
    if (!strcmp(v, "none"))
        return SIM_FAULT_NONE;
    for (int f = SIM_FAULT_ERROR; f <= SIM_FAULT_DROP; f++)
        if (!strcmp(v, fault_names[f]))
            return f;
    return -1;
}

static int fault_draw(struct sim_server *s)
{
    const struct sim_opts *o = s->o;
    if (o->error_rate <= 0 && o->stall_rate <= 0 && o->drop_rate <= 0)
        return SIM_FAULT_NONE;
    double u = rng_unit(&s->rng);
    if (u < o->error_rate)
        return SIM_FAULT_ERROR;
    if (u < o->error_rate + o->stall_rate)
        return SIM_FAULT_STALL;
    if (u < o->error_rate + o->stall_rate + o->drop_rate)
        return SIM_FAULT_DROP;
    return SIM_FAULT_NONE;
}

static void write_truth(struct sim_conn *c, const char *fault)
{
    const struct sim__req *r = &c->req;
    struct sim__truth_rec t = {
        .request_id = r->rid,
        .traceparent = r->traceparent,
        .endpoint = r->endpoint,
        .status = r->status,
        .arrival_ns = r->arrival_ns,
        .first_ns = r->first_ns,
        .last_ns = r->last_ns,
        .prompt_tokens = r->out.prompt_tokens,
        .output_tokens = r->written,
        .fault = fault,
    };
    sim__truth_write(&c->srv->truth, &t);
}

/* Complete and flushed: write the truth line and free the connection. */
static void finish(struct sim_conn *c)
{
    struct sim__req *r = &c->req;
    if (!c->active || !r->complete || r->first_mark || r->last_mark)
        return;
    write_truth(c, fault_names[r->fault]);
    c->active = 0;
    sim__conn_next(c);
}

void sim__gen_flushed(struct sim_conn *c)
{
    finish(c);
}

/* Answers with an error before any generation; the request is done. */
static void fail(struct sim_conn *c, int status, const char *type, const char *msg)
{
    struct sim__req *r = &c->req;
    struct buf body;
    buf_init(&body, 8192);
    sim__render_error(&body, r->out.api, status, type, msg);
    r->status = status;
    r->complete = 1;
    write_truth(c, status == 500 ? fault_names[r->fault] : NULL);
    c->active = 0;
    sim__conn_reply(c, status, "application/json", body.p ? body.p : "", body.len);
    buf_free(&body);
}

/* The request completed normally: latency and outcome metrics. */
static void count_done(struct sim_server *s, const struct sim__req *r, int64_t now)
{
    sim__hist_observe(&s->met.e2e, (double)(now - r->arrival_ns) / 1e9);
    s->met.success[r->out.early_stop ? SIM_FIN_STOP : SIM_FIN_LENGTH]++;
    sim__total_request(r->out.early_stop ? SIM_FIN_STOP : SIM_FIN_LENGTH);
}

static size_t ev_open(struct sim_conn *c, struct buf *b)
{
    return c->chunked ? sim__chunk_open(b) : (size_t)-1;
}

static int send_buf(struct sim_conn *c, struct buf *b)
{
    if (buf_err(b)) {
        log_warn("sim", "response over %zu bytes; closing the connection", b->max);
        sim__conn_free(c, "too_large");
        return -1;
    }
    int rc = sim__conn_send(c, b->p, b->len);
    if (b->cap > ((size_t)1 << 20))
        buf_free(b); /* keep the scratch small between large responses */
    if (rc) {
        sim__conn_free(c, "client_closed");
        return -1;
    }
    return 0;
}

/* Non-streamed: the whole body once the last token exists. */
static void full_reply(struct sim_conn *c, int64_t now)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    struct buf body;
    buf_init(&body, SIM_OUT_MAX - 4096);
    sim__render_full(&body, &r->out, r->seq.out_target);
    if (buf_err(&body)) {
        buf_free(&body);
        fail(c, 500, "InternalServerError", "response too large for the simulator");
        return;
    }
    struct buf *b = &s->out;
    buf_reset(b);
    sim__conn_head(c, b, 200, "application/json", (int64_t)body.len);
    buf_append(b, body.p ? body.p : "", body.len);
    buf_free(&body);
    r->status = 200;
    r->complete = 1;
    r->written = r->seq.out_target;
    r->first_mark = r->last_mark = c->queued + b->len;
    count_done(s, r, now);
    if (send_buf(c, &c->srv->out) == 0)
        finish(c);
}

/* OpenAI tails ([usage], [DONE]) and the chunked terminator. */
static void tail(struct sim_conn *c, struct buf *b, int done)
{
    const struct sim__req *r = &c->req;
    size_t at;
    if (r->out.api != SIM_API_TGI) {
        if (r->out.include_usage && done) {
            at = ev_open(c, b);
            sim__render_usage(b, &r->out, r->written);
            sim__chunk_close(b, at);
        }
        at = ev_open(c, b);
        sim__render_done(b);
        sim__chunk_close(b, at);
    }
    if (c->chunked)
        buf_append(b, "0\r\n\r\n", 5);
}

/*
 * Renders token i as an event and writes it; with --stream-interval K the
 * events are held and written K at a time (and at the end), as an engine
 * with a stream interval does, so a client reads several per read.
 */
static void stream_token(struct sim_conn *c, int64_t i, int last, int64_t now)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    int k = s->o->stream_interval > 1 ? s->o->stream_interval : 1;
    struct buf *b = k > 1 ? &c->held : &s->out;
    size_t at;
    if (k == 1)
        buf_reset(b);
    if (r->out.api == SIM_API_CHAT && i == 0) {
        at = ev_open(c, b);
        sim__render_role(b, &r->out);
        sim__chunk_close(b, at);
    }
    at = ev_open(c, b);
    sim__render_token(b, &r->out, i, last);
    sim__chunk_close(b, at);
    r->written++;
    r->last_write_ns = now;
    c->held_first |= i == 0;
    if (!last && r->written % k != 0)
        return; /* held until K events (or the last) */
    uint64_t end = c->queued + b->len;
    if (c->held_first)
        r->first_mark = end;
    c->held_first = 0;
    r->last_mark = end; /* last_ns: the latest content event handed over */
    if (last) {
        r->complete = 1;
        tail(c, b, 1);
        count_done(s, r, now);
    }
    if (send_buf(c, b) != 0)
        return; /* c is gone */
    if (k > 1)
        buf_reset(b);
    if (last)
        finish(c);
}

/* Drop or error-event, instead of the token after the first half. */
static void strike(struct sim_conn *c, int64_t now)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    sim__engine_cancel(&s->eng, &r->seq, now);
    if (r->fault == SIM_FAULT_DROP) {
        sim__conn_free(c, "drop");
        return;
    }
    static const char msg[] = "injected fault: the engine failed mid-generation";
    s->met.success[SIM_FIN_ABORT]++;
    sim__total_request(SIM_FIN_ABORT);
    if (!r->out.stream) {
        fail(c, 500, "InternalServerError", msg);
        return;
    }
    struct buf *b = &s->out;
    buf_reset(b);
    size_t at = ev_open(c, b);
    sim__render_error_event(b, r->out.api, msg);
    sim__chunk_close(b, at);
    tail(c, b, 0);
    r->complete = 1;
    if (send_buf(c, &c->srv->out) == 0)
        finish(c);
}

void sim__gen_token(void *arg, struct sim__seq *seq, int64_t now)
{
    struct sim_server *s = arg;
    struct sim_conn *c = seq->owner;
    struct sim__req *r = &c->req;
    int64_t k = seq->emitted;
    if ((r->fault == SIM_FAULT_DROP || r->fault == SIM_FAULT_ERROR_EVENT) && k > r->half) {
        strike(c, now);
        return;
    }
    s->met.generation_tokens++;
    sim__total_token();
    if (k == 1)
        sim__hist_observe(&s->met.ttft, (double)(now - r->arrival_ns) / 1e9);
    else
        sim__hist_observe(&s->met.itl, (double)(now - r->prev_tok_ns) / 1e9);
    r->prev_tok_ns = now;
    if (r->out.stream)
        stream_token(c, k - 1, k >= seq->out_target, now);
    else if (k >= seq->out_target)
        full_reply(c, now);
}

/* Identity, output length and engine sequence of a validated request. */
static void setup(struct sim_conn *c, const struct sim__params *p, int64_t now)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    r->out.stream = p->stream;
    r->out.include_usage = p->include_usage;
    r->out.continuous_usage = p->continuous_usage;
    r->out.details = p->details;
    r->out.prompt_tokens = p->prompt_tokens;
    int64_t n = p->ignore_eos ? p->max_tokens : rng_range(&s->rng, 1, p->max_tokens);
    r->out.out_target = n;
    r->out.early_stop = n < p->max_tokens;
    r->half = n / 2;
    struct sim__seq *q = &r->seq;
    memset(q, 0, sizeof(*q));
    q->prompt_tokens = p->prompt_tokens;
    q->out_target = n;
    q->stall_at = r->fault == SIM_FAULT_STALL ? r->half : -1;
    q->stall_ns = (int64_t)s->o->stall_ms * 1000000;
    q->owner = c;
    r->last_write_ns = now;
}

static void set_ids(struct sim_conn *c, int api)
{
    struct sim__req *r = &c->req;
    memcpy(r->traceparent, c->head.traceparent, sizeof(r->traceparent));
    if (c->head.request_id[0]) {
        memcpy(r->rid, c->head.request_id, sizeof(r->rid));
    } else {
        struct rng *g = &c->srv->id_rng;
        unsigned long long a = rng_next(g), b = rng_next(g);
        snprintf(r->rid, sizeof(r->rid), "%016llx%016llx", a, b);
    }
    snprintf(r->id, sizeof(r->id), "%s%s",
             api == SIM_API_CHAT ? "chatcmpl-" : api == SIM_API_COMPL ? "cmpl-" : "", r->rid);
}

void sim__gen_start(struct sim_conn *c, int api, int stream, const char *body, size_t n,
                    int64_t now)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    memset(r, 0, sizeof(*r));
    buf_reset(&c->held); /* events a fault cut off from the last response */
    c->held_first = 0;
    c->active = 1;
    r->endpoint = endpoint_of(api, stream == 1);
    r->arrival_ns = now;
    r->first_ns = r->last_ns = -1;
    r->out.api = api;
    r->out.model = s->o->model;
    r->out.created = time_wall_ms() / 1000;
    r->out.id = r->id;
    set_ids(c, api);
    int f = c->head.fault[0] ? fault_parse(c->head.fault) : fault_draw(s);
    if (f < 0) {
        fail(c, 400, "BadRequestError",
             "X-Sim-Fault must be one of none, error, error-event, stall, drop");
        return;
    }
    r->fault = f;
    struct sim__params p = {.stream = stream == 1};
    struct err_detail d;
    err_clear(&d);
    int rc = sim__params_parse(api, body, n, s->o->model, &p, &d);
    if (rc) {
        r->fault = SIM_FAULT_NONE;
        if (rc == ERR_NOTFOUND)
            fail(c, 404, "NotFoundError", d.msg);
        else
            fail(c, 400, "BadRequestError", d.msg);
        return;
    }
    if (f == SIM_FAULT_ERROR) {
        fail(c, 500, "InternalServerError", "injected fault: internal server error");
        return;
    }
    setup(c, &p, now);
    if (p.stream) {
        struct buf *b = &s->out;
        buf_reset(b);
        sim__conn_head(c, b, 200, "text/event-stream; charset=utf-8", -1);
        r->status = 200;
        if (send_buf(c, &c->srv->out))
            return;
    }
    s->met.prompt_tokens += (uint64_t)p.prompt_tokens;
    sim__engine_submit(&s->eng, &r->seq, now);
    sim__rearm(s);
}

void sim__gen_gone(struct sim_conn *c, const char *reason)
{
    struct sim_server *s = c->srv;
    struct sim__req *r = &c->req;
    sim__engine_cancel(&s->eng, &r->seq, time_mono_ns());
    sim__rearm(s);
    if (!r->complete) {
        s->met.success[SIM_FIN_ABORT]++;
        sim__total_request(SIM_FIN_ABORT);
    }
    write_truth(c, r->fault ? fault_names[r->fault] : reason);
    c->active = 0;
}

void sim__gen_keepalive(struct sim_server *s, int64_t now)
{
    struct sim_conn *c, *next;
    for (c = s->conns; c; c = next) {
        next = c->next;
        struct sim__req *r = &c->req;
        if (!c->active || r->complete || r->out.api != SIM_API_TGI || !r->out.stream ||
            r->status != 200 || now - r->last_write_ns < 1000000000)
            continue;
        struct buf *b = &s->out;
        buf_reset(b);
        size_t at = ev_open(c, b);
        buf_puts(b, ":\n\n");
        sim__chunk_close(b, at);
        r->last_write_ns = now;
        send_buf(c, &c->srv->out); /* on failure c is gone; next was saved */
    }
}
