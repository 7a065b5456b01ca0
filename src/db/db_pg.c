/*
 * PostgreSQL backend of db.h, over libpq. One PGconn per pooled connection;
 * statements are prepared once per connection (PQprepare with explicit
 * parameter types, named "s<n>") and cached by SQL text plus parameter
 * types, then run with PQexecPrepared and text-format parameters. A result
 * is read whole into a PGresult and db_next walks its rows.
 *
 * Bulk loads (db_copy_*) are COPY table (cols) FROM STDIN in text format,
 * sent in chunks of about 64 KiB.
 *
 * Transactions are READ COMMITTED (db.h says how writers lock). Text
 * holding a NUL byte, which PostgreSQL cannot store, is ERR_INVAL before
 * it is sent. SQLSTATEs become our codes here and only here: 23505
 * ERR_EXISTS, 23503 ERR_CONFLICT, other 23xxx ERR_INVAL, 40001/40P01
 * (serialization failure, deadlock) and 55P03 (lock timeout) ERR_BUSY,
 * 08xxx/57P01-03 and a lost connection ERR_UNAVAIL, anything else ERR_IO;
 * the server's message goes into the err_detail.
 *
 * DESIGN: a connection found broken (PQstatus != CONNECTION_OK) is reset on
 * its next use, outside a transaction only: inside one, the work done so
 * far is gone with the old session, so the call fails with ERR_UNAVAIL and
 * the caller's rollback ends the transaction; the reset comes with the next
 * use after that. Prepared statements live in the session, so a reset
 * forgets them all. Every session gets the settings the SQL relies on:
 * standard_conforming_strings (so '\' in ESCAPE '\' is one backslash, as
 * in SQLite), extra_float_digits (doubles come back exactly) and UTF-8.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "db/db_int.h"

#define STMT_CACHE 128
#define MAX_PARAMS 128
#define COPY_CHUNK (64 * 1024)

/* Type OIDs (catalog/pg_type.h, stable across versions). */
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

/* Serializes concurrent migrators (pg_advisory_lock); any fixed number. */
#define SCHEMA_LOCK_KEY "7236810421"

static const char session_setup[] =
    "SET standard_conforming_strings = on; SET extra_float_digits = 3";

struct stmt_slot {
    char *key;       /* SQL text, NUL, one type letter per parameter, NUL */
    size_t keylen;
    uint64_t hash;
    uint64_t used;   /* LRU clock; 0 = empty */
    unsigned id;     /* statement name "s<id>" */
};

struct pg_rows {
    struct db_rows base;
    PGresult *res;
    int row, nrows;
};

struct pg_conn {
    struct db_conn base;
    PGconn *h;
    int tx;                   /* a transaction is open on the server */
    int copying;              /* COPY FROM STDIN in progress */
    int copy_ncols;
    struct buf copy;          /* COPY data not yet sent */
    struct buf key;           /* scratch: lookup key */
    struct buf text;          /* scratch: text parameters, NUL-terminated */
    struct stmt_slot slots[STMT_CACHE];
    uint64_t clock;
    unsigned next_id;
    struct pg_rows rows;      /* the one open result set */
};

/* Copies a libpq message into d's style: one line, no trailing newline. */
static int fail(struct err_detail *d, int code, const char *what, const char *msg)
{
    char line[ERR_MSG_LEN];
    size_t n = 0;
    for (const char *s = msg ? msg : "?"; *s && n + 1 < sizeof(line); s++)
        line[n++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    return err_set(d, code, NULL, "%s%s", what, line);
}

static int map_state(const char *st)
{
    if (!st || strlen(st) != 5)
        return ERR_IO;
    if (strcmp(st, "23505") == 0)
        return ERR_EXISTS;
    if (strcmp(st, "23503") == 0)
        return ERR_CONFLICT;
    if (strncmp(st, "23", 2) == 0)
        return ERR_INVAL;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return ERR_BUSY;
    if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
        strcmp(st, "57P03") == 0)
        return ERR_UNAVAIL;
    return ERR_IO;
}

/* Maps a failed result (or NULL: out of memory or connection lost). */
static int map_error(struct pg_conn *c, const PGresult *res, struct err_detail *d)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int code = map_state(st);
    if (PQstatus(c->h) != CONNECTION_OK)
        code = ERR_UNAVAIL;
    if (!msg)
        msg = PQerrorMessage(c->h);
    return fail(d, code, code == ERR_UNAVAIL ? "PostgreSQL unavailable: " : "", msg);
}

