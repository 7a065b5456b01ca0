/*
 * Who may call what: the API's authentication and authorization middleware
 * (api_authorize, run by api_dispatch before every routed handler), the
 * audit of every write (api_audit, after it), and the routes of keys,
 * tokens and the audit trail. The mechanisms (keys, JWTs, buckets, the
 * audit table) are auth/'s; this file decides, per route, what they must
 * say.
 *
 * A request's credential is `Authorization: Bearer <API key or JWT>`:
 * - an API key is checked against the bootstrap admin key (constant time)
 *   and then against the api_keys table on the primary, so a revoked key
 *   fails from the next request on, replicas' lag notwithstanding;
 * - a JWT (from POST /api/v1/auth/token) is verified against the signing
 *   keyring, and the key it was issued for must still be active (one
 *   primary-key lookup), so revoking a key ends its tokens at once.
 * A malformed or refused credential is 401 even where anonymous calls
 * are allowed: a client that meant to authenticate learns it failed.
 * Then the rate limit (per key when authenticated, per client IP when
 * not; 429 + Retry-After), then the route's permission: public routes
 * (/healthz, /readyz, /openapi.json) need nothing; reads need a role with
 * AUTH_READ, or nothing unless --auth-reads required; writes need their
 * permission: 401 without a credential, 403 with a role that lacks it.
 */
#include <arpa/inet.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "auth/auth.h"
#include "core/codec.h"
#include "core/jw.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

static struct {
    int reads_required;
    int64_t ttl_s;
    struct auth_keyring ring;
    char bootstrap[AUTH_KEY_BUF]; /* "" when none */
    struct auth_rl *rl;
} A;

int api_auth_init(const struct api_auth_opts *o, struct err_detail *d)
{
    int rc;
    A.reads_required = o->reads_required;
    A.ttl_s = o->jwt_ttl_s;
    if (o->bootstrap_key && *o->bootstrap_key) {
        if ((rc = auth_bootstrap_validate(o->bootstrap_key, d)))
            return rc;
        snprintf(A.bootstrap, sizeof(A.bootstrap), "%s", o->bootstrap_key);
    }
    if (o->jwt_keys && *o->jwt_keys) {
        if ((rc = auth_keyring_parse(&A.ring, o->jwt_keys, d)))
            return rc;
    } else {
        /* One random key: tokens verify on this process only, until it exits. */
        unsigned char secret[32];
        if (RAND_bytes(secret, (int)sizeof(secret)) != 1)
            return err_set(d, ERR_INTERNAL, NULL, "no randomness for the JWT key");
        rc = auth_keyring_add(&A.ring, "local", secret, sizeof(secret), AUTH_KS_ACTIVE, d);
        memset(secret, 0, sizeof(secret));
        if (rc)
            return rc;
    }
    struct auth_rl_opts ro = {0};
    if ((rc = auth_rl_parse(o->rate_limit ? o->rate_limit : "off", &ro, d)) ||
        (rc = auth_rl_create(&ro, &A.rl, d)))
        return rc;
    return 0;
}

void api_auth_fini(void)
{
    auth_rl_destroy(A.rl);
    A.rl = NULL;
    auth_keyring_clear(&A.ring);
    memset(A.bootstrap, 0, sizeof(A.bootstrap));
}

static void unauthorized(struct http_resp *resp, const char *error, const char *msg)
{
    api_error(resp, 401, "unauthorized", "Authorization", "%s", msg);
    http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"modelcat\"%s%s%s",
                     error ? ", error=\"" : "", error ? error : "", error ? "\"" : "");
}

/* Checks an API key: the bootstrap key, else the api_keys table (primary). */
static int check_key(const struct auth_bearer *b, struct api_who *who, struct http_resp *resp)
{
    struct err_detail d;
    struct db_conn *c;
    err_clear(&d);
    if (A.bootstrap[0] && auth_bootstrap_check(A.bootstrap, b->tok, b->len, &who->p))
        return 0;
    if (api_conn(resp, &c))
        return -1;
    int64_t now = time_wall_ms();
    int rc = auth_key_lookup(c, b->tok, b->len, now, &who->p, &d);
    if (!rc && who->p.touch) {
        struct err_detail td;
        if (auth_key_touch(c, who->p.id, now, &td))
            log_warn("auth", "key %s: last_used_at not updated: %s", who->p.id, td.msg);
    }
    db_release(api_db, c);
    if (rc && auth_refused(rc)) {
        unauthorized(resp, "invalid_token", d.msg);
        return -1;
    }
    if (rc) {
        api_fail(resp, rc, &d);
        return -1;
    }
    return 0;
}

