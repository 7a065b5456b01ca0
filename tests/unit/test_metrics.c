/*
 * Unit tests of src/core/metrics.c: counter and histogram arithmetic
 * (series numbering, bucket edges, sums, striping over threads), label
 * and HELP escaping, value formatting, sparse families, collectors, bad
 * options, and the exact text of a small exposition.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/mem.h"
#include "core/metrics.h"

static const char *const colors[] = {"red", "green"};
static const char *const sizes[] = {"s", "m", "l"};

/* Renders m into a string the test frees. */
static char *render(struct metrics *m)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    buf_putc(&b, '\0');
    size_t n;
    return buf_steal(&b, &n);
}

static void test_counter_series(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    const struct metrics_dim dims[] = {{"color", 2, colors}, {"size", 3, sizes}};
    struct metrics_family_opts o = {.name = "t_total", .help = "h", .type = METRICS_COUNTER,
                                    .ndims = 2, .dims = dims};
    struct metrics_family *f = metrics_family(m, &o);
    assert_non_null(f);
    int idx[] = {1, 2};
    int s = metrics_index(f, idx);
    assert_int_equal(s, 5);
    metrics_add(f, s, 3);
    metrics_add(f, s, 4);
    metrics_add(f, 0, 1);
    metrics_add(f, 6, 100);  /* out of range: ignored */
    metrics_add(NULL, 0, 1); /* no family: ignored */
    assert_int_equal(metrics_value(f, s), 7);
    assert_int_equal(metrics_value(f, 0), 1);
    assert_int_equal(metrics_value(f, 1), 0);
    char *t = render(m);
    assert_non_null(strstr(t, "# HELP t_total h\n# TYPE t_total counter\n"));
    assert_non_null(strstr(t, "t_total{color=\"green\",size=\"l\"} 7\n"));
    assert_non_null(strstr(t, "t_total{color=\"red\",size=\"s\"} 1\n"));
    assert_non_null(strstr(t, "t_total{color=\"red\",size=\"m\"} 0\n")); /* not sparse */
    mem_free(t);
    metrics_destroy(m);
}

static void test_histogram(void **state)
{
    (void)state;
    static const int64_t bounds[] = {100, 1000, 10000};
    struct metrics *m = metrics_create();
    struct metrics_family_opts o = {.name = "lat_seconds", .help = "latency",
                                    .type = METRICS_HISTOGRAM, .bounds = bounds, .nbounds = 3,
                                    .scale = 1000};
    struct metrics_family *f = metrics_family(m, &o);
    assert_non_null(f);
    metrics_observe(f, 0, 100);   /* on the edge: le=0.1 */
    metrics_observe(f, 0, 101);   /* le=1 */
    metrics_observe(f, 0, 5000);  /* le=10 */
    metrics_observe(f, 0, 20000); /* +Inf */
    metrics_observe(f, 0, -5);    /* counts as 0 */
    assert_int_equal(metrics_value(f, 0), 5);
    char *t = render(m);
    const char *want =
        "# HELP lat_seconds latency\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{le=\"0.1\"} 2\n"
        "lat_seconds_bucket{le=\"1\"} 3\n"
        "lat_seconds_bucket{le=\"10\"} 4\n"
        "lat_seconds_bucket{le=\"+Inf\"} 5\n"
        "lat_seconds_sum 25.201\n"
        "lat_seconds_count 5\n";
    assert_string_equal(t, want);
    mem_free(t);
    metrics_destroy(m);
}

