/*
 * `modelcat bench`: the LLM serving benchmark. Parses the settings, loads
 * the dataset, runs one point or a sweep of points (bench/client.c), and
 * reports each: a summary table, --result-json, --requests-out, and an
 * idempotent publish to a catalog with --catalog.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/arrival.h"
#include "bench/backend.h"
#include "bench/client.h"
#include "bench/dataset.h"
#include "bench/publish.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "cli/cli.h"
#include "core/codec.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"

#define MAX_POINTS 64
#define MAX_PCTS BENCH_PCT_MAX
#define MAX_HEADERS 32

struct opts {
    struct bench_load l;
    struct bench_target t;
    struct bench_slo slo;
    double pcts[MAX_PCTS];
    int npcts;
    int sweep_conc;              /* 1: sweep concurrency, 0: rate, -1: no sweep */
    double points[MAX_POINTS];
    int npoints;
    char *headers[MAX_HEADERS];
    char header_buf[4200];
};

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "modelcat bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
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

static int parse_opts(const struct cfg *c, struct opts *o)
{
    struct bench_load *l = &o->l;
    struct err_detail d;
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
        return usage_error("give either --num-prompts N or --duration S (and not both)%s", "");
    const char *rate = cfg_str(c, CFG_BENCH_REQUEST_RATE);
    char *end;
    l->rate = strcmp(rate, "inf") == 0 ? INFINITY : strtod(rate, &end);
    if (!isinf(l->rate) && (end == rate || *end || !(l->rate > 0) || !isfinite(l->rate)))
        return usage_error("--request-rate: '%s' is not a positive number or inf", rate);
    int64_t seed = cfg_int(c, CFG_BENCH_SEED);
    l->seed = seed >= 0 ? (uint64_t)seed : bench_seed_random() >> 1;
    err_clear(&d);
    if (bench_pcts_parse(cfg_str(c, CFG_BENCH_PERCENTILES), o->pcts, &o->npcts, &d))
        return usage_error("--percentiles: %s", d.msg);
    if (bench_slo_parse(cfg_str(c, CFG_BENCH_GOODPUT), &o->slo, &d))
        return usage_error("--goodput: %s", d.msg);
    if (bench_arrival_check(isinf(l->rate) ? INFINITY : l->rate, l->burstiness, &d))
        return usage_error("%s", d.msg);
    const char *sw = cfg_str(c, CFG_BENCH_SWEEP);
    o->sweep_conc = -1;
    if (*sw) {
        if (!strncmp(sw, "concurrency=", 12))
            o->sweep_conc = 1, sw += 12;
        else if (!strncmp(sw, "rate=", 5))
            o->sweep_conc = 0, sw += 5;
        else
            return usage_error("--sweep: want concurrency=1,4,16 or rate=1,2,4, not '%s'", sw);
        if ((o->npoints = parse_list(sw, o->points, MAX_POINTS)) <= 0)
            return usage_error("--sweep: bad list '%s'", sw);
        for (int i = 0; i < o->npoints; i++)
            if (!(o->points[i] > 0) || (o->sweep_conc && o->points[i] != floor(o->points[i])))
                return usage_error("--sweep: points must be positive%s", o->sweep_conc ?
                                   " integers" : " numbers");
    }
    /* Headers: repeatable, one per line. */
    snprintf(o->header_buf, sizeof(o->header_buf), "%s", cfg_str(c, CFG_BENCH_HEADER));
    for (char *h = o->header_buf; *h && l->nheaders < MAX_HEADERS;) {
        char *nl = strchr(h, '\n');
        if (nl)
            *nl = '\0';
        const char *colon = strchr(h, ':');
        if (!colon || colon == h || strpbrk(h, "\r"))
            return usage_error("--header: '%s' is not 'Name: value'", h);
        o->headers[l->nheaders++] = h;
        h = nl ? nl + 1 : h + strlen(h);
    }
    l->headers = (const char *const *)o->headers;
    l->url = cfg_str(c, CFG_BENCH_BASE_URL);
    l->transport_curl = !strcmp(cfg_str(c, CFG_BENCH_TRANSPORT), "curl");
    l->kernel_ts = !l->transport_curl && !strcmp(cfg_str(c, CFG_BENCH_TIMESTAMPS), "kernel");
    l->cacert = *cfg_str(c, CFG_BENCH_CACERT) ? cfg_str(c, CFG_BENCH_CACERT) : NULL;
    if (strncmp(l->url, "http://", 7) && strncmp(l->url, "https://", 8))
        return usage_error("--base-url: '%s' is not an http:// or https:// URL", l->url);
    if (!strncmp(l->url, "https://", 8) && !l->transport_curl)
        return usage_error("--base-url %s: https needs --transport curl", l->url);
    err_clear(&d);
    if (!l->transport_curl && bench_target_parse(l->url, &o->t, &d))
        return usage_error("%s", d.msg);
    return 0;
}

