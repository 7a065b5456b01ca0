/*
 * Settings: one declarative table (config.c) gives each setting its flag,
 * MODELCAT_* environment variable, type, default, bounds and help. Commands
 * parse argv against the subset of the table they accept. Precedence:
 * flag > environment > default.
 */
#ifndef MC_CORE_CONFIG_H
#define MC_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Commands a setting applies to (bit mask). */
enum {
    CMD_SERVE = 1 << 0,
    CMD_MIGRATE = 1 << 1,
    CMD_SEED = 1 << 2,
    CMD_CONFIG = 1 << 3,
    CMD_SIM = 1 << 4,
    CMD_BENCH = 1 << 5,
    CMD_KEYS = 1 << 6,
    CMD_WORKER = 1 << 7,
    CMD_BACKUP = 1 << 8,
    CMD_RESTORE = 1 << 9,
};
#define CMD_STORE (CMD_SERVE | CMD_MIGRATE | CMD_SEED | CMD_KEYS | CMD_BACKUP | CMD_RESTORE)
#define CMD_ALL 0xffff

/* Index of each setting in the table. */
enum cfg_id {
    CFG_LISTEN,
    CFG_DB,
    CFG_DB_SYNC,
    CFG_DB_BUSY_TIMEOUT,
    CFG_THREADS,
    CFG_MAX_BODY,
    CFG_MAX_CONNECTIONS,
    CFG_IDLE_TIMEOUT,
    CFG_BODY_TIMEOUT,
    CFG_MAX_CONNECTIONS_PER_IP,
    CFG_SHUTDOWN_TIMEOUT,
    CFG_LOG_LEVEL,
    CFG_LOG_FORMAT,
    CFG_DEMO,
    /* cache */
    CFG_CACHE,
    CFG_CACHE_BYTES,
    CFG_CACHE_TTL,
    CFG_CACHE_LEASE_MS,
    /* replicas */
    CFG_DB_REPLICAS,
    CFG_REPLICA_MAX_LAG,
    CFG_PARTITIONS_AHEAD,
    CFG_MAX_ATTEMPTS,
    /* auth and hardening */
    CFG_AUTH_READS,
    CFG_RATE_LIMIT,
    CFG_JWT_KEYS,
    CFG_JWT_TTL,
    CFG_BOOTSTRAP_ADMIN_KEY,
    CFG_CORS_ORIGINS,
    /* tracing */
    CFG_OTLP_ENDPOINT,
    CFG_TRACE_SAMPLE_RATIO,
    /* keys */
    CFG_KEY_NAME,
    CFG_KEY_ROLE,
    CFG_KEY_ALL,
    /* sim */
    CFG_SIM_LISTEN,
    CFG_SIM_MODEL,
    CFG_SIM_MAX_NUM_SEQS,
    CFG_SIM_PREFILL_TOKENS_PER_S,
    CFG_SIM_ITL_MS,
    CFG_SIM_ITL_MS_PER_SEQ,
    CFG_SIM_JITTER,
    CFG_SIM_SEED,
    CFG_SIM_MAX_CONNECTIONS,
    CFG_SIM_ERROR_RATE,
    CFG_SIM_STALL_RATE,
    CFG_SIM_STALL_MS,
    CFG_SIM_DROP_RATE,
    CFG_SIM_TRUTH,
    CFG_SIM_STREAM_INTERVAL,
    /* bench */
    CFG_BENCH_BACKEND,
    CFG_BENCH_BASE_URL,
    CFG_BENCH_MODEL,
    CFG_BENCH_HEADER,
    CFG_BENCH_API_KEY,
    CFG_BENCH_NUM_PROMPTS,
    CFG_BENCH_DURATION,
    CFG_BENCH_REQUEST_RATE,
    CFG_BENCH_BURSTINESS,
    CFG_BENCH_MAX_CONCURRENCY,
    CFG_BENCH_WARMUP,
    CFG_BENCH_SEED,
    CFG_BENCH_SWEEP,
    CFG_BENCH_DATASET,
    CFG_BENCH_DATASET_PATH,
    CFG_BENCH_INPUT_LEN,
    CFG_BENCH_OUTPUT_LEN,
    CFG_BENCH_RANGE_RATIO,
    CFG_BENCH_PREFIX_LEN,
    CFG_BENCH_IGNORE_EOS,
    CFG_BENCH_RESULT_JSON,
    CFG_BENCH_REQUESTS_OUT,
    CFG_BENCH_GOODPUT,
    CFG_BENCH_PERCENTILES,
    CFG_BENCH_REQUEST_TIMEOUT,
    CFG_BENCH_MAX_ERRORS,
    CFG_BENCH_DRAIN_TIMEOUT,
    CFG_BENCH_MAX_EVENT,
    CFG_BENCH_TRANSPORT,
    CFG_BENCH_TIMESTAMPS,
    CFG_BENCH_CACERT,
    CFG_BENCH_CATALOG,
    CFG_BENCH_CATALOG_API_KEY,
    CFG_BENCH_CATALOG_MODEL,
    CFG_BENCH_HARDWARE,
    CFG_BENCH_GPU_COUNT,
    CFG_BENCH_TENSOR_PARALLEL,
    CFG_BENCH_ENGINE,
    CFG_BENCH_ENGINE_VERSION,
    CFG_BENCH_ENGINE_ARGS,
    CFG_BENCH_GPU_TELEMETRY,
    CFG_BENCH_GPU_TELEMETRY_INTERVAL,
    CFG_BENCH_NVML_LIBRARY,
    CFG_BENCH_TRACEPARENT,
    /* worker */
    CFG_WORKER_API,
    CFG_WORKER_API_KEY,
    CFG_WORKER_NAME,
    CFG_WORKER_LABELS,
    CFG_WORKER_LEASE,
    CFG_WORKER_CHECKPOINT_INTERVAL,
    CFG_WORKER_POLL_INTERVAL,
    CFG_WORKER_CLOUD,
    CFG_WORKER_METADATA_URL,
    CFG_WORKER_DRAIN_TIMEOUT,
    CFG_WORKER_ONCE,
    /* backup and restore */
    CFG_BACKUP_TO,
    CFG_BACKUP_KEEP,
    CFG_BACKUP_KEEP_DAYS,
    CFG_BACKUP_EVERY,
    CFG_BACKUP_SERVE_TO,
    CFG_BACKUP_S3_ENDPOINT,
    CFG_BACKUP_S3_REGION,
    CFG_RESTORE_FORCE,
    /* observability of bench, sim and worker */
    CFG_METRICS_LISTEN,
    CFG__COUNT
};

