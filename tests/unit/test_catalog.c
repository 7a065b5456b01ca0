/*
 * Unit tests of src/catalog against a real SQLite store in a temporary
 * file: validation, ETags and If-Match, keyset pagination, costs, run
 * creation with Idempotency-Key, deletes with references, migrations.
 * Each test gets a fresh, migrated store; the files are removed after it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/codec.h"
#include "db/db.h"
#include "db/migrate.h"

#define OUT_MAX (1 << 20)

struct fx {
    struct db *db;
    struct db_conn *c;
    char path[256];
};

/* --- fixture --- */

static void remove_store(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static int fx_setup(void **state)
{
    static int seq;
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(f->path, sizeof(f->path), "/tmp/modelcat-unit-%ld-%d-%ld.db", (long)getpid(),
             seq++, (long)ts.tv_nsec);
    remove_store(f->path);
    char url[300];
    snprintf(url, sizeof(url), "sqlite:%s", f->path);
    struct db_opts o = {.max_conns = 2, .busy_timeout_ms = 2000, .sync_full = 0};
    struct err_detail d;
    int rc = db_open(url, &o, &f->db, &d);
    if (rc)
        fail_msg("db_open(%s) = %s: %s", url, err_name(rc), d.msg);
    int applied = -1;
    rc = db_migrate(f->db, &applied, &d);
    if (rc)
        fail_msg("db_migrate = %s: %s", err_name(rc), d.msg);
    assert_true(applied >= 1);
    rc = db_acquire(f->db, &f->c, &d);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->c)
        db_release(f->db, f->c);
    db_close(f->db);
    remove_store(f->path);
    assert_int_equal(access(f->path, F_OK), -1);
    free(f);
    return 0;
}

/* --- helpers --- */

static json_t *model_body(const char *id, const char *name, double params)
{
    json_t *b = json_pack("{s:s, s:s, s:f}", "id", id, "name", name, "parameters_b", params);
    assert_non_null(b);
    return b;
}

/* Sets member k of body to v (stolen) and returns body. */
static json_t *with(json_t *body, const char *k, json_t *v)
{
    assert_int_equal(json_object_set_new(body, k, v), 0);
    return body;
}

static json_t *parse(const struct buf *b)
{
    json_error_t e;
    json_t *v = json_loadb(b->p, b->len, 0, &e);
    if (!v)
        fail_msg("output is not JSON (%s): %.*s", e.text, (int)b->len, b->p);
    return v;
}

/*
 * Runs cat_model_write and consumes body. On success, *item (if given) gets
 * the parsed representation and etag its ETag.
 */
static int model_write(struct fx *f, enum cat_write how, const char *id, json_t *body,
                       const char *if_match, char etag[21], json_t **item,
                       struct err_detail *d)
{
    struct buf out;
    char tag[21] = "";
    buf_init(&out, OUT_MAX);
    err_clear(d);
    int rc = cat_model_write(f->c, how, id, body, if_match, &out, tag, d);
    if (!rc && item)
        *item = parse(&out);
    if (etag)
        memcpy(etag, tag, sizeof(tag));
    buf_free(&out);
    json_decref(body);
    return rc;
}

static void create_model_ok(struct fx *f, json_t *body)
{
    struct err_detail d;
    int rc = model_write(f, CAT_CREATE, NULL, body, NULL, NULL, NULL, &d);
    if (rc)
        fail_msg("create: %s field '%s': %s", err_name(rc), d.field, d.msg);
}

static void expect_create_err(struct fx *f, json_t *body, int code, const char *field)
{
    struct err_detail d;
    int rc = model_write(f, CAT_CREATE, NULL, body, NULL, NULL, NULL, &d);
    if (rc != code || strcmp(d.field, field) != 0)
        fail_msg("create = %s field '%s' (%s), want %s field '%s'", err_name(rc), d.field,
                 d.msg, err_name(code), field);
    assert_true(strlen(d.msg) > 0);
}

/* cat_model_get into a parsed item (caller decrefs) and its ETag. */
static json_t *model_get(struct fx *f, const char *id, char etag[21])
{
    struct buf out;
    struct err_detail d;
    buf_init(&out, OUT_MAX);
    int rc = cat_model_get(f->c, id, &out, etag, &d);
    if (rc)
        fail_msg("get %s: %s: %s", id, err_name(rc), d.msg);
    json_t *v = parse(&out);
    buf_free(&out);
    return v;
}

static int model_get_rc(struct fx *f, const char *id)
{
    struct buf out;
    struct err_detail d;
    char etag[21];
    buf_init(&out, OUT_MAX);
    int rc = cat_model_get(f->c, id, &out, etag, &d);
    buf_free(&out);
    return rc;
}

