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
#include "cli/bench_spec.h"
#include "cli/cli.h"
#include "cli/obs.h"
#include "core/codec.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "telemetry/telemetry.h"

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

static int publish_point(const struct cfg *c, const struct bench_opts *o, json_t *result,
                         const struct bench_run *run, const char *sweep_id, int point)
{
    struct err_detail d;
    char idem[128], id[64] = "";
    struct bench_catalog cat;
    bench_opts_catalog(c, o, cfg_str(c, CFG_BENCH_CATALOG), cfg_str(c, CFG_BENCH_CATALOG_API_KEY),
                       &cat);
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
static int run_point(const struct cfg *c, struct bench_opts *o, int i, const char *sweep_id,
                     const char *cmd, FILE *reqs_out, json_t *all, int *interrupted)
{
    struct bench_run run;
    struct bench_summary s;
    struct err_detail d;
    err_clear(&d);
    bench_opts_point(o, i);
    if (o->npoints > 1)
        log_info("bench", "sweep point %d/%d: %s %g", i + 1, o->npoints,
                 o->sweep_conc ? "max-concurrency" : "request-rate", o->points[i]);
    /* Sampling runs on its own thread for the whole point. */
    if (o->tel && tel_sampler_start(o->tel, &d)) {
        log_error("bench", "%s", d.msg);
        return 1;
    }
    int brc = bench_run(&o->t, &o->l, &run, &d);
    if (!brc)
        cli_obs_bench_abandoned(run.incomplete);
    if (o->tel)
        tel_sampler_stop(o->tel);
    if (brc) {
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
    json_t *result = bench_opts_result(c, &o->l, &run, &s, cmd, sweep_id, i);
    int bad = !result || bench_opts_telemetry_result(c, o, result, &s, stdout);
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
    struct bench_opts o;
    struct bench_dataset ds = {0};
    char sweep_id[37], cmd[4096], msg[512];
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
    if ((rc = bench_opts_parse(&c, &o, msg, sizeof(msg))) ||
        (rc = bench_opts_dataset(&c, &o, &ds, msg, sizeof(msg))) ||
        (rc = bench_opts_telemetry(&c, &o, msg, sizeof(msg)))) {
        fprintf(stderr, "modelcat bench: %s\n", msg);
        bench_dataset_free(&ds);
        cfg_free(&c);
        return rc;
    }
    o.l.prompts = ds.v;
    o.l.stop = &stop_requested;
    o.l.nprompts = ds.n;
    o.l.on_start = cli_obs_bench_start;
    o.l.on_finish = cli_obs_bench_finish;
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
    if (cli_obs_start(cfg_str(&c, CFG_METRICS_LISTEN), 0, NULL, NULL)) {
        rc = 2;
        goto out;
    }
    log_info("bench", "%s %s (%s transport), seed %llu, %zu prompts (%s)",
             bench_backend_name(o.l.backend), o.l.url, o.l.transport_curl ? "curl" : "native",
             (unsigned long long)o.l.seed, ds.n, cfg_str(&c, CFG_BENCH_DATASET));
    json_t *all = json_array();
    int npoints = bench_opts_npoints(&o), interrupted = 0, failed = 0;
    for (int i = 0; i < npoints && (i == 0 || (!interrupted && !stop_requested)); i++)
        failed |= run_point(&c, &o, i, sweep_id, cmd, reqs_out, all, &interrupted);
    if (*cfg_str(&c, CFG_BENCH_RESULT_JSON) && json_array_size(all))
        failed |= write_result(cfg_str(&c, CFG_BENCH_RESULT_JSON), all, sweep_id, o.npoints > 0);
    json_decref(all);
    rc = interrupted || stop_requested ? 130 : failed ? 1 : 0;
out:
    if (reqs_out && fclose(reqs_out))
        rc = rc ? rc : 1;
    cli_obs_stop();
    bench_opts_telemetry_free(&o);
    bench_dataset_free(&ds);
    cfg_free(&c);
    return rc;
}