static int load_dataset(const struct cfg *c, const struct opts *o, struct bench_dataset *ds)
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
        fprintf(stderr, "modelcat bench: --dataset %s needs --dataset-path\n", kind);
        return 2;
    } else if (!strcmp(kind, "sharegpt")) {
        rc = bench_dataset_sharegpt(ds, path, n, o->l.seed, &d);
    } else {
        rc = bench_dataset_jsonl(ds, path, n, &d);
    }
    if (rc) {
        fprintf(stderr, "modelcat bench: dataset: %s\n", d.msg);
        return 2;
    }
    return 0;
}

/* The command line, for provenance. */
static void command_line(int argc, char **argv, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "modelcat");
    for (int i = 0; i < argc && n < cap; i++) {
        const char *a = argv[i];
        int secret = i > 0 && (!strcmp(argv[i - 1], "--api-key") ||
                               !strcmp(argv[i - 1], "--catalog-api-key"));
        n += (size_t)snprintf(out + n, cap - n, " %s", secret ? "****" : a);
    }
}

static int publish_point(const struct cfg *c, const struct opts *o, json_t *result,
                         const struct bench_run *run, const char *sweep_id, int point)
{
    struct err_detail d;
    char idem[128], id[64] = "";
    const char *engine = cfg_str(c, CFG_BENCH_ENGINE);
    struct bench_catalog cat = {
        .url = cfg_str(c, CFG_BENCH_CATALOG),
        .api_key = cfg_str(c, CFG_BENCH_CATALOG_API_KEY),
        .model = *cfg_str(c, CFG_BENCH_CATALOG_MODEL) ? cfg_str(c, CFG_BENCH_CATALOG_MODEL)
                                                       : o->l.model,
        .engine = *engine ? engine : bench_backend_name(o->l.backend),
        .engine_version = cfg_str(c, CFG_BENCH_ENGINE_VERSION),
        .engine_args = cfg_str(c, CFG_BENCH_ENGINE_ARGS),
        .hardware = cfg_str(c, CFG_BENCH_HARDWARE),
        .gpu_count = (int)cfg_int(c, CFG_BENCH_GPU_COUNT),
        .tensor_parallel = (int)cfg_int(c, CFG_BENCH_TENSOR_PARALLEL),
        .max_body = 1 << 20,
    };
    snprintf(idem, sizeof(idem), "bench-%s-%d", sweep_id, point);
    err_clear(&d);
    if (bench_publish(&cat, result, run, idem, id, &d)) {
        log_error("bench", "publish to %s failed: %s%s%s", cat.url, d.field,
                  d.field[0] ? ": " : "", d.msg);
        return 1;
    }
    log_info("bench", "published point %d as run %s", point, id);
    return 0;
}

