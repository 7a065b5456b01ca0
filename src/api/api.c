/*
 * Routing, the error shape and the map from error codes to HTTP statuses,
 * and the request helpers every resource handler uses; the response cache's
 * hook around the catalog's GET routes (lookup before the handler, store
 * after it) and the generation bump after each committed write.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "api/api_int.h"
#include "cache/cache.h"
#include "catalog/samples_scan.h"
#include "core/codec.h"
#include "core/jw.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/trace.h"

struct db *api_db;
struct cache *api_cache;

static const char json_ctype[] = "application/json; charset=utf-8";

static const struct http_route routes[] = {
    {HTTP_GET, "/healthz", api_healthz, API_T_PUBLIC},
    {HTTP_GET, "/readyz", api_readyz, API_T_PUBLIC},
    {HTTP_GET, "/openapi.json", api_openapi, API_T_PUBLIC},
    {HTTP_GET, "/metrics", api_metrics, API_T_PUBLIC},
    {HTTP_GET, "/api/v1/models", api_models_list, API_T_READ},
    {HTTP_POST, "/api/v1/models", api_models_create, API_T_CATALOG},
    {HTTP_GET, "/api/v1/models/{id}", api_models_get, API_T_READ},
    {HTTP_PUT, "/api/v1/models/{id}", api_models_put, API_T_CATALOG},
    {HTTP_PATCH, "/api/v1/models/{id}", api_models_patch, API_T_CATALOG},
    {HTTP_DELETE, "/api/v1/models/{id}", api_models_delete, API_T_CATALOG},
    {HTTP_GET, "/api/v1/models/{id}/benchmarks", api_models_runs, API_T_READ},
    {HTTP_GET, "/api/v1/hardware", api_hw_list, API_T_READ},
    {HTTP_POST, "/api/v1/hardware", api_hw_create, API_T_CATALOG},
    {HTTP_GET, "/api/v1/hardware/{id}", api_hw_get, API_T_READ},
    {HTTP_PUT, "/api/v1/hardware/{id}", api_hw_put, API_T_CATALOG},
    {HTTP_DELETE, "/api/v1/hardware/{id}", api_hw_delete, API_T_CATALOG},
    {HTTP_GET, "/api/v1/benchmarks", api_runs_list, API_T_READ},
    {HTTP_POST, "/api/v1/benchmarks", api_runs_create, API_T_RESULTS},
    {HTTP_GET, "/api/v1/benchmarks/{id}", api_runs_get, API_T_READ},
    {HTTP_DELETE, "/api/v1/benchmarks/{id}", api_runs_delete, API_T_CATALOG},
    {HTTP_GET, "/api/v1/benchmarks/{id}/samples", api_runs_samples, API_T_READ},
    {HTTP_GET, "/api/v1/benchmarks/{id}/gpu-samples", api_runs_gpu_samples, API_T_READ},
    {HTTP_GET, "/api/v1/jobs", api_jobs_list, API_T_READ},
    {HTTP_POST, "/api/v1/jobs", api_jobs_create, API_T_JOBS_SUBMIT},
    {HTTP_POST, "/api/v1/jobs/claim", api_jobs_claim, API_T_JOBS},
    {HTTP_GET, "/api/v1/jobs/{id}", api_jobs_get, API_T_READ},
    {HTTP_POST, "/api/v1/jobs/{id}/cancel", api_jobs_cancel, API_T_JOBS_SUBMIT},
    {HTTP_POST, "/api/v1/jobs/{id}/heartbeat", api_jobs_heartbeat, API_T_JOBS},
    {HTTP_PUT, "/api/v1/jobs/{id}/checkpoint", api_jobs_checkpoint, API_T_JOBS},
    {HTTP_POST, "/api/v1/jobs/{id}/complete", api_jobs_complete, API_T_JOBS},
    {HTTP_POST, "/api/v1/jobs/{id}/release", api_jobs_release, API_T_JOBS},
    {HTTP_POST, "/api/v1/auth/token", api_token, API_T_EXCHANGE},
    {HTTP_GET, "/api/v1/keys", api_keys_list, API_T_ADMIN},
    {HTTP_POST, "/api/v1/keys", api_keys_create, API_T_ADMIN},
    {HTTP_DELETE, "/api/v1/keys/{id}", api_keys_delete, API_T_ADMIN},
    {HTTP_GET, "/api/v1/audit", api_audit_list, API_T_ADMIN},
};
#define NROUTES ((int)(sizeof(routes) / sizeof(routes[0])))

const struct http_route *api_routes(int *n)
{
    *n = NROUTES;
    return routes;
}

void api_init(struct db *db, struct cache *cache)
{
    api_db = db;
    api_cache = cache;
}

void api_error(struct http_resp *resp, int status, const char *code, const char *field,
               const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_reset(&resp->body);
    resp->status = status;
    resp->content_type = "application/json; charset=utf-8";
    struct jw w;
    jw_init(&w, &resp->body);
    jw_obj_open(&w);
    jw_key(&w, "error");
    jw_obj_open(&w);
    jw_key(&w, "code");
    jw_cstr(&w, code);
    jw_key(&w, "message");
    jw_cstr(&w, msg);
    if (field && *field) {
        jw_key(&w, "field");
        jw_cstr(&w, field);
    }
    jw_obj_close(&w);
    jw_obj_close(&w);
}

void api_fail(struct http_resp *resp, int rc, const struct err_detail *d)
{
    const char *msg = d->msg[0] ? d->msg : err_str(rc);
    switch (rc) {
    case ERR_NOTFOUND:
        api_error(resp, 404, "not_found", d->field, "%s", msg);
        return;
    case ERR_EXISTS:
    case ERR_CONFLICT:
        api_error(resp, 409, "conflict", d->field, "%s", msg);
        return;
    case ERR_DENIED:
        api_error(resp, 401, "unauthorized", d->field, "%s", msg);
        return;
    case ERR_REPLAY:
        api_error(resp, 409, "idempotency_conflict", d->field, "%s", msg);
        return;
    case ERR_PRECOND:
        api_error(resp, 412, "precondition_failed", d->field, "%s", msg);
        return;
    case ERR_INVAL:
    case ERR_RANGE:
        api_error(resp, 422, "validation_failed", d->field, "%s", msg);
        return;
    case ERR_PARSE:
        if (strcmp(d->field, "cursor") == 0)
            api_error(resp, 400, "bad_cursor", d->field, "%s", msg);
        else
            api_error(resp, 400, "bad_json", d->field, "%s", msg);
        return;
    case ERR_BUSY:
    case ERR_UNAVAIL:
        api_error(resp, 503, "unavailable", NULL, "the store is unavailable: %s", msg);
        http_resp_header(resp, "Retry-After", "1");
        return;
    default:
        log_error("api", "internal error %s: %s", err_name(rc), msg);
        api_error(resp, 500, "internal", NULL, "internal error");
        return;
    }
}

int api_conn(struct http_resp *resp, struct db_conn **c)
{
    struct err_detail d;
    err_clear(&d);
    int rc = db_acquire(api_db, c, &d);
    if (rc) {
        log_warn("api", "store connection failed: %s", d.msg);
        api_error(resp, 503, "unavailable", NULL, "the store is unavailable");
        http_resp_header(resp, "Retry-After", "1");
    }
    return rc;
}

/* Reads go to the primary until then (see api_set_fresh_window). */
static _Atomic int64_t fresh_until_ns;
static int64_t fresh_window_ns;
static _Atomic uint64_t seen_generation;

