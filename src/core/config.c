/*
 * The settings table and its parser (see config.h). Adding a setting means
 * one row here and one enum entry in config.h; flags, environment,
 * `--help` and `modelcat config` follow from the row.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"

const struct cfg_def cfg_defs[CFG__COUNT] = {
    [CFG_LISTEN] = {"listen", CFG_T_STR, "127.0.0.1:8000", 0, 0, NULL, CMD_SERVE,
                    "address:port to listen on (IPv6 as [::1]:8000)"},
    [CFG_DB] = {"db", CFG_T_URL, "sqlite:./var/modelcat.db", 0, 0, NULL, CMD_STORE,
                "store URL: sqlite:PATH or postgres://user:pass@host:port/db"},
    [CFG_DB_SYNC] = {"db-sync", CFG_T_ENUM, "full", 0, 0, "full|normal", CMD_STORE,
                     "SQLite durability: full fsyncs every commit"},
    [CFG_DB_BUSY_TIMEOUT] = {"db-busy-timeout", CFG_T_INT, "5000", 0, 600000, NULL,
                             CMD_STORE, "ms to wait for a locked store before 503"},
    [CFG_THREADS] = {"threads", CFG_T_INT, NULL, 1, 256, NULL, CMD_SERVE,
                     "HTTP worker threads (default: number of cores)"},
    [CFG_MAX_BODY] = {"max-body", CFG_T_SIZE, "1M", 1024, 1073741824, NULL, CMD_SERVE,
                      "largest request body accepted, bytes (K/M/G suffix)"},
    [CFG_MAX_CONNECTIONS] = {"max-connections", CFG_T_INT, "4096", 16, 1000000, NULL,
                             CMD_SERVE, "open client connections at most"},
    [CFG_IDLE_TIMEOUT] = {"idle-timeout", CFG_T_INT, "60", 1, 86400, NULL, CMD_SERVE,
                          "seconds before an idle connection is closed"},
    [CFG_BODY_TIMEOUT] = {"body-timeout", CFG_T_INT, "30", 1, 86400, NULL, CMD_SERVE,
                          "seconds a client may take to send a request body"},
    [CFG_MAX_CONNECTIONS_PER_IP] = {"max-connections-per-ip", CFG_T_INT, "0", 0, 1000000,
                                    NULL, CMD_SERVE,
                                    "open connections per client IP at most (0: no limit)"},
    [CFG_SHUTDOWN_TIMEOUT] = {"shutdown-timeout", CFG_T_INT, "10", 0, 3600, NULL,
                              CMD_SERVE, "seconds to finish in-flight requests on SIGTERM"},
    [CFG_LOG_LEVEL] = {"log-level", CFG_T_ENUM, "info", 0, 0, "debug|info|warn|error",
                       CMD_ALL, "least severe level logged"},
    [CFG_LOG_FORMAT] = {"log-format", CFG_T_ENUM, "text", 0, 0, "text|json", CMD_ALL,
                        "log line format"},
    [CFG_DEMO] = {"demo", CFG_T_BOOL, "0", 0, 1, NULL, CMD_SEED,
                  "load the demo catalog (models and GPU prices)"},
    /* cache */
    [CFG_CACHE] = {"cache", CFG_T_URL, "local", 0, 0, NULL, CMD_SERVE,
                   "response cache: local, off, or redis://host:port/db (shared)"},
    [CFG_CACHE_BYTES] = {"cache-bytes", CFG_T_SIZE, "64M", 65536, 68719476736.0, NULL,
                         CMD_SERVE, "in-process response cache budget, bytes (K/M/G suffix)"},
    [CFG_CACHE_TTL] = {"cache-ttl", CFG_T_INT, "300", 1, 86400, NULL, CMD_SERVE,
                       "seconds a cached response lives (in process and in Redis)"},
    [CFG_CACHE_LEASE_MS] = {"cache-lease-ms", CFG_T_INT, "1", 0, 1000, NULL, CMD_SERVE,
                            "redis: reuse the generation this long; writes wait as long (0: read it per request)"},
    /* replicas */
    [CFG_DB_REPLICAS] = {"db-replicas", CFG_T_URLS, "", 0, 0, NULL, CMD_SERVE,
                         "read replicas: comma-separated postgres:// URLs (GETs read there)"},
    [CFG_REPLICA_MAX_LAG] = {"replica-max-lag", CFG_T_DOUBLE, "5", 0.1, 86400, NULL, CMD_SERVE,
                             "seconds a replica may lag before reads avoid it"},
    [CFG_PARTITIONS_AHEAD] = {"partitions-ahead", CFG_T_INT, "3", 1, 120, NULL, CMD_SERVE,
                              "months of time-series partitions kept made ahead (PostgreSQL)"},
    [CFG_MAX_ATTEMPTS] = {"max-attempts", CFG_T_INT, "3", 1, 100, NULL, CMD_SERVE,
                          "attempts of a benchmark job that gives no max_attempts"},
    /* auth and hardening */
    [CFG_AUTH_READS] = {"auth-reads", CFG_T_ENUM, "anonymous", 0, 0, "anonymous|required",
                        CMD_SERVE, "whether GETs need a credential (writes always do)"},
    [CFG_RATE_LIMIT] = {"rate-limit", CFG_T_STR, "off", 0, 0, NULL, CMD_SERVE,
                        "per key and per client IP: off, or e.g. 20/s,burst=40 or 600/min"},
    [CFG_JWT_KEYS] = {"jwt-keys", CFG_T_SECRET, "", 0, 0, NULL, CMD_SERVE,
                      "JWT signing keys kid:base64url-secret[:active|verify|retired],..."
                      " (empty: one random key per process)"},
    [CFG_JWT_TTL] = {"jwt-ttl", CFG_T_INT, "900", 1, 86400, NULL, CMD_SERVE,
                     "seconds a token from POST /api/v1/auth/token lives"},
    [CFG_BOOTSTRAP_ADMIN_KEY] = {"bootstrap-admin-key", CFG_T_SECRET, "", 0, 0, NULL,
                                 CMD_SERVE, "an admin key accepted without the database"
                                 " (make one with modelcat keys generate)"},
    [CFG_KEY_NAME] = {"name", CFG_T_STR, "", 0, 0, NULL, CMD_KEYS,
                      "keys create: what the key is for (shown in lists and the audit)"},
    [CFG_KEY_ROLE] = {"role", CFG_T_ENUM, "viewer", 0, 0, "viewer|editor|worker|admin",
                      CMD_KEYS, "keys create: the key's role"},
    [CFG_KEY_ALL] = {"all", CFG_T_BOOL, "0", 0, 1, NULL, CMD_KEYS,
                     "keys list: include revoked keys"},
    [CFG_CORS_ORIGINS] = {"cors-origins", CFG_T_STR, "", 0, 0, NULL, CMD_SERVE,
                          "browser origins allowed to call the API, comma-separated"},
    /* tracing */
    [CFG_OTLP_ENDPOINT] = {"otlp-endpoint", CFG_T_URLS, "", 0, 0, NULL, CMD_SERVE,
                           "export spans as OTLP/HTTP JSON to this collector, e.g."
                           " http://jaeger-collector:4318 (empty: tracing off)"},
    [CFG_TRACE_SAMPLE_RATIO] = {"trace-sample-ratio", CFG_T_DOUBLE, "1", 0, 1, NULL, CMD_SERVE,
                                "share of new traces recorded (an incoming traceparent's"
                                " sampled flag decides for its own)"},
    /* sim */
    [CFG_SIM_LISTEN] = {"listen", CFG_T_STR, "127.0.0.1:9000", 0, 0, NULL, CMD_SIM,
                        "address:port to listen on (port 0: any free port)", "sim"},
    [CFG_SIM_MODEL] = {"model", CFG_T_STR, "sim-model", 0, 0, NULL, CMD_SIM,
                       "the served model name", "sim"},
    [CFG_SIM_MAX_NUM_SEQS] = {"max-num-seqs", CFG_T_INT, "256", 1, 1000000, NULL, CMD_SIM,
                              "sequences decoded at once; the rest wait FIFO"},
    [CFG_SIM_PREFILL_TOKENS_PER_S] = {"prefill-tokens-per-s", CFG_T_DOUBLE, "20000", 1, 1e12,
                                      NULL, CMD_SIM, "prompt tokens prefilled per second"},
    [CFG_SIM_ITL_MS] = {"itl-ms", CFG_T_DOUBLE, "10", 0, 60000, NULL, CMD_SIM,
                        "decode step time with an empty batch, ms"},
    [CFG_SIM_ITL_MS_PER_SEQ] = {"itl-ms-per-seq", CFG_T_DOUBLE, "0.02", 0, 60000, NULL,
                                CMD_SIM, "decode step time added per running sequence, ms"},
    [CFG_SIM_JITTER] = {"jitter", CFG_T_DOUBLE, "0", 0, 10, NULL, CMD_SIM,
                        "step time x (1 + jitter x N(0,1)), clamped at 0"},
    [CFG_SIM_SEED] = {"seed", CFG_T_INT, "0", 0, 9007199254740991.0, NULL, CMD_SIM,
                      "PRNG seed: output lengths, jitter, fault draws", "sim"},
    [CFG_SIM_MAX_CONNECTIONS] = {"max-connections", CFG_T_INT, "65536", 16, 10000000, NULL,
                                 CMD_SIM, "open client connections at most; more get 503",
                                 "sim"},
    [CFG_SIM_ERROR_RATE] = {"error-rate", CFG_T_DOUBLE, "0", 0, 1, NULL, CMD_SIM,
                            "share of requests answered HTTP 500"},
    [CFG_SIM_STALL_RATE] = {"stall-rate", CFG_T_DOUBLE, "0", 0, 1, NULL, CMD_SIM,
                            "share of requests that pause --stall-ms after half their tokens"},
    [CFG_SIM_STALL_MS] = {"stall-ms", CFG_T_INT, "2000", 0, 3600000, NULL, CMD_SIM,
                          "length of an injected stall, ms"},
    [CFG_SIM_DROP_RATE] = {"drop-rate", CFG_T_DOUBLE, "0", 0, 1, NULL, CMD_SIM,
                           "share of requests whose connection closes after half the tokens"},
    [CFG_SIM_STREAM_INTERVAL] = {"stream-interval", CFG_T_INT, "1", 1, 1024, NULL, CMD_SIM,
                                 "tokens per write of a stream (as vLLM's --stream-interval)"},
    [CFG_SIM_TRUTH] = {"truth", CFG_T_STR, "", 0, 0, NULL, CMD_SIM,
                       "write one JSON line per request to this file (ground truth)"},
    /* bench */
    [CFG_BENCH_BACKEND] = {"backend", CFG_T_ENUM, "vllm", 0, 0,
                           "vllm|openai|openai-chat|tgi|lmdeploy", CMD_BENCH,
                           "protocol of the server under test"},
    [CFG_BENCH_BASE_URL] = {"base-url", CFG_T_STR, "http://127.0.0.1:9000", 0, 0, NULL,
                            CMD_BENCH, "server under test, http://host:port[/prefix]"},
    [CFG_BENCH_MODEL] = {"model", CFG_T_STR, "sim-model", 0, 0, NULL, CMD_BENCH,
                         "model name sent in requests", "bench"},
    [CFG_BENCH_HEADER] = {"header", CFG_T_LIST, "", 0, 0, NULL, CMD_BENCH,
                          "extra request header 'Name: value' (repeatable)"},
    [CFG_BENCH_API_KEY] = {"api-key", CFG_T_SECRET, "", 0, 0, NULL, CMD_BENCH,
                           "sent to the server under test as Authorization: Bearer"},
    [CFG_BENCH_NUM_PROMPTS] = {"num-prompts", CFG_T_INT, "1000", 0, 100000000, NULL,
                               CMD_BENCH, "measured requests (0 with --duration)"},
    [CFG_BENCH_DURATION] = {"duration", CFG_T_DOUBLE, "0", 0, 31536000, NULL, CMD_BENCH,
                            "seconds to issue requests for (instead of --num-prompts)"},
    [CFG_BENCH_REQUEST_RATE] = {"request-rate", CFG_T_STR, "inf", 0, 0, NULL, CMD_BENCH,
                                "requests/s, or inf (all at once, up to --max-concurrency)"},
    [CFG_BENCH_BURSTINESS] = {"burstiness", CFG_T_DOUBLE, "1", 0.01, 100, NULL, CMD_BENCH,
                              "gamma shape of arrival gaps: 1 Poisson, <1 burstier"},
    [CFG_BENCH_MAX_CONCURRENCY] = {"max-concurrency", CFG_T_INT, "0", 0, 1000000, NULL,
                                   CMD_BENCH, "requests in flight at most (0: no cap)"},
    [CFG_BENCH_WARMUP] = {"warmup", CFG_T_INT, "1", 0, 1000000, NULL, CMD_BENCH,
                          "requests sent first and not counted"},
    [CFG_BENCH_SEED] = {"seed", CFG_T_INT, "-1", -1, 9.2e18, NULL, CMD_BENCH,
                        "seed of prompts and arrivals (-1: random, recorded)", "bench"},
    [CFG_BENCH_SWEEP] = {"sweep", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                         "concurrency=1,4,16 or rate=1,2,4: one run per point"},
    [CFG_BENCH_DATASET] = {"dataset", CFG_T_ENUM, "random", 0, 0, "random|sharegpt|jsonl",
                           CMD_BENCH, "where prompts come from"},
    [CFG_BENCH_DATASET_PATH] = {"dataset-path", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                "file of the sharegpt or jsonl dataset"},
    [CFG_BENCH_INPUT_LEN] = {"input-len", CFG_T_INT, "1024", 1, 1000000, NULL, CMD_BENCH,
                             "random dataset: prompt tokens"},
    [CFG_BENCH_OUTPUT_LEN] = {"output-len", CFG_T_INT, "128", 1, 1000000, NULL, CMD_BENCH,
                              "random dataset: output tokens"},
    [CFG_BENCH_RANGE_RATIO] = {"range-ratio", CFG_T_DOUBLE, "0", 0, 0.999, NULL, CMD_BENCH,
                               "random dataset: lengths uniform in [L(1-r), L(1+r)]"},
    [CFG_BENCH_PREFIX_LEN] = {"prefix-len", CFG_T_INT, "0", 0, 1000000, NULL, CMD_BENCH,
                              "random dataset: tokens of a prefix shared by all prompts"},
    [CFG_BENCH_IGNORE_EOS] = {"ignore-eos", CFG_T_BOOL, "0", 0, 1, NULL, CMD_BENCH,
                              "ask for exactly the output length"},
    [CFG_BENCH_RESULT_JSON] = {"result-json", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                               "write the result (vLLM bench serve fields) to this file"},
    [CFG_BENCH_REQUESTS_OUT] = {"requests-out", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                "write one JSON line per request to this file"},
    [CFG_BENCH_GOODPUT] = {"goodput", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                           "SLOs for goodput, e.g. ttft:500,tpot:50,e2el:10000 (ms)"},
    [CFG_BENCH_PERCENTILES] = {"percentiles", CFG_T_STR, "50,90,95,99", 0, 0, NULL,
                               CMD_BENCH, "percentiles to report"},
    [CFG_BENCH_REQUEST_TIMEOUT] = {"request-timeout", CFG_T_DOUBLE, "600", 0, 86400, NULL,
                                   CMD_BENCH, "seconds before a request counts as failed"},
    [CFG_BENCH_MAX_ERRORS] = {"max-errors", CFG_T_INT, "0", 0, 100000000, NULL, CMD_BENCH,
                              "stop after this many failed requests (0: never)"},
    [CFG_BENCH_DRAIN_TIMEOUT] = {"drain-timeout", CFG_T_DOUBLE, "0", 0, 3600, NULL, CMD_BENCH,
                                 "on SIGINT/SIGTERM, seconds to let requests in flight"
                                 " finish (0: stop at once)"},
    [CFG_BENCH_MAX_EVENT] = {"max-event", CFG_T_SIZE, "1M", 1024, 67108864, NULL, CMD_BENCH,
                             "largest streamed event accepted, bytes"},
    [CFG_BENCH_TRANSPORT] = {"transport", CFG_T_ENUM, "native", 0, 0, "native|curl",
                             CMD_BENCH, "HTTP client: native (fast) or curl (TLS, HTTP/2)"},
    [CFG_BENCH_TIMESTAMPS] = {"timestamps", CFG_T_ENUM, "kernel", 0, 0, "kernel|user",
                              CMD_BENCH, "token times: the kernel's receive time, or when the"
                              " loop read them (native transport)"},
    [CFG_BENCH_CACERT] = {"cacert", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                          "CA bundle that verifies an https server (curl transport)"},
    [CFG_BENCH_CATALOG] = {"catalog", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                           "modelcat API to publish each point to, http://host:port"},
    [CFG_BENCH_CATALOG_API_KEY] = {"catalog-api-key", CFG_T_SECRET, "", 0, 0, NULL,
                                   CMD_BENCH, "key for --catalog"},
    [CFG_BENCH_CATALOG_MODEL] = {"catalog-model", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                 "catalog model id (default: --model)"},
    [CFG_BENCH_HARDWARE] = {"hardware", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                            "catalog hardware id the server runs on"},
    [CFG_BENCH_GPU_COUNT] = {"gpu-count", CFG_T_INT, "1", 1, 1024, NULL, CMD_BENCH,
                             "GPUs the server uses"},
    [CFG_BENCH_TENSOR_PARALLEL] = {"tensor-parallel", CFG_T_INT, "1", 1, 1024, NULL,
                                   CMD_BENCH, "tensor-parallel size of the server"},
    [CFG_BENCH_ENGINE] = {"engine", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                          "engine name for the catalog (default: from --backend)"},
    [CFG_BENCH_ENGINE_VERSION] = {"engine-version", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                  "engine version for the catalog"},
    [CFG_BENCH_ENGINE_ARGS] = {"engine-args", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                               "engine command-line arguments, for the catalog"},
    [CFG_BENCH_GPU_TELEMETRY] = {"gpu-telemetry", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                 "sample GPUs and the engine during each point: nvml,"
                                 " engine, dcgm:URL (comma-separated)"},
    [CFG_BENCH_GPU_TELEMETRY_INTERVAL] = {"gpu-telemetry-interval", CFG_T_DOUBLE, "1", 0.05,
                                          3600, NULL, CMD_BENCH,
                                          "seconds between telemetry samples"},
    [CFG_BENCH_NVML_LIBRARY] = {"nvml-library", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                                "path of libnvidia-ml.so.1 (default: the loader's search)"},
    [CFG_BENCH_TRACEPARENT] = {"traceparent", CFG_T_STR, "", 0, 0, NULL, CMD_BENCH,
                               "join this W3C trace (00-<trace>-<span>-<flags>); default:"
                               " a new trace per run"},
    /* worker */
    [CFG_WORKER_API] = {"api", CFG_T_STR, "", 0, 0, NULL, CMD_WORKER,
                        "the modelcat API to take benchmark jobs from, http(s)://host:port"},
    [CFG_WORKER_API_KEY] = {"api-key", CFG_T_SECRET, "", 0, 0, NULL, CMD_WORKER,
                            "worker key for --api (the engine's key stays MODELCAT_API_KEY)",
                            "worker", "MODELCAT_WORKER_API_KEY"},
    [CFG_WORKER_NAME] = {"worker-name", CFG_T_STR, "", 0, 0, NULL, CMD_WORKER,
                         "this worker's name in the queue (default: host-pid)"},
    [CFG_WORKER_LABELS] = {"labels", CFG_T_STR, "", 0, 0, NULL, CMD_WORKER,
                           "what this node offers, k=v,k=v (a job needs all its labels here)"},
    [CFG_WORKER_LEASE] = {"lease", CFG_T_INT, "60", 1, 3600, NULL, CMD_WORKER,
                          "seconds of a job's lease; heartbeats renew it every third"},
    [CFG_WORKER_CHECKPOINT_INTERVAL] = {"checkpoint-interval", CFG_T_DOUBLE, "30", 0.1, 86400,
                                        NULL, CMD_WORKER,
                                        "seconds between checkpoints inside a sweep point"},
    [CFG_WORKER_POLL_INTERVAL] = {"poll-interval", CFG_T_DOUBLE, "5", 0.05, 3600, NULL,
                                  CMD_WORKER, "seconds between asks for a preemption notice"},
    [CFG_WORKER_CLOUD] = {"cloud", CFG_T_ENUM, "none", 0, 0, "none|aws|gcp|azure|auto",
                          CMD_WORKER, "whose metadata service announces preemption"
                          " (none: SIGTERM only)"},
    [CFG_WORKER_METADATA_URL] = {"metadata-url", CFG_T_STR, "", 0, 0, NULL, CMD_WORKER,
                                 "the metadata service, http:// (default: the cloud's)"},
    [CFG_WORKER_DRAIN_TIMEOUT] = {"drain-timeout", CFG_T_DOUBLE, "60", 0, 3600, NULL,
                                  CMD_WORKER, "on a notice, seconds in-flight requests may"
                                  " take to finish", "worker", "MODELCAT_WORKER_DRAIN_TIMEOUT"},
    [CFG_WORKER_ONCE] = {"once", CFG_T_BOOL, "0", 0, 1, NULL, CMD_WORKER,
                         "claim at most one job, run it, and exit"},
    /* backup and restore */
    [CFG_BACKUP_TO] = {"to", CFG_T_STR, "", 0, 0, NULL, CMD_BACKUP,
                       "where backup sets live: a directory or s3://bucket/prefix",
                       NULL, "MODELCAT_BACKUP_TO"},
    [CFG_BACKUP_KEEP] = {"keep", CFG_T_INT, "0", 0, 1000000, NULL, CMD_BACKUP | CMD_SERVE,
                         "after a successful backup, keep the N newest sets (0: all)",
                         NULL, "MODELCAT_BACKUP_KEEP"},
    [CFG_BACKUP_KEEP_DAYS] = {"keep-days", CFG_T_DOUBLE, "0", 0, 36500, NULL,
                              CMD_BACKUP | CMD_SERVE, "after a successful backup, delete sets"
                              " older than D days (0: never; --keep's newest stay)",
                              NULL, "MODELCAT_BACKUP_KEEP_DAYS"},
    [CFG_BACKUP_EVERY] = {"backup-every", CFG_T_STR, "", 0, 0, NULL, CMD_SERVE,
                          "back up on a background thread this often (90s, 30m, 1h; "
                          "empty: never)"},
    [CFG_BACKUP_SERVE_TO] = {"backup-to", CFG_T_STR, "", 0, 0, NULL, CMD_SERVE,
                             "where --backup-every puts its sets (directory or s3://...)"},
    [CFG_BACKUP_S3_ENDPOINT] = {"s3-endpoint", CFG_T_STR, "", 0, 0, NULL,
                                CMD_BACKUP | CMD_RESTORE | CMD_SERVE,
                                "S3-compatible endpoint for s3:// (default: AWS from region)"},
    [CFG_BACKUP_S3_REGION] = {"s3-region", CFG_T_STR, "", 0, 0, NULL,
                              CMD_BACKUP | CMD_RESTORE | CMD_SERVE,
                              "S3 region for s3:// (default: AWS_REGION, AWS_DEFAULT_REGION,"
                              " us-east-1)"},
    [CFG_RESTORE_FORCE] = {"force", CFG_T_BOOL, "0", 0, 1, NULL, CMD_RESTORE,
                           "restore over a database that holds data"},
    [CFG_METRICS_LISTEN] = {"metrics-listen", CFG_T_STR, "", 0, 0, NULL,
                            CMD_BENCH | CMD_SIM | CMD_WORKER,
                            "serve Prometheus /metrics on host:port (port 0: any; empty: off)"},
};

