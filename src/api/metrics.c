/*
 * GET /metrics: the server's metrics in the Prometheus text format 0.0.4
 * (core/metrics.h), and the observations the API makes for it.
 *
 * Counted as they happen, lock-free: every answered request by route
 * template, method and status, its latency and body bytes (the server's
 * observe hook, api_metrics_observe); job releases and checkpoints
 * (api/jobs.c). Read at scrape time from the components that keep them:
 * requests in flight (the server), the response cache's counters and
 * sizes, the circuit breakers of Redis and of each read replica, the jobs
 * by status (one GROUP BY on a read connection, at most once a second
 * whatever the number of scrapers), build and process facts. The store's
 * own metrics are registered by db_metrics.
 *
 * Route labels are the templates of the route table ("/api/v1/models/{id}"),
 * never the raw path, and "unmatched" for a request no route took (404, 405,
 * a refused body, a CORS preflight): the number of series stays bounded
 * whatever clients send. Methods outside the known ones are "other", and so
 * are statuses outside the list below.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "api/api_int.h"
#include "cache/cache.h"
#include "catalog/jobs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#ifndef MODELCAT_VERSION
#define MODELCAT_VERSION "0.0.0"
#endif

#define MAX_PATTERNS 64

static struct metrics *reg;
static struct metrics_family *m_done;
static struct metrics_family *m_req, *m_dur, *m_bytes, *m_release, *m_ckpt_bytes,
    *m_ckpt_dur;
static _Atomic(struct http_server *) server;
static int64_t start_wall_ms;

/* Route table index -> index of its template in patterns[] (the last is "unmatched"). */
static const struct http_route *table;
static int ntable;
static unsigned char route_pat[MAX_PATTERNS];
static const char *patterns[MAX_PATTERNS + 1];
static int npatterns;

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                      "OPTIONS", "other"};
#define NMETHODS 8
static const char *const statuses[] = {
    "200", "201", "202", "204", "301", "302", "304", "400", "401", "403", "404", "405",
    "406", "408", "409", "410", "411", "412", "413", "415", "416", "422", "428", "429",
    "431", "500", "501", "502", "503", "504", "other",
};
#define NSTATUSES ((int)(sizeof(statuses) / sizeof(statuses[0])))
static unsigned char status_idx[600];

/* Latency buckets, 50 us .. 10 s, in nanoseconds. */
static const int64_t lat_bounds[] = {
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000,
    10000000000,
};
static const int64_t ckpt_bounds[] = {
    1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
};
#define NB(a) ((int)(sizeof(a) / sizeof(a[0])))

/* Fills patterns[] with the route table's distinct templates. */
static int index_routes(void)
{
    table = api_routes(&ntable);
    if (ntable > MAX_PATTERNS)
        return ERR_RANGE;
    for (int i = 0; i < ntable; i++) {
        int k = 0;
        while (k < npatterns && strcmp(patterns[k], table[i].pattern) != 0)
            k++;
        if (k == npatterns)
            patterns[npatterns++] = table[i].pattern;
        route_pat[i] = (unsigned char)k;
    }
    patterns[npatterns++] = "unmatched";
    for (int s = 0; s < 600; s++)
        status_idx[s] = NSTATUSES - 1;
    for (int i = 0; i < NSTATUSES - 1; i++)
        status_idx[(statuses[i][0] - '0') * 100 + (statuses[i][1] - '0') * 10 +
                   (statuses[i][2] - '0')] = (unsigned char)i;
    return 0;
}

static void collect_process(struct buf *out, void *arg);
static void collect_http(struct buf *out, void *arg);
static void collect_cache(struct buf *out, void *arg);
static void collect_breakers(struct buf *out, void *arg);
static void collect_jobs(struct buf *out, void *arg);
static void collect_replicas(struct buf *out, void *arg);
static void collect_costs(struct buf *out, void *arg);

static const char *const outcomes[] = {"failed", "succeeded"};