void api_set_fresh_window(int64_t window_ns)
{
    fresh_window_ns = window_ns;
}

/* A write committed, here or (a new generation) elsewhere: start the window. */
static void note_write(int64_t now)
{
    if (fresh_window_ns > 0)
        atomic_store(&fresh_until_ns, now + fresh_window_ns);
}

/* 1 while reads should prefer the primary (see api_set_fresh_window). */
static int fresh(void)
{
    return time_mono_ns() < atomic_load(&fresh_until_ns);
}

/*
 * Attempt 0 reads from a replica (the primary right after a write);
 * attempt 1, after a failure, from the other one: the primary, or a replica
 * when the primary failed right after a write (availability first).
 */
int api_read_conn(struct http_resp *resp, struct db_conn **c, int attempt)
{
    struct err_detail d;
    int rc = ERR_UNAVAIL;
    err_clear(&d);
    if ((attempt == 0) == fresh()) {
        if (db_replicas(api_db) == 0)
            return api_conn(resp, c);
        rc = db_acquire(api_db, c, &d); /* the primary, or else a replica below */
    }
    if (rc)
        rc = db_acquire_read(api_db, c, time_mono_ns(), &d);
    if (rc) {
        log_warn("api", "store connection failed: %s", d.msg);
        api_error(resp, 503, "unavailable", NULL, "the store is unavailable");
        http_resp_header(resp, "Retry-After", "1");
    }
    return rc;
}

