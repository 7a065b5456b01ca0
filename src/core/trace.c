/*
 * Tracing core (see trace.h): the traceparent parser and writer, ids, the
 * thread's current span, and the bounded span queue.
 *
 * DESIGN: the queue is a ring of fixed-size span records behind one mutex.
 * A producer holds it for one record's copy (a few hundred bytes), never
 * waits for space (a full ring drops the span and counts it), and never
 * allocates; the exporter takes records out in batches. The thread's
 * current span is a thread-local pointer, so db and cache wrappers find
 * their parent without any change to their signatures, and when tracing is
 * off (or the request is not sampled) that pointer is NULL: one branch.
 * Ids come from a per-thread xorshift generator seeded by getrandom(2);
 * they need to be unique, not secret.
 */
#include "core/trace.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/mem.h"
#include "core/metrics.h"
#include "core/rng.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct trace_span *ring;
    size_t cap, head, len;       /* head: oldest */
    double ratio;
    struct metrics_family *m_dropped, *m_exported, *m_failed;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static atomic_int on;
static _Thread_local struct trace_span *cur;
static _Thread_local struct rng tl_rng;
static _Thread_local int tl_seeded;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes 2n lowercase hex digits at s into id; 0, or -1 when malformed or all zero. */
static int unhex_nonzero(const char *s, uint8_t *id, size_t n)
{
    uint8_t any = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
        any |= id[i];
    }
    return any ? 0 : -1;
}

int trace_parse_parent(const char *s, size_t n, struct trace_ctx *out)
{
    struct trace_ctx c;
    uint8_t flags[1];
    if (!s || n != TRACE_PARENT_LEN || s[0] != '0' || s[1] != '0' || s[2] != '-' ||
        s[35] != '-' || s[52] != '-')
        return ERR_PARSE;
    if (unhex_nonzero(s + 3, c.trace_id, 16) || unhex_nonzero(s + 36, c.span_id, 8))
        return ERR_PARSE;
    int hi = hexval(s[53]), lo = hexval(s[54]);
    if (hi < 0 || lo < 0)
        return ERR_PARSE;
    flags[0] = (uint8_t)(hi << 4 | lo);
    c.flags = flags[0];
    *out = c;
    return 0;
}

void trace_hex(const uint8_t *id, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * n] = '\0';
}

void trace_format_parent(const struct trace_ctx *c, char out[TRACE_PARENT_LEN + 1])
{
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    trace_hex(c->trace_id, 16, out + 3);
    out[35] = '-';
    trace_hex(c->span_id, 8, out + 36);
    out[52] = '-';
    trace_hex(&c->flags, 1, out + 53);
}

int trace_state_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= TRACE_STATE_MAX || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return 0;
    return 1;
}

void trace_random_id(uint8_t *id, size_t n)
{
    if (!tl_seeded) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seed;
        rng_seed(&tl_rng, seed);
        tl_seeded = 1;
    }
    uint8_t any = 0;
    while (!any) {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = rng_next(&tl_rng);
            for (size_t k = 0; k < 8 && i + k < n; k++) {
                id[i + k] = (uint8_t)(v >> (8 * k));
                any |= id[i + k];
            }
        }
    }
}

int64_t trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int trace_init(size_t capacity, double sample_ratio)
{
    if (capacity < 1 || !(sample_ratio >= 0 && sample_ratio <= 1))
        return ERR_INVAL;
    struct trace_span *ring = mem_calloc(capacity, sizeof(*ring));
    if (!ring)
        return ERR_NOMEM;
    pthread_mutex_lock(&q.mu);
    mem_free(q.ring);
    q.ring = ring;
    q.cap = capacity;
    q.head = q.len = 0;
    q.ratio = sample_ratio;
    pthread_mutex_unlock(&q.mu);
    atomic_store(&on, 1);
    return 0;
}

void trace_fini(void)
{
    atomic_store(&on, 0);
    pthread_mutex_lock(&q.mu);
    mem_free(q.ring);
    q.ring = NULL;
    q.cap = q.head = q.len = 0;
    q.m_dropped = q.m_exported = q.m_failed = NULL;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
}

int trace_enabled(void)
{
    return atomic_load_explicit(&on, memory_order_relaxed);
}

int trace_metrics(struct metrics *m)
{
    struct metrics_family_opts o = {.type = METRICS_COUNTER};
    o.name = "modelcat_trace_spans_dropped_total";
    o.help = "Spans dropped because the export queue was full.";
    q.m_dropped = metrics_family(m, &o);
    o.name = "modelcat_trace_spans_exported_total";
    o.help = "Spans the OTLP collector accepted.";
    q.m_exported = metrics_family(m, &o);
    o.name = "modelcat_trace_spans_failed_total";
    o.help = "Spans lost because their batch could not be exported.";
    q.m_failed = metrics_family(m, &o);
    return q.m_dropped && q.m_exported && q.m_failed ? 0 : ERR_NOMEM;
}

void trace_count_export(uint64_t n, int ok)
{
    metrics_add(ok ? q.m_exported : q.m_failed, 0, n);
}

