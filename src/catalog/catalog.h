/*
 * The catalog: models, hardware and benchmark runs with their samples.
 * Validation and SQL live here, written once against db.h; the HTTP layer
 * (api/) only maps requests to these calls and errors to statuses.
 *
 * Output: functions that produce JSON append it to `out` (a capped buffer
 * owned by the caller) and, for single items, write the item's strong ETag
 * into etag[21]. Errors: ERR_NOTFOUND, ERR_EXISTS (id taken), ERR_CONFLICT
 * (referenced), ERR_REPLAY (idempotency key reused), ERR_PRECOND (If-Match),
 * ERR_INVAL/ERR_RANGE (validation; field and message in d), ERR_PARSE (bad
 * cursor or patch), or a store error.
 */
#ifndef MC_CATALOG_CATALOG_H
#define MC_CATALOG_CATALOG_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "db/db.h"

#define CAT_MAX_TAG_FILTERS 16

/* Page of a list: limit 1..200, opaque cursor, sort name ("-name"). */
struct cat_page {
    int limit;
    const char *cursor;
    const char *sort;
};

/* Filters of GET /api/v1/models; NULL / has_* = 0 means unset. */
struct cat_model_filter {
    const char *q, *family, *license, *quantization;
    const char *tags[CAT_MAX_TAG_FILTERS];
    int ntags;
    int has_min_params, has_max_params, has_min_context;
    double min_params, max_params;
    int64_t min_context;
};

struct cat_hw_filter {
    const char *gpu, *provider;
};

struct cat_run_filter {
    const char *model, *engine, *engine_version, *hardware, *sweep_id, *dataset;
    int has_gpu_count;
    int64_t gpu_count;
};

/*
 * If-Match / If-None-Match semantics: 1 when header (a list of entity tags
 * or "*") matches etag. Weak tags (W/"..") match only when weak_ok.
 */
int cat_etag_matches(const char *header, const char *etag, int weak_ok);

/* Builds the SQL of every resource. Call once at start-up. */
void cat_init(void);

/* How a write is applied: a new item, a full replacement or a merge patch. */
enum cat_write { CAT_CREATE, CAT_REPLACE, CAT_PATCH };

int cat_model_list(struct db_conn *c, const struct cat_model_filter *f,
                   const struct cat_page *pg, struct buf *out,
                   struct err_detail *d) MC_WUR;
int cat_model_get(struct db_conn *c, const char *id, struct buf *out,
                  char etag[21], struct err_detail *d) MC_WUR;
/* id: NULL for CAT_CREATE (taken from the body). if_match may be NULL. */
int cat_model_write(struct db_conn *c, enum cat_write how, const char *id,
                    json_t *body, const char *if_match, struct buf *out,
                    char etag[21], struct err_detail *d) MC_WUR;
int cat_model_delete(struct db_conn *c, const char *id, int cascade,
                     const char *if_match, struct err_detail *d) MC_WUR;

int cat_hw_list(struct db_conn *c, const struct cat_hw_filter *f,
                const struct cat_page *pg, struct buf *out,
                struct err_detail *d) MC_WUR;
int cat_hw_get(struct db_conn *c, const char *id, struct buf *out,
               char etag[21], struct err_detail *d) MC_WUR;
int cat_hw_write(struct db_conn *c, enum cat_write how, const char *id,
                 json_t *body, const char *if_match, struct buf *out,
                 char etag[21], struct err_detail *d) MC_WUR;
int cat_hw_delete(struct db_conn *c, const char *id, int cascade,
                  const char *if_match, struct err_detail *d) MC_WUR;

int cat_run_list(struct db_conn *c, const struct cat_run_filter *f,
                 const struct cat_page *pg, struct buf *out,
                 struct err_detail *d) MC_WUR;
int cat_run_get(struct db_conn *c, const char *id, struct buf *out,
                char etag[21], struct err_detail *d) MC_WUR;
/*
 * Creates a run from body (with optional "samples"). With idem_key, a
 * repeat of the same key and canonical body returns the run it created and
 * sets *replayed = 1; the key with another body is ERR_REPLAY. The run's
 * id is written to id.
 */
int cat_run_create(struct db_conn *c, json_t *body, const char *idem_key,
                   struct buf *out, char etag[21], char id[37], int *replayed,
                   struct err_detail *d) MC_WUR;
/*
 * The same, with the samples apart: body without "samples", and span the
 * raw JSON text of the samples value (span_len bytes; NULL when absent),
 * as cat_json_split (samples_scan.h) cuts them out of a request. The
 * samples are read by a streaming scanner, never as a tree: the way a
 * million of them are ingested.
 */
int cat_run_create_raw(struct db_conn *c, json_t *body, const char *span, size_t span_len,
                       const char *idem_key, struct buf *out, char etag[21], char id[37],
                       int *replayed, struct err_detail *d) MC_WUR;
int cat_run_delete(struct db_conn *c, const char *id, const char *if_match,
                   struct err_detail *d) MC_WUR;
enum cat_series {
    CAT_SERIES_REQUESTS, /* per-request samples */
    CAT_SERIES_GPU,      /* GPU samples */
};
/*
 * A time series of run id as {"items":[...]} or, with csv, CSV with a
 * header row, appended to out. ERR_NOTFOUND when there is no such run.
 */
int cat_run_series(struct db_conn *c, const char *id, enum cat_series which, int csv,
                   struct buf *out, struct err_detail *d) MC_WUR;

/*
 * Makes the partitions of the time-series tables for the months from
 * now_ms to months_ahead months later, where the store partitions them
 * (PostgreSQL); rows of those months waiting in the default partition
 * move in. Returns 0, or the store's error. Safe to run from several
 * servers at once.
 */
int cat_series_maintain(struct db *db, int64_t now_ms, int months_ahead,
                        struct err_detail *d) MC_WUR;

struct cat_series_info {
    char kind[16];         /* "partitioned", "timescaledb" or "table" */
    int64_t partitions[2]; /* partitions of samples and of gpu_samples */
};
/* How the store keeps the series (for /readyz). */
int cat_series_info(struct db_conn *c, const struct db *db, struct cat_series_info *out,
                    struct err_detail *d) MC_WUR;

/*
 * Cost of one million output tokens in USD, from an instance price:
 * usd_per_hour × gpu_count / gpus_per_instance / (output_tok_per_s × 3600)
 * × 1e6. Returns -1 when it cannot be computed (no throughput, bad counts).
 */
double cat_cost_per_1m(double usd_per_hour, int64_t gpu_count,
                       int64_t gpus_per_instance, double output_tok_per_s);

/* Loads the embedded demo catalog; existing ids are left untouched. */
int cat_seed_demo(struct db *db, int *models, int *hardware,
                  struct err_detail *d) MC_WUR;

#endif
