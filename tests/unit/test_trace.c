/*
 * Unit tests of src/core/trace.c and trace_otlp.c: the traceparent parser
 * (valid, each field malformed, all-zero ids, case, length), formatting
 * round trips, tracestate bounds, parent-based sampling, the thread's
 * current span and its children, the queue bound and drop counter, and the
 * OTLP JSON encoding (checked by parsing it back with Jansson).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "core/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *s, struct trace_ctx *c)
{
    return trace_parse_parent(s, strlen(s), c);
}

static void test_parse_valid(void **state)
{
    (void)state;
    struct trace_ctx c;
    char out[TRACE_PARENT_LEN + 1];
    assert_int_equal(parse(TP, &c), 0);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.span_id[7], 0xb7);
    assert_int_equal(c.flags, 1);
    trace_format_parent(&c, out);
    assert_string_equal(out, TP);
}

static void test_parse_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     /* zero parent */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",      /* short flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",  /* trailing */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",     /* not hex */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",     /* flags */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trace_ctx c;
        memset(&c, 7, sizeof(c));
        assert_int_equal(parse(bad[i], &c), ERR_PARSE);
        assert_int_equal(c.flags, 7); /* untouched */
    }
    assert_int_equal(trace_parse_parent(NULL, 0, NULL), ERR_PARSE);
}

static void test_state_bound(void **state)
{
    (void)state;
    char s[TRACE_STATE_MAX + 2];
    memset(s, 'a', sizeof(s) - 1);
    s[TRACE_STATE_MAX] = '\0';
    assert_true(trace_state_ok(s));
    s[TRACE_STATE_MAX] = 'a';
    s[TRACE_STATE_MAX + 1] = '\0';
    assert_false(trace_state_ok(s));
    assert_false(trace_state_ok("a=b\r\nX: y"));
    assert_true(trace_state_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
}

static void test_off_is_inert(void **state)
{
    (void)state;
    struct trace_span sp, child;
    struct trace_ctx c;
    assert_int_equal(parse(TP, &c), 0);
    assert_false(trace_enabled());
    assert_int_equal(trace_server_begin(&sp, &c, "GET"), 0);
    assert_null(trace_current());
    assert_int_equal(trace_child_begin(&child, "db", TRACE_KIND_CLIENT), 0);
}

static void test_spans_and_queue(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    struct trace_span sp, child, out[8];
    struct trace_ctx c, unsampled;
    assert_int_equal(trace_init(4, 1.0), 0);
    assert_int_equal(trace_metrics(m), 0);
    assert_int_equal(parse(TP, &c), 0);
    unsampled = c;
    unsampled.flags = 0;
    assert_int_equal(trace_server_begin(&sp, &unsampled, "GET"), 0); /* parent-based */
    assert_int_equal(trace_server_begin(&sp, &c, "GET"), 1);
    assert_ptr_equal(trace_current(), &sp);
    assert_memory_equal(sp.ctx.trace_id, c.trace_id, 16);
    assert_memory_equal(sp.parent_id, c.span_id, 8);
    assert_int_equal(trace_child_begin(&child, "db SELECT", TRACE_KIND_CLIENT), 1);
    trace_attr_str(&child, "db.system", "sqlite");
    trace_child_end(&child, 0);
    trace_child_done("cache get", TRACE_KIND_CLIENT, trace_now_ns(), "memory", "get", 0);
    trace_server_end(&sp);
    assert_null(trace_current());
    assert_int_equal(trace_queued(), 3);
    assert_int_equal(trace_dequeue(out, 8), 3);
    assert_memory_equal(out[0].parent_id, sp.ctx.span_id, 8);
    assert_memory_equal(out[0].ctx.trace_id, c.trace_id, 16);
    assert_memory_equal(out[1].parent_id, sp.ctx.span_id, 8);
    assert_memory_equal(out[2].ctx.span_id, sp.ctx.span_id, 8);
    /* The bound: 4 fit, the next 2 are dropped and counted. */
    for (int i = 0; i < 6; i++)
        (void)trace_enqueue(&sp);
    assert_int_equal(trace_queued(), 4);
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_non_null(strstr(b.p, "modelcat_trace_spans_dropped_total 2"));
    buf_free(&b);
    /* A new trace at ratio 0 is not sampled. */
    trace_fini();
    assert_int_equal(trace_init(4, 0.0), 0);
    assert_int_equal(trace_server_begin(&sp, NULL, "GET"), 0);
    assert_int_equal(trace_server_begin(&sp, &c, "GET"), 1);
    trace_server_end(&sp);
    trace_fini();
    metrics_destroy(m);
}

static void test_otlp_encode(void **state)
{
    (void)state;
    struct trace_span sp[2];
    struct trace_ctx c;
    struct buf b;
    memset(sp, 0, sizeof(sp));
    assert_int_equal(parse(TP, &c), 0);
    sp[0].ctx = c;
    snprintf(sp[0].name, sizeof(sp[0].name), "GET /api/v1/models");
    sp[0].kind = TRACE_KIND_SERVER;
    sp[0].start_ns = 1700000000000000000LL;
    sp[0].end_ns = 1700000000000001000LL;
    trace_attr_str(&sp[0], "http.route", "/api/v1/models");
    trace_attr_int(&sp[0], "http.status_code", 200);
    snprintf(sp[0].state, sizeof(sp[0].state), "k=v");
    sp[1] = sp[0];
    memcpy(sp[1].parent_id, c.span_id, 8);
    sp[1].ctx.span_id[0] ^= 1;
    sp[1].kind = TRACE_KIND_CLIENT;
    sp[1].error = 1;
    sp[1].state[0] = '\0';
    buf_init(&b, 1 << 20);
    assert_int_equal(trace_otlp_encode(&b, sp, 2, "0.1.0"), 0);
    json_error_t e;
    json_t *j = json_loadb(b.p, b.len, 0, &e);
    assert_non_null(j);
    json_t *rs = json_array_get(json_object_get(j, "resourceSpans"), 0);
    json_t *ra = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ra, 0), "key")),
                        "service.name");
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0),
                                    "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *s0 = json_array_get(spans, 0), *s1 = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(s0, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(s0, "spanId")), "00f067aa0ba902b7");
    assert_null(json_object_get(s0, "parentSpanId"));
    assert_string_equal(json_string_value(json_object_get(s0, "traceState")), "k=v");
    assert_int_equal(json_integer_value(json_object_get(s0, "kind")), 2);
    assert_string_equal(json_string_value(json_object_get(s0, "startTimeUnixNano")),
                        "1700000000000000000");
    json_t *a1 = json_array_get(json_object_get(s0, "attributes"), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a1, "value"), "intValue")), "200");
    assert_string_equal(json_string_value(json_object_get(s1, "parentSpanId")),
                        "00f067aa0ba902b7");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "status"), "code")),
                     2);
    json_decref(j);
    /* Over the cap: an error, not a truncated document passed on. */
    buf_reset(&b);
    struct buf small;
    buf_init(&small, 64);
    assert_int_not_equal(trace_otlp_encode(&small, sp, 2, "0.1.0"), 0);
    buf_free(&small);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_state_bound),
        cmocka_unit_test(test_off_is_inert),
        cmocka_unit_test(test_spans_and_queue),
        cmocka_unit_test(test_otlp_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