static void forget_statements(struct pg_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        mem_free(c->slots[i].key);
        c->slots[i].key = NULL;
        c->slots[i].used = 0;
    }
}

/* Runs a command without parameters or rows (simple query protocol). */
static int simple(struct pg_conn *c, const char *sql, struct err_detail *d)
{
    PGresult *res = PQexec(c->h, sql);
    ExecStatusType s = PQresultStatus(res);
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? 0 : map_error(c, res, d);
    PQclear(res);
    return rc;
}

/* Libraries do not log: the server's notices ("already exists, skipping") are dropped. */
static void drop_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int setup_session(struct pg_conn *c, struct err_detail *d)
{
    PQsetNoticeProcessor(c->h, drop_notice, NULL);
    if (PQsetClientEncoding(c->h, "UTF8") != 0)
        return fail(d, ERR_UNAVAIL, "PostgreSQL: cannot set UTF8: ", PQerrorMessage(c->h));
    return simple(c, session_setup, d);
}

static void end_copy(struct pg_conn *c, const char *why)
{
    if (!c->copying)
        return;
    c->copying = 0;
    buf_reset(&c->copy);
    if (PQstatus(c->h) != CONNECTION_OK)
        return;
    (void)PQputCopyEnd(c->h, why);
    PGresult *res;
    while ((res = PQgetResult(c->h)))
        PQclear(res);
}

/*
 * Makes the connection usable before a command: ends an abandoned COPY,
 * and resets a broken session unless a transaction was open on it.
 */
static int ready(struct pg_conn *c, struct err_detail *d)
{
    if (c->copying)
        end_copy(c, "abandoned");
    if (PQstatus(c->h) == CONNECTION_OK)
        return 0;
    if (c->tx)
        return err_set(d, ERR_UNAVAIL, NULL,
                       "PostgreSQL unavailable: the connection was lost in a transaction");
    PQreset(c->h);
    forget_statements(c);
    if (PQstatus(c->h) != CONNECTION_OK)
        return fail(d, ERR_UNAVAIL, "PostgreSQL unavailable: ", PQerrorMessage(c->h));
    return setup_session(c, d);
}

static int pg_connect(const char *url, const struct db_opts *o, struct db_conn **out,
                      struct err_detail *d)
{
    (void)o;
    /* Earlier keywords are defaults that the URL may override. A short
       connect_timeout makes a request to an unreachable server fail (503) in
       about 2 s instead of hanging a worker thread. */
    static const char *const keys[] = {"connect_timeout", "fallback_application_name",
                                       "dbname", NULL};
    const char *vals[] = {"2", "modelcat", url, NULL};
    struct pg_conn *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return err_set(d, ERR_NOMEM, "db", "out of memory");
    int rc = 0;
    c->h = PQconnectdbParams(keys, vals, 1);
    if (!c->h)
        rc = err_set(d, ERR_NOMEM, "db", "out of memory");
    else if (PQstatus(c->h) != CONNECTION_OK)
        rc = fail(d, ERR_UNAVAIL, "cannot connect to PostgreSQL: ", PQerrorMessage(c->h));
    else
        rc = setup_session(c, d);
    if (rc) {
        PQfinish(c->h);
        mem_free(c);
        return rc;
    }
    buf_init(&c->copy, 16u << 20);
    buf_init(&c->key, 1u << 20);
    buf_init(&c->text, 64u << 20);
    c->base.ops = &db_pg_ops;
    c->rows.base.ops = &db_pg_ops;
    *out = &c->base;
    return 0;
}

static void pg_disconnect(struct db_conn *bc)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    PQclear(c->rows.res);
    forget_statements(c);
    PQfinish(c->h);
    buf_free(&c->copy);
    buf_free(&c->key);
    buf_free(&c->text);
    mem_free(c);
}

static Oid param_oid(enum db_type t)
{
    switch (t) {
    case DB_INT: return OID_INT8;
    case DB_REAL: return OID_FLOAT8;
    case DB_TEXT: return OID_TEXT;
    default: return 0; /* NULL: let the server infer the type */
    }
}

