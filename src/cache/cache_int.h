/*
 * Private to cache/: the cache object, the backend ops table and the
 * sharded LRU both backends keep in process.
 */
#ifndef MC_CACHE_CACHE_INT_H
#define MC_CACHE_CACHE_INT_H

#include <stdatomic.h>

#include "cache/cache.h"

struct cache_lru;

struct cache_ops {
    const char *name;
    /* Sets up c->impl from the URL in o; 0 or ERR_INVAL/ERR_NOMEM with detail. */
    int (*open)(struct cache *c, const struct cache_opts *o, struct err_detail *d);
    void (*close)(struct cache *c);
    int (*generation)(struct cache *c, int64_t now_ns, uint64_t *gen);
    int (*get)(struct cache *c, uint64_t gen, const char *key, size_t klen, int64_t now_ns,
               struct buf *body, struct cache_meta *meta);
    int (*put)(struct cache *c, uint64_t gen, const char *key, size_t klen,
               const struct cache_meta *meta, const char *body, size_t len, int64_t now_ns);
    int (*bump)(struct cache *c, int64_t now_ns, int64_t *hold_ns);
    /* Adds the backend's part of the status (breaker, last error). */
    void (*status)(struct cache *c, struct cache_status *st);
};

extern const struct cache_ops cache_local_ops;
extern const struct cache_ops cache_redis_ops;

struct cache {
    const struct cache_ops *ops;
    struct cache_lru *lru;          /* the in-process level, both backends */
    int64_t ttl_ns;
    _Atomic uint64_t gen;           /* local generation (redis: writes seen here) */
    _Atomic uint64_t shared_gen;    /* redis: last generation read from Redis */
    atomic_ullong hits, misses, stores, bypasses;
    atomic_ullong level[2][3];      /* [CACHE_L_*][CACHE_R_*], see cache_status */
    void *impl;                     /* the backend's state */
};

/* Counts one lookup's result at a level (relaxed). */
static inline void cache__count(struct cache *c, int level, int result)
{
    atomic_fetch_add_explicit(&c->level[level][result], 1, memory_order_relaxed);
}

/* --- lru.c: CACHE_SHARDS shards, each a hash table + LRU list under a mutex --- */

/* An LRU of max_bytes in all (split evenly across shards); NULL when out of memory. */
struct cache_lru *cache__lru_create(size_t max_bytes);
void cache__lru_destroy(struct cache_lru *l);
/*
 * Hit only for an entry of generation gen that has not expired: 0, body
 * appended and *meta filled. ERR_NOTFOUND otherwise (an expired entry or
 * one of an older generation is freed on the way), or the append's error.
 */
int cache__lru_get(struct cache_lru *l, uint64_t gen, const char *key, size_t klen,
                   int64_t now_ns, struct buf *body, struct cache_meta *meta);
/*
 * Stores a copy, replacing the key's entry, evicting least recently used
 * entries of the shard to stay in its budget. 0, ERR_TOOBIG or ERR_NOMEM.
 */
int cache__lru_put(struct cache_lru *l, uint64_t gen, const char *key, size_t klen,
                   const struct cache_meta *meta, const char *body, size_t len,
                   int64_t expires_ns);
/* Totals over all shards. */
void cache__lru_totals(struct cache_lru *l, size_t *entries, size_t *bytes, size_t *max_bytes);
/* Entries and bytes of shard i, evictions since creation (for tests). */
void cache__lru_shard(struct cache_lru *l, int i, size_t *entries, size_t *bytes,
                      uint64_t *evictions);
/* The shard a key lands in (for tests). */
int cache__lru_shard_of(const char *key, size_t klen);

#endif
