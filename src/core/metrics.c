/*
 * The metrics registry and its Prometheus text writer (see metrics.h).
 *
 * DESIGN: a family's cells are one array of atomics laid out
 * [stripe][series][cell], each stripe rounded up to whole cache lines, so
 * that two threads on different stripes never write the same line. A
 * thread takes a stripe on its first observation (round robin) and keeps
 * it; with at most METRICS_SHARDS server threads each has a stripe of its
 * own and its relaxed fetch-adds never contend. A counter has one cell per
 * series; a histogram has nbounds + 1 bucket cells (the last is +Inf) and
 * one sum cell, and its count is the sum of its buckets, so an
 * observation is two fetch-adds. A scrape reads the cells with relaxed
 * loads: a histogram's buckets and sum may be a few observations apart,
 * which Prometheus tolerates (every value only grows).
 *
 * Written here rather than taken from a library: Debian 12 packages no C
 * Prometheus client (libprom is not in it), and this is about 300 lines.
 */
#include "core/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

#define LINE_WORDS 8  /* uint64 cells per 64-byte cache line */

struct metrics_family {
    struct metrics_family_opts o;
    struct metrics_dim dims[METRICS_MAX_DIMS];
    int64_t bounds[METRICS_MAX_BOUNDS];
    int nseries;
    int per_series;              /* cells per series */
    size_t stripe;               /* cells per stripe, a multiple of LINE_WORDS */
    void *raw;                   /* the allocation; cells points into it, aligned */
    _Atomic uint64_t *cells;
    struct metrics_family *next;
};

struct collector {
    metrics_collect_fn fn;
    void *arg;
    struct collector *next;
};

struct metrics {
    struct metrics_family *first, **last;
    struct collector *cfirst, **clast;
};

static atomic_uint next_stripe;
static _Thread_local int my_stripe = -1;

/* This thread's stripe, taken on first use. */
static inline int stripe(void)
{
    if (my_stripe < 0)
        my_stripe = (int)(atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) %
                          METRICS_SHARDS);
    return my_stripe;
}

struct metrics *metrics_create(void)
{
    struct metrics *m = mem_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->last = &m->first;
    m->clast = &m->cfirst;
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    for (struct metrics_family *f = m->first, *n; f; f = n) {
        n = f->next;
        mem_free(f->raw);
        mem_free(f);
    }
    for (struct collector *c = m->cfirst, *n; c; c = n) {
        n = c->next;
        mem_free(c);
    }
    mem_free(m);
}

/* 0 when the options describe a family we can hold. */
static int check_opts(const struct metrics_family_opts *o)
{
    if (!o->name || !*o->name || !o->help || o->ndims < 0 || o->ndims > METRICS_MAX_DIMS)
        return -1;
    for (int i = 0; i < o->ndims; i++)
        if (!o->dims[i].name || o->dims[i].n < 1 || !o->dims[i].values)
            return -1;
    if (o->type == METRICS_HISTOGRAM) {
        if (o->nbounds < 1 || o->nbounds > METRICS_MAX_BOUNDS || !o->bounds)
            return -1;
        for (int i = 1; i < o->nbounds; i++)
            if (o->bounds[i] <= o->bounds[i - 1])
                return -1;
    }
    return 0;
}

struct metrics_family *metrics_family(struct metrics *m, const struct metrics_family_opts *o)
{
    if (check_opts(o))
        return NULL;
    struct metrics_family *f = mem_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->o = *o;
    if (f->o.scale == 0)
        f->o.scale = 1;
    f->nseries = 1;
    for (int i = 0; i < o->ndims; i++) {
        f->dims[i] = o->dims[i];
        f->nseries *= o->dims[i].n;
    }
    f->o.dims = f->dims;
    if (o->type == METRICS_HISTOGRAM) {
        memcpy(f->bounds, o->bounds, (size_t)o->nbounds * sizeof(int64_t));
        f->o.bounds = f->bounds;
        f->per_series = o->nbounds + 2;
    } else {
        f->per_series = 1;
    }
    size_t cells = (size_t)f->nseries * (size_t)f->per_series;
    f->stripe = (cells + LINE_WORDS - 1) / LINE_WORDS * LINE_WORDS;
    f->raw = mem_calloc(f->stripe * METRICS_SHARDS + LINE_WORDS, sizeof(uint64_t));
    if (!f->raw) {
        mem_free(f);
        return NULL;
    }
    uintptr_t p = (uintptr_t)f->raw, a = LINE_WORDS * sizeof(uint64_t);
    f->cells = (_Atomic uint64_t *)((p + a - 1) / a * a);
    *m->last = f;
    m->last = &f->next;
    return f;
}

int metrics_collector(struct metrics *m, metrics_collect_fn fn, void *arg)
{
    struct collector *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    c->fn = fn;
    c->arg = arg;
    *m->clast = c;
    m->clast = &c->next;
    return 0;
}

int metrics_index(const struct metrics_family *f, const int *idx)
{
    int s = 0;
    for (int i = 0; i < f->o.ndims; i++)
        s = s * f->dims[i].n + idx[i];
    return s;
}

void metrics_add(struct metrics_family *f, int s, uint64_t v)
{
    if (!f || s < 0 || s >= f->nseries)
        return;
    atomic_fetch_add_explicit(&f->cells[(size_t)stripe() * f->stripe + (size_t)s], v,
                              memory_order_relaxed);
}

