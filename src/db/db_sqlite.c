/*
 * SQLite backend of db.h. One sqlite3 handle per pooled connection, WAL
 * journal (readers never block the writer), foreign keys on, and a small
 * per-connection cache of prepared statements keyed by SQL text so the hot
 * read routes never re-parse SQL.
 *
 * Parameters: SQL is written with PostgreSQL's $1..$N. SQLite reads "$1" as
 * a *named* parameter whose index depends on the order of first use, so the
 * text is rewritten once, at prepare time, to ?1..?N (numbered), which binds
 * by number exactly as PostgreSQL does.
 *
 * Bulk loads (db_copy_*) are a prepared INSERT run once per row: inside the
 * caller's transaction that is as fast as SQLite inserts get.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "db/db_int.h"

#define STMT_CACHE 64

struct stmt_slot {
    char *sql;           /* original SQL text (key) */
    uint64_t hash;
    sqlite3_stmt *st;
    uint64_t used;       /* LRU clock */
};

struct sq_rows {
    struct db_rows base;
    sqlite3_stmt *st;
    struct sq_conn *conn;
};

struct sq_conn {
    struct db_conn base;
    sqlite3 *h;
    struct stmt_slot slots[STMT_CACHE];
    uint64_t clock;
    struct sq_rows rows;  /* the one open result set */
    char *copy_sql;       /* INSERT of the open bulk load, or NULL */
    int copy_n;           /* its parameters */
};

static int map_rc(sqlite3 *h, int rc, struct err_detail *d)
{
    const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
            return err_set(d, ERR_EXISTS, NULL, "%s", msg);
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return err_set(d, ERR_CONFLICT, NULL, "%s", msg);
        return err_set(d, ERR_INVAL, NULL, "%s", msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return err_set(d, ERR_BUSY, NULL, "store busy: %s", msg);
    case SQLITE_NOMEM:
        return err_set(d, ERR_NOMEM, NULL, "%s", msg);
    case SQLITE_CANTOPEN:
        return err_set(d, ERR_UNAVAIL, NULL, "%s", msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return err_set(d, ERR_CORRUPT, NULL, "%s", msg);
    default:
        return err_set(d, ERR_IO, NULL, "%s", msg);
    }
}

/* $N -> ?N outside quoted strings and identifiers. */
static int rewrite_params(const char *sql, struct buf *out)
{
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        char c = *p;
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '$' && p[1] >= '0' && p[1] <= '9') {
            c = '?';
        }
        buf_putc(out, c);
    }
    return buf_err(out);
}

static int sq_connect(const char *path, const struct db_opts *o,
                      struct db_conn **out, struct err_detail *d)
{
    struct sq_conn *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    int rc = sqlite3_open_v2(path, &c->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = err_set(d, ERR_UNAVAIL, "db", "cannot open %s: %s", path,
                     c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_timeout(c->h, o->busy_timeout_ms);
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
             " PRAGMA mmap_size=268435456; PRAGMA cache_size=-16384;",
             o->sync_full ? "FULL" : "NORMAL");
    char *emsg = NULL;
    rc = sqlite3_exec(c->h, pragmas, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        rc = err_set(d, rc == SQLITE_BUSY ? ERR_BUSY : ERR_UNAVAIL, "db",
                     "cannot configure %s: %s", path, emsg ? emsg : "?");
        sqlite3_free(emsg);
        goto fail;
    }
    c->base.ops = &db_sqlite_ops;
    c->rows.base.ops = &db_sqlite_ops;
    c->rows.conn = c;
    *out = &c->base;
    return 0;
fail:
    sqlite3_close_v2(c->h);
    mem_free(c);
    return rc;
}

static void sq_disconnect(struct db_conn *bc)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(c->slots[i].st);
        mem_free(c->slots[i].sql);
    }
    mem_free(c->copy_sql);
    sqlite3_close_v2(c->h);
    mem_free(c);
}

/* Finds or prepares the statement for sql; it comes back reset and unbound. */
static int prepare(struct sq_conn *c, const char *sql, sqlite3_stmt **out,
                   struct err_detail *d)
{
    size_t n = strlen(sql);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)sql[i]) * 0x100000001b3ULL;
    struct stmt_slot *victim = &c->slots[0];
    for (int i = 0; i < STMT_CACHE; i++) {
        struct stmt_slot *s = &c->slots[i];
        if (s->st && s->hash == h && strcmp(s->sql, sql) == 0) {
            s->used = ++c->clock;
            *out = s->st;
            return 0;
        }
        if (!s->st || s->used < victim->used)
            victim = s;
        if (!s->st)
            break;
    }
    struct buf b;
    buf_init(&b, n * 2 + 16);
    int rc = rewrite_params(sql, &b);
    sqlite3_stmt *st = NULL;
    char *key = NULL;
    if (rc) {
        rc = err_set(d, rc, NULL, "out of memory");
        goto out;
    }
    rc = sqlite3_prepare_v3(c->h, b.p, (int)b.len, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = map_rc(c->h, rc, d);
        goto out;
    }
    if (!(key = mem_strndup(sql, n))) {
        sqlite3_finalize(st);
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    sqlite3_finalize(victim->st);
    mem_free(victim->sql);
    victim->sql = key;
    victim->hash = h;
    victim->st = st;
    victim->used = ++c->clock;
    *out = st;
out:
    buf_free(&b);
    return rc;
}

