/*
 * The jobs queue's store (see jobs.h): create, read, list and cancel jobs,
 * and the worker protocol (claim, heartbeat, checkpoint, complete,
 * release), each one write transaction run again when it met a
 * concurrent writer on PostgreSQL.
 *
 * DESIGN: a claim first sweeps expired leases (running jobs whose
 * lease_expires_at passed go back to the queue, or fail once they used
 * max_attempts: the attempt was counted when they were claimed), then
 * picks the oldest queued job none of whose labels the worker lacks. The
 * labels are rows of job_labels, so the match is SQL and only the chosen
 * row is locked: on PostgreSQL with FOR UPDATE SKIP LOCKED (concurrent
 * claimers pass over each other's rows instead of queueing behind them),
 * on SQLite the write transaction (BEGIN IMMEDIATE) serializes claims.
 * The update that takes the row re-checks status = 'queued', so a job is
 * never held by two workers. Every worker call locks the job's row first
 * (an update that changes nothing), then decides from what it reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/item.h"
#include "catalog/jobs.h"
#include "catalog/record.h"
#include "core/codec.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define COLS                                                                            \
    "j.id, j.status, j.spec, j.labels, j.attempts, j.max_attempts, j.progress,"         \
    " j.checkpoint_bytes, j.checkpoint_at, j.run_ids, j.reason, j.worker,"              \
    " j.lease_expires_at, j.created_at, j.updated_at, j.created_by"
#define NCOLS 16

static void put_time(struct jw *w, struct db_rows *row, int col)
{
    char ts[32];
    if (db_col_type(row, col) == DB_NULL ||
        time_fmt_rfc3339(ts, sizeof(ts), db_col_int(row, col)) < 0)
        jw_null(w);
    else
        jw_cstr(w, ts);
}

static void put_raw(struct jw *w, struct db_rows *row, int col)
{
    size_t n;
    const char *s = db_col_text(row, col, &n);
    if (s && n)
        jw_raw(w, s, n);
    else
        jw_null(w);
}

static void put_text(struct jw *w, struct db_rows *row, int col)
{
    size_t n;
    const char *s = db_col_text(row, col, &n);
    if (s)
        jw_str(w, s, n);
    else
        jw_null(w);
}

/* One job from COLS (and, with full, its checkpoint's content at NCOLS). */
static void render(struct db_rows *row, struct jw *w, int full)
{
    static const char *const names[NCOLS] = {
        "id", "status", "spec", "labels", "attempts", "max_attempts", "progress", NULL,
        NULL, "run_ids", "reason", "worker", "lease_expires_at", "created_at",
        "updated_at", "created_by",
    };
    jw_obj_open(w);
    for (int i = 0; i < NCOLS; i++) {
        if (i == 7) {
            jw_key(w, "checkpoint");
            if (full) {
                put_raw(w, row, NCOLS);
            } else if (db_col_type(row, 8) == DB_NULL) {
                jw_null(w);
            } else {
                jw_obj_open(w);
                jw_key(w, "bytes");
                jw_i64(w, db_col_int(row, 7));
                jw_key(w, "updated_at");
                put_time(w, row, 8);
                jw_obj_close(w);
            }
            continue;
        }
        if (!names[i])
            continue;
        jw_key(w, names[i]);
        if (i == 4 || i == 5)
            jw_i64(w, db_col_int(row, i));
        else if (i == 2 || i == 3 || i == 6 || i == 9)
            put_raw(w, row, i);
        else if (i >= 12 && i <= 14)
            put_time(w, row, i);
        else
            put_text(w, row, i);
    }
    jw_obj_close(w);
}

static void render_cb(struct db_rows *row, struct jw *w, void *arg)
{
    (void)arg;
    render(row, w, 0);
}

