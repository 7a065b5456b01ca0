/*
 * Fuzz target: JSON request bodies, through the same parse as the server
 * (api_body: json_loadb with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, the
 * object check, and the 422 field recovery for out-of-range numbers) and
 * then the validation and write path of every resource, against a real
 * SQLite store seeded with the demo catalog:
 *
 *   POST model, POST hardware           cat_model_write / cat_hw_write (CAT_CREATE)
 *   POST benchmark run                  cat_run_create, without and with an
 *                                       Idempotency-Key (create, replay, conflict)
 *   PATCH / PUT of a seeded model       cat_model_write (CAT_PATCH, CAT_REPLACE)
 *   PUT of a seeded hardware            cat_hw_write (CAT_REPLACE)
 *
 * Everything created is deleted again and seeded items that were changed
 * are put back, so each input starts from the same catalog.
 *
 * Properties (abort on violation):
 *  - an error response of api_body is valid JSON;
 *  - err_detail text, which reaches the client in the error body, is UTF-8;
 *  - a created item renders as JSON, reads back identically with the same
 *    ETag, and can be PUT back unchanged (docs/api.md: server-set fields are
 *    accepted and ignored "so a client can PUT back what it got");
 *  - the same Idempotency-Key with the same body replays the same run; with
 *    another body it is ERR_REPLAY.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "core/mem.h"
#include "fuzz_store.h"

#define NRUNS 4
#define IDEM_KEY "fuzz-idempotency-key"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_body: property failed at line %d: %s\n",       \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define DETAIL(what, rc, d) fz_check_detail("fuzz_body", what, rc, d)

static const char *json_ct(const struct http_req *r, const char *name)
{
    (void)r;
    return strcasecmp(name, "Content-Type") == 0 ? "application/json; charset=utf-8" : NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fs_open(NRUNS);
    return 0;
}

typedef int (*write_fn)(struct db_conn *, enum cat_write, const char *, json_t *,
                        const char *, struct buf *, char[21], struct err_detail *);
typedef int (*get_fn)(struct db_conn *, const char *, struct buf *, char[21],
                      struct err_detail *);
typedef int (*del_fn)(struct db_conn *, const char *, int, const char *,
                      struct err_detail *);

/* Checks a freshly created model or hardware item, then deletes it. */
static void check_created(struct db_conn *c, const char *what, write_fn write, get_fn get,
                          del_fn del, json_t *body, const struct buf *out,
                          const char etag[21])
{
    struct err_detail d;
    json_error_t jerr;
    int rc;
    err_clear(&d);
    json_t *rendered = json_loadb(out->p, out->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rendered) {
        /* Aborts, unless only UTF-8 is wrong and MC_FUZZ_LAX_UTF8 is set. */
        fz_check_json("fuzz_body", "a created item", out->p, out->len);
        if ((rc = del(c, json_string_value(json_object_get(body, "id")), 1, NULL, &d)))
            fs_die("delete of a created item", rc, &d);
        return;
    }
    const char *id = json_string_value(json_object_get(rendered, "id"));
    CHECK(id && strcmp(id, json_string_value(json_object_get(body, "id"))) == 0);
    char *idc = mem_strdup(id);
    CHECK(idc);

    /* GET returns the same representation and ETag. */
    struct buf got;
    char etag2[21];
    buf_init(&got, 1 << 20);
    rc = get(c, idc, &got, etag2, &d);
    CHECK(rc == 0);
    CHECK(got.len == out->len && memcmp(got.p, out->p, out->len) == 0);
    CHECK(strcmp(etag, etag2) == 0);
    buf_free(&got);

    /* PUT back what we got, with If-Match of its ETag. */
    buf_init(&got, 1 << 20);
    rc = write(c, CAT_REPLACE, idc, rendered, etag, &got, etag2, &d);
    if (rc) {
        fprintf(stderr, "fuzz_body: PUT back of a created %s failed: %s %s: %s\n"
                        "  representation: %.*s\n",
                what, err_name(rc), d.field, d.msg, (int)out->len, out->p);
        abort();
    }
    buf_free(&got);

    rc = del(c, idc, 1, NULL, &d);
    if (rc)
        fs_die("delete of a created item", rc, &d);
    mem_free(idc);
    json_decref(rendered);
}

static void check_samples(struct db_conn *c, const char *id)
{
    struct err_detail d;
    struct buf out;
    err_clear(&d);
    for (int csv = 0; csv <= 1; csv++) {
        buf_init(&out, 1 << 22);
        int rc = cat_run_series(c, id, CAT_SERIES_REQUESTS, csv, &out, &d);
        CHECK(rc == 0);
        if (!csv) {
            json_t *j = json_loadb(out.p, out.len, 0, NULL);
            CHECK(j && json_is_array(json_object_get(j, "items")));
            json_decref(j);
        }
        buf_free(&out);
    }
}

