/*
 * Unit tests of the read replicas (src/db/db_replica.c) through db.h alone:
 * db_add_replica's refusals and limit, round-robin reads that come from a
 * standby and see the primary's writes once replication catches up, the
 * fallback to the primary around a dead replica and that replica's circuit
 * breaker (open, half-open probe, open again), the lag check (replay paused
 * on the standby: reads move to the primary, the breaker opens, and reads
 * come back after replay resumes), and what db_release_result reports.
 *
 * The refusals that need no server run always, on SQLite. The rest needs
 * PostgreSQL with a streaming replica: MODELCAT_TEST_PG_URL and
 * MODELCAT_TEST_PG_REPLICA_URL from scripts/test-services.sh (CTest's
 * unit/test_db_replica_pg reads them from the services' env file and sets
 * MODELCAT_TEST_PG_REQUIRED, so that missing URLs fail instead of skipping).
 * The standby's superuser is the replica URL's host:port with user and
 * database postgres.
 *
 * Time is a fake clock passed as now_ns; real time only bounds the polls
 * that wait for replication, and no assertion depends on how long anything
 * took. The breaker thresholds are the defaults db_replica.c uses
 * (breaker_default_opts). The lag test pauses replay on the shared standby
 * and resumes it in its teardown, whatever happened, and the group setup
 * resumes it too in case an earlier run died half-way. Rows go to one
 * shared table, mc_unit_replica, keyed by a token per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/breaker.h"
#include "db/db.h"
#include "db/db_int.h" /* DB_MAX_REPLICAS only */

#define SEC 1000000000LL
/* db.h: the lag check runs at most once a second per replica. */
#define LAG_EVERY_NS SEC
/* Real time allowed for replication to catch up, or replay to pause. */
#define DEADLINE_S 30.0
#define POLL_US 20000

/* The breaker every replica gets (breaker_init(&r->br, NULL)). */
static struct breaker_opts bo;
/* Failures in a row that open a replica's breaker. */
static int trip;
/* A fake-clock step past both the lag-check interval and the open wait. */
static int64_t step_ns;

struct fx {
    struct db *db;
    struct db *admin; /* superuser on the standby, database modelcat */
    int64_t now;
    char token[64];
};

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

static const char *pg_url(void) { return env("MODELCAT_TEST_PG_URL"); }
static const char *replica_url(void) { return env("MODELCAT_TEST_PG_REPLICA_URL"); }

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* postgres://postgres@HOST:PORT/dbname from the replica URL's host:port. */
static void replica_admin_url(char *out, size_t n, const char *dbname)
{
    const char *u = replica_url();
    const char *host = strstr(u, "://");
    host = host ? host + 3 : u;
    size_t len = strcspn(host, "/?");
    for (size_t i = len; i > 0; i--) {
        if (host[i - 1] == '@') {
            host += i;
            len -= i;
            break;
        }
    }
    snprintf(out, n, "postgres://postgres@%.*s/%s", (int)len, host, dbname);
}

/* A loopback port with nothing listening: bound by us, then released. */
static int dead_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void dead_url(char *out, size_t n)
{
    snprintf(out, n, "postgres://modelcat:secret@127.0.0.1:%d/modelcat?connect_timeout=2",
             dead_port());
}

static void exec_ok(struct db_conn *c, const char *sql)
{
    struct err_detail d;
    int rc = db_exec(c, sql, NULL, 0, NULL, &d);
    if (rc)
        fail_msg("%s: %s %s", sql, err_name(rc), d.msg);
}

static int64_t query_int(struct db_conn *c, const char *sql, const struct db_param *p, int np)
{
    struct err_detail d;
    int64_t v = -1;
    int rc = db_query_int(c, sql, p, np, &v, &d);
    if (rc)
        fail_msg("%s: %s %s", sql, err_name(rc), d.msg);
    return v;
}

