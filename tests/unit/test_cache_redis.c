/*
 * Unit tests of the Redis cache backend (src/cache/cache_redis.c): URL
 * parsing, behaviour with nothing listening (breaker opens, the generation
 * is unknown, a write's increment is owed), and, when redis-server is on
 * PATH, against a real Redis started on a free port: the shared generation,
 * pages seen by a second replica, an outage and a restart.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"

#define SEC 1000000000LL
#define JSON "application/json; charset=utf-8"

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int create_lease(const char *url, int lease_ms, struct cache **c,
                        struct err_detail *d)
{
    struct breaker_opts b;
    breaker_default_opts(&b);
    struct cache_opts o = {.url = url, .max_bytes = 1 << 20, .ttl_s = 60, .conns = 2,
                           .timeout_ms = 200, .lease_ms = lease_ms, .breaker = &b};
    err_clear(d);
    return cache_create(&o, c, d);
}

static int create(const char *url, struct cache **c, struct err_detail *d)
{
    return create_lease(url, 0, c, d);
}

static void test_urls(void **state)
{
    (void)state;
    static const char *bad[] = {
        "redis://", "redis://:6379", "redis://h:0", "redis://h:65536", "redis://h:x",
        "redis://h:", "redis://h/abc", "redis://[::1", "redis://[::1]x", "redis://user@h",
        "redis://h:6379/-1", NULL,
    };
    static const char *good[] = {
        "redis://127.0.0.1:6379/2", "redis://[::1]:6380", "redis://:pw@h", "redis://localhost",
        "redis://u:p@h:1/0", "redis://h/", NULL,
    };
    struct cache *c;
    struct err_detail d;
    for (const char **u = bad; *u; u++) {
        if (create(*u, &c, &d) != ERR_INVAL)
            fail_msg("%s was accepted", *u);
        assert_string_equal(d.field, "cache");
    }
    for (const char **u = good; *u; u++) {
        if (create(*u, &c, &d))
            fail_msg("%s: %s", *u, d.msg);
        assert_string_equal(cache_backend(c), "redis");
        cache_destroy(c);
    }
}

static void test_nothing_listening(void **state)
{
    (void)state;
    char url[64];
    struct cache *c;
    struct err_detail d;
    struct cache_status st;
    uint64_t gen;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", free_port());
    assert_int_equal(create(url, &c, &d), 0);
    /* 5 failures in a row open the breaker; then no call is tried. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(cache_generation(c, i, &gen), ERR_UNAVAIL);
    cache_status(c, &st);
    assert_int_equal(st.has_breaker, 1);
    assert_int_equal(st.breaker.state, BREAKER_OPEN);
    assert_int_equal(st.breaker.transitions, 1);
    assert_non_null(strstr(st.last_error, "connect"));
    assert_int_equal(st.bypasses, 5);
    assert_int_equal(cache_generation(c, 10, &gen), ERR_UNAVAIL);
    /* A write cannot reach Redis: the increment is owed. */
    int64_t hold = -1;
    assert_int_equal(cache_bump(c, 11, &hold), ERR_UNAVAIL);
    assert_int_equal(hold, 0);
    /* A put still fills the in-process level, and a get does not fail. */
    struct cache_meta m = {"", JSON};
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(cache_put(c, 7, "k", 1, &m, "v", 1, 12), 0);
    assert_int_equal(cache_get(c, 7, "k", 1, 13, &b, &m), 0);
    buf_free(&b);
    cache_destroy(c);
}

/* --- a real redis-server --- */

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];

static int redis_up(void)
{
    struct timeval tv = {0, 200000};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    int ok = ctx && !ctx->err;
    if (ok) {
        redisReply *r = redisCommand(ctx, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (ctx)
        redisFree(ctx);
    return ok;
}

/* Starts redis-server on redis_port; 0, or -1 when there is none to start. */
static int redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (redis_up())
            return 0;
        int st;
        if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) {
            redis_pid = 0;
            return -1;
        }
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    return -1;
}

