/*
 * The "redis://" cache backend: the in-process LRU in front of Redis, with
 * the catalog generation kept in Redis (key modelcat:gen) so that every
 * replica sees every write; see the DESIGN section of cache.c.
 *
 * Connections are hiredis contexts with connect and command timeouts, kept
 * in a small pool under a mutex (one per server thread at most idle); a
 * context that fails is freed, and when a pooled one turns out closed by the
 * server (Redis restarted under it) the pool is emptied and the call retried
 * once on a fresh connection. hiredis writes with write(2): the process must
 * ignore SIGPIPE (serve does). Every round
 * trip goes through the circuit breaker: when it is open no call is made,
 * and the caller treats the generation as unknown, or the page as a miss.
 *
 * With a lease (see cache.c), the last generation read and when its command
 * was sent are kept under a mutex and reused for the lease's length.
 *
 * Replies are capped: values are read with GETRANGE, so Redis never sends
 * more than CACHE_VALUE_MAX plus a small header, whatever is stored.
 * Redis errors all become ERR_UNAVAIL here; their text is kept for
 * /readyz. Pages are stored as "MC1\n" ETag "\n" Content-Type "\n" body
 * under modelcat:c:<generation>:<key>, with SET EX --cache-ttl.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define GEN_KEY "modelcat:gen"
#define PAGE_PREFIX "modelcat:c:"
#define VALUE_MAGIC "MC1\n"
#define VALUE_HEAD_MAX (4 + CACHE_ETAG_MAX + CACHE_CTYPE_MAX)
#define MAX_ARGS 6

struct redis {
    char host[256];
    char user[128];
    char pass[256];
    int port, db, ttl_s;
    struct timeval tv;
    pthread_mutex_t mu;        /* guards idle */
    redisContext **idle;
    int nidle, max_idle;
    struct breaker br;
    atomic_ulong owed;         /* failed INCRs since the last one that reached Redis */
    int64_t lease_ns;          /* 0: no lease, the generation is read per request */
    pthread_mutex_t lease_mu;  /* guards the two below */
    uint64_t lease_gen;        /* a generation read from Redis ... */
    int64_t lease_sent_ns;     /* ... by a command sent at or after this instant */
    pthread_mutex_t err_mu;    /* guards last_error */
    char last_error[ERR_MSG_LEN];
    int64_t last_error_ns;
};

struct rcmd {
    int argc;
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
};

static void cmd_arg(struct rcmd *c, const char *p, size_t n)
{
    c->argv[c->argc] = p;
    c->len[c->argc++] = n;
}

static void cmd_str(struct rcmd *c, const char *s)
{
    cmd_arg(c, s, strlen(s));
}

/* --- URL --- */

/* Copies n bytes at s into out (cap bytes); -1 when it does not fit. */
static int copy_part(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int parse_port(const char *s, size_t n, long max, long *out)
{
    char tmp[16], *end;
    if (n == 0 || copy_part(tmp, sizeof(tmp), s, n))
        return -1;
    errno = 0;
    long v = strtol(tmp, &end, 10);
    if (*end || errno || v < 0 || v > max || tmp[0] == '-' || tmp[0] == '+')
        return -1;
    *out = v;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(struct redis *r, const char *url, struct err_detail *d)
{
    const char *p = url + 8, *end = p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hostend = slash ? slash : end;
    const char *at = memchr(p, '@', (size_t)(hostend - p));
    long v;
    r->port = 6379;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || copy_part(r->user, sizeof(r->user), p, (size_t)(colon - p)) ||
            copy_part(r->pass, sizeof(r->pass), colon + 1, (size_t)(at - colon - 1)))
            goto bad;
        p = at + 1;
    }
    const char *portsep = NULL;
    if (*p == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb || copy_part(r->host, sizeof(r->host), p + 1, (size_t)(rb - p - 1)))
            goto bad;
        if (rb + 1 < hostend) {
            if (rb[1] != ':')
                goto bad;
            portsep = rb + 1;
        }
    } else {
        portsep = memchr(p, ':', (size_t)(hostend - p));
        if (copy_part(r->host, sizeof(r->host), p,
                      (size_t)((portsep ? portsep : hostend) - p)))
            goto bad;
    }
    if (!r->host[0])
        goto bad;
    if (portsep) {
        if (parse_port(portsep + 1, (size_t)(hostend - portsep - 1), 65535, &v) || v == 0)
            goto bad;
        r->port = (int)v;
    }
    if (slash && slash + 1 < end) {
        if (parse_port(slash + 1, (size_t)(end - slash - 1), 1000000, &v))
            goto bad;
        r->db = (int)v;
    }
    return 0;