/* 1 when c is connected to a standby, 0 to the primary. */
static int64_t in_recovery(struct db_conn *c)
{
    return query_int(c, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END", NULL, 0);
}

static int64_t backend_pid(struct db_conn *c)
{
    return query_int(c, "SELECT pg_backend_pid()", NULL, 0);
}

/* The rows of this test that c sees. */
static int64_t rows_seen(struct fx *f, struct db_conn *c)
{
    struct db_param p = db_p_text(f->token, strlen(f->token));
    return query_int(c, "SELECT COUNT(*) FROM mc_unit_replica WHERE run = $1", &p, 1);
}

/* Writes row k of this test on the primary (autocommit). */
static void put_row(struct fx *f, int64_t k)
{
    struct db_conn *c;
    struct err_detail d;
    assert_int_equal(db_acquire(f->db, &c, &d), 0);
    struct db_param p[2] = {db_p_text(f->token, strlen(f->token)), db_p_int(k)};
    int rc = db_exec(c, "INSERT INTO mc_unit_replica (run, k) VALUES ($1, $2)", p, 2, NULL, &d);
    db_release(f->db, c);
    if (rc)
        fail_msg("insert: %s %s", err_name(rc), d.msg);
}

static void add_ok(struct fx *f, const char *url, double max_lag_s)
{
    struct err_detail d;
    int rc = db_add_replica(f->db, url, max_lag_s, &d);
    if (rc)
        fail_msg("db_add_replica: %s %s", err_name(rc), d.msg);
}

static struct db_replica_info rinfo(struct fx *f, int i)
{
    struct db_replica_info ri;
    memset(&ri, 0, sizeof(ri));
    db_replica_info(f->db, i, &ri);
    return ri;
}

/* db_acquire_read at the fake clock's time; it must not fail. */
static struct db_conn *read_at(struct fx *f)
{
    struct db_conn *c = NULL;
    struct err_detail d;
    err_clear(&d);
    int rc = db_acquire_read(f->db, &c, f->now, &d);
    if (rc)
        fail_msg("db_acquire_read: %s %s", err_name(rc), d.msg);
    assert_non_null(c);
    return c;
}

/* A read that must come from the primary, with no error. */
static void read_from_primary(struct fx *f)
{
    struct db_conn *c = read_at(f);
    assert_false(db_conn_is_replica(c));
    assert_int_equal(in_recovery(c), 0);
    db_release(f->db, c);
}

/* Replica i's breaker after k failures in a row on a breaker with no others. */
static void expect_failures(struct fx *f, int i, int k)
{
    struct db_replica_info ri = rinfo(f, i);
    if (k >= trip) {
        if (ri.breaker.state != BREAKER_OPEN)
            fail_msg("replica %d after %d failures: %s, want open", i, k,
                     breaker_name(ri.breaker.state));
    } else {
        if (ri.breaker.state != BREAKER_CLOSED)
            fail_msg("replica %d after %d failures: %s, want closed", i, k,
                     breaker_name(ri.breaker.state));
        assert_int_equal(ri.breaker.consecutive_failures, k);
    }
}

/* Replica i's window of recent calls, where the breaker keeps one that big. */
static void expect_window(struct fx *f, int i, int calls, int failures)
{
    if (bo.window < calls)
        return;
    struct db_replica_info ri = rinfo(f, i);
    assert_int_equal(ri.breaker.window_calls, calls);
    assert_int_equal(ri.breaker.window_failures, failures);
}

/*
 * Reads, a fake step_ns apart, until one from a replica sees want rows of
 * this test. With strict, every read must come from a replica. Returns the
 * connection that saw them (not released).
 */
static struct db_conn *wait_replica_sees(struct fx *f, int64_t want, int strict)
{
    double end = mono_s() + DEADLINE_S;
    for (;;) {
        f->now += step_ns;
        struct db_conn *c = read_at(f);
        int rep = db_conn_is_replica(c);
        if (strict && !rep)
            fail_msg("a read came from the primary: %s",
                     breaker_name(rinfo(f, 0).breaker.state));
        if (rep) {
            assert_int_equal(in_recovery(c), 1);
            int64_t n = rows_seen(f, c);
            assert_true(n <= want);
            if (n == want)
                return c;
        }
        db_release(f->db, c);
        if (mono_s() > end)
            fail_msg("no replica read saw %lld rows within %.0f s", (long long)want,
                     DEADLINE_S);
        usleep(POLL_US);
    }
}

static int open_pg(struct db **out, const char *url)
{
    struct db_opts o = {.max_conns = 2, .busy_timeout_ms = 2000, .sync_full = 0};
    struct err_detail d;
    int rc = db_open(url, &o, out, &d);
    if (rc)
        fprintf(stderr, "db_open: %s %s\n", err_name(rc), d.msg);
    return rc;
}

static int fx_setup(void **state)
{
    static int seq;
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(f->token, sizeof(f->token), "%ld-%d-%ld", (long)getpid(), seq++, (long)ts.tv_nsec);
    f->now = 1000 * SEC;
    if (open_pg(&f->db, pg_url())) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void admin_close(struct fx *f)
{
    db_close(f->admin);
    f->admin = NULL;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    struct db_conn *c;
    struct err_detail d;
    struct db_param p = db_p_text(f->token, strlen(f->token));
    if (db_acquire(f->db, &c, &d) == 0) {
        int rc = db_exec(c, "DELETE FROM mc_unit_replica WHERE run = $1", &p, 1, NULL, &d);
        if (rc)
            fprintf(stderr, "cleanup of run %s: %s %s\n", f->token, err_name(rc), d.msg);
        db_release(f->db, c);
    }
    db_close(f->db);
    admin_close(f);
    free(f);
    return 0;
}

/* --- SQLite: no server needed --- */

static void test_refusals_sqlite(void **state)
{
    (void)state;
    char path[256], url[300];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(path, sizeof(path), "/tmp/modelcat-replica-%ld-%ld.db", (long)getpid(),
             (long)ts.tv_nsec);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct db_opts o = {.max_conns = 1, .busy_timeout_ms = 1000};
    struct db *db = NULL;
    struct err_detail d;
    assert_int_equal(db_open(url, &o, &db, &d), 0);

    static const char *const not_pg[] = {"mysql://u:secret@h/x", "sqlite:/tmp/x.db", "",
                                         "postgres:/x", "redis://127.0.0.1:6379/0"};
    for (size_t i = 0; i < sizeof(not_pg) / sizeof(not_pg[0]); i++) {
        err_clear(&d);
        assert_int_equal(db_add_replica(db, not_pg[i], 5, &d), ERR_INVAL);
        assert_null(strstr(d.msg, "secret"));
    }
    err_clear(&d);
    assert_int_equal(db_add_replica(db, "postgres://u:secret@127.0.0.1:1/x", 5, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "replicas need a PostgreSQL primary"));
    assert_null(strstr(d.msg, "secret"));
    assert_int_equal(db_add_replica(db, "postgresql://127.0.0.1:1/x", 5, &d), ERR_INVAL);
    assert_int_equal(db_replicas(db), 0);

    /* With no replica, reads are the primary's and report to no breaker. */
    struct db_conn *c = NULL;
    assert_int_equal(db_acquire_read(db, &c, 1000 * SEC, &d), 0);
    assert_false(db_conn_is_replica(c));
    assert_int_equal(db_release_result(db, c, ERR_IO, 1000 * SEC), 0);
    assert_int_equal(db_acquire_read(db, &c, 1000 * SEC, &d), 0);
    assert_int_equal(db_release_result(db, c, ERR_UNAVAIL, 1000 * SEC), 0);
    db_close(db);
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
}

/* --- PostgreSQL --- */

static void test_pg_refusals_and_limit(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    static const char *const not_pg[] = {"mysql://u:secret@h/x", "sqlite:/tmp/x.db", "",
                                         "postgres:/x", "http://127.0.0.1/"};
    for (size_t i = 0; i < sizeof(not_pg) / sizeof(not_pg[0]); i++) {
        err_clear(&d);
        assert_int_equal(db_add_replica(f->db, not_pg[i], 5, &d), ERR_INVAL);
        assert_non_null(strstr(d.msg, "postgres://"));
        assert_null(strstr(d.msg, "secret"));
    }
    assert_int_equal(db_replicas(f->db), 0);

    /* db.h promises 16; added without connecting, so dead URLs are fine. */
    assert_int_equal(DB_MAX_REPLICAS, 16);
    char url[200];
    dead_url(url, sizeof(url));
    for (int i = 0; i < DB_MAX_REPLICAS; i++) {
        add_ok(f, i % 2 ? url : "postgresql://modelcat:secret@127.0.0.1:1/modelcat", 5);
        assert_int_equal(db_replicas(f->db), i + 1);
    }
    err_clear(&d);
    assert_int_equal(db_add_replica(f->db, url, 5, &d), ERR_RANGE);
    assert_int_equal(db_replicas(f->db), DB_MAX_REPLICAS);
    for (int i = 0; i < DB_MAX_REPLICAS; i++) {
        struct db_replica_info ri = rinfo(f, i);
        assert_null(strstr(ri.url, "secret"));
        assert_non_null(strstr(ri.url, "****@127.0.0.1:"));
        assert_int_equal(ri.breaker.state, BREAKER_CLOSED);
        assert_int_equal(ri.breaker.transitions, 0);
        assert_int_equal(ri.breaker.window_calls, 0);
        assert_true(ri.lag_s < 0);
        assert_int_equal(ri.lag_checked_ns, 0);
        assert_int_equal(ri.lagging, 0);
    }
}

/* Which replica ran the lag check at the current time; -1: none. */
static int checked_now(struct fx *f)
{
    int who = -1;
    for (int i = 0; i < db_replicas(f->db); i++) {
        if (rinfo(f, i).lag_checked_ns == f->now) {
            assert_int_equal(who, -1);
            who = i;
        }
    }
    return who;
}

static void test_pg_round_robin(void **state)
{
    struct fx *f = *state;
    add_ok(f, replica_url(), 3600);
    add_ok(f, replica_url(), 3600);
    put_row(f, 1);
    db_release(f->db, wait_replica_sees(f, 1, 1));
    put_row(f, 2);
    db_release(f->db, wait_replica_sees(f, 2, 1));

    /* Each read is step_ns apart, so the replica serving it runs its lag check. */
    int64_t pid[2] = {0, 0};
    int prev = -1;
    for (int k = 0; k < 8; k++) {
        f->now += step_ns;
        struct db_conn *c = read_at(f);
        assert_true(db_conn_is_replica(c));
        assert_int_equal(in_recovery(c), 1);
        assert_int_equal(rows_seen(f, c), 2);
        int who = checked_now(f);
        assert_true(who == 0 || who == 1);
        if (prev >= 0)
            assert_int_not_equal(who, prev);
        prev = who;
        int64_t p = backend_pid(c);
        if (pid[who])
            assert_int_equal(p, pid[who]); /* each replica's pool keeps its connection */
        pid[who] = p;
        db_release(f->db, c);
    }
    assert_int_not_equal(pid[0], pid[1]);
    for (int i = 0; i < 2; i++) {
        struct db_replica_info ri = rinfo(f, i);
        assert_int_equal(ri.breaker.state, BREAKER_CLOSED);
        assert_int_equal(ri.breaker.window_failures, 0);
        assert_int_equal(ri.lagging, 0);
        assert_true(ri.lag_s >= 0 && ri.lag_s <= 3600);
    }
}

static void test_pg_dead_replica(void **state)
{
    struct fx *f = *state;
    char url[200];
    dead_url(url, sizeof(url));
    add_ok(f, url, 5);
    for (int k = 1; k <= trip; k++) {
        f->now += SEC / 1000;
        read_from_primary(f);
        expect_failures(f, 0, k);
    }
    struct db_replica_info ri = rinfo(f, 0);
    int64_t opened = f->now;
    assert_int_equal(ri.breaker.last_transition_ns, opened);
    assert_int_equal(ri.breaker.transitions, 1);
    assert_true(ri.lag_s < 0); /* never connected: never measured */
    assert_int_equal(ri.lag_checked_ns, 0);

    /* Open: the replica is not tried until the wait is over. */
    f->now = opened + bo.open_ns - 1;
    read_from_primary(f);
    ri = rinfo(f, 0);
    assert_int_equal(ri.breaker.state, BREAKER_OPEN);
    assert_int_equal(ri.breaker.transitions, 1);

    /* Past the wait: half-open, one probe let through, still dead: open again. */
    for (int round = 1; round <= 2; round++) {
        f->now = opened + bo.open_ns;
        read_from_primary(f);
        ri = rinfo(f, 0);
        assert_int_equal(ri.breaker.state, BREAKER_OPEN);
        assert_int_equal(ri.breaker.transitions, 1 + 2 * (uint64_t)round);
        assert_int_equal(ri.breaker.last_transition_ns, f->now);
        assert_int_equal(ri.breaker.probes, 0);
        opened = f->now;
    }
}

static void test_pg_dead_beside_live(void **state)
{
    struct fx *f = *state;
    char url[200];
    dead_url(url, sizeof(url));
    add_ok(f, url, 5);
    add_ok(f, replica_url(), 3600);
    for (int k = 0; k < 2 * trip + 2; k++) {
        f->now += SEC / 1000;
        struct db_conn *c = read_at(f);
        assert_true(db_conn_is_replica(c));
        assert_int_equal(in_recovery(c), 1);
        db_release(f->db, c);
    }
    struct db_replica_info dead = rinfo(f, 0), live = rinfo(f, 1);
    assert_int_equal(dead.breaker.state, BREAKER_OPEN);
    assert_int_equal(live.breaker.state, BREAKER_CLOSED);
    assert_int_equal(live.breaker.consecutive_failures, 0);
    expect_window(f, 1, 2 * trip + 2, 0);

    /* Past the wait: whichever read starts at the dead one probes it. */
    uint64_t tr = dead.breaker.transitions;
    f->now = dead.breaker.last_transition_ns + bo.open_ns;
    for (int k = 0; k < 2; k++) {
        struct db_conn *c = read_at(f);
        assert_true(db_conn_is_replica(c));
        assert_int_equal(in_recovery(c), 1);
        db_release(f->db, c);
    }
    dead = rinfo(f, 0);
    assert_int_equal(dead.breaker.state, BREAKER_OPEN);
    assert_int_equal(dead.breaker.transitions, tr + 2);
    assert_int_equal(dead.breaker.last_transition_ns, f->now);
    assert_int_equal(rinfo(f, 1).breaker.state, BREAKER_CLOSED);
}

static void same_breaker(const struct breaker_info *a, const struct breaker_info *b)
{
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->transitions, b->transitions);
    assert_int_equal(a->last_transition_ns, b->last_transition_ns);
    assert_int_equal(a->consecutive_failures, b->consecutive_failures);
    assert_int_equal(a->window_calls, b->window_calls);
    assert_int_equal(a->window_failures, b->window_failures);
    assert_int_equal(a->probes, b->probes);
}

static void test_pg_release_result(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    add_ok(f, replica_url(), 3600);

    /* Codes other than ERR_UNAVAIL and ERR_IO are successes. */
    static const int ok_codes[] = {0, ERR_NOTFOUND, ERR_BUSY, ERR_EXISTS, ERR_INVAL};
    int64_t pid = 0;
    int calls = 0;
    for (size_t i = 0; i < sizeof(ok_codes) / sizeof(ok_codes[0]); i++) {
        f->now += SEC / 1000;
        struct db_conn *c = read_at(f);
        assert_true(db_conn_is_replica(c));
        int64_t p = backend_pid(c);
        if (pid)
            assert_int_equal(p, pid); /* kept in the pool */
        pid = p;
        assert_int_equal(db_release_result(f->db, c, ok_codes[i], f->now), 0);
        expect_window(f, 0, ++calls, 0);
    }

    /* ERR_IO: a failure, the connection is kept. */
    f->now += SEC / 1000;
    struct db_conn *c = read_at(f);
    assert_true(db_conn_is_replica(c));
    assert_int_equal(db_release_result(f->db, c, ERR_IO, f->now), 1);
    expect_failures(f, 0, 1);
    /* ERR_UNAVAIL: a failure, the connection is closed. */
    c = read_at(f);
    assert_int_equal(backend_pid(c), pid);
    assert_int_equal(db_release_result(f->db, c, ERR_UNAVAIL, f->now), 1);
    expect_failures(f, 0, 2);
    c = read_at(f);
    assert_true(db_conn_is_replica(c));
    assert_int_not_equal(backend_pid(c), pid);
    assert_int_equal(db_release_result(f->db, c, ERR_NOTFOUND, f->now), 0);
    expect_failures(f, 0, 0);
    expect_window(f, 0, calls + 3, 2);
    struct db_replica_info ri = rinfo(f, 0);

    /* The primary's connections report to no breaker, whatever the outcome. */
    static const int codes[] = {ERR_IO, ERR_NOTFOUND, 0, ERR_UNAVAIL};
    int64_t ppid = 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_int_equal(db_acquire(f->db, &c, &d), 0);
        assert_false(db_conn_is_replica(c));
        int64_t p = backend_pid(c);
        if (ppid)
            assert_int_equal(p, ppid);
        ppid = p;
        assert_int_equal(db_release_result(f->db, c, codes[i], f->now), 0);
        struct db_replica_info now_ri = rinfo(f, 0);
        same_breaker(&ri.breaker, &now_ri.breaker);
    }
    /* ERR_UNAVAIL closed the primary's connection too. */
    assert_int_equal(db_acquire(f->db, &c, &d), 0);
    assert_int_not_equal(backend_pid(c), ppid);
    db_release(f->db, c);
}

