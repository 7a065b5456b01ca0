/*
 * Unit tests of the local response cache (src/cache/cache.c, lru.c,
 * cache_local.c): hits and misses, LRU eviction under the byte budget, the
 * spread of keys over shards, invalidation by generation, TTL, key
 * normalization, and use from 4 threads at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"

#define SEC 1000000000LL
#define JSON "application/json; charset=utf-8"

static struct cache *make(size_t bytes, int ttl_s)
{
    struct cache_opts o = {.url = "local", .max_bytes = bytes, .ttl_s = ttl_s};
    struct err_detail d;
    struct cache *c;
    err_clear(&d);
    int rc = cache_create(&o, &c, &d);
    if (rc)
        fail_msg("cache_create: %d %s", rc, d.msg);
    return c;
}

static void put(struct cache *c, uint64_t gen, const char *key, const char *body,
                const char *etag, int64_t now)
{
    struct cache_meta m;
    snprintf(m.etag, sizeof(m.etag), "%s", etag);
    snprintf(m.ctype, sizeof(m.ctype), "%s", JSON);
    assert_int_equal(cache_put(c, gen, key, strlen(key), &m, body, strlen(body), now), 0);
}

/* 1 and the body in out (cap 4096) on a hit; 0 on a miss. */
static int get(struct cache *c, uint64_t gen, const char *key, int64_t now, char *out,
               struct cache_meta *m)
{
    struct buf b;
    struct cache_meta tmp;
    buf_init(&b, 1 << 20);
    int rc = cache_get(c, gen, key, strlen(key), now, &b, m ? m : &tmp);
    if (rc == 0 && out)
        snprintf(out, 4096, "%s", b.p ? b.p : "");
    buf_free(&b);
    if (rc != 0 && rc != ERR_NOTFOUND)
        fail_msg("cache_get: %d", rc);
    return rc == 0;
}

/* The index-th key (from 0) that lands in shard `shard`. */
static void key_in_shard(int shard, int index, char *out, size_t cap)
{
    for (int i = 0, found = 0;; i++) {
        snprintf(out, cap, "GET /api/v1/models/k%d", i);
        if (cache__lru_shard_of(out, strlen(out)) == shard && found++ == index)
            return;
    }
}

static void test_create_errors(void **state)
{
    (void)state;
    struct cache *c = (struct cache *)1;
    struct err_detail d;
    struct cache_opts o = {.url = "memcached://x", .max_bytes = 1 << 20, .ttl_s = 1};
    err_clear(&d);
    assert_int_equal(cache_create(&o, &c, &d), ERR_INVAL);
    assert_null(c);
    assert_string_equal(d.field, "cache");
    o.url = "local";
    o.ttl_s = 0;
    assert_int_equal(cache_create(&o, &c, &d), ERR_INVAL);
    o.ttl_s = 1;
    o.max_bytes = 100;
    assert_int_equal(cache_create(&o, &c, &d), ERR_INVAL);
    cache_destroy(NULL);
}

static void test_hit_miss_and_meta(void **state)
{
    (void)state;
    struct cache *c = make(1 << 20, 60);
    struct cache_meta m;
    char out[4096];
    uint64_t gen;
    assert_string_equal(cache_backend(c), "local");
    assert_int_equal(cache_generation(c, 0, &gen), 0);
    assert_false(get(c, gen, "GET /a", 0, out, NULL));
    put(c, gen, "GET /a", "{\"a\":1}", "\"abc\"", 0);
    assert_true(get(c, gen, "GET /a", 1, out, &m));
    assert_string_equal(out, "{\"a\":1}");
    assert_string_equal(m.etag, "\"abc\"");
    assert_string_equal(m.ctype, JSON);
    /* Replacing a key keeps one entry. */
    put(c, gen, "GET /a", "{\"a\":2}", "", 2);
    assert_true(get(c, gen, "GET /a", 3, out, &m));
    assert_string_equal(out, "{\"a\":2}");
    assert_string_equal(m.etag, "");
    struct cache_status st;
    cache_status(c, &st);
    assert_string_equal(st.backend, "local");
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.stores, 2);
    assert_int_equal(st.has_breaker, 0);
    assert_int_equal(st.shared, 0);
    cache_destroy(c);
}

