/*
 * Private to db/: the backend ops table and the base structs that every
 * backend's connection and result types start with.
 */
#ifndef MC_DB_DB_INT_H
#define MC_DB_DB_INT_H

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
    int in_tx;
    int in_copy;                /* between db_copy_begin and db_copy_end */
};

struct db_rows {
    const struct db_ops *ops;
};

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