int api_metrics_init(struct metrics *m)
{
    if (index_routes())
        return ERR_RANGE;
    const struct metrics_dim d3[] = {{"route", npatterns, patterns},
                                     {"method", NMETHODS, methods},
                                     {"status", NSTATUSES, statuses}};
    const struct metrics_dim d_outcome[] = {{"outcome", 2, outcomes}};
    const struct metrics_family_opts fo[] = {
        {"modelcat_http_requests_total", "HTTP requests answered, by route template, method "
         "and status.", METRICS_COUNTER, 3, d3, NULL, 0, 0, 1},
        {"modelcat_http_request_duration_seconds", "Time from a request's headers to its "
         "response being queued, by route template and method.", METRICS_HISTOGRAM, 2, d3,
         lat_bounds, NB(lat_bounds), 1e9, 1},
        {"modelcat_http_response_body_bytes_total", "Bytes of response bodies, by route "
         "template and method.", METRICS_COUNTER, 2, d3, NULL, 0, 0, 1},
        {"modelcat_job_releases_total", "Jobs released by their workers (preemption, "
         "shutdown).", METRICS_COUNTER, 0, NULL, NULL, 0, 0, 0},
        {"modelcat_job_completions_total", "Attempts of jobs their workers completed, by "
         "the outcome they reported.", METRICS_COUNTER, 1, d_outcome, NULL, 0, 0, 0},
        {"modelcat_job_checkpoint_bytes", "Size of the checkpoints workers stored.",
         METRICS_HISTOGRAM, 0, NULL, ckpt_bounds, NB(ckpt_bounds), 1, 0},
        {"modelcat_job_checkpoint_duration_seconds", "Time to store a checkpoint, from its "
         "parsed body to the commit.", METRICS_HISTOGRAM, 0, NULL, lat_bounds,
         NB(lat_bounds), 1e9, 0},
    };
    struct metrics_family **fams[] = {&m_req, &m_dur, &m_bytes, &m_release, &m_done,
                                      &m_ckpt_bytes, &m_ckpt_dur};
    for (int i = 0; i < NB(fo); i++)
        if (!(*fams[i] = metrics_family(m, &fo[i])))
            return ERR_NOMEM;
    if (metrics_collector(m, collect_process, NULL) || metrics_collector(m, collect_http, NULL) ||
        metrics_collector(m, collect_cache, NULL) ||
        metrics_collector(m, collect_breakers, NULL) || metrics_collector(m, collect_jobs, NULL) ||
        metrics_collector(m, collect_replicas, NULL) || metrics_collector(m, collect_costs, NULL))
        return ERR_NOMEM;
    start_wall_ms = time_wall_ms();
    reg = m;
    return 0;
}

void api_metrics_server(struct http_server *s)
{
    atomic_store(&server, s);
}

void api_metrics_observe(const struct http_req *req, int status, size_t bytes, int64_t dur_ns)
{
    if (!m_req)
        return;
    int r = npatterns - 1, m = NMETHODS - 1;
    if (req->route) {
        int i = (int)(req->route - table);
        if (i >= 0 && i < ntable)
            r = route_pat[i];
    }
    if (req->method > 0 && req->method <= HTTP_OPTIONS)
        m = __builtin_ctz((unsigned)req->method);
    int st = status >= 0 && status < 600 ? status_idx[status] : NSTATUSES - 1;
    int rm = r * NMETHODS + m;
    metrics_add(m_req, rm * NSTATUSES + st, 1);
    metrics_observe(m_dur, rm, dur_ns);
    if (bytes)
        metrics_add(m_bytes, rm, bytes);
}

void api_metrics_job_release(void)
{
    metrics_add(m_release, 0, 1);
}

void api_metrics_job_complete(int succeeded)
{
    metrics_add(m_done, succeeded ? 1 : 0, 1);
}

void api_metrics_checkpoint(size_t bytes, int64_t dur_ns)
{
    metrics_observe(m_ckpt_bytes, 0, (int64_t)bytes);
    metrics_observe(m_ckpt_dur, 0, dur_ns);
}

/* A gauge family of one sample without labels. */
static void gauge1(struct buf *out, const char *name, const char *help, double v)
{
    metrics_write_head(out, name, help, "gauge");
    metrics_write_sample(out, name, NULL, 0, v);
}