static void test_pg_work_failures_open_and_probe(void **state)
{
    struct fx *f = *state;
    add_ok(f, replica_url(), 3600);
    for (int k = 1; k <= trip; k++) {
        f->now += SEC / 1000;
        struct db_conn *c = read_at(f);
        assert_true(db_conn_is_replica(c));
        assert_int_equal(db_release_result(f->db, c, ERR_IO, f->now), 1);
        expect_failures(f, 0, k);
    }
    struct db_replica_info open = rinfo(f, 0);
    /* Open: reads go to the primary, whose outcomes leave the breaker alone. */
    struct db_conn *c = read_at(f);
    assert_false(db_conn_is_replica(c));
    assert_int_equal(db_release_result(f->db, c, ERR_IO, f->now), 0);
    struct db_replica_info ri = rinfo(f, 0);
    same_breaker(&open.breaker, &ri.breaker);

    /* Past the wait: half_open_max probes go to the replica, the next read not. */
    f->now = open.breaker.last_transition_ns + bo.open_ns;
    struct db_conn *probe[BREAKER_WINDOW_MAX];
    assert_true(bo.half_open_max <= BREAKER_WINDOW_MAX);
    for (int k = 0; k < bo.half_open_max; k++) {
        probe[k] = read_at(f);
        assert_true(db_conn_is_replica(probe[k]));
        ri = rinfo(f, 0);
        assert_int_equal(ri.breaker.state, BREAKER_HALF_OPEN);
        assert_int_equal(ri.breaker.probes, k + 1);
    }
    c = read_at(f);
    assert_false(db_conn_is_replica(c));
    db_release(f->db, c);
    assert_int_equal(rinfo(f, 0).breaker.probes, bo.half_open_max);
    /* Successful probes close it, half_open_successes of them. */
    int ok = 0, closed_after = 0;
    for (int k = 0; k < bo.half_open_max; k++) {
        assert_int_equal(db_release_result(f->db, probe[k], 0, f->now), 0);
        ok++;
        if (!closed_after && rinfo(f, 0).breaker.state == BREAKER_CLOSED)
            closed_after = ok;
    }
    while (!closed_after) {
        assert_true(ok < bo.half_open_successes);
        c = read_at(f);
        assert_true(db_conn_is_replica(c));
        db_release(f->db, c);
        ok++;
        if (rinfo(f, 0).breaker.state == BREAKER_CLOSED)
            closed_after = ok;
    }
    assert_int_equal(closed_after, bo.half_open_successes);
    c = read_at(f);
    assert_true(db_conn_is_replica(c));
    db_release(f->db, c);
}

