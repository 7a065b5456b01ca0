/*
 * The time series of a benchmark run: its per-request samples and its GPU
 * samples. Both are read back as JSON or CSV by one exporter driven by a
 * column table, both are bulk-loaded with COPY, and on PostgreSQL both
 * live in tables range-partitioned by time (db/migrations/0002): this file
 * also keeps the partitions of the coming months made ahead of the rows
 * that will need them.
 *
 * GPU samples arrive in a run's body as "gpu_samples": an array of
 * objects validated by the same field machinery as every resource
 * (record.h), one row per GPU per sampling instant.
 */
#include <stdio.h>
#include <string.h>

#include "catalog/catalog.h"
#include "catalog/record.h"
#include "core/jw.h"

/* Columns of an exported series, in SELECT order. */
struct series_col {
    const char *name;
    uint8_t kind; /* FK_INT, FK_REAL or FK_TEXT */
};

struct series {
    const char *sql;  /* $1 = run id, $2 = its created_at when nparams is 2 */
    int nparams;
    const struct series_col *cols;
    int ncols;
};

static const struct series_col sample_cols[] = {
    {"scheduled_ns", FK_INT}, {"sent_ns", FK_INT},      {"first_token_ns", FK_INT},
    {"last_token_ns", FK_INT}, {"input_tokens", FK_INT}, {"output_tokens", FK_INT},
    {"error", FK_TEXT},
};

/* The GPU sample fields: validation of input and the columns of output. */
static const struct fld gpu_fields[] = {
    {"ts_ms", FK_INT, FF_REQ, 0, 253402300799999.0, NULL, 0},
    {"gpu", FK_INT, FF_REQ, 0, 1023, NULL, 0},
    {"util_pct", FK_REAL, 0, 0, 100, NULL, 0},
    {"mem_used_bytes", FK_INT, 0, 0, 9.2e18, NULL, 0},
    {"power_w", FK_REAL, 0, 0, 1e6, NULL, 0},
    {"temp_c", FK_REAL, 0, -273.15, 1000, NULL, 0},
    {"sm_clock_mhz", FK_REAL, 0, 0, 1e6, NULL, 0},
    {"energy_j", FK_REAL, 0, 0, 1e18, NULL, 0},
};
#define NGPU ((int)(sizeof(gpu_fields) / sizeof(gpu_fields[0])))

static const struct resource gpu_sample = {
    .name = "GPU sample", .f = gpu_fields, .nf = NGPU,
};

static const struct series_col gpu_cols[NGPU] = {
    {"ts_ms", FK_INT}, {"gpu", FK_INT}, {"util_pct", FK_REAL}, {"mem_used_bytes", FK_INT},
    {"power_w", FK_REAL}, {"temp_c", FK_REAL}, {"sm_clock_mhz", FK_REAL}, {"energy_j", FK_REAL},
};

/* ts = $2 prunes the samples to their run's partition. */
static const struct series series_of[] = {
    [CAT_SERIES_REQUESTS] = {
        "SELECT scheduled_ns, sent_ns, first_token_ns, last_token_ns, input_tokens,"
        " output_tokens, error FROM samples WHERE run_id = $1 AND ts = $2"
        " ORDER BY scheduled_ns, idx", 2, sample_cols, 7},
    [CAT_SERIES_GPU] = {
        "SELECT ts, gpu, util_pct, mem_used_bytes, power_w, temp_c, sm_clock_mhz, energy_j"
        " FROM gpu_samples WHERE run_id = $1 ORDER BY ts, gpu", 1, gpu_cols, NGPU},
};

int cat__gpu_samples_insert(struct db_conn *c, const char *run_id, json_t *arr,
                            struct err_detail *d)
{
    static const char *const cols[1 + NGPU] = {
        "run_id", "ts", "gpu", "util_pct", "mem_used_bytes", "power_w", "temp_c",
        "sm_clock_mhz", "energy_j",
    };
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    struct db_param p[1 + NGPU];
    p[0] = db_p_text(run_id, strlen(run_id));
    int rc = db_copy_begin(c, "gpu_samples", cols, 1 + NGPU, d);
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *s = json_array_get(arr, i);
        struct rec rec;
        if (!json_is_object(s))
            return err_set(d, ERR_INVAL, "gpu_samples",
                           "gpu_samples[%zu] must be an object", i);
        rc = rec_validate(&gpu_sample, s, &rec, d);
        if (rc) {
            /* Say which sample: "util_pct" becomes "gpu_samples[3].util_pct". */
            char field[2 * ERR_FIELD_LEN];
            snprintf(field, sizeof(field), "gpu_samples[%zu].%s", i, d->field);
            snprintf(d->field, sizeof(d->field), "%.*s", ERR_FIELD_LEN - 1, field);
        } else {
            memcpy(p + 1, rec.v, sizeof(p[0]) * NGPU);
            rc = db_copy_row(c, p, d);
        }
        rec_free(&rec);
    }
    /* On error the caller's rollback ends the load. */
    return rc ? rc : db_copy_end(c, d);
}

static void csv_text(struct buf *b, const char *s, size_t n)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            buf_putc(b, '"');
        buf_putc(b, s[i]);
    }
    buf_putc(b, '"');
}