/* Appends job id to out as jobs_get shows it (full: with the checkpoint). */
static int get_one(struct db_conn *c, const char *id, int full, struct buf *out,
                   struct err_detail *d)
{
    static const char *const sql[2] = {
        "SELECT " COLS " FROM jobs j WHERE j.id = $1",
        "SELECT " COLS ", j.checkpoint FROM jobs j WHERE j.id = $1",
    };
    struct db_param p = db_p_text(id, strlen(id));
    struct db_rows *row;
    int rc = db_query(c, sql[full], &p, 1, &row, d);
    if (rc)
        return rc;
    rc = db_next(row);
    if (rc == 1) {
        struct jw w;
        jw_init(&w, out);
        render(row, &w, full);
        rc = buf_err(out) ? err_set(d, buf_err(out), NULL, "response too large") : 0;
    } else if (rc == 0) {
        rc = err_set(d, ERR_NOTFOUND, NULL, "no job '%.64s'", id);
    } else {
        rc = err_set(d, rc, NULL, "job lookup failed");
    }
    db_rows_close(row);
    return rc;
}

int job_get(struct db_conn *c, const char *id, struct buf *out, struct err_detail *d)
{
    return get_one(c, id, 0, out, d);
}

const char *const job_statuses[JOB_NSTATUS] = {"queued", "running", "succeeded", "failed",
                                               "cancelled"};

int job_count_by_status(struct db_conn *c, int64_t n[JOB_NSTATUS], struct err_detail *d)
{
    struct db_rows *r;
    memset(n, 0, JOB_NSTATUS * sizeof(n[0]));
    int rc = db_query(c, "SELECT status, COUNT(*) FROM jobs GROUP BY status", NULL, 0, &r, d);
    if (rc)
        return rc;
    for (int i = 0; (rc = db_next(r)) == 1 && i < 16; i++) {
        const char *st = db_col_text(r, 0, NULL);
        for (int k = 0; st && k < JOB_NSTATUS; k++)
            if (strcmp(st, job_statuses[k]) == 0)
                n[k] = db_col_int(r, 1);
    }
    db_rows_close(r);
    return rc < 0 ? err_set(d, rc, NULL, "counting jobs failed") : 0;
}

int job_list(struct db_conn *c, const char *status, const struct cat_page *pg,
             struct buf *out, struct err_detail *d)
{
    static const struct list_sort sorts[] = {
        {"created", "j.created_at", FK_INT},
        {NULL, NULL, 0},
    };
    static const char *const states[] = {"queued", "running", "succeeded", "failed",
                                         "cancelled", NULL};
    struct list_q q;
    if (status) {
        const char *const *s = states;
        while (*s && strcmp(*s, status) != 0)
            s++;
        if (!*s)
            return err_set(d, ERR_INVAL, "status",
                           "status must be queued, running, succeeded, failed or cancelled");
    }
    listq_init(&q);
    buf_puts(&q.sql, COLS " FROM jobs j WHERE 1=1");
    if (status)
        listq_where(&q, "j.status = $%d", db_p_text(status, strlen(status)));
    struct page_req pr = {pg->limit, pg->cursor, pg->sort};
    int rc = list_run(c, &q, "jobs", sorts, "-created", "j.id", NCOLS, &pr, render_cb, NULL,
                      out, d);
    listq_free(&q);
    return rc;
}

typedef int (*tx_fn)(struct db_conn *c, void *arg, struct buf *out, struct err_detail *d);

/* Runs fn in a write transaction, again on a retryable conflict. */
static int in_tx(struct db_conn *c, tx_fn fn, void *arg, struct buf *out, struct err_detail *d)
{
    size_t mark = out->len;
    for (int i = 1;; i++) {
        int rc = db_begin(c, 1, d);
        if (!rc)
            rc = fn(c, arg, out, d);
        if (!rc)
            rc = db_commit(c, d);
        if (rc)
            db_rollback(c);
        if (!rc || i == ITEM_WRITE_TRIES || !db_retryable(c, rc))
            return rc;
        item_rewind(out, mark);
        err_clear(d);
    }
}

struct create_ctx {
    const char *id, *spec, *labels_text, *created_by;
    json_t *labels;
    int64_t attempts, now;
};

