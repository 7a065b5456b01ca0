/*
 * Unit tests of src/bench/stats.c against hand-computed values: four
 * completed requests with known times give exact means, medians and
 * linearly interpolated percentiles (numpy's default), TPOT, pooled ITL,
 * queueing and corrected latencies, goodput with and without SLOs, peaks;
 * failed requests count apart and warmup requests not at all. Then the
 * JSON members (vLLM's names) and the text table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench/stats.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jw.h"
#include "core/mem.h"

#define MS 1000000LL            /* ns */
#define BASE (1000LL * 1000 * MS) /* an arbitrary monotonic origin: 1000 s */

static int64_t itl0[] = {100 * MS, 900 * MS};
static int64_t itl1[] = {1000 * MS};
static int64_t itl_warm[] = {5000 * MS, 5000 * MS};

/*
 * The fixture, times in ms from BASE:
 *        sched  sent  first  last   out  in   ttft  e2el  tpot  queue
 *   r0     0     0     100   1100   11   10   100   1100  100    0
 *   r1   490   500     700   1700   21   20   200   1200   50   10
 *   r2   980  1000    1300   2300    6   30   300   1300  200   20
 *   r3  1470  1500    1900   1900    1   40   400    400    -   30
 * plus two failures (timeout, 429) and one warmup request with huge times.
 */
static struct bench_req reqs[7];

static void req_set(struct bench_req *r, int64_t sched, int64_t sent, int64_t first,
                    int64_t last, int32_t out, int32_t in)
{
    memset(r, 0, sizeof(*r));
    r->scheduled_ns = BASE + sched * MS;
    r->sent_ns = BASE + sent * MS;
    r->first_ns = first < 0 ? 0 : BASE + first * MS;
    r->last_ns = last < 0 ? 0 : BASE + last * MS;
    r->output_tokens = out;
    r->input_tokens = in;
    r->tok_src = BENCH_TOK_USAGE;
}

static int setup(void **state)
{
    (void)state;
    req_set(&reqs[0], 0, 0, 100, 1100, 11, 10);
    reqs[0].itl_ns = itl0;
    reqs[0].itl_len = 2;
    req_set(&reqs[1], 490, 500, 700, 1700, 21, 20);
    reqs[1].itl_ns = itl1;
    reqs[1].itl_len = 1;
    req_set(&reqs[2], 980, 1000, 1300, 2300, 6, 30);
    req_set(&reqs[3], 1470, 1500, 1900, 1900, 1, 40);
    req_set(&reqs[4], 100, 100, -1, -1, 0, 50);
    reqs[4].err = BENCH_E_TIMEOUT;
    req_set(&reqs[5], 200, 200, 300, 400, 3, 60);
    reqs[5].err = BENCH_E_HTTP_429;
    req_set(&reqs[6], -9000, -9000, 9000, 19000, 3, 1000);
    reqs[6].warmup = 1;
    reqs[6].itl_ns = itl_warm;
    reqs[6].itl_len = 2;
    return 0;
}

/* Asserts got == want up to rounding (relative 1e-9). */
static void near_at(double got, double want, int line)
{
    if (!(fabs(got - want) < 1e-9 * (fabs(want) + 1)))
        print_error("line %d: got %.17g, want %.17g\n", line, got, want);
    assert_true(fabs(got - want) < 1e-9 * (fabs(want) + 1));
}
#define NEAR(a, b) near_at((a), (b), __LINE__)

static void test_percentile_linear(void **state)
{
    (void)state;
    const double x[] = {10, 20, 30, 40};
    NEAR(bench_percentile(x, 4, 0), 10);
    NEAR(bench_percentile(x, 4, 100), 40);
    NEAR(bench_percentile(x, 4, 50), 25);
    NEAR(bench_percentile(x, 4, 99), 39.7); /* index 2.97 */
    NEAR(bench_percentile(x, 4, 90), 37);   /* index 2.7 */
    NEAR(bench_percentile(x, 4, 25), 17.5); /* index 0.75 */
    NEAR(bench_percentile(x, 4, 10), 13);   /* index 0.3 */
    const double one[] = {7};
    NEAR(bench_percentile(one, 1, 99), 7);
    NEAR(bench_percentile(one, 0, 99), 0);
}

