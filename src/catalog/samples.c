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
#include "catalog/samples_scan.h"
#include "core/codec.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define MAX_SAMPLES 1000000

extern struct resource cat_runs;

int cat__gpu_samples_insert(struct db_conn *c, const char *run_id, json_t *arr,
                            struct err_detail *d);

/*
 * Validates every sample at span (n bytes; NULL: none) before any store
 * work, counting them into *count and, with md (may be NULL), hashing
 * their values in a canonical form: the same samples hash the same
 * whatever the JSON's spacing, member order or escapes.
 */
static int scan_samples(const char *span, size_t n, size_t *count, EVP_MD_CTX *md,
                        struct err_detail *d)
{
    struct cat_sample_iter *it = mem_malloc(sizeof(*it));
    struct cat_sample *s = mem_malloc(sizeof(*s));
    int rc = !it || !s ? err_set(d, ERR_NOMEM, NULL, "out of memory")
                       : cat_samples_count(span, n, count, d);
    if (!rc && *count > MAX_SAMPLES)
        rc = err_set(d, ERR_RANGE, "samples", "at most %d samples per run", MAX_SAMPLES);
    if (!rc)
        rc = cat_samples_begin(it, span, n, d);
    while (!rc && (rc = cat_samples_next(it, s, d)) == 1) {
        rc = 0;
        if (md) {
            uint64_t len = s->error ? (uint64_t)s->error_len : UINT64_MAX;
            EVP_DigestUpdate(md, s->v, sizeof(s->v));
            EVP_DigestUpdate(md, &s->nulls, sizeof(s->nulls));
            EVP_DigestUpdate(md, &len, sizeof(len));
            if (s->error)
                EVP_DigestUpdate(md, s->error, s->error_len);
        }
    }
    mem_free(it);
    mem_free(s);
    return rc;
}

/*
 * Hex SHA-256 of the request: the body without its samples in canonical
 * form (sorted keys, compact), then the samples' values (scan_samples).
 * Validates the samples on the way and counts them into *count.
 */
static int body_hash(json_t *rest, const char *span, size_t n, size_t *count, char out[65],
                     struct err_detail *d)
{
    char *s = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = 0;
    if (!s || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    EVP_DigestUpdate(ctx, s, strlen(s) + 1); /* with its NUL: a separator */
    if ((rc = scan_samples(span, n, count, ctx, d)))
        goto out;
    if (!EVP_DigestFinal_ex(ctx, md, &len) || len != 32) {
        rc = err_set(d, ERR_INTERNAL, NULL, "hash failed");
        goto out;
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
out:
    free(s);
    EVP_MD_CTX_free(ctx);
    return rc;
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
static int insert_samples(struct db_conn *c, const char *run_id, int64_t ts, const char *span,
                          size_t n, struct err_detail *d)
{
    static const char *const cols[3 + CAT_SAMPLE_COLS] = {
        "run_id", "ts", "idx", "scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns",
        "input_tokens", "output_tokens", "error",
    };
    struct db_param p[3 + CAT_SAMPLE_COLS];
    struct cat_sample_iter *it = mem_malloc(sizeof(*it));
    struct cat_sample *s = mem_malloc(sizeof(*s));
    int rc = !it || !s ? err_set(d, ERR_NOMEM, NULL, "out of memory")
                       : cat_samples_begin(it, span, n, d);
    int started = 0;
    p[0] = db_p_text(run_id, strlen(run_id));
    p[1] = db_p_int(ts);
    for (int64_t i = 0; !rc && (rc = cat_samples_next(it, s, d)) == 1; i++) {
        rc = 0;
        if (!started && (rc = db_copy_begin(c, "samples", cols, 3 + CAT_SAMPLE_COLS, d)))
            break;
        started = 1;
        p[2] = db_p_int(i);
        for (int k = 0; k < 6; k++)
            p[3 + k] = (s->nulls >> k) & 1 ? db_p_null() : db_p_int(s->v[k]);
        p[9] = s->error ? db_p_text(s->error, s->error_len) : db_p_null();
        rc = db_copy_row(c, p, d);
    }
    mem_free(it);
    mem_free(s);
    /* On error the caller's rollback ends the load. */
    return rc || !started ? rc : db_copy_end(c, d);
}

static int create_once(struct db_conn *c, json_t *body, const char *span, size_t span_len,
                       const char *idem_key, struct buf *out, char etag[21], char id[37],
                       int *replayed, struct err_detail *d)
{
    struct rec rec;
    struct db_param p[REC_MAX];
    char hash[65];
    int rc;
    *replayed = 0;
    memset(&rec, 0, sizeof(rec));
    if (!json_is_object(body))
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    size_t nsamples = 0;
    json_t *gpus = json_object_get(body, "gpu_samples");
    if (gpus && !json_is_null(gpus) && !json_is_array(gpus))
        return err_set(d, ERR_INVAL, "gpu_samples", "gpu_samples must be an array");
    if (json_array_size(gpus) > MAX_SAMPLES)
        return err_set(d, ERR_RANGE, "gpu_samples", "at most %d GPU samples per run",
                       MAX_SAMPLES);
    if ((rc = rec_validate(&cat_runs, body, &rec, d)))
        goto out_free;
    /* Every sample is checked before the store is touched (and hashed
       with the rest of the body when replays must be recognised). */
    if ((rc = idem_key ? body_hash(body, span, span_len, &nsamples, hash, d)
                       : scan_samples(span, span_len, &nsamples, NULL, d)))
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
        (rc = insert_samples(c, id, now, span, span_len, d)) ||
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

int cat_run_create_raw(struct db_conn *c, json_t *body, const char *span, size_t span_len,
                       const char *idem_key, struct buf *out, char etag[21], char id[37],
                       int *replayed, struct err_detail *d)
{
    size_t mark = out->len;
    if (!json_is_object(body))
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    if (json_object_get(body, "samples"))
        return err_set(d, ERR_INTERNAL, "samples", "samples must come apart from the body");
    for (int i = 1;; i++) {
        int rc = create_once(c, body, span, span_len, idem_key, out, etag, id, replayed, d);
        if (i == ITEM_WRITE_TRIES || !db_retryable(c, rc))
            return rc;
        item_rewind(out, mark);
    }
}

int cat_run_create(struct db_conn *c, json_t *body, const char *idem_key, struct buf *out,
                   char etag[21], char id[37], int *replayed, struct err_detail *d)
{
    if (!json_is_object(body))
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    json_t *samples = json_object_get(body, "samples");
    if (!samples)
        return cat_run_create_raw(c, body, NULL, 0, idem_key, out, etag, id, replayed, d);
    char *span = json_dumps(samples, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *rest = json_copy(body);
    int rc;
    if (!span || !rest || json_object_del(rest, "samples"))
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
    else
        rc = cat_run_create_raw(c, rest, span, strlen(span), idem_key, out, etag, id,
                                replayed, d);
    free(span);
    json_decref(rest);
    return rc;
}