/* "max-body" -> "MODELCAT_MAX_BODY", or the row's own env */
static void env_name(char *out, size_t n, const struct cfg_def *def)
{
    const char *name = def->name;
    if (def->env) {
        snprintf(out, n, "%s", def->env);
        return;
    }
    size_t i = (size_t)snprintf(out, n, "MODELCAT_");
    for (; *name && i + 1 < n; name++)
        out[i++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[i] = '\0';
}

static int parse_int(const char *s, int64_t *out, int is_size)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno)
        return -1;
    if (is_size && *end) {
        int64_t mul = 1;
        switch (*end) {
        case 'k': case 'K': mul = 1024; break;
        case 'm': case 'M': mul = 1024 * 1024; break;
        case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (v > INT64_MAX / mul || v < INT64_MIN / mul)
            return -1;
        v *= mul;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, v, n) == 0)
            return 1;
        p += len + (e != NULL);
    }
    return 0;
}

/* Validates v for setting i and stores it. */
static int set_value(struct cfg *c, int i, const char *v, enum cfg_source src,
                     struct err_detail *d)
{
    const struct cfg_def *def = &cfg_defs[i];
    char label[80];
    if (src == CFG_SRC_ENV)
        env_name(label, sizeof(label), def);
    else
        snprintf(label, sizeof(label), "--%s", def->name);
    int64_t n = 0;
    double x = 0;
    switch (def->type) {
    case CFG_T_DOUBLE: {
        char *end;
        errno = 0;
        x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not a number", label, v);
        if (x < def->min || x > def->max)
            return err_set(d, ERR_INVAL, def->name, "%s: %s is out of range (%g..%g)",
                           label, v, def->min, def->max);
        break;
    }
    case CFG_T_INT:
    case CFG_T_SIZE:
        if (parse_int(v, &n, def->type == CFG_T_SIZE))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not %s", label,
                           v, def->type == CFG_T_SIZE ? "a size" : "an integer");
        if ((double)n < def->min || (double)n > def->max)
            return err_set(d, ERR_INVAL, def->name,
                           "%s: %s is out of range (%.0f..%.0f)", label, v,
                           def->min, def->max);
        x = (double)n;
        break;
    case CFG_T_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
            n = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
            n = 0;
        else
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not a boolean",
                           label, v);
        break;
    case CFG_T_ENUM:
        if (!enum_has(def->choices, v))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not one of %s",
                           label, v, def->choices);
        break;
    case CFG_T_URL:
        if (!*v)
            return err_set(d, ERR_INVAL, def->name, "%s: empty", label);
        /* fall through */
    case CFG_T_STR:
    case CFG_T_SECRET:
    case CFG_T_LIST:
    case CFG_T_URLS:
        if (strlen(v) > 4096)
            return err_set(d, ERR_INVAL, def->name, "%s: longer than 4096 bytes", label);
        break;
    }
    if (def->type == CFG_T_LIST && src == CFG_SRC_FLAG && c->src[i] == CFG_SRC_FLAG &&
        *c->str[i]) { /* a repeated flag adds a line */
        size_t a = strlen(c->str[i]), b = strlen(v);
        char *joined = mem_malloc(a + b + 2);
        if (!joined)
            return err_set(d, ERR_NOMEM, def->name, "out of memory");
        memcpy(joined, c->str[i], a);
        joined[a] = '\n';
        memcpy(joined + a + 1, v, b + 1);
        mem_free((void *)c->str[i]);
        c->str[i] = joined;
        return 0;
    }
    char *copy = mem_strdup(v);
    if (!copy)
        return err_set(d, ERR_NOMEM, def->name, "out of memory");
    mem_free((void *)c->str[i]);
    c->str[i] = copy;
    c->num[i] = n;
    c->dbl[i] = x;
    c->src[i] = src;
    return 0;
}