static void test_summary_values(void **state)
{
    (void)state;
    struct bench_summary s;
    struct err_detail d;
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, NULL, NULL, 0, &d), 0);
    assert_int_equal(s.completed, 4);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.errors[BENCH_E_TIMEOUT], 1);
    assert_int_equal(s.errors[BENCH_E_HTTP_429], 1);
    assert_int_equal(s.errors[BENCH_E_CONNECT], 0);
    assert_int_equal(s.total_input_tokens, 100);
    assert_int_equal(s.total_output_tokens, 39);
    NEAR(s.duration, 2.0);
    NEAR(s.request_throughput, 2.0);
    NEAR(s.output_throughput, 19.5);
    NEAR(s.total_token_throughput, 69.5);
    assert_true(isnan(s.request_goodput));
    assert_int_equal(s.tok_src, BENCH_TOK_USAGE);
    assert_int_equal(s.npct, 4);
    NEAR(s.pcts[3], 99);

    const struct bench_dist *t = &s.m[BENCH_M_TTFT];
    assert_int_equal(t->n, 4);
    NEAR(t->mean, 250);
    NEAR(t->median, 250);
    NEAR(t->std, sqrt(12500)); /* population std of 100..400 */
    NEAR(t->pct[0], 250);      /* p50 */
    NEAR(t->pct[1], 370);      /* p90: index 2.7 */
    NEAR(t->pct[2], 385);      /* p95: index 2.85 */
    NEAR(t->pct[3], 397);      /* p99: index 2.97 */

    const struct bench_dist *tp = &s.m[BENCH_M_TPOT]; /* {100, 50, 200}; r3 has 1 token */
    assert_int_equal(tp->n, 3);
    NEAR(tp->mean, 350.0 / 3);
    NEAR(tp->median, 100);
    NEAR(tp->std, sqrt((pow(100 - 350.0 / 3, 2) + pow(50 - 350.0 / 3, 2) +
                        pow(200 - 350.0 / 3, 2)) / 3));
    NEAR(tp->pct[3], 198); /* index 1.98 */

    const struct bench_dist *it = &s.m[BENCH_M_ITL]; /* pooled {100, 900, 1000} */
    assert_int_equal(it->n, 3);
    NEAR(it->mean, 2000.0 / 3);
    NEAR(it->median, 900);
    NEAR(it->pct[3], 998);

    const struct bench_dist *e = &s.m[BENCH_M_E2EL]; /* {400, 1100, 1200, 1300} */
    NEAR(e->mean, 1000);
    NEAR(e->median, 1150);
    NEAR(e->pct[3], 1297);
    NEAR(e->pct[1], 1270);

    const struct bench_dist *q = &s.m[BENCH_M_QUEUE]; /* {0, 10, 20, 30} */
    assert_int_equal(q->n, 4);
    NEAR(q->mean, 15);
    NEAR(q->median, 15);
    NEAR(q->pct[3], 29.7);
    NEAR(q->std, sqrt(125));

    const struct bench_dist *ts = &s.m[BENCH_M_TTFT_SCHED]; /* {100, 210, 320, 430} */
    NEAR(ts->mean, 265);
    NEAR(ts->median, 265);
    NEAR(ts->pct[3], 426.7);

    const struct bench_dist *es = &s.m[BENCH_M_E2EL_SCHED]; /* {430, 1100, 1210, 1320} */
    NEAR(es->mean, 1015);
    NEAR(es->median, 1155);

    /* Events: bucket 0 holds 0.1, 0.2, 0.7 s; bucket 1 holds 1.1, 1.3, 1.7, 1.9 s.
     * Active: r0 [0,1], r1 [0,1], r2 [1,2], r3 [1,1]. */
    NEAR(s.max_output_tokens_per_s, 4);
    assert_int_equal(s.max_concurrent_requests, 4);
}

static void test_goodput(void **state)
{
    (void)state;
    struct bench_summary s;
    struct err_detail d;
    struct bench_slo slo = {.ttft_ms = 250};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    assert_int_equal(s.good, 2); /* r0, r1 */
    NEAR(s.request_goodput, 1.0);

    /* Limits are inclusive; TPOT of a 1-token request counts as 0. */
    slo = (struct bench_slo){.tpot_ms = 100};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    assert_int_equal(s.good, 3); /* r0 (100), r1 (50), r3 (0) */
    NEAR(s.request_goodput, 1.5);

    slo = (struct bench_slo){.e2el_ms = 1250};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    assert_int_equal(s.good, 3); /* r0, r1, r3 */

    slo = (struct bench_slo){.ttft_ms = 250, .tpot_ms = 60, .e2el_ms = 5000};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    assert_int_equal(s.good, 1); /* r1 only */
    NEAR(s.request_goodput, 0.5);

    /* All zero is "no SLO". */
    slo = (struct bench_slo){0};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    assert_true(isnan(s.request_goodput));
    slo.ttft_ms = -1;
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), ERR_RANGE);
}

