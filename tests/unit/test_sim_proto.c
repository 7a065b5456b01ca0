/*
 * Unit tests of the simulator's protocol pieces: the HTTP request-head
 * parser (src/sim/http.c), request parameters (params.c), response
 * rendering and chunk framing (render.c) and the Prometheus text
 * (metrics.c). The sources are included so the tests need no library of
 * their own; rendered JSON is read back with jansson.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sim/http.c"
#include "sim/metrics.c"
#include "sim/params.c"
#include "sim/render.c"

/* --- helpers --- */

static int parse(const char *s, struct sim__head *h)
{
    return sim__head_parse(s, strlen(s), h);
}

static int params(int api, const char *body, struct sim__params *p, struct err_detail *d)
{
    memset(p, 0, sizeof(*p));
    err_clear(d);
    return sim__params_parse(api, body, strlen(body), "m", p, d);
}

/* Parses the JSON of one SSE event "prefix{...}\n\n". */
static json_t *event_json(const char *ev, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    assert_true(n > pl + 2);
    assert_memory_equal(ev, prefix, pl);
    assert_memory_equal(ev + n - 2, "\n\n", 2);
    json_error_t je;
    json_t *j = json_loadb(ev + pl, n - pl - 2, 0, &je);
    if (!j)
        fail_msg("bad JSON (%s): %.*s", je.text, (int)n, ev);
    return j;
}

/* --- the request head --- */

static void test_head_basic(void **state)
{
    (void)state;
    struct sim__head h;
    const char *req = "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\n"
                      "Content-Length: 12\r\nX-Request-Id:  abc-1 \r\n"
                      "x-sim-fault: stall\r\n\r\n{\"prompt\":1}";
    assert_int_equal(parse(req, &h), 1);
    assert_int_equal(h.method, SIM_M_POST);
    assert_string_equal(h.path, "/v1/completions");
    assert_int_equal(h.content_length, 12);
    assert_true(h.keep_alive);
    assert_false(h.http10);
    assert_string_equal(h.request_id, "abc-1");
    assert_string_equal(h.fault, "stall");
    assert_int_equal(h.len, strlen(req) - 12);

    assert_int_equal(parse("\r\nGET /health HTTP/1.0\r\n\r\n", &h), 1);
    assert_int_equal(h.method, SIM_M_GET);
    assert_true(h.http10);
    assert_false(h.keep_alive);
    assert_int_equal(h.content_length, -1);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h), 1);
    assert_true(h.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", &h), 1);
    assert_false(h.keep_alive);
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "Expect: 100-continue\r\n\r\n", &h), 1);
    assert_true(h.has_te);
    assert_true(h.expect_continue);
    assert_int_equal(parse("get / HTTP/1.1\r\n\r\n", &h), 1);
    assert_int_equal(h.method, SIM_M_OTHER); /* methods are case-sensitive */
}

static void test_head_incomplete_and_errors(void **state)
{
    (void)state;
    struct sim__head h;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n", &h), 0);
    assert_int_equal(parse("", &h), 0);
    static const char *const bad[] = {
        "GET / HTTP/2.0\r\n\r\n",
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET x HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: x\ny\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &h) != ERR_PARSE)
            fail_msg("accepted: %s", bad[i]);
    /* The same length twice is fine. */
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n",
                           &h), 1);
    char big[SIM_HEAD_MAX + 64];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(parse(big, &h), ERR_TOOBIG);
    char id[400];
    snprintf(id, sizeof(id), "GET / HTTP/1.1\r\nX-Request-Id: %0200d\r\n\r\n", 0);
    assert_int_equal(parse(id, &h), ERR_RANGE);
}

/* --- request parameters --- */

static void test_count_words(void **state)
{
    (void)state;
    assert_int_equal(sim__count_words("", 0), 0);
    assert_int_equal(sim__count_words("  \n\t ", 5), 0);
    assert_int_equal(sim__count_words("a", 1), 1);
    assert_int_equal(sim__count_words(" one two\tthree\n four ", 21), 4);
}

