/*
 * The benchmark client's stream parsing: SSE framing (sse.c), the
 * tree-less JSON scanner (jscan.c) and what each backend makes of an
 * event (backend.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "bench/backend.h"
#include "bench/jscan.h"
#include "bench/sse.h"

#define MAXEV 16

struct got {
    int n;
    char data[MAXEV][512];
    char type[MAXEV][32];
};

static int collect(void *arg, const struct sse_event *ev)
{
    struct got *g = arg;
    if (g->n < MAXEV) {
        snprintf(g->data[g->n], sizeof(g->data[0]), "%s", ev->data);
        snprintf(g->type[g->n], sizeof(g->type[0]), "%s", ev->type);
    }
    g->n++;
    return 0;
}

/* Feeds s whole, then split at every byte boundary, then byte by byte;
   every way must give the same events. */
static void parse_all_ways(const char *s, struct got *out)
{
    size_t n = strlen(s);
    struct sse_parser p;
    memset(out, 0, sizeof(*out));
    sse_init(&p, 4096);
    assert_int_equal(sse_feed(&p, s, n, collect, out), 0);
    sse_free(&p);
    for (size_t cut = 0; cut <= n; cut++) {
        struct got g;
        memset(&g, 0, sizeof(g));
        sse_init(&p, 4096);
        assert_int_equal(sse_feed(&p, s, cut, collect, &g), 0);
        assert_int_equal(sse_feed(&p, s + cut, n - cut, collect, &g), 0);
        sse_free(&p);
        assert_int_equal(g.n, out->n);
        for (int i = 0; i < g.n && i < MAXEV; i++) {
            assert_string_equal(g.data[i], out->data[i]);
            assert_string_equal(g.type[i], out->type[i]);
        }
    }
    struct got g;
    memset(&g, 0, sizeof(g));
    sse_init(&p, 4096);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sse_feed(&p, s + i, 1, collect, &g), 0);
    sse_free(&p);
    assert_int_equal(g.n, out->n);
}

static void test_openai_stream_every_split(void **state)
{
    (void)state;
    struct got g;
    parse_all_ways("data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n", &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.data[0], "{\"a\":1}");
    assert_string_equal(g.data[2], "[DONE]");
}

static void test_tgi_no_space_comments_crlf(void **state)
{
    (void)state;
    struct got g;
    parse_all_ways(":keep-alive\r\n\r\ndata:{\"x\":1}\r\n\r\n: ping\n\ndata:{\"y\":2}\r\r", &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.data[0], "{\"x\":1}");
    assert_string_equal(g.data[1], "{\"y\":2}");
}

static void test_multiline_data_and_event_type(void **state)
{
    (void)state;
    struct got g;
    parse_all_ways("event: error\ndata: line1\ndata:line2\nid: 7\nretry: 10\n\n", &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.data[0], "line1\nline2");
    assert_string_equal(g.type[0], "error");
}