static void test_edge_cases(void **state)
{
    (void)state;
    struct bench_summary s;
    struct err_detail d;
    /* Nothing at all: zeros, as vLLM's np.mean(x or 0). */
    assert_int_equal(bench_summarize(&s, NULL, 0, 0.0, NULL, NULL, 0, &d), 0);
    assert_int_equal(s.completed, 0);
    assert_int_equal(s.m[BENCH_M_TTFT].n, 0);
    NEAR(s.m[BENCH_M_TTFT].mean, 0);
    NEAR(s.m[BENCH_M_ITL].pct[3], 0);
    NEAR(s.request_throughput, 0);
    assert_int_equal(s.tok_src, BENCH_TOK_SRC_NONE);
    assert_null(bench_tok_src_name(s.tok_src));

    /* Only failures and warmups. */
    assert_int_equal(bench_summarize(&s, reqs + 4, 3, 1.0, NULL, NULL, 0, &d), 0);
    assert_int_equal(s.completed, 0);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.total_input_tokens, 0);

    /* Mixed token sources. */
    struct bench_req two[2];
    memcpy(two, reqs, sizeof(two));
    two[1].tok_src = BENCH_TOK_EVENTS;
    assert_int_equal(bench_summarize(&s, two, 2, 1.0, NULL, NULL, 0, &d), 0);
    assert_int_equal(s.tok_src, BENCH_TOK_SRC_MIXED);
    assert_string_equal(bench_tok_src_name(s.tok_src), "mixed");
    two[0].tok_src = BENCH_TOK_EVENTS;
    assert_int_equal(bench_summarize(&s, two, 2, 1.0, NULL, NULL, 0, &d), 0);
    assert_string_equal(bench_tok_src_name(s.tok_src), "events");

    /* A completed request without content: counted, no latency, never good. */
    struct bench_req nc = reqs[0];
    nc.first_ns = nc.last_ns = 0;
    nc.itl_ns = NULL;
    nc.itl_len = 0;
    struct bench_slo slo = {.e2el_ms = 1e9};
    assert_int_equal(bench_summarize(&s, &nc, 1, 1.0, &slo, NULL, 0, &d), 0);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.total_output_tokens, 11);
    assert_int_equal(s.m[BENCH_M_TTFT].n, 0);
    assert_int_equal(s.m[BENCH_M_QUEUE].n, 1);
    assert_int_equal(s.good, 0);

    /* Odd count median, custom percentiles. */
    const double p[] = {0, 100, 99.9};
    assert_int_equal(bench_summarize(&s, reqs, 3, 1.0, NULL, p, 3, &d), 0);
    NEAR(s.m[BENCH_M_TTFT].median, 200);
    NEAR(s.m[BENCH_M_TTFT].pct[0], 100);
    NEAR(s.m[BENCH_M_TTFT].pct[1], 300);
    NEAR(s.m[BENCH_M_TTFT].pct[2], 299.8); /* index 1.998 */

    const double bad[] = {50, 101};
    assert_int_equal(bench_summarize(&s, reqs, 3, 1.0, NULL, bad, 2, &d), ERR_RANGE);
    assert_string_equal(d.field, "percentiles");
    double many[BENCH_PCT_MAX + 1] = {0};
    assert_int_equal(bench_summarize(&s, reqs, 3, 1.0, NULL, many, BENCH_PCT_MAX + 1, &d),
                     ERR_RANGE);

    /* Out of memory is reported, not crashed on. */
    mem_fail_after(0);
    int rc = bench_summarize(&s, reqs, 7, 1.0, NULL, NULL, 0, &d);
    mem_fail_after(-1);
    assert_int_equal(rc, ERR_NOMEM);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(bench_err_name(BENCH_E_CONNECT), "connect");
    assert_string_equal(bench_err_name(BENCH_E_RESET), "reset");
    assert_string_equal(bench_err_name(BENCH_E_TIMEOUT), "timeout");
    assert_string_equal(bench_err_name(BENCH_E_HTTP_4XX), "http_4xx");
    assert_string_equal(bench_err_name(BENCH_E_HTTP_429), "http_429");
    assert_string_equal(bench_err_name(BENCH_E_HTTP_5XX), "http_5xx");
    assert_string_equal(bench_err_name(BENCH_E_STREAM_ERROR), "stream_error");
    assert_string_equal(bench_err_name(BENCH_E_TRUNCATED), "truncated");
    assert_string_equal(bench_err_name(BENCH_E_MALFORMED), "malformed");
    assert_string_equal(bench_err_name(BENCH_E_OVERSIZED), "oversized");
    assert_string_equal(bench_err_name(BENCH_E__COUNT), "unknown");
    assert_string_equal(bench_tok_src_name(BENCH_TOK_USAGE), "usage");
    assert_string_equal(bench_tok_src_name(BENCH_TOK_DETAILS), "details");
    assert_string_equal(bench_metric_name(BENCH_M_E2EL_SCHED), "e2el_from_scheduled");
}

