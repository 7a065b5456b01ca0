/*
 * Unit tests of src/auth: API key format and hashing, roles and
 * permissions, the bootstrap key, key and audit storage against a real
 * SQLite store (0004_auth.sql run directly), the rate limiter (grammar,
 * burst, recovery, eviction, threads) and the Authorization header parser.
 * JWTs and keyrings are in test_auth_jwt.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/codec.h"
#include "core/mem.h"
#include "db/db.h"

#define NOW_MS 1800000000000LL

/* --- store fixture --- */

struct fx {
    struct db *db;
    struct db_conn *c;
    char path[256];
    char schema[64]; /* PostgreSQL: a private schema, dropped afterwards */
};

/* Set while the store tests run a second time on PostgreSQL. */
static const char *pg_url;

static void remove_store(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    static char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

static void exec_ok(struct db_conn *c, const char *sql)
{
    struct err_detail d;
    int rc = db_exec_script(c, sql, &d);
    if (rc)
        fail_msg("%s = %s: %s", sql, err_name(rc), d.msg);
}

/*
 * A fresh store holding only the auth tables: a temporary SQLite file, or
 * with MODELCAT_TEST_PG_URL a private schema on one pooled connection.
 */
static int fx_setup(void **state)
{
    static int seq;
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    char url[300];
    if (pg_url) {
        snprintf(url, sizeof(url), "%s", pg_url);
        snprintf(f->schema, sizeof(f->schema), "auth_test_%ld_%d", (long)getpid(), seq++);
    } else {
        snprintf(f->path, sizeof(f->path), "/tmp/modelcat-auth-%ld-%d-%ld.db",
                 (long)getpid(), seq++, (long)time(NULL));
        remove_store(f->path);
        snprintf(url, sizeof(url), "sqlite:%s", f->path);
    }
    struct db_opts o = {.max_conns = 1, .busy_timeout_ms = 2000, .sync_full = 0};
    struct err_detail d;
    int rc = db_open(url, &o, &f->db, &d);
    if (rc)
        fail_msg("db_open = %s: %s", err_name(rc), d.msg);
    assert_int_equal(db_acquire(f->db, &f->c, &d), 0);
    if (pg_url) {
        char sql[400];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; "
                 "SET search_path TO %s", f->schema, f->schema, f->schema);
        exec_ok(f->c, sql);
    }
    /* Not yet registered in migrate.c: run the migration's text directly. */
    rc = db_exec_script(f->c, read_file(SOURCE_DIR "/src/db/migrations/0004_auth.sql"), &d);
    if (rc)
        fail_msg("0004_auth.sql = %s: %s", err_name(rc), d.msg);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (pg_url) {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->schema);
        exec_ok(f->c, sql);
    }
    db_release(f->db, f->c);
    db_close(f->db);
    if (!pg_url)
        remove_store(f->path);
    free(f);
    return 0;
}

static json_t *parse_json(const struct buf *b)
{
    json_error_t e;
    json_t *v = json_loadb(b->p, b->len, 0, &e);
    if (!v)
        fail_msg("not JSON (%s): %.*s", e.text, (int)b->len, b->p);
    return v;
}

/* --- API keys --- */