/* --- Lag --- */

static struct db_conn *admin_conn(struct fx *f)
{
    char url[300];
    if (!f->admin) {
        replica_admin_url(url, sizeof(url), "modelcat");
        if (open_pg(&f->admin, url))
            fail_msg("cannot connect to the standby as postgres");
    }
    struct db_conn *c;
    struct err_detail d;
    assert_int_equal(db_acquire(f->admin, &c, &d), 0);
    return c;
}

static void admin_exec(struct fx *f, const char *sql)
{
    struct db_conn *c = admin_conn(f);
    exec_ok(c, sql);
    db_release(f->admin, c);
}

static int64_t admin_int(struct fx *f, const char *sql)
{
    struct db_conn *c = admin_conn(f);
    int64_t v = query_int(c, sql, NULL, 0);
    db_release(f->admin, c);
    return v;
}

/* Polls the standby (as postgres) until sql returns 1. */
static void admin_wait(struct fx *f, const char *sql, const char *what)
{
    double end = mono_s() + DEADLINE_S;
    while (admin_int(f, sql) != 1) {
        if (mono_s() > end)
            fail_msg("the standby did not %s within %.0f s", what, DEADLINE_S);
        usleep(POLL_US);
    }
}

static const char caught_up_sql[] =
    "SELECT CASE WHEN pg_get_wal_replay_pause_state() = 'not paused'"
    " AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 1 ELSE 0 END";