/* One page of GET /models; *page gets the parsed body on success. */
static int list_page(struct fx *f, const char *sort, int limit, const char *cursor,
                     json_t **page, struct err_detail *d)
{
    struct cat_model_filter flt;
    struct cat_page pg = {limit, cursor, sort};
    struct buf out;
    memset(&flt, 0, sizeof(flt));
    buf_init(&out, OUT_MAX);
    err_clear(d);
    int rc = cat_model_list(f->c, &flt, &pg, &out, d);
    if (!rc)
        *page = parse(&out);
    buf_free(&out);
    return rc;
}

static const char *str_of(json_t *item, const char *k)
{
    const char *s = json_string_value(json_object_get(item, k));
    assert_non_null(s);
    return s;
}

/* Sign of (a - b) for the sort key `key` of two items; text or number. */
static int key_cmp(json_t *a, json_t *b, const char *key)
{
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    if (json_is_string(x))
        return strcmp(json_string_value(x), json_string_value(y));
    double p = json_number_value(x), q = json_number_value(y);
    return (p > q) - (p < q);
}

/*
 * Walks every page of sort with limit and checks: each of the n models
 * (org/m00..) is visited exactly once, pages are full until the last, and
 * consecutive items are in (key, id) order, ascending or descending.
 */
static void walk_all(struct fx *f, const char *sort, const char *key, int limit, int n)
{
    int seen[64] = {0}, total = 0, pages = 0, desc = sort[0] == '-';
    char *cursor = NULL;
    json_t *prev = NULL;
    for (;;) {
        json_t *page = NULL;
        struct err_detail d;
        int rc = list_page(f, sort, limit, cursor, &page, &d);
        if (rc)
            fail_msg("sort %s page %d: %s %s", sort, pages, err_name(rc), d.msg);
        pages++;
        json_t *items = json_object_get(page, "items");
        assert_true(json_is_array(items));
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            int k = -1;
            assert_int_equal(sscanf(str_of(it, "id"), "org/m%d", &k), 1);
            assert_true(k >= 0 && k < n);
            if (seen[k]++)
                fail_msg("sort %s: org/m%02d seen twice", sort, k);
            total++;
            if (prev) {
                int c = key_cmp(prev, it, key);
                if (c == 0)
                    c = strcmp(str_of(prev, "id"), str_of(it, "id"));
                if (desc ? c <= 0 : c >= 0)
                    fail_msg("sort %s: %s before %s is out of order", sort,
                             str_of(prev, "id"), str_of(it, "id"));
                json_decref(prev);
            }
            prev = json_incref(it);
        }
        json_t *next = json_object_get(page, "next_cursor");
        free(cursor);
        cursor = NULL;
        if (json_is_null(next)) {
            assert_true(json_array_size(items) <= (size_t)limit);
            json_decref(page);
            break;
        }
        assert_true(json_is_string(next));
        assert_int_equal(json_array_size(items), limit);
        cursor = strdup(json_string_value(next));
        json_decref(page);
        assert_true(pages <= n);
    }
    json_decref(prev);
    assert_int_equal(total, n);
    assert_int_equal(pages, (n + limit - 1) / limit);
    for (int k = 0; k < n; k++)
        assert_int_equal(seen[k], 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * n models org/m00.. created in a shuffled order, with repeated names and
 * sizes (so the id must break ties) and a few distinct creation times.
 */
static void make_models(struct fx *f, int n)
{
    for (int j = 0; j < n; j++) {
        int i = (j * 7) % n; /* n is not a multiple of 7 */
        char id[32], name[32];
        snprintf(id, sizeof(id), "org/m%02d", i);
        snprintf(name, sizeof(name), "Model %c", 'A' + (i * 3) % 5);
        create_model_ok(f, model_body(id, name, 0.5 + (i % 4)));
        if (j % 6 == 5)
            sleep_ms(3);
    }
}

static json_t *hw_body(const char *id, double on_demand, int gpus_per_instance)
{
    json_t *b = json_pack("{s:s, s:s, s:f, s:i, s:f}", "id", id, "gpu", "H100",
                          "memory_gb", 80.0, "gpus_per_instance", gpus_per_instance,
                          "on_demand_usd_per_hour", on_demand);
    assert_non_null(b);
    return b;
}

static void create_hw_ok(struct fx *f, json_t *body)
{
    struct buf out;
    struct err_detail d;
    char etag[21];
    buf_init(&out, OUT_MAX);
    int rc = cat_hw_write(f->c, CAT_CREATE, NULL, body, NULL, &out, etag, &d);
    if (rc)
        fail_msg("hardware create: %s field '%s': %s", err_name(rc), d.field, d.msg);
    buf_free(&out);
    json_decref(body);
}

static json_t *run_body(const char *model, const char *hw, int gpu_count, double out_tps)
{
    json_t *b = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:f, s:i, s:i, s:i, s:f, s:f, s:f,"
        " s:[{s:i, s:i, s:i, s:i, s:i, s:i}, {s:i, s:i, s:n, s:n, s:i, s:i, s:s}]}",
        "model", model, "engine", "vllm", "hardware", hw, "gpu_count", gpu_count,
        "dataset", "sharegpt", "duration", 10.0, "completed", 100,
        "total_input_tokens", 1000, "total_output_tokens", 10000,
        "request_throughput", 10.0, "output_throughput", out_tps,
        "total_token_throughput", out_tps + 100.0, "samples",
        "scheduled_ns", 0, "sent_ns", 10, "first_token_ns", 100, "last_token_ns", 900,
        "input_tokens", 12, "output_tokens", 80,
        "scheduled_ns", 5, "sent_ns", 15, "first_token_ns", "last_token_ns",
        "input_tokens", 9, "output_tokens", 0, "error", "timeout");
    assert_non_null(b);
    return b;
}