static void test_key_generate_parse(void **state)
{
    (void)state;
    struct err_detail d;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF], id2[AUTH_KEY_ID_BUF];
    char prev[AUTH_KEY_BUF] = "";
    for (int i = 0; i < 200; i++) {
        assert_int_equal(auth_key_generate(key, id, &d), 0);
        assert_int_equal(strlen(key), 55);
        assert_memory_equal(key, "mc_", 3);
        assert_int_equal(key[11], '_');
        assert_int_equal(auth_key_parse(key, strlen(key), id2, &d), 0);
        assert_string_equal(id, id2);
        assert_memory_equal(key + 3, id, 8);
        assert_string_not_equal(key, prev);
        memcpy(prev, key, sizeof(prev));
    }
    /* Wrong prefix, length, alphabets, separator, non-canonical tail. */
    char bad[AUTH_KEY_BUF + 8];
    struct { int pos; char c; } subs[] = {
        {0, 'M'}, {2, '-'}, {3, 'A'}, {4, '0'}, {10, '9'}, {11, '-'},
        {12, '+'}, {30, '/'}, {40, '='}, {54, '.'}, {54, 'B'},
    };
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        memcpy(bad, key, AUTH_KEY_BUF);
        bad[subs[i].pos] = subs[i].c;
        err_clear(&d);
        assert_int_equal(auth_key_parse(bad, strlen(bad), NULL, &d), ERR_PARSE);
        assert_non_null(strstr(d.msg, "API key"));
        assert_null(strstr(d.msg, key + 12)); /* never quotes the secret */
    }
    assert_int_equal(auth_key_parse(key, 54, NULL, &d), ERR_PARSE);
    assert_non_null(strstr(d.msg, "55"));
    memcpy(bad, key, AUTH_KEY_BUF);
    memcpy(bad + 55, "AA", 3);
    assert_int_equal(auth_key_parse(bad, 57, NULL, &d), ERR_PARSE);
    assert_int_equal(auth_key_parse("mc_", 3, NULL, &d), ERR_PARSE);
    assert_int_equal(auth_key_parse("", 0, NULL, &d), ERR_PARSE);
    assert_int_equal(auth_key_parse(NULL, 0, NULL, &d), ERR_PARSE);
    memcpy(bad, key, AUTH_KEY_BUF);
    bad[20] = '\0'; /* embedded NUL within the length */
    assert_int_equal(auth_key_parse(bad, 55, NULL, &d), ERR_PARSE);
}

static void test_key_hash(void **state)
{
    (void)state;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF], h1[AUTH_HASH_BUF], h2[AUTH_HASH_BUF];
    struct err_detail d;
    assert_int_equal(auth_key_generate(key, id, &d), 0);
    auth_key_hash(key, strlen(key), h1);
    auth_key_hash(key, strlen(key), h2);
    assert_int_equal(strlen(h1), 71);
    assert_memory_equal(h1, "sha256:", 7);
    assert_true(auth_hash_equal(h1, h2));
    key[40] = key[40] == 'A' ? 'B' : 'A';
    auth_key_hash(key, strlen(key), h2);
    assert_false(auth_hash_equal(h1, h2));
    assert_false(auth_hash_equal(h1, "sha256:00"));
    assert_false(auth_hash_equal(h1, NULL));
    assert_false(auth_hash_equal("", ""));
    /* Known answer: SHA-256("abc"). */
    auth_key_hash("abc", 3, h1);
    assert_string_equal(h1, "sha256:ba7816bf8f01cfea414140de5dae2223"
                            "b00361a396177a9cb410ff61f20015ad");
}

static void test_roles_perms(void **state)
{
    (void)state;
    static const int want[AUTH_ROLE_COUNT][AUTH_PERM_COUNT] = {
        /*            read wcat wres jobs admin */
        [AUTH_ROLE_VIEWER] = {1, 0, 0, 0, 0},
        [AUTH_ROLE_EDITOR] = {1, 1, 1, 0, 0},
        [AUTH_ROLE_WORKER] = {1, 0, 1, 1, 0},
        [AUTH_ROLE_ADMIN] = {1, 1, 1, 1, 1},
    };
    for (int r = 0; r < AUTH_ROLE_COUNT; r++) {
        for (int p = 0; p < AUTH_PERM_COUNT; p++)
            if (auth_allows((enum auth_role)r, (enum auth_perm)p) != want[r][p])
                fail_msg("role %s perm %s", auth_role_name((enum auth_role)r),
                         auth_perm_name((enum auth_perm)p));
        enum auth_role back;
        const char *name = auth_role_name((enum auth_role)r);
        assert_int_equal(auth_role_parse(name, strlen(name), &back, NULL), 0);
        assert_int_equal(back, r);
    }
    enum auth_role x;
    struct err_detail d;
    assert_int_equal(auth_role_parse("Admin", 5, &x, &d), ERR_INVAL);
    assert_int_equal(auth_role_parse("admi", 4, &x, &d), ERR_INVAL);
    assert_int_equal(auth_role_parse("adminx", 6, &x, &d), ERR_INVAL);
    assert_int_equal(auth_role_parse("", 0, &x, &d), ERR_INVAL);
    assert_int_equal(auth_allows((enum auth_role)7, AUTH_READ), 0);
    assert_int_equal(auth_allows(AUTH_ROLE_ADMIN, (enum auth_perm)-1), 0);
    assert_string_equal(auth_role_name((enum auth_role)9), "unknown");
    assert_string_equal(auth_perm_name(AUTH_WRITE_RESULTS), "write_results");
    assert_true(auth_refused(AUTH_ERR_DENIED));
    assert_true(auth_refused(ERR_PARSE));
    assert_false(auth_refused(ERR_UNAVAIL));
    assert_false(auth_refused(ERR_IO));
    assert_false(auth_refused(0));
}

