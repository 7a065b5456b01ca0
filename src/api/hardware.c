/*
 * Handlers of /api/v1/hardware and /api/v1/hardware/{id}.
 */
#include "api/api_int.h"

static const char *const list_params[] = {"gpu", "provider", NULL};

void api_hw_list(struct http_req *req, struct http_resp *resp)
{
    struct cat_hw_filter f;
    struct cat_page pg;
    struct db_conn *c;
    struct err_detail d;
    err_clear(&d);
    if (api_list_args(req, resp, list_params, &pg))
        return;
    f.gpu = http_query(req, "gpu");
    f.provider = http_query(req, "provider");
    int rc;
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = cat_hw_list(c, &f, &pg, &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    api_list_done(resp, rc, &d);
}

void api_hw_get(struct http_req *req, struct http_resp *resp)
{
    api_get_item(req, resp, cat_hw_get);
}

void api_hw_create(struct http_req *req, struct http_resp *resp)
{
    api_write_item(req, resp, cat_hw_write, CAT_CREATE, "/api/v1/hardware/");
}

void api_hw_put(struct http_req *req, struct http_resp *resp)
{
    api_write_item(req, resp, cat_hw_write, CAT_REPLACE, NULL);
}

void api_hw_delete(struct http_req *req, struct http_resp *resp)
{
    api_delete_item(req, resp, cat_hw_delete);
}
