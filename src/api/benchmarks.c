/*
 * Handlers of /api/v1/benchmarks[/{id}[/samples]] and
 * /api/v1/models/{id}/benchmarks.
 */
#include <string.h>

#include "api/api_int.h"
#include "core/timeutil.h"

static const char *const list_params[] = {
    "model", "engine", "engine_version", "hardware", "gpu_count", "sweep_id", "dataset", NULL,
};

/* Lists runs; model_id (from the path) overrides the model filter. */
static void list_runs(struct http_req *req, struct http_resp *resp, const char *model_id)
{
    struct cat_run_filter f;
    struct cat_page pg;
    struct db_conn *c;
    struct err_detail d;
    char etag[21];
    memset(&f, 0, sizeof(f));
    err_clear(&d);
    if (api_list_args(req, resp, list_params + (model_id != NULL), &pg) ||
        api_q_int(req, resp, "gpu_count", &f.has_gpu_count, &f.gpu_count))
        return;
    f.model = model_id ? model_id : http_query(req, "model");
    f.engine = http_query(req, "engine");
    f.engine_version = http_query(req, "engine_version");
    f.hardware = http_query(req, "hardware");
    f.sweep_id = http_query(req, "sweep_id");
    f.dataset = http_query(req, "dataset");
    int rc;
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = 0;
        if (model_id) { /* 404 for an unknown model, not an empty list */
            rc = cat_model_get(c, model_id, &resp->body, etag, &d);
            buf_reset(&resp->body);
        }
        if (!rc)
            rc = cat_run_list(c, &f, &pg, &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    api_list_done(resp, rc, &d);
}

void api_runs_list(struct http_req *req, struct http_resp *resp)
{
    list_runs(req, resp, NULL);
}

void api_models_runs(struct http_req *req, struct http_resp *resp)
{
    list_runs(req, resp, req->params[0]);
}

void api_runs_create(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    json_t *body;
    char etag[21];
    int replayed = 0;
    err_clear(&d);
    const char *key = http_header(req, "Idempotency-Key");
    if (key) {
        size_t n = strlen(key);
        int ok = n >= 1 && n <= 128;
        for (size_t i = 0; ok && i < n; i++)
            ok = key[i] > ' ' && key[i] < 0x7f;
        if (!ok) {
            api_error(resp, 400, "bad_parameter", "Idempotency-Key",
                      "Idempotency-Key must be 1 to 128 printable ASCII characters");
            return;
        }
    }
    /* The samples (up to a million) are read from the text by a streaming
       scanner; only the rest of the body becomes a JSON tree. */
    struct buf rest;
    const char *span;
    size_t span_len;
    buf_init(&rest, req->body_len + 16);
    if (api_body_split(req, resp, "samples", &rest, &body, &span, &span_len)) {
        buf_free(&rest);
        return;
    }
    if (api_conn(resp, &c)) {
        json_decref(body);
        buf_free(&rest);
        return;
    }
    char id[37];
    int rc = cat_run_create_raw(c, body, span, span_len, key, &resp->body, etag, id, &replayed,
                                &d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    json_decref(body);
    buf_free(&rest);
    if (!rc && !replayed)
        api_cache_bump();
    if (rc) {
        api_fail(resp, rc, &d);
        return;
    }
    api_location(resp, "/api/v1/benchmarks/", id);
    api_item(req, resp, replayed ? 200 : 201, etag);
}

void api_runs_get(struct http_req *req, struct http_resp *resp)
{
    api_get_item(req, resp, cat_run_get);
}

static int delete_run(struct db_conn *c, const char *id, int cascade, const char *if_match,
                      struct err_detail *d)
{
    (void)cascade; /* samples always go with their run */
    return cat_run_delete(c, id, if_match, d);
}

void api_runs_delete(struct http_req *req, struct http_resp *resp)
{
    api_delete_item(req, resp, delete_run);
}

static void run_series(struct http_req *req, struct http_resp *resp, enum cat_series which)
{
    struct db_conn *c;
    struct err_detail d;
    err_clear(&d);
    const char *accept = http_header(req, "Accept");
    int csv = accept && strstr(accept, "text/csv") != NULL;
    int rc;
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = cat_run_series(c, req->params[0], which, csv, &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    if (rc) {
        api_fail(resp, rc, &d);
        return;
    }
    resp->status = 200;
    resp->content_type = csv ? "text/csv; charset=utf-8" : "application/json; charset=utf-8";
}

void api_runs_samples(struct http_req *req, struct http_resp *resp)
{
    run_series(req, resp, CAT_SERIES_REQUESTS);
}

void api_runs_gpu_samples(struct http_req *req, struct http_resp *resp)
{
    run_series(req, resp, CAT_SERIES_GPU);
}
