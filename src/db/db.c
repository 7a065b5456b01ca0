/*
 * Backend selection by URL scheme, the connection pool, and the thin
 * dispatch from db.h to the chosen backend's ops table, plus the checks
 * every backend shares (bulk-load identifiers, copy state), and the
 * metrics of the calls that reach the server (see db_metrics).
 *
 * The metrics cost one branch when off; when on, a clock read before and
 * after the call and two relaxed atomic adds (core/metrics.h): no lock.
 * A query is timed from db_query to its first row, since SQLite runs a
 * statement in its first step, not when it is prepared.
 *
 * Spans (core/trace.h) come from the same spot: when the thread is tracing
 * a request, each call becomes a CLIENT child span named after the
 * statement's kind (its first keyword: SELECT, INSERT, BEGIN...), with
 * db.system and db.operation; never the SQL text or its parameters. When
 * the thread is not tracing, that costs one thread-local load.
 */
#include "db/db.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "core/trace.h"
#include "db/db_int.h"

int db__pool_init(struct db_pool *p, const struct db_ops *ops, const char *target,
                  const struct db_opts *o)
{
    memset(p, 0, sizeof(*p));
    p->ops = ops;
    p->opts = *o;
    if (p->opts.max_conns < 1)
        p->opts.max_conns = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->target = mem_strdup(target);
    return p->target ? 0 : ERR_NOMEM;
}

