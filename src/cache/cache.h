/*
 * The response cache: whole HTTP response bodies (with their ETag and
 * Content-Type) under a string key, valid for one catalog generation.
 * Two backends behind a const ops table, chosen by a URL:
 *
 *   "local"            a sharded in-process LRU under a byte budget
 *   "redis://h:p/db"   the same LRU in front of Redis, shared by every API
 *                      replica; Redis sits behind a circuit breaker
 *
 * Invalidation is by generation, not by key: every committed write calls
 * cache_bump, and an entry is only ever served for the generation it was
 * stored under, so a write makes every older page unreachable at once. With
 * Redis the generation lives in Redis and is read once per request, which
 * is how a write on one replica reaches all of them (see the DESIGN
 * section of cache.c). When the generation cannot be known (Redis down,
 * or a write's increment could not reach it), cache_generation says so and
 * the caller bypasses the cache: it is never worth a stale page.
 *
 * Optionally (lease_ms > 0) a replica reuses a generation read from Redis
 * for lease_ms, and each write waits lease_ms after its INCR before it is
 * answered (cache_bump's *hold_ns), which keeps the same guarantee for any
 * client that saw the write's response, at one Redis read per lease instead
 * of one per request.
 *
 * Times are `now_ns` from a monotonic clock, passed in (tests use a fake
 * one). Every function is thread-safe. The cache does not log; the last
 * Redis error is kept for cache_status.
 */
#ifndef MC_CACHE_CACHE_H
#define MC_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/breaker.h"
#include "core/buf.h"
#include "core/err.h"

#define CACHE_ETAG_MAX 64     /* with the NUL */
#define CACHE_CTYPE_MAX 64    /* with the NUL */
#define CACHE_VALUE_MAX ((size_t)8 << 20)  /* largest body stored, and Redis reply read */
#define CACHE_SHARDS 16

struct cache;

struct cache_opts {
    const char *url;          /* "local", or "redis://[[user]:password@]host[:port][/db]" */
    size_t max_bytes;         /* in-process budget, all shards together */
    int ttl_s;                /* lifetime of an entry, in-process and in Redis */
    int conns;                /* Redis connections kept idle at most (one per thread; <= 64) */
    int timeout_ms;           /* Redis connect and command timeout; 0: 100 */
    int lease_ms;             /* Redis: reuse a generation this long; 0: read it per request */
    const struct breaker_opts *breaker; /* Redis breaker; NULL: breaker defaults */
};

/* What travels with a body. */
struct cache_meta {
    char etag[CACHE_ETAG_MAX];    /* "" when the response has none */
    char ctype[CACHE_CTYPE_MAX];  /* the Content-Type */
};

/* Levels and results of struct cache_status's level counters. */
enum { CACHE_L_LOCAL, CACHE_L_REDIS };
enum { CACHE_R_HIT, CACHE_R_MISS, CACHE_R_BYPASS };

/* Counters and Redis health, for /readyz and /metrics. */
struct cache_status {
    const char *backend;          /* "local" or "redis" */
    uint64_t generation;          /* the last generation known */
    int shared;                   /* 1: generation from Redis; 0: local */
    uint64_t hits, misses, stores, bypasses;
    size_t entries, bytes, max_bytes;
    /*
     * Lookups by level and result: local is the in-process LRU (both
     * backends), redis the GET after a local miss (redis backend only; an
     * error or an open breaker counts as a bypass). A request whose
     * generation is unknown is a bypass at every level of the backend.
     */
    uint64_t level[2][3];
    uint64_t evictions;           /* in-process entries evicted for room */
    int has_breaker;              /* the rest only for redis */
    int lease_ms;
    struct breaker_info breaker;
    char last_error[ERR_MSG_LEN]; /* "" when none */
    int64_t last_error_ns;        /* now_ns of it */
};

/*
 * Creates a cache from o. Returns 0 and *out (free with cache_destroy), or
 * ERR_INVAL (bad URL or option) / ERR_NOMEM with detail. A Redis cache
 * does not need Redis to be up to start: it connects on first use.
 */
int cache_create(const struct cache_opts *o, struct cache **out,
                 struct err_detail *d) MC_WUR;
/* Frees c and everything it owns (entries, Redis connections). NULL is a no-op. */
void cache_destroy(struct cache *c);
/* "local" or "redis". */
const char *cache_backend(const struct cache *c);

/*
 * The generation to key this request's lookup and store with: read it
 * once, before the response is computed. Returns 0 and *gen, or
 * ERR_UNAVAIL when the generation cannot be trusted now (Redis down or its
 * breaker open, or a write's increment still owed to Redis): then skip the
 * cache for this request.
 */
int cache_generation(struct cache *c, int64_t now_ns, uint64_t *gen) MC_WUR;

/*
 * Looks key (klen bytes) up for generation gen. On a hit returns 0,
 * appends the body to `body` and fills *meta. Returns ERR_NOTFOUND on a
 * miss (also an expired entry, or one of another generation), or the
 * append's error (ERR_TOOBIG/ERR_NOMEM) with body left as it was.
 */
int cache_get(struct cache *c, uint64_t gen, const char *key, size_t klen, int64_t now_ns,
              struct buf *body, struct cache_meta *meta) MC_WUR;

/*
 * Stores a copy of body (len bytes) and *meta under key for generation
 * gen, replacing any entry of the key. Returns 0, ERR_TOOBIG when the
 * entry is larger than CACHE_VALUE_MAX or a shard's budget, or ERR_NOMEM.
 * A Redis store that fails is not an error here (it is counted by the
 * breaker and shown by cache_status).
 */
int cache_put(struct cache *c, uint64_t gen, const char *key, size_t klen,
              const struct cache_meta *meta, const char *body, size_t len, int64_t now_ns);

/*
 * Call after every committed write, before its response is sent: advances
 * the generation (locally, and in Redis with INCR). Returns 0 and sets
 * *hold_ns: the time the caller must still wait, counted from this call's
 * return, before it answers the write (non-zero only with a lease; see the
 * DESIGN section of cache.c). Returns ERR_UNAVAIL when Redis could not be
 * told (*hold_ns = 0); the increment is then owed, and cache_generation
 * answers ERR_UNAVAIL until a later call pays it.
 */
int cache_bump(struct cache *c, int64_t now_ns, int64_t *hold_ns);

/* Fills *st with a snapshot; talks to no server. */
void cache_status(struct cache *c, struct cache_status *st);

/*
 * Builds the normalized key of a request into out: "METHOD path?k=v&k=v"
 * with the n query arguments percent-encoded and sorted by key (stably:
 * repeated keys keep their order, since a handler may read only the first
 * one), so "?a=1&b=2" and "?b=2&a=1" give the same key. Returns 0, or
 * ERR_TOOBIG / ERR_NOMEM from out (whose cap bounds the key).
 */
int cache_key(struct buf *out, const char *method, const char *path, int n,
              const char *const *keys, const char *const *vals) MC_WUR;

#endif