int api_read_done(struct db_conn *c, int rc, int attempt)
{
    int replica = db_conn_is_replica(c);
    int failed = db_release_result(api_db, c, rc, time_mono_ns());
    /* BUSY on a replica: a query cancelled by a conflict with recovery. A
       primary that fails during the fresh window: try a replica. */
    return attempt == 0 && (failed || (replica && rc == ERR_BUSY) ||
                            (!replica && rc == ERR_UNAVAIL && db_replicas(api_db) > 0));
}

/* Media type of a Content-Type value, lowercased, without parameters. */
static int media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/*
 * Jansson refuses numbers it cannot represent before any field is seen;
 * such a number is syntactically valid JSON, so the client deserves a 422
 * naming the member. Walks back from the error position over the number,
 * ':' and the quoted key. Leaves field empty when the shape is not that.
 */
static void number_member(const char *body, size_t pos, char *field, size_t cap)
{
    field[0] = '\0';
    size_t i = pos;
    while (i > 0 && strchr("0123456789+-.eE", body[i - 1]))
        i--;
    while (i > 0 && strchr(" \t\r\n", body[i - 1]))
        i--;
    if (i == 0 || body[i - 1] != ':')
        return;
    i--;
    while (i > 0 && strchr(" \t\r\n", body[i - 1]))
        i--;
    if (i == 0 || body[i - 1] != '"')
        return;
    size_t end = --i;
    while (i > 0 && body[i - 1] != '"')
        i--;
    if (i == 0 || end - i >= cap)
        return;
    for (size_t k = i; k < end; k++)
        if ((unsigned char)body[k] < ' ' || body[k] == '\\')
            return;
    snprintf(field, cap, "%.*s", (int)(end - i), body + i);
}

static int media_ok(struct http_req *req, struct http_resp *resp, int accept_merge)
{
    const char *ct = http_header(req, "Content-Type");
    if (!ct || !(media_is(ct, "application/json") ||
                 (accept_merge && media_is(ct, "application/merge-patch+json")))) {
        api_error(resp, 415, "unsupported_media_type", NULL,
                  "send the body as Content-Type: application/json%s",
                  accept_merge ? " or application/merge-patch+json" : "");
        return -1;
    }
    return 0;
}

/* Parses the JSON object text[0..len) into *out; else writes 400/422, returns -1. */
static int parse_object(const char *text, size_t len, struct http_resp *resp, json_t **out)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j && (strstr(jerr.text, "too big integer") || strstr(jerr.text, "overflow"))) {
        char field[ERR_FIELD_LEN];
        number_member(text, (size_t)jerr.position, field, sizeof(field));
        api_error(resp, 422, "validation_failed", field, "%s%sis out of range (%s)", field,
                  field[0] ? " " : "", jerr.text);
        return -1;
    }
    if (!j) {
        api_error(resp, 400, "bad_json", NULL, "malformed JSON at line %d column %d: %s",
                  jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(resp, 400, "bad_json", NULL, "the body must be a JSON object");
        return -1;
    }
    *out = j;
    return 0;
}

