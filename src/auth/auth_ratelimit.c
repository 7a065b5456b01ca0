/*
 * Token-bucket rate limiting keyed by a string (an API key id, a JWT
 * subject, a client address), for the server's thread pool.
 *
 * DESIGN: 16 shards, each with its own mutex, a fixed array of buckets
 * allocated at creation, a chained hash index of int32 slots and an LRU
 * list, so memory is bounded (max_entries) and nothing is allocated per
 * request. When a shard is full its least recently used bucket is reused:
 * that bucket is usually full again by then (idle), and if not, its client
 * merely gets a fresh burst. Keys are hashed with SipHash-2-4 under a
 * random key, so a client choosing its keys (many IPv6 addresses) cannot
 * pile them into one chain. Time is passed in (monotonic ns): a bucket
 * holds `tokens` at `last_ns` and refills at `rate` per second up to
 * `burst`; a clock that steps back refills nothing.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <openssl/rand.h>

#include "auth/auth.h"
#include "core/mem.h"

#define SHARDS 16
#define DEFAULT_ENTRIES 16384
#define RATE_MAX 1e6  /* per second; so the default burst stays <= BURST_MAX */
#define BURST_MAX 1e6

struct ent {
    uint64_t h;
    int32_t hnext;      /* next slot in the hash chain, or -1 */
    int32_t prev, next; /* LRU neighbours (prev: more recent), or -1 */
    int64_t last_ns;
    double tokens;
    char key[AUTH_RL_KEY_MAX + 1];
};

struct shard {
    pthread_mutex_t mu;
    struct ent *e;
    int32_t *heads; /* mask + 1 chain heads */
    uint32_t mask;
    int32_t cap, used;
    int32_t mru, lru;
} __attribute__((aligned(64)));

struct auth_rl {
    double rate, burst;
    uint64_t k0, k1; /* SipHash key */
    struct shard s[SHARDS];
};

/* ---- SipHash-2-4 (Aumasson and Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                       \
    do {                                                                               \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                     \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                         \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                         \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                     \
    } while (0)

static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i + (size_t)j < n; j++)
        b |= (uint64_t)p[i + (size_t)j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- settings ---- */

/* Parses a decimal "123" or "1.5" at *s; advances *s. -1 when none. */
static double parse_number(const char **s)
{
    const char *p = *s;
    double v = 0, scale = 1;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 15; p++, digits++)
        v = v * 10 + (*p - '0');
    if (digits == 0 || (*p >= '0' && *p <= '9'))
        return -1;
    if (*p == '.') {
        int frac = 0;
        for (p++; *p >= '0' && *p <= '9' && frac < 9; p++, frac++)
            v += (*p - '0') * (scale /= 10);
        if (frac == 0 || (*p >= '0' && *p <= '9'))
            return -1;
    }
    *s = p;
    return v;
}

/* Seconds in the unit of n bytes at s, or 0 when it is not a unit. */
static double unit_seconds(const char *s, size_t n)
{
    static const struct {
        const char *name;
        double sec;
    } units[] = {{"s", 1},  {"sec", 1},  {"second", 1}, {"m", 60},
                 {"min", 60}, {"minute", 60}, {"h", 3600}, {"hour", 3600}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == n && memcmp(units[i].name, s, n) == 0)
            return units[i].sec;
    return 0;
}

int auth_rl_parse(const char *spec, struct auth_rl_opts *o, struct err_detail *d)
{
    if (o->max_entries <= 0)
        o->max_entries = DEFAULT_ENTRIES;
    if (!spec)
        return err_set(d, ERR_PARSE, "rate_limit", "no rate limit given");
    if (strcmp(spec, "off") == 0) {
        o->rate = 0;
        o->burst = 1;
        return 0;
    }
    const char *s = spec;
    double num = parse_number(&s);
    if (num < 0 || *s != '/')
        return err_set(d, ERR_PARSE, "rate_limit",
                       "a rate limit is N/s, N/min or N/h, then optionally ,burst=N");
    const char *u = ++s;
    while (*s && *s != ',')
        s++;
    double sec = unit_seconds(u, (size_t)(s - u));
    if (sec == 0)
        return err_set(d, ERR_PARSE, "rate_limit", "the unit of a rate is s, min or h");
    if (num <= 0)
        return err_set(d, ERR_RANGE, "rate_limit", "a rate must be above 0 (or \"off\")");
    double rate = num / sec, burst = ceil(rate) < 1 ? 1 : ceil(rate);
    if (rate > RATE_MAX)
        return err_set(d, ERR_RANGE, "rate_limit", "a rate is at most 1000000 per second");
    if (*s == ',') {
        s++;
        if (strncmp(s, "burst=", 6) != 0)
            return err_set(d, ERR_PARSE, "rate_limit", "after the rate comes ,burst=N");
        s += 6;
        double b = parse_number(&s);
        if (b < 0 || *s != '\0' || b != floor(b))
            return err_set(d, ERR_PARSE, "rate_limit", "burst is a whole number");
        if (b < 1 || b > BURST_MAX)
            return err_set(d, ERR_RANGE, "rate_limit", "burst is 1 to 1000000");
        burst = b;
    }
    o->rate = rate;
    o->burst = burst;
    return 0;
}

/* ---- limiter ---- */

static void shard_free(struct shard *s)
{
    mem_free(s->e);
    mem_free(s->heads);
    pthread_mutex_destroy(&s->mu);
}

void auth_rl_destroy(struct auth_rl *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < SHARDS; i++)
        shard_free(&rl->s[i]);
    mem_free(rl);
}