/* 1 when a trace that starts here is sampled. */
static int sample_new(void)
{
    if (q.ratio >= 1)
        return 1;
    if (q.ratio <= 0)
        return 0;
    uint8_t b[8];
    trace_random_id(b, sizeof(b));
    uint64_t v = 0;
    memcpy(&v, b, sizeof(v));
    return (double)(v >> 11) / 9007199254740992.0 < q.ratio;
}

int trace_server_begin(struct trace_span *sp, const struct trace_ctx *parent,
                       const char *name)
{
    if (!atomic_load_explicit(&on, memory_order_relaxed))
        return 0;
    if (parent ? !(parent->flags & 1) : !sample_new())
        return 0;
    memset(sp, 0, offsetof(struct trace_span, attrs));
    if (parent) {
        memcpy(sp->ctx.trace_id, parent->trace_id, 16);
        memcpy(sp->parent_id, parent->span_id, 8);
    } else {
        trace_random_id(sp->ctx.trace_id, 16);
    }
    trace_random_id(sp->ctx.span_id, 8);
    sp->state[0] = '\0';
    sp->ctx.flags = 1;
    sp->kind = TRACE_KIND_SERVER;
    snprintf(sp->name, sizeof(sp->name), "%s", name);
    sp->start_ns = trace_now_ns();
    cur = sp;
    return 1;
}

void trace_server_end(struct trace_span *sp)
{
    cur = NULL;
    sp->end_ns = trace_now_ns();
    (void)trace_enqueue(sp);
}

struct trace_span *trace_current(void)
{
    return cur;
}

int trace_child_begin(struct trace_span *sp, const char *name, int kind)
{
    const struct trace_span *p = cur;
    if (!p)
        return 0;
    memset(sp, 0, offsetof(struct trace_span, attrs));
    memcpy(sp->ctx.trace_id, p->ctx.trace_id, 16);
    memcpy(sp->parent_id, p->ctx.span_id, 8);
    trace_random_id(sp->ctx.span_id, 8);
    sp->state[0] = '\0';
    sp->ctx.flags = 1;
    sp->kind = kind;
    snprintf(sp->name, sizeof(sp->name), "%s", name);
    sp->start_ns = trace_now_ns();
    return 1;
}

void trace_child_done(const char *name, int kind, int64_t start_ns, const char *system,
                      const char *operation, int error)
{
    struct trace_span sp;
    if (!trace_child_begin(&sp, name, kind))
        return;
    sp.start_ns = start_ns;
    if (system)
        trace_attr_str(&sp, "db.system", system);
    if (operation)
        trace_attr_str(&sp, "db.operation", operation);
    trace_child_end(&sp, error);
}

void trace_child_end(struct trace_span *sp, int error)
{
    sp->end_ns = trace_now_ns();
    sp->error = error != 0;
    (void)trace_enqueue(sp);
}

void trace_attr_str(struct trace_span *sp, const char *key, const char *value)
{
    if (sp->nattrs >= TRACE_MAX_ATTRS)
        return;
    struct trace_attr *a = &sp->attrs[sp->nattrs++];
    a->key = key;
    a->is_int = 0;
    snprintf(a->s, sizeof(a->s), "%s", value ? value : "");
}

void trace_attr_int(struct trace_span *sp, const char *key, int64_t value)
{
    if (sp->nattrs >= TRACE_MAX_ATTRS)
        return;
    struct trace_attr *a = &sp->attrs[sp->nattrs++];
    a->key = key;
    a->is_int = 1;
    a->i = value;
}

int trace_enqueue(const struct trace_span *sp)
{
    int ok = 0;
    size_t len = 0;
    pthread_mutex_lock(&q.mu);
    if (q.ring && q.len < q.cap) {
        struct trace_span *dst = &q.ring[(q.head + q.len) % q.cap];
        size_t used = offsetof(struct trace_span, attrs) +
                      (size_t)sp->nattrs * sizeof(sp->attrs[0]);
        memcpy(dst, sp, used);
        if (sp->state[0])
            snprintf(dst->state, sizeof(dst->state), "%s", sp->state);
        else
            dst->state[0] = '\0';
        len = ++q.len;
        ok = 1;
    }
    struct metrics_family *dropped = q.m_dropped;
    if (ok && len == 512)
        pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
    if (!ok)
        metrics_add(dropped, 0, 1);
    return ok;
}

size_t trace_dequeue(struct trace_span *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&q.mu);
    while (n < max && q.len > 0) {
        out[n++] = q.ring[q.head];
        q.head = (q.head + 1) % q.cap;
        q.len--;
    }
    pthread_mutex_unlock(&q.mu);
    return n;
}

size_t trace_queued(void)
{
    pthread_mutex_lock(&q.mu);
    size_t n = q.len;
    pthread_mutex_unlock(&q.mu);
    return n;
}

size_t trace_wait(size_t want, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&q.mu);
    if (q.len < want)
        (void)pthread_cond_timedwait(&q.cv, &q.mu, &ts);
    size_t n = q.len;
    pthread_mutex_unlock(&q.mu);
    return n;
}

void trace_wake(void)
{
    pthread_mutex_lock(&q.mu);
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
}