static void collect_process(struct buf *out, void *arg)
{
    (void)arg;
    const char *lab[] = {"version", MODELCAT_VERSION};
    metrics_write_head(out, "modelcat_build_info", "The build: always 1, with its version.",
                       "gauge");
    metrics_write_sample(out, "modelcat_build_info", lab, 1, 1);
    gauge1(out, "modelcat_process_start_time_seconds",
           "When the process started, in seconds since the Unix epoch.",
           (double)start_wall_ms / 1000.0);
    gauge1(out, "modelcat_uptime_seconds", "Seconds since the process started.",
           (double)(time_wall_ms() - start_wall_ms) / 1000.0);
}

static void collect_http(struct buf *out, void *arg)
{
    (void)arg;
    struct http_server *s = atomic_load(&server);
    gauge1(out, "modelcat_http_requests_in_flight",
           "Requests received and not yet completed, this one included.",
           s ? (double)http_server_inflight(s) : 0);
}

/* One level's lines of the cache families (HELP/TYPE written by the caller). */
static void cache_counters(struct buf *out, const struct cache_status *st, int level,
                           const char *name)
{
    static const char *const results[] = {"hit", "miss", "bypass"};
    for (int r = 0; r < 3; r++) {
        const char *lab[] = {"level", name, "result", results[r]};
        metrics_write_sample(out, "modelcat_cache_requests_total", lab, 2,
                             (double)st->level[level][r]);
    }
}

static void collect_cache(struct buf *out, void *arg)
{
    struct cache_status st;
    const char *local[] = {"level", "local"};
    (void)arg;
    if (!api_cache)
        return;
    cache_status(api_cache, &st);
    metrics_write_head(out, "modelcat_cache_requests_total",
                       "Response cache lookups by level and result.", "counter");
    cache_counters(out, &st, CACHE_L_LOCAL, "local");
    if (st.has_breaker)
        cache_counters(out, &st, CACHE_L_REDIS, "redis");
    metrics_write_head(out, "modelcat_cache_evictions_total",
                       "Entries evicted to make room, by level.", "counter");
    metrics_write_sample(out, "modelcat_cache_evictions_total", local, 1,
                         (double)st.evictions);
    metrics_write_head(out, "modelcat_cache_bytes", "Bytes held, by level.", "gauge");
    metrics_write_sample(out, "modelcat_cache_bytes", local, 1, (double)st.bytes);
    metrics_write_head(out, "modelcat_cache_entries", "Entries held, by level.", "gauge");
    metrics_write_sample(out, "modelcat_cache_entries", local, 1, (double)st.entries);
    metrics_write_head(out, "modelcat_cache_max_bytes", "The byte budget, by level.",
                       "gauge");
    metrics_write_sample(out, "modelcat_cache_max_bytes", local, 1, (double)st.max_bytes);
}

/* 0 closed, 1 half-open, 2 open. */
static int state_value(enum breaker_state s)
{
    return s == BREAKER_CLOSED ? 0 : s == BREAKER_HALF_OPEN ? 1 : 2;
}

static void collect_breakers(struct buf *out, void *arg)
{
    struct breaker_info bi[1 + 16];
    char names[1 + 16][24];
    int n = 0;
    (void)arg;
    if (api_cache) {
        struct cache_status st;
        cache_status(api_cache, &st);
        if (st.has_breaker) {
            bi[n] = st.breaker;
            snprintf(names[n++], sizeof(names[0]), "redis");
        }
    }
    for (int i = 0; i < db_replicas(api_db) && n < 17; i++) {
        struct db_replica_info ri;
        db_replica_info(api_db, i, &ri);
        bi[n] = ri.breaker;
        snprintf(names[n++], sizeof(names[0]), "replica-%d", i);
    }
    if (!n)
        return;
    metrics_write_head(out, "modelcat_breaker_state",
                       "Circuit breaker state: 0 closed, 1 half-open, 2 open.", "gauge");
    for (int i = 0; i < n; i++) {
        const char *lab[] = {"breaker", names[i]};
        metrics_write_sample(out, "modelcat_breaker_state", lab, 1, state_value(bi[i].state));
    }
    metrics_write_head(out, "modelcat_breaker_transitions_total",
                       "Circuit breaker state changes, by the state entered.", "counter");
    static const enum breaker_state to[] = {BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            const char *lab[] = {"breaker", names[i], "to", breaker_name(to[k])};
            metrics_write_sample(out, "modelcat_breaker_transitions_total", lab, 2,
                                 (double)bi[i].transitions_to[to[k]]);
        }
}

