/*
 * Fuzz target: what the benchmark client reads from a server under test —
 * the HTTP/1.1 response parser (bench/h1.c), the SSE parser (bench/sse.c)
 * and each backend's reading of an event (bench/backend.c, jscan.c). The
 * first byte picks the backend and how the rest is split into reads; the
 * rest is the byte stream. Properties: the parser never claims to consume
 * more than it was given, and a response parsed whole and parsed in pieces
 * gives the same events.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/backend.h"
#include "bench/h1.h"
#include "bench/sse.h"

struct run {
    int backend;
    struct sse_parser sse;
    int events, content;
    int64_t tokens;
};

static int on_event(void *arg, const struct sse_event *e)
{
    struct run *r = arg;
    struct bench_ev ev;
    r->events++;
    if (bench_backend_event(r->backend, e->data, e->len, &ev) == 0) {
        r->content += ev.content;
        if (ev.completion_tokens >= 0)
            r->tokens = ev.completion_tokens;
    }
    return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
    struct run *r = arg;
    return sse_feed(&r->sse, p, n, on_event, r) ? 2 : 0;
}

/* Parses data in reads of `step` bytes (0: whole); fills r. */
static void parse(const char *data, size_t n, size_t step, struct run *r)
{
    struct h1_parser *h = malloc(sizeof(*h));
    if (!h)
        return;
    h1_init(h, 0);
    sse_init(&r->sse, 4096);
    size_t off = 0;
    while (off < n) {
        size_t k = step && n - off > step ? step : n - off, used = 0;
        int rc = h1_feed(h, data + off, k, &used, on_body, r);
        if (used > k)
            abort();
        off += used;
        if (rc != 0 || used < k)
            break;
    }
    if (off == n)
        (void)h1_eof(h);
    sse_free(&r->sse);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int backend = data[0] % 5;
    size_t step = (size_t)(data[0] >> 3) + 1;
    struct run whole = {.backend = backend}, split = {.backend = backend};
    parse((const char *)data + 1, size - 1, 0, &whole);
    parse((const char *)data + 1, size - 1, step, &split);
    if (whole.events != split.events || whole.content != split.content ||
        whole.tokens != split.tokens) {
        fprintf(stderr, "fuzz_bench_stream: whole %d/%d/%lld vs split(%zu) %d/%d/%lld\n",
                whole.events, whole.content, (long long)whole.tokens, step, split.events,
                split.content, (long long)split.tokens);
        abort();
    }
    return 0;
}