bad:
    return err_set(d, ERR_INVAL, "cache",
                   "--cache: want redis://[[user]:password@]host[:port][/db]");
}

/* --- errors, connections --- */

static void set_error(struct redis *r, int64_t now_ns, const char *what, const char *detail)
{
    pthread_mutex_lock(&r->err_mu);
    snprintf(r->last_error, sizeof(r->last_error), "%s: %.200s", what, detail);
    r->last_error_ns = now_ns;
    pthread_mutex_unlock(&r->err_mu);
}

/* A new connection, authenticated and on the right db; NULL with err filled. */
static redisContext *dial(struct redis *r, char *err, size_t errlen)
{
    redisContext *ctx = redisConnectWithTimeout(r->host, r->port, r->tv);
    if (!ctx) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    if (ctx->err || redisSetTimeout(ctx, r->tv) != REDIS_OK) {
        snprintf(err, errlen, "connect %.100s:%d: %.100s", r->host, r->port, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    struct rcmd c[2];
    int n = 0;
    if (r->pass[0]) {
        c[n].argc = 0;
        cmd_str(&c[n], "AUTH");
        if (r->user[0])
            cmd_str(&c[n], r->user);
        cmd_str(&c[n], r->pass);
        n++;
    }
    char db[16];
    if (r->db) {
        snprintf(db, sizeof(db), "%d", r->db);
        c[n].argc = 0;
        cmd_str(&c[n], "SELECT");
        cmd_str(&c[n], db);
        n++;
    }
    for (int i = 0; i < n; i++) {
        redisReply *rep = redisCommandArgv(ctx, c[i].argc, (const char **)c[i].argv, c[i].len);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (!ok)
            snprintf(err, errlen, "%s: %s", c[i].argv[0],
                     rep && rep->type == REDIS_REPLY_ERROR ? rep->str : ctx->errstr);
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            redisFree(ctx);
            return NULL;
        }
    }
    return ctx;
}

static redisContext *pool_take(struct redis *r)
{
    redisContext *ctx = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->nidle > 0)
        ctx = r->idle[--r->nidle];
    pthread_mutex_unlock(&r->mu);
    return ctx;
}

/* Frees every idle connection: after one was found dead, so are the rest. */
static void pool_flush(struct redis *r)
{
    redisContext *dead[64];
    int n = 0;
    pthread_mutex_lock(&r->mu);
    while (r->nidle > 0 && n < 64)
        dead[n++] = r->idle[--r->nidle];
    pthread_mutex_unlock(&r->mu);
    while (n > 0)
        redisFree(dead[--n]);
}

static void pool_give(struct redis *r, redisContext *ctx)
{
    pthread_mutex_lock(&r->mu);
    if (r->nidle < r->max_idle) {
        r->idle[r->nidle++] = ctx;
        ctx = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (ctx)
        redisFree(ctx);
}

/*
 * Sends n commands pipelined and reads their n replies into rep[]. Returns
 * 0; -1 when the server had closed the connection before any reply (it may
 * simply have gone stale in the pool); -2 on any other failure, a timeout
 * included. err is filled on failure and rep[] is then empty.
 */
static int exchange(redisContext *ctx, int n, const struct rcmd *cmd, redisReply **rep,
                    char *err, size_t errlen)
{
    int got = 0, rc = 0;
    for (int i = 0; i < n; i++)
        if (redisAppendCommandArgv(ctx, cmd[i].argc, (const char **)cmd[i].argv,
                                   cmd[i].len) != REDIS_OK)
            goto io;
    for (; got < n; got++) {
        void *p = NULL;
        if (redisGetReply(ctx, &p) != REDIS_OK || !p)
            goto io;
        rep[got] = p;
        if (rep[got]->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: %.200s", cmd[got].argv[0], rep[got]->str);
            got++;
            rc = -2;
            goto out;
        }
    }
    return 0;
io:;
    int e = errno;
    snprintf(err, errlen, "%s: %s", ctx->err == REDIS_ERR_EOF ? "connection closed" : "I/O",
             ctx->errstr[0] ? ctx->errstr : "unknown error");
    rc = got == 0 && (ctx->err == REDIS_ERR_EOF ||
                      (ctx->err == REDIS_ERR_IO && (e == ECONNRESET || e == EPIPE))) ? -1 : -2;
out:
    while (got > 0)
        freeReplyObject(rep[--got]);
    return rc;
}

/*
 * One round trip through the breaker: n commands, n replies in rep[] (free
 * each with freeReplyObject). Returns 0, or ERR_UNAVAIL when the breaker
 * refused or the call failed (then reported to the breaker and recorded).
 */
static int run(struct redis *r, int64_t now_ns, int n, const struct rcmd *cmd,
               redisReply **rep)
{
    char err[ERR_MSG_LEN];
    if (!breaker_allow(&r->br, now_ns))
        return ERR_UNAVAIL;
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *ctx = pool_take(r);
        int pooled = ctx != NULL;
        if (!ctx && !(ctx = dial(r, err, sizeof(err))))
            break;
        int rc = exchange(ctx, n, cmd, rep, err, sizeof(err));
        if (rc == 0) {
            pool_give(r, ctx);
            breaker_success(&r->br, now_ns);
            return 0;
        }
        redisFree(ctx);
        if (!(rc == -1 && pooled))
            break;
        pool_flush(r); /* Redis restarted under the pool: retry once, on a fresh one */
    }
    set_error(r, now_ns, "redis", err);
    breaker_failure(&r->br, now_ns);
    return ERR_UNAVAIL;
}