int api_body(struct http_req *req, struct http_resp *resp, int accept_merge, json_t **out)
{
    if (media_ok(req, resp, accept_merge))
        return -1;
    return parse_object(req->body, req->body_len, resp, out);
}

int api_body_split(struct http_req *req, struct http_resp *resp, const char *key,
                   struct buf *rest, json_t **out, const char **span, size_t *span_len)
{
    struct err_detail d;
    err_clear(&d);
    if (media_ok(req, resp, 0))
        return -1;
    if (cat_json_split(req->body, req->body_len, key, rest, span, span_len, &d)) {
        api_error(resp, 400, "bad_json", NULL, "%s", d.msg);
        return -1;
    }
    if (buf_err(rest)) {
        api_error(resp, 413, "payload_too_large", NULL, "the request body is too large");
        return -1;
    }
    return parse_object(rest->p ? rest->p : "", rest->len, resp, out);
}

int api_list_args(struct http_req *req, struct http_resp *resp, const char *const *allowed,
                  struct cat_page *pg)
{
    if (req->bad_query) {
        api_error(resp, 400, "bad_parameter", "query", "malformed query string");
        return -1;
    }
    for (int i = 0; i < req->nquery; i++) {
        const char *k = req->query[i].key;
        int ok = !strcmp(k, "limit") || !strcmp(k, "cursor") || !strcmp(k, "sort");
        for (const char *const *a = allowed; !ok && *a; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok) {
            api_error(resp, 400, "bad_parameter", k, "unknown query parameter '%.64s'", k);
            return -1;
        }
    }
    int has;
    int64_t limit = 50;
    if (api_q_int(req, resp, "limit", &has, &limit))
        return -1;
    if (limit < 1 || limit > 200) {
        api_error(resp, 400, "bad_parameter", "limit", "limit must be between 1 and 200");
        return -1;
    }
    pg->limit = (int)limit;
    pg->cursor = http_query(req, "cursor");
    pg->sort = http_query(req, "sort");
    if (pg->cursor && !*pg->cursor) {
        api_error(resp, 400, "bad_cursor", "cursor", "cursor is empty");
        return -1;
    }
    return 0;
}

int api_q_double(struct http_req *req, struct http_resp *resp, const char *key, int *has,
                 double *v)
{
    const char *s = http_query(req, key);
    *has = s != NULL;
    if (!s)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(x)) {
        api_error(resp, 400, "bad_parameter", key, "%s must be a number", key);
        return -1;
    }
    *v = x;
    return 0;
}

int api_q_int(struct http_req *req, struct http_resp *resp, const char *key, int *has,
              int64_t *v)
{
    const char *s = http_query(req, key);
    *has = s != NULL;
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        api_error(resp, 400, "bad_parameter", key, "%s must be an integer", key);
        return -1;
    }
    *v = x;
    return 0;
}

int api_q_bool(struct http_req *req, struct http_resp *resp, const char *key, int *v)
{
    const char *s = http_query(req, key);
    *v = 0;
    if (!s || !strcmp(s, "false") || !strcmp(s, "0"))
        return 0;
    if (!strcmp(s, "true") || !strcmp(s, "1") || !*s) {
        *v = 1;
        return 0;
    }
    api_error(resp, 400, "bad_parameter", key, "%s must be true or false", key);
    return -1;
}

void api_item(struct http_req *req, struct http_resp *resp, int status, const char *etag)
{
    http_resp_header(resp, "ETag", "%s", etag);
    if (status == 200 && (req->method & (HTTP_GET | HTTP_HEAD))) {
        const char *inm = http_header(req, "If-None-Match");
        if (inm && cat_etag_matches(inm, etag, 1)) {
            buf_reset(&resp->body);
            resp->status = 304;
            return;
        }
    }
    resp->status = status;
    resp->content_type = "application/json; charset=utf-8";
}

void api_location(struct http_resp *resp, const char *prefix, const char *id)
{
    struct buf b;
    buf_init(&b, 480);
    buf_puts(&b, prefix);
    codec_pct_encode(&b, id, strlen(id));
    if (!buf_err(&b))
        http_resp_header(resp, "Location", "%s", b.p);
    buf_free(&b);
}