static void test_bootstrap(void **state)
{
    (void)state;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF], other[AUTH_KEY_BUF];
    struct err_detail d;
    assert_int_equal(auth_key_generate(key, id, &d), 0);
    assert_int_equal(auth_key_generate(other, id, &d), 0);
    assert_int_equal(auth_bootstrap_validate(key, &d), 0);
    assert_int_equal(auth_bootstrap_validate("", &d), ERR_INVAL);
    assert_int_equal(auth_bootstrap_validate(NULL, &d), ERR_INVAL);
    assert_int_equal(auth_bootstrap_validate("changeme", &d), ERR_INVAL);
    assert_null(strstr(d.msg, "changeme"));
    struct auth_principal p;
    assert_int_equal(auth_bootstrap_check(key, key, strlen(key), &p), 1);
    assert_int_equal(p.via, AUTH_VIA_BOOTSTRAP);
    assert_int_equal(p.role, AUTH_ROLE_ADMIN);
    assert_string_equal(p.id, "bootstrap");
    assert_int_equal(auth_bootstrap_check(key, other, strlen(other), &p), 0);
    assert_int_equal(auth_bootstrap_check(key, key, strlen(key) - 1, &p), 0);
    assert_int_equal(auth_bootstrap_check(NULL, key, strlen(key), &p), 0);
    assert_int_equal(auth_bootstrap_check("", "", 0, &p), 0);
}