/* --- the generation --- */

/* A generation from a reply: a decimal string or an integer. 0 or -1. */
static int reply_gen(const redisReply *rep, uint64_t *gen)
{
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
        *gen = (uint64_t)rep->integer;
        return 0;
    }
    if (rep->type != REDIS_REPLY_STRING || rep->len < 1 || rep->len > 20)
        return -1;
    char tmp[24], *end;
    memcpy(tmp, rep->str, rep->len);
    tmp[rep->len] = '\0';
    if (tmp[0] < '0' || tmp[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (*end || errno || v == 0)
        return -1;
    *gen = v;
    return 0;
}

/* SET modelcat:gen <seed> NX, then `then` (INCR or GETRANGE): the seed is
   the wall clock in microseconds, above any value a previous life reached. */
static int seed_and(struct redis *r, int64_t now_ns, const struct rcmd *then, uint64_t *gen)
{
    char seed[24];
    redisReply *rep[2];
    struct rcmd c[2] = {{0}};
    snprintf(seed, sizeof(seed), "%lld", (long long)time_wall_ms() * 1000);
    cmd_str(&c[0], "SET");
    cmd_str(&c[0], GEN_KEY);
    cmd_str(&c[0], seed);
    cmd_str(&c[0], "NX");
    c[1] = *then;
    int rc = run(r, now_ns, 2, c, rep);
    if (rc)
        return rc;
    if (reply_gen(rep[1], gen)) {
        set_error(r, now_ns, "redis", GEN_KEY " does not hold a positive integer");
        rc = ERR_CORRUPT;
    }
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    return rc;
}

static void incr_cmd(struct rcmd *c)
{
    c->argc = 0;
    cmd_str(c, "INCR");
    cmd_str(c, GEN_KEY);
}

/* Remembers gen as read by a command sent at or after sent_ns. */
static void lease_store(struct redis *r, uint64_t gen, int64_t sent_ns)
{
    if (r->lease_ns <= 0)
        return;
    pthread_mutex_lock(&r->lease_mu);
    if (sent_ns >= r->lease_sent_ns) {
        r->lease_gen = gen;
        r->lease_sent_ns = sent_ns;
    }
    pthread_mutex_unlock(&r->lease_mu);
}

/* 1 and *gen when a generation read less than the lease ago is at hand. */
static int lease_get(struct redis *r, int64_t now_ns, uint64_t *gen)
{
    int ok = 0;
    if (r->lease_ns <= 0)
        return 0;
    pthread_mutex_lock(&r->lease_mu);
    if (r->lease_gen && now_ns - r->lease_sent_ns < r->lease_ns) {
        *gen = r->lease_gen;
        ok = 1;
    }
    pthread_mutex_unlock(&r->lease_mu);
    return ok;
}

/* INCR modelcat:gen; on success clears the owed increments seen before it. */
static int incr(struct cache *c, int64_t now_ns)
{
    struct redis *r = c->impl;
    struct rcmd cmd;
    uint64_t gen;
    unsigned long owed = atomic_load(&r->owed);
    incr_cmd(&cmd);
    int rc = seed_and(r, now_ns, &cmd, &gen);
    if (rc)
        return rc;
    atomic_compare_exchange_strong(&r->owed, &owed, 0);
    atomic_store(&c->shared_gen, gen);
    lease_store(r, gen, now_ns); /* INCR's value is as fresh as a GET sent with it */
    return 0;
}

static int redis_generation(struct cache *c, int64_t now_ns, uint64_t *gen)
{
    struct redis *r = c->impl;
    struct rcmd cmd = {0};
    redisReply *rep;
    if (atomic_load(&r->owed) && incr(c, now_ns))
        return ERR_UNAVAIL;
    if (lease_get(r, now_ns, gen))
        return 0;
    cmd_str(&cmd, "GETRANGE");
    cmd_str(&cmd, GEN_KEY);
    cmd_str(&cmd, "0");
    cmd_str(&cmd, "23");
    if (run(r, now_ns, 1, &cmd, &rep))
        return ERR_UNAVAIL;
    int missing = rep->type == REDIS_REPLY_STRING && rep->len == 0;
    int bad = !missing && reply_gen(rep, gen);
    freeReplyObject(rep);
    if (bad) {
        set_error(r, now_ns, "redis", GEN_KEY " does not hold a positive integer");
        return ERR_UNAVAIL;
    }
    if (missing && seed_and(r, now_ns, &cmd, gen))
        return ERR_UNAVAIL;
    atomic_store(&c->shared_gen, *gen);
    lease_store(r, *gen, now_ns); /* now_ns was read before the GET was sent */
    return 0;
}

static int redis_bump(struct cache *c, int64_t now_ns, int64_t *hold_ns)
{
    struct redis *r = c->impl;
    atomic_fetch_add(&c->gen, 1);
    if (incr(c, now_ns)) {
        atomic_fetch_add(&r->owed, 1);
        return ERR_UNAVAIL;
    }
    /* Other replicas may hold a lease on the old generation: outwait it,
       with 1% + 50 us to spare for clock rate drift. */
    if (r->lease_ns > 0)
        *hold_ns = r->lease_ns + r->lease_ns / 100 + 50000;
    return 0;
}

/* --- pages --- */

/* modelcat:c:<gen>:<key> into b. */
static int page_key(struct buf *b, uint64_t gen, const char *key, size_t klen)
{
    buf_puts(b, PAGE_PREFIX);
    buf_printf(b, "%llu:", (unsigned long long)gen);
    buf_append(b, key, klen);
    return buf_err(b);
}

/* Splits a stored value; 0, or -1 when it is not one of ours. */
static int parse_value(const char *v, size_t n, struct cache_meta *meta, const char **body,
                       size_t *blen)
{
    const char *end = v + n, *p = v + 4, *nl;
    if (n < 4 || memcmp(v, VALUE_MAGIC, 4) != 0)
        return -1;
    if (!(nl = memchr(p, '\n', (size_t)(end - p))) || copy_part(meta->etag,
        sizeof(meta->etag), p, (size_t)(nl - p)))
        return -1;
    p = nl + 1;
    if (!(nl = memchr(p, '\n', (size_t)(end - p))) || copy_part(meta->ctype,
        sizeof(meta->ctype), p, (size_t)(nl - p)))
        return -1;
    *body = nl + 1;
    *blen = (size_t)(end - *body);
    return 0;
}

static int redis_get(struct cache *c, uint64_t gen, const char *key, size_t klen,
                     int64_t now_ns, struct buf *body, struct cache_meta *meta)
{
    struct redis *r = c->impl;
    int rc = cache__lru_get(c->lru, gen, key, klen, now_ns, body, meta);
    cache__count(c, CACHE_L_LOCAL, rc ? CACHE_R_MISS : CACHE_R_HIT);
    if (rc != ERR_NOTFOUND)
        return rc;
    int result = CACHE_R_BYPASS;
    struct buf k;
    struct rcmd cmd = {0};
    redisReply *rep = NULL;
    char last[24];
    buf_init(&k, klen + 64);
    if (page_key(&k, gen, key, klen))
        goto out;
    snprintf(last, sizeof(last), "%zu", CACHE_VALUE_MAX + VALUE_HEAD_MAX - 1);
    cmd_str(&cmd, "GETRANGE");
    cmd_arg(&cmd, k.p, k.len);
    cmd_str(&cmd, "0");
    cmd_str(&cmd, last);
    if (run(r, now_ns, 1, &cmd, &rep))
        goto out;
    result = CACHE_R_MISS;
    const char *b;
    size_t blen;
    /* A reply as long as the range may have been cut: never one of ours. */
    if (rep->type != REDIS_REPLY_STRING || rep->len >= CACHE_VALUE_MAX + VALUE_HEAD_MAX ||
        parse_value(rep->str, rep->len, meta, &b, &blen))
        goto out;
    size_t before = body->len;
    buf_append(body, b, blen);
    if ((rc = buf_err(body))) {
        body->len = before;
        goto out;
    }
    (void)cache__lru_put(c->lru, gen, key, klen, meta, b, blen, now_ns + c->ttl_ns);
    rc = 0;
    result = CACHE_R_HIT;
out:
    cache__count(c, CACHE_L_REDIS, result);
    if (rep)
        freeReplyObject(rep);
    buf_free(&k);
    return rc;
}

static int redis_put(struct cache *c, uint64_t gen, const char *key, size_t klen,
                     const struct cache_meta *meta, const char *body, size_t len,
                     int64_t now_ns)
{
    struct redis *r = c->impl;
    int rc = cache__lru_put(c->lru, gen, key, klen, meta, body, len, now_ns + c->ttl_ns);
    if (rc == ERR_NOMEM)
        return rc;
    struct buf k, v;
    struct rcmd cmd = {0};
    redisReply *rep;
    char ttl[16];
    buf_init(&k, klen + 64);
    buf_init(&v, CACHE_VALUE_MAX + VALUE_HEAD_MAX - 1);
    buf_puts(&v, VALUE_MAGIC);
    buf_puts(&v, meta->etag);
    buf_putc(&v, '\n');
    buf_puts(&v, meta->ctype);
    buf_putc(&v, '\n');
    buf_append(&v, body, len);
    if (page_key(&k, gen, key, klen) || buf_err(&v) || strchr(meta->etag, '\n') ||
        strchr(meta->ctype, '\n'))
        goto out; /* too big for Redis, or not storable: in-process only */
    snprintf(ttl, sizeof(ttl), "%d", r->ttl_s);
    cmd_str(&cmd, "SET");
    cmd_arg(&cmd, k.p, k.len);
    cmd_arg(&cmd, v.p, v.len);
    cmd_str(&cmd, "EX");
    cmd_str(&cmd, ttl);
    if (!run(r, now_ns, 1, &cmd, &rep)) {
        freeReplyObject(rep);
        rc = 0;
    }
out:
    buf_free(&k);
    buf_free(&v);
    return rc;
}

/* --- life cycle, status --- */

static int redis_open(struct cache *c, const struct cache_opts *o, struct err_detail *d)
{
    struct redis *r = mem_calloc(1, sizeof(*r));
    int rc;
    if (!r)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    if ((rc = parse_url(r, o->url, d)))
        goto fail;
    if ((rc = breaker_init(&r->br, o->breaker))) {
        err_set(d, rc, "cache", "bad circuit breaker options");
        goto fail;
    }
    int ms = o->timeout_ms > 0 ? o->timeout_ms : 100;
    r->tv.tv_sec = ms / 1000;
    r->tv.tv_usec = (ms % 1000) * 1000;
    r->ttl_s = o->ttl_s;
    r->lease_ns = o->lease_ms > 0 ? (int64_t)o->lease_ms * 1000000 : 0;
    r->max_idle = o->conns < 1 ? 1 : o->conns > 64 ? 64 : o->conns;
    if (!(r->idle = mem_calloc((size_t)r->max_idle, sizeof(*r->idle)))) {
        breaker_destroy(&r->br);
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->err_mu, NULL);
    pthread_mutex_init(&r->lease_mu, NULL);
    c->impl = r;
    return 0;
fail:
    mem_free(r);
    return rc;
}

static void redis_close(struct cache *c)
{
    struct redis *r = c->impl;
    for (int i = 0; i < r->nidle; i++)
        redisFree(r->idle[i]);
    mem_free(r->idle);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->err_mu);
    pthread_mutex_destroy(&r->lease_mu);
    breaker_destroy(&r->br);
    mem_free(r);
}

static void redis_status(struct cache *c, struct cache_status *st)
{
    struct redis *r = c->impl;
    uint64_t g = atomic_load(&c->shared_gen);
    if (g) {
        st->generation = g;
        st->shared = 1;
    }
    st->has_breaker = 1;
    st->lease_ms = (int)(r->lease_ns / 1000000);
    breaker_info(&r->br, &st->breaker);
    pthread_mutex_lock(&r->err_mu);
    memcpy(st->last_error, r->last_error, sizeof(st->last_error));
    st->last_error_ns = r->last_error_ns;
    pthread_mutex_unlock(&r->err_mu);
}

const struct cache_ops cache_redis_ops = {
    .name = "redis",
    .open = redis_open,
    .close = redis_close,
    .generation = redis_generation,
    .get = redis_get,
    .put = redis_put,
    .bump = redis_bump,
    .status = redis_status,
};