void metrics_observe(struct metrics_family *f, int s, int64_t v)
{
    if (!f || s < 0 || s >= f->nseries)
        return;
    if (v < 0)
        v = 0;
    int b = 0, n = f->o.nbounds;
    while (b < n && v > f->bounds[b])
        b++;
    _Atomic uint64_t *c = &f->cells[(size_t)stripe() * f->stripe + (size_t)s * f->per_series];
    atomic_fetch_add_explicit(&c[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c[n + 1], (uint64_t)v, memory_order_relaxed);
}

/* Cell k of series s, summed over the stripes. */
static uint64_t cell_sum(const struct metrics_family *f, int s, int k)
{
    uint64_t t = 0;
    size_t off = (size_t)s * f->per_series + (size_t)k;
    for (int i = 0; i < METRICS_SHARDS; i++)
        t += atomic_load_explicit(&f->cells[(size_t)i * f->stripe + off], memory_order_relaxed);
    return t;
}

uint64_t metrics_value(const struct metrics_family *f, int s)
{
    if (!f || s < 0 || s >= f->nseries)
        return 0;
    if (f->o.type == METRICS_COUNTER)
        return cell_sum(f, s, 0);
    uint64_t n = 0;
    for (int k = 0; k <= f->o.nbounds; k++)
        n += cell_sum(f, s, k);
    return n;
}

/* --- exposition --- */

void metrics_write_label_value(struct buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(out, "\\\\");
        else if (*v == '"')
            buf_puts(out, "\\\"");
        else if (*v == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *v);
    }
}

/* HELP text escapes only \ and newline. */
static void write_help_text(struct buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(out, "\\\\");
        else if (*v == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *v);
    }
}

void metrics_write_value(struct buf *out, double v)
{
    if (isnan(v))
        buf_puts(out, "NaN");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        buf_i64(out, (int64_t)v);
    else {
        char t[40];
        snprintf(t, sizeof(t), "%.15g", v); /* the shortest that reads back, mostly */
        if (strtod(t, NULL) != v)
            snprintf(t, sizeof(t), "%.17g", v);
        buf_puts(out, t);
    }
}

void metrics_write_head(struct buf *out, const char *name, const char *help, const char *type)
{
    buf_printf(out, "# HELP %s ", name);
    write_help_text(out, help);
    buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

void metrics_write_sample(struct buf *out, const char *name, const char *const *labels,
                          int nlabels, double value)
{
    buf_puts(out, name);
    for (int i = 0; i < nlabels; i++) {
        buf_putc(out, i ? ',' : '{');
        buf_puts(out, labels[2 * i]);
        buf_puts(out, "=\"");
        metrics_write_label_value(out, labels[2 * i + 1]);
        buf_putc(out, '"');
    }
    if (nlabels)
        buf_putc(out, '}');
    buf_putc(out, ' ');
    metrics_write_value(out, value);
    buf_putc(out, '\n');
}

/* Fills lab with the (name, value) pairs of series s; returns the pair count. */
static int series_labels(const struct metrics_family *f, int s, const char **lab)
{
    for (int i = f->o.ndims - 1; i >= 0; i--) {
        lab[2 * i] = f->dims[i].name;
        lab[2 * i + 1] = f->dims[i].values[s % f->dims[i].n];
        s /= f->dims[i].n;
    }
    return f->o.ndims;
}

/* The _bucket, _sum and _count lines of histogram series s. */
static void write_hist(struct buf *out, const struct metrics_family *f, int s,
                       const char **lab, int n)
{
    char name[160], le[40];
    uint64_t cum = 0;
    snprintf(name, sizeof(name), "%s_bucket", f->o.name);
    lab[2 * n] = "le";
    lab[2 * n + 1] = le;
    for (int k = 0; k <= f->o.nbounds; k++) {
        cum += cell_sum(f, s, k);
        if (k < f->o.nbounds)
            snprintf(le, sizeof(le), "%.9g", (double)f->bounds[k] / f->o.scale);
        else
            snprintf(le, sizeof(le), "+Inf");
        metrics_write_sample(out, name, lab, n + 1, (double)cum);
    }
    snprintf(name, sizeof(name), "%s_sum", f->o.name);
    metrics_write_sample(out, name, lab, n,
                         (double)cell_sum(f, s, f->o.nbounds + 1) / f->o.scale);
    snprintf(name, sizeof(name), "%s_count", f->o.name);
    metrics_write_sample(out, name, lab, n, (double)cum);
}

static void write_family(struct buf *out, const struct metrics_family *f)
{
    const char *lab[2 * (METRICS_MAX_DIMS + 1)];
    int hist = f->o.type == METRICS_HISTOGRAM;
    metrics_write_head(out, f->o.name, f->o.help, hist ? "histogram" : "counter");
    for (int s = 0; s < f->nseries; s++) {
        if (f->o.sparse && metrics_value(f, s) == 0)
            continue;
        int n = series_labels(f, s, lab);
        if (hist)
            write_hist(out, f, s, lab, n);
        else
            metrics_write_sample(out, f->o.name, lab, n, (double)cell_sum(f, s, 0));
    }
}

int metrics_render(struct metrics *m, struct buf *out)
{
    for (const struct metrics_family *f = m->first; f; f = f->next)
        write_family(out, f);
    for (const struct collector *c = m->cfirst; c; c = c->next)
        c->fn(out, c->arg);
    return buf_err(out);
}
