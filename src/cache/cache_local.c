/*
 * The "local" cache backend: the in-process LRU alone, with the generation
 * an atomic counter of this process. Right for one API process; with
 * several replicas each would keep serving pages another replica's write
 * made stale (until --cache-ttl), so replicas use redis://.
 */
#include "cache/cache_int.h"

static int local_open(struct cache *c, const struct cache_opts *o, struct err_detail *d)
{
    (void)c, (void)o, (void)d;
    return 0;
}

static void local_close(struct cache *c)
{
    (void)c;
}

static int local_generation(struct cache *c, int64_t now_ns, uint64_t *gen)
{
    (void)now_ns;
    *gen = atomic_load(&c->gen);
    return 0;
}

static int local_get(struct cache *c, uint64_t gen, const char *key, size_t klen,
                     int64_t now_ns, struct buf *body, struct cache_meta *meta)
{
    int rc = cache__lru_get(c->lru, gen, key, klen, now_ns, body, meta);
    cache__count(c, CACHE_L_LOCAL, rc ? CACHE_R_MISS : CACHE_R_HIT);
    return rc;
}

static int local_put(struct cache *c, uint64_t gen, const char *key, size_t klen,
                     const struct cache_meta *meta, const char *body, size_t len,
                     int64_t now_ns)
{
    return cache__lru_put(c->lru, gen, key, klen, meta, body, len, now_ns + c->ttl_ns);
}

static int local_bump(struct cache *c, int64_t now_ns, int64_t *hold_ns)
{
    (void)now_ns, (void)hold_ns;
    atomic_fetch_add(&c->gen, 1);
    return 0;
}

static void local_status(struct cache *c, struct cache_status *st)
{
    (void)c, (void)st;
}

const struct cache_ops cache_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .generation = local_generation,
    .get = local_get,
    .put = local_put,
    .bump = local_bump,
    .status = local_status,
};