/*
 * Runs fn on the primary (a scrape's few queries cost it little, and a
 * replica may not have replayed the newest rows or tables yet), or on a
 * replica when the primary cannot be reached. Returns fn's result.
 */
static int read_fallback(int (*fn)(struct db_conn *c, void *arg, struct err_detail *d),
                         void *arg, struct err_detail *d)
{
    struct db_conn *c;
    int rc = db_acquire(api_db, &c, d);
    if (!rc) {
        rc = fn(c, arg, d);
        db_release(api_db, c);
        if (rc != ERR_UNAVAIL)
            return rc;
    }
    if (!db_replicas(api_db))
        return rc;
    err_clear(d);
    if ((rc = db_acquire_read(api_db, &c, time_mono_ns(), d)))
        return rc;
    rc = fn(c, arg, d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    return rc;
}

static int count_jobs(struct db_conn *c, void *arg, struct err_detail *d)
{
    return job_count_by_status(c, arg, d);
}

/*
 * The jobs by status, from a read connection; reused for a second so that
 * many scrapers cost one query. On a store error the family is left out.
 */
static void collect_jobs(struct buf *out, void *arg)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t counted_ns, n[JOB_NSTATUS];
    static int ok;
    int64_t now = time_mono_ns(), copy[JOB_NSTATUS];
    (void)arg;
    pthread_mutex_lock(&mu);
    if (!counted_ns || now - counted_ns >= 1000000000) {
        struct err_detail d;
        err_clear(&d);
        int rc = read_fallback(count_jobs, n, &d);
        if (rc)
            log_warn("metrics", "counting jobs: %s", d.msg);
        ok = rc == 0;
        counted_ns = now;
    }
    int have = ok;
    memcpy(copy, n, sizeof(copy));
    pthread_mutex_unlock(&mu);
    if (!have)
        return;
    metrics_write_head(out, "modelcat_jobs", "Benchmark jobs by status.", "gauge");
    for (int k = 0; k < JOB_NSTATUS; k++) {
        const char *lab[] = {"status", job_statuses[k]};
        metrics_write_sample(out, "modelcat_jobs", lab, 1, (double)copy[k]);
    }
}

/* Each replica's last measured lag and whether it is out of reads for it. */
static void collect_replicas(struct buf *out, void *arg)
{
    int n = db_replicas(api_db);
    (void)arg;
    if (!n)
        return;
    struct db_replica_info ri[16];
    char names[16][24];
    n = n > 16 ? 16 : n;
    for (int i = 0; i < n; i++) {
        db_replica_info(api_db, i, &ri[i]);
        snprintf(names[i], sizeof(names[0]), "replica-%d", i);
    }
    metrics_write_head(out, "modelcat_replica_lag_seconds",
                       "Replay lag of each read replica at its last check (absent before the"
                       " first).", "gauge");
    for (int i = 0; i < n; i++) {
        const char *lab[] = {"replica", names[i]};
        if (ri[i].lag_s >= 0)
            metrics_write_sample(out, "modelcat_replica_lag_seconds", lab, 1, ri[i].lag_s);
    }
    metrics_write_head(out, "modelcat_replica_lagging",
                       "1 while a replica lags more than --replica-max-lag.", "gauge");
    for (int i = 0; i < n; i++) {
        const char *lab[] = {"replica", names[i]};
        metrics_write_sample(out, "modelcat_replica_lagging", lab, 1, ri[i].lagging);
    }
}

/*
 * The cheapest cost per 1M output tokens the catalog's runs show, by model,
 * engine and hardware, on-demand and spot (the cost-tracking dashboard).
 * One grouped query at most once a minute; at most COST_SERIES keys.
 */