int cfg_load(struct cfg *c, unsigned cmd, int argc, char **argv,
             struct err_detail *d)
{
    int rc = 0;
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    for (int i = 0; i < CFG__COUNT; i++) {
        char tmp[24];
        const char *v = cfg_defs[i].def;
        if (!v) { /* computed defaults */
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            snprintf(tmp, sizeof(tmp), "%ld", n < 1 ? 1 : n > 256 ? 256 : n);
            v = tmp;
        }
        if ((rc = set_value(c, i, v, CFG_SRC_DEFAULT, d)))
            goto out;
    }
    for (int i = 0; i < CFG__COUNT; i++) {
        char name[80];
        if (!(cfg_defs[i].cmds & cmd))
            continue;
        env_name(name, sizeof(name), &cfg_defs[i]);
        const char *v = getenv(name);
        if (v && (rc = set_value(c, i, v, CFG_SRC_ENV, d)))
            goto out;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0' && strcmp(arg, "--") != 0) {
                rc = err_set(d, ERR_INVAL, "", "unknown flag '%s'", arg);
                goto out;
            }
            if (c->nargs >= (int)(sizeof(c->args) / sizeof(c->args[0]))) {
                rc = err_set(d, ERR_INVAL, "", "too many arguments");
                goto out;
            }
            c->args[c->nargs++] = argv[a];
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int i;
        for (i = 0; i < CFG__COUNT; i++)
            if ((cfg_defs[i].cmds & cmd) && strlen(cfg_defs[i].name) == nlen &&
                memcmp(cfg_defs[i].name, name, nlen) == 0)
                break;
        if (i == CFG__COUNT) {
            rc = err_set(d, ERR_INVAL, "", "unknown flag '--%.*s'", (int)nlen, name);
            goto out;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (cfg_defs[i].type == CFG_T_BOOL)
            v = "1";
        else if (a + 1 < argc)
            v = argv[++a];
        else {
            rc = err_set(d, ERR_INVAL, cfg_defs[i].name, "--%s needs a value",
                         cfg_defs[i].name);
            goto out;
        }
        if ((rc = set_value(c, i, v, CFG_SRC_FLAG, d)))
            goto out;
    }
out:
    if (rc)
        cfg_free(c);
    return rc;
}

