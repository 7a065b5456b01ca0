/*
 * The REST API: the route table and the request handlers that map HTTP to
 * catalog calls. api_dispatch is the http server's dispatch function.
 */
#ifndef MC_API_API_H
#define MC_API_API_H

#include "db/db.h"
#include "http/http.h"

struct cache;

/*
 * Sets the store every handler uses and the response cache in front of the
 * GET routes of the catalog (NULL: none). Both stay owned by the caller and
 * must outlive the server. Call before the server starts.
 */
void api_init(struct db *db, struct cache *cache);
/*
 * With read replicas: for window_ns after a write — this process's, or
 * another's seen as a new cache generation — reads go to the primary, so a
 * replica that has not replayed the write yet serves no page (and the cache
 * stores none) older than it. Set it to the replicas' allowed lag plus the
 * lag check's period; 0 (the default) turns it off.
 */
void api_set_fresh_window(int64_t window_ns);
/* Routes req and fills resp (always: errors become JSON error bodies). */
void api_dispatch(struct http_req *req, struct http_resp *resp);
/* Fills resp with the error body of a status the server refused itself. */
void api_reject(struct http_resp *resp, int status);

struct api_auth_opts {
    int reads_required;        /* GETs need a credential too */
    const char *rate_limit;    /* auth_rl_parse grammar: "off", "20/s,burst=40" */
    const char *jwt_keys;      /* signing keyring (auth_keyring_parse); NULL/"": a random key */
    int64_t jwt_ttl_s;         /* lifetime of issued tokens */
    const char *bootstrap_key; /* an admin API key that needs no store; NULL/"": none */
};
/*
 * Sets up authentication (see api/auth.c). Returns 0, or ERR_PARSE /
 * ERR_INVAL / ERR_RANGE with detail naming the bad setting (never a
 * secret). Call before the server starts; api_auth_fini after it stopped.
 */
int api_auth_init(const struct api_auth_opts *o, struct err_detail *d) MC_WUR;
void api_auth_fini(void);

/* Sets the max_attempts of jobs that do not give theirs (serve --max-attempts). */
void api_jobs_set_max_attempts(int n);

struct metrics;
struct http_server;
/*
 * Registers the API's metrics in m (api/metrics.c) and serves them at GET
 * /metrics: set it up after api_init and before the server starts; m must
 * outlive the server. Returns 0, ERR_NOMEM or ERR_RANGE (a route table too
 * large). Without it /metrics answers 503.
 */
int api_metrics_init(struct metrics *m) MC_WUR;
/* The server's observe hook (http_server_opts.observe). */
void api_metrics_observe(const struct http_req *req, int status, size_t bytes, int64_t dur_ns);
/* The server whose in-flight requests /metrics shows; NULL before it stops. */
void api_metrics_server(struct http_server *s);

/* The route table, for tests (e.g. that each route is in the OpenAPI doc). */
const struct http_route *api_routes(int *n);

#endif
