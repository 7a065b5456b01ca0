/*
 * Unit tests of the store's bulk load (db_copy_begin/row/end) on every
 * backend: SQLite always, PostgreSQL when MODELCAT_TEST_PG_URL names a
 * server (CTest's unit/test_db_copy_pg gets it from the services the test
 * harness starts, and sets MODELCAT_TEST_PG_REQUIRED so that a missing URL
 * fails instead of passing quietly). Values cross the COPY text format
 * (tabs, newlines, backslashes, "\N" as text, NULLs, extreme numbers) and
 * come back exactly; failed and abandoned loads leave nothing behind and a
 * usable connection. On PostgreSQL also: SQLSTATE mapping, serialization
 * failures as retryable ERR_BUSY, the prepared-statement cache past its
 * size, and the reset of a connection the server dropped.
 *
 * Tables are TEMP (private to the session) so concurrent runs on one
 * database never meet, except the one table of the serialization test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"

enum { SQLITE = 0, PG = 1 };
static const int backend_sqlite = SQLITE, backend_pg = PG;

struct fx {
    int pg;
    struct db *db;
    struct db_conn *c;
    char path[256];
};

static const char *pg_url(void)
{
    const char *u = getenv("MODELCAT_TEST_PG_URL");
    return u && *u ? u : NULL;
}

static void remove_store(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static void exec_ok(struct db_conn *c, const char *sql)
{
    struct err_detail d;
    int rc = db_exec(c, sql, NULL, 0, NULL, &d);
    if (rc)
        fail_msg("%s: %s %s", sql, err_name(rc), d.msg);
}

static int64_t query_int(struct db_conn *c, const char *sql)
{
    struct err_detail d;
    int64_t v = -1;
    int rc = db_query_int(c, sql, NULL, 0, &v, &d);
    if (rc)
        fail_msg("%s: %s %s", sql, err_name(rc), d.msg);
    return v;
}

static int fx_setup(void **state)
{
    static int seq;
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->pg = *(const int *)*state == PG;
    char url[300];
    if (f->pg) {
        snprintf(url, sizeof(url), "%s", pg_url());
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(f->path, sizeof(f->path), "/tmp/modelcat-copy-%ld-%d-%ld.db", (long)getpid(),
                 seq++, (long)ts.tv_nsec);
        remove_store(f->path);
        snprintf(url, sizeof(url), "sqlite:%s", f->path);
    }
    struct db_opts o = {.max_conns = 2, .busy_timeout_ms = 2000, .sync_full = 0};
    struct err_detail d;
    int rc = db_open(url, &o, &f->db, &d);
    if (rc)
        fail_msg("db_open(%s) = %s: %s", f->pg ? "$MODELCAT_TEST_PG_URL" : url, err_name(rc),
                 d.msg);
    assert_int_equal(db_acquire(f->db, &f->c, &d), 0);
    exec_ok(f->c, "CREATE TEMP TABLE t_parent (id TEXT PRIMARY KEY)");
    exec_ok(f->c, "CREATE TEMP TABLE t_rows (k BIGINT PRIMARY KEY, i BIGINT,"
                  " r DOUBLE PRECISION, s TEXT, p TEXT REFERENCES t_parent (id),"
                  " n BIGINT NOT NULL DEFAULT 0)");
    exec_ok(f->c, "INSERT INTO t_parent (id) VALUES ('p1')");
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->c)
        db_release(f->db, f->c);
    db_close(f->db);
    if (!f->pg)
        remove_store(f->path);
    free(f);
    return 0;
}

static const char *const cols[] = {"k", "i", "r", "s", "p"};
#define NCOLS 5

/* The row number k of the round trip, deterministic. */
static void make_row(int k, struct db_param p[NCOLS])
{
    static const int64_t ints[] = {0, -1, INT64_MIN, INT64_MAX, 1234567890123LL};
    static const double reals[] = {0.1, -2.5e-300, 1e300, 3.141592653589793, 1.0 / 3, -0.5};
    static const char *const texts[] = {
        "", "\\N", "a\tb", "line1\nline2", "cr\r", "back\\slash", "\\.", "\\", "tab\t\\t",
        "\xc3\xbcn\xc3\xaf \xf0\x9f\x98\x80", "end\\", "plain text",
    };
    p[0] = db_p_int(k);
    p[1] = k % 13 == 0 ? db_p_null() : db_p_int(ints[k % 5] + (k % 5 == 4 ? k : 0));
    p[2] = k % 11 == 0 ? db_p_null() : db_p_real(reals[k % 6] * (k % 6 == 5 ? k : 1));
    const char *s = texts[k % 12];
    p[3] = k % 7 == 0 ? db_p_null() : db_p_text(s, strlen(s));
    p[4] = k % 2 ? db_p_text("p1", 2) : db_p_null();
}