static void test_key_store(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF], key2[AUTH_KEY_BUF], id2[AUTH_KEY_ID_BUF];
    int rc = auth_key_create(f->c, "ci \"runner\" é", AUTH_ROLE_WORKER, "cli", NOW_MS, key,
                             id, &d);
    if (rc)
        fail_msg("create = %s: %s", err_name(rc), d.msg);
    assert_int_equal(auth_key_create(f->c, "viewer", AUTH_ROLE_VIEWER, id, NOW_MS + 1, key2,
                                     id2, &d), 0);
    /* The stored row holds a hash, never the key or its secret. */
    struct db_param p = db_p_text(id, strlen(id));
    struct db_rows *r;
    assert_int_equal(db_query(f->c, "SELECT hash FROM api_keys WHERE id = $1", &p, 1, &r, &d),
                     0);
    assert_int_equal(db_next(r), 1);
    char want[AUTH_HASH_BUF];
    auth_key_hash(key, strlen(key), want);
    assert_string_equal(db_col_text(r, 0, NULL), want);
    assert_null(strstr(db_col_text(r, 0, NULL), key + 12));
    db_rows_close(r);

    struct auth_principal who;
    assert_int_equal(auth_key_lookup(f->c, key, strlen(key), NOW_MS, &who, &d), 0);
    assert_int_equal(who.via, AUTH_VIA_KEY);
    assert_int_equal(who.role, AUTH_ROLE_WORKER);
    assert_string_equal(who.id, id);
    assert_string_equal(who.name, "ci \"runner\" é");
    assert_true(who.touch);
    assert_int_equal(auth_key_touch(f->c, id, NOW_MS, &d), 0);
    assert_int_equal(auth_key_lookup(f->c, key, strlen(key), NOW_MS + 1000, &who, &d), 0);
    assert_false(who.touch);
    assert_int_equal(auth_key_lookup(f->c, key, strlen(key), NOW_MS + 61000, &who, &d), 0);
    assert_true(who.touch);

    /* Right id, wrong secret; unknown id; malformed. */
    char forged[AUTH_KEY_BUF];
    memcpy(forged, key, sizeof(forged));
    memcpy(forged + 12, key2 + 12, AUTH_KEY_SECRET_LEN);
    assert_int_equal(auth_key_lookup(f->c, forged, strlen(forged), NOW_MS, &who, &d),
                     AUTH_ERR_DENIED);
    assert_non_null(strstr(d.msg, "wrong"));
    assert_int_equal(who.via, AUTH_VIA_NONE);
    memcpy(forged, key, sizeof(forged));
    memcpy(forged + 3, "zzzzzzzz", 8);
    assert_int_equal(auth_key_lookup(f->c, forged, strlen(forged), NOW_MS, &who, &d),
                     AUTH_ERR_DENIED);
    assert_non_null(strstr(d.msg, "unknown"));
    assert_int_equal(auth_key_lookup(f->c, "mc_nope", 7, NOW_MS, &who, &d), ERR_PARSE);

    /* List: both, no hash; revoke one; list without and with revoked. */
    struct buf out;
    buf_init(&out, 1 << 16);
    assert_int_equal(auth_key_list(f->c, 0, &out, &d), 0);
    json_t *j = parse_json(&out);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), id2);
    assert_null(json_object_get(json_array_get(items, 0), "hash"));
    assert_null(strstr(out.p, "sha256"));
    assert_true(json_is_null(json_object_get(json_array_get(items, 0), "last_used_at")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1),
                                                          "created_by")), "cli");
    json_decref(j);

    assert_int_equal(auth_key_revoke(f->c, id, NOW_MS + 5, &d), 0);
    assert_int_equal(auth_key_revoke(f->c, id, NOW_MS + 9, &d), 0); /* idempotent */
    assert_int_equal(auth_key_revoke(f->c, "zzzzzzzz", NOW_MS, &d), ERR_NOTFOUND);
    assert_int_equal(auth_key_revoke(f->c, "../x", NOW_MS, &d), ERR_NOTFOUND);
    assert_int_equal(auth_key_lookup(f->c, key, strlen(key), NOW_MS, &who, &d),
                     AUTH_ERR_DENIED);
    assert_non_null(strstr(d.msg, "revoked"));
    buf_reset(&out);
    assert_int_equal(auth_key_list(f->c, 0, &out, &d), 0);
    j = parse_json(&out);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
    buf_reset(&out);
    assert_int_equal(auth_key_list(f->c, 1, &out, &d), 0);
    j = parse_json(&out);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_true(json_is_string(json_object_get(json_array_get(items, 1), "revoked_at")));
    json_decref(j);
    buf_free(&out);

    assert_int_equal(auth_key_create(f->c, "", AUTH_ROLE_VIEWER, NULL, NOW_MS, key, id, &d),
                     ERR_INVAL);
    assert_int_equal(auth_key_create(f->c, "a\nb", AUTH_ROLE_VIEWER, NULL, NOW_MS, key, id,
                                     &d), ERR_INVAL);
    assert_int_equal(auth_key_create(f->c, "x", AUTH_ROLE_VIEWER, "a b", NOW_MS, key, id,
                                     &d), ERR_INVAL);
    assert_int_equal(auth_key_create(f->c, "x", (enum auth_role)42, NULL, NOW_MS, key, id,
                                     &d), ERR_INVAL);
}

