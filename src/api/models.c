/*
 * Handlers of /api/v1/models and /api/v1/models/{id}.
 */
#include <string.h>

#include "api/api_int.h"

static const char *const list_params[] = {
    "q", "family", "license", "quantization", "tag", "min_params", "max_params",
    "min_context", NULL,
};

void api_models_list(struct http_req *req, struct http_resp *resp)
{
    struct cat_model_filter f;
    struct cat_page pg;
    struct db_conn *c;
    struct err_detail d;
    memset(&f, 0, sizeof(f));
    err_clear(&d);
    if (api_list_args(req, resp, list_params, &pg) ||
        api_q_double(req, resp, "min_params", &f.has_min_params, &f.min_params) ||
        api_q_double(req, resp, "max_params", &f.has_max_params, &f.max_params) ||
        api_q_int(req, resp, "min_context", &f.has_min_context, &f.min_context))
        return;
    f.q = http_query(req, "q");
    if (f.q && strlen(f.q) > 256) {
        api_error(resp, 400, "bad_parameter", "q", "q is longer than 256 bytes");
        return;
    }
    f.family = http_query(req, "family");
    f.license = http_query(req, "license");
    f.quantization = http_query(req, "quantization");
    for (int i = 0; i < req->nquery; i++) {
        if (strcmp(req->query[i].key, "tag") != 0)
            continue;
        if (f.ntags == CAT_MAX_TAG_FILTERS) {
            api_error(resp, 400, "bad_parameter", "tag", "at most %d tag filters",
                      CAT_MAX_TAG_FILTERS);
            return;
        }
        f.tags[f.ntags++] = req->query[i].value;
    }
    int rc;
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = cat_model_list(c, &f, &pg, &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    api_list_done(resp, rc, &d);
}

void api_models_get(struct http_req *req, struct http_resp *resp)
{
    api_get_item(req, resp, cat_model_get);
}

void api_models_create(struct http_req *req, struct http_resp *resp)
{
    api_write_item(req, resp, cat_model_write, CAT_CREATE, "/api/v1/models/");
}

void api_models_put(struct http_req *req, struct http_resp *resp)
{
    api_write_item(req, resp, cat_model_write, CAT_REPLACE, NULL);
}

void api_models_patch(struct http_req *req, struct http_resp *resp)
{
    api_write_item(req, resp, cat_model_write, CAT_PATCH, NULL);
}

void api_models_delete(struct http_req *req, struct http_resp *resp)
{
    api_delete_item(req, resp, cat_model_delete);
}
