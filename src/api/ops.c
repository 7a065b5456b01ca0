/*
 * Operational routes: liveness, readiness (store reachable and schema
 * current) and the OpenAPI document, embedded at build time.
 */
#include "api/api_int.h"
#include "core/jw.h"
#include "db/migrate.h"

extern const char openapi_json[];
extern const size_t openapi_json_len;

void api_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    buf_puts(&resp->body, "{\"status\":\"ok\"}");
    resp->status = 200;
    resp->content_type = "application/json; charset=utf-8";
}

void api_readyz(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    int version = 0, rc;
    (void)req;
    err_clear(&d);
    rc = db_acquire(api_db, &c, &d);
    if (!rc) {
        rc = db_schema_version(c, &version, &d);
        db_release(api_db, c);
    }
    int ready = !rc && version >= db_schema_latest();
    struct jw w;
    jw_init(&w, &resp->body);
    jw_obj_open(&w);
    jw_key(&w, "status");
    jw_cstr(&w, ready ? "ready" : "unavailable");
    jw_key(&w, "store");
    jw_cstr(&w, db_backend(api_db));
    jw_key(&w, "schema_version");
    jw_i64(&w, version);
    jw_key(&w, "schema_expected");
    jw_i64(&w, db_schema_latest());
    if (!ready) {
        jw_key(&w, "detail");
        jw_cstr(&w, rc ? d.msg : "migrations are not applied; run modelcat migrate");
    }
    jw_obj_close(&w);
    resp->status = ready ? 200 : 503;
    resp->content_type = "application/json; charset=utf-8";
}

void api_openapi(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    buf_append(&resp->body, openapi_json, openapi_json_len);
    resp->status = 200;
    resp->content_type = "application/json; charset=utf-8";
}
