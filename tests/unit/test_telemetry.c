/*
 * GPU telemetry (telemetry/telemetry.h): the Prometheus text parser
 * (escapes, NaN and ±Inf, timestamps, HELP/TYPE, the caps), the mapping
 * of dcgm-exporter and engine pages, the NVML source against the stub
 * libnvidia-ml.so.1 built by the tests (NVML_STUB), with time passed in,
 * the summary's energy (counter and power integral), and the sampler's
 * own thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "telemetry/telemetry.h"

struct collected {
    int n;
    char names[16][64];
    char lv[16][64];    /* the first label's value */
    int nlabels[16];
    double values[16];
    int has_ts[16];
    int64_t ts[16];
};

static int collect(void *arg, const struct tel_prom_sample *s)
{
    struct collected *c = arg;
    if (c->n == 16)
        return 0;
    snprintf(c->names[c->n], 64, "%s", s->name);
    snprintf(c->lv[c->n], 64, "%s", s->nlabels ? s->labels[0].value : "");
    c->nlabels[c->n] = s->nlabels;
    c->values[c->n] = s->value;
    c->has_ts[c->n] = s->has_ts;
    c->ts[c->n] = s->ts_ms;
    c->n++;
    return 0;
}

static int parse(const char *text, struct collected *c, struct err_detail *d)
{
    memset(c, 0, sizeof(*c));
    err_clear(d);
    return tel_prom_parse(text, strlen(text), collect, c, d);
}

static void test_prom_syntax(void **state)
{
    (void)state;
    struct collected c;
    struct err_detail d;
    const char *page =
        "# HELP http_requests_total The total \\\\ number\\n of requests.\n"
        "# TYPE http_requests_total counter\n"
        "# a plain comment\n"
        "\n"
        "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
        "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find"
        " file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\r\n"
        "metric_without_timestamp_and_labels 12.47\n"
        "something_weird{problem=\"division by zero\"} +Inf -3982045\n"
        "neg{a=\"b\",} -Inf\n"
        "  nan_value{ a = \"x\" }\tNaN\n"
        "vllm:num_requests_running{model_name=\"m\"} 3";
    assert_int_equal(parse(page, &c, &d), 0);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.names[0], "http_requests_total");
    assert_int_equal(c.nlabels[0], 2);
    assert_true(c.has_ts[0] && c.ts[0] == 1395066363000);
    assert_string_equal(c.lv[1], "C:\\DIR\\FILE.TXT");
    assert_true(c.values[1] == 1.458255915e9);
    assert_false(c.has_ts[2]);
    assert_true(c.values[2] == 12.47);
    assert_true(isinf(c.values[3]) && c.values[3] > 0 && c.ts[3] == -3982045);
    assert_true(isinf(c.values[4]) && c.values[4] < 0);
    assert_true(isnan(c.values[5]));
    assert_string_equal(c.lv[5], "x");
    assert_string_equal(c.names[6], "vllm:num_requests_running");
    assert_true(c.values[6] == 3);
}