static void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static void test_real_redis(void **state)
{
    (void)state;
    char url[64];
    struct cache *a, *b;
    struct err_detail d;
    struct cache_status st;
    struct cache_meta m = {"\"e1\"", JSON}, got;
    struct buf out;
    uint64_t ga, gb, g2, g3;
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/mc-test-redis.XXXXXX");
    assert_non_null(mkdtemp(redis_dir));
    redis_port = free_port();
    if (redis_start()) {
        rmdir(redis_dir);
        skip();
    }
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", redis_port);
    assert_int_equal(create(url, &a, &d), 0);
    assert_int_equal(create(url, &b, &d), 0);
    buf_init(&out, 1 << 20);

    /* Both replicas read the same generation, seeded from the clock. */
    assert_int_equal(cache_generation(a, 0, &ga), 0);
    assert_int_equal(cache_generation(b, 0, &gb), 0);
    assert_true(ga == gb);
    assert_true(ga > 1000000000000000ULL);
    /* A page stored by A is a hit for B (from Redis), ETag included. */
    const char *body = "{\"items\":[1,2,3],\"next_cursor\":null}";
    assert_int_equal(cache_put(a, ga, "GET /x", 6, &m, body, strlen(body), 0), 0);
    assert_int_equal(cache_get(b, gb, "GET /x", 6, 0, &out, &got), 0);
    assert_string_equal(out.p, body);
    assert_string_equal(got.etag, "\"e1\"");
    assert_string_equal(got.ctype, JSON);
    /* A write on A: B's next generation is newer, the page is gone for it. */
    int64_t hold = -1;
    assert_int_equal(cache_bump(a, 0, &hold), 0);
    assert_int_equal(hold, 0); /* no lease: nothing to wait for */
    assert_int_equal(cache_generation(b, 0, &g2), 0);
    assert_true(g2 == ga + 1);
    buf_reset(&out);
    assert_int_equal(cache_get(b, g2, "GET /x", 6, 0, &out, &got), ERR_NOTFOUND);

    /* Redis goes away: the breaker opens, a write's increment is owed. */
    redis_stop();
    for (int i = 0; i < 10; i++)
        if (cache_generation(a, 1, &g3) == 0)
            fail_msg("a generation while Redis is down");
    cache_status(a, &st);
    assert_int_equal(st.breaker.state, BREAKER_OPEN);
    assert_true(st.last_error[0] != '\0');
    assert_int_equal(cache_bump(a, 2, &hold), ERR_UNAVAIL);

    /* It comes back empty; after the breaker's wait the owed increment is
       paid before A uses Redis again, and the new generation is above any
       used before the restart. */
    assert_int_equal(redis_start(), 0);
    assert_int_equal(cache_generation(a, 3, &g3), ERR_UNAVAIL); /* still open */
    assert_int_equal(cache_generation(a, 2 * SEC, &g3), 0);
    assert_true(g3 > g2);
    cache_status(a, &st);
    assert_int_equal(st.breaker.state, BREAKER_CLOSED);
    assert_int_equal(st.shared, 1);
    assert_true(st.generation == g3);
    assert_int_equal(cache_generation(b, 2 * SEC, &gb), 0); /* B's pooled conn was stale */
    assert_true(gb == g3);

    buf_free(&out);
    cache_destroy(a);
    cache_destroy(b);
    redis_stop();
    rmdir(redis_dir);
}

/* With a lease, a replica reuses a generation it read less than the lease
   ago, and a writer is told to wait out the lease before answering. */
static void test_lease(void **state)
{
    (void)state;
    char url[64];
    struct cache *a, *b;
    struct err_detail d;
    struct cache_status st;
    uint64_t g, g1, gb;
    int64_t hold = 0, t0 = 10 * SEC, ms = 1000000;
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/mc-test-redis.XXXXXX");
    assert_non_null(mkdtemp(redis_dir));
    redis_port = free_port();
    if (redis_start()) {
        rmdir(redis_dir);
        skip();
    }
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/4", redis_port);
    assert_int_equal(create_lease(url, 50, &a, &d), 0);
    assert_int_equal(create_lease(url, 50, &b, &d), 0);
    assert_int_equal(cache_generation(b, t0, &g), 0);
    /* A writes: its own next read is the new generation at once ... */
    assert_int_equal(cache_bump(a, t0 + 1 * ms, &hold), 0);
    assert_true(hold >= 50 * ms && hold <= 51 * ms);
    assert_int_equal(cache_generation(a, t0 + 1 * ms, &g1), 0);
    assert_true(g1 == g + 1);
    /* ... while B keeps its lease (no read of Redis) until it runs out:
       49 ms after B's read is still inside, which is why A must wait. */
    assert_int_equal(cache_generation(b, t0 + 49 * ms, &gb), 0);
    assert_true(gb == g);
    assert_int_equal(cache_generation(b, t0 + 50 * ms, &gb), 0);
    assert_true(gb == g1);
    cache_status(b, &st);
    assert_int_equal(st.lease_ms, 50);
    cache_destroy(a);
    cache_destroy(b);
    redis_stop();
    rmdir(redis_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_nothing_listening),
        cmocka_unit_test(test_real_redis),
        cmocka_unit_test(test_lease),
    };
    signal(SIGPIPE, SIG_IGN); /* as serve does: hiredis writes with write(2) */
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    redis_stop();
    return rc;
}