static void test_audit(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char longpath[3000];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    for (int i = 0; i < 7; i++) {
        struct auth_audit a = {
            .at_ms = NOW_MS + i / 2, /* ties on at: the id orders them */
            .actor = i % 2 ? "abcdefgh" : NULL,
            .role = i % 2 ? "admin" : NULL,
            .ip = "192.0.2.1",
            .method = "POST",
            .path = i == 3 ? "/api/v1/models/\xff\xfe\xc3" : i == 4 ? longpath : "/api/v1/keys",
            .resource = i < 5 ? "keys" : "models",
            .resource_id = "k1",
            .request_id = "req-1",
            .status = 200 + i,
            .outcome = "ok",
        };
        char id[37];
        int rc = auth_audit_write(f->c, &a, id, &d);
        if (rc)
            fail_msg("audit write %d = %s: %s", i, err_name(rc), d.msg);
        assert_int_equal(strlen(id), 36);
    }
    struct auth_audit bad = {.at_ms = NOW_MS, .method = "GET", .status = 200};
    assert_int_equal(auth_audit_write(f->c, &bad, NULL, &d), ERR_INVAL);

    /* Page through everything two at a time: 7 distinct rows, newest first. */
    struct auth_audit_filter flt = {.limit = 2};
    char cursor[256] = "", seen[8][37], prev_at[40] = "9999", prev_id[37] = "";
    int total = 0;
    struct buf out;
    buf_init(&out, 1 << 16);
    for (int page = 0; page < 10; page++) {
        buf_reset(&out);
        flt.cursor = cursor[0] ? cursor : NULL;
        int rc = auth_audit_list(f->c, &flt, &out, &d);
        if (rc)
            fail_msg("list = %s: %s", err_name(rc), d.msg);
        json_t *j = parse_json(&out);
        json_t *items = json_object_get(j, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            const char *at = json_string_value(json_object_get(it, "at"));
            const char *id = json_string_value(json_object_get(it, "id"));
            assert_non_null(at);
            assert_non_null(id);
            /* Strictly descending (at, id): newest first, ties by id. */
            int c = strcmp(at, prev_at);
            assert_true(c < 0 || (c == 0 && strcmp(id, prev_id) < 0));
            snprintf(prev_at, sizeof(prev_at), "%s", at);
            snprintf(prev_id, sizeof(prev_id), "%s", id);
            const char *path = json_string_value(json_object_get(it, "path"));
            assert_non_null(path);
            assert_true(strlen(path) < 1024);
            assert_true(codec_utf8_valid(path, strlen(path)));
            assert_true(total < 8);
            snprintf(seen[total++], 37, "%s", id);
        }
        json_t *nc = json_object_get(j, "next_cursor");
        if (json_is_null(nc)) {
            json_decref(j);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(nc));
        json_decref(j);
    }
    assert_int_equal(total, 7);
    for (int i = 0; i < total; i++)
        for (int k = i + 1; k < total; k++)
            assert_string_not_equal(seen[i], seen[k]);

    struct auth_audit_filter by_actor = {.actor = "abcdefgh", .resource = "keys", .limit = 50};
    buf_reset(&out);
    assert_int_equal(auth_audit_list(f->c, &by_actor, &out, &d), 0);
    json_t *j = parse_json(&out);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 2); /* i = 1, 3 */
    json_decref(j);

    struct auth_audit_filter bad_cur = {.limit = 5, .cursor = "bm90LWEtY3Vyc29y"};
    assert_int_equal(auth_audit_list(f->c, &bad_cur, &out, &d), ERR_PARSE);
    bad_cur.cursor = "!!";
    assert_int_equal(auth_audit_list(f->c, &bad_cur, &out, &d), ERR_PARSE);
    struct auth_audit_filter bad_utf8 = {.actor = "\xff", .limit = 5};
    assert_int_equal(auth_audit_list(f->c, &bad_utf8, &out, &d), ERR_INVAL);
    struct auth_audit_filter bad_lim = {.limit = 0};
    assert_int_equal(auth_audit_list(f->c, &bad_lim, &out, &d), ERR_RANGE);
    buf_free(&out);

    int64_t deleted = 0;
    assert_int_equal(auth_audit_prune(f->c, NOW_MS + 2, &deleted, &d), 0);
    assert_int_equal(deleted, 4);
}