/*
 * Finds or prepares the statement for sql with these parameter types and
 * writes its name into name[16].
 */
static int prepare(struct pg_conn *c, const char *sql, const struct db_param *p, int np,
                   char name[16], struct err_detail *d)
{
    static const char letter[] = {[DB_NULL] = 'n', [DB_INT] = 'i', [DB_REAL] = 'r',
                                  [DB_TEXT] = 't'};
    Oid types[MAX_PARAMS];
    buf_reset(&c->key);
    buf_puts(&c->key, sql);
    buf_putc(&c->key, '\0');
    for (int i = 0; i < np; i++) {
        types[i] = param_oid(p[i].t);
        buf_putc(&c->key, letter[p[i].t <= DB_TEXT ? p[i].t : DB_NULL]);
    }
    if (buf_err(&c->key))
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < c->key.len; i++)
        h = (h ^ (unsigned char)c->key.p[i]) * 0x100000001b3ULL;
    struct stmt_slot *victim = &c->slots[0];
    for (int i = 0; i < STMT_CACHE; i++) {
        struct stmt_slot *s = &c->slots[i];
        if (s->used && s->hash == h && s->keylen == c->key.len &&
            memcmp(s->key, c->key.p, s->keylen) == 0) {
            s->used = ++c->clock;
            snprintf(name, 16, "s%u", s->id);
            return 0;
        }
        if (victim->used && (!s->used || s->used < victim->used))
            victim = s;
    }
    char *key = mem_malloc(c->key.len);
    if (!key)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    memcpy(key, c->key.p, c->key.len);
    if (victim->used) { /* our own name, no value: safe to paste */
        char sql_dealloc[32];
        snprintf(sql_dealloc, sizeof(sql_dealloc), "DEALLOCATE s%u", victim->id);
        (void)simple(c, sql_dealloc, NULL);
        mem_free(victim->key);
        victim->key = NULL;
        victim->used = 0;
    }
    unsigned id = ++c->next_id;
    snprintf(name, 16, "s%u", id);
    PGresult *res = PQprepare(c->h, name, sql, np, types);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : map_error(c, res, d);
    PQclear(res);
    if (rc) {
        mem_free(key);
        return rc;
    }
    victim->key = key;
    victim->keylen = c->key.len;
    victim->hash = h;
    victim->id = id;
    victim->used = ++c->clock;
    return 0;
}

/* Runs sql with p; *out gets the result (rows or a command's status). */
static int run(struct pg_conn *c, const char *sql, const struct db_param *p, int np,
               PGresult **out, struct err_detail *d)
{
    const char *vals[MAX_PARAMS];
    size_t off[MAX_PARAMS];
    char num[MAX_PARAMS][32];
    char name[16];
    int rc;
    if (np < 0 || np > MAX_PARAMS)
        return err_set(d, ERR_INVAL, NULL, "%d parameters (at most %d)", np, MAX_PARAMS);
    if ((rc = ready(c, d)) || (rc = prepare(c, sql, p, np, name, d)))
        return rc;
    buf_reset(&c->text);
    for (int i = 0; i < np; i++) {
        vals[i] = NULL;
        off[i] = (size_t)-1;
        switch (p[i].t) {
        case DB_INT:
            snprintf(num[i], sizeof(num[i]), "%lld", (long long)p[i].i);
            vals[i] = num[i];
            break;
        case DB_REAL:
            snprintf(num[i], sizeof(num[i]), "%.17g", p[i].d);
            vals[i] = num[i];
            break;
        case DB_TEXT:
            if (p[i].n && memchr(p[i].s, '\0', p[i].n))
                return err_set(d, ERR_INVAL, NULL,
                               "text parameter $%d contains a NUL byte", i + 1);
            off[i] = c->text.len;
            buf_append(&c->text, p[i].s ? p[i].s : "", p[i].n);
            buf_putc(&c->text, '\0');
            break;
        default:
            break;
        }
    }
    if (buf_err(&c->text))
        return err_set(d, ERR_TOOBIG, NULL, "parameters too large");
    for (int i = 0; i < np; i++) /* after the last append: the buffer may move */
        if (off[i] != (size_t)-1)
            vals[i] = c->text.p + off[i];
    PGresult *res = PQexecPrepared(c->h, name, np, vals, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        rc = map_error(c, res, d);
        PQclear(res);
        return rc;
    }
    *out = res;
    return 0;
}