/* cat_run_create; body is consumed. */
static int run_create(struct fx *f, json_t *body, const char *key, char id[37], int *replayed,
                      json_t **item, struct err_detail *d)
{
    struct buf out;
    char etag[21];
    buf_init(&out, OUT_MAX);
    err_clear(d);
    int rc = cat_run_create(f->c, body, key, &out, etag, id, replayed, d);
    if (!rc && item)
        *item = parse(&out);
    buf_free(&out);
    json_decref(body);
    return rc;
}

static int run_get_rc(struct fx *f, const char *id)
{
    struct buf out;
    struct err_detail d;
    char etag[21];
    buf_init(&out, OUT_MAX);
    int rc = cat_run_get(f->c, id, &out, etag, &d);
    buf_free(&out);
    return rc;
}

/* --- validation --- */

static void test_create_and_render(void **state)
{
    struct fx *f = *state;
    json_t *b = model_body("meta-llama/Llama-3.1-8B", "Llama 3.1 8B", 8.03);
    with(b, "context_length", json_integer(131072));
    with(b, "quantization", json_string("fp8"));
    with(b, "tags", json_pack("[s,s,s,s]", "chat", "open", "chat", "open"));
    with(b, "created_at", json_string("1999-01-01T00:00:00.000Z")); /* server-set: ignored */
    create_model_ok(f, b);
    char etag[21];
    json_t *m = model_get(f, "meta-llama/Llama-3.1-8B", etag);
    assert_string_equal(str_of(m, "name"), "Llama 3.1 8B");
    assert_true(json_real_value(json_object_get(m, "parameters_b")) == 8.03);
    assert_int_equal(json_integer_value(json_object_get(m, "context_length")), 131072);
    assert_string_equal(str_of(m, "quantization"), "fp8");
    assert_true(json_is_null(json_object_get(m, "family")));
    /* Tags deduplicated, first occurrence order kept. */
    json_t *tags = json_object_get(m, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "chat");
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "open");
    assert_string_not_equal(str_of(m, "created_at"), "1999-01-01T00:00:00.000Z");
    assert_int_equal(strlen(str_of(m, "created_at")), 24);
    assert_string_equal(str_of(m, "created_at"), str_of(m, "updated_at"));
    json_decref(m);

    /* The same id again. */
    expect_create_err(f, model_body("meta-llama/Llama-3.1-8B", "x", 1), ERR_EXISTS, "id");
    assert_int_equal(model_get_rc(f, "meta-llama/none"), ERR_NOTFOUND);
}