static void test_prom_escapes(void **state)
{
    (void)state;
    struct collected c;
    struct err_detail d;
    assert_int_equal(parse("m{a=\"q\\\"uote\\\\back\\nline\"} 1\n", &c, &d), 0);
    assert_string_equal(c.lv[0], "q\"uote\\back\nline");
    assert_int_equal(parse("m{a=\"bad \\t escape\"} 1\n", &c, &d), ERR_PARSE);
    assert_non_null(strstr(d.msg, "line 1"));
    assert_int_equal(parse("m{a=\"unterminated} 1\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("ok 1\nm{a=\"x\",a=\"y\"} 1\n", &c, &d), ERR_PARSE);
    assert_non_null(strstr(d.msg, "line 2"));
    assert_int_equal(parse("m{1a=\"x\"} 1\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("m 0x10\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("m infinity\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("m 1 12.5\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("m 1 2 3\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("m1\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("# TYPE m gaugee\n", &c, &d), ERR_PARSE);
    assert_int_equal(parse("{a=\"b\"} 1\n", &c, &d), ERR_PARSE);
    assert_int_equal(tel_prom_parse("m 1\0\n", 5, collect, &c, &d), ERR_PARSE);
}

static void test_prom_caps(void **state)
{
    (void)state;
    struct collected c;
    struct err_detail d;
    size_t n = TEL_PROM_MAX_LINE + 16;
    char *big = mem_malloc(n + 1);
    memset(big, 'a', n);
    memcpy(big + n - 3, " 1\n", 3);
    big[n] = '\0';
    assert_int_equal(parse(big, &c, &d), ERR_TOOBIG);
    mem_free(big);
    /* 65 labels is one too many; 64 are fine. */
    char labels[4096];
    size_t k = (size_t)snprintf(labels, sizeof(labels), "m{");
    for (int i = 0; i < 65; i++)
        k += (size_t)snprintf(labels + k, sizeof(labels) - k, "l%d=\"v\",", i);
    snprintf(labels + k, sizeof(labels) - k, "} 1\n");
    assert_int_equal(parse(labels, &c, &d), ERR_TOOBIG);
    char *last = strstr(labels, "l64=");
    snprintf(last, sizeof(labels) - (size_t)(last - labels), "} 1\n");
    assert_int_equal(parse(labels, &c, &d), 0);
    assert_int_equal(c.nlabels[0], 64);
    assert_int_equal(tel_prom_parse("", TEL_PROM_MAX_BODY + 1, collect, &c, &d), ERR_TOOBIG);
}

static void test_dcgm_map(void **state)
{
    (void)state;
    struct tel_gpu_sample g[TEL_MAX_GPUS];
    struct err_detail d;
    const char *page =
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-aaa\",device=\"nvidia0\",Hostname=\"h\"} 87\n"
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-bbb\",device=\"nvidia1\",Hostname=\"h\"} 12\n"
        "DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-aaa\"} 1024\n"
        "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-aaa\"} 301.5\n"
        "DCGM_FI_DEV_SM_CLOCK{gpu=\"0\",UUID=\"GPU-aaa\"} 1980\n"
        "DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-aaa\"} 64\n"
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\",UUID=\"GPU-aaa\"} 123456789\n"
        "DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",UUID=\"GPU-bbb\"} NaN\n"
        "DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"0\",UUID=\"GPU-aaa\"} 5\n";
    err_clear(&d);
    assert_int_equal(tel_dcgm_map(page, strlen(page), 777, g, TEL_MAX_GPUS, &d), 2);
    assert_int_equal(g[0].gpu, 0);
    assert_string_equal(g[0].uuid, "GPU-aaa");
    assert_int_equal(g[0].ts_ms, 777);
    assert_true(g[0].util_pct == 87 && g[0].mem_used_bytes == 1024.0 * 1048576);
    assert_true(g[0].power_w == 301.5 && g[0].sm_clock_mhz == 1980 && g[0].temp_c == 64);
    assert_true(fabs(g[0].energy_j - 123456.789) < 1e-6);
    assert_int_equal(g[0].have, TEL_HAVE_UTIL | TEL_HAVE_MEM | TEL_HAVE_POWER | TEL_HAVE_CLOCK |
                                    TEL_HAVE_TEMP | TEL_HAVE_ENERGY);
    assert_int_equal(g[1].gpu, 1);
    assert_string_equal(g[1].uuid, "GPU-bbb");
    assert_int_equal(g[1].have, TEL_HAVE_UTIL); /* NaN power stays unknown */
    assert_int_equal(tel_dcgm_map("x{", 2, 0, g, TEL_MAX_GPUS, &d), ERR_PARSE);
}

static void test_engine_map(void **state)
{
    (void)state;
    struct tel_engine_sample e;
    struct err_detail d;
    const char *vllm =
        "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 4.0\n"
        "vllm:num_requests_running{model_name=\"m\",engine=\"1\"} 2.0\n"
        "vllm:num_requests_waiting{model_name=\"m\",engine=\"0\"} 7.0\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\",engine=\"0\"} 0.25\n"
        "vllm:kv_cache_usage_perc{model_name=\"m\",engine=\"1\"} 0.5\n";
    err_clear(&d);
    assert_int_equal(tel_engine_map(vllm, strlen(vllm), 5, &e, &d), 1);
    assert_true(e.running == 6 && e.waiting == 7 && e.kv_pct == 50 && e.ts_ms == 5);
    const char *tgi = "tgi_queue_size 3\ntgi_batch_current_size 8\n";
    assert_int_equal(tel_engine_map(tgi, strlen(tgi), 5, &e, &d), 1);
    assert_true(e.running == 8 && e.waiting == 3 && !(e.have & TEL_HAVE_KV));
    const char *lmd = "lmdeploy:num_requests_running{} 1\nlmdeploy:gpu_cache_usage_perc 0.9\n";
    assert_int_equal(tel_engine_map(lmd, strlen(lmd), 5, &e, &d), 1);
    assert_true(e.running == 1 && fabs(e.kv_pct - 90) < 1e-9);
    assert_int_equal(tel_engine_map("other 1\n", 8, 5, &e, &d), 0);
}

static void test_nvml_stub(void **state)
{
    (void)state;
    struct tel_sampler *s = NULL;
    struct err_detail d;
    struct tel_opts o = {.sources = "nvml", .interval_s = 1, .nvml_library = NVML_STUB};
    size_t n;
    err_clear(&d);
    assert_int_equal(tel_sampler_create(&s, &o, &d), 0);
    /* Time is passed in: three samples one second apart, as the thread would. */
    tel_sampler_poll(s, 1000);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL); /* the stub's energy counter runs on the real clock */
    tel_sampler_poll(s, 2000);
    const struct tel_gpu_sample *g = tel_sampler_gpu(s, &n);
    assert_int_equal(n, 4);
    assert_int_equal(g[0].ts_ms, 1000);
    assert_int_equal(g[1].gpu, 1);
    assert_string_equal(g[1].uuid, "GPU-stub-0001");
    assert_true(g[0].util_pct == 40 && g[1].util_pct == 60);
    assert_true(g[1].mem_used_bytes == 2.0 * 1073741824);
    assert_true(g[0].power_w == 200 && g[1].power_w == 300);
    assert_true(g[0].temp_c == 60 && g[1].sm_clock_mhz == 1401);
    assert_true(g[0].have & TEL_HAVE_ENERGY);
    struct tel_summary t;
    tel_summarize(g, n, NULL, 0, 100, &t);
    assert_int_equal(t.gpus, 2);
    assert_true(t.util_mean_pct == 50 && t.util_max_pct == 60 && t.power_mean_w == 250);
    assert_true(t.mem_peak_bytes == 2.0 * 1073741824);
    assert_true(t.energy_from_counter);
    double e = (g[2].energy_j - g[0].energy_j) + (g[3].energy_j - g[1].energy_j);
    assert_true(fabs(t.energy_j - e) < 1e-9 && e > 0);
    assert_true(fabs(t.energy_per_output_token_j - e / 100) < 1e-12);
    assert_true(isnan(t.kv_peak_pct));
    tel_sampler_destroy(s);

    /* A library that is not there: a clear error, no crash. */
    o.nvml_library = "/nonexistent/libnvidia-ml.so.1";
    assert_int_equal(tel_sampler_create(&s, &o, &d), ERR_UNAVAIL);
    assert_non_null(strstr(d.msg, "cannot load"));
    setenv("STUB_NVML_INIT_FAIL", "1", 1);
    o.nvml_library = NVML_STUB;
    assert_int_equal(tel_sampler_create(&s, &o, &d), ERR_UNAVAIL);
    assert_non_null(strstr(d.msg, "Driver Not Loaded"));
    unsetenv("STUB_NVML_INIT_FAIL");
    o.sources = "nvml,gpus";
    assert_int_equal(tel_sampler_create(&s, &o, &d), ERR_INVAL);
}

static void test_power_integral(void **state)
{
    (void)state;
    struct tel_gpu_sample g[3];
    struct tel_summary t;
    memset(g, 0, sizeof(g));
    for (int i = 0; i < 3; i++) {
        g[i].ts_ms = 1000 * i;
        g[i].have = TEL_HAVE_POWER;
        g[i].power_w = 100 + 100 * i; /* 100, 200, 300 W */
    }
    tel_summarize(g, 3, NULL, 0, 10, &t);
    assert_false(t.energy_from_counter);
    assert_true(fabs(t.energy_j - 400) < 1e-9); /* 150 + 250 J */
    assert_true(fabs(t.energy_per_output_token_j - 40) < 1e-9);
    assert_true(isnan(t.util_mean_pct));
}

static void test_thread(void **state)
{
    (void)state;
    struct tel_sampler *s = NULL;
    struct err_detail d;
    struct tel_opts o = {.sources = "nvml", .interval_s = 0.05, .nvml_library = NVML_STUB};
    size_t n;
    err_clear(&d);
    assert_int_equal(tel_sampler_create(&s, &o, &d), 0);
    assert_int_equal(tel_sampler_start(s, &d), 0);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    tel_sampler_stop(s);
    tel_sampler_gpu(s, &n);
    /* A sample at the start, one per 50 ms, one at the stop: about 8 per GPU. */
    assert_true(n >= 2 * 4 && n <= 2 * 12);
    assert_int_equal(n % 2, 0);
    assert_int_equal(tel_sampler_start(s, &d), 0); /* a second point starts afresh */
    tel_sampler_stop(s);
    tel_sampler_gpu(s, &n);
    assert_true(n >= 2 && n <= 6);
    tel_sampler_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_syntax),
        cmocka_unit_test(test_prom_escapes),
        cmocka_unit_test(test_prom_caps),
        cmocka_unit_test(test_dcgm_map),
        cmocka_unit_test(test_engine_map),
        cmocka_unit_test(test_nvml_stub),
        cmocka_unit_test(test_power_integral),
        cmocka_unit_test(test_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
