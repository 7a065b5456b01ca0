/*
 * Creation of benchmark runs (one transaction: the run, its per-request
 * samples and GPU samples, bulk-loaded, and its idempotency key; run again
 * when it met a concurrent writer on PostgreSQL). Reading the series back
 * is series.c's.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "catalog/item.h"
#include "core/codec.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define MAX_SAMPLES 1000000

extern struct resource cat_runs;

int cat__gpu_samples_insert(struct db_conn *c, const char *run_id, json_t *arr,
                            struct err_detail *d);

static const char *const sample_cols[] = {
    "scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns",
    "input_tokens", "output_tokens", "error",
};
#define NSCOL 7

/* Validates samples[i] into p[0..6]. */
/* The error of column c of samples[i]: its field name is built only now. */
static int sample_error(struct err_detail *d, size_t i, int c, const char *what)
{
    char field[ERR_FIELD_LEN];
    snprintf(field, sizeof(field), "samples[%zu].%s", i, sample_cols[c]);
    return err_set(d, ERR_INVAL, field, "%s %s", field, what);
}

static int check_sample(json_t *s, size_t i, struct db_param *p, struct err_detail *d)
{
    if (!json_is_object(s))
        return err_set(d, ERR_INVAL, "samples", "samples[%zu] must be an object", i);
    /* Every member must be a known column: with all seven looked up below,
       a count above the known ones present means an unknown member. */
    size_t present = 0;
    for (int c = 0; c < NSCOL; c++) {
        json_t *v = json_object_get(s, sample_cols[c]);
        present += v != NULL;
        int nullable = c == 2 || c == 3 || c == 6;
        if (!v || json_is_null(v)) {
            if (!nullable)
                return sample_error(d, i, c, "is required");
            p[c] = db_p_null();
        } else if (c == 6) {
            if (!json_is_string(v) || json_string_length(v) > 1024 ||
                chk_printable(json_string_value(v), json_string_length(v)))
                return sample_error(d, i, c, "must be a string of at most 1024 characters");
            p[c] = db_p_text(json_string_value(v), json_string_length(v));
        } else {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return sample_error(d, i, c, "must be an integer >= 0");
            p[c] = db_p_int(json_integer_value(v));
        }
    }
    if (json_object_size(s) > present) {
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v) {
            int known = 0;
            for (int c = 0; c < NSCOL; c++)
                known |= strcmp(k, sample_cols[c]) == 0;
            if (!known) {
                char field[ERR_FIELD_LEN];
                snprintf(field, sizeof(field), "samples[%zu].%.24s", i, k);
                return err_set(d, ERR_INVAL, field, "unknown field '%.64s'", k);
            }
        }
    }
    return 0;
}

/* Hex SHA-256 of the body in canonical form (sorted keys, compact). */
static int body_hash(json_t *body, char out[65], struct err_detail *d)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[32];
    unsigned int n = 0;
    if (!s)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    int ok = EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    free(s);
    if (!ok || n != 32)
        return err_set(d, ERR_INTERNAL, NULL, "hash failed");
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* Refers to an existing row, else 422 on field. */
static int must_exist(struct db_conn *c, const char *sql, const struct db_param *p,
                      const char *field, struct err_detail *d)
{
    int64_t v;
    int rc = db_query_int(c, sql, p, 1, &v, d);
    if (rc == ERR_NOTFOUND)
        return err_set(d, ERR_INVAL, field, "no %s '%.*s' in the catalog", field,
                       (int)p->n, p->s);
    return rc;
}

/* The samples are stored at their run's time, ts: see migrations/0002. */
static int insert_samples(struct db_conn *c, const char *run_id, int64_t ts, json_t *samples,
                          struct err_detail *d)
{
    static const char *const cols[3 + NSCOL] = {
        "run_id", "ts", "idx", "scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns",
        "input_tokens", "output_tokens", "error",
    };
    struct db_param p[3 + NSCOL];
    size_t n = json_array_size(samples);
    if (n == 0)
        return 0;
    p[0] = db_p_text(run_id, strlen(run_id));
    p[1] = db_p_int(ts);
    int rc = db_copy_begin(c, "samples", cols, 3 + NSCOL, d);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!(rc = check_sample(json_array_get(samples, i), i, p + 3, d))) {
            p[2] = db_p_int((int64_t)i);
            rc = db_copy_row(c, p, d);
        }
    }
    /* On error the caller's rollback ends the load. */
    return rc ? rc : db_copy_end(c, d);
}