static void put_row(const struct series *se, struct db_rows *row, int csv, struct jw *w,
                    struct buf *out)
{
    if (!csv)
        jw_obj_open(w);
    for (int i = 0; i < se->ncols; i++) {
        int null = db_col_type(row, i) == DB_NULL;
        uint8_t k = se->cols[i].kind;
        if (csv) {
            if (i)
                buf_putc(out, ',');
            if (null)
                continue;
            if (k == FK_TEXT) {
                size_t n;
                const char *s = db_col_text(row, i, &n);
                csv_text(out, s, n);
            } else if (k == FK_INT) {
                buf_i64(out, db_col_int(row, i));
            } else {
                char tmp[40]; /* the same digits as JSON */
                buf_append(out, tmp, (size_t)jw_fmt_double(tmp, sizeof(tmp),
                                                             db_col_real(row, i)));
            }
            continue;
        }
        jw_key(w, se->cols[i].name);
        if (null)
            jw_null(w);
        else if (k == FK_TEXT)
            jw_cstr(w, db_col_text(row, i, NULL));
        else if (k == FK_INT)
            jw_i64(w, db_col_int(row, i));
        else
            jw_num(w, db_col_real(row, i));
    }
    if (csv)
        buf_puts(out, "\r\n");
    else
        jw_obj_close(w);
}

int cat_run_series(struct db_conn *c, const char *id, enum cat_series which, int csv,
                   struct buf *out, struct err_detail *d)
{
    const struct series *se = &series_of[which];
    struct db_param p[2] = {db_p_text(id, strlen(id)), db_p_null()};
    int64_t created;
    int rc = db_query_int(c, "SELECT created_at FROM runs WHERE id = $1", p, 1, &created, d);
    if (rc == ERR_NOTFOUND)
        return err_set(d, ERR_NOTFOUND, NULL, "no benchmark run '%.64s'", id);
    if (rc)
        return rc;
    p[1] = db_p_int(created);
    struct db_rows *row;
    if ((rc = db_query(c, se->sql, p, se->nparams, &row, d)))
        return rc;
    struct jw w;
    jw_init(&w, out);
    if (csv) {
        for (int i = 0; i < se->ncols; i++)
            buf_printf(out, "%s%s", i ? "," : "", se->cols[i].name);
        buf_puts(out, "\r\n");
    } else {
        jw_obj_open(&w);
        jw_key(&w, "items");
        jw_arr_open(&w);
    }
    while ((rc = db_next(row)) == 1)
        put_row(se, row, csv, &w, out);
    db_rows_close(row);
    if (rc < 0)
        return err_set(d, rc, NULL, "samples query failed");
    if (!csv) {
        jw_arr_close(&w);
        jw_obj_close(&w);
    }
    return buf_err(out) ? err_set(d, buf_err(out), NULL, "response too large") : 0;
}

/* The partitioned series tables (PostgreSQL). */
static const char *const series_tables[] = {"samples", "gpu_samples"};

int cat_series_maintain(struct db *db, int64_t now_ms, int months_ahead,
                        struct err_detail *d)
{
    if (strcmp(db_backend(db), "postgres") != 0)
        return 0;
    struct db_conn *c;
    int rc = db_acquire(db, &c, d);
    if (rc)
        return rc;
    /* A month is at most 31 days: step by 28 and every month is visited. */
    for (int64_t t = now_ms; !rc && t <= now_ms + (int64_t)months_ahead * 31 * 86400000;
         t += (int64_t)28 * 86400000) {
        for (size_t i = 0; !rc && i < sizeof(series_tables) / sizeof(*series_tables); i++) {
            const char *tbl = series_tables[i];
            struct db_param p[2] = {db_p_text(tbl, strlen(tbl)), db_p_int(t)};
            rc = db_exec(c, "SELECT modelcat_ensure_partition($1, $2)", p, 2, NULL, d);
        }
    }
    db_release(db, c);
    return rc;
}

int cat_series_info(struct db_conn *c, const struct db *db, struct cat_series_info *out,
                    struct err_detail *d)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(db_backend(db), "postgres") != 0) {
        snprintf(out->kind, sizeof(out->kind), "table");
        return 0;
    }
    struct db_rows *row;
    int rc = db_query(c,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_partitioned_table"
        "  WHERE partrelid = 'samples'::regclass) THEN 'partitioned'"
        " WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        "  THEN 'timescaledb' ELSE 'table' END,"
        " (SELECT COUNT(*) FROM pg_inherits WHERE inhparent = 'samples'::regclass),"
        " (SELECT COUNT(*) FROM pg_inherits WHERE inhparent = 'gpu_samples'::regclass)",
        NULL, 0, &row, d);
    if (rc)
        return rc;
    if ((rc = db_next(row)) == 1) {
        snprintf(out->kind, sizeof(out->kind), "%s", db_col_text(row, 0, NULL));
        out->partitions[0] = db_col_int(row, 1);
        out->partitions[1] = db_col_int(row, 2);
        rc = 0;
    } else if (rc == 0) {
        rc = err_set(d, ERR_INTERNAL, NULL, "no row");
    }
    db_rows_close(row);
    return rc;
}