static void test_sparse_and_labels_on_histogram(void **state)
{
    (void)state;
    static const int64_t bounds[] = {1};
    struct metrics *m = metrics_create();
    const struct metrics_dim dims[] = {{"color", 2, colors}};
    struct metrics_family_opts o = {.name = "h", .help = "x", .type = METRICS_HISTOGRAM,
                                    .ndims = 1, .dims = dims, .bounds = bounds, .nbounds = 1,
                                    .sparse = 1};
    struct metrics_family *f = metrics_family(m, &o);
    metrics_observe(f, 1, 2);
    char *t = render(m);
    assert_null(strstr(t, "red"));
    assert_non_null(strstr(t, "h_bucket{color=\"green\",le=\"1\"} 0\n"));
    assert_non_null(strstr(t, "h_bucket{color=\"green\",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(t, "h_sum{color=\"green\"} 2\n"));
    assert_non_null(strstr(t, "h_count{color=\"green\"} 1\n"));
    mem_free(t);
    metrics_destroy(m);
}

static void test_escaping_and_values(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    const char *lab[] = {"path", "a\\b\"c\nd"};
    metrics_write_head(&b, "x", "line\\one\nline \"two\"", "gauge");
    metrics_write_sample(&b, "x", lab, 1, 1.5);
    metrics_write_sample(&b, "x", NULL, 0, 0.0 / 0.0);
    metrics_write_sample(&b, "x", NULL, 0, 1.0 / 0.0);
    metrics_write_sample(&b, "x", NULL, 0, -1.0 / 0.0);
    metrics_write_sample(&b, "x", NULL, 0, -42);
    metrics_write_sample(&b, "x", NULL, 0, 0.1);
    metrics_write_sample(&b, "x", NULL, 0, 1e-5);
    buf_putc(&b, '\0');
    assert_string_equal(b.p,
                        "# HELP x line\\\\one\\nline \"two\"\n"
                        "# TYPE x gauge\n"
                        "x{path=\"a\\\\b\\\"c\\nd\"} 1.5\n"
                        "x NaN\n"
                        "x +Inf\n"
                        "x -Inf\n"
                        "x -42\n"
                        "x 0.1\n"
                        "x 1e-05\n");
    buf_free(&b);
}

static void collect(struct buf *out, void *arg)
{
    metrics_write_head(out, "g", "a gauge", "gauge");
    metrics_write_sample(out, "g", NULL, 0, *(double *)arg);
}

static void test_collector_after_families(void **state)
{
    (void)state;
    double v = 3;
    struct metrics *m = metrics_create();
    struct metrics_family_opts o = {.name = "c_total", .help = "c", .type = METRICS_COUNTER};
    struct metrics_family *f = metrics_family(m, &o);
    assert_int_equal(metrics_collector(m, collect, &v), 0);
    metrics_add(f, 0, 2);
    char *t = render(m);
    assert_string_equal(t, "# HELP c_total c\n# TYPE c_total counter\nc_total 2\n"
                           "# HELP g a gauge\n# TYPE g gauge\ng 3\n");
    mem_free(t);
    metrics_destroy(m);
}

static void test_bad_options(void **state)
{
    (void)state;
    static const int64_t down[] = {10, 5};
    struct metrics *m = metrics_create();
    const struct metrics_dim empty[] = {{"x", 0, colors}};
    struct metrics_family_opts o = {.name = "", .help = "h", .type = METRICS_COUNTER};
    assert_null(metrics_family(m, &o));
    o.name = "n";
    o.ndims = 1;
    o.dims = empty;
    assert_null(metrics_family(m, &o));
    o.ndims = METRICS_MAX_DIMS + 1;
    assert_null(metrics_family(m, &o));
    struct metrics_family_opts h = {.name = "h", .help = "h", .type = METRICS_HISTOGRAM,
                                    .bounds = down, .nbounds = 2};
    assert_null(metrics_family(m, &h));
    h.nbounds = 0;
    assert_null(metrics_family(m, &h));
    metrics_destroy(m);
    metrics_destroy(NULL);
}

struct worker {
    struct metrics_family *c, *h;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100000; i++) {
        metrics_add(w->c, 0, 1);
        metrics_observe(w->h, 0, i % 3);
    }
    return NULL;
}

/* 12 threads (more than the stripes) lose no increment. */
static void test_threads(void **state)
{
    (void)state;
    static const int64_t bounds[] = {0, 1};
    struct metrics *m = metrics_create();
    struct metrics_family_opts co = {.name = "c_total", .help = "c", .type = METRICS_COUNTER};
    struct metrics_family_opts ho = {.name = "h", .help = "h", .type = METRICS_HISTOGRAM,
                                     .bounds = bounds, .nbounds = 2};
    struct worker w = {metrics_family(m, &co), metrics_family(m, &ho)};
    pthread_t t[12];
    for (int i = 0; i < 12; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w), 0);
    for (int i = 0; i < 12; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(metrics_value(w.c, 0), 1200000);
    assert_int_equal(metrics_value(w.h, 0), 1200000);
    char *txt = render(m);
    /* i % 3 over 0..99999: 33334 zeros, 33333 ones, 33333 twos per thread. */
    assert_non_null(strstr(txt, "h_bucket{le=\"0\"} 400008\n"));
    assert_non_null(strstr(txt, "h_bucket{le=\"1\"} 800004\n"));
    assert_non_null(strstr(txt, "h_sum 1199988\n"));
    mem_free(txt);
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_series),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_sparse_and_labels_on_histogram),
        cmocka_unit_test(test_escaping_and_values),
        cmocka_unit_test(test_collector_after_families),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