static int pg_query(struct db_conn *bc, const char *sql, const struct db_param *p, int np,
                    struct db_rows **out, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    PGresult *res;
    int rc = run(c, sql, p, np, &res, d);
    if (rc)
        return rc;
    PQclear(c->rows.res); /* only one result set is open at a time */
    c->rows.res = res;
    c->rows.row = -1;
    c->rows.nrows = PQntuples(res);
    *out = &c->rows.base;
    return 0;
}

static int pg_next(struct db_rows *br)
{
    struct pg_rows *r = (struct pg_rows *)br;
    if (!r->res || r->row + 1 >= r->nrows)
        return 0;
    r->row++;
    return 1;
}

static int pg_col_type(struct db_rows *br, int col)
{
    struct pg_rows *r = (struct pg_rows *)br;
    if (PQgetisnull(r->res, r->row, col))
        return DB_NULL;
    switch (PQftype(r->res, col)) {
    case OID_INT8:
    case OID_INT2:
    case OID_INT4:
        return DB_INT;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return DB_REAL;
    default:
        return DB_TEXT;
    }
}

static const char *pg_col_text(struct db_rows *br, int col, size_t *len)
{
    struct pg_rows *r = (struct pg_rows *)br;
    if (PQgetisnull(r->res, r->row, col)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = (size_t)PQgetlength(r->res, r->row, col);
    return PQgetvalue(r->res, r->row, col);
}

static int64_t pg_col_int(struct db_rows *br, int col)
{
    struct pg_rows *r = (struct pg_rows *)br;
    if (PQgetisnull(r->res, r->row, col))
        return 0;
    return (int64_t)strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
}

static double pg_col_real(struct db_rows *br, int col)
{
    struct pg_rows *r = (struct pg_rows *)br;
    if (PQgetisnull(r->res, r->row, col))
        return 0;
    return strtod(PQgetvalue(r->res, r->row, col), NULL);
}

static void pg_rows_close(struct db_rows *br)
{
    struct pg_rows *r = (struct pg_rows *)br;
    PQclear(r->res);
    r->res = NULL;
    r->row = -1;
    r->nrows = 0;
}

static int pg_exec(struct db_conn *bc, const char *sql, const struct db_param *p, int np,
                   int64_t *changes, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    PGresult *res;
    int rc = run(c, sql, p, np, &res, d);
    if (rc)
        return rc;
    if (changes)
        *changes = (int64_t)strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int pg_exec_script(struct db_conn *bc, const char *sql, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    int rc = ready(c, d);
    return rc ? rc : simple(c, sql, d);
}

static int pg_begin(struct db_conn *bc, int write, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    /* Explicit, whatever the server's default: see db.h on the locking. */
    const char *sql = "BEGIN ISOLATION LEVEL READ COMMITTED";
    int rc = ready(c, d);
    (void)write;
    if (!rc && (rc = simple(c, sql, d)) == ERR_UNAVAIL) {
        /* Nothing was done yet: a session lost while idle gets one more try. */
        if (!(rc = ready(c, d)))
            rc = simple(c, sql, d);
    }
    if (!rc)
        c->tx = 1;
    return rc;
}

static int pg_commit(struct db_conn *bc, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    if (c->copying)
        return err_set(d, ERR_INVAL, NULL, "commit inside a bulk load");
    PGresult *res = PQexec(c->h, "COMMIT");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = map_error(c, res, d);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) /* "ROLLBACK": it had failed */
        rc = err_set(d, ERR_IO, NULL, "the transaction had failed and was rolled back");
    PQclear(res);
    if (!rc || PQstatus(c->h) != CONNECTION_OK)
        c->tx = 0;
    return rc;
}

static void pg_rollback(struct db_conn *bc)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    end_copy(c, "rolled back");
    if (c->rows.res) {
        PQclear(c->rows.res);
        c->rows.res = NULL;
    }
    if (c->tx && PQstatus(c->h) == CONNECTION_OK)
        (void)simple(c, "ROLLBACK", NULL);
    c->tx = 0;
}

/* --- bulk load --- */