enum cfg_type {
    CFG_T_STR,     /* free text */
    CFG_T_URL,     /* text; a password in it is masked when printed */
    CFG_T_ENUM,    /* one of `choices` ("a|b|c") */
    CFG_T_INT,     /* integer in [min, max] */
    CFG_T_SIZE,    /* byte count with optional K/M/G suffix, in [min, max] */
    CFG_T_BOOL,    /* flag without a value; env accepts 1/0/true/false */
    CFG_T_DOUBLE,  /* number in [min, max] */
    CFG_T_SECRET,  /* text printed as **** */
    CFG_T_LIST,    /* repeatable flag; values joined with '\n' */
    CFG_T_URLS,    /* comma-separated URLs; each one's password masked when printed */
};

struct cfg_def {
    const char *name;      /* flag without "--", e.g. "max-body" */
    enum cfg_type type;
    const char *def;       /* default as text; NULL: computed (see config.c) */
    double min, max;       /* bounds for INT, SIZE and DOUBLE */
    const char *choices;   /* for ENUM */
    unsigned cmds;         /* CMD_* mask */
    const char *help;
    /* Set on a row that reuses another row's name for another command (e.g.
       "sim" for sim's --listen); `config` prints it as scope.name. */
    const char *scope;
    /* The environment variable when it is not MODELCAT_ + the name (a
       name shared with another command's setting of another meaning). */
    const char *env;
};

enum cfg_source { CFG_SRC_DEFAULT, CFG_SRC_ENV, CFG_SRC_FLAG };

struct cfg {
    const char *str[CFG__COUNT];   /* text value (owned by cfg) */
    int64_t num[CFG__COUNT];       /* INT, SIZE, BOOL value */
    double dbl[CFG__COUNT];        /* DOUBLE value (also INT/SIZE as double) */
    enum cfg_source src[CFG__COUNT];
    unsigned cmd;                  /* command parsed for */
    int nargs;                     /* positional arguments */
    char *args[8];
};

extern const struct cfg_def cfg_defs[CFG__COUNT];

/*
 * Fills c from defaults, the environment and argv (argv[0] is the command
 * name) for command `cmd`. Returns 0, or ERR_INVAL with a one-line message
 * in d on an unknown flag, a missing value or a value out of bounds. `--help`
 * is not handled here. The caller frees c with cfg_free.
 */
int cfg_load(struct cfg *c, unsigned cmd, int argc, char **argv,
             struct err_detail *d) MC_WUR;
void cfg_free(struct cfg *c);

static inline const char *cfg_str(const struct cfg *c, enum cfg_id id) { return c->str[id]; }
static inline int64_t cfg_int(const struct cfg *c, enum cfg_id id) { return c->num[id]; }
static inline double cfg_double(const struct cfg *c, enum cfg_id id) { return c->dbl[id]; }

/* Writes the --help text of command `cmd` (its settings) to f. */
void cfg_print_help(void *f, unsigned cmd);
/* Writes "name = value" lines, secrets masked, to f. */
void cfg_print(void *f, const struct cfg *c);
/* Masks the password of a URL like scheme://user:pass@host into out. */
void cfg_mask_url(char *out, size_t outlen, const char *url);
/* cfg_mask_url on each URL of a comma-separated list, commas kept. */
void cfg_mask_urls(char *out, size_t outlen, const char *urls);

#endif