static void test_lru_eviction_under_budget(void **state)
{
    (void)state;
    /* 16 shards of 4 KiB; entries of ~1 KiB, all in shard 3. */
    struct cache *c = make(16 * 4096, 60);
    char keys[8][64], body[1001], out[4096];
    size_t entries, bytes;
    uint64_t evictions;
    memset(body, 'x', 1000);
    body[1000] = '\0';
    for (int i = 0; i < 8; i++)
        key_in_shard(3, i, keys[i], sizeof(keys[i]));
    for (int i = 0; i < 3; i++)
        put(c, 0, keys[i], body, "", 0);
    cache__lru_shard(c->lru, 3, &entries, &bytes, &evictions);
    assert_int_equal(entries, 3);
    assert_int_equal(evictions, 0);
    /* Touch key 0: key 1 becomes the least recently used. */
    assert_true(get(c, 0, keys[0], 0, out, NULL));
    put(c, 0, keys[3], body, "", 0);
    put(c, 0, keys[4], body, "", 0);
    cache__lru_shard(c->lru, 3, &entries, &bytes, &evictions);
    assert_true(bytes <= 4096);
    assert_true(evictions >= 1);
    assert_false(get(c, 0, keys[1], 0, out, NULL));
    assert_true(get(c, 0, keys[0], 0, out, NULL));
    assert_true(get(c, 0, keys[4], 0, out, NULL));
    /* Many more: the budget always holds, the newest is always there. */
    for (int round = 0; round < 20; round++) {
        put(c, 0, keys[round % 8], body, "", 0);
        cache__lru_shard(c->lru, 3, &entries, &bytes, &evictions);
        assert_true(bytes <= 4096);
        assert_true(get(c, 0, keys[round % 8], 0, out, NULL));
    }
    /* Other shards were not touched. */
    for (int s = 0; s < CACHE_SHARDS; s++) {
        if (s == 3)
            continue;
        cache__lru_shard(c->lru, s, &entries, &bytes, &evictions);
        assert_int_equal(entries, 0);
    }
    /* Larger than a shard's budget: refused, nothing evicted for it. */
    char big[5000];
    struct cache_meta m = {"", JSON};
    memset(big, 'y', sizeof(big));
    assert_int_equal(cache_put(c, 0, keys[5], strlen(keys[5]), &m, big, sizeof(big), 0),
                     ERR_TOOBIG);
    cache_destroy(c);
}

static void test_shard_distribution(void **state)
{
    (void)state;
    struct cache *c = make(64 << 20, 60);
    char key[128];
    size_t entries, bytes, total = 0;
    uint64_t ev;
    for (int i = 0; i < 3200; i++) {
        snprintf(key, sizeof(key), "GET /api/v1/models?cursor=c%d&limit=50", i);
        put(c, 0, key, "{}", "", 0);
    }
    for (int s = 0; s < CACHE_SHARDS; s++) {
        cache__lru_shard(c->lru, s, &entries, &bytes, &ev);
        /* 200 expected per shard; binomial sd ~14. */
        if (entries < 140 || entries > 260)
            fail_msg("shard %d holds %zu of 3200 keys", s, entries);
        total += entries;
    }
    assert_int_equal(total, 3200);
    cache_destroy(c);
}

static void test_generation_invalidates(void **state)
{
    (void)state;
    struct cache *c = make(1 << 20, 60);
    char out[4096];
    uint64_t g0, g1;
    assert_int_equal(cache_generation(c, 0, &g0), 0);
    put(c, g0, "GET /m", "old", "", 0);
    put(c, g0, "GET /n", "old-n", "", 0);
    assert_true(get(c, g0, "GET /m", 0, out, NULL));
    int64_t hold = -1;
    assert_int_equal(cache_bump(c, 0, &hold), 0);
    assert_int_equal(hold, 0);
    assert_int_equal(cache_generation(c, 0, &g1), 0);
    assert_true(g1 == g0 + 1);
    /* Every page of the old generation is gone for the new one. */
    assert_false(get(c, g1, "GET /m", 0, out, NULL));
    assert_false(get(c, g1, "GET /n", 0, out, NULL));
    put(c, g1, "GET /m", "new", "", 0);
    assert_true(get(c, g1, "GET /m", 0, out, NULL));
    assert_string_equal(out, "new");
    /* A reader still holding the old generation never sees the new page. */
    assert_false(get(c, g0, "GET /m", 0, out, NULL));
    /* A late store under the old generation (a reader that began before the
       write) does not come back for the new one. */
    put(c, g0, "GET /m", "stale", "", 0);
    assert_false(get(c, g1, "GET /m", 0, out, NULL));
    struct cache_status st;
    cache_status(c, &st);
    assert_int_equal(st.generation, g1);
    cache_destroy(c);
}

