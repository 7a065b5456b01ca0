/*
 * The settings of a benchmark turned into what the bench library runs
 * (see bench_spec.h): shared by `modelcat bench` (argv) and `modelcat
 * worker` (a job's spec parsed as the same settings), so the two check
 * and interpret a benchmark identically.
 */
#include "cli/bench_spec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/arrival.h"
#include "bench/backend.h"
#include "bench/report.h"
#include "core/config.h"
#include "core/log.h"
#include "telemetry/telemetry.h"

/* Writes the message into msg; returns 2 (a usage error). */
static int usage_error(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int usage_error(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return 2;
}

/* Parses "a,b,c" of numbers into out; returns the count or -1. */
static int parse_list(const char *s, double *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || n == max || !isfinite(v))
            return -1;
        out[n++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

static int parse_sweep(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap)
{
    const char *sw = cfg_str(c, CFG_BENCH_SWEEP);
    o->sweep_conc = -1;
    if (!*sw)
        return 0;
    if (!strncmp(sw, "concurrency=", 12))
        o->sweep_conc = 1, sw += 12;
    else if (!strncmp(sw, "rate=", 5))
        o->sweep_conc = 0, sw += 5;
    else
        return usage_error(msg, cap, "--sweep: want concurrency=1,4,16 or rate=1,2,4, not '%s'",
                           sw);
    if ((o->npoints = parse_list(sw, o->points, BENCH_SPEC_MAX_POINTS)) <= 0)
        return usage_error(msg, cap, "--sweep: bad list '%s'", sw);
    for (int i = 0; i < o->npoints; i++)
        if (!(o->points[i] > 0) || (o->sweep_conc && o->points[i] != floor(o->points[i])))
            return usage_error(msg, cap, "--sweep: points must be positive%s",
                               o->sweep_conc ? " integers" : " numbers");
    return 0;
}

/* Headers: repeatable, one per line. */
static int parse_headers(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap)
{
    struct bench_load *l = &o->l;
    snprintf(o->header_buf, sizeof(o->header_buf), "%s", cfg_str(c, CFG_BENCH_HEADER));
    for (char *h = o->header_buf; *h && l->nheaders < BENCH_SPEC_MAX_HEADERS;) {
        char *nl = strchr(h, '\n');
        if (nl)
            *nl = '\0';
        const char *colon = strchr(h, ':');
        if (!colon || colon == h || strpbrk(h, "\r"))
            return usage_error(msg, cap, "--header: '%s' is not 'Name: value'", h);
        o->headers[l->nheaders++] = h;
        h = nl ? nl + 1 : h + strlen(h);
    }
    l->headers = (const char *const *)o->headers;
    return 0;
}

int bench_opts_parse(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap)
{
    struct bench_load *l = &o->l;
    struct err_detail d;
    int rc;
    memset(o, 0, sizeof(*o));
    err_clear(&d);
    l->backend = bench_backend_parse(cfg_str(c, CFG_BENCH_BACKEND));
    l->model = cfg_str(c, CFG_BENCH_MODEL);
    l->ignore_eos = (int)cfg_int(c, CFG_BENCH_IGNORE_EOS);
    l->api_key = *cfg_str(c, CFG_BENCH_API_KEY) ? cfg_str(c, CFG_BENCH_API_KEY) : NULL;
    l->num_prompts = (int)cfg_int(c, CFG_BENCH_NUM_PROMPTS);
    l->duration_s = cfg_double(c, CFG_BENCH_DURATION);
    l->burstiness = cfg_double(c, CFG_BENCH_BURSTINESS);
    l->max_concurrency = (int)cfg_int(c, CFG_BENCH_MAX_CONCURRENCY);
    l->warmup = (int)cfg_int(c, CFG_BENCH_WARMUP);
    l->request_timeout_s = cfg_double(c, CFG_BENCH_REQUEST_TIMEOUT);
    l->max_errors = (int)cfg_int(c, CFG_BENCH_MAX_ERRORS);
    l->drain_s = cfg_double(c, CFG_BENCH_DRAIN_TIMEOUT);
    l->max_event = (size_t)cfg_int(c, CFG_BENCH_MAX_EVENT);
    l->progress = isatty(STDERR_FILENO) ? 1 : 2;
    if ((l->num_prompts == 0) == (l->duration_s == 0))
        return usage_error(msg, cap, "give either --num-prompts N or --duration S (and not both)");
    const char *rate = cfg_str(c, CFG_BENCH_REQUEST_RATE);
    char *end;
    l->rate = strcmp(rate, "inf") == 0 ? INFINITY : strtod(rate, &end);
    if (!isinf(l->rate) && (end == rate || *end || !(l->rate > 0) || !isfinite(l->rate)))
        return usage_error(msg, cap, "--request-rate: '%s' is not a positive number or inf",
                           rate);
    int64_t seed = cfg_int(c, CFG_BENCH_SEED);
    l->seed = seed >= 0 ? (uint64_t)seed : bench_seed_random() >> 1;
    err_clear(&d);
    if (bench_pcts_parse(cfg_str(c, CFG_BENCH_PERCENTILES), o->pcts, &o->npcts, &d))
        return usage_error(msg, cap, "--percentiles: %s", d.msg);
    if (bench_slo_parse(cfg_str(c, CFG_BENCH_GOODPUT), &o->slo, &d))
        return usage_error(msg, cap, "--goodput: %s", d.msg);
    if (bench_arrival_check(isinf(l->rate) ? INFINITY : l->rate, l->burstiness, &d))
        return usage_error(msg, cap, "%s", d.msg);
    if ((rc = parse_sweep(c, o, msg, cap)) || (rc = parse_headers(c, o, msg, cap)))
        return rc;
    l->url = cfg_str(c, CFG_BENCH_BASE_URL);
    l->transport_curl = !strcmp(cfg_str(c, CFG_BENCH_TRANSPORT), "curl");
    l->kernel_ts = !l->transport_curl && !strcmp(cfg_str(c, CFG_BENCH_TIMESTAMPS), "kernel");
    l->cacert = *cfg_str(c, CFG_BENCH_CACERT) ? cfg_str(c, CFG_BENCH_CACERT) : NULL;
    const char *tp = cfg_str(c, CFG_BENCH_TRACEPARENT);
    if (*tp && trace_parse_parent(tp, strlen(tp), &o->join))
        return usage_error(msg, cap, "--traceparent: '%.64s' is not a W3C traceparent"
                           " (00-<32 hex>-<16 hex>-<2 hex>)", tp);
    l->join = *tp ? &o->join : NULL;
    if (strncmp(l->url, "http://", 7) && strncmp(l->url, "https://", 8))
        return usage_error(msg, cap, "--base-url: '%s' is not an http:// or https:// URL",
                           l->url);
    if (!strncmp(l->url, "https://", 8) && !l->transport_curl)
        return usage_error(msg, cap, "--base-url %s: https needs --transport curl", l->url);
    err_clear(&d);
    if (!l->transport_curl && bench_target_parse(l->url, &o->t, &d))
        return usage_error(msg, cap, "%s", d.msg);
    return 0;
}

int bench_opts_dataset(const struct cfg *c, const struct bench_opts *o,
                       struct bench_dataset *ds, char *msg, size_t cap)
{
    struct err_detail d;
    const char *kind = cfg_str(c, CFG_BENCH_DATASET), *path = cfg_str(c, CFG_BENCH_DATASET_PATH);
    /* Enough distinct prompts for a run; a duration run cycles through them. */
    size_t n = o->l.num_prompts ? (size_t)o->l.num_prompts + (size_t)o->l.warmup : 10000;
    int rc;
    err_clear(&d);
    if (!strcmp(kind, "random")) {
        rc = bench_dataset_random(ds, n, (int)cfg_int(c, CFG_BENCH_INPUT_LEN),
                                  (int)cfg_int(c, CFG_BENCH_OUTPUT_LEN),
                                  cfg_double(c, CFG_BENCH_RANGE_RATIO),
                                  (int32_t)cfg_int(c, CFG_BENCH_PREFIX_LEN), o->l.seed, &d);
    } else if (!*path) {
        return usage_error(msg, cap, "--dataset %s needs --dataset-path", kind);
    } else if (!strcmp(kind, "sharegpt")) {
        rc = bench_dataset_sharegpt(ds, path, n, o->l.seed, &d);
    } else {
        rc = bench_dataset_jsonl(ds, path, n, &d);
    }
    if (rc)
        return usage_error(msg, cap, "dataset: %s", d.msg);
    return 0;
}

int bench_opts_npoints(const struct bench_opts *o)
{
    return o->npoints ? o->npoints : 1;
}

void bench_opts_point(struct bench_opts *o, int i)
{
    if (o->sweep_conc == 1)
        o->l.max_concurrency = (int)o->points[i];
    else if (o->sweep_conc == 0)
        o->l.rate = o->points[i];
}

void bench_opts_catalog(const struct cfg *c, const struct bench_opts *o, const char *url,
                        const char *api_key, struct bench_catalog *cat)
{
    const char *engine = cfg_str(c, CFG_BENCH_ENGINE);
    memset(cat, 0, sizeof(*cat));
    cat->url = url;
    cat->api_key = api_key;
    cat->model = *cfg_str(c, CFG_BENCH_CATALOG_MODEL) ? cfg_str(c, CFG_BENCH_CATALOG_MODEL)
                                                       : o->l.model;
    cat->engine = *engine ? engine : bench_backend_name(o->l.backend);
    cat->engine_version = cfg_str(c, CFG_BENCH_ENGINE_VERSION);
    cat->engine_args = cfg_str(c, CFG_BENCH_ENGINE_ARGS);
    cat->hardware = cfg_str(c, CFG_BENCH_HARDWARE);
    cat->gpu_count = (int)cfg_int(c, CFG_BENCH_GPU_COUNT);
    cat->tensor_parallel = (int)cfg_int(c, CFG_BENCH_TENSOR_PARALLEL);
    cat->max_body = 1 << 20;
}

json_t *bench_opts_result(const struct cfg *c, const struct bench_load *l,
                          const struct bench_run *run, const struct bench_summary *s,
                          const char *cmd, const char *sweep_id, int point)
{
    struct bench_report_ctx rc = {
        .load = l, .run = run, .summary = s, .dataset = cfg_str(c, CFG_BENCH_DATASET),
        .base_url = cfg_str(c, CFG_BENCH_BASE_URL), .command = cmd,
        .sweep_id = sweep_id, .point = point,
    };
    return bench_report_result(&rc);
}

int bench_opts_telemetry(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap)
{
    struct err_detail d;
    struct tel_opts t = {
        .sources = cfg_str(c, CFG_BENCH_GPU_TELEMETRY),
        .interval_s = cfg_double(c, CFG_BENCH_GPU_TELEMETRY_INTERVAL),
        .nvml_library = cfg_str(c, CFG_BENCH_NVML_LIBRARY),
        .engine_url = o->l.url,
    };
    o->tel = NULL;
    if (!*t.sources)
        return 0;
    err_clear(&d);
    if (tel_sampler_create(&o->tel, &t, &d))
        return usage_error(msg, cap, "--gpu-telemetry: %s", d.msg);
    return 0;
}

void bench_opts_telemetry_free(struct bench_opts *o)
{
    tel_sampler_destroy(o->tel);
    o->tel = NULL;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* One GPU sample as the catalog's gpu_samples take it, plus its uuid. */
static json_t *gpu_sample_json(const struct tel_gpu_sample *g)
{
    json_t *o = json_pack("{s:I,s:i}", "ts_ms", (json_int_t)g->ts_ms, "gpu", g->gpu);
    if (!o)
        return NULL;
    if (g->have & TEL_HAVE_UTIL)
        json_object_set_new(o, "util_pct", json_real(g->util_pct));
    if (g->have & TEL_HAVE_MEM)
        json_object_set_new(o, "mem_used_bytes", json_integer((json_int_t)g->mem_used_bytes));
    if (g->have & TEL_HAVE_POWER)
        json_object_set_new(o, "power_w", json_real(g->power_w));
    if (g->have & TEL_HAVE_TEMP)
        json_object_set_new(o, "temp_c", json_real(g->temp_c));
    if (g->have & TEL_HAVE_CLOCK)
        json_object_set_new(o, "sm_clock_mhz", json_real(g->sm_clock_mhz));
    if (g->have & TEL_HAVE_ENERGY)
        json_object_set_new(o, "energy_j", json_real(g->energy_j));
    if (g->uuid[0])
        json_object_set_new(o, "uuid", json_string(g->uuid));
    return o;
}

int bench_opts_telemetry_result(const struct cfg *c, const struct bench_opts *o, json_t *result,
                                const struct bench_summary *s, FILE *table)
{
    struct tel_summary t;
    size_t ng, ne;
    const char *last;
    if (!o->tel)
        return 0;
    const struct tel_gpu_sample *g = tel_sampler_gpu(o->tel, &ng);
    const struct tel_engine_sample *e = tel_sampler_engine(o->tel, &ne);
    uint64_t errors = tel_sampler_errors(o->tel, &last);
    if (errors)
        log_warn("bench", "gpu telemetry: %llu failed reads, the last: %s",
                 (unsigned long long)errors, last);
    tel_summarize(g, ng, e, ne, s->total_output_tokens, &t);
    if (table)
        tel_summary_print(&t, table);
    json_t *a = json_array();
    for (size_t i = 0; a && i < ng; i++)
        if (json_array_append_new(a, gpu_sample_json(&g[i]))) {
            json_decref(a);
            a = NULL;
        }
    json_t *info = json_pack("{s:s,s:f,s:I,s:I,s:I,s:s}",
        "sources", cfg_str(c, CFG_BENCH_GPU_TELEMETRY),
        "interval_s", cfg_double(c, CFG_BENCH_GPU_TELEMETRY_INTERVAL),
        "gpus", (json_int_t)t.gpus, "engine_samples", (json_int_t)ne,
        "errors", (json_int_t)errors,
        "energy_from", isnan(t.energy_j) ? "none" : t.energy_from_counter ? "counter" : "power");
    if (!a || !info) {
        json_decref(a);
        json_decref(info);
        return -1;
    }
    json_object_set_new(result, "gpu_util_mean_pct", num_or_null(t.util_mean_pct));
    json_object_set_new(result, "gpu_util_max_pct", num_or_null(t.util_max_pct));
    json_object_set_new(result, "gpu_mem_peak_bytes", isfinite(t.mem_peak_bytes)
                        ? json_integer((json_int_t)t.mem_peak_bytes) : json_null());
    json_object_set_new(result, "gpu_power_mean_w", num_or_null(t.power_mean_w));
    json_object_set_new(result, "gpu_energy_j", num_or_null(t.energy_j));
    json_object_set_new(result, "energy_per_output_token_j",
                        num_or_null(t.energy_per_output_token_j));
    json_object_set_new(result, "kv_cache_peak_pct", num_or_null(t.kv_peak_pct));
    json_object_set_new(result, "engine_running_mean", num_or_null(t.running_mean));
    json_object_set_new(result, "engine_waiting_mean", num_or_null(t.waiting_mean));
    json_object_set_new(result, "gpu_telemetry", info);
    json_object_set_new(result, "gpu_samples", a);
    return 0;
}
