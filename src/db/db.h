/*
 * The store interface: one small API over SQLite (db_sqlite.c) and
 * PostgreSQL (db_pg.c), chosen by the URL scheme. SQL is written once with
 * $1..$N parameters and runs unchanged on every backend.
 *
 * A struct db is a pool of connections; a request takes one with
 * db_acquire, runs statements (optionally inside db_begin/db_commit) and
 * gives it back with db_release. A connection is used by one thread at a time.
 *
 * Errors: ERR_EXISTS (unique key), ERR_CONFLICT (foreign key), ERR_BUSY
 * (locked beyond the busy timeout, or on PostgreSQL a deadlock or
 * serialization failure; retryable, see db_retryable), ERR_INVAL (other
 * constraints; on PostgreSQL also text holding a NUL byte),
 * ERR_UNAVAIL (cannot connect, connection lost), ERR_IO (anything else),
 * with the backend's message in struct err_detail.
 */
#ifndef MC_DB_DB_H
#define MC_DB_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/breaker.h"
#include "core/err.h"

struct db;
struct db_conn;
struct db_rows;

enum db_type { DB_NULL, DB_INT, DB_REAL, DB_TEXT };

/* One bound parameter. Text is borrowed for the duration of the call. */
struct db_param {
    enum db_type t;
    int64_t i;
    double d;
    const char *s;
    size_t n;
};

static inline struct db_param db_p_null(void)
{ struct db_param p = {DB_NULL, 0, 0, NULL, 0}; return p; }
static inline struct db_param db_p_int(int64_t v)
{ struct db_param p = {DB_INT, v, 0, NULL, 0}; return p; }
static inline struct db_param db_p_real(double v)
{ struct db_param p = {DB_REAL, 0, v, NULL, 0}; return p; }
static inline struct db_param db_p_text(const char *s, size_t n)
{ struct db_param p = {DB_TEXT, 0, 0, s, n}; return p; }

struct db_opts {
    int max_conns;        /* pool size (>= 1) */
    int busy_timeout_ms;  /* wait on a locked store */
    int sync_full;        /* SQLite: synchronous=FULL instead of NORMAL */
};

/*
 * Opens the store named by url ("sqlite:PATH", or "postgres://..." /
 * "postgresql://..." passed to libpq as is) and checks that a first
 * connection works. Returns 0 and *out, or ERR_INVAL (unknown scheme),
 * ERR_UNAVAIL / ERR_IO with detail in d.
 */
int db_open(const char *url, const struct db_opts *o, struct db **out,
            struct err_detail *d) MC_WUR;
/* Closes every connection; all must have been released. */
void db_close(struct db *db);
/* Backend name: "sqlite" or "postgres". */
const char *db_backend(const struct db *db);

struct metrics;
/*
 * Registers the store's metrics in m and starts observing them, for the
 * primary and every replica (added before or after):
 *   modelcat_db_query_duration_seconds{backend,role} — db_query to its
 *     first row (or its error), db_exec, db_exec_script, db_begin,
 *     db_commit, db_copy_end;
 *   modelcat_db_errors_total{backend,role,code} — those calls and db_next
 *     returning an error, by error code ("unavail", "busy", "exists", ...).
 * role is "primary" or "replica". Call once, before the db is shared
 * between threads; m must outlive db. Returns 0 or ERR_NOMEM.
 */
int db_metrics(struct db *db, struct metrics *m) MC_WUR;

/*
 * Takes a connection to the primary from its pool, opening one if under
 * max_conns, else waits. Writes always go through db_acquire.
 */
int db_acquire(struct db *db, struct db_conn **out, struct err_detail *d) MC_WUR;
/*
 * Gives back a connection from db_acquire or db_acquire_read (rolling back
 * an open transaction). A replica's connection counts as a success for its
 * breaker; use db_release_result to report a failure.
 */
void db_release(struct db *db, struct db_conn *c);

/*
 * Read replicas (db_replica.c). Each replica has a pool of its own (the
 * primary's db_opts), a circuit breaker (core/breaker.h, default options)
 * and a lag check: at most once a second per replica, the connection being
 * handed out runs a query for the replay lag (0 when everything received
 * is replayed, so an idle primary does not look like lag). A failed check,
 * or a lag over max_lag_s (which keeps failing until a later check finds
 * it back under), counts as a breaker failure.
 *
 * db_add_replica registers a postgres:// replica (the primary must be
 * PostgreSQL too) without connecting, so a replica that is down at start
 * only opens its breaker. Call it before the db is shared between threads.
 * Returns 0, ERR_INVAL (not PostgreSQL), ERR_RANGE (more than 16) or
 * ERR_NOMEM.
 */
int db_add_replica(struct db *db, const char *url, double max_lag_s,
                   struct err_detail *d) MC_WUR;
/* Number of replicas added. */
int db_replicas(const struct db *db);

/*
 * Takes a connection for reads: from the next replica in turn (round
 * robin) whose breaker lets a call through and whose connection and lag
 * check succeed; a replica that fails here gets a breaker failure and the
 * next one is tried. With no replica usable it falls back to db_acquire.
 * Returns 0 and *out, or db_acquire's errors. A replica's data may be up to
 * max_lag_s old: read-your-writes needs db_acquire.
 */
