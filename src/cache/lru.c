/*
 * The in-process level of the response cache: CACHE_SHARDS independent
 * shards, each a chained hash table and a doubly linked LRU list under its
 * own mutex, with an even share of the byte budget. A key always lands in
 * the same shard (top bits of its hash), so threads serving different keys
 * rarely meet on a lock.
 *
 * An entry is one allocation: header, key, ETag, Content-Type and body, and
 * it is charged that allocation's size. The table holds one entry per key
 * whatever its generation: storing a newer generation replaces the older
 * entry, and a lookup that finds an older one frees it, so a write does not
 * leave a copy of every page behind until the LRU reaches it.
 */
#include <pthread.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/codec.h"
#include "core/mem.h"

struct entry {
    struct entry *hnext;          /* hash chain */
    struct entry *prev, *next;    /* LRU list; the shard's head is the newest */
    uint64_t hash, gen;
    int64_t expires_ns;
    size_t charge;
    size_t klen, body_len;
    unsigned char etag_len, ctype_len;
    char data[];                  /* key, etag, ctype, body (no NULs) */
};

struct shard {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets;              /* power of two */
    size_t count, bytes, budget;
    uint64_t evictions;
    struct entry lru;             /* sentinel: lru.next newest, lru.prev oldest */
};

struct cache_lru {
    size_t max_bytes;
    struct shard shards[CACHE_SHARDS];
};

#define INITIAL_BUCKETS 64