static int check_jwt(const struct auth_bearer *b, struct api_who *who, struct http_resp *resp)
{
    char tok[AUTH_JWT_TOKEN_MAX + 1];
    struct err_detail d;
    err_clear(&d);
    if (b->len > AUTH_JWT_TOKEN_MAX) {
        unauthorized(resp, "invalid_token", "the token is too long");
        return -1;
    }
    memcpy(tok, b->tok, b->len);
    tok[b->len] = '\0';
    int rc = auth_jwt_verify(&A.ring, tok, time_wall_ms() / 1000, &who->p, &d);
    if (!rc && strcmp(who->p.id, "bootstrap") != 0) {
        /* Revoking a key ends its tokens too, from the next request on. */
        struct db_conn *c;
        if (api_conn(resp, &c))
            return -1;
        rc = auth_key_active(c, who->p.id, &d);
        db_release(api_db, c);
    }
    if (rc) {
        if (auth_refused(rc))
            unauthorized(resp, "invalid_token", d.msg);
        else
            api_fail(resp, rc, &d);
        return -1;
    }
    return 0;
}

/* The bucket of an anonymous client: its IPv4 address, or its IPv6 /64 (one
   client holds a whole /64). */
static void client_bucket(const char *ip, char *out, size_t cap)
{
    struct in6_addr a;
    char text[INET6_ADDRSTRLEN];
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a) == 1) {
        memset(a.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a, text, sizeof(text))) {
            snprintf(out, cap, "ip:%s/64", text);
            return;
        }
    }
    snprintf(out, cap, "ip:%s", ip);
}

/* Takes a token from the caller's bucket; 429 when it is empty. */
static int rate_limited(const struct http_req *req, const struct api_who *who,
                        struct http_resp *resp)
{
    char key[AUTH_SUB_MAX + 8]; /* the limiter keeps AUTH_RL_KEY_MAX bytes of it */
    double wait = 0;
    if (who->p.via != AUTH_VIA_NONE)
        snprintf(key, sizeof(key), "k:%s", who->p.id);
    else
        client_bucket(req->client_ip, key, sizeof(key));
    if (!auth_rl_take(A.rl, key, time_mono_ns(), &wait))
        return 0;
    long secs = (long)ceil(wait);
    api_error(resp, 429, "rate_limited", NULL,
              "too many requests; try again in %ld s", secs < 1 ? 1 : secs);
    http_resp_header(resp, "Retry-After", "%ld", secs < 1 ? 1 : secs);
    return 1;
}

/* What a route tag requires (see api_int.h). */
static enum auth_perm tag_perm(int tag)
{
    switch (tag) {
    case API_T_CATALOG: return AUTH_WRITE_CATALOG;
    case API_T_JOBS_SUBMIT: return AUTH_WRITE_CATALOG; /* editor and admin */
    case API_T_JOBS: return AUTH_JOBS;
    case API_T_RESULTS: return AUTH_WRITE_RESULTS;
    case API_T_ADMIN: return AUTH_ADMIN;
    default: return AUTH_READ;
    }
}

int api_authorize(const struct http_route *r, struct http_req *req, struct http_resp *resp,
                  struct api_who *who)
{
    struct auth_bearer b;
    struct err_detail d;
    err_clear(&d);
    memset(who, 0, sizeof(*who));
    who->p.via = AUTH_VIA_NONE;
    if (auth_parse_authorization(http_header(req, "Authorization"), &b, &d)) {
        unauthorized(resp, "invalid_request", d.msg);
        return -1;
    }
    if ((b.kind == AUTH_CRED_KEY && check_key(&b, who, resp)) ||
        (b.kind == AUTH_CRED_JWT && check_jwt(&b, who, resp)))
        return -1;
    who->authenticated = b.kind != AUTH_CRED_NONE;
    if (r->tag == API_T_PUBLIC)
        return 0;
    if (rate_limited(req, who, resp)) {
        who->limited = 1;
        return -1;
    }
    if (r->tag == API_T_EXCHANGE) {
        if (who->p.via == AUTH_VIA_KEY || who->p.via == AUTH_VIA_BOOTSTRAP)
            return 0;
        unauthorized(resp, NULL, "send an API key (Authorization: Bearer mc_...) to get a token");
        return -1;
    }
    enum auth_perm need = tag_perm(r->tag);
    if (!who->authenticated) {
        if (need == AUTH_READ && !A.reads_required)
            return 0;
        unauthorized(resp, NULL, "this request needs a credential: Authorization: Bearer <key or token>");
        return -1;
    }
    if (!auth_allows(who->p.role, need)) {
        api_error(resp, 403, "forbidden", NULL, "role %s may not %s",
                  auth_role_name(who->p.role),
                  r->tag == API_T_JOBS_SUBMIT ? "submit or cancel benchmark jobs"
                  : need == AUTH_JOBS ? "claim or report on benchmark jobs"
                  : need == AUTH_READ ? "read"
                  : need == AUTH_ADMIN ? "administer keys and the audit trail"
                  : need == AUTH_WRITE_RESULTS ? "post benchmark results"
                  : "change the catalog");
        return -1;
    }
    return 0;
}

