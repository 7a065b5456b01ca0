/*
 * Operational routes: liveness, readiness (store reachable and schema
 * current, plus the response cache's and the read replicas' state) and the OpenAPI document,
 * embedded at build time.
 */
#include <string.h>

#include "api/api_int.h"
#include "cache/cache.h"
#include "core/jw.h"
#include "core/timeutil.h"
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

/* A monotonic instant as an RFC 3339 wall-clock time, or null when 0. */
static void jw_mono_time(struct jw *w, int64_t mono_ns, int64_t now_mono, int64_t now_wall_ms)
{
    char ts[32];
    if (mono_ns == 0 ||
        time_fmt_rfc3339(ts, sizeof(ts), now_wall_ms - (now_mono - mono_ns) / 1000000) < 0)
        jw_null(w);
    else
        jw_cstr(w, ts);
}

/* "breaker", "transitions", "last_transition" of a circuit breaker. */
static void breaker_members(struct jw *w, const struct breaker_info *b, int64_t mono,
                            int64_t wall)
{
    jw_key(w, "breaker");
    jw_cstr(w, breaker_name(b->state));
    jw_key(w, "transitions");
    jw_i64(w, (int64_t)b->transitions);
    jw_key(w, "last_transition");
    jw_mono_time(w, b->last_transition_ns, mono, wall);
}

/*
 * "cache": backend, generation, counters; for Redis the breaker's state,
 * its transitions and the last error. Reads no server: a snapshot.
 */
static void readyz_cache(struct jw *w)
{
    struct cache_status st;
    jw_key(w, "cache");
    jw_obj_open(w);
    jw_key(w, "backend");
    if (!api_cache) {
        jw_cstr(w, "off");
        jw_obj_close(w);
        return;
    }
    cache_status(api_cache, &st);
    int64_t mono = time_mono_ns(), wall = time_wall_ms();
    jw_cstr(w, st.backend);
    jw_key(w, "generation");
    jw_i64(w, (int64_t)st.generation);
    jw_key(w, "entries");
    jw_i64(w, (int64_t)st.entries);
    jw_key(w, "bytes");
    jw_i64(w, (int64_t)st.bytes);
    jw_key(w, "max_bytes");
    jw_i64(w, (int64_t)st.max_bytes);
    jw_key(w, "hits");
    jw_i64(w, (int64_t)st.hits);
    jw_key(w, "misses");
    jw_i64(w, (int64_t)st.misses);
    jw_key(w, "bypasses");
    jw_i64(w, (int64_t)st.bypasses);
    if (st.has_breaker) {
        jw_key(w, "lease_ms");
        jw_i64(w, st.lease_ms);
        breaker_members(w, &st.breaker, mono, wall);
        jw_key(w, "last_error");
        jw_cstr(w, st.last_error[0] ? st.last_error : NULL);
        jw_key(w, "last_error_at");
        jw_mono_time(w, st.last_error[0] ? st.last_error_ns : 0, mono, wall);
    }
    jw_obj_close(w);
}

/*
 * "replicas": for each read replica its URL (password masked), breaker
 * state and transitions, and the last measured lag. A snapshot: reads no
 * server.
 */
static void readyz_replicas(struct jw *w)
{
    int64_t mono = time_mono_ns(), wall = time_wall_ms();
    jw_key(w, "replicas");
    jw_arr_open(w);
    for (int i = 0; i < db_replicas(api_db); i++) {
        struct db_replica_info ri;
        db_replica_info(api_db, i, &ri);
        jw_obj_open(w);
        jw_key(w, "url");
        jw_cstr(w, ri.url);
        breaker_members(w, &ri.breaker, mono, wall);
        jw_key(w, "lag_s");
        if (ri.lag_s < 0)
            jw_null(w);
        else
            jw_num(w, ri.lag_s);
        jw_key(w, "lagging");
        jw_bool(w, ri.lagging);
        jw_key(w, "lag_checked");
        jw_mono_time(w, ri.lag_checked_ns, mono, wall);
        jw_obj_close(w);
    }
    jw_arr_close(w);
}

void api_readyz(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    int version = 0, rc;
    (void)req;
    err_clear(&d);
    struct cat_series_info si;
    memset(&si, 0, sizeof(si));
    rc = db_acquire(api_db, &c, &d);
    if (!rc) {
        rc = db_schema_version(c, &version, &d);
        if (!rc && version >= db_schema_latest())
            rc = cat_series_info(c, api_db, &si, &d);
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
    if (si.kind[0]) {
        jw_key(&w, "timeseries");
        jw_obj_open(&w);
        jw_key(&w, "kind");
        jw_cstr(&w, si.kind);
        jw_key(&w, "partitions");
        jw_obj_open(&w);
        jw_key(&w, "samples");
        jw_i64(&w, si.partitions[0]);
        jw_key(&w, "gpu_samples");
        jw_i64(&w, si.partitions[1]);
        jw_obj_close(&w);
        jw_obj_close(&w);
    }
    readyz_cache(&w);
    readyz_replicas(&w);
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