static void test_no_done_and_truncation(void **state)
{
    (void)state;
    struct sse_parser p;
    struct got g;
    memset(&g, 0, sizeof(g));
    sse_init(&p, 4096);
    const char *s = "data: {\"a\":1}\n\ndata: {\"b\"";
    assert_int_equal(sse_feed(&p, s, strlen(s), collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_true(sse_pending(&p)); /* the second event never finished */
    sse_free(&p);
}

static void test_oversized_event_refused(void **state)
{
    (void)state;
    struct sse_parser p;
    struct got g;
    char big[600];
    memset(&g, 0, sizeof(g));
    memset(big, 'x', sizeof(big));
    sse_init(&p, 256);
    assert_int_equal(sse_feed(&p, "data: ", 6, collect, &g), 0);
    assert_int_equal(sse_feed(&p, big, sizeof(big), collect, &g), ERR_TOOBIG);
    sse_free(&p);
    /* Many short data lines adding up past the cap are refused too. */
    sse_init(&p, 256);
    int rc = 0;
    for (int i = 0; i < 100 && !rc; i++)
        rc = sse_feed(&p, "data: 0123456789\n", 17, collect, &g);
    assert_int_equal(rc, ERR_TOOBIG);
    assert_int_equal(g.n, 0);
    sse_free(&p);
}

static int stop_at_first(void *arg, const struct sse_event *ev)
{
    (void)ev;
    (*(int *)arg)++;
    return 7;
}

static void test_callback_stops_feed(void **state)
{
    (void)state;
    struct sse_parser p;
    int n = 0;
    sse_init(&p, 256);
    const char *s = "data: a\n\ndata: b\n\n";
    assert_int_equal(sse_feed(&p, s, strlen(s), stop_at_first, &n), 7);
    assert_int_equal(n, 1);
    sse_free(&p);
}

static void test_invalid_utf8_passes_through_sse(void **state)
{
    (void)state;
    struct got g;
    parse_all_ways("data: \xff\xfe{}\n\n", &g);
    assert_int_equal(g.n, 1);
    struct bench_ev ev;
    /* ...and the backend calls it malformed rather than crashing. */
    assert_int_equal(bench_backend_event(BENCH_OPENAI, g.data[0], strlen(g.data[0]), &ev), -1);
}

static struct bench_ev event(int b, const char *s)
{
    struct bench_ev ev;
    assert_int_equal(bench_backend_event(b, s, strlen(s), &ev), 0);
    return ev;
}

static void test_backend_openai_events(void **state)
{
    (void)state;
    struct bench_ev ev = event(BENCH_VLLM,
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\" tok\",\"finish_reason\":null}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}");
    assert_true(ev.content);
    assert_int_equal(ev.completion_tokens, 3);
    assert_int_equal(ev.prompt_tokens, 12);
    assert_false(ev.end);
    ev = event(BENCH_OPENAI, "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}");
    assert_false(ev.content); /* a usage-only chunk is not a token */
    assert_int_equal(ev.completion_tokens, 9);
    ev = event(BENCH_OPENAI, "{\"choices\":[{\"text\":\"\"}],\"usage\":null}");
    assert_false(ev.content);
    assert_int_equal(ev.completion_tokens, -1);
    ev = event(BENCH_OPENAI, " [DONE] ");
    assert_true(ev.end);
}

static void test_backend_chat_role_chunk_is_not_a_token(void **state)
{
    (void)state;
    struct bench_ev ev = event(BENCH_OPENAI_CHAT,
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}");
    assert_false(ev.content);
    ev = event(BENCH_OPENAI_CHAT, "{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}");
    assert_false(ev.content);
    ev = event(BENCH_OPENAI_CHAT, "{\"choices\":[{\"delta\":{\"content\":\"Hi\\\"\"}}]}");
    assert_true(ev.content);
}

static void test_backend_tgi_events(void **state)
{
    (void)state;
    struct bench_ev ev = event(BENCH_TGI,
        "{\"index\":1,\"token\":{\"id\":5,\"text\":\" a\",\"logprob\":-0.1,\"special\":false},"
        "\"generated_text\":null,\"details\":null}");
    assert_true(ev.content);
    assert_false(ev.end);
    ev = event(BENCH_TGI,
        "{\"index\":2,\"token\":{\"id\":6,\"text\":\" b\",\"special\":false},"
        "\"generated_text\":\" a b\",\"details\":{\"finish_reason\":\"length\","
        "\"generated_tokens\":2,\"seed\":null}}");
    assert_true(ev.content);
    assert_true(ev.end);
    assert_int_equal(ev.completion_tokens, 2);
    struct bench_ev done;
    /* TGI sends no [DONE]: one would be a protocol error. */
    assert_int_equal(bench_backend_event(BENCH_TGI, "[DONE]", 6, &done), -1);
}

static void test_backend_error_events(void **state)
{
    (void)state;
    struct bench_ev ev = event(BENCH_LMDEPLOY, "{\"error\":{\"message\":\"boom\",\"code\":500}}");
    assert_true(ev.error);
    ev = event(BENCH_TGI, "{\"error\":\"Input validation error\",\"error_type\":\"validation\"}");
    assert_true(ev.error);
    ev = event(BENCH_OPENAI, "{\"error\":null,\"choices\":[{\"text\":\"x\"}]}");
    assert_false(ev.error);
    assert_true(ev.content);
    struct bench_ev bad;
    assert_int_equal(bench_backend_event(BENCH_OPENAI, "{\"choices\":[", 12, &bad), -1);
    assert_int_equal(bench_backend_event(BENCH_OPENAI, "not json", 8, &bad), -1);
}

static void test_jscan_bounds(void **state)
{
    (void)state;
    const char *s = "{\"a\":{\"b\":[1,2,{\"c\":\"x\\\"y\"}]},\"n\":-42,\"f\":1.5,\"z\":null}";
    const char *end = s + strlen(s);
    int64_t v;
    assert_int_equal(js_int(js_get(s, end, "n"), end, &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(js_int(js_get(s, end, "f"), end, &v), -1);
    assert_true(js_is_null(js_get(s, end, "z"), end));
    assert_null(js_get(s, end, "missing"));
    assert_non_null(js_first(js_get(js_get(s, end, "a"), end, "b"), end));
    assert_ptr_equal(js_skip(s, end), end);
    /* Every truncation of a valid document is refused, never overread. */
    for (size_t k = 0; k < strlen(s); k++)
        assert_null(js_skip(s, s + k));
    char deep[400];
    memset(deep, '[', sizeof(deep));
    assert_null(js_skip(deep, deep + sizeof(deep)));
}

static void test_request_bodies(void **state)
{
    (void)state;
    struct bench_reqspec r = {"m", "hello \"world\"", 13, 32, 1};
    struct buf b;
    buf_init(&b, 4096);
    bench_backend_body(BENCH_VLLM, &r, &b);
    assert_non_null(strstr(b.p, "\"prompt\":\"hello \\\"world\\\"\""));
    assert_non_null(strstr(b.p, "\"max_tokens\":32"));
    assert_non_null(strstr(b.p, "\"include_usage\":true"));
    assert_non_null(strstr(b.p, "\"continuous_usage_stats\":true"));
    assert_non_null(strstr(b.p, "\"ignore_eos\":true"));
    buf_reset(&b);
    bench_backend_body(BENCH_OPENAI_CHAT, &r, &b);
    assert_non_null(strstr(b.p, "\"messages\":[{\"role\":\"user\",\"content\":"));
    assert_non_null(strstr(b.p, "\"max_completion_tokens\":32"));
    buf_reset(&b);
    bench_backend_body(BENCH_TGI, &r, &b);
    assert_non_null(strstr(b.p, "\"inputs\":"));
    assert_non_null(strstr(b.p, "\"max_new_tokens\":32"));
    assert_non_null(strstr(b.p, "\"details\":true"));
    assert_null(strstr(b.p, "\"stream\""));
    buf_free(&b);
    assert_int_equal(bench_backend_parse("openai-chat"), BENCH_OPENAI_CHAT);
    assert_int_equal(bench_backend_parse("nope"), -1);
    assert_string_equal(bench_backend_path(BENCH_TGI), "/generate_stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream_every_split),
        cmocka_unit_test(test_tgi_no_space_comments_crlf),
        cmocka_unit_test(test_multiline_data_and_event_type),
        cmocka_unit_test(test_no_done_and_truncation),
        cmocka_unit_test(test_oversized_event_refused),
        cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_invalid_utf8_passes_through_sse),
        cmocka_unit_test(test_backend_openai_events),
        cmocka_unit_test(test_backend_chat_role_chunk_is_not_a_token),
        cmocka_unit_test(test_backend_tgi_events),
        cmocka_unit_test(test_backend_error_events),
        cmocka_unit_test(test_jscan_bounds),
        cmocka_unit_test(test_request_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