void cfg_free(struct cfg *c)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        mem_free((void *)c->str[i]);
        c->str[i] = NULL;
    }
}

void cfg_print_help(void *fp, unsigned cmd)
{
    FILE *f = fp;
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_def *def = &cfg_defs[i];
        char flag[64], env[80];
        if (!(def->cmds & cmd))
            continue;
        env_name(env, sizeof(env), def);
        snprintf(flag, sizeof(flag), "--%s%s", def->name,
                 def->type == CFG_T_BOOL ? "" : " V");
        fprintf(f, "  %-24s %s\n  %-24s [%s; default %s", flag, def->help, "",
                env, !def->def ? "auto" : *def->def ? def->def : "none");
        if (def->type == CFG_T_INT || def->type == CFG_T_SIZE)
            fprintf(f, "; %.0f..%.0f", def->min, def->max);
        if (def->type == CFG_T_DOUBLE)
            fprintf(f, "; %g..%g", def->min, def->max);
        if (def->type == CFG_T_ENUM)
            fprintf(f, "; %s", def->choices);
        fprintf(f, "]\n");
    }
}

void cfg_mask_url(char *out, size_t outlen, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!colon) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s:****%s", (int)(colon - url), url, at);
}

void cfg_mask_urls(char *out, size_t outlen, const char *urls)
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = urls; *p && len + 1 < outlen;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[1024], masked[1024];
        snprintf(one, sizeof(one), "%.*s", (int)n, p);
        cfg_mask_url(masked, sizeof(masked), one);
        int w = snprintf(out + len, outlen - len, "%s%s", masked, comma ? "," : "");
        if (w < 0)
            break;
        len += (size_t)w;
        p += n + (comma ? 1 : 0);
    }
}

