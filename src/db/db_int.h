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
};

struct db_conn {
    const struct db_ops *ops;
    struct db_conn *next_free;  /* pool free list */
    int in_tx;
};

struct db_rows {
    const struct db_ops *ops;
};

extern const struct db_ops db_sqlite_ops;

#endif