void db__pool_fini(struct db_pool *p)
{
    while (p->free) {
        struct db_conn *c = p->free;
        p->free = c->next_free;
        p->ops->disconnect(c);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    mem_free(p->target);
}

int db__pool_get(struct db_pool *p, struct db_conn **out, struct err_detail *d)
{
    pthread_mutex_lock(&p->mu);
    while (!p->free && p->open >= p->opts.max_conns)
        pthread_cond_wait(&p->cv, &p->mu);
    struct db_conn *c = p->free;
    if (c) {
        p->free = c->next_free;
        pthread_mutex_unlock(&p->mu);
        *out = c;
        return 0;
    }
    p->open++;
    pthread_mutex_unlock(&p->mu);
    int rc = p->ops->connect(p->target, &p->opts, &c, d);
    if (rc) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    c->pool = p;
    *out = c;
    return 0;
}

void db__pool_put(struct db_pool *p, struct db_conn *c)
{
    if (c->in_tx || c->in_copy)
        db_rollback(c);
    pthread_mutex_lock(&p->mu);
    c->next_free = p->free;
    p->free = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void db__pool_drop(struct db_pool *p, struct db_conn *c)
{
    if (c->in_tx || c->in_copy)
        db_rollback(c);
    pthread_mutex_lock(&p->mu);
    struct db_conn *idle = p->free;
    int n = 1;
    for (struct db_conn *i = idle; i; i = i->next_free)
        n++;
    p->free = NULL;
    p->open -= n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->ops->disconnect(c);
    while (idle) {
        struct db_conn *next = idle->next_free;
        p->ops->disconnect(idle);
        idle = next;
    }
}

/* Label values of the error counter's code: index -rc - 1, the last for any other. */
static const char *const err_codes[] = {
    "nomem", "inval", "notfound", "exists", "conflict", "precond", "toobig", "busy",
    "unavail", "io", "corrupt", "internal", "parse", "range", "replay", "denied", "other",
};
#define NCODES ((int)(sizeof(err_codes) / sizeof(err_codes[0])))
static const char *const backends[] = {"sqlite", "postgres"};
static const char *const roles[] = {"primary", "replica"};

void db__pool_metrics(struct db *db, struct db_pool *p)
{
    p->m_dur = db->m_dur;
    p->m_err = db->m_err;
    p->m_series = (p->ops == &db_pg_ops) * 2 + (p->replica != NULL);
}

int db_metrics(struct db *db, struct metrics *m)
{
    static const int64_t bounds[] = {
        10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
        10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
        2500000000, 5000000000, 10000000000,
    };
    const struct metrics_dim dims[] = {{"backend", 2, backends}, {"role", 2, roles},
                                       {"code", NCODES, err_codes}};
    struct metrics_family_opts dur = {
        .name = "modelcat_db_query_duration_seconds",
        .help = "Time of store calls (a query until its first row), by backend and role.",
        .type = METRICS_HISTOGRAM, .ndims = 2, .dims = dims, .bounds = bounds,
        .nbounds = (int)(sizeof(bounds) / sizeof(bounds[0])), .scale = 1e9, .sparse = 1,
    };
    struct metrics_family_opts err = {
        .name = "modelcat_db_errors_total",
        .help = "Store calls that failed, by backend, role and error code.",
        .type = METRICS_COUNTER, .ndims = 3, .dims = dims, .sparse = 1,
    };
    if (!(db->m_dur = metrics_family(m, &dur)) || !(db->m_err = metrics_family(m, &err))) {
        db->m_dur = db->m_err = NULL;
        return ERR_NOMEM;
    }
    db__pool_metrics(db, &db->primary);
    for (int i = 0; i < db->nreplicas; i++)
        db__pool_metrics(db, &db->replicas[i]->pool);
    return 0;
}

/* Start of a timed call on c: the clock, or 0 when metrics are off. */
static inline int64_t obs_start(const struct db_conn *c)
{
    return c->pool && c->pool->m_dur ? time_mono_ns() : 0;
}

/* Counts rc (non-zero) against c's pool. */
static void obs_error(const struct db_conn *c, int rc)
{
    const struct db_pool *p = c->pool;
    int code = rc < 0 && -rc <= NCODES - 1 ? -rc - 1 : NCODES - 1;
    if (p && p->m_err)
        metrics_add(p->m_err, p->m_series * NCODES + code, 1);
}

/* Ends a call timed from t0 (0: not timed) with rc; returns rc. */
static inline int obs_end(const struct db_conn *c, int64_t t0, int rc)
{
    if (t0) {
        metrics_observe(c->pool->m_dur, c->pool->m_series, time_mono_ns() - t0);
        if (rc)
            obs_error(c, rc);
    }
    return rc;
}

/* The kind of statement sql is: its first keyword, uppercased, into op[16]. */
static void sql_kind(const char *sql, char op[16])
{
    size_t n = 0;
    while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r' || *sql == '(')
        sql++;
    for (; n < 15 && ((sql[n] >= 'a' && sql[n] <= 'z') || (sql[n] >= 'A' && sql[n] <= 'Z'));
         n++)
        op[n] = (char)(sql[n] >= 'a' ? sql[n] - 'a' + 'A' : sql[n]);
    op[n] = '\0';
    if (n == 0)
        memcpy(op, "OTHER", 6);
}

/* Start of a traced call: the clock, or 0 when the thread is not tracing. */
static inline int64_t tr_start(void)
{
    return trace_current() ? trace_now_ns() : 0;
}

/* Ends the span of a call on c of kind op, started at t (0: not traced). */
static void tr_end(const struct db_conn *c, int64_t t, const char *op, int rc)
{
    char name[32];
    if (!t)
        return;
    snprintf(name, sizeof(name), "db %s", op);
    trace_child_done(name, TRACE_KIND_CLIENT, t, c->ops == &db_pg_ops ? "postgresql" : "sqlite",
                     op, rc < 0);
}

/* Ends the span of a SQL call (see tr_end); returns rc. */
static int tr_end_sql(const struct db_conn *c, int64_t t, const char *sql, int rc)
{
    char op[16];
    if (t) {
        sql_kind(sql, op);
        tr_end(c, t, op, rc);
    }
    return rc;
}

int db_open(const char *url, const struct db_opts *o, struct db **out,
            struct err_detail *d)
{
    const struct db_ops *ops = NULL;
    const char *target = NULL;
    if (strncmp(url, "sqlite:", 7) == 0) {
        ops = &db_sqlite_ops;
        target = url + 7;
        if (strncmp(target, "//", 2) == 0)
            target += 2;
        if (!*target)
            return err_set(d, ERR_INVAL, "db", "store URL has no path");
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        ops = &db_pg_ops;
        target = url; /* libpq takes the URL as its connection string */
    }
    if (!ops) {
        /* Not the whole URL: it may carry a password. */
        const char *colon = strchr(url, ':');
        int n = colon ? (int)(colon - url) : 0;
        return err_set(d, ERR_INVAL, "db",
                       "unsupported store URL scheme '%.*s' (want sqlite:PATH or"
                       " postgres://...)", n > 32 ? 32 : n, url);
    }
    struct db *db = mem_calloc(1, sizeof(*db));
    if (!db)
        return err_set(d, ERR_NOMEM, "db", "out of memory");
    struct db_conn *c = NULL;
    int rc = db__pool_init(&db->primary, ops, target, o);
    if (rc)
        rc = err_set(d, ERR_NOMEM, "db", "out of memory");
    if (!rc && (rc = db_acquire(db, &c, d)) == 0)
        db_release(db, c);
    if (rc) {
        db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    db__replicas_free(db);
    db__pool_fini(&db->primary);
    mem_free(db);
}

const char *db_backend(const struct db *db)
{
    return db->primary.ops->name;
}

int db_acquire(struct db *db, struct db_conn **out, struct err_detail *d)
{
    return db__pool_get(&db->primary, out, d);
}

void db_release(struct db *db, struct db_conn *c)
{
    (void)db_release_result(db, c, 0, c->acquired_ns);
}

int db_query(struct db_conn *c, const char *sql, const struct db_param *p,
             int np, struct db_rows **out, struct err_detail *d)
{
    int64_t t0 = obs_start(c), tr = tr_start();
    int rc = c->ops->query(c, sql, p, np, out, d);
    if (rc)
        return tr_end_sql(c, tr, sql, obs_end(c, t0, rc));
    (*out)->conn = c;
    (*out)->t0_ns = t0;
    (*out)->tr_ns = tr;
    if (tr)
        sql_kind(sql, (*out)->tr_op);
    return 0;
}

int db_next(struct db_rows *r)
{
    int rc = r->ops->next(r);
    if (r->tr_ns) {
        tr_end(r->conn, r->tr_ns, r->tr_op, rc);
        r->tr_ns = 0;
    }
    if (r->t0_ns) {
        (void)obs_end(r->conn, r->t0_ns, rc < 0 ? rc : 0);
        r->t0_ns = 0;
    } else if (rc < 0 && r->conn && r->conn->pool && r->conn->pool->m_err) {
        obs_error(r->conn, rc);
    }
    return rc;
}
int db_col_type(struct db_rows *r, int col) { return r->ops->col_type(r, col); }
const char *db_col_text(struct db_rows *r, int col, size_t *len)
{
    return r->ops->col_text(r, col, len);
}
int64_t db_col_int(struct db_rows *r, int col) { return r->ops->col_int(r, col); }
double db_col_real(struct db_rows *r, int col) { return r->ops->col_real(r, col); }
void db_rows_close(struct db_rows *r)
{
    if (!r)
        return;
    if (r->t0_ns) /* closed before its first row was read */
        (void)obs_end(r->conn, r->t0_ns, 0);
    if (r->tr_ns)
        tr_end(r->conn, r->tr_ns, r->tr_op, 0);
    r->ops->rows_close(r);
}

int db_exec(struct db_conn *c, const char *sql, const struct db_param *p,
            int np, int64_t *changes, struct err_detail *d)
{
    int64_t t0 = obs_start(c), tr = tr_start();
    return tr_end_sql(c, tr, sql, obs_end(c, t0, c->ops->exec(c, sql, p, np, changes, d)));
}

int db_exec_script(struct db_conn *c, const char *sql, struct err_detail *d)
{
    int64_t t0 = obs_start(c), tr = tr_start();
    int rc = obs_end(c, t0, c->ops->exec_script(c, sql, d));
    tr_end(c, tr, "SCRIPT", rc);
    return rc;
}

int db_begin(struct db_conn *c, int write, struct err_detail *d)
{
    int64_t t0 = obs_start(c), tr = tr_start();
    int rc = obs_end(c, t0, c->ops->begin(c, write, d));
    tr_end(c, tr, "BEGIN", rc);
    if (!rc)
        c->in_tx = 1;
    return rc;
}

int db_commit(struct db_conn *c, struct err_detail *d)
{
    int64_t t0 = obs_start(c), tr = tr_start();
    int rc = obs_end(c, t0, c->ops->commit(c, d));
    tr_end(c, tr, "COMMIT", rc);
    if (!rc)
        c->in_tx = 0;
    return rc;
}

void db_rollback(struct db_conn *c)
{
    if (c->in_tx || c->in_copy)
        c->ops->rollback(c);
    c->in_tx = 0;
    c->in_copy = 0;
}

int db_retryable(const struct db_conn *c, int rc)
{
    return rc == ERR_BUSY && c->ops->retry_busy;
}

static int is_ident(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return n <= 63;
}

void db__copy_target(struct buf *b, const char *table, const char *const *cols, int ncols)
{
    buf_printf(b, "%s (", table);
    for (int i = 0; i < ncols; i++)
        buf_printf(b, "%s%s", i ? ", " : "", cols[i]);
    buf_putc(b, ')');
}

int db_copy_begin(struct db_conn *c, const char *table, const char *const *cols, int ncols,
                  struct err_detail *d)
{
    if (c->in_copy)
        return err_set(d, ERR_INVAL, NULL, "a bulk load is already open on this connection");
    if (ncols < 1 || ncols > DB_COPY_MAX_COLS)
        return err_set(d, ERR_INVAL, NULL, "bulk load of %d columns (1..%d)", ncols,
                       DB_COPY_MAX_COLS);
    if (!is_ident(table))
        return err_set(d, ERR_INVAL, NULL, "bulk load: bad table name");
    for (int i = 0; i < ncols; i++)
        if (!is_ident(cols[i]))
            return err_set(d, ERR_INVAL, NULL, "bulk load: bad column name #%d", i);
    int rc = c->ops->copy_begin(c, table, cols, ncols, d);
    if (!rc)
        c->in_copy = 1;
    return rc;
}

int db_copy_row(struct db_conn *c, const struct db_param *p, struct err_detail *d)
{
    if (!c->in_copy)
        return err_set(d, ERR_INVAL, NULL, "db_copy_row without db_copy_begin");
    return c->ops->copy_row(c, p, d);
}

int db_copy_end(struct db_conn *c, struct err_detail *d)
{
    if (!c->in_copy)
        return err_set(d, ERR_INVAL, NULL, "db_copy_end without db_copy_begin");
    c->in_copy = 0;
    int64_t t0 = obs_start(c), tr = tr_start();
    int rc = obs_end(c, t0, c->ops->copy_end(c, d));
    tr_end(c, tr, "COPY", rc);
    return rc;
}

int db__schema_lock(struct db_conn *c, int lock, struct err_detail *d)
{
    return c->ops->schema_lock ? c->ops->schema_lock(c, lock, d) : 0;
}

int db_query_int(struct db_conn *c, const char *sql, const struct db_param *p,
                 int np, int64_t *v, struct err_detail *d)
{
    struct db_rows *r;
    int rc = db_query(c, sql, p, np, &r, d);
    if (rc)
        return rc;
    rc = db_next(r);
    if (rc == 1) {
        *v = db_col_int(r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = ERR_NOTFOUND;
    } else {
        rc = err_set(d, rc, NULL, "query failed");
    }
    db_rows_close(r);
    return rc;
}
