/*
 * A small metrics registry with a Prometheus text exposition (format
 * 0.0.4) writer.
 *
 * A family (one metric name) is registered at start-up with a fixed set of
 * label dimensions, each with its list of values: its series are every
 * combination, numbered in mixed radix (the last dimension varies fastest;
 * metrics_index computes the number). Observing is lock-free and allocates
 * nothing: each series' cells are relaxed atomics, striped over
 * METRICS_SHARDS blocks so that threads mostly touch cache lines of their
 * own; a scrape adds the stripes up. Counters hold integers; a histogram
 * holds one cell per bucket and one for the sum, all in integer units (e.g.
 * nanoseconds) that the writer divides by the family's scale (1e9 gives
 * seconds).
 *
 * Gauges that other components know (cache sizes, breaker states) are not
 * stored here: collectors, called at scrape time, write them with
 * metrics_write_head and metrics_write_sample.
 *
 * Registration (metrics_family, metrics_collector) is not thread-safe:
 * do it before the threads that observe or scrape start. metrics_add,
 * metrics_observe and metrics_render are thread-safe.
 */
#ifndef MC_CORE_METRICS_H
#define MC_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define METRICS_SHARDS 8
#define METRICS_MAX_DIMS 4
#define METRICS_MAX_BOUNDS 32

enum metrics_type { METRICS_COUNTER, METRICS_HISTOGRAM };

/* One label: its name and the values it takes (borrowed; must outlive the registry). */
struct metrics_dim {
    const char *name;
    int n;
    const char *const *values;
};

struct metrics_family_opts {
    const char *name;                /* the full name, e.g. "modelcat_http_requests_total" */
    const char *help;
    enum metrics_type type;
    int ndims;                       /* 0..METRICS_MAX_DIMS */
    const struct metrics_dim *dims;  /* copied */
    const int64_t *bounds;           /* histogram: upper bounds, increasing, in units */
    int nbounds;                     /* 1..METRICS_MAX_BOUNDS; +Inf is implicit */
    double scale;                    /* exposed value = units / scale; 0 means 1 */
    int sparse;                      /* omit series that have seen nothing */
};

struct metrics;
struct metrics_family;

/*
 * A collector writes its own families into out at scrape time (HELP/TYPE
 * lines first, see metrics_write_head). It must not block for long.
 */
typedef void (*metrics_collect_fn)(struct buf *out, void *arg);

/* A new, empty registry; NULL when out of memory. Free with metrics_destroy. */
struct metrics *metrics_create(void);
/* Frees m, its families and collectors. NULL is a no-op. */
void metrics_destroy(struct metrics *m);

/*
 * Registers a family. Returns it (owned by m), or NULL when an option is
 * out of range (no name, too many dimensions, a dimension without values,
 * bounds not increasing) or memory runs out.
 */
struct metrics_family *metrics_family(struct metrics *m, const struct metrics_family_opts *o);
/* Adds a collector (metrics_render calls them after the families, in order). 0 or ERR_NOMEM. */
int metrics_collector(struct metrics *m, metrics_collect_fn fn, void *arg);

/* The series number of the label values idx[0..ndims) (each within its dimension). */
int metrics_index(const struct metrics_family *f, const int *idx);
/* Counter: adds v to series s. A NULL family is a no-op. */
void metrics_add(struct metrics_family *f, int s, uint64_t v);
/* Histogram: records one value (units; negative counts as 0) in series s. NULL: no-op. */
void metrics_observe(struct metrics_family *f, int s, int64_t v);
/* Counter value, or histogram count, of series s summed over the stripes (tests). */
uint64_t metrics_value(const struct metrics_family *f, int s);

/* Writes every family, then every collector's output, to out. Returns buf_err(out). */
int metrics_render(struct metrics *m, struct buf *out);

/* --- writer helpers, for collectors --- */

/* "# HELP name help" (escaped) and "# TYPE name type" lines. */
void metrics_write_head(struct buf *out, const char *name, const char *help, const char *type);
/*
 * One sample line: name{k="v",...} value. labels holds nlabels (key, value)
 * pairs, flattened; values are escaped (\\, \", \n).
 */
void metrics_write_sample(struct buf *out, const char *name, const char *const *labels,
                          int nlabels, double value);
/* A label value with \, " and newline escaped (without the quotes). */
void metrics_write_label_value(struct buf *out, const char *v);
/* A sample value: integers exactly, else %.15g (%.17g when that does not read back);
   NaN, +Inf, -Inf. */
void metrics_write_value(struct buf *out, double v);

#endif