void api_reject(struct http_resp *resp, int status)
{
    if (status == 413)
        api_error(resp, 413, "payload_too_large", NULL, "the request body is too large");
    else if (status == 431)
        api_error(resp, 431, "headers_too_large", NULL,
                  "too many request headers (at most %d)", HTTP_MAX_REQ_HEADERS);
    else
        api_error(resp, status, "bad_request", NULL, "request refused");
}

/* GET routes whose 200 responses are cached: the catalog's lists and items. */
static int cacheable(const struct http_route *r)
{
    http_handler h = r->handler;
    return h == api_models_list || h == api_models_get || h == api_models_runs ||
           h == api_hw_list || h == api_hw_get || h == api_runs_list || h == api_runs_get;
}

/*
 * 1, with *etag the response's ETag ("" when none), when the cache can
 * replay resp's headers (it keeps only the ETag); 0 when resp has another.
 */
static int replayable(const struct http_resp *resp, const char **etag)
{
    *etag = "";
    for (int i = 0; i < resp->nhdr; i++) {
        if (strcasecmp(resp->hdr[i].name, "ETag") != 0 ||
            strlen(resp->hdr[i].value) >= CACHE_ETAG_MAX)
            return 0;
        *etag = resp->hdr[i].value;
    }
    return 1;
}

/*
 * Runs a cacheable route through the response cache: the generation is
 * read before anything else (see cache.c), a hit is answered from the
 * cache (304 for a matching If-None-Match), a miss runs the handler and
 * stores its 200. HEAD shares GET's entries. X-Cache says which it was.
 */
static void dispatch_cached(const struct http_route *r, struct http_req *req,
                            struct http_resp *resp)
{
    const char *keys[HTTP_MAX_QUERY], *vals[HTTP_MAX_QUERY], *etag;
    struct cache_meta meta;
    struct buf key;
    uint64_t gen;
    int64_t now = time_mono_ns();
    buf_init(&key, 2048);
    for (int i = 0; i < req->nquery; i++) {
        keys[i] = req->query[i].key;
        vals[i] = req->query[i].value;
    }
    int have_gen = !req->bad_query && cache_generation(api_cache, now, &gen) == 0;
    if (have_gen) {
        uint64_t prev = atomic_exchange(&seen_generation, gen + 1); /* 0: none seen */
        if (prev && prev != gen + 1)
            note_write(now); /* another process (or this one) wrote */
    }
    if (!have_gen ||
        cache_key(&key, "GET", req->path, req->nquery, keys, vals)) {
        r->handler(req, resp); /* bypass: malformed, too long, or generation unknown */
        http_resp_header(resp, "X-Cache", "miss");
        goto out;
    }
    if (cache_get(api_cache, gen, key.p, key.len, now, &resp->body, &meta) == 0 &&
        strcmp(meta.ctype, json_ctype) == 0) {
        http_resp_header(resp, "X-Cache", "hit");
        if (meta.etag[0]) {
            api_item(req, resp, 200, meta.etag);
        } else {
            resp->status = 200;
            resp->content_type = json_ctype;
        }
        goto out;
    }
    buf_reset(&resp->body);
    r->handler(req, resp);
    if (resp->status == 200 && resp->content_type && !strcmp(resp->content_type, json_ctype) &&
        !buf_err(&resp->body) && replayable(resp, &etag)) {
        snprintf(meta.etag, sizeof(meta.etag), "%s", etag);
        snprintf(meta.ctype, sizeof(meta.ctype), "%s", json_ctype);
        (void)cache_put(api_cache, gen, key.p, key.len, &meta, resp->body.p ? resp->body.p : "",
                        resp->body.len, now);
    }
    http_resp_header(resp, "X-Cache", "miss");
out:
    buf_free(&key);
}