/* --- rate limiter --- */

static void test_rl_parse(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_rl_opts o = {0};
    assert_int_equal(auth_rl_parse("20/s,burst=40", &o, &d), 0);
    assert_true(o.rate == 20 && o.burst == 40 && o.max_entries == 16384);
    assert_int_equal(auth_rl_parse("600/min", &o, &d), 0);
    assert_true(o.rate == 10 && o.burst == 10);
    assert_int_equal(auth_rl_parse("1/h", &o, &d), 0);
    assert_true(o.rate > 0.000277 && o.rate < 0.000278 && o.burst == 1);
    assert_int_equal(auth_rl_parse("2.5/second,burst=3", &o, &d), 0);
    assert_true(o.rate == 2.5 && o.burst == 3);
    assert_int_equal(auth_rl_parse("off", &o, &d), 0);
    assert_true(o.rate == 0);
    static const char *const bad[] = {"", "20", "20/", "20/d", "/s", "-1/s", "1e3/s",
                                      "20/s,", "20/s,burst", "20/s,burst=", "20/s,burst=1.5",
                                      "20/s,burst=x", "20/s,burst=5,", "20 /s", "0x10/s",
                                      "20/s;burst=4", "inf/s", ".5/s", "5./s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (auth_rl_parse(bad[i], &o, &d) != ERR_PARSE)
            fail_msg("'%s' was accepted", bad[i]);
    assert_int_equal(auth_rl_parse("0/s", &o, &d), ERR_RANGE);
    /* Found by fuzz_auth: a huge rate once gave a default burst over the cap. */
    assert_int_equal(auth_rl_parse("60000000/min", &o, &d), 0);
    assert_true(o.rate == 1e6 && o.burst == 1e6);
    assert_int_equal(auth_rl_parse("262626221/m", &o, &d), ERR_RANGE);
    assert_int_equal(auth_rl_parse("1000001/s", &o, &d), ERR_RANGE);
    assert_int_equal(auth_rl_parse("5/s,burst=0", &o, &d), ERR_RANGE);
    assert_int_equal(auth_rl_parse(NULL, &o, &d), ERR_PARSE);
}

static void test_rl_burst_recovery(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_rl_opts o = {.rate = 2, .burst = 4, .max_entries = 64};
    struct auth_rl *rl;
    assert_int_equal(auth_rl_create(&o, &rl, &d), 0);
    int64_t t = 1000000000LL;
    double retry = -1;
    for (int i = 0; i < 4; i++)
        assert_int_equal(auth_rl_take(rl, "k1", t, &retry), 0);
    assert_int_equal(auth_rl_take(rl, "k1", t, &retry), 1);
    assert_true(retry > 0.49 && retry <= 0.5);
    assert_int_equal(auth_rl_take(rl, "k2", t, &retry), 0); /* other keys unaffected */
    t += 250000000LL; /* half a token */
    assert_int_equal(auth_rl_take(rl, "k1", t, &retry), 1);
    assert_true(retry > 0.24 && retry <= 0.25);
    t += 250000000LL;
    assert_int_equal(auth_rl_take(rl, "k1", t, &retry), 0);
    assert_int_equal(auth_rl_take(rl, "k1", t, &retry), 1);
    /* A clock stepping back refills nothing. */
    assert_int_equal(auth_rl_take(rl, "k1", t - 5000000000LL, &retry), 1);
    /* A long idle refills only up to the burst. */
    t += 3600 * 1000000000LL;
    for (int i = 0; i < 4; i++)
        assert_int_equal(auth_rl_take(rl, "k1", t, NULL), 0);
    assert_int_equal(auth_rl_take(rl, "k1", t, NULL), 1);
    auth_rl_destroy(rl);

    struct auth_rl_opts off = {.rate = 0, .burst = 1, .max_entries = 64};
    assert_int_equal(auth_rl_create(&off, &rl, &d), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(auth_rl_take(rl, "k", 0, NULL), 0);
    auth_rl_destroy(rl);
    struct auth_rl_opts bad = {.rate = 1, .burst = 0.5, .max_entries = 64};
    assert_int_equal(auth_rl_create(&bad, &rl, &d), ERR_RANGE);
    bad.burst = 1, bad.max_entries = 3;
    assert_int_equal(auth_rl_create(&bad, &rl, &d), ERR_RANGE);
}

static void test_rl_eviction(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_rl_opts o = {.rate = 1, .burst = 2, .max_entries = 64};
    struct auth_rl *rl;
    assert_int_equal(auth_rl_create(&o, &rl, &d), 0);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "2001:db8::%x", i);
        assert_int_equal(auth_rl_take(rl, key, 0, NULL), 0);
        assert_true(auth_rl_entries(rl) <= 64);
    }
    assert_int_equal(auth_rl_entries(rl), 64);
    /* A hot key survives the churn when it keeps being used. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(auth_rl_take(rl, "hot", 0, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "198.51.100.%d/%d", i % 256, i);
        assert_int_equal(auth_rl_take(rl, key, 0, NULL), 0);
        if (i % 2 == 0)
            assert_int_equal(auth_rl_take(rl, "hot", 0, NULL), 1);
    }
    /* Keys longer than AUTH_RL_KEY_MAX share the bucket of their prefix. */
    char longk[200];
    memset(longk, 'x', sizeof(longk) - 1);
    longk[sizeof(longk) - 1] = '\0';
    assert_int_equal(auth_rl_take(rl, longk, 0, NULL), 0);
    longk[150] = 'y';
    assert_int_equal(auth_rl_take(rl, longk, 0, NULL), 0);
    assert_int_equal(auth_rl_take(rl, longk, 0, NULL), 1);
    auth_rl_destroy(rl);
}