static void test_validation(void **state)
{
    struct fx *f = *state;
    json_t *b = json_pack("{s:s, s:f}", "id", "org/x", "parameters_b", 1.0);
    expect_create_err(f, b, ERR_INVAL, "name");
    b = json_pack("{s:s, s:n, s:f}", "id", "org/x", "name", "parameters_b", 1.0);
    expect_create_err(f, b, ERR_INVAL, "name");
    expect_create_err(f, json_pack("{s:s, s:s}", "id", "org/x", "name", "X"), ERR_INVAL,
                      "parameters_b");
    /* parameters_b has an exclusive minimum of 0. */
    expect_create_err(f, model_body("org/x", "X", 0.0), ERR_RANGE, "parameters_b");
    expect_create_err(f, model_body("org/x", "X", -1.0), ERR_RANGE, "parameters_b");
    expect_create_err(f, model_body("org/x", "X", 100000.5), ERR_RANGE, "parameters_b");
    expect_create_err(f, with(model_body("org/x", "X", 1), "parameters_b", json_string("7")),
                      ERR_INVAL, "parameters_b");
    /* Unknown members are named. */
    expect_create_err(f, with(model_body("org/x", "X", 1), "bogus", json_integer(1)),
                      ERR_INVAL, "bogus");
    expect_create_err(f, with(model_body("org/x", "X", 1), "Name", json_string("y")),
                      ERR_INVAL, "Name");
    /* Ids look like org/name. */
    static const char *const bad_ids[] = {"noslash", "/name", "org/", ".org/x", "org/-x",
                                          "org/x/y", "org/x y", "org/\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
        expect_create_err(f, model_body(bad_ids[i], "X", 1), ERR_INVAL, "id");
    expect_create_err(f, model_body("o/", "X", 1), ERR_RANGE, "id"); /* under 3 chars */
    /* Quantization is a lowercase slug. */
    expect_create_err(f, with(model_body("org/x", "X", 1), "quantization", json_string("FP8")),
                      ERR_INVAL, "quantization");
    expect_create_err(f, with(model_body("org/x", "X", 1), "context_length", json_real(1.5)),
                      ERR_INVAL, "context_length");
    expect_create_err(f, with(model_body("org/x", "X", 1), "context_length", json_integer(0)),
                      ERR_RANGE, "context_length");
    expect_create_err(f, with(model_body("org/x", "X", 1), "name", json_string("a\nb")),
                      ERR_INVAL, "name");
    expect_create_err(f, with(model_body("org/x", "X", 1), "source_uri",
                              json_string("ftp://x")), ERR_INVAL, "source_uri");
    /* Nothing of the refused bodies was stored. */
    assert_int_equal(model_get_rc(f, "org/x"), ERR_NOTFOUND);
    /* Not an object at all. */
    struct err_detail d;
    assert_int_equal(model_write(f, CAT_CREATE, NULL, json_pack("[i]", 1), NULL, NULL, NULL,
                                 &d), ERR_PARSE);
    /* Borderline values are accepted. */
    create_model_ok(f, model_body("a/b", "X", 1e-9));
    create_model_ok(f, model_body("org/x", "X", 100000));
}

static json_t *tags_body(const char *id, int n, int distinct)
{
    json_t *tags = json_array();
    for (int i = 0; i < n; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", distinct ? i : i % 3);
        json_array_append_new(tags, json_string(t));
    }
    return with(model_body(id, "X", 1), "tags", tags);
}

static void test_tags(void **state)
{
    struct fx *f = *state;
    create_model_ok(f, tags_body("org/t32", 32, 1));
    expect_create_err(f, tags_body("org/t33", 33, 1), ERR_RANGE, "tags");
    /* Duplicates collapse. */
    create_model_ok(f, tags_body("org/dup", 9, 0));
    char etag[21];
    json_t *m = model_get(f, "org/dup", etag);
    assert_int_equal(json_array_size(json_object_get(m, "tags")), 3);
    json_decref(m);
    m = model_get(f, "org/t32", etag);
    assert_int_equal(json_array_size(json_object_get(m, "tags")), 32);
    json_decref(m);
    expect_create_err(f, with(model_body("org/u", "X", 1), "tags", json_pack("[s]", "Chat")),
                      ERR_INVAL, "tags");
    expect_create_err(f, with(model_body("org/u", "X", 1), "tags", json_pack("[i]", 1)),
                      ERR_INVAL, "tags");
    expect_create_err(f, with(model_body("org/u", "X", 1), "tags", json_string("chat")),
                      ERR_INVAL, "tags");
    /* The tag filter finds the model by a deduplicated tag. */
    struct cat_model_filter flt;
    struct cat_page pg = {10, NULL, NULL};
    struct buf out;
    struct err_detail d;
    memset(&flt, 0, sizeof(flt));
    flt.tags[flt.ntags++] = "t2";
    buf_init(&out, OUT_MAX);
    assert_int_equal(cat_model_list(f->c, &flt, &pg, &out, &d), 0);
    json_t *page = parse(&out);
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2); /* org/dup and org/t32 */
    json_decref(page);
    buf_free(&out);
}

/* --- ETags and If-Match --- */