/* Runs point i of the sweep (or the only point); appends its result to all. */
static int run_point(const struct cfg *c, struct opts *o, int i, const char *sweep_id,
                     const char *cmd, FILE *reqs_out, json_t *all, int *interrupted)
{
    struct bench_run run;
    struct bench_summary s;
    struct err_detail d;
    err_clear(&d);
    if (o->sweep_conc == 1)
        o->l.max_concurrency = (int)o->points[i];
    else if (o->sweep_conc == 0)
        o->l.rate = o->points[i];
    if (o->npoints > 1)
        log_info("bench", "sweep point %d/%d: %s %g", i + 1, o->npoints,
                 o->sweep_conc ? "max-concurrency" : "request-rate", o->points[i]);
    if (bench_run(&o->t, &o->l, &run, &d)) {
        log_error("bench", "%s", d.msg);
        return 1;
    }
    *interrupted = run.interrupted;
    double dur = (double)(run.end_ns - run.start_ns) / 1e9;
    if (bench_summarize(&s, run.reqs, run.n, dur, &o->slo, o->pcts, o->npcts, &d)) {
        log_error("bench", "%s", d.msg);
        bench_run_free(&run);
        return 1;
    }
    s.request_rate = o->l.rate;
    s.max_concurrency = o->l.max_concurrency;
    bench_summary_table(&s, stdout);
    struct bench_report_ctx rc = {
        .load = &o->l, .run = &run, .summary = &s, .dataset = cfg_str(c, CFG_BENCH_DATASET),
        .base_url = cfg_str(c, CFG_BENCH_BASE_URL), .command = cmd,
        .sweep_id = sweep_id, .point = i,
    };
    json_t *result = bench_report_result(&rc);
    int bad = !result;
    if (result && reqs_out)
        bad |= bench_report_requests(reqs_out, &run, i);
    if (result && *cfg_str(c, CFG_BENCH_CATALOG) && !run.interrupted && run.n)
        bad |= publish_point(c, o, result, &run, sweep_id, i);
    if (result)
        json_array_append_new(all, result);
    bench_run_free(&run);
    if (!s.completed && !run.interrupted)
        log_error("bench", "no request completed");
    return bad || run.stopped_by_errors || (!s.completed && !run.interrupted);
}

static int write_result(const char *path, json_t *all, const char *sweep_id, int sweep)
{
    json_t *doc = sweep ? json_pack("{s:s,s:O}", "sweep_id", sweep_id, "points", all)
                        : json_incref(json_array_get(all, 0));
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* Written whole to a temporary file and renamed: never a half file. */
    int rc = !doc || json_dump_file(doc, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) ||
             rename(tmp, path);
    if (rc)
        log_error("bench", "cannot write %s", path);
    json_decref(doc);
    return rc;
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int cli_bench(int argc, char **argv)
{
    struct cfg c;
    struct opts o;
    struct bench_dataset ds = {0};
    char sweep_id[37], cmd[4096];
    int rc = cli_setup(&c, CMD_BENCH, argc, argv,
                       "usage: modelcat bench --backend B --base-url URL --model NAME [flags]\n\n"
                       "Benchmarks an LLM server (vLLM, TGI, LMDeploy, any OpenAI-compatible\n"
                       "server, or modelcat sim) and reports vLLM bench serve metrics.");
    if (rc >= 0)
        return rc;
    /* Until a run's event loop takes them, SIGINT/SIGTERM only raise a flag:
       a signal while the dataset loads still ends with a clean exit. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = parse_opts(&c, &o)) || (rc = load_dataset(&c, &o, &ds))) {
        cfg_free(&c);
        return rc;
    }
    o.l.prompts = ds.v;
    o.l.stop = &stop_requested;
    o.l.nprompts = ds.n;
    if (codec_uuid7(sweep_id, time_wall_ms()))
        snprintf(sweep_id, sizeof(sweep_id), "sweep");
    command_line(argc, argv, cmd, sizeof(cmd));
    const char *rq = cfg_str(&c, CFG_BENCH_REQUESTS_OUT);
    FILE *reqs_out = *rq ? fopen(rq, "w") : NULL;
    if (*rq && !reqs_out) {
        fprintf(stderr, "modelcat bench: cannot open %s for writing\n", rq);
        rc = 2;
        goto out;
    }
    log_info("bench", "%s %s (%s transport), seed %llu, %zu prompts (%s)",
             bench_backend_name(o.l.backend), o.l.url, o.l.transport_curl ? "curl" : "native",
             (unsigned long long)o.l.seed, ds.n, cfg_str(&c, CFG_BENCH_DATASET));
    json_t *all = json_array();
    int npoints = o.npoints ? o.npoints : 1, interrupted = 0, failed = 0;
    for (int i = 0; i < npoints && (i == 0 || (!interrupted && !stop_requested)); i++)
        failed |= run_point(&c, &o, i, sweep_id, cmd, reqs_out, all, &interrupted);
    if (*cfg_str(&c, CFG_BENCH_RESULT_JSON) && json_array_size(all))
        failed |= write_result(cfg_str(&c, CFG_BENCH_RESULT_JSON), all, sweep_id, o.npoints > 0);
    json_decref(all);
    rc = interrupted || stop_requested ? 130 : failed ? 1 : 0;
out:
    if (reqs_out && fclose(reqs_out))
        rc = rc ? rc : 1;
    bench_dataset_free(&ds);
    cfg_free(&c);
    return rc;
}