/* Every allocation failure of auth_rl_create is ERR_NOMEM and leaks nothing. */
static void test_rl_nomem(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_rl_opts o = {.rate = 1, .burst = 1, .max_entries = 256};
    int ok = 0;
    for (long n = 0; n < 64 && !ok; n++) {
        struct auth_rl *rl = NULL;
        mem_fail_after(n);
        int rc = auth_rl_create(&o, &rl, &d);
        mem_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(auth_rl_take(rl, "k", 0, NULL), 0);
            auth_rl_destroy(rl);
            ok = 1;
        } else {
            assert_int_equal(rc, ERR_NOMEM);
            assert_null(rl);
        }
    }
    assert_true(ok);
}

#define THREADS 8
#define TAKES 20000
#define KEYS 100

struct hammer {
    struct auth_rl *rl;
    int seed;
    long allowed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    char key[16];
    for (int i = 0; i < TAKES; i++) {
        snprintf(key, sizeof(key), "key-%d", (i * 7 + h->seed) % KEYS);
        if (auth_rl_take(h->rl, key, 42, NULL) == 0)
            h->allowed++;
    }
    return NULL;
}

static void test_rl_threads(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_rl_opts o = {.rate = 5, .burst = 10, .max_entries = 16384};
    struct auth_rl *rl;
    assert_int_equal(auth_rl_create(&o, &rl, &d), 0);
    pthread_t th[THREADS];
    struct hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){rl, i * 13, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += h[i].allowed;
    }
    /* Time stands still: exactly one burst per key, whatever the interleaving. */
    assert_int_equal(total, KEYS * 10);
    assert_int_equal(auth_rl_entries(rl), KEYS);
    auth_rl_destroy(rl);
}

/* --- Authorization header --- */