/* Copies the n bytes at s into out (cap bytes), cut to fit. */
static void copy_seg(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void api_audit(const struct http_req *req, const struct http_resp *resp,
               const struct api_who *who)
{
    if (req->method == HTTP_GET || req->method == HTTP_HEAD || who->limited)
        return; /* reads are not audited; a flood of 429s must not fill the table */
    char resource[64] = "", rid[128] = "";
    const char *p = req->path, *pre = "/api/v1/";
    if (strncmp(p, pre, strlen(pre)) == 0) {
        p += strlen(pre);
        const char *e = strchr(p, '/');
        copy_seg(resource, sizeof(resource), p, e ? (size_t)(e - p) : strlen(p));
        if (e) {
            const char *f = strchr(e + 1, '/');
            copy_seg(rid, sizeof(rid), e + 1, f ? (size_t)(f - e - 1) : strlen(e + 1));
        }
    }
    if (req->nparams > 0) /* the decoded {id} */
        copy_seg(rid, sizeof(rid), req->params[0], strlen(req->params[0]));
    for (int i = 0; !rid[0] && i < resp->nhdr; i++) { /* a create: its Location */
        const char *slash = strrchr(resp->hdr[i].value, '/');
        size_t n = slash ? strlen(slash + 1) : 0;
        if (strcmp(resp->hdr[i].name, "Location") == 0 && n && n < sizeof(rid)) {
            long k = codec_pct_decode(slash + 1, n, rid, 0);
            rid[k < 0 ? 0 : k] = '\0';
        }
    }
    int st = resp->status;
    struct auth_audit a = {
        .at_ms = time_wall_ms(),
        .actor = who->p.via != AUTH_VIA_NONE ? who->p.id : NULL,
        .role = who->p.via != AUTH_VIA_NONE ? auth_role_name(who->p.role) : NULL,
        .ip = req->client_ip[0] ? req->client_ip : NULL,
        .method = req->method_name,
        .path = req->path,
        .resource = resource[0] ? resource : NULL,
        .resource_id = rid[0] ? rid : NULL,
        .request_id = req->request_id[0] ? req->request_id : NULL,
        .status = st,
        .outcome = st < 400 ? "ok" : st == 401 ? "denied" : st == 403 ? "forbidden" : "error",
    };
    struct db_conn *c;
    struct err_detail d;
    err_clear(&d);
    int rc = db_acquire(api_db, &c, &d);
    if (!rc) {
        rc = auth_audit_write(c, &a, NULL, &d);
        db_release(api_db, c);
    }
    if (rc)
        log_error("audit", "%s %s (request %s, status %d) not audited: %s", req->method_name,
                  req->path, req->request_id, st, d.msg);
}

/* ---- routes ---- */

static const struct api_who *who_of(const struct http_req *req)
{
    return req->app;
}

void api_token(struct http_req *req, struct http_resp *resp)
{
    const struct api_who *who = who_of(req);
    char tok[AUTH_JWT_TOKEN_MAX + 1];
    struct err_detail d;
    err_clear(&d);
    int rc = auth_jwt_issue(&A.ring, who->p.id, who->p.role, time_wall_ms() / 1000, A.ttl_s,
                            tok, sizeof(tok), &d);
    if (rc) {
        api_fail(resp, rc, &d);
        return;
    }
    struct jw w;
    jw_init(&w, &resp->body);
    jw_obj_open(&w);
    jw_key(&w, "access_token");
    jw_cstr(&w, tok);
    jw_key(&w, "token_type");
    jw_cstr(&w, "Bearer");
    jw_key(&w, "expires_in");
    jw_i64(&w, A.ttl_s);
    jw_key(&w, "role");
    jw_cstr(&w, auth_role_name(who->p.role));
    jw_obj_close(&w);
    memset(tok, 0, sizeof(tok));
    resp->status = 200;
    resp->content_type = "application/json; charset=utf-8";
    http_resp_header(resp, "Cache-Control", "no-store");
}

void api_keys_list(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    int revoked = 0;
    err_clear(&d);
    for (int i = 0; i < req->nquery; i++) {
        if (strcmp(req->query[i].key, "include_revoked") != 0) {
            api_error(resp, 400, "bad_parameter", req->query[i].key,
                      "unknown parameter '%.64s'", req->query[i].key);
            return;
        }
    }
    if (api_q_bool(req, resp, "include_revoked", &revoked) || api_conn(resp, &c))
        return;
    int rc = auth_key_list(c, revoked, &resp->body, &d);
    db_release(api_db, c);
    if (rc) {
        api_fail(resp, rc, &d);
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json; charset=utf-8";
    http_resp_header(resp, "Cache-Control", "no-store");
}

void api_keys_create(struct http_req *req, struct http_resp *resp)
{
    const struct api_who *who = who_of(req);
    json_t *body;
    struct db_conn *c;
    struct err_detail d;
    enum auth_role role;
    char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF];
    err_clear(&d);
    if (api_body(req, resp, 0, &body))
        return;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "name") != 0 && strcmp(k, "role") != 0) {
            api_error(resp, 422, "validation_failed", k, "unknown field '%.64s'", k);
            json_decref(body);
            return;
        }
    }
    json_t *name = json_object_get(body, "name"), *r = json_object_get(body, "role");
    if (!json_is_string(name)) {
        api_error(resp, 422, "validation_failed", "name", "name must be a string");
    } else if (!json_is_string(r) ||
               auth_role_parse(json_string_value(r), json_string_length(r), &role, &d)) {
        api_error(resp, 422, "validation_failed", "role",
                  "role must be one of viewer, editor, worker, admin");
    } else if (!api_conn(resp, &c)) {
        int rc = auth_key_create(c, json_string_value(name), role, who->p.id, time_wall_ms(),
                                 key, id, &d);
        db_release(api_db, c);
        if (rc) {
            if (rc == ERR_INVAL && !d.field[0])
                snprintf(d.field, sizeof(d.field), "name");
            api_fail(resp, rc, &d);
        } else {
            struct jw w;
            jw_init(&w, &resp->body);
            jw_obj_open(&w);
            jw_key(&w, "id");
            jw_cstr(&w, id);
            jw_key(&w, "name");
            jw_cstr(&w, json_string_value(name));
            jw_key(&w, "role");
            jw_cstr(&w, auth_role_name(role));
            jw_key(&w, "key");
            jw_cstr(&w, key);
            jw_key(&w, "created_by");
            jw_cstr(&w, who->p.id);
            jw_obj_close(&w);
            memset(key, 0, sizeof(key));
            resp->status = 201;
            resp->content_type = "application/json; charset=utf-8";
            http_resp_header(resp, "Cache-Control", "no-store");
            api_location(resp, "/api/v1/keys/", id);
        }
    }
    json_decref(body);
}