static void test_etag_and_if_match(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char e0[21], e1[21], e2[21], e3[21];
    assert_int_equal(model_write(f, CAT_CREATE, NULL, model_body("org/e", "Before", 7), NULL,
                                 e0, NULL, &d), 0);
    json_t *a = model_get(f, "org/e", e1);
    json_t *b = model_get(f, "org/e", e2);
    assert_string_equal(e0, e1);          /* the write returns the item's ETag */
    assert_string_equal(e1, e2);          /* stable across reads */
    assert_true(json_equal(a, b));
    assert_int_equal(strlen(e1), 18);
    assert_int_equal(e1[0], '"');
    assert_int_equal(e1[17], '"');
    json_decref(a);
    json_decref(b);

    /* A stale If-Match is refused and changes nothing. */
    assert_int_equal(model_write(f, CAT_REPLACE, "org/e", model_body("org/e", "Nope", 7),
                                 "\"0000000000000000\"", NULL, NULL, &d), ERR_PRECOND);
    assert_int_equal(model_write(f, CAT_REPLACE, "org/e", model_body("org/e", "Nope", 7),
                                 "W/\"0000000000000000\"", NULL, NULL, &d), ERR_PRECOND);
    char weak[32];
    snprintf(weak, sizeof(weak), "W/%s", e1);
    assert_int_equal(model_write(f, CAT_REPLACE, "org/e", model_body("org/e", "Nope", 7),
                                 weak, NULL, NULL, &d), ERR_PRECOND);
    a = model_get(f, "org/e", e2);
    assert_string_equal(e1, e2);
    assert_string_equal(str_of(a, "name"), "Before");
    json_decref(a);

    /* A replace under the current ETag changes the representation and its ETag. */
    json_t *item = NULL;
    assert_int_equal(model_write(f, CAT_REPLACE, "org/e", json_pack("{s:s, s:s, s:f}", "id",
                                 "org/e", "name", "After", "parameters_b", 7.0), e1, e3, &item, &d), 0);
    assert_string_equal(str_of(item, "id"), "org/e");
    assert_string_equal(str_of(item, "name"), "After");
    json_decref(item);
    assert_string_not_equal(e3, e1);
    a = model_get(f, "org/e", e2);
    assert_string_equal(e2, e3);
    json_decref(a);
    /* The old ETag no longer matches; a list including the current one, or '*', does. */
    assert_int_equal(model_write(f, CAT_PATCH, "org/e", json_pack("{s:s}", "family", "x"),
                                 e1, NULL, NULL, &d), ERR_PRECOND);
    char list[64];
    snprintf(list, sizeof(list), "%s, %s", e1, e3);
    assert_int_equal(model_write(f, CAT_PATCH, "org/e", json_pack("{s:s}", "family", "x"),
                                 list, NULL, NULL, &d), 0);
    assert_int_equal(model_write(f, CAT_PATCH, "org/e", json_pack("{s:n}", "family"),
                                 "*", NULL, &item, &d), 0);
    assert_true(json_is_null(json_object_get(item, "family")));
    json_decref(item);
    /* The id in the path wins over nothing; a different id is refused. */
    assert_int_equal(model_write(f, CAT_PATCH, "org/e", json_pack("{s:s}", "id", "org/f"),
                                 NULL, NULL, NULL, &d), ERR_INVAL);
    assert_string_equal(d.field, "id");
    assert_int_equal(model_write(f, CAT_REPLACE, "org/e", model_body("org/f", "N", 1), NULL,
                                 NULL, NULL, &d), ERR_INVAL);
    assert_string_equal(d.field, "id");
    assert_int_equal(model_write(f, CAT_REPLACE, "org/missing", model_body("org/missing", "N",
                                 1), NULL, NULL, NULL, &d), ERR_NOTFOUND);
    /* Delete honours If-Match too. */
    a = model_get(f, "org/e", e2);
    json_decref(a);
    assert_int_equal(cat_model_delete(f->c, "org/e", 0, e1, &d), ERR_PRECOND);
    assert_int_equal(cat_model_delete(f->c, "org/e", 0, e2, &d), 0);
    assert_int_equal(model_get_rc(f, "org/e"), ERR_NOTFOUND);
    assert_int_equal(cat_model_delete(f->c, "org/e", 0, NULL, &d), ERR_NOTFOUND);
}

static void test_etag_matches(void **state)
{
    (void)state;
    const char *e = "\"0123456789abcdef\"";
    assert_int_equal(cat_etag_matches(NULL, e, 0), 0);
    assert_int_equal(cat_etag_matches("*", e, 0), 1);
    assert_int_equal(cat_etag_matches("\"0123456789abcdef\"", e, 0), 1);
    assert_int_equal(cat_etag_matches("\"x\", \"0123456789abcdef\"", e, 0), 1);
    assert_int_equal(cat_etag_matches("\"0123456789abcdee\"", e, 0), 0);
    assert_int_equal(cat_etag_matches("W/\"0123456789abcdef\"", e, 0), 0);
    assert_int_equal(cat_etag_matches("W/\"0123456789abcdef\"", e, 1), 1);
    assert_int_equal(cat_etag_matches("0123456789abcdef", e, 0), 0);
    assert_int_equal(cat_etag_matches("\"0123456789abcdef", e, 0), 0);
    assert_int_equal(cat_etag_matches("", e, 0), 0);
}

/* --- lists --- */