static int create_tx(struct db_conn *c, void *arg, struct buf *out, struct err_detail *d)
{
    struct create_ctx *x = arg;
    const char *k;
    json_t *v;
    int rc;
    struct db_param p[7] = {
        db_p_text(x->id, 36), db_p_text(x->spec, strlen(x->spec)),
        db_p_text(x->labels_text, strlen(x->labels_text)), db_p_int(x->attempts),
        db_p_int(x->now), db_p_int(x->now), db_p_text(x->created_by, strlen(x->created_by)),
    };
    if ((rc = db_exec(c, "INSERT INTO jobs (id, status, spec, labels, max_attempts,"
                         " created_at, updated_at, created_by)"
                         " VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7)", p, 7, NULL, d)))
        return rc;
    json_object_foreach(x->labels, k, v) {
        struct db_param lp[3] = {db_p_text(x->id, 36), db_p_text(k, strlen(k)),
                                 db_p_text(json_string_value(v), json_string_length(v))};
        if ((rc = db_exec(c, "INSERT INTO job_labels (job_id, key, value) VALUES ($1, $2, $3)",
                          lp, 3, NULL, d)))
            return rc;
    }
    return get_one(c, x->id, 0, out, d);
}

int job_create(struct db_conn *c, json_t *body, const char *created_by, int def_attempts,
               int64_t now_ms, struct buf *out, char id[37], struct err_detail *d)
{
    struct create_ctx x = {.created_by = created_by, .now = now_ms, .attempts = def_attempts};
    char *spec = NULL, *labels = NULL;
    int rc;
    if (!json_is_object(body))
        return err_set(d, ERR_INVAL, NULL, "the body must be a JSON object");
    json_t *copy = json_copy(body);
    if (!copy)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    json_t *ma = json_object_get(copy, "max_attempts");
    x.labels = json_object_get(copy, "labels");
    if (ma && !json_is_null(ma)) {
        if (!json_is_integer(ma) || json_integer_value(ma) < 1 ||
            json_integer_value(ma) > JOB_ATTEMPTS_MAX) {
            rc = err_set(d, ERR_RANGE, "max_attempts", "max_attempts must be 1 to %d",
                         JOB_ATTEMPTS_MAX);
            goto out;
        }
        x.attempts = json_integer_value(ma);
    }
    if ((rc = job_labels_check(x.labels, "labels", d)))
        goto out;
    x.labels = json_is_object(x.labels) ? json_incref(x.labels) : json_object();
    json_object_del(copy, "labels");
    json_object_del(copy, "max_attempts");
    if ((rc = job_spec_check(copy, d)))
        goto out;
    spec = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    labels = json_dumps(x.labels, JSON_COMPACT | JSON_SORT_KEYS);
    if (!spec || !labels) {
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    if (strlen(spec) > JOB_SPEC_MAX) {
        rc = err_set(d, ERR_RANGE, "spec", "the spec is larger than %d bytes", JOB_SPEC_MAX);
        goto out;
    }
    if (codec_uuid7(id, now_ms)) {
        rc = err_set(d, ERR_INTERNAL, NULL, "no randomness");
        goto out;
    }
    x.id = id;
    x.spec = spec;
    x.labels_text = labels;
    rc = in_tx(c, create_tx, &x, out, d);
out:
    free(spec);
    free(labels);
    json_decref(x.labels);
    json_decref(copy);
    return rc;
}

struct id_ctx {
    const char *id;
    int64_t now;
};

static int cancel_tx(struct db_conn *c, void *arg, struct buf *out, struct err_detail *d)
{
    struct id_ctx *x = arg;
    int64_t n = 0;
    struct db_param p[2] = {db_p_text(x->id, strlen(x->id)), db_p_int(x->now)};
    int rc = db_exec(c, "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL,"
                        " updated_at = $2 WHERE id = $1 AND status IN ('queued', 'running')",
                     p, 2, &n, d);
    if (rc)
        return rc;
    if (n == 0) {
        size_t mark = out->len;
        if ((rc = get_one(c, x->id, 0, out, d)))
            return rc;
        item_rewind(out, mark);
        return err_set(d, ERR_CONFLICT, "finished", "job %.64s has finished", x->id);
    }
    return get_one(c, x->id, 0, out, d);
}

int job_cancel(struct db_conn *c, const char *id, int64_t now_ms, struct buf *out,
               struct err_detail *d)
{
    struct id_ctx x = {id, now_ms};
    return in_tx(c, cancel_tx, &x, out, d);
}

/* Expired leases go back to the queue, or fail after max_attempts. */
static int sweep(struct db_conn *c, int64_t now, struct err_detail *d)
{
    struct db_param p = db_p_int(now);
    return db_exec(c, "UPDATE jobs SET"
                      " status = CASE WHEN attempts >= max_attempts THEN 'failed'"
                      " ELSE 'queued' END,"
                      " reason = CASE WHEN attempts >= max_attempts THEN 'lease expired '"
                      " || CAST(attempts AS TEXT) || ' times' ELSE 'lease expired' END,"
                      " lease_expires_at = NULL, updated_at = $1"
                      " WHERE status = 'running' AND lease_expires_at < $1",
                   &p, 1, NULL, d);
}

struct claim_ctx {
    const struct job_msg *m;
    int pg, claimed;
    int64_t now;
};

/* SELECT of the job to claim: the worker's labels as $1..$2n. */
static void claim_sql(struct buf *sql, const struct job_msg *m, int pg, struct db_param *p,
                      int *np)
{
    const char *k;
    json_t *v;
    int n = 0;
    buf_puts(sql, "SELECT j.id FROM jobs j WHERE j.status = 'queued' AND NOT EXISTS"
                  " (SELECT 1 FROM job_labels l WHERE l.job_id = j.id");
    if (m->labels && json_object_size(m->labels)) {
        buf_puts(sql, " AND NOT (");
        json_object_foreach(m->labels, k, v) {
            p[n] = db_p_text(k, strlen(k));
            p[n + 1] = db_p_text(json_string_value(v), json_string_length(v));
            buf_printf(sql, "%s(l.key = $%d AND l.value = $%d)", n ? " OR " : "", n + 1,
                       n + 2);
            n += 2;
        }
        buf_putc(sql, ')');
    }
    buf_puts(sql, ") ORDER BY j.created_at, j.id LIMIT 1");
    if (pg)
        buf_puts(sql, " FOR UPDATE SKIP LOCKED");
    *np = n;
}

static int claim_tx(struct db_conn *c, void *arg, struct buf *out, struct err_detail *d)
{
    struct claim_ctx *x = arg;
    struct db_param p[2 * JOB_LABELS_MAX];
    struct db_rows *row;
    struct buf sql;
    char id[64];
    int np, rc;
    x->claimed = 0;
    if ((rc = sweep(c, x->now, d)))
        return rc;
    buf_init(&sql, 8192);
    claim_sql(&sql, x->m, x->pg, p, &np);
    rc = buf_err(&sql) ? err_set(d, ERR_TOOBIG, NULL, "query too large")
                       : db_query(c, sql.p, p, np, &row, d);
    buf_free(&sql);
    if (rc)
        return rc;
    rc = db_next(row);
    if (rc == 1)
        snprintf(id, sizeof(id), "%s", db_col_text(row, 0, NULL));
    db_rows_close(row);
    if (rc <= 0)
        return rc < 0 ? err_set(d, rc, NULL, "claim query failed") : 0;
    int64_t n = 0, until = x->now + x->m->lease_s * 1000;
    struct db_param u[5] = {db_p_text(id, strlen(id)),
                            db_p_text(x->m->worker, strlen(x->m->worker)),
                            db_p_int(x->m->lease_s), db_p_int(until), db_p_int(x->now)};
    if ((rc = db_exec(c, "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                         " worker = $2, lease_s = $3, lease_expires_at = $4, updated_at = $5"
                         " WHERE id = $1 AND status = 'queued'", u, 5, &n, d)))
        return rc;
    if (n != 1) /* cannot happen under the lock; run the claim again */
        return err_set(d, ERR_BUSY, NULL, "the job was taken meanwhile");
    char ts[32];
    buf_puts(out, "{\"job\":");
    if ((rc = get_one(c, id, 1, out, d)))
        return rc;
    if (time_fmt_rfc3339(ts, sizeof(ts), until) < 0)
        return err_set(d, ERR_INTERNAL, NULL, "bad lease time");
    buf_printf(out, ",\"lease_expires_at\":\"%s\"}", ts);
    x->claimed = 1;
    return buf_err(out) ? err_set(d, buf_err(out), NULL, "response too large") : 0;
}

int job_claim(struct db_conn *c, int pg, const struct job_msg *m, int64_t now_ms,
              struct buf *out, int *claimed, struct err_detail *d)
{
    struct claim_ctx x = {m, pg, 0, now_ms};
    int rc = in_tx(c, claim_tx, &x, out, d);
    *claimed = !rc && x.claimed;
    return rc;
}

struct call_ctx {
    enum job_op op;
    const char *id;
    const struct job_msg *m;
    int64_t now;
};

/*
 * run_ids of the job (JSON text stored) with m's appended, without
 * duplicates, as compact JSON into *out (owned by the caller).
 */
static int merge_run_ids(const char *stored, size_t n, json_t *add, char **out,
                         struct err_detail *d)
{
    json_t *all = stored ? json_loadb(stored, n, 0, NULL) : json_array();
    json_t *seen = json_object(), *e;
    size_t i;
    int rc = 0;
    if (!json_is_array(all) || !seen) {
        rc = err_set(d, ERR_CORRUPT, NULL, "stored run_ids are malformed");
        goto out;
    }
    json_array_foreach(all, i, e) {
        if (json_is_string(e))
            json_object_set(seen, json_string_value(e), json_true());
    }
    json_array_foreach(add, i, e) {
        const char *s = json_string_value(e);
        if (json_object_get(seen, s))
            continue;
        if (json_array_size(all) >= JOB_RUN_IDS_MAX) {
            rc = err_set(d, ERR_RANGE, "run_ids", "a job has at most %d run ids",
                         JOB_RUN_IDS_MAX);
            goto out;
        }
        json_object_set(seen, s, json_true());
        json_array_append(all, e);
    }
    *out = json_dumps(all, JSON_COMPACT);
    if (!*out)
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
out:
    json_decref(all);
    json_decref(seen);
    return rc;
}

/* Locks the job's row and checks that m->worker holds it. */
static int holder_check(struct db_conn *c, const struct call_ctx *x, int64_t *lease_s,
                        int64_t *attempts, int64_t *max_attempts, char **run_ids,
                        struct err_detail *d)
{
    struct db_param p = db_p_text(x->id, strlen(x->id));
    struct db_rows *row;
    int rc = db_exec(c, "UPDATE jobs SET updated_at = updated_at WHERE id = $1", &p, 1, NULL,
                     d);
    if (rc || (rc = db_query(c, "SELECT status, worker, lease_s, attempts, max_attempts,"
                                " run_ids FROM jobs WHERE id = $1", &p, 1, &row, d)))
        return rc;
    rc = db_next(row);
    if (rc == 1) {
        const char *st = db_col_text(row, 0, NULL), *w = db_col_text(row, 1, NULL);
        size_t n;
        const char *ids = db_col_text(row, 5, &n);
        *lease_s = db_col_int(row, 2);
        *attempts = db_col_int(row, 3);
        *max_attempts = db_col_int(row, 4);
        if (!strcmp(st, "cancelled"))
            rc = err_set(d, ERR_CONFLICT, "cancelled", "job %.64s was cancelled", x->id);
        else if (strcmp(st, "running") != 0 || !w || strcmp(w, x->m->worker) != 0)
            rc = err_set(d, ERR_CONFLICT, "lease_lost",
                         "worker %.64s does not hold job %.64s (it is %s)", x->m->worker,
                         x->id, st);
        else if (!(*run_ids = mem_malloc(n + 1)))
            rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        else {
            memcpy(*run_ids, ids ? ids : "", n);
            (*run_ids)[n] = '\0';
            rc = 0;
        }
    } else if (rc == 0) {
        rc = err_set(d, ERR_NOTFOUND, NULL, "no job '%.64s'", x->id);
    } else {
        rc = err_set(d, rc, NULL, "job lookup failed");
    }
    db_rows_close(row);
    return rc;
}

static struct db_param opt_text(const char *s)
{
    return s ? db_p_text(s, strlen(s)) : db_p_null();
}

static int call_tx(struct db_conn *c, void *arg, struct buf *out, struct err_detail *d)
{
    struct call_ctx *x = arg;
    const struct job_msg *m = x->m;
    int64_t lease_s = 0, attempts = 0, max_attempts = 0;
    char *stored = NULL, *ids = NULL;
    int rc = holder_check(c, x, &lease_s, &attempts, &max_attempts, &stored, d);
    if (rc)
        return rc;
    if (m->run_ids && (rc = merge_run_ids(stored, strlen(stored), m->run_ids, &ids, d)))
        goto out;
    int live = x->op == JOB_HEARTBEAT || x->op == JOB_CHECKPOINT;
    int64_t until = x->now + lease_s * 1000;
    const char *status = live ? "running"
                         : x->op == JOB_COMPLETE && m->succeeded ? "succeeded"
                         : attempts >= max_attempts ? "failed" : "queued";
    const char *reason = m->reason;
    if (!reason && !strcmp(status, "failed"))
        reason = "failed";
    struct db_param p[10] = {
        db_p_text(x->id, strlen(x->id)), db_p_text(status, strlen(status)),
        live ? db_p_int(until) : db_p_null(), db_p_int(x->now), opt_text(m->progress),
        opt_text(ids), opt_text(reason),
        m->checkpoint ? db_p_text(m->checkpoint, m->checkpoint_len) : db_p_null(),
        db_p_int((int64_t)m->checkpoint_len), db_p_int(x->op == JOB_CHECKPOINT),
    };
    if ((rc = db_exec(c, "UPDATE jobs SET status = $2, lease_expires_at = $3,"
                         " updated_at = $4, progress = COALESCE($5, progress),"
                         " run_ids = COALESCE($6, run_ids), reason = COALESCE($7, reason),"
                         " checkpoint = CASE WHEN $10 = 1 THEN $8 ELSE checkpoint END,"
                         " checkpoint_bytes = CASE WHEN $10 = 1 THEN $9"
                         " ELSE checkpoint_bytes END,"
                         " checkpoint_at = CASE WHEN $10 = 1 THEN $4 ELSE checkpoint_at END"
                         " WHERE id = $1", p, 10, NULL, d)))
        goto out;
    if (!live) {
        rc = get_one(c, x->id, 0, out, d);
        goto out;
    }
    char ts[32];
    if (time_fmt_rfc3339(ts, sizeof(ts), until) < 0) {
        rc = err_set(d, ERR_INTERNAL, NULL, "bad lease time");
        goto out;
    }
    buf_printf(out, "{\"lease_expires_at\":\"%s\",\"status\":\"running\"}", ts);
    if (buf_err(out))
        rc = err_set(d, buf_err(out), NULL, "response too large");
out:
    mem_free(stored);
    free(ids);
    return rc;
}

int job_worker_call(struct db_conn *c, enum job_op op, const char *id,
                    const struct job_msg *m, int64_t now_ms, struct buf *out,
                    struct err_detail *d)
{
    struct call_ctx x = {op, id, m, now_ms};
    if (op == JOB_CLAIM)
        return err_set(d, ERR_INTERNAL, NULL, "a claim names no job");
    return in_tx(c, call_tx, &x, out, d);
}