static void test_parse(void **state)
{
    (void)state;
    struct bench_slo slo;
    struct err_detail d;
    assert_int_equal(bench_slo_parse("ttft:500,tpot:50", &slo, &d), 0);
    NEAR(slo.ttft_ms, 500);
    NEAR(slo.tpot_ms, 50);
    NEAR(slo.e2el_ms, 0);
    assert_int_equal(bench_slo_parse(" e2el:1.5e3 ttft:20 ", &slo, &d), 0);
    NEAR(slo.e2el_ms, 1500);
    NEAR(slo.ttft_ms, 20);
    assert_int_equal(bench_slo_parse("", &slo, &d), 0);
    assert_int_equal(bench_slo_parse("ttft", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:0", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:-5", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:5x", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:nan", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("itl:5", &slo, &d), ERR_INVAL);
    assert_int_equal(bench_slo_parse("ttft:5,ttft:6", &slo, &d), ERR_INVAL);

    double p[BENCH_PCT_MAX];
    int n;
    assert_int_equal(bench_pcts_parse("50,90,99.9", p, &n, &d), 0);
    assert_int_equal(n, 3);
    NEAR(p[2], 99.9);
    assert_int_equal(bench_pcts_parse("101", p, &n, &d), ERR_RANGE);
    assert_int_equal(bench_pcts_parse("5,x", p, &n, &d), ERR_INVAL);
    assert_int_equal(bench_pcts_parse("", p, &n, &d), ERR_INVAL);
    assert_int_equal(bench_pcts_parse("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", p, &n, &d),
                     ERR_RANGE);
}

static double jnum(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        print_error("missing number %s\n", key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* Summarizes the fixture into a JSON object and parses it back. */
static json_t *summary_json(const struct bench_slo *slo, const double *p, int np)
{
    struct bench_summary s;
    struct err_detail d;
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, slo, p, np, &d), 0);
    struct buf b;
    buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    bench_summary_json(&s, &w);
    jw_obj_close(&w);
    assert_int_equal(buf_err(&b), 0);
    json_error_t je;
    json_t *o = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        print_error("bad JSON: %s\n%s\n", je.text, b.p);
    assert_non_null(o);
    buf_free(&b);
    return o;
}

static void test_json(void **state)
{
    (void)state;
    json_t *o = summary_json(NULL, NULL, 0);
    NEAR(jnum(o, "duration"), 2.0);
    NEAR(jnum(o, "completed"), 4);
    NEAR(jnum(o, "failed"), 2);
    NEAR(jnum(o, "total_input_tokens"), 100);
    NEAR(jnum(o, "total_output_tokens"), 39);
    NEAR(jnum(o, "request_throughput"), 2);
    assert_true(json_is_null(json_object_get(o, "request_goodput")));
    NEAR(jnum(o, "output_throughput"), 19.5);
    NEAR(jnum(o, "total_token_throughput"), 69.5);
    NEAR(jnum(o, "max_output_tokens_per_s"), 4);
    NEAR(jnum(o, "max_concurrent_requests"), 4);
    NEAR(jnum(o, "mean_ttft_ms"), 250);
    NEAR(jnum(o, "median_ttft_ms"), 250);
    NEAR(jnum(o, "std_ttft_ms"), sqrt(12500));
    NEAR(jnum(o, "p50_ttft_ms"), 250);
    NEAR(jnum(o, "p90_ttft_ms"), 370);
    NEAR(jnum(o, "p95_ttft_ms"), 385);
    NEAR(jnum(o, "p99_ttft_ms"), 397);
    NEAR(jnum(o, "mean_tpot_ms"), 350.0 / 3);
    NEAR(jnum(o, "p99_tpot_ms"), 198);
    NEAR(jnum(o, "median_itl_ms"), 900);
    NEAR(jnum(o, "p99_itl_ms"), 998);
    NEAR(jnum(o, "mean_e2el_ms"), 1000);
    NEAR(jnum(o, "p99_e2el_ms"), 1297);
    NEAR(jnum(o, "mean_queue_ms"), 15);
    NEAR(jnum(o, "p99_queue_ms"), 29.7);
    NEAR(jnum(o, "mean_ttft_from_scheduled_ms"), 265);
    NEAR(jnum(o, "median_e2el_from_scheduled_ms"), 1155);
    json_t *ec = json_object_get(o, "error_counts");
    assert_true(json_is_object(ec));
    assert_int_equal(json_object_size(ec), BENCH_E__COUNT - 1);
    NEAR(jnum(ec, "timeout"), 1);
    NEAR(jnum(ec, "http_429"), 1);
    NEAR(jnum(ec, "oversized"), 0);
    assert_string_equal(json_string_value(json_object_get(o, "token_count_source")), "usage");
    /* 7 metrics x (mean, median, std, 4 percentiles) + 13 others. */
    assert_int_equal(json_object_size(o), 7 * 7 + 13);
    json_decref(o);

    struct bench_slo slo = {.ttft_ms = 250};
    const double p[] = {99.9, 25};
    o = summary_json(&slo, p, 2);
    NEAR(jnum(o, "request_goodput"), 1.0);
    NEAR(jnum(o, "p99.9_ttft_ms"), 399.7);
    NEAR(jnum(o, "p25_ttft_ms"), 175);
    assert_null(json_object_get(o, "p99_ttft_ms"));
    json_decref(o);
}

static void test_table(void **state)
{
    (void)state;
    struct bench_summary s;
    struct err_detail d;
    struct bench_slo slo = {.ttft_ms = 250};
    assert_int_equal(bench_summarize(&s, reqs, 7, 2.0, &slo, NULL, 0, &d), 0);
    s.request_rate = 10;
    s.max_concurrency = 8;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    bench_summary_table(&s, f);
    fclose(f);
    static const char *const want[] = {
        "============ Serving Benchmark Result ============\n",
        "Successful requests:                     4         \n",
        "Failed requests:                         2         \n",
        "Maximum request concurrency:             8         \n",
        "Request rate configured (RPS):           10.00     \n",
        "Benchmark duration (s):                  2.00      \n",
        "Total input tokens:                      100       \n",
        "Total generated tokens:                  39        \n",
        "Request throughput (req/s):              2.00      \n",
        "Request goodput (req/s):                 1.00      \n",
        "Output token throughput (tok/s):         19.50     \n",
        "Total Token throughput (tok/s):          69.50     \n",
        "---------------Time to First Token----------------\n",
        "Mean TTFT (ms):                          250.00    \n",
        "Median TTFT (ms):                        250.00    \n",
        "P99 TTFT (ms):                           397.00    \n",
        "-----Time per Output Token (excl. 1st token)------\n",
        "P99 TPOT (ms):                           198.00    \n",
        "---------------Inter-token Latency----------------\n",
        "----------------End-to-end Latency----------------\n",
        "P99 E2EL (ms):                           1297.00   \n",
        "Mean Queue (ms):                         15.00     \n",
        "timeout:                                 1         \n",
        "Token counts from:                       usage     \n",
        "==================================================\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(text, want[i]))
            print_error("missing line: %s--- table:\n%s", want[i], text);
        assert_non_null(strstr(text, want[i]));
    }
    /* The first and last lines frame the block. */
    assert_memory_equal(text, want[0], strlen(want[0]));
    assert_string_equal(text + len - 51, want[sizeof(want) / sizeof(want[0]) - 1]);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_linear),
        cmocka_unit_test(test_summary_values),
        cmocka_unit_test(test_goodput),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
