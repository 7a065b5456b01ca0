/*
 * Backend selection by URL scheme, the connection pool, and the thin
 * dispatch from db.h to the chosen backend's ops table, plus the checks
 * every backend shares (bulk-load identifiers, copy state).
 */
#include "db/db.h"

#include <pthread.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
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
    return c->ops->query(c, sql, p, np, out, d);
}

int db_next(struct db_rows *r) { return r->ops->next(r); }
int db_col_type(struct db_rows *r, int col) { return r->ops->col_type(r, col); }
const char *db_col_text(struct db_rows *r, int col, size_t *len)
{
    return r->ops->col_text(r, col, len);
}
int64_t db_col_int(struct db_rows *r, int col) { return r->ops->col_int(r, col); }
double db_col_real(struct db_rows *r, int col) { return r->ops->col_real(r, col); }
void db_rows_close(struct db_rows *r)
{
    if (r)
        r->ops->rows_close(r);
}

int db_exec(struct db_conn *c, const char *sql, const struct db_param *p,
            int np, int64_t *changes, struct err_detail *d)
{
    return c->ops->exec(c, sql, p, np, changes, d);
}

int db_exec_script(struct db_conn *c, const char *sql, struct err_detail *d)
{
    return c->ops->exec_script(c, sql, d);
}

int db_begin(struct db_conn *c, int write, struct err_detail *d)
{
    int rc = c->ops->begin(c, write, d);
    if (!rc)
        c->in_tx = 1;
    return rc;
}

int db_commit(struct db_conn *c, struct err_detail *d)
{
    int rc = c->ops->commit(c, d);
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
    return c->ops->copy_end(c, d);
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