/* Resumes replay on the standby, so later tests find it replaying. */
static int resume_replay(void)
{
    char url[300];
    struct db *admin = NULL;
    struct db_conn *c;
    struct err_detail d;
    replica_admin_url(url, sizeof(url), "postgres");
    if (open_pg(&admin, url))
        return -1;
    int rc = db_acquire(admin, &c, &d);
    if (!rc) {
        rc = db_exec(c, "SELECT pg_wal_replay_resume()", NULL, 0, NULL, &d);
        if (rc)
            fprintf(stderr, "pg_wal_replay_resume: %s %s\n", err_name(rc), d.msg);
        double end = mono_s() + DEADLINE_S;
        int64_t v = 0;
        while (!rc && mono_s() < end &&
               db_query_int(c, caught_up_sql, NULL, 0, &v, &d) == 0 && v != 1)
            usleep(POLL_US);
        db_release(admin, c);
    }
    db_close(admin);
    return rc ? -1 : 0;
}

static int lag_teardown(void **state)
{
    int rc = resume_replay();
    fx_teardown(state);
    return rc;
}

static void test_pg_lag(void **state)
{
    struct fx *f = *state;
    const double max_lag = 0.2;
    struct db_param tok = db_p_text(f->token, strlen(f->token));

    /* Row 1 replayed on the standby, then replay paused. */
    put_row(f, 1);
    double end = mono_s() + DEADLINE_S;
    for (;;) {
        struct db_conn *c = admin_conn(f);
        int64_t n = query_int(c, "SELECT COUNT(*) FROM mc_unit_replica WHERE run = $1", &tok, 1);
        db_release(f->admin, c);
        if (n == 1)
            break;
        if (mono_s() > end)
            fail_msg("row 1 did not reach the standby within %.0f s", DEADLINE_S);
        usleep(POLL_US);
    }
    admin_exec(f, "SELECT pg_wal_replay_pause()");
    admin_wait(f, "SELECT CASE WHEN pg_get_wal_replay_pause_state() = 'paused'"
                  " THEN 1 ELSE 0 END", "pause replay");

    /* Row 2 is received but not replayed; the lag grows until a check sees it. */
    add_ok(f, replica_url(), max_lag);
    put_row(f, 2);
    struct db_conn *c;
    struct db_replica_info ri;
    end = mono_s() + DEADLINE_S;
    for (;;) {
        f->now += step_ns;
        c = read_at(f);
        ri = rinfo(f, 0);
        assert_int_equal(ri.lag_checked_ns, f->now);
        if (ri.lagging)
            break;
        assert_true(db_conn_is_replica(c)); /* not lagging yet: served */
        assert_int_equal(rows_seen(f, c), 1);
        db_release(f->db, c);
        if (mono_s() > end)
            fail_msg("the lag never exceeded %.1f s (last %.3f s)", max_lag, ri.lag_s);
        usleep(POLL_US);
    }
    assert_false(db_conn_is_replica(c));
    assert_int_equal(rows_seen(f, c), 2);
    db_release(f->db, c);
    if (!(ri.lag_s > max_lag))
        fail_msg("lagging with lag_s %.3f <= %.1f", ri.lag_s, max_lag);
    expect_failures(f, 0, 1);

    /* Between checks the verdict stands: no new check, another failure. */
    int k = 1;
    int64_t checked = f->now;
    if (k < trip) {
        f->now += LAG_EVERY_NS / 10;
        read_from_primary(f);
        ri = rinfo(f, 0);
        assert_int_equal(ri.lag_checked_ns, checked);
        expect_failures(f, 0, ++k);
    }
    /* Checked again each time, still lagging, until the breaker opens. */
    while (k < trip) {
        f->now += LAG_EVERY_NS + LAG_EVERY_NS / 10;
        read_from_primary(f);
        ri = rinfo(f, 0);
        assert_int_equal(ri.lag_checked_ns, f->now);
        assert_true(ri.lagging);
        assert_true(ri.lag_s > max_lag);
        expect_failures(f, 0, ++k);
    }
    ri = rinfo(f, 0);
    assert_int_equal(ri.breaker.last_transition_ns, f->now);
    read_from_primary(f); /* open: not tried */
    assert_int_equal(rinfo(f, 0).lag_checked_ns, ri.lag_checked_ns);

    /* Replay resumed: once caught up, a probe after the wait finds no lag. */
    admin_exec(f, "SELECT pg_wal_replay_resume()");
    admin_wait(f, caught_up_sql, "catch up");
    c = wait_replica_sees(f, 2, 0);
    ri = rinfo(f, 0);
    assert_false(ri.lagging);
    assert_true(ri.lag_s >= 0 && ri.lag_s <= max_lag);
    db_release(f->db, c);
    assert_int_equal(rinfo(f, 0).breaker.state, BREAKER_CLOSED);
    /* Within the check interval, with the breaker closed: the replica again. */
    f->now += LAG_EVERY_NS / 10;
    c = read_at(f);
    assert_true(db_conn_is_replica(c));
    assert_int_equal(rows_seen(f, c), 2);
    db_release(f->db, c);
}