static void test_params_openai(void **state)
{
    (void)state;
    struct sim__params p;
    struct err_detail d;
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"a b c\"}", &p, &d), 0);
    assert_int_equal(p.prompt_tokens, 3);
    assert_int_equal(p.max_tokens, 16); /* vLLM's default for completions */
    assert_false(p.stream);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":[1,2,3,4],\"max_tokens\":7,"
                                           "\"stream\":true,\"ignore_eos\":true,"
                                           "\"stream_options\":{\"include_usage\":true,"
                                           "\"continuous_usage_stats\":true}}", &p, &d), 0);
    assert_int_equal(p.prompt_tokens, 4);
    assert_int_equal(p.max_tokens, 7);
    assert_true(p.stream && p.ignore_eos && p.include_usage && p.continuous_usage);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":[\"x y\"],\"model\":\"m\"}", &p, &d), 0);
    assert_int_equal(p.prompt_tokens, 2);
    assert_int_equal(params(SIM_API_CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":"
                                          "\"a b\"},{\"role\":\"user\",\"content\":[{\"type\":"
                                          "\"text\",\"text\":\"c d e\"}]},{\"role\":\"assistant\","
                                          "\"content\":null}],\"max_tokens\":3,"
                                          "\"max_completion_tokens\":5}", &p, &d), 0);
    assert_int_equal(p.prompt_tokens, 5);
    assert_int_equal(p.max_tokens, 5); /* max_completion_tokens wins */
}

static void test_params_errors(void **state)
{
    (void)state;
    struct sim__params p;
    struct err_detail d;
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":", &p, &d), ERR_PARSE);
    assert_non_null(strstr(d.msg, "JSON"));
    assert_int_equal(params(SIM_API_COMPL, "42", &p, &d), ERR_PARSE);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"max_tokens\":0}", &p, &d),
                     ERR_INVAL);
    assert_string_equal(d.field, "max_tokens");
    assert_non_null(strstr(d.msg, "at least 1"));
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"max_tokens\":1000001}", &p, &d),
                     ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"max_tokens\":1.5}", &p, &d),
                     ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":[\"a\",\"b\"]}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"n\":2}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"stream\":\"yes\"}", &p, &d),
                     ERR_INVAL);
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"stream_options\":"
                                           "{\"include_usage\":true}}", &p, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "stream=True"));
    assert_int_equal(params(SIM_API_COMPL, "{\"prompt\":\"x\",\"model\":\"z\"}", &p, &d),
                     ERR_NOTFOUND);
    assert_int_equal(params(SIM_API_CHAT, "{\"messages\":[]}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_CHAT, "{\"messages\":[1]}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_TGI, "{\"inputs\":1}", &p, &d), ERR_INVAL);
    assert_int_equal(params(SIM_API_TGI, "{\"inputs\":\"x\",\"parameters\":"
                                         "{\"max_new_tokens\":0}}", &p, &d), ERR_INVAL);
}

static void test_params_tgi(void **state)
{
    (void)state;
    struct sim__params p;
    struct err_detail d;
    assert_int_equal(params(SIM_API_TGI, "{\"inputs\":\"a b\"}", &p, &d), 0);
    assert_int_equal(p.prompt_tokens, 2);
    assert_int_equal(p.max_tokens, 100);
    assert_int_equal(params(SIM_API_TGI, "{\"inputs\":\"a\",\"parameters\":{\"max_new_tokens\":"
                                         "9,\"details\":true,\"do_sample\":false,"
                                         "\"ignore_eos\":true}}", &p, &d), 0);
    assert_int_equal(p.max_tokens, 9);
    assert_true(p.details && p.ignore_eos);
    memset(&p, 0, sizeof(p));
    p.stream = 1; /* set by the route */
    assert_int_equal(sim__params_parse(SIM_API_TGI, "{\"inputs\":\"\"}", 13, "m", &p, &d), 0);
    assert_true(p.stream);
    assert_int_equal(p.prompt_tokens, 0);
}

/* --- rendering --- */

static struct sim__out out_of(int api)
{
    struct sim__out o = {.api = api, .id = api == SIM_API_CHAT ? "chatcmpl-1" : "cmpl-1",
                         .model = "m\"q", .created = 1700000000, .prompt_tokens = 3,
                         .out_target = 2};
    return o;
}

static void test_render_completion_events(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    struct sim__out o = out_of(SIM_API_COMPL);
    sim__render_token(&b, &o, 0, 0);
    json_t *j = event_json(b.p, b.len, "data: ");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m\"q");
    assert_true(json_is_null(json_object_get(j, "usage")));
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), " tok0");
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    json_decref(j);
    buf_reset(&b);
    o.continuous_usage = 1;
    o.early_stop = 1;
    sim__render_token(&b, &o, 1, 1);
    j = event_json(b.p, b.len, "data: ");
    c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "completion_tokens")), 2);
    json_decref(j);
    buf_reset(&b);
    o.include_usage = 1;
    sim__render_usage(&b, &o, 2);
    j = event_json(b.p, b.len, "data: ");
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "total_tokens")), 5);
    json_decref(j);
    buf_free(&b);
}