static void test_keyset_pagination(void **state)
{
    struct fx *f = *state;
    make_models(f, 25);
    walk_all(f, "name", "name", 7, 25);
    walk_all(f, "-name", "name", 7, 25);
    walk_all(f, "params", "parameters_b", 7, 25);
    walk_all(f, "-params", "parameters_b", 7, 25);
    walk_all(f, "created", "created_at", 7, 25);
    walk_all(f, "-created", "created_at", 7, 25);
    walk_all(f, "name", "name", 25, 25);
    walk_all(f, "-created", "created_at", 1, 25);
    /* The default sort is by name. */
    json_t *p1 = NULL, *p2 = NULL;
    struct err_detail d;
    assert_int_equal(list_page(f, NULL, 7, NULL, &p1, &d), 0);
    assert_int_equal(list_page(f, "name", 7, NULL, &p2, &d), 0);
    assert_true(json_equal(p1, p2));
    json_decref(p1);
    json_decref(p2);
}

static void test_cursor_errors(void **state)
{
    struct fx *f = *state;
    make_models(f, 10);
    json_t *page = NULL;
    struct err_detail d;
    assert_int_equal(list_page(f, "name", 3, NULL, &page, &d), 0);
    char *cur = strdup(json_string_value(json_object_get(page, "next_cursor")));
    json_decref(page);
    /* A cursor belongs to its sort. */
    assert_int_equal(list_page(f, "-name", 3, cur, &page, &d), ERR_PARSE);
    assert_string_equal(d.field, "cursor");
    assert_int_equal(list_page(f, "params", 3, cur, &page, &d), ERR_PARSE);
    assert_string_equal(d.field, "cursor");
    /* It still works with its own sort, and with another page size. */
    assert_int_equal(list_page(f, "name", 5, cur, &page, &d), 0);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 5);
    json_decref(page);
    free(cur);

    static const char *const garbage[] = {"garbage!", "x", "AAAA", "e30", "W10",
                                          "bm90IGpzb24"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_int_equal(list_page(f, "name", 3, garbage[i], &page, &d), ERR_PARSE);
        assert_string_equal(d.field, "cursor");
    }
    /* Well-formed, but for another list, or with the wrong key type. */
    static const char *const foreign[] = {
        "[\"hardware\",\"name\",\"x\",\"y\"]",
        "[\"models\",\"params\",\"x\",\"org/m01\"]",
        "[\"models\",\"name\",1,\"org/m01\"]",
        "[\"models\",\"name\",\"x\"]",
    };
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        struct buf b;
        buf_init(&b, 1024);
        codec_b64url_encode(&b, foreign[i], strlen(foreign[i]));
        const char *sort = strstr(foreign[i], "params") ? "params" : "name";
        assert_int_equal(list_page(f, sort, 3, b.p, &page, &d), ERR_PARSE);
        assert_string_equal(d.field, "cursor");
        buf_free(&b);
    }
    /* Unknown sort. */
    assert_int_equal(list_page(f, "size", 3, NULL, &page, &d), ERR_INVAL);
    assert_string_equal(d.field, "sort");
    assert_int_equal(list_page(f, "--name", 3, NULL, &page, &d), ERR_INVAL);
}

/* --- costs --- */

static void assert_near(double got, double want)
{
    if (!(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want))))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void test_cost_per_1m(void **state)
{
    (void)state;
    assert_near(cat_cost_per_1m(98.32, 8, 8, 1000), 98.32 / 3.6);
    assert_near(cat_cost_per_1m(98.32, 8, 8, 1000), 27.311111111111111);
    assert_near(cat_cost_per_1m(98.32, 1, 8, 1000), 98.32 / 3.6 / 8);
    assert_near(cat_cost_per_1m(3.6, 1, 1, 1), 1e3);
    assert_near(cat_cost_per_1m(0, 1, 1, 10), 0);
    assert_near(cat_cost_per_1m(10, 2, 1, 500), 10.0 * 2 / (500 * 3600.0) * 1e6);
    assert_true(cat_cost_per_1m(98.32, 8, 8, 0) == -1);
    assert_true(cat_cost_per_1m(98.32, 8, 8, -5) == -1);
    assert_true(cat_cost_per_1m(98.32, 8, 8, NAN) == -1);
    assert_true(cat_cost_per_1m(98.32, 0, 8, 1000) == -1);
    assert_true(cat_cost_per_1m(98.32, 8, 0, 1000) == -1);
    assert_true(cat_cost_per_1m(-1, 8, 8, 1000) == -1);
    assert_true(cat_cost_per_1m(NAN, 8, 8, 1000) == -1);
    assert_true(cat_cost_per_1m(INFINITY, 8, 8, 1000) == -1);
}

/* --- runs --- */