static void test_authorization(void **state)
{
    (void)state;
    struct err_detail d;
    struct auth_bearer b;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF], hdr[AUTH_HEADER_MAX + 64];
    assert_int_equal(auth_key_generate(key, id, &d), 0);
    assert_int_equal(auth_parse_authorization(NULL, &b, &d), 0);
    assert_int_equal(b.kind, AUTH_CRED_NONE);
    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    assert_int_equal(auth_parse_authorization(hdr, &b, &d), 0);
    assert_int_equal(b.kind, AUTH_CRED_KEY);
    assert_int_equal(b.len, 55);
    assert_memory_equal(b.tok, key, 55);
    snprintf(hdr, sizeof(hdr), " \tbearer   %s \t", "eyJh.eyJz.c2ln");
    assert_int_equal(auth_parse_authorization(hdr, &b, &d), 0);
    assert_int_equal(b.kind, AUTH_CRED_JWT);
    assert_int_equal(b.len, 14);
    assert_int_equal(auth_parse_authorization("BEARER a.b.", &b, &d), 0);
    assert_int_equal(b.kind, AUTH_CRED_JWT); /* empty signature: the verifier refuses */

    static const char *const bad[] = {
        "", "   ", "Bearer", "Bearer ", "Bearer\t", "Basic dXNlcjpwYXNz", "Token abc",
        "Bearerx mc_abc", "Bearer a b", "Bearer abc", "Bearer a.b", "Bearer a..c",
        "Bearer a.b.c.d", "Bearer .b.c", "Bearer a=b.c.d", "Bearer a.b.c\r\nX: y",
        "Bearer \x01mc_x", "Bearer mc_\x7f", "Bearer mc_\xc3\xa9", "Bearer a/b.c.d",
        "Bearer mc_abc,", "mc_abcdefgh_secret",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&d);
        int rc = auth_parse_authorization(bad[i], &b, &d);
        if (rc != ERR_PARSE)
            fail_msg("'%s' gave %s", bad[i], err_name(rc));
        assert_int_equal(b.kind, AUTH_CRED_NONE);
    }
    /* The message never quotes a credential, even one sent without a scheme. */
    assert_int_equal(auth_parse_authorization(key, &b, &d), ERR_PARSE);
    assert_null(strstr(d.msg, key + 12));
    memset(hdr, 'A', sizeof(hdr) - 1);
    memcpy(hdr, "Bearer ", 7);
    hdr[sizeof(hdr) - 1] = '\0';
    assert_int_equal(auth_parse_authorization(hdr, &b, &d), ERR_TOOBIG);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

/*
 * Runs everything on SQLite; with MODELCAT_TEST_PG_URL set, runs the store
 * tests again on PostgreSQL (the same SQL text must work on both).
 */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_generate_parse),
        cmocka_unit_test(test_key_hash),
        cmocka_unit_test(test_roles_perms),
        cmocka_unit_test(test_bootstrap),
        FX(test_key_store),
        FX(test_audit),
        cmocka_unit_test(test_rl_parse),
        cmocka_unit_test(test_rl_burst_recovery),
        cmocka_unit_test(test_rl_eviction),
        cmocka_unit_test(test_rl_threads),
        cmocka_unit_test(test_rl_nomem),
        cmocka_unit_test(test_authorization),
    };
    const struct CMUnitTest store_tests[] = {
        FX(test_key_store),
        FX(test_audit),
    };
    int failed = cmocka_run_group_tests_name("auth", tests, NULL, NULL);
    const char *u = getenv("MODELCAT_TEST_PG_URL");
    if (u && *u) {
        pg_url = u;
        failed += cmocka_run_group_tests_name("auth_postgres", store_tests, NULL, NULL);
    } else if (getenv("MODELCAT_TEST_PG_REQUIRED")) {
        fprintf(stderr, "MODELCAT_TEST_PG_REQUIRED is set but MODELCAT_TEST_PG_URL is not\n");
        failed++;
    }
    return failed;
}