static int copy_flush(struct pg_conn *c, struct err_detail *d)
{
    if (c->copy.len && PQputCopyData(c->h, c->copy.p, (int)c->copy.len) != 1)
        return map_error(c, NULL, d);
    buf_reset(&c->copy);
    return 0;
}

static int pg_copy_begin(struct db_conn *bc, const char *table, const char *const *cols,
                         int ncols, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    int rc = ready(c, d);
    if (rc)
        return rc;
    struct buf sql;
    buf_init(&sql, 64 * 1024);
    buf_puts(&sql, "COPY ");
    db__copy_target(&sql, table, cols, ncols);
    buf_puts(&sql, " FROM STDIN");
    if (buf_err(&sql)) {
        buf_free(&sql);
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    }
    PGresult *res = PQexec(c->h, sql.p);
    buf_free(&sql);
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        c->copying = 1;
        c->copy_ncols = ncols;
        buf_reset(&c->copy);
    } else {
        rc = map_error(c, res, d);
    }
    PQclear(res);
    return rc;
}

/* One value in COPY's text format: \N for NULL; \\ \t \n \r escaped. */
static int copy_value(struct buf *b, const struct db_param *p, struct err_detail *d)
{
    char num[32];
    switch (p->t) {
    case DB_INT:
        buf_i64(b, p->i);
        return 0;
    case DB_REAL:
        snprintf(num, sizeof(num), "%.17g", p->d);
        buf_puts(b, num);
        return 0;
    case DB_TEXT:
        for (size_t i = 0; i < p->n; i++) {
            char ch = p->s[i];
            switch (ch) {
            case '\0':
                return err_set(d, ERR_INVAL, NULL, "text value contains a NUL byte");
            case '\\': buf_puts(b, "\\\\"); break;
            case '\t': buf_puts(b, "\\t"); break;
            case '\n': buf_puts(b, "\\n"); break;
            case '\r': buf_puts(b, "\\r"); break;
            default: buf_putc(b, ch); break;
            }
        }
        return 0;
    default:
        buf_puts(b, "\\N");
        return 0;
    }
}

static int pg_copy_row(struct db_conn *bc, const struct db_param *p, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    if (!c->copying)
        return err_set(d, ERR_IO, NULL, "the bulk load was ended");
    size_t mark = c->copy.len;
    for (int i = 0; i < c->copy_ncols; i++) {
        if (i)
            buf_putc(&c->copy, '\t');
        int rc = copy_value(&c->copy, &p[i], d);
        if (rc) {
            c->copy.len = mark; /* the row is not sent */
            return rc;
        }
    }
    buf_putc(&c->copy, '\n');
    if (buf_err(&c->copy))
        return err_set(d, ERR_TOOBIG, NULL, "bulk load row too large");
    return c->copy.len >= COPY_CHUNK ? copy_flush(c, d) : 0;
}

static int pg_copy_end(struct db_conn *bc, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    if (!c->copying)
        return err_set(d, ERR_IO, NULL, "the bulk load was ended");
    int rc = copy_flush(c, d);
    if (rc) {
        end_copy(c, "send failed");
        return rc;
    }
    c->copying = 0;
    if (PQputCopyEnd(c->h, NULL) != 1)
        return map_error(c, NULL, d);
    PGresult *res;
    while ((res = PQgetResult(c->h))) {
        if (!rc && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = map_error(c, res, d);
        PQclear(res);
    }
    return rc;
}

/* --- migrations --- */

static int pg_schema_lock(struct db_conn *bc, int lock, struct err_detail *d)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    int rc = ready(c, d);
    if (rc)
        return rc;
    return simple(c, lock ? "SELECT pg_advisory_lock(" SCHEMA_LOCK_KEY ")"
                          : "SELECT pg_advisory_unlock(" SCHEMA_LOCK_KEY ")", d);
}

const struct db_ops db_pg_ops = {
    .name = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .query = pg_query,
    .next = pg_next,
    .col_type = pg_col_type,
    .col_text = pg_col_text,
    .col_int = pg_col_int,
    .col_real = pg_col_real,
    .rows_close = pg_rows_close,
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .copy_begin = pg_copy_begin,
    .copy_row = pg_copy_row,
    .copy_end = pg_copy_end,
    .schema_lock = pg_schema_lock,
    .retry_busy = 1,
};
