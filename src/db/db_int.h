/*
 * Private to db/: the backend ops table and the base structs that every
 * backend's connection and result types start with.
 */
#ifndef MC_DB_DB_INT_H
#define MC_DB_DB_INT_H

#include <pthread.h>

#include "core/breaker.h"
#include "core/metrics.h"
#include "db/db.h"

struct db_ops {
    const char *name;
    int (*connect)(const char *target, const struct db_opts *o,
                   struct db_conn **out, struct err_detail *d);
    void (*disconnect)(struct db_conn *c);
    int (*query)(struct db_conn *c, const char *sql, const struct db_param *p,
                 int np, struct db_rows **out, struct err_detail *d);
    int (*next)(struct db_rows *r);
    int (*col_type)(struct db_rows *r, int col);
    const char *(*col_text)(struct db_rows *r, int col, size_t *len);
    int64_t (*col_int)(struct db_rows *r, int col);
    double (*col_real)(struct db_rows *r, int col);
    void (*rows_close)(struct db_rows *r);
    int (*exec)(struct db_conn *c, const char *sql, const struct db_param *p,
                int np, int64_t *changes, struct err_detail *d);
    int (*exec_script)(struct db_conn *c, const char *sql, struct err_detail *d);
    int (*begin)(struct db_conn *c, int write, struct err_detail *d);
    int (*commit)(struct db_conn *c, struct err_detail *d);
    void (*rollback)(struct db_conn *c);
    /* Bulk load (db.h); table and cols are checked identifiers. */
    int (*copy_begin)(struct db_conn *c, const char *table, const char *const *cols,
                      int ncols, struct err_detail *d);
    int (*copy_row)(struct db_conn *c, const struct db_param *p, struct err_detail *d);
    int (*copy_end)(struct db_conn *c, struct err_detail *d);
    /*
     * Serializes migrators across processes: lock=1 takes, lock=0 gives back
     * a session-wide lock, outside any transaction. NULL when the backend's
     * write transactions already exclude each other (SQLite).
     */
    int (*schema_lock)(struct db_conn *c, int lock, struct err_detail *d);
    /* ERR_BUSY means "run the transaction again" (db_retryable). */
    int retry_busy;
};

struct db_conn {
    const struct db_ops *ops;
    struct db_conn *next_free;  /* pool free list */
    struct db_pool *pool;       /* the pool it belongs to (set by db.c) */
    int64_t acquired_ns;        /* replica: now_ns of db_acquire_read */
    int in_tx;
    int in_copy;                /* between db_copy_begin and db_copy_end */
};

struct db_rows {
    const struct db_ops *ops;
    /* Set by db.c's db_query: the query's start, until its first row is read. */
    struct db_conn *conn;
    int64_t t0_ns;              /* 0: observed already, or metrics off */
    int64_t tr_ns;              /* span start (trace_now_ns); 0: not traced */
    char tr_op[16];             /* the statement's kind, e.g. "SELECT" */
};

/* A pool of connections to one server: the primary or one replica (db.c). */
struct db_pool {
    const struct db_ops *ops;
    char *target;               /* sqlite: the path; postgres: the whole URL */
    struct db_opts opts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn *free;       /* idle connections */
    int open;                   /* connections in existence */
    struct db_replica *replica; /* NULL for the primary's pool */
    /* Metrics (db_metrics); NULL when off. m_series: backend * 2 + role. */
    struct metrics_family *m_dur, *m_err;
    int m_series;
};

/* A read replica (db_replica.c): its pool, breaker and lag check. */
struct db_replica {
    struct db_pool pool;
    struct breaker br;
    char shown[256];            /* the URL, password masked */
    double max_lag_s;
    /* Under pool.mu: */
    int64_t lag_checked_ns;     /* when the last check began; 0: never */
    double lag_s;               /* last measured lag; < 0: none yet */
    int lagging;                /* the last check found lag_s > max_lag_s */
};

#define DB_MAX_REPLICAS 16

struct db {
    struct db_pool primary;
    struct db_replica *replicas[DB_MAX_REPLICAS];
    int nreplicas;
    unsigned rr;                /* round-robin counter (atomic) */
    struct metrics_family *m_dur, *m_err; /* db_metrics; NULL when off */
};

/* Points pool p's metrics at db's families (db.c). */
void db__pool_metrics(struct db *db, struct db_pool *p);

/* Pool primitives (db.c): init/fini a pool; take/give back a connection. */
int db__pool_init(struct db_pool *p, const struct db_ops *ops, const char *target,
                  const struct db_opts *o);
void db__pool_fini(struct db_pool *p);
int db__pool_get(struct db_pool *p, struct db_conn **out, struct err_detail *d);
void db__pool_put(struct db_pool *p, struct db_conn *c);
/*
 * Closes c instead of giving it back, and every idle connection with it:
 * after a lost server they are all broken, and the next caller should open
 * a fresh one rather than fail on each stale one in turn.
 */
void db__pool_drop(struct db_pool *p, struct db_conn *c);
/* Frees the replicas (db_replica.c); called by db_close. */
void db__replicas_free(struct db *db);

extern const struct db_ops db_sqlite_ops;
extern const struct db_ops db_pg_ops;

/*
 * Appends "table (col1, col2, ...)" to b, the target of a bulk load; the
 * names were checked by db_copy_begin.
 */
struct buf;
void db__copy_target(struct buf *b, const char *table, const char *const *cols, int ncols);
/* Takes (lock=1) or gives back (lock=0) the migration lock (see db_ops). */
int db__schema_lock(struct db_conn *c, int lock, struct err_detail *d);

#endif