static void check_row(struct db_rows *r, int k)
{
    struct db_param want[NCOLS];
    make_row(k, want);
    assert_int_equal(db_col_int(r, 0), k);
    for (int c = 1; c < NCOLS; c++) {
        const struct db_param *w = &want[c];
        if (w->t == DB_NULL) {
            if (db_col_type(r, c) != DB_NULL)
                fail_msg("row %d col %s: want NULL", k, cols[c]);
            continue;
        }
        if (db_col_type(r, c) == DB_NULL)
            fail_msg("row %d col %s: got NULL", k, cols[c]);
        if (w->t == DB_INT && db_col_int(r, c) != w->i)
            fail_msg("row %d col i: %lld != %lld", k, (long long)db_col_int(r, c),
                     (long long)w->i);
        if (w->t == DB_REAL && db_col_real(r, c) != w->d)
            fail_msg("row %d col r: %.17g != %.17g", k, db_col_real(r, c), w->d);
        if (w->t == DB_TEXT) {
            size_t n;
            const char *s = db_col_text(r, c, &n);
            if (n != w->n || memcmp(s, w->s, n) != 0)
                fail_msg("row %d col %s: '%.*s' != '%.*s'", k, cols[c], (int)n, s, (int)w->n,
                         w->s);
        }
    }
}

/* Loads rows [from, to) in the open transaction; returns the first error. */
static int load(struct db_conn *c, int from, int to, struct err_detail *d)
{
    struct db_param p[NCOLS];
    int rc = db_copy_begin(c, "t_rows", cols, NCOLS, d);
    for (int k = from; !rc && k < to; k++) {
        make_row(k, p);
        rc = db_copy_row(c, p, d);
    }
    return rc ? rc : db_copy_end(c, d);
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    enum { N = 5000 }; /* a few hundred KiB: several COPY chunks */
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    int rc = load(f->c, 0, N, &d);
    if (rc)
        fail_msg("load: %s %s", err_name(rc), d.msg);
    assert_int_equal(db_commit(f->c, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), N);
    struct db_rows *r;
    assert_int_equal(db_query(f->c, "SELECT k, i, r, s, p FROM t_rows ORDER BY k", NULL, 0,
                              &r, &d), 0);
    int k = 0;
    while ((rc = db_next(r)) == 1)
        check_row(r, k++);
    db_rows_close(r);
    assert_int_equal(rc, 0);
    assert_int_equal(k, N);
    /* Columns left out of the load take their defaults. */
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows WHERE n = 0"), N);
}

static void test_empty_load(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    assert_int_equal(load(f->c, 0, 0, &d), 0);
    assert_int_equal(db_commit(f->c, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 0);
}

/* A failed load rolls back to nothing and leaves the connection usable. */
static void expect_failed_load(struct fx *f, const struct db_param *bad, int want)
{
    struct err_detail d;
    struct db_param p[NCOLS];
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    int rc = db_copy_begin(f->c, "t_rows", cols, NCOLS, &d);
    for (int k = 0; !rc && k < 100; k++) {
        make_row(k, p);
        rc = db_copy_row(f->c, p, &d);
    }
    if (!rc)
        rc = db_copy_row(f->c, bad, &d);
    if (!rc)
        rc = db_copy_end(f->c, &d);
    if (rc != want)
        fail_msg("want %s, got %s: %s", err_name(want), err_name(rc), d.msg);
    db_rollback(f->c);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 0);
    assert_int_equal(load(f->c, 0, 10, &d), 0); /* autocommit, no transaction */
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 10);
}

static void test_duplicate_key(void **state)
{
    struct db_param p[NCOLS];
    make_row(5, p);
    expect_failed_load(*state, p, ERR_EXISTS);
}

static void test_foreign_key(void **state)
{
    struct db_param p[NCOLS];
    make_row(500, p);
    p[4] = db_p_text("nope", 4);
    expect_failed_load(*state, p, ERR_CONFLICT);
}