void api_keys_delete(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    err_clear(&d);
    if (api_conn(resp, &c))
        return;
    int rc = auth_key_revoke(c, req->params[0], time_wall_ms(), &d);
    db_release(api_db, c);
    if (rc) {
        api_fail(resp, rc, &d);
        return;
    }
    resp->status = 204;
}

void api_audit_list(struct http_req *req, struct http_resp *resp)
{
    static const char *const allowed[] = {"actor", "resource", "resource_id", "since",
                                          "until", "limit", "cursor", NULL};
    struct auth_audit_filter f = {.limit = 50};
    struct db_conn *c;
    struct err_detail d;
    int has;
    int64_t v;
    err_clear(&d);
    for (int i = 0; i < req->nquery; i++) {
        int known = 0;
        for (int k = 0; allowed[k]; k++)
            known |= strcmp(req->query[i].key, allowed[k]) == 0;
        if (!known) {
            api_error(resp, 400, "bad_parameter", req->query[i].key,
                      "unknown parameter '%.64s'", req->query[i].key);
            return;
        }
    }
    f.actor = http_query(req, "actor");
    f.resource = http_query(req, "resource");
    f.resource_id = http_query(req, "resource_id");
    f.cursor = http_query(req, "cursor");
    if (api_q_int(req, resp, "since", &has, &v))
        return;
    f.since_ms = has ? v : 0;
    if (api_q_int(req, resp, "until", &has, &v))
        return;
    f.until_ms = has ? v : 0;
    if (api_q_int(req, resp, "limit", &has, &v))
        return;
    if (has) {
        if (v < 1 || v > 200) {
            api_error(resp, 400, "bad_parameter", "limit", "limit must be 1 to 200");
            return;
        }
        f.limit = (int)v;
    }
    if (api_conn(resp, &c))
        return;
    int rc = auth_audit_list(c, &f, &resp->body, &d);
    db_release(api_db, c);
    if (rc) {
        if (rc == ERR_PARSE && !d.field[0])
            snprintf(d.field, sizeof(d.field), "cursor");
        api_fail(resp, rc, &d);
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json; charset=utf-8";
}