static int create_once(struct db_conn *c, json_t *body, const char *idem_key,
                       struct buf *out, char etag[21], char id[37], int *replayed,
                       struct err_detail *d)
{
    struct rec rec;
    struct db_param p[REC_MAX];
    char hash[65];
    int rc;
    *replayed = 0;
    memset(&rec, 0, sizeof(rec));
    if (!json_is_object(body))
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    json_t *samples = json_object_get(body, "samples");
    if (samples && !json_is_null(samples) && !json_is_array(samples))
        return err_set(d, ERR_INVAL, "samples", "samples must be an array");
    size_t nsamples = json_array_size(samples);
    if (nsamples > MAX_SAMPLES)
        return err_set(d, ERR_RANGE, "samples", "at most %d samples per run", MAX_SAMPLES);
    json_t *gpus = json_object_get(body, "gpu_samples");
    if (gpus && !json_is_null(gpus) && !json_is_array(gpus))
        return err_set(d, ERR_INVAL, "gpu_samples", "gpu_samples must be an array");
    if (json_array_size(gpus) > MAX_SAMPLES)
        return err_set(d, ERR_RANGE, "gpu_samples", "at most %d GPU samples per run",
                       MAX_SAMPLES);
    if ((rc = rec_validate(&cat_runs, body, &rec, d)))
        goto out_free;
    if (idem_key && (rc = body_hash(body, hash, d)))
        goto out_free;
    if ((rc = db_begin(c, 1, d)))
        goto out_free;
    if (idem_key) {
        struct db_param k = db_p_text(idem_key, strlen(idem_key));
        struct db_rows *row;
        if ((rc = db_query(c, "SELECT body_hash, run_id FROM idempotency_keys WHERE key = $1",
                           &k, 1, &row, d)))
            goto out;
        rc = db_next(row);
        if (rc == 1) {
            int same = strcmp(db_col_text(row, 0, NULL), hash) == 0;
            snprintf(id, 37, "%s", db_col_text(row, 1, NULL));
            db_rows_close(row);
            if (!same) {
                rc = err_set(d, ERR_REPLAY, "Idempotency-Key",
                             "Idempotency-Key was used with a different request body");
                goto out;
            }
            *replayed = 1;
            rc = item_get(&cat_runs, c, id, out, etag, d);
            if (!rc)
                rc = db_commit(c, d);
            goto out;
        }
        db_rows_close(row);
        if (rc < 0)
            goto out;
    }
    int mi = rec_field(&cat_runs, "model"), hi = rec_field(&cat_runs, "hardware");
    if ((rc = must_exist(c, "SELECT 1 FROM models WHERE id = $1", &rec.v[mi], "model", d)) ||
        (rc = must_exist(c, "SELECT 1 FROM hardware WHERE id = $1", &rec.v[hi], "hardware", d)))
        goto out;
    int64_t now = time_wall_ms();
    if (codec_uuid7(id, now)) {
        rc = err_set(d, ERR_INTERNAL, NULL, "no randomness");
        goto out;
    }
    rec.v[0] = db_p_text(id, 36);
    rec.v[rec_field(&cat_runs, "sample_count")] = db_p_int((int64_t)nsamples);
    rec.v[rec_field(&cat_runs, "created_at")] = db_p_int(now);
    int n = rec_params(cat_runs.ins_idx, cat_runs.ncols, &rec, p);
    if ((rc = db_exec(c, cat_runs.insert, p, n, NULL, d)) ||
        (rc = insert_samples(c, id, now, samples, d)) ||
        (rc = cat__gpu_samples_insert(c, id, gpus, d)))
        goto out;
    if (idem_key) {
        struct db_param ip[4] = {db_p_text(idem_key, strlen(idem_key)), db_p_text(hash, 64),
                                 db_p_text(id, 36), db_p_int(now)};
        rc = db_exec(c, "INSERT INTO idempotency_keys (key, body_hash, run_id,"
                        " created_at) VALUES ($1, $2, $3, $4)", ip, 4, NULL, d);
        if (rc == ERR_EXISTS) /* a concurrent request stored it: try again, replay */
            rc = err_set(d, ERR_BUSY, "Idempotency-Key",
                         "a request with this Idempotency-Key is being stored");
        if (rc)
            goto out;
    }
    if ((rc = item_get(&cat_runs, c, id, out, etag, d)) || (rc = db_commit(c, d)))
        goto out;
out:
    db_rollback(c);
out_free:
    rec_free(&rec);
    return rc;
}

int cat_run_create(struct db_conn *c, json_t *body, const char *idem_key, struct buf *out,
                   char etag[21], char id[37], int *replayed, struct err_detail *d)
{
    size_t mark = out->len;
    for (int i = 1;; i++) {
        int rc = create_once(c, body, idem_key, out, etag, id, replayed, d);
        if (i == ITEM_WRITE_TRIES || !db_retryable(c, rc))
            return rc;
        item_rewind(out, mark);
    }
}