void cfg_print(void *fp, const struct cfg *c)
{
    FILE *f = fp;
    for (int i = 0; i < CFG__COUNT; i++) {
        char v[512];
        if (cfg_defs[i].type == CFG_T_URL)
            cfg_mask_url(v, sizeof(v), c->str[i]);
        else if (cfg_defs[i].type == CFG_T_URLS)
            cfg_mask_urls(v, sizeof(v), c->str[i]);
        else if (cfg_defs[i].type == CFG_T_SECRET)
            snprintf(v, sizeof(v), "%s", *c->str[i] ? "****" : "");
        else if (cfg_defs[i].type == CFG_T_SIZE)
            snprintf(v, sizeof(v), "%lld", (long long)c->num[i]);
        else if (cfg_defs[i].type == CFG_T_LIST) { /* one line per setting */
            snprintf(v, sizeof(v), "%s", c->str[i]);
            for (char *nl = strchr(v, '\n'); nl; nl = strchr(nl, '\n'))
                *nl = ';';
        }
        else
            snprintf(v, sizeof(v), "%s", c->str[i]);
        if (cfg_defs[i].scope)
            fprintf(f, "%s.%s = %s\n", cfg_defs[i].scope, cfg_defs[i].name, v);
        else
            fprintf(f, "%s = %s\n", cfg_defs[i].name, v);
    }
}
