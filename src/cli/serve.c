/*
 * `modelcat serve`: create the response cache, open and migrate the store,
 * start the HTTP server, wait for SIGTERM/SIGINT, then drain in-flight
 * requests and close the store and the cache.
 *
 * Signals are blocked before any thread starts, so every server thread
 * inherits the mask and the main thread alone takes them with sigwait:
 * no async-signal-safety concerns, no flag polling.
 */
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "backup/backup.h"
#include "cache/cache.h"
#include "catalog/catalog.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/trace.h"
#include "db/migrate.h"
#include "http/http.h"
#include "trace/export.h"

/* Registers each URL of --db-replicas; logs and returns non-zero on a bad one. */
static int add_replicas(const struct cfg *c, struct db *db)
{
    const char *p = cfg_str(c, CFG_DB_REPLICAS);
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char url[4100], masked[512];
        struct err_detail d;
        err_clear(&d);
        snprintf(url, sizeof(url), "%.*s", (int)n, p);
        p += n + (comma ? 1 : 0);
        if (!url[0])
            continue;
        cfg_mask_url(masked, sizeof(masked), url);
        if (db_add_replica(db, url, cfg_double(c, CFG_REPLICA_MAX_LAG), &d)) {
            log_error("serve", "replica %s: %s", masked, d.msg);
            return -1;
        }
        log_info("serve", "read replica %s (max lag %gs)", masked,
                 cfg_double(c, CFG_REPLICA_MAX_LAG));
    }
    return 0;
}

/*
 * With --otlp-endpoint: turns tracing on (queue, counters in m) and starts
 * the exporter into *out. Returns 0 (also when tracing is off), or -1
 * after logging why not.
 */
static int start_tracing(const struct cfg *c, struct metrics *m, struct trace_exporter **out)
{
    struct err_detail d;
    const char *ep = cfg_str(c, CFG_OTLP_ENDPOINT);
    char masked[512];
    err_clear(&d);
    *out = NULL;
    if (!*ep)
        return 0;
    struct trace_export_opts o = {.endpoint = ep, .version = MODELCAT_VERSION};
    if (trace_init(8192, cfg_double(c, CFG_TRACE_SAMPLE_RATIO)) || trace_metrics(m) ||
        trace_export_start(&o, out, &d)) {
        log_error("serve", "tracing: %s", d.msg[0] ? d.msg : "out of memory");
        trace_fini();
        return -1;
    }
    cfg_mask_url(masked, sizeof(masked), ep);
    log_info("serve", "tracing: spans to %s/v1/traces (sample ratio %g)", masked,
             cfg_double(c, CFG_TRACE_SAMPLE_RATIO));
    return 0;
}

/*
 * With --backup-every: starts scheduled backups of the store into
 * --backup-to on their own thread, exporting their metrics in m. Returns 0
 * (also when off), or -1 after printing why not (a usage error).
 */
static int start_backups(const struct cfg *c, struct metrics *m, struct backup_sched **out)
{
    struct err_detail d;
    double every;
    err_clear(&d);
    *out = NULL;
    if (!*cfg_str(c, CFG_BACKUP_EVERY))
        return 0;
    if (backup_parse_duration(cfg_str(c, CFG_BACKUP_EVERY), &every) ||
        !*cfg_str(c, CFG_BACKUP_SERVE_TO)) {
        fprintf(stderr, "modelcat serve: --backup-every wants a duration (90s, 30m, 1h)"
                        " and --backup-to a directory or s3://bucket/prefix\n");
        return -1;
    }
    struct backup_opts o = {
        .db_url = cfg_str(c, CFG_DB),
        .to = cfg_str(c, CFG_BACKUP_SERVE_TO),
        .store = {.s3_endpoint = *cfg_str(c, CFG_BACKUP_S3_ENDPOINT)
                                     ? cfg_str(c, CFG_BACKUP_S3_ENDPOINT) : NULL,
                  .s3_region = cfg_str(c, CFG_BACKUP_S3_REGION), .timeout_ms = 30000},
        .keep = (int)cfg_int(c, CFG_BACKUP_KEEP),
        .keep_days = cfg_double(c, CFG_BACKUP_KEEP_DAYS),
        .lock = 1,
    };
    if (backup_sched_start(&o, every, m, out, &d)) {
        log_error("serve", "backups: %s", d.msg);
        return -1;
    }
    log_info("serve", "backups every %gs into %s", every, o.to);
    return 0;
}

