/*
 * The metrics of worker, bench and sim behind --metrics-listen (see obs.h).
 * One registry for the process; the families are NULL while the endpoint
 * is off, and metrics_add/metrics_observe treat NULL as a no-op, so the
 * observers cost a load and a branch then.
 */
#include <stdatomic.h>

#include "cli/obs.h"
#include "core/log.h"
#include "core/metrics_http.h"

#ifndef MODELCAT_VERSION
#define MODELCAT_VERSION "0.0.0"
#endif

static struct metrics *reg;
static struct metrics_http *srv;
static struct metrics_family *f_req, *f_tok, *f_ttft, *f_jobs, *f_notices, *f_ckpt, *f_n2r;
static atomic_llong in_flight;

static const char *const outcomes[] = {"ok", "error"};
static const char *const job_outcomes[] = {"succeeded", "failed", "released", "cancelled"};
static const char *const notice_kinds[] = {"terminate", "rebalance", "sigterm"};

/* Seconds, in nanoseconds: 1 ms .. 60 s. */
static const int64_t sec_bounds[] = {
    1000000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 500000000,
    1000000000, 2500000000, 5000000000, 10000000000, 30000000000, 60000000000,
};
#define NB(a) ((int)(sizeof(a) / sizeof(a[0])))

static struct metrics_family *counter(const char *name, const char *help,
                                      const struct metrics_dim *dim)
{
    struct metrics_family_opts o = {.name = name, .help = help, .type = METRICS_COUNTER,
                                    .ndims = dim ? 1 : 0, .dims = dim};
    return metrics_family(reg, &o);
}

static struct metrics_family *seconds(const char *name, const char *help)
{
    struct metrics_family_opts o = {.name = name, .help = help, .type = METRICS_HISTOGRAM,
                                    .bounds = sec_bounds, .nbounds = NB(sec_bounds),
                                    .scale = 1e9};
    return metrics_family(reg, &o);
}

static void collect(struct buf *out, void *arg)
{
    (void)arg;
    const char *lab[] = {"version", MODELCAT_VERSION};
    metrics_write_head(out, "modelcat_build_info", "The build: always 1, with its version.",
                       "gauge");
    metrics_write_sample(out, "modelcat_build_info", lab, 1, 1);
    metrics_write_head(out, "modelcat_bench_requests_in_flight",
                       "Measured benchmark requests sent and not yet finished.", "gauge");
    metrics_write_sample(out, "modelcat_bench_requests_in_flight", NULL, 0,
                         (double)atomic_load_explicit(&in_flight, memory_order_relaxed));
}

static int families(int worker)
{
    struct metrics_dim d_out = {"outcome", 2, outcomes};
    f_req = counter("modelcat_bench_requests_total", "Measured benchmark requests finished.",
                    &d_out);
    f_tok = counter("modelcat_bench_output_tokens_total",
                    "Output tokens of successful measured benchmark requests.", NULL);
    f_ttft = seconds("modelcat_bench_ttft_seconds",
                     "Time to first token of successful measured benchmark requests.");
    if (!f_req || !f_tok || !f_ttft || metrics_collector(reg, collect, NULL))
        return 1;
    if (!worker)
        return 0;
    struct metrics_dim d_job = {"outcome", 4, job_outcomes};
    struct metrics_dim d_kind = {"kind", 3, notice_kinds};
    f_jobs = counter("modelcat_worker_jobs_total", "Jobs this worker ended, by outcome.",
                     &d_job);
    f_notices = counter("modelcat_worker_notices_total",
                        "Preemption notices and SIGTERMs received during a job.", &d_kind);
    f_ckpt = seconds("modelcat_worker_checkpoint_duration_seconds",
                     "Time of each checkpoint PUT to the API.");
    f_n2r = seconds("modelcat_worker_notice_to_release_seconds",
                    "Time from a notice to the job's released checkpoint.");
    return !f_jobs || !f_notices || !f_ckpt || !f_n2r;
}

int cli_obs_start(const char *addr, int worker,
                  int (*extra)(struct metrics *reg, void *arg), void *arg)
{
    if (!addr || !*addr)
        return 0;
    struct err_detail d;
    err_clear(&d);
    reg = metrics_create();
    if (!reg || families(worker) || (extra && extra(reg, arg))) {
        log_error("metrics", "out of memory");
        goto fail;
    }
    if (metrics_http_start(addr, reg, &srv, &d)) {
        log_error("metrics", "--metrics-listen %s: %s", addr, d.msg);
        goto fail;
    }
    char url[128];
    metrics_http_url(srv, url, sizeof(url));
    log_info("metrics", "metrics on %s", url);
    return 0;
fail:
    cli_obs_stop();
    return 1;
}

void cli_obs_stop(void)
{
    metrics_http_stop(srv);
    srv = NULL;
    f_req = f_tok = f_ttft = f_jobs = f_notices = f_ckpt = f_n2r = NULL;
    metrics_destroy(reg);
    reg = NULL;
}

void cli_obs_bench_start(void *arg)
{
    (void)arg;
    if (f_req)
        atomic_fetch_add_explicit(&in_flight, 1, memory_order_relaxed);
}

void cli_obs_bench_finish(void *arg, const struct bench_req *r)
{
    (void)arg;
    if (!f_req)
        return;
    atomic_fetch_sub_explicit(&in_flight, 1, memory_order_relaxed);
    int ok = r->err == BENCH_OK;
    metrics_add(f_req, ok ? 0 : 1, 1);
    if (!ok)
        return;
    if (r->output_tokens > 0)
        metrics_add(f_tok, 0, (uint64_t)r->output_tokens);
    metrics_observe(f_ttft, 0, r->first_ns ? r->first_ns - r->sent_ns : 0);
}

void cli_obs_bench_abandoned(size_t n)
{
    if (f_req)
        atomic_fetch_sub_explicit(&in_flight, (long long)n, memory_order_relaxed);
}

void cli_obs_job(enum cli_obs_job outcome) { metrics_add(f_jobs, (int)outcome, 1); }
void cli_obs_notice(enum cli_obs_notice kind) { metrics_add(f_notices, (int)kind, 1); }
void cli_obs_checkpoint(int64_t ns) { metrics_observe(f_ckpt, 0, ns); }
void cli_obs_notice_to_release(int64_t ns) { metrics_observe(f_n2r, 0, ns); }