int auth_rl_create(const struct auth_rl_opts *o, struct auth_rl **out,
                   struct err_detail *d)
{
    *out = NULL;
    if (!(o->rate >= 0) || o->rate > RATE_MAX || !(o->burst >= 1) || o->burst > BURST_MAX)
        return err_set(d, ERR_RANGE, "rate_limit", "rate must be 0..1e6/s, burst 1..1e6");
    if (o->max_entries < SHARDS || o->max_entries > (1 << 24))
        return err_set(d, ERR_RANGE, "rate_limit", "max_entries is %d to %d", SHARDS, 1 << 24);
    struct auth_rl *rl = mem_calloc(1, sizeof(*rl));
    if (!rl)
        return err_set(d, ERR_NOMEM, NULL, "out of memory for the rate limiter");
    rl->rate = o->rate;
    rl->burst = o->burst;
    unsigned char k[16];
    if (RAND_bytes(k, sizeof(k)) != 1) {
        mem_free(rl);
        return err_set(d, ERR_INTERNAL, NULL, "the random number generator failed");
    }
    memcpy(&rl->k0, k, 8);
    memcpy(&rl->k1, k + 8, 8);
    int32_t cap = (int32_t)((o->max_entries + SHARDS - 1) / SHARDS);
    uint32_t nb = 1;
    while (nb < (uint32_t)cap)
        nb <<= 1;
    int rc = 0, i;
    for (i = 0; i < SHARDS && rc == 0; i++) {
        struct shard *s = &rl->s[i];
        pthread_mutex_init(&s->mu, NULL);
        s->e = mem_calloc((size_t)cap, sizeof(struct ent));
        s->heads = mem_malloc(nb * sizeof(int32_t));
        s->cap = cap;
        s->mask = nb - 1;
        s->mru = s->lru = -1;
        if (!s->e || !s->heads)
            rc = err_set(d, ERR_NOMEM, NULL, "out of memory for the rate limiter");
        else
            memset(s->heads, 0xff, nb * sizeof(int32_t)); /* all -1 */
    }
    if (rc) {
        while (i-- > 0)
            shard_free(&rl->s[i]);
        mem_free(rl);
        return rc;
    }
    *out = rl;
    return 0;
}

static void lru_unlink(struct shard *s, int32_t i)
{
    struct ent *e = &s->e[i];
    if (e->prev >= 0)
        s->e[e->prev].next = e->next;
    else
        s->mru = e->next;
    if (e->next >= 0)
        s->e[e->next].prev = e->prev;
    else
        s->lru = e->prev;
    e->prev = e->next = -1;
}

static void lru_push(struct shard *s, int32_t i)
{
    struct ent *e = &s->e[i];
    e->prev = -1;
    e->next = s->mru;
    if (s->mru >= 0)
        s->e[s->mru].prev = i;
    s->mru = i;
    if (s->lru < 0)
        s->lru = i;
}

/* Removes slot i from its hash chain. */
static void hash_unlink(struct shard *s, int32_t i)
{
    int32_t *pp = &s->heads[s->e[i].h & s->mask];
    while (*pp != i)
        pp = &s->e[*pp].hnext;
    *pp = s->e[i].hnext;
}

/* The slot of key (n bytes, hash h), or a new full bucket for it. */
static int32_t find_or_add(struct auth_rl *rl, struct shard *s, uint64_t h,
                           const char *key, size_t n, int64_t now_ns)
{
    for (int32_t i = s->heads[h & s->mask]; i >= 0; i = s->e[i].hnext)
        if (s->e[i].h == h && strncmp(s->e[i].key, key, n) == 0 && s->e[i].key[n] == '\0')
            return i;
    int32_t i;
    if (s->used < s->cap) {
        i = s->used++;
    } else { /* reuse the least recently used bucket */
        i = s->lru;
        lru_unlink(s, i);
        hash_unlink(s, i);
    }
    struct ent *e = &s->e[i];
    e->h = h;
    memcpy(e->key, key, n);
    e->key[n] = '\0';
    e->tokens = rl->burst;
    e->last_ns = now_ns;
    e->hnext = s->heads[h & s->mask];
    s->heads[h & s->mask] = i;
    lru_push(s, i);
    return i;
}

int auth_rl_take(struct auth_rl *rl, const char *key, int64_t now_ns,
                 double *retry_after_s)
{
    if (retry_after_s)
        *retry_after_s = 0;
    if (!rl || rl->rate <= 0)
        return 0;
    if (!key)
        key = "";
    size_t n = strnlen(key, AUTH_RL_KEY_MAX);
    uint64_t h = siphash(rl->k0, rl->k1, (const unsigned char *)key, n);
    struct shard *s = &rl->s[h >> 60]; /* top 4 bits: shard; low bits: chain */
    pthread_mutex_lock(&s->mu);
    int32_t i = find_or_add(rl, s, h, key, n, now_ns);
    struct ent *e = &s->e[i];
    if (now_ns > e->last_ns) {
        e->tokens += (double)(now_ns - e->last_ns) * rl->rate / 1e9;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
        e->last_ns = now_ns;
    }
    if (s->mru != i) {
        lru_unlink(s, i);
        lru_push(s, i);
    }
    int limited = e->tokens < 1;
    if (!limited)
        e->tokens -= 1;
    else if (retry_after_s)
        *retry_after_s = (1 - e->tokens) / rl->rate;
    pthread_mutex_unlock(&s->mu);
    return limited;
}

long auth_rl_entries(struct auth_rl *rl)
{
    long n = 0;
    for (int i = 0; rl && i < SHARDS; i++) {
        pthread_mutex_lock(&rl->s[i].mu);
        n += rl->s[i].used;
        pthread_mutex_unlock(&rl->s[i].mu);
    }
    return n;
}