static uint64_t key_hash(const char *key, size_t klen)
{
    uint64_t h = codec_fnv1a64(key, klen, CODEC_FNV_INIT);
    /* FNV's high bits mix poorly; finish with splitmix64's. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

int cache__lru_shard_of(const char *key, size_t klen)
{
    return (int)(key_hash(key, klen) >> 60) & (CACHE_SHARDS - 1);
}

struct cache_lru *cache__lru_create(size_t max_bytes)
{
    struct cache_lru *l = mem_calloc(1, sizeof(*l));
    int i;
    if (!l)
        return NULL;
    l->max_bytes = max_bytes;
    for (i = 0; i < CACHE_SHARDS; i++) {
        struct shard *s = &l->shards[i];
        s->budget = max_bytes / CACHE_SHARDS;
        s->lru.next = s->lru.prev = &s->lru;
        s->nbuckets = INITIAL_BUCKETS;
        s->buckets = mem_calloc(s->nbuckets, sizeof(*s->buckets));
        if (!s->buckets || pthread_mutex_init(&s->mu, NULL)) {
            mem_free(s->buckets);
            break;
        }
    }
    if (i < CACHE_SHARDS) {
        while (i-- > 0) {
            pthread_mutex_destroy(&l->shards[i].mu);
            mem_free(l->shards[i].buckets);
        }
        mem_free(l);
        return NULL;
    }
    return l;
}

void cache__lru_destroy(struct cache_lru *l)
{
    if (!l)
        return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct shard *s = &l->shards[i];
        for (struct entry *e = s->lru.next, *n; e != &s->lru; e = n) {
            n = e->next;
            mem_free(e);
        }
        mem_free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    mem_free(l);
}

static struct shard *shard_for(struct cache_lru *l, uint64_t hash)
{
    return &l->shards[(hash >> 60) & (CACHE_SHARDS - 1)];
}

/* The slot that points at the key's entry (or the chain's NULL end). */
static struct entry **find_slot(struct shard *s, uint64_t hash, const char *key, size_t klen)
{
    struct entry **p = &s->buckets[hash & (s->nbuckets - 1)];
    for (; *p; p = &(*p)->hnext)
        if ((*p)->hash == hash && (*p)->klen == klen && memcmp((*p)->data, key, klen) == 0)
            break;
    return p;
}

static void lru_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(struct shard *s, struct entry *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

/* Removes e (found at *slot) from the table and the list, and frees it. */
static void drop(struct shard *s, struct entry **slot, struct entry *e)
{
    *slot = e->hnext;
    lru_unlink(e);
    s->count--;
    s->bytes -= e->charge;
    mem_free(e);
}

/* Doubles the table when it is fuller than one entry per bucket; best effort. */
static void maybe_grow(struct shard *s)
{
    if (s->count <= s->nbuckets)
        return;
    size_t n = s->nbuckets * 2;
    struct entry **b = mem_calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    mem_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

int cache__lru_get(struct cache_lru *l, uint64_t gen, const char *key, size_t klen,
                   int64_t now_ns, struct buf *body, struct cache_meta *meta)
{
    uint64_t hash = key_hash(key, klen);
    struct shard *s = shard_for(l, hash);
    int rc = ERR_NOTFOUND;
    pthread_mutex_lock(&s->mu);
    struct entry **slot = find_slot(s, hash, key, klen), *e = *slot;
    if (!e)
        goto out;
    if (now_ns >= e->expires_ns || e->gen < gen) {
        drop(s, slot, e);
        goto out;
    }
    if (e->gen != gen)
        goto out; /* a newer generation than the caller's: leave it */
    const char *p = e->data + e->klen;
    size_t before = body->len;
    buf_append(body, p + e->etag_len + e->ctype_len, e->body_len);
    if ((rc = buf_err(body))) {
        body->len = before;
        goto out;
    }
    memcpy(meta->etag, p, e->etag_len);
    meta->etag[e->etag_len] = '\0';
    memcpy(meta->ctype, p + e->etag_len, e->ctype_len);
    meta->ctype[e->ctype_len] = '\0';
    lru_unlink(e);
    lru_push_front(s, e);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int cache__lru_put(struct cache_lru *l, uint64_t gen, const char *key, size_t klen,
                   const struct cache_meta *meta, const char *body, size_t len,
                   int64_t expires_ns)
{
    size_t el = strnlen(meta->etag, CACHE_ETAG_MAX - 1);
    size_t cl = strnlen(meta->ctype, CACHE_CTYPE_MAX - 1);
    uint64_t hash = key_hash(key, klen);
    struct shard *s = shard_for(l, hash);
    if (len > CACHE_VALUE_MAX || klen > CACHE_VALUE_MAX)
        return ERR_TOOBIG;
    size_t charge = sizeof(struct entry) + klen + el + cl + len;
    if (charge > s->budget)
        return ERR_TOOBIG;
    struct entry *e = mem_malloc(charge);
    if (!e)
        return ERR_NOMEM;
    e->hash = hash;
    e->gen = gen;
    e->expires_ns = expires_ns;
    e->charge = charge;
    e->klen = klen;
    e->body_len = len;
    e->etag_len = (unsigned char)el;
    e->ctype_len = (unsigned char)cl;
    char *p = e->data;
    memcpy(p, key, klen);
    memcpy(p += klen, meta->etag, el);
    memcpy(p += el, meta->ctype, cl);
    memcpy(p + cl, body, len);

    pthread_mutex_lock(&s->mu);
    struct entry **slot = find_slot(s, hash, key, klen);
    if (*slot)
        drop(s, slot, *slot);
    while (s->bytes + charge > s->budget && s->lru.prev != &s->lru) {
        struct entry *old = s->lru.prev;
        drop(s, find_slot(s, old->hash, old->data, old->klen), old);
        s->evictions++;
    }
    slot = find_slot(s, hash, key, klen); /* the chain may have changed */
    e->hnext = NULL;
    *slot = e;
    lru_push_front(s, e);
    s->count++;
    s->bytes += charge;
    maybe_grow(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void cache__lru_totals(struct cache_lru *l, size_t *entries, size_t *bytes, size_t *max_bytes)
{
    *entries = *bytes = 0;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct shard *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        *entries += s->count;
        *bytes += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
    *max_bytes = l->max_bytes;
}

void cache__lru_shard(struct cache_lru *l, int i, size_t *entries, size_t *bytes,
                      uint64_t *evictions)
{
    struct shard *s = &l->shards[i];
    pthread_mutex_lock(&s->mu);
    *entries = s->count;
    *bytes = s->bytes;
    *evictions = s->evictions;
    pthread_mutex_unlock(&s->mu);
}