static void test_run_create_and_cost(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char id[37];
    int replayed = -1;
    json_t *item = NULL;
    create_model_ok(f, model_body("org/r", "R", 70));
    create_hw_ok(f, hw_body("p5-48xlarge", 98.32, 8));
    assert_int_equal(run_create(f, run_body("org/r", "p5-48xlarge", 8, 1000), NULL, id,
                                &replayed, &item, &d), 0);
    assert_int_equal(replayed, 0);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '7');
    assert_string_equal(str_of(item, "id"), id);
    assert_int_equal(json_integer_value(json_object_get(item, "sample_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(item, "failed")), 0); /* default */
    assert_near(json_number_value(json_object_get(item, "cost_per_1m_output_tokens_on_demand_usd")),
                98.32 / 3.6);
    assert_true(json_is_null(json_object_get(item, "cost_per_1m_output_tokens_spot_usd")));
    json_decref(item);
    assert_int_equal(run_create(f, run_body("org/r", "p5-48xlarge", 1, 1000), NULL, id,
                                &replayed, &item, &d), 0);
    assert_near(json_number_value(json_object_get(item, "cost_per_1m_output_tokens_on_demand_usd")),
                98.32 / 3.6 / 8);
    json_decref(item);

    /* The samples come back in order, as JSON and CSV. */
    struct buf out;
    buf_init(&out, OUT_MAX);
    assert_int_equal(cat_run_series(f->c, id, CAT_SERIES_REQUESTS, 1, &out, &d), 0);
    assert_string_equal(out.p, "scheduled_ns,sent_ns,first_token_ns,last_token_ns,"
                               "input_tokens,output_tokens,error\r\n"
                               "0,10,100,900,12,80,\r\n"
                               "5,15,,,9,0,\"timeout\"\r\n");
    buf_free(&out);

    /* References must exist. */
    assert_int_equal(run_create(f, run_body("org/none", "p5-48xlarge", 1, 1), NULL, id,
                                &replayed, NULL, &d), ERR_INVAL);
    assert_string_equal(d.field, "model");
    assert_int_equal(run_create(f, run_body("org/r", "nohw", 1, 1), NULL, id, &replayed,
                                NULL, &d), ERR_INVAL);
    assert_string_equal(d.field, "hardware");
    json_t *b = run_body("org/r", "p5-48xlarge", 1, 1);
    json_object_set_new(json_array_get(json_object_get(b, "samples"), 1), "bogus",
                        json_integer(1));
    assert_int_equal(run_create(f, b, NULL, id, &replayed, NULL, &d), ERR_INVAL);
    assert_string_equal(d.field, "samples[1].bogus");
}

static void test_run_idempotency(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char id1[37], id2[37], id3[37];
    int replayed = -1;
    json_t *first = NULL, *again = NULL;
    create_model_ok(f, model_body("org/r", "R", 70));
    create_hw_ok(f, hw_body("hw-1", 10, 1));
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 100), "key-1", id1, &replayed,
                                &first, &d), 0);
    assert_int_equal(replayed, 0);
    /* Same key, same body (members in another order): the same run again. */
    json_t *b = run_body("org/r", "hw-1", 1, 100);
    json_t *reordered = json_object();
    const char *k;
    json_t *v;
    const char *keys[64];
    size_t nk = 0;
    json_object_foreach(b, k, v) keys[nk++] = k;
    for (size_t i = nk; i-- > 0;)
        json_object_set(reordered, keys[i], json_object_get(b, keys[i]));
    json_decref(b);
    assert_int_equal(run_create(f, reordered, "key-1", id2, &replayed, &again, &d), 0);
    assert_int_equal(replayed, 1);
    assert_string_equal(id1, id2);
    assert_true(json_equal(first, again));
    json_decref(again);
    /* Same key, another body: refused, nothing created. */
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 101), "key-1", id3, &replayed,
                                NULL, &d), ERR_REPLAY);
    /* Another key: a new run; no key: a new run each time. */
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 100), "key-2", id3, &replayed,
                                NULL, &d), 0);
    assert_int_equal(replayed, 0);
    assert_string_not_equal(id3, id1);
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 100), NULL, id2, &replayed,
                                NULL, &d), 0);
    assert_string_not_equal(id2, id1);
    assert_string_not_equal(id2, id3);
    json_decref(first);

    struct cat_run_filter flt;
    struct cat_page pg = {50, NULL, NULL};
    struct buf out;
    memset(&flt, 0, sizeof(flt));
    buf_init(&out, OUT_MAX);
    assert_int_equal(cat_run_list(f->c, &flt, &pg, &out, &d), 0);
    json_t *page = parse(&out);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 3);
    json_decref(page);
    buf_free(&out);
}