/* --- Groups --- */

/* Waits until the standby has replayed the creation of mc_unit_replica. */
static int wait_table_on_replica(void)
{
    struct db *db;
    struct db_conn *c;
    struct err_detail d;
    if (open_pg(&db, replica_url()))
        return -1;
    int rc = db_acquire(db, &c, &d);
    if (!rc) {
        int64_t there = 0;
        double end = mono_s() + DEADLINE_S;
        while (!rc && !there) {
            rc = db_query_int(c, "SELECT CASE WHEN to_regclass('mc_unit_replica') IS NULL"
                                 " THEN 0 ELSE 1 END", NULL, 0, &there, &d);
            if (!rc && !there && mono_s() > end)
                rc = err_set(&d, ERR_UNAVAIL, NULL, "not replayed within %.0f s",
                             DEADLINE_S);
            if (!rc && !there)
                usleep(POLL_US);
        }
        db_release(db, c);
    }
    if (rc)
        fprintf(stderr, "mc_unit_replica on the standby: %s %s\n", err_name(rc), d.msg);
    db_close(db);
    return rc ? -1 : 0;
}

static int pg_group_setup(void **state)
{
    (void)state;
    if (resume_replay()) /* an earlier run may have died with replay paused */
        return -1;
    struct db *db;
    struct db_conn *c;
    struct err_detail d;
    if (open_pg(&db, pg_url()))
        return -1;
    int rc = db_acquire(db, &c, &d);
    if (!rc) {
        const char *sql = "CREATE TABLE IF NOT EXISTS mc_unit_replica"
                          " (run TEXT NOT NULL, k BIGINT NOT NULL)";
        rc = db_exec(c, sql, NULL, 0, NULL, &d);
        if (rc == ERR_EXISTS) /* created at the same moment by a concurrent run */
            rc = db_exec(c, sql, NULL, 0, NULL, &d);
        db_release(db, c);
    }
    if (rc)
        fprintf(stderr, "create mc_unit_replica: %s %s\n", err_name(rc), d.msg);
    db_close(db);
    return rc ? -1 : wait_table_on_replica();
}

