/*
 * The response cache's front (see cache.h): picks the backend from the URL,
 * counts hits and misses, and builds normalized keys. The backends are
 * cache_local.c (the in-process LRU of lru.c) and cache_redis.c (that LRU in
 * front of Redis).
 *
 * DESIGN: invalidation by generation. The catalog has one generation
 * counter; every committed write advances it (cache_bump), and every cached
 * response is stored and looked up under the generation read when its
 * request began. A write therefore invalidates every cached page at once,
 * with no list of keys to purge, and no reader can be served a page stored
 * under an older generation than the one it read. Ordering is what makes
 * this safe: a writer bumps after its commit and before its response, and a
 * reader reads the generation before it reads the store. A reader that saw
 * the new generation started after the bump, hence after the commit, so
 * whatever it computes and stores includes the write; a reader that saw the
 * old generation stores under the old one, where nobody looks any more.
 *
 * With one process the counter is an atomic. With several replicas it is
 * the Redis key modelcat:gen: a write INCRs it before answering, and each
 * request GETs it (one round trip on loopback or a LAN, the price of never
 * serving a page older than a committed write on another replica). The
 * in-process LRU stays in front of Redis, keyed by the Redis generation, so
 * a hot page costs that one small GET rather than a transfer of the page.
 * Pages in Redis carry the generation in their key and a TTL, so old
 * generations expire without being purged.
 *
 * The counter must never go back to a value already used, or old pages
 * would come back to life: when modelcat:gen is missing (a Redis restarted
 * without persistence) it is created with SET NX at the wall clock in
 * microseconds, far above any value the previous life reached. If Redis
 * cannot be reached, the generation is unknown and requests bypass the cache
 * (the in-process level too: another replica may have written meanwhile);
 * if a write's INCR fails, the increment is owed, and this process bypasses
 * the cache until it has paid it, so a writer always reads its own write.
 * Redis is behind a circuit breaker, so while it is down requests go to the
 * store after one failed attempt per breaker probe, not one per request.
 *
 * The per-request GET costs a round trip (on a 2-core machine it halves the
 * throughput of cached pages), so there is a cheaper mode with the same
 * guarantee for every client that saw a write's response, borrowed from
 * commit-wait: with a lease L (--cache-lease-ms), a replica reuses a
 * generation whose GET it sent less than L ago, and a writer waits L after
 * its INCR's reply before answering. A request that reaches a replica after
 * a client saw the write's response arrives more than L after the INCR ran,
 * so any generation still in its lease was read by a GET sent after the
 * INCR, and is the new one. The price is L of latency on each write; a read
 * concurrent with the write may still see the old page, as with no lease.
 * Only durations measured on one clock are compared, never clocks across
 * machines (the writer waits a little longer than L for rate drift).
 *
 * When the thread is tracing a request (core/trace.h), each call here is a
 * CLIENT child span ("cache get", ...) with db.system (redis or memory) and
 * db.operation; keys and values are not recorded.
 */
#include <stdio.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/codec.h"
#include "core/mem.h"
#include "core/trace.h"