void api_cache_bump(void)
{
    int64_t hold = 0;
    note_write(time_mono_ns());
    if (!api_cache)
        return;
    if (cache_bump(api_cache, time_mono_ns(), &hold)) {
        log_warn("api", "cache: a write could not advance the generation in Redis; "
                        "the cache is bypassed until it can");
    } else if (hold > 0) { /* the lease of other replicas (see cache.c) */
        struct timespec ts = {hold / 1000000000, hold % 1000000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

/* Routes req and runs its handler (authorized, through the cache). */
static void dispatch(struct http_req *req, struct http_resp *resp)
{
    int allow, bad;
    const struct http_route *r = http_route_match(routes, NROUTES, req, &allow, &bad);
    if (r) {
        struct api_who who;
        req->app = &who;
        if (api_authorize(r, req, resp, &who) == 0) {
            if (api_cache && cacheable(r))
                dispatch_cached(r, req, resp);
            else
                r->handler(req, resp);
        }
        api_audit(req, resp, &who);
        return;
    }
    if (bad) {
        api_error(resp, 400, "bad_parameter", "path", "malformed percent-encoding in the path");
    } else if (allow) {
        char methods[128];
        http_allow_string(allow, methods, sizeof(methods));
        api_error(resp, 405, "method_not_allowed", NULL, "%s is not allowed here; use %s",
                  req->method_name, methods);
        http_resp_header(resp, "Allow", "%s", methods);
    } else {
        api_error(resp, 404, "not_found", NULL, "no route for %.200s", req->path);
    }
}

void api_dispatch(struct http_req *req, struct http_resp *resp)
{
    struct trace_span *sp;
    if (!trace_enabled()) { /* the one branch tracing costs when off */
        dispatch(req, resp);
        return;
    }
    /* Large (the tracestate), so not on the stack of every request. */
    static _Thread_local struct trace_span span;
    sp = &span;
    int traced = api__trace_begin(req, sp);
    dispatch(req, resp);
    if (traced)
        api__trace_end(req, resp, sp);
}

void api_get_item(struct http_req *req, struct http_resp *resp, cat_get_fn get)
{
    struct db_conn *c;
    struct err_detail d;
    char etag[21];
    int rc;
    for (int attempt = 0;; attempt++) {
        err_clear(&d);
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = get(c, req->params[0], &resp->body, etag, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
    }
    if (rc)
        api_fail(resp, rc, &d);
    else
        api_item(req, resp, 200, etag);
}

void api_write_item(struct http_req *req, struct http_resp *resp, cat_write_fn write,
                    enum cat_write how, const char *prefix)
{
    struct db_conn *c;
    struct err_detail d;
    json_t *body;
    char etag[21];
    err_clear(&d);
    if (api_body(req, resp, how == CAT_PATCH, &body))
        return;
    if (api_conn(resp, &c)) {
        json_decref(body);
        return;
    }
    int rc = write(c, how, how == CAT_CREATE ? NULL : req->params[0], body,
                   http_header(req, "If-Match"), &resp->body, etag, &d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    if (!rc)
        api_cache_bump();
    if (rc) {
        api_fail(resp, rc, &d);
    } else {
        if (how == CAT_CREATE)
            api_location(resp, prefix, json_string_value(json_object_get(body, "id")));
        api_item(req, resp, how == CAT_CREATE ? 201 : 200, etag);
    }
    json_decref(body);
}

void api_delete_item(struct http_req *req, struct http_resp *resp, cat_delete_fn del)
{
    struct db_conn *c;
    struct err_detail d;
    int cascade;
    err_clear(&d);
    if (api_q_bool(req, resp, "cascade", &cascade) || api_conn(resp, &c))
        return;
    int rc = del(c, req->params[0], cascade, http_header(req, "If-Match"), &d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    if (!rc)
        api_cache_bump();
    if (rc)
        api_fail(resp, rc, &d);
    else
        resp->status = 204;
}

void api_list_done(struct http_resp *resp, int rc, const struct err_detail *d)
{
    if (rc == ERR_INVAL)
        api_error(resp, 400, "bad_parameter", d->field, "%s", d->msg);
    else if (rc)
        api_fail(resp, rc, d);
    else {
        resp->status = 200;
        resp->content_type = "application/json; charset=utf-8";
    }
}
