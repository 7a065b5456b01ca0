/*
 * Private to catalog/: the declarative description of each resource (its
 * fields, in column order) and the generic machinery driven by it:
 * validation of a JSON body into bound parameters, SQL text built once at
 * start-up from the field list, rendering of rows as JSON, ETags, and
 * keyset-paginated lists. A resource file (models.c, hardware.c, runs.c)
 * declares its fields and adds only what is specific to it.
 */
#ifndef MC_CATALOG_RECORD_H
#define MC_CATALOG_RECORD_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jw.h"
#include "db/db.h"

enum fld_kind {
    FK_TEXT,  /* string */
    FK_INT,   /* 64-bit integer */
    FK_REAL,  /* double */
    FK_TAGS,  /* array of tag strings, stored as canonical JSON text */
    FK_TIME,  /* server-set, ms since epoch, rendered RFC 3339 */
    FK_DATE,  /* "YYYY-MM-DD" string */
};

enum {
    FF_REQ = 1 << 0,     /* must be present and non-null on input */
    FF_SERVER = 1 << 1,  /* set by the server; ignored on input */
    FF_XMIN = 1 << 2,    /* min is exclusive */
    FF_DEF = 1 << 3,     /* absent/null takes `def` */
    FF_NOCOL = 1 << 4,   /* input only, not a column (handled by the resource) */
    FF_KEY = 1 << 5,     /* the primary key: immutable */
    FF_HIDDEN = 1 << 6,  /* a column not rendered */
};

/* Returns NULL when s (n bytes, valid UTF-8) is acceptable, else a reason. */
typedef const char *(*fld_check_fn)(const char *s, size_t n);

struct fld {
    const char *name;    /* JSON member and column name */
    uint8_t kind;
    uint8_t flags;
    double min, max;     /* numeric bounds; for text: length bounds in chars */
    fld_check_fn check;  /* extra rule for text, or NULL */
    double def;          /* default for FF_DEF */
};

/* Fields of one resource at most (runs has the most: 65). */
#define REC_MAX 96

struct rec;

struct resource {
    const char *name;      /* "model", for messages */
    const char *table;     /* "models" */
    const char *alias;     /* "m" */
    const struct fld *f;
    int nf;
    const char *from;      /* "models m", or a join */
    const char *extra;     /* more columns after the fields ("h.spot, ..."), or NULL */
    int nextra;            /* how many columns `extra` names */
    /* Writes members after the fields from the extra columns, or NULL. */
    void (*render_extra)(struct db_rows *row, int first_col, struct jw *w);
    /* Runs inside the write transaction after an insert or update, or NULL. */
    int (*after_write)(struct db_conn *c, const struct rec *rec, struct err_detail *d);
    const char *refs_sql;     /* counts rows referencing $1, or NULL */
    /* Statements deleting the rows that reference $1, in order, NULL-ended;
       or NULL. */
    const char *const *cascade_sql;
    /* Statements run before the row $1 itself is deleted (its own children
       that no foreign key removes, such as its time series), NULL-ended;
       or NULL. */
    const char *const *children_sql;
    /* Built by rec_init from the fields: */
    char select[2048];     /* "m.id, m.name, ..." (columns of f, in order) */
    char insert[2048];     /* INSERT ... VALUES ($1..$n) */
    char update[2048];     /* UPDATE ... SET col=$k ... WHERE id=$1 */
    int ncols;             /* columns selected */
    int ins_idx[REC_MAX];  /* field index of each insert parameter */
    int upd_idx[REC_MAX];  /* field index of each update parameter ($1 = key) */
    int nupd;
};

/* A validated body: one parameter per field, in field order. */
struct rec {
    struct db_param v[REC_MAX];
    struct buf tags;               /* canonical JSON of the FK_TAGS field */
    const char *tag[32];           /* the tags, borrowed from the JSON body */
    size_t tag_len[32];
    int ntags;
};

/* Builds the SQL of r. Call once per resource before use. */
void rec_init(struct resource *r);
/*
 * Copies the values of rec named by idx[0..n-1] (ins_idx or upd_idx) into
 * out, the parameter array of the insert or update statement; returns n.
 */
int rec_params(const int *idx, int n, const struct rec *rec, struct db_param *out);
/* Index of field `name` in r, or -1. */
int rec_field(const struct resource *r, const char *name);

/*
 * Validates obj against r's fields into out (which the caller must release
 * with rec_free, also on error). Unknown members are ERR_INVAL; server-set
 * members are ignored. Returns 0 or ERR_INVAL/ERR_RANGE with field and
 * message in d.
 */
int rec_validate(const struct resource *r, json_t *obj, struct rec *out,
                 struct err_detail *d) MC_WUR;
void rec_free(struct rec *rec);

/*
 * Writes the columns of r from row (columns 0..r->nf-1 in field order) as
 * JSON members into w (inside an open object).
 */
void rec_render_fields(const struct resource *r, struct db_rows *row, struct jw *w);

/* Writes one item as a JSON object: fields, then render_extra. */
void rec_render(const struct resource *r, struct db_rows *row, struct jw *w);
/* rec_render as a list_run callback; arg is the struct resource. */
void rec_render_cb(struct db_rows *row, struct jw *w, void *arg);

/* Strong ETag ("\"<16 hex>\"") of a representation, into out[21]. */
void rec_etag(const char *json, size_t n, char out[21]);

/* Sort order of a list: expression, its kind and direction. */
struct list_sort {
    const char *name;   /* as in ?sort=, without '-' */
    const char *expr;   /* SQL expression over the resource's alias */
    uint8_t kind;       /* FK_TEXT, FK_INT or FK_REAL */
};

/* A list query under construction. */
struct list_q {
    struct buf sql;
    struct db_param p[48];
    int np;
};

void listq_init(struct list_q *q);
void listq_free(struct list_q *q);
/* Appends a parameter and returns its $ number (0 when full). */
int listq_param(struct list_q *q, struct db_param p);
/* Appends " AND <fmt with %d replaced by the parameter's number>". */
void listq_where(struct list_q *q, const char *cond_fmt, struct db_param p);

struct page_req {
    int limit;            /* 1..200 */
    const char *cursor;   /* or NULL */
    const char *sort;     /* e.g. "-name"; NULL for the default */
};

/*
 * Runs a keyset-paginated list: q holds "SELECT <cols> FROM ... WHERE 1=1"
 * plus filters; this appends the sort key, the cursor condition, ORDER BY
 * and LIMIT, runs it, and writes {"items":[...],"next_cursor":...} to out,
 * each item by render(row, w). `sorts` ends with a NULL name; `def_sort` is
 * used when pg->sort is NULL. id_expr is the unique tie-breaker ("m.id"),
 * selected as column 0; ncols is the number of columns q selects (the sort
 * key is appended after them).
 * Returns 0, or ERR_INVAL (field "sort"), ERR_PARSE (bad cursor, field
 * "cursor") or a store error.
 */
int list_run(struct db_conn *c, struct list_q *q, const char *resource,
             const struct list_sort *sorts, const char *def_sort,
             const char *id_expr, int ncols, const struct page_req *pg,
             void (*render)(struct db_rows *row, struct jw *w, void *arg),
             void *arg, struct buf *out, struct err_detail *d) MC_WUR;

/* Field checkers shared by resources. */
const char *chk_model_id(const char *s, size_t n);
const char *chk_slug(const char *s, size_t n);
const char *chk_url(const char *s, size_t n);
const char *chk_line(const char *s, size_t n);
const char *chk_printable(const char *s, size_t n);

#endif