static void runs(struct db_conn *c, json_t *body)
{
    struct err_detail d;
    struct buf out, out2, out3;
    char id1[37] = "", id2[37] = "", id3[37] = "", etag[21], etag2[21], etag3[21];
    int rep = -1, rep2 = -1, rep3 = -1;
    err_clear(&d);
    buf_init(&out, 1 << 20);
    buf_init(&out2, 1 << 20);
    buf_init(&out3, 1 << 20);

    int rc = cat_run_create(c, body, NULL, &out, etag, id1, &rep, &d);
    DETAIL("cat_run_create", rc, &d);
    if (!rc) {
        CHECK(rep == 0);
        fz_check_json("fuzz_body", "a created run", out.p, out.len);
        check_samples(c, id1);
    }

    int rc2 = cat_run_create(c, body, IDEM_KEY, &out2, etag2, id2, &rep2, &d);
    DETAIL("cat_run_create with Idempotency-Key", rc2, &d);
    CHECK((rc == 0) == (rc2 == 0));
    if (!rc2) {
        CHECK(rep2 == 0 && strcmp(id1, id2) != 0);
        /* Same key, same body: the same run again, replayed. */
        int rc3 = cat_run_create(c, body, IDEM_KEY, &out3, etag3, id3, &rep3, &d);
        DETAIL("cat_run_create replay", rc3, &d);
        CHECK(rc3 == 0 && rep3 == 1 && strcmp(id3, id2) == 0);
        CHECK(strcmp(etag3, etag2) == 0);
        CHECK(out3.len == out2.len && memcmp(out3.p, out2.p, out2.len) == 0);
        /* Same key, another body: refused. */
        json_t *other = json_deep_copy(body);
        CHECK(other);
        json_t *seed = json_object_get(other, "seed");
        json_int_t s = json_is_integer(seed) ? json_integer_value(seed) : -1;
        CHECK(json_object_set_new(other, "seed", json_integer(s == 0 ? 1 : 0)) == 0);
        buf_reset(&out3);
        int rc4 = cat_run_create(c, other, IDEM_KEY, &out3, etag3, id3, &rep3, &d);
        DETAIL("cat_run_create with a reused key", rc4, &d);
        if (rc4 != ERR_REPLAY) {
            fprintf(stderr, "fuzz_body: reused Idempotency-Key gave %s, want ERR_REPLAY\n",
                    err_name(rc4));
            abort();
        }
        json_decref(other);
    }
    if (!rc && (rc = cat_run_delete(c, id1, NULL, &d)))
        fs_die("delete of a created run", rc, &d);
    if (!rc2 && (rc2 = cat_run_delete(c, id2, NULL, &d)))
        fs_die("delete of a created run", rc2, &d);
    buf_free(&out);
    buf_free(&out2);
    buf_free(&out3);
}

/* Puts a seeded item back to its demo content after a successful write. */
static void restore(struct db_conn *c, write_fn write, const char *what, const char *id)
{
    struct err_detail d;
    struct buf out;
    char etag[21];
    json_t *orig = fs_demo_item(what, id);
    buf_init(&out, 1 << 20);
    int rc = write(c, CAT_REPLACE, id, orig, NULL, &out, etag, &d);
    if (rc)
        fs_die("restore of a seeded item", rc, &d);
    buf_free(&out);
    json_decref(orig);
}

static void body_writes(struct db_conn *c, json_t *body)
{
    struct err_detail d;
    struct buf out;
    char etag[21];
    int rc;
    err_clear(&d);
    buf_init(&out, 1 << 20);

    rc = cat_model_write(c, CAT_CREATE, NULL, body, NULL, &out, etag, &d);
    DETAIL("cat_model_write(CAT_CREATE)", rc, &d);
    if (!rc)
        check_created(c, "model", cat_model_write, cat_model_get, cat_model_delete, body,
                      &out, etag);

    buf_reset(&out);
    rc = cat_hw_write(c, CAT_CREATE, NULL, body, NULL, &out, etag, &d);
    DETAIL("cat_hw_write(CAT_CREATE)", rc, &d);
    if (!rc)
        check_created(c, "hardware", cat_hw_write, cat_hw_get, cat_hw_delete, body, &out,
                      etag);

    runs(c, body);

    buf_reset(&out);
    rc = cat_model_write(c, CAT_PATCH, FS_MODEL, body, NULL, &out, etag, &d);
    DETAIL("cat_model_write(CAT_PATCH)", rc, &d);
    if (!rc)
        restore(c, cat_model_write, "models", FS_MODEL);

    /* CAT_REPLACE adds the path's id to a body without one: use copies. */
    json_t *copy = json_deep_copy(body);
    CHECK(copy);
    buf_reset(&out);
    rc = cat_model_write(c, CAT_REPLACE, FS_MODEL, copy, NULL, &out, etag, &d);
    DETAIL("cat_model_write(CAT_REPLACE)", rc, &d);
    if (!rc)
        restore(c, cat_model_write, "models", FS_MODEL);
    json_decref(copy);

    copy = json_deep_copy(body);
    CHECK(copy);
    buf_reset(&out);
    rc = cat_hw_write(c, CAT_REPLACE, FS_HW2, copy, NULL, &out, etag, &d);
    DETAIL("cat_hw_write(CAT_REPLACE)", rc, &d);
    if (!rc)
        restore(c, cat_hw_write, "hardware", FS_HW2);
    json_decref(copy);

    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long count;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';

    struct http_req req;
    struct http_resp resp;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.method = HTTP_POST;
    req.method_name = "POST";
    req.path = "/api/v1/models";
    req.body = text;
    req.body_len = size;
    req.header = json_ct;
    buf_init(&resp.body, 1 << 20);

    json_t *body = NULL;
    if (api_body(&req, &resp, 1, &body)) {
        fz_check_json("fuzz_body", "api_body's error response", resp.body.p, resp.body.len);
        buf_free(&resp.body);
        free(text);
        return 0;
    }
    buf_free(&resp.body);

    struct db_conn *c;
    struct err_detail d;
    int rc = db_acquire(fs_db, &c, &d);
    if (rc)
        fs_die("db_acquire", rc, &d);
    body_writes(c, body);
    db_release(fs_db, c);
    json_decref(body);
    free(text);

    /* Everything is cleaned up per input; this is only a safety net. */
    if (++count % 1000 == 0)
        fs_reset(NRUNS);
    return 0;
}
