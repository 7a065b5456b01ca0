/*
 * Fuzz target: the list cursor decoder (catalog/list.c decode_cursor) and
 * the keyset query it feeds, through cat_model_list / cat_hw_list /
 * cat_run_list over a store seeded with the demo catalog and a few runs.
 *
 * Each input is used three ways, for every list and several sorts:
 *  A. verbatim as ?cursor= (what a client sends back: base64url text);
 *  B. base64url-encoded first, so the fuzzer can work on the JSON inside
 *     ([resource, sort, key, id]) without having to get base64 right;
 *  C. as ?sort= with no cursor (the sort-name lookup).
 *
 * Properties (abort on violation): a list either succeeds or fails with
 * ERR_PARSE (cursor) / ERR_INVAL (sort) -- a store error means the cursor
 * smuggled something bad into the SQL; err_detail text is UTF-8; a
 * successful page is valid JSON, and its next_cursor (made by the server)
 * is accepted for the next page.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"

#define NRUNS 7
#define LIMIT 2

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_cursor: property failed at line %d: %s\n",     \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

enum { L_MODELS, L_HW, L_RUNS };

static const struct list {
    int kind;
    const char *sort; /* NULL: the list's default */
    int filtered;     /* with a filter, so the cursor's $N numbers shift */
} lists[] = {
    {L_MODELS, NULL, 0},     {L_MODELS, "name", 0},   {L_MODELS, "-name", 0},
    {L_MODELS, "params", 0}, {L_MODELS, "-params", 1}, {L_MODELS, "created", 0},
    {L_MODELS, "-updated", 0}, {L_MODELS, "name", 1},
    {L_HW, NULL, 0},         {L_HW, "-id", 0},        {L_HW, "gpu", 0},
    {L_HW, "on_demand", 1},  {L_HW, "-spot", 0},
    {L_RUNS, NULL, 0},       {L_RUNS, "created", 0},  {L_RUNS, "output_throughput", 0},
    {L_RUNS, "-output_throughput", 1}, {L_RUNS, "p99_ttft_ms", 0},
    {L_RUNS, "-p99_ttft_ms", 0},
};
#define NLISTS ((int)(sizeof(lists) / sizeof(lists[0])))

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fs_open(NRUNS);
    return 0;
}

static int list(struct db_conn *c, int kind, int filtered, const char *cursor,
                const char *sort, struct buf *out, struct err_detail *d)
{
    struct cat_page pg = {LIMIT, cursor, sort};
    err_clear(d);
    buf_reset(out);
    if (kind == L_MODELS) {
        struct cat_model_filter f;
        memset(&f, 0, sizeof(f));
        if (filtered) {
            f.q = "llama";
            f.tags[f.ntags++] = "instruct";
            f.has_min_params = 1;
            f.min_params = 1;
        }
        return cat_model_list(c, &f, &pg, out, d);
    }
    if (kind == L_HW) {
        struct cat_hw_filter f = {NULL, filtered ? "aws" : NULL};
        return cat_hw_list(c, &f, &pg, out, d);
    }
    struct cat_run_filter f;
    memset(&f, 0, sizeof(f));
    if (filtered) {
        f.model = FS_MODEL;
        f.engine = "vllm";
    }
    return cat_run_list(c, &f, &pg, out, d);
}

/* A successful page: valid JSON; its next_cursor must work. */
static void check_page(struct db_conn *c, const struct list *l, const struct buf *out,
                       int depth)
{
    json_t *j = json_loadb(out->p, out->len, 0, NULL);
    if (!j) {
        fz_check_json("fuzz_cursor", "a list page", out->p, out->len);
        return; /* only UTF-8 was wrong, and MC_FUZZ_LAX_UTF8 is set */
    }
    CHECK(json_is_array(json_object_get(j, "items")));
    CHECK(json_array_size(json_object_get(j, "items")) <= LIMIT);
    json_t *next = json_object_get(j, "next_cursor");
    CHECK(next && (json_is_null(next) || json_is_string(next)));
    if (json_is_string(next) && depth < 2) {
        struct buf out2;
        struct err_detail d;
        buf_init(&out2, 1 << 20);
        int rc = list(c, l->kind, l->filtered, json_string_value(next), l->sort, &out2, &d);
        if (rc) {
            fprintf(stderr, "fuzz_cursor: the server's own next_cursor '%s' was refused: "
                            "%s %s\n", json_string_value(next), err_name(rc), d.msg);
            abort();
        }
        check_page(c, l, &out2, depth + 1);
        buf_free(&out2);
    }
    json_decref(j);
}

static void with_cursor(struct db_conn *c, const char *cursor, struct buf *out)
{
    struct err_detail d;
    for (int i = 0; i < NLISTS; i++) {
        const struct list *l = &lists[i];
        int rc = list(c, l->kind, l->filtered, cursor, l->sort, out, &d);
        fz_check_detail("fuzz_cursor", "list with a cursor", rc, &d);
        if (rc != 0 && rc != ERR_PARSE) {
            fprintf(stderr, "fuzz_cursor: list #%d gave %s (want 0 or ERR_PARSE): %s\n", i,
                    err_name(rc), d.msg);
            abort();
        }
        if (rc == 0)
            check_page(c, l, out, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';

    struct db_conn *c;
    struct err_detail d;
    struct buf out;
    int rc = db_acquire(fs_db, &c, &d);
    if (rc)
        fs_die("db_acquire", rc, &d);
    buf_init(&out, 1 << 20);

    /* The server hands over query values that decoded to valid UTF-8 without
       NUL (collect_arg in http/server.c); modes A and C get only those. */
    int valid = codec_utf8_valid(text, strlen(text));

    /* A. verbatim. */
    if (valid)
        with_cursor(c, text, &out);

    /* B. the input is the cursor's content. */
    struct buf enc;
    buf_init(&enc, 8 * size + 16);
    codec_b64url_encode(&enc, data, size);
    CHECK(!buf_err(&enc));
    with_cursor(c, enc.p ? enc.p : "", &out);
    buf_free(&enc);

    /* C. the input as a sort name. */
    for (int kind = L_MODELS; valid && kind <= L_RUNS; kind++) {
        rc = list(c, kind, 0, NULL, text, &out, &d);
        fz_check_detail("fuzz_cursor", "list with a sort", rc, &d);
        if (rc != 0 && rc != ERR_INVAL) {
            fprintf(stderr, "fuzz_cursor: sort '%s' gave %s (want 0 or ERR_INVAL): %s\n",
                    text, err_name(rc), d.msg);
            abort();
        }
        if (rc == 0) {
            struct list l = {kind, text, 0};
            check_page(c, &l, &out, 0);
        }
    }

    buf_free(&out);
    db_release(fs_db, c);
    free(text);
    return 0;
}