static void test_delete_with_runs(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    char id[37], id2[37];
    int replayed;
    create_model_ok(f, model_body("org/r", "R", 70));
    create_model_ok(f, model_body("org/free", "F", 1));
    create_hw_ok(f, hw_body("hw-1", 10, 1));
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 100), "key-1", id, &replayed,
                                NULL, &d), 0);
    /* Referenced: refused without cascade, for the model and the hardware. */
    assert_int_equal(cat_model_delete(f->c, "org/r", 0, NULL, &d), ERR_CONFLICT);
    assert_non_null(strstr(d.msg, "cascade"));
    assert_int_equal(model_get_rc(f, "org/r"), 0);
    assert_int_equal(run_get_rc(f, id), 0);
    assert_int_equal(cat_hw_delete(f->c, "hw-1", 0, NULL, &d), ERR_CONFLICT);
    /* An unreferenced model goes without cascade. */
    assert_int_equal(cat_model_delete(f->c, "org/free", 0, NULL, &d), 0);
    /* Cascade removes the runs, their samples and their idempotency keys. */
    assert_int_equal(cat_model_delete(f->c, "org/r", 1, NULL, &d), 0);
    assert_int_equal(model_get_rc(f, "org/r"), ERR_NOTFOUND);
    assert_int_equal(run_get_rc(f, id), ERR_NOTFOUND);
    struct buf out;
    buf_init(&out, OUT_MAX);
    assert_int_equal(cat_run_series(f->c, id, CAT_SERIES_REQUESTS, 0, &out, &d), ERR_NOTFOUND);
    buf_free(&out);
    int64_t n = -1;
    assert_int_equal(db_query_int(f->c, "SELECT COUNT(*) FROM samples", NULL, 0, &n, &d), 0);
    assert_int_equal(n, 0);
    create_model_ok(f, model_body("org/r", "R", 70));
    assert_int_equal(run_create(f, run_body("org/r", "hw-1", 1, 100), "key-1", id2, &replayed,
                                NULL, &d), 0);
    assert_int_equal(replayed, 0);
    assert_string_not_equal(id, id2);
    /* And the hardware can go now that its only run is deleted. */
    assert_int_equal(cat_run_delete(f->c, id2, NULL, &d), 0);
    assert_int_equal(cat_hw_delete(f->c, "hw-1", 0, NULL, &d), 0);
}

/* --- migrations --- */

static void test_migrate_twice(void **state)
{
    struct fx *f = *state;
    struct err_detail d;
    int applied = -1, version = -1;
    assert_int_equal(db_migrate(f->db, &applied, &d), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(db_schema_version(f->c, &version, &d), 0);
    assert_int_equal(version, db_schema_latest());
    assert_true(db_schema_latest() >= 1);
    assert_string_equal(db_backend(f->db), "sqlite");
}

static void test_migrate_fresh_store(void **state)
{
    (void)state;
    char path[256], url[300];
    snprintf(path, sizeof(path), "/tmp/modelcat-unit-fresh-%ld.db", (long)getpid());
    remove_store(path);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct db_opts o = {.max_conns = 1, .busy_timeout_ms = 1000, .sync_full = 1};
    struct db *db;
    struct db_conn *c;
    struct err_detail d;
    static const char tables[] =
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'models'";
    int applied = -1, version = -1;
    int64_t n = -1;
    assert_int_equal(db_open(url, &o, &db, &d), 0);
    assert_int_equal(db_acquire(db, &c, &d), 0);
    assert_int_equal(db_query_int(c, tables, NULL, 0, &n, &d), 0);
    assert_int_equal(n, 0);
    db_release(db, c);
    assert_int_equal(db_migrate(db, &applied, &d), 0);
    assert_int_equal(applied, db_schema_latest());
    assert_int_equal(db_migrate(db, &applied, &d), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(db_acquire(db, &c, &d), 0);
    assert_int_equal(db_query_int(c, tables, NULL, 0, &n, &d), 0);
    assert_int_equal(n, 1);
    assert_int_equal(db_schema_version(c, &version, &d), 0);
    assert_int_equal(version, db_schema_latest());
    db_release(db, c);
    db_close(db);
    remove_store(path);
    /* Unknown schemes are refused. */
    assert_int_equal(db_open("mysql://u:p@h/db", &o, &db, &d), ERR_INVAL);
    assert_string_equal(d.field, "db");
    assert_int_equal(db_open("sqlite:", &o, &db, &d), ERR_INVAL);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    cat_init();
    const struct CMUnitTest tests[] = {
        FX(test_create_and_render),
        FX(test_validation),
        FX(test_tags),
        FX(test_etag_and_if_match),
        cmocka_unit_test(test_etag_matches),
        FX(test_keyset_pagination),
        FX(test_cursor_errors),
        cmocka_unit_test(test_cost_per_1m),
        FX(test_run_create_and_cost),
        FX(test_run_idempotency),
        FX(test_delete_with_runs),
        FX(test_migrate_twice),
        cmocka_unit_test(test_migrate_fresh_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