static void test_render_chat_and_tgi(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    struct sim__out o = out_of(SIM_API_CHAT);
    sim__render_role(&b, &o);
    json_t *j = event_json(b.p, b.len, "data: ");
    json_t *delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(delta, "content")), "");
    assert_null(json_object_get(j, "usage"));
    json_decref(j);
    buf_reset(&b);
    o = out_of(SIM_API_TGI);
    o.details = 1;
    sim__render_token(&b, &o, 1, 1);
    assert_false(b.p[5] == ' ');
    j = event_json(b.p, b.len, "data:");
    assert_int_equal(json_integer_value(json_object_get(j, "index")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "generated_text")), " tok0 tok1");
    json_t *det = json_object_get(j, "details");
    assert_string_equal(json_string_value(json_object_get(det, "finish_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(det, "generated_tokens")), 2);
    json_decref(j);
    buf_reset(&b);
    sim__render_full(&b, &o, 2);
    j = json_loadb(b.p, b.len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "details"), "tokens")),
                     2);
    json_decref(j);
    buf_reset(&b);
    sim__render_error_event(&b, SIM_API_COMPL, "boom \"x\"");
    assert_string_equal(b.p, "data: {\"error\":{\"message\":\"boom \\\"x\\\"\","
                             "\"type\":\"InternalServerError\",\"code\":500}}\n\n");
    buf_reset(&b);
    sim__render_error(&b, SIM_API_TGI, 400, "BadRequestError", "bad");
    assert_string_equal(b.p, "{\"error\":\"bad\",\"error_type\":\"validation\"}");
    buf_free(&b);
}

static void test_chunk_framing(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "HEAD");
    size_t at = sim__chunk_open(&b);
    buf_puts(&b, "data: x\n\n");
    sim__chunk_close(&b, at);
    at = sim__chunk_open(&b);
    for (int i = 0; i < 300; i++)
        buf_putc(&b, 'y');
    sim__chunk_close(&b, at);
    assert_int_equal(memcmp(b.p, "HEAD9\r\ndata: x\n\n\r\n12c\r\n", 23), 0);
    assert_int_equal(b.len, 4 + 3 + 9 + 2 + 5 + 300 + 2);
    assert_memory_equal(b.p + b.len - 3, "y\r\n", 3);
    size_t len = b.len;
    sim__chunk_close(&b, (size_t)-1); /* not chunked: nothing */
    assert_int_equal(b.len, len);
    char t[24];
    assert_int_equal(sim__tok_text(t, 123), 7);
    assert_string_equal(t, " tok123");
    buf_free(&b);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct sim__metrics m;
    sim__metrics_init(&m);
    sim__hist_observe(&m.ttft, 0.0005);
    sim__hist_observe(&m.ttft, 0.03);
    sim__hist_observe(&m.ttft, 9999);
    m.prompt_tokens = 7;
    struct buf b;
    buf_init(&b, 1 << 20);
    sim__metrics_render(&b, &m, "a\"b", 3, 4, 0.25);
    assert_int_equal(buf_err(&b), 0);
    const char *want[] = {
        "vllm:num_requests_running{model_name=\"a\\\"b\",engine=\"0\"} 3\n",
        "vllm:num_requests_waiting{model_name=\"a\\\"b\",engine=\"0\"} 4\n",
        "vllm:gpu_cache_usage_perc{model_name=\"a\\\"b\",engine=\"0\"} 0.25\n",
        "vllm:prompt_tokens_total{model_name=\"a\\\"b\",engine=\"0\"} 7\n",
        "vllm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\",engine=\"0\",le=\"0.001\"} 1.0\n",
        "vllm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\",engine=\"0\",le=\"0.04\"} 2.0\n",
        "vllm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\",engine=\"0\",le=\"2560.0\"} 2.0\n",
        "vllm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\",engine=\"0\",le=\"+Inf\"} 3.0\n",
        "vllm:time_to_first_token_seconds_count{model_name=\"a\\\"b\",engine=\"0\"} 3.0\n",
        "# TYPE vllm:e2e_request_latency_seconds histogram\n",
        "# TYPE vllm:inter_token_latency_seconds histogram\n",
        "finished_reason=\"length\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(b.p, want[i]))
            fail_msg("missing: %s", want[i]);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_basic),
        cmocka_unit_test(test_head_incomplete_and_errors),
        cmocka_unit_test(test_count_words),
        cmocka_unit_test(test_params_openai),
        cmocka_unit_test(test_params_errors),
        cmocka_unit_test(test_params_tgi),
        cmocka_unit_test(test_render_completion_events),
        cmocka_unit_test(test_render_chat_and_tgi),
        cmocka_unit_test(test_chunk_framing),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