int db_acquire_read(struct db *db, struct db_conn **out, int64_t now_ns,
                    struct err_detail *d) MC_WUR;
/*
 * Gives back c like db_release and reports rc, the outcome of its work, to
 * the replica's breaker: ERR_UNAVAIL and ERR_IO are failures, anything else
 * a success. On ERR_UNAVAIL (primary or replica) c and the pool's idle
 * connections are closed rather than kept, so no later caller trips over a
 * stale one after a server restart. Returns 1 when c came from a replica
 * and rc was a failure (the caller may run the read again on the
 * primary), else 0.
 */
int db_release_result(struct db *db, struct db_conn *c, int rc, int64_t now_ns);
/* 1 when c is a replica's connection. */
int db_conn_is_replica(const struct db_conn *c);

/* What /readyz shows of replica i (0 <= i < db_replicas). */
struct db_replica_info {
    char url[256];              /* password masked */
    struct breaker_info breaker;
    double lag_s;               /* last measured lag; < 0 when none yet */
    int64_t lag_checked_ns;     /* when it was measured (now_ns); 0: never */
    int lagging;                /* the last check found lag over the max */
};
void db_replica_info(struct db *db, int i, struct db_replica_info *out);

/*
 * Runs a statement that returns rows. On 0, *out is positioned before the
 * first row; call db_next until it returns 0, then db_rows_close. Only one
 * result set per connection may be open at a time.
 */
int db_query(struct db_conn *c, const char *sql, const struct db_param *p,
             int np, struct db_rows **out, struct err_detail *d) MC_WUR;
/* Advances: 1 when a row is available, 0 at the end, < 0 on error. */
int db_next(struct db_rows *r) MC_WUR;
int db_col_type(struct db_rows *r, int col);
/* Text of a column (NULL for SQL NULL); valid until the next db_next. */
const char *db_col_text(struct db_rows *r, int col, size_t *len);
int64_t db_col_int(struct db_rows *r, int col);
double db_col_real(struct db_rows *r, int col);
void db_rows_close(struct db_rows *r);

/* Runs a statement without rows; *changes (may be NULL) gets rows affected. */
int db_exec(struct db_conn *c, const char *sql, const struct db_param *p,
            int np, int64_t *changes, struct err_detail *d) MC_WUR;
/* Runs several ;-separated statements without parameters (migrations). */
int db_exec_script(struct db_conn *c, const char *sql, struct err_detail *d) MC_WUR;

/*
 * Transactions. write=1 on SQLite takes the write lock up front (no upgrade
 * deadlocks). PostgreSQL runs READ COMMITTED: each statement sees what was
 * committed before it, and a transaction that reads a row to decide how to
 * write it locks the row first (an UPDATE that changes nothing); unique
 * keys keep concurrent inserts apart.
 */
int db_begin(struct db_conn *c, int write, struct err_detail *d) MC_WUR;
int db_commit(struct db_conn *c, struct err_detail *d) MC_WUR;
/* Rolls back if a transaction is open; safe to call on any path. */
void db_rollback(struct db_conn *c);

/*
 * Bulk load: db_copy_begin opens a load of rows into table's cols (inside
 * the caller's transaction); db_copy_row adds one row of ncols parameters;
 * db_copy_end finishes it. PostgreSQL uses COPY FROM STDIN; SQLite a
 * prepared INSERT per row. On error the caller rolls back.
 *
 * table and cols are identifiers ([A-Za-z_][A-Za-z0-9_]*, ERR_INVAL
 * otherwise), never values; ncols is 1..DB_COPY_MAX_COLS. No other
 * statement may run on c between begin and end. A constraint violation
 * (ERR_EXISTS, ERR_CONFLICT, ERR_INVAL) comes from db_copy_row on SQLite
 * but only from db_copy_end on PostgreSQL, which sends rows in batches.
 */
#define DB_COPY_MAX_COLS 64
int db_copy_begin(struct db_conn *c, const char *table, const char *const *cols, int ncols,
                  struct err_detail *d) MC_WUR;
int db_copy_row(struct db_conn *c, const struct db_param *p, struct err_detail *d) MC_WUR;
int db_copy_end(struct db_conn *c, struct err_detail *d) MC_WUR;

/*
 * 1 when rc, returned inside a write transaction on c, is a conflict with a
 * concurrent transaction that the caller should answer by rolling back and
 * running the whole transaction again (PostgreSQL: serialization failure or
 * deadlock). 0 for every other rc, and always 0 on SQLite, whose busy
 * timeout has already waited.
 */
int db_retryable(const struct db_conn *c, int rc);

/*
 * Convenience: runs a query expected to return at most one row with one
 * integer column. Returns 0 with *v set, ERR_NOTFOUND with no row.
 */
int db_query_int(struct db_conn *c, const char *sql, const struct db_param *p,
                 int np, int64_t *v, struct err_detail *d) MC_WUR;

#endif