static void test_ttl(void **state)
{
    (void)state;
    struct cache *c = make(1 << 20, 2);
    char out[4096];
    put(c, 0, "GET /t", "v", "", 10);
    assert_true(get(c, 0, "GET /t", 10 + 2 * SEC - 1, out, NULL));
    assert_false(get(c, 0, "GET /t", 10 + 2 * SEC, out, NULL));
    struct cache_status st;
    cache_status(c, &st);
    assert_int_equal(st.entries, 0); /* the expired entry was freed */
    cache_destroy(c);
}

static void key_of(char *out, size_t cap, int n, const char *const *k, const char *const *v)
{
    struct buf b;
    buf_init(&b, 512);
    assert_int_equal(cache_key(&b, "GET", "/api/v1/models", n, k, v), 0);
    snprintf(out, cap, "%s", b.p);
    buf_free(&b);
}

static void test_key_normalization(void **state)
{
    (void)state;
    char a[512], b[512];
    const char *k1[] = {"a", "b"}, *v1[] = {"1", "2"};
    const char *k2[] = {"b", "a"}, *v2[] = {"2", "1"};
    key_of(a, sizeof(a), 2, k1, v1);
    key_of(b, sizeof(b), 2, k2, v2);
    assert_string_equal(a, "GET /api/v1/models?a=1&b=2");
    assert_string_equal(a, b);
    key_of(a, sizeof(a), 0, NULL, NULL);
    assert_string_equal(a, "GET /api/v1/models");
    /* Repeated keys keep their order: a handler may read only the first. */
    const char *k3[] = {"limit", "a", "limit"}, *v3[] = {"10", "x", "20"};
    const char *k4[] = {"limit", "a", "limit"}, *v4[] = {"20", "x", "10"};
    key_of(a, sizeof(a), 3, k3, v3);
    key_of(b, sizeof(b), 3, k4, v4);
    assert_string_equal(a, "GET /api/v1/models?a=x&limit=10&limit=20");
    assert_string_not_equal(a, b);
    /* Separators inside keys and values cannot forge another query. */
    const char *k5[] = {"q"}, *v5[] = {"1&b=2"};
    key_of(a, sizeof(a), 1, k5, v5);
    assert_string_equal(a, "GET /api/v1/models?q=1%26b%3D2");
    /* The buffer's cap bounds the key. */
    struct buf small;
    buf_init(&small, 16);
    assert_int_equal(cache_key(&small, "GET", "/api/v1/models", 2, k1, v1), ERR_TOOBIG);
    buf_free(&small);
}

/* --- 4 threads --- */

#define NTHREADS 4
#define ITERS 20000
static struct cache *shared;
static atomic_int bad;  /* cmocka's asserts belong to the main thread */

static void *worker(void *arg)
{
    unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 7;
    char key[64], body[600];
    struct buf out;
    struct cache_meta m = {"", JSON}, got_meta;
    buf_init(&out, 1 << 20);
    for (int i = 0; i < ITERS; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        int k = (int)(x % 300), got = -1;
        uint64_t gen;
        snprintf(key, sizeof(key), "GET /api/v1/models/%d", k);
        /* The body says which key it belongs to, and is long enough to
           make the 64 KiB budget evict. */
        int n = snprintf(body, sizeof(body), "{\"key\":%d,\"pad\":\"%0*d\"}", k,
                         (int)(x % 400), 0);
        if (cache_generation(shared, 0, &gen))
            atomic_fetch_add(&bad, 1);
        buf_reset(&out);
        if ((x >> 10) % 50 == 0) {
            int64_t hold;
            if (cache_bump(shared, 0, &hold) || hold != 0)
                atomic_fetch_add(&bad, 1);
        } else if (cache_get(shared, gen, key, strlen(key), 0, &out, &got_meta) == 0) {
            if (sscanf(out.p, "{\"key\":%d,", &got) != 1 || got != k ||
                strcmp(got_meta.ctype, JSON) != 0)
                atomic_fetch_add(&bad, 1);
        } else if (cache_put(shared, gen, key, strlen(key), &m, body, (size_t)n, 0)) {
            atomic_fetch_add(&bad, 1);
        }
    }
    buf_free(&out);
    return NULL;
}

static void test_four_threads(void **state)
{
    (void)state;
    pthread_t t[NTHREADS];
    shared = make(64 * 1024, 60);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    struct cache_status st;
    cache_status(shared, &st);
    assert_true(st.bytes <= 64 * 1024);
    assert_true(st.hits > 0 && st.misses > 0);
    assert_int_equal(atomic_load(&bad), 0);
    assert_true(st.generation > 0);
    cache_destroy(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_hit_miss_and_meta),
        cmocka_unit_test(test_lru_eviction_under_budget),
        cmocka_unit_test(test_shard_distribution),
        cmocka_unit_test(test_generation_invalidates),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_key_normalization),
        cmocka_unit_test(test_four_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