int cache_create(const struct cache_opts *o, struct cache **out, struct err_detail *d)
{
    const struct cache_ops *ops;
    int rc;
    *out = NULL;
    if (!o->url || strcmp(o->url, "local") == 0)
        ops = &cache_local_ops;
    else if (strncmp(o->url, "redis://", 8) == 0)
        ops = &cache_redis_ops;
    else
        return err_set(d, ERR_INVAL, "cache", "--cache: want local or redis://host:port/db");
    if (o->ttl_s < 1)
        return err_set(d, ERR_INVAL, "cache-ttl", "--cache-ttl must be at least 1 second");
    if (o->max_bytes < CACHE_SHARDS * 1024)
        return err_set(d, ERR_INVAL, "cache-bytes", "--cache-bytes must be at least %d",
                       CACHE_SHARDS * 1024);
    struct cache *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    c->ops = ops;
    c->ttl_ns = (int64_t)o->ttl_s * 1000000000;
    if (!(c->lru = cache__lru_create(o->max_bytes))) {
        mem_free(c);
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    }
    if ((rc = ops->open(c, o, d))) {
        cache__lru_destroy(c->lru);
        mem_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    c->ops->close(c);
    cache__lru_destroy(c->lru);
    mem_free(c);
}

const char *cache_backend(const struct cache *c)
{
    return c->ops->name;
}

/* Start of a traced call: the clock, or 0 when the thread is not tracing. */
static inline int64_t tr_start(void)
{
    return trace_current() ? trace_now_ns() : 0;
}

/* Ends the span "cache <op>" started at t (0: none); error marks it failed. */
static void tr_end(const struct cache *c, int64_t t, const char *op, int error)
{
    char name[32];
    if (!t)
        return;
    snprintf(name, sizeof(name), "cache %s", op);
    trace_child_done(name, TRACE_KIND_CLIENT, t, c->ops == &cache_redis_ops ? "redis" : "memory",
                     op, error);
}

int cache_generation(struct cache *c, int64_t now_ns, uint64_t *gen)
{
    int64_t t = tr_start();
    int rc = c->ops->generation(c, now_ns, gen);
    tr_end(c, t, "generation", rc != 0);
    if (rc) {
        atomic_fetch_add_explicit(&c->bypasses, 1, memory_order_relaxed);
        cache__count(c, CACHE_L_LOCAL, CACHE_R_BYPASS);
        if (c->ops == &cache_redis_ops)
            cache__count(c, CACHE_L_REDIS, CACHE_R_BYPASS);
    }
    return rc;
}

int cache_get(struct cache *c, uint64_t gen, const char *key, size_t klen, int64_t now_ns,
              struct buf *body, struct cache_meta *meta)
{
    int64_t t = tr_start();
    int rc = c->ops->get(c, gen, key, klen, now_ns, body, meta);
    tr_end(c, t, "get", 0); /* a miss is not a failure */
    atomic_fetch_add_explicit(rc ? &c->misses : &c->hits, 1, memory_order_relaxed);
    return rc;
}

int cache_put(struct cache *c, uint64_t gen, const char *key, size_t klen,
              const struct cache_meta *meta, const char *body, size_t len, int64_t now_ns)
{
    if (len > CACHE_VALUE_MAX)
        return ERR_TOOBIG;
    int64_t t = tr_start();
    int rc = c->ops->put(c, gen, key, klen, meta, body, len, now_ns);
    tr_end(c, t, "put", rc != 0);
    if (!rc)
        atomic_fetch_add_explicit(&c->stores, 1, memory_order_relaxed);
    return rc;
}

int cache_bump(struct cache *c, int64_t now_ns, int64_t *hold_ns)
{
    int64_t t = tr_start();
    *hold_ns = 0;
    int rc = c->ops->bump(c, now_ns, hold_ns);
    tr_end(c, t, "bump", rc != 0);
    return rc;
}

void cache_status(struct cache *c, struct cache_status *st)
{
    memset(st, 0, sizeof(*st));
    st->backend = c->ops->name;
    st->generation = atomic_load(&c->gen);
    st->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    st->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
    st->stores = atomic_load_explicit(&c->stores, memory_order_relaxed);
    st->bypasses = atomic_load_explicit(&c->bypasses, memory_order_relaxed);
    cache__lru_totals(c->lru, &st->entries, &st->bytes, &st->max_bytes);
    for (int l = 0; l < 2; l++)
        for (int r = 0; r < 3; r++)
            st->level[l][r] = atomic_load_explicit(&c->level[l][r], memory_order_relaxed);
    for (int i = 0; i < CACHE_SHARDS; i++) {
        size_t e, b;
        uint64_t ev;
        cache__lru_shard(c->lru, i, &e, &b, &ev);
        st->evictions += ev;
    }
    c->ops->status(c, st);
}

int cache_key(struct buf *out, const char *method, const char *path, int n,
              const char *const *keys, const char *const *vals)
{
    int order[64];
    if (n < 0 || n > (int)(sizeof(order) / sizeof(order[0])))
        return ERR_TOOBIG;
    /* Insertion sort of the indices by key: stable, and n is small. */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && strcmp(keys[order[j - 1]], keys[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    buf_puts(out, method);
    buf_putc(out, ' ');
    buf_puts(out, path);
    for (int i = 0; i < n; i++) {
        buf_putc(out, i ? '&' : '?');
        codec_pct_encode(out, keys[order[i]], strlen(keys[order[i]]));
        buf_putc(out, '=');
        codec_pct_encode(out, vals[order[i]], strlen(vals[order[i]]));
    }
    return buf_err(out);
}