#define COST_SERIES 1000
struct cost_row {
    char model[129], engine[65], hardware[65];
    double on_demand, spot; /* < 0: unknown */
};

static void cost_row_read(struct db_rows *r, struct cost_row *x)
{
    double per_gpu_tok_h = db_col_real(r, 3) * 3600.0;
    int64_t gpi = db_col_int(r, 6);
    snprintf(x->model, sizeof(x->model), "%s", db_col_text(r, 0, NULL));
    snprintf(x->engine, sizeof(x->engine), "%s", db_col_text(r, 1, NULL));
    snprintf(x->hardware, sizeof(x->hardware), "%s", db_col_text(r, 2, NULL));
    x->on_demand = x->spot = -1;
    if (gpi <= 0 || !(per_gpu_tok_h > 0))
        return;
    if (db_col_type(r, 4) != DB_NULL)
        x->on_demand = db_col_real(r, 4) / (double)gpi / per_gpu_tok_h * 1e6;
    if (db_col_type(r, 5) != DB_NULL)
        x->spot = db_col_real(r, 5) / (double)gpi / per_gpu_tok_h * 1e6;
}

struct cost_read {
    struct cost_row *rows;
    int *nrows;
};

static int read_costs(struct db_conn *c, void *arg, struct err_detail *d)
{
    struct cost_read *cr = arg;
    struct db_rows *r;
    *cr->nrows = 0;
    int rc = db_query(c,
        "SELECT r.model, r.engine, r.hardware, MAX(r.output_throughput / r.gpu_count),"
        " h.on_demand_usd_per_hour, h.spot_usd_per_hour, h.gpus_per_instance"
        " FROM runs r JOIN hardware h ON h.id = r.hardware"
        " WHERE r.output_throughput > 0 AND r.gpu_count > 0"
        " GROUP BY r.model, r.engine, r.hardware, h.on_demand_usd_per_hour,"
        " h.spot_usd_per_hour, h.gpus_per_instance LIMIT 1000", NULL, 0, &r, d);
    if (rc)
        return rc;
    int more;
    while ((more = db_next(r)) == 1 && *cr->nrows < COST_SERIES)
        cost_row_read(r, &cr->rows[(*cr->nrows)++]);
    db_rows_close(r);
    return more < 0 ? err_set(d, more, NULL, "reading the costs failed") : 0;
}

static void collect_costs(struct buf *out, void *arg)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct cost_row rows[COST_SERIES];
    static int nrows, ok;
    static int64_t counted_ns;
    int64_t now = time_mono_ns();
    (void)arg;
    pthread_mutex_lock(&mu);
    if (!counted_ns || now - counted_ns >= 60000000000LL) {
        struct err_detail d;
        err_clear(&d);
        struct cost_read cr = {rows, &nrows};
        int rc = read_fallback(read_costs, &cr, &d);
        if (rc)
            log_warn("metrics", "catalog costs: %s", d.msg);
        ok = rc == 0;
        counted_ns = now;
    }
    if (ok && nrows) {
        metrics_write_head(out, "modelcat_catalog_cost_per_1m_output_tokens_usd",
                           "Cheapest cost of one million output tokens among the catalog's"
                           " runs, by model, engine, hardware and pricing.", "gauge");
        for (int i = 0; i < nrows; i++) {
            for (int k = 0; k < 2; k++) {
                double v = k ? rows[i].spot : rows[i].on_demand;
                const char *lab[] = {"model", rows[i].model, "engine", rows[i].engine,
                                     "hardware", rows[i].hardware,
                                     "pricing", k ? "spot" : "on_demand"};
                if (v >= 0)
                    metrics_write_sample(out, "modelcat_catalog_cost_per_1m_output_tokens_usd",
                                         lab, 4, v);
            }
        }
    }
    pthread_mutex_unlock(&mu);
}

void api_metrics(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    if (!reg || metrics_render(reg, &resp->body)) {
        api_error(resp, 503, "unavailable", NULL, "metrics are not available");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    http_resp_header(resp, "Cache-Control", "no-store");
}
