/*
 * What a streamed response means for its request record (see
 * client_int.h): each SSE event is interpreted by the backend; content
 * events set the first/last token times and the inter-token gaps, all
 * stamped with the time its bytes were read; token counts come from the
 * server when it gives them.
 */
#include <string.h>

#include "bench/backend.h"
#include "bench/client_int.h"
#include "core/mem.h"

void bench__stream_init(struct bench_stream *s, struct client *cl)
{
    memset(s, 0, sizeof(*s));
    s->cl = cl;
    sse_init(&s->sse, cl->l->max_event);
}

void bench__stream_free(struct bench_stream *s)
{
    sse_free(&s->sse);
}

void bench__stream_begin(struct bench_stream *s, struct bench_req *r)
{
    sse_free(&s->sse);
    sse_init(&s->sse, s->cl->l->max_event);
    s->req = r;
    s->ended = 0;
}

static int push_gap(struct bench_req *r, int64_t gap)
{
    if (r->itl_len == r->itl_cap) {
        int cap = r->itl_cap ? r->itl_cap * 2 : 64;
        int64_t *p = mem_realloc(r->itl_ns, (size_t)cap * sizeof(*p));
        if (!p)
            return -1;
        r->itl_ns = p;
        r->itl_cap = cap;
    }
    r->itl_ns[r->itl_len++] = gap;
    return 0;
}

static int on_event(void *arg, const struct sse_event *e)
{
    struct bench_stream *s = arg;
    struct bench_req *r = s->req;
    struct bench_ev ev;
    s->cl->run->events++;
    if (bench_backend_event(s->cl->l->backend, e->data, e->len, &ev)) {
        r->err = BENCH_E_MALFORMED;
        return 1;
    }
    if (ev.error) {
        r->err = BENCH_E_STREAM_ERROR;
        return 1;
    }
    if (ev.content) {
        if (!r->first_ns)
            r->first_ns = s->ts;
        else if (push_gap(r, s->ts - r->last_ns))
            return 1;
        r->last_ns = s->ts;
        r->events++;
    }
    if (ev.completion_tokens >= 0) {
        r->output_tokens = (int32_t)ev.completion_tokens;
        r->tok_src = (uint8_t)ev.tok_src;
    }
    if (ev.prompt_tokens >= 0)
        r->input_tokens = (int32_t)ev.prompt_tokens;
    if (ev.end)
        s->ended = 1;
    return 0;
}

int bench__stream_body(struct bench_stream *s, const char *p, size_t n)
{
    int rc = sse_feed(&s->sse, p, n, on_event, s);
    if (rc == ERR_TOOBIG)
        s->req->err = BENCH_E_OVERSIZED;
    else if (rc && !s->req->err)
        s->req->err = BENCH_E_MALFORMED;
    return rc ? BENCH_STOP : 0;
}

int bench__stream_verdict(struct bench_stream *s, int st)
{
    struct bench_req *r = s->req;
    r->http_status = st;
    if (r->tok_src == BENCH_TOK_EVENTS)
        r->output_tokens = r->events;
    if (st == 429)
        return BENCH_E_HTTP_429;
    if (st >= 500)
        return BENCH_E_HTTP_5XX;
    if (st >= 400)
        return BENCH_E_HTTP_4XX;
    if (st != 200)
        return BENCH_E_MALFORMED;
    if (r->err)
        return r->err;
    return s->ended ? BENCH_OK : BENCH_E_TRUNCATED;
}