int cli_serve(int argc, char **argv)
{
    struct backup_sched *backups = NULL;
    struct trace_exporter *tracer = NULL;
    struct cfg c;
    struct db *db = NULL;
    struct cache *cache = NULL;
    struct http_server *srv = NULL;
    struct metrics *metrics = NULL;
    struct err_detail d;
    int rc = cli_setup(&c, CMD_SERVE, argc, argv,
                       "usage: modelcat serve [flags]\n\n"
                       "Serves the catalog REST API (see /openapi.json).");
    if (rc >= 0)
        return rc;
    rc = 1;
    err_clear(&d);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    cat_init();
    int threads = (int)cfg_int(&c, CFG_THREADS);
    const char *cache_url = cfg_str(&c, CFG_CACHE);
    if (strcmp(cache_url, "off") != 0) {
        struct cache_opts co = {
            .url = cache_url,
            .max_bytes = (size_t)cfg_int(&c, CFG_CACHE_BYTES),
            .ttl_s = (int)cfg_int(&c, CFG_CACHE_TTL),
            .conns = threads,
            .timeout_ms = 100,
            .lease_ms = (int)cfg_int(&c, CFG_CACHE_LEASE_MS),
        };
        if (cache_create(&co, &cache, &d)) {
            fprintf(stderr, "modelcat serve: %s\n", d.msg);
            rc = 2;
            goto out;
        }
    }
    if (cli_open_db(&c, threads + 1, &db))
        goto out;
    if (add_replicas(&c, db))
        goto out;
    if (db_migrate(db, NULL, &d)) {
        log_error("serve", "migrations failed: %s", d.msg);
        goto out;
    }
    /* Partitions for the coming months exist before the first request. */
    int sig, ahead = (int)cfg_int(&c, CFG_PARTITIONS_AHEAD);
    if (cat_series_maintain(db, time_wall_ms(), ahead, &d))
        log_warn("serve", "time-series partitions: %s", d.msg);
    api_init(db, cache);
    if (!(metrics = metrics_create()) || db_metrics(db, metrics) ||
        api_metrics_init(metrics)) {
        log_error("serve", "metrics: out of memory");
        goto out;
    }
    if (start_tracing(&c, metrics, &tracer))
        goto out;
    if (start_backups(&c, metrics, &backups)) {
        rc = 2;
        goto out;
    }
    api_jobs_set_max_attempts((int)cfg_int(&c, CFG_MAX_ATTEMPTS));
    struct api_auth_opts ao = {
        .reads_required = strcmp(cfg_str(&c, CFG_AUTH_READS), "required") == 0,
        .rate_limit = cfg_str(&c, CFG_RATE_LIMIT),
        .jwt_keys = cfg_str(&c, CFG_JWT_KEYS),
        .jwt_ttl_s = cfg_int(&c, CFG_JWT_TTL),
        .bootstrap_key = cfg_str(&c, CFG_BOOTSTRAP_ADMIN_KEY),
    };
    if (api_auth_init(&ao, &d)) {
        fprintf(stderr, "modelcat serve: %s%s%s\n", d.field[0] ? d.field : "",
                d.field[0] ? ": " : "", d.msg);
        rc = 2;
        goto out;
    }
    if (!*ao.jwt_keys)
        log_info("serve", "no --jwt-keys: tokens are signed with a random key of this process"
                          " and verify here only");
    if (*cfg_str(&c, CFG_DB_REPLICAS)) /* the allowed lag, plus the lag check's 1 s */
        api_set_fresh_window((int64_t)((cfg_double(&c, CFG_REPLICA_MAX_LAG) + 1.0) * 1e9));
    struct http_server_opts o = {
        .listen = cfg_str(&c, CFG_LISTEN),
        .threads = threads,
        .max_body = (size_t)cfg_int(&c, CFG_MAX_BODY),
        .max_connections = (int)cfg_int(&c, CFG_MAX_CONNECTIONS),
        .idle_timeout_s = (int)cfg_int(&c, CFG_IDLE_TIMEOUT),
        .max_connections_per_ip = (int)cfg_int(&c, CFG_MAX_CONNECTIONS_PER_IP),
        .body_timeout_s = (int)cfg_int(&c, CFG_BODY_TIMEOUT),
        .dispatch = api_dispatch,
        .reject = api_reject,
        .cors_origins = cfg_str(&c, CFG_CORS_ORIGINS),
        .observe = api_metrics_observe,
    };
    if (http_server_start(&o, &srv, &d)) {
        log_error("serve", "%s", d.msg);
        goto out;
    }
    api_metrics_server(srv);
    const char *listen = cfg_str(&c, CFG_LISTEN);
    char host[128];
    snprintf(host, sizeof(host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
    log_info("serve", "listening on http://%s:%d (%d threads, store %s, schema v%d, cache %s)",
             host, http_server_port(srv), threads, db_backend(db), db_schema_latest(),
             cache ? cache_backend(cache) : "off");
    /* The main thread waits for a signal, and hourly keeps the time-series
       partitions of the coming months made. */
    struct timespec hour = {3600, 0};
    while ((sig = sigtimedwait(&set, NULL, &hour)) < 0) {
        if (cat_series_maintain(db, time_wall_ms(), ahead, &d))
            log_warn("serve", "time-series partitions: %s", d.msg);
    }
    log_info("serve", "%s: draining (up to %llds)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
             (long long)cfg_int(&c, CFG_SHUTDOWN_TIMEOUT));
    api_metrics_server(NULL);
    int left = http_server_stop(srv, (int)cfg_int(&c, CFG_SHUTDOWN_TIMEOUT) * 1000);
    srv = NULL;
    if (left)
        log_warn("serve", "%d requests still in flight at the shutdown timeout", left);
    log_info("serve", "stopped");
    rc = 0;
out:
    api_metrics_server(NULL);
    if (srv)
        http_server_stop(srv, 0);
    backup_sched_stop(backups); /* after the server: no scrape reads its collector */
    api_auth_fini();
    trace_export_stop(tracer); /* after the server: its last spans are flushed */
    trace_fini();
    db_close(db);
    cache_destroy(cache);
    metrics_destroy(metrics);
    cfg_free(&c);
    return rc;
}