static int bind(struct sq_conn *c, sqlite3_stmt *st, const struct db_param *p,
                int np, struct err_detail *d)
{
    for (int i = 0; i < np; i++) {
        int rc;
        switch (p[i].t) {
        case DB_INT: rc = sqlite3_bind_int64(st, i + 1, p[i].i); break;
        case DB_REAL: rc = sqlite3_bind_double(st, i + 1, p[i].d); break;
        case DB_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].s ? p[i].s : "", (int)p[i].n,
                                   SQLITE_STATIC);
            break;
        default: rc = sqlite3_bind_null(st, i + 1); break;
        }
        if (rc != SQLITE_OK)
            return map_rc(c->h, rc, d);
    }
    return 0;
}

static int sq_query(struct db_conn *bc, const char *sql, const struct db_param *p,
                    int np, struct db_rows **out, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    sqlite3_stmt *st;
    int rc = prepare(c, sql, &st, d);
    if (rc)
        return rc;
    if ((rc = bind(c, st, p, np, d))) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    c->rows.st = st;
    *out = &c->rows.base;
    return 0;
}

static int sq_next(struct db_rows *br)
{
    struct sq_rows *r = (struct sq_rows *)br;
    int rc = sqlite3_step(r->st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return map_rc(r->conn->h, rc, NULL);
}

static int sq_col_type(struct db_rows *br, int col)
{
    switch (sqlite3_column_type(((struct sq_rows *)br)->st, col)) {
    case SQLITE_INTEGER: return DB_INT;
    case SQLITE_FLOAT: return DB_REAL;
    case SQLITE_NULL: return DB_NULL;
    default: return DB_TEXT;
    }
}

static const char *sq_col_text(struct db_rows *br, int col, size_t *len)
{
    sqlite3_stmt *st = ((struct sq_rows *)br)->st;
    const char *s = (const char *)sqlite3_column_text(st, col);
    if (len)
        *len = s ? (size_t)sqlite3_column_bytes(st, col) : 0;
    return s;
}

static int64_t sq_col_int(struct db_rows *br, int col)
{
    return sqlite3_column_int64(((struct sq_rows *)br)->st, col);
}

static double sq_col_real(struct db_rows *br, int col)
{
    return sqlite3_column_double(((struct sq_rows *)br)->st, col);
}

static void sq_rows_close(struct db_rows *br)
{
    struct sq_rows *r = (struct sq_rows *)br;
    if (r->st) {
        sqlite3_reset(r->st);
        sqlite3_clear_bindings(r->st);
        r->st = NULL;
    }
}

static int sq_exec(struct db_conn *bc, const char *sql, const struct db_param *p,
                   int np, int64_t *changes, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    sqlite3_stmt *st;
    int rc = prepare(c, sql, &st, d);
    if (rc)
        return rc;
    if (!(rc = bind(c, st, p, np, d))) {
        int s = sqlite3_step(st);
        if (s == SQLITE_DONE || s == SQLITE_ROW) {
            if (changes)
                *changes = sqlite3_changes64(c->h);
        } else {
            rc = map_rc(c->h, s, d);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_exec_script(struct db_conn *bc, const char *sql, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    char *emsg = NULL;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        rc = map_rc(c->h, rc, d);
        sqlite3_free(emsg);
    }
    return rc;
}

static int simple(struct sq_conn *c, const char *sql, struct err_detail *d)
{
    return sq_exec(&c->base, sql, NULL, 0, NULL, d);
}

static int sq_begin(struct db_conn *bc, int write, struct err_detail *d)
{
    return simple((struct sq_conn *)bc, write ? "BEGIN IMMEDIATE" : "BEGIN", d);
}

static int sq_commit(struct db_conn *bc, struct err_detail *d)
{
    return simple((struct sq_conn *)bc, "COMMIT", d);
}

static void sq_rollback(struct db_conn *bc)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    mem_free(c->copy_sql);
    c->copy_sql = NULL;
    if (!sqlite3_get_autocommit(c->h))
        (void)simple(c, "ROLLBACK", NULL);
}

/* Builds "INSERT INTO table (cols) VALUES ($1, ..., $n)" once per load. */
static int sq_copy_begin(struct db_conn *bc, const char *table, const char *const *cols,
                         int ncols, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_puts(&b, "INSERT INTO ");
    db__copy_target(&b, table, cols, ncols);
    buf_puts(&b, " VALUES (");
    for (int i = 0; i < ncols; i++)
        buf_printf(&b, "%s$%d", i ? ", " : "", i + 1);
    buf_putc(&b, ')');
    if (buf_err(&b)) {
        buf_free(&b);
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    }
    mem_free(c->copy_sql);
    c->copy_sql = buf_steal(&b, NULL);
    c->copy_n = ncols;
    return 0;
}

static int sq_copy_row(struct db_conn *bc, const struct db_param *p, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    return sq_exec(bc, c->copy_sql, p, c->copy_n, NULL, d);
}

static int sq_copy_end(struct db_conn *bc, struct err_detail *d)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    (void)d;
    mem_free(c->copy_sql);
    c->copy_sql = NULL;
    return 0;
}

const struct db_ops db_sqlite_ops = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .query = sq_query,
    .next = sq_next,
    .col_type = sq_col_type,
    .col_text = sq_col_text,
    .col_int = sq_col_int,
    .col_real = sq_col_real,
    .rows_close = sq_rows_close,
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .copy_begin = sq_copy_begin,
    .copy_row = sq_copy_row,
    .copy_end = sq_copy_end,
};