/* The breaker defaults, and a check that this test's assumptions hold. */
static int load_breaker_defaults(void)
{
    breaker_default_opts(&bo);
    /*
     * The tests count failures in a row after successes only; that opens
     * the breaker at bo.failures unless the ratio can trip first.
     */
    if (bo.failures < 1 ||
        (bo.window > 0 && bo.failure_ratio * bo.min_calls < (double)bo.failures)) {
        fprintf(stderr, "breaker defaults changed (failures %d, window %d, min %d,"
                        " ratio %.2f): update test_db_replica.c\n",
                bo.failures, bo.window, bo.min_calls, bo.failure_ratio);
        return -1;
    }
    trip = bo.failures;
    step_ns = (bo.open_ns > LAG_EVERY_NS ? bo.open_ns : LAG_EVERY_NS) + SEC / 2;
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test(test_refusals_sqlite),
    };
    const struct CMUnitTest pg_tests[] = {
        T(test_pg_refusals_and_limit),
        T(test_pg_round_robin),
        T(test_pg_dead_replica),
        T(test_pg_dead_beside_live),
        T(test_pg_release_result),
        T(test_pg_work_failures_open_and_probe),
        cmocka_unit_test_setup_teardown(test_pg_lag, fx_setup, lag_teardown),
    };
    int failed = cmocka_run_group_tests_name("db_replica sqlite", sqlite_tests, NULL, NULL);
    if (pg_url() && replica_url()) {
        if (load_breaker_defaults())
            return 1;
        failed += cmocka_run_group_tests_name("db_replica postgres", pg_tests, pg_group_setup,
                                              NULL);
    } else if (getenv("MODELCAT_TEST_PG_REQUIRED")) {
        fprintf(stderr, "MODELCAT_TEST_PG_REQUIRED is set but MODELCAT_TEST_PG_URL or"
                        " MODELCAT_TEST_PG_REPLICA_URL is not: the replica tests cannot"
                        " run\n");
        failed++;
    } else {
        fprintf(stderr, "test_db_replica: skipping the PostgreSQL replica tests:"
                        " MODELCAT_TEST_PG_URL and MODELCAT_TEST_PG_REPLICA_URL are not"
                        " both set (scripts/test-services.sh start DIR writes DIR/env)\n");
    }
    return failed ? 1 : 0;
}