static void test_abandoned_load(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    struct db_param p[NCOLS];
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, NCOLS, &d), 0);
    make_row(1, p);
    assert_int_equal(db_copy_row(f->c, p, &d), 0);
    db_rollback(f->c); /* no db_copy_end */
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 0);
    /* Given back to the pool in the middle of a load, then taken again. */
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, NCOLS, &d), 0);
    assert_int_equal(db_copy_row(f->c, p, &d), 0);
    db_release(f->db, f->c);
    f->c = NULL;
    assert_int_equal(db_acquire(f->db, &f->c, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 0);
    assert_int_equal(load(f->c, 0, 3, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 3);
}

static void test_misuse(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    struct db_param p[NCOLS];
    static const char *const bad_col[] = {"k", "i; DROP TABLE t_parent"};
    static const char *const empty_col[] = {"k", ""};
    static const char *const digit_col[] = {"1k"};
    make_row(1, p);
    assert_int_equal(db_copy_begin(f->c, "t_rows; --", cols, NCOLS, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "", cols, NCOLS, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", bad_col, 2, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", empty_col, 2, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", digit_col, 1, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, 0, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, DB_COPY_MAX_COLS + 1, &d), ERR_INVAL);
    assert_int_equal(db_copy_row(f->c, p, &d), ERR_INVAL);
    assert_int_equal(db_copy_end(f->c, &d), ERR_INVAL);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, NCOLS, &d), 0);
    assert_int_equal(db_copy_begin(f->c, "t_rows", cols, NCOLS, &d), ERR_INVAL);
    assert_int_equal(db_copy_row(f->c, p, &d), 0);
    assert_int_equal(db_copy_end(f->c, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_parent"), 1);
    assert_int_equal(query_int(f->c, "SELECT COUNT(*) FROM t_rows"), 1);
    /* Retrying is for PostgreSQL's conflicts only. */
    assert_int_equal(db_retryable(f->c, ERR_BUSY), f->pg);
    assert_int_equal(db_retryable(f->c, ERR_EXISTS), 0);
}

/* --- PostgreSQL only --- */

static void test_pg_nul_refused(void **state)
{
    struct fx *f = *state;
    struct db_param p[NCOLS];
    struct err_detail d;
    make_row(700, p);
    p[3] = db_p_text("a\0b", 3);
    expect_failed_load(f, p, ERR_INVAL);
    assert_int_equal(db_exec(f->c, "INSERT INTO t_parent (id) VALUES ($1)", &p[3], 1, NULL, &d),
                     ERR_INVAL);
}

static void test_pg_error_mapping(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    struct db_param p[2] = {db_p_int(1), db_p_text("nope", 4)};
    assert_int_equal(db_exec(f->c, "INSERT INTO t_parent (id) VALUES ('p1')", NULL, 0, NULL, &d),
                     ERR_EXISTS);
    assert_non_null(strstr(d.msg, "duplicate key"));
    assert_int_equal(db_exec(f->c, "INSERT INTO t_rows (k, p) VALUES ($1, $2)", p, 2, NULL, &d),
                     ERR_CONFLICT);
    assert_int_equal(db_exec(f->c, "INSERT INTO t_rows (k, n) VALUES ($1, NULL)", p, 1, NULL,
                             &d), ERR_INVAL);
    assert_int_equal(db_exec(f->c, "SELEC 1", NULL, 0, NULL, &d), ERR_IO);
    assert_non_null(strstr(d.msg, "syntax"));
    /* A statement error inside a transaction: commit is refused, rollback works. */
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    assert_int_equal(db_exec(f->c, "INSERT INTO t_parent (id) VALUES ('p1')", NULL, 0, NULL, &d),
                     ERR_EXISTS);
    assert_int_not_equal(db_commit(f->c, &d), 0);
    db_rollback(f->c);
    int64_t changes = -1;
    assert_int_equal(db_exec(f->c, "UPDATE t_parent SET id = id", NULL, 0, &changes, &d), 0);
    assert_int_equal(changes, 1);
}

/* More distinct statements than the per-connection cache holds, then again. */
static void test_pg_statement_cache(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char sql[64];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 300; i++) {
            struct db_param p = i % 3 ? db_p_int(i) : db_p_null();
            int64_t v = -1;
            snprintf(sql, sizeof(sql), "SELECT COALESCE($1, %d) + %d", i, round);
            int rc = db_query_int(f->c, sql, &p, 1, &v, &d);
            if (rc)
                fail_msg("%s: %s %s", sql, err_name(rc), d.msg);
            assert_int_equal(v, i + round);
        }
    }
    /* Evicted statements were deallocated on the server. */
    int64_t n = query_int(f->c, "SELECT COUNT(*) FROM pg_prepared_statements");
    assert_true(n > 0 && n <= 128);
}

/* Needs no server: nothing listens on port 1. */
static void test_pg_unreachable(void **state)
{
    (void)state;
    struct db_opts o = {.max_conns = 1};
    struct db *db = NULL;
    struct err_detail d;
    assert_int_equal(db_open("postgres://u:secret@127.0.0.1:1/x?connect_timeout=2", &o, &db, &d),
                     ERR_UNAVAIL);
    assert_null(strstr(d.msg, "secret"));
    assert_int_equal(db_open("mysql://u:secret@h/x", &o, &db, &d), ERR_INVAL);
    assert_null(strstr(d.msg, "secret"));
}

/* A session the server ended is reset on the next use, outside transactions only. */
static void test_pg_reconnect(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    int64_t one = 0;
    int rc = db_query_int(f->c, "SELECT 1 FROM pg_terminate_backend(pg_backend_pid())", NULL,
                          0, &one, &d);
    assert_int_equal(rc, ERR_UNAVAIL);
    assert_int_equal(query_int(f->c, "SELECT 2"), 2);
    /* Lost inside a transaction: the transaction fails, the next one works. */
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    rc = db_query_int(f->c, "SELECT 1 FROM pg_terminate_backend(pg_backend_pid())", NULL, 0,
                      &one, &d);
    assert_int_equal(rc, ERR_UNAVAIL);
    assert_int_equal(db_exec(f->c, "SELECT 3", NULL, 0, NULL, &d), ERR_UNAVAIL);
    db_rollback(f->c);
    assert_int_equal(query_int(f->c, "SELECT 4"), 4);
    /* Ended by another session while idle: db_begin reconnects by itself. */
    struct db_conn *other;
    assert_int_equal(db_acquire(f->db, &other, &d), 0);
    struct db_param pid = db_p_int(query_int(f->c, "SELECT pg_backend_pid()"));
    rc = db_query_int(other, "SELECT 1 FROM pg_terminate_backend($1::int)", &pid, 1, &one, &d);
    assert_int_equal(rc, 0);
    int64_t alive = 1;
    for (int i = 0; i < 500 && alive; i++) { /* the backend exits a moment later */
        usleep(10000);
        assert_int_equal(db_query_int(other, "SELECT COUNT(*) FROM pg_stat_activity"
                                             " WHERE pid = $1::int", &pid, 1, &alive, &d), 0);
    }
    db_release(f->db, other);
    assert_int_equal(alive, 0);
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    assert_int_equal(query_int(f->c, "SELECT 6"), 6);
    assert_int_equal(db_commit(f->c, &d), 0);
}

static void test_pg_serialization_is_retryable(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    struct db_conn *other;
    exec_ok(f->c, "CREATE TABLE IF NOT EXISTS mc_unit_serial (id BIGINT PRIMARY KEY, v BIGINT)");
    exec_ok(f->c, "DELETE FROM mc_unit_serial");
    exec_ok(f->c, "INSERT INTO mc_unit_serial (id, v) VALUES (1, 0)");
    assert_int_equal(db_acquire(f->db, &other, &d), 0);
    assert_int_equal(db_begin(f->c, 1, &d), 0);
    /* Our transactions are READ COMMITTED; this one asks for a snapshot. */
    exec_ok(f->c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    assert_int_equal(query_int(f->c, "SELECT v FROM mc_unit_serial WHERE id = 1"), 0);
    exec_ok(other, "UPDATE mc_unit_serial SET v = 1 WHERE id = 1");
    int rc = db_exec(f->c, "UPDATE mc_unit_serial SET v = 2 WHERE id = 1", NULL, 0, NULL, &d);
    assert_int_equal(rc, ERR_BUSY);
    assert_true(db_retryable(f->c, rc));
    db_rollback(f->c);
    assert_int_equal(query_int(f->c, "SELECT v FROM mc_unit_serial WHERE id = 1"), 1);
    exec_ok(other, "DROP TABLE mc_unit_serial");
    db_release(f->db, other);
}

#define T(fn, b) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, (void *)&b)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        T(test_round_trip, backend_sqlite),   T(test_empty_load, backend_sqlite),
        T(test_duplicate_key, backend_sqlite), T(test_foreign_key, backend_sqlite),
        T(test_abandoned_load, backend_sqlite), T(test_misuse, backend_sqlite),
        cmocka_unit_test(test_pg_unreachable),
    };
    const struct CMUnitTest pg_tests[] = {
        T(test_round_trip, backend_pg),        T(test_empty_load, backend_pg),
        T(test_duplicate_key, backend_pg),     T(test_foreign_key, backend_pg),
        T(test_abandoned_load, backend_pg),    T(test_misuse, backend_pg),
        T(test_pg_nul_refused, backend_pg),    T(test_pg_error_mapping, backend_pg),
        T(test_pg_statement_cache, backend_pg), T(test_pg_reconnect, backend_pg),
        T(test_pg_serialization_is_retryable, backend_pg),
    };
    int failed = cmocka_run_group_tests_name("db_copy sqlite", sqlite_tests, NULL, NULL);
    if (pg_url()) {
        failed += cmocka_run_group_tests_name("db_copy postgres", pg_tests, NULL, NULL);
    } else if (getenv("MODELCAT_TEST_PG_REQUIRED")) {
        fprintf(stderr, "MODELCAT_TEST_PG_REQUIRED is set but MODELCAT_TEST_PG_URL is not:"
                        " the PostgreSQL half of this test cannot run\n");
        failed++;
    }
    return failed ? 1 : 0;
}
