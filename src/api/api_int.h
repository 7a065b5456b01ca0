/*
 * Private to api/: helpers shared by the resource handlers.
 */
#ifndef MC_API_API_INT_H
#define MC_API_API_INT_H

#include <jansson.h>

#include "api/api.h"
#include "auth/auth.h"
#include "catalog/catalog.h"

extern struct db *api_db;
extern struct cache *api_cache;   /* NULL: no response cache */

/*
 * Call after each committed write, before its response: advances the
 * cache's generation so that no replica serves a page from before it.
 */
void api_cache_bump(void);

struct trace_span;
/* Opens the request's server span into sp (trace.c): 1 when traced, else 0. */
int api__trace_begin(struct http_req *req, struct trace_span *sp);
/* Names, annotates and ends the server span sp opened by api__trace_begin. */
void api__trace_end(const struct http_req *req, const struct http_resp *resp,
                    struct trace_span *sp);

/* Route tags (http_route.tag): what a caller needs (api/auth.c). */
enum {
    API_T_PUBLIC,   /* nothing: health, readiness, the OpenAPI document */
    API_T_READ,     /* AUTH_READ, or nothing unless --auth-reads required */
    API_T_CATALOG,  /* AUTH_WRITE_CATALOG: models, hardware, deleting runs */
    API_T_RESULTS,  /* AUTH_WRITE_RESULTS: posting benchmark runs */
    API_T_ADMIN,    /* AUTH_ADMIN: keys and the audit trail */
    API_T_EXCHANGE, /* an API key (not a token), exchanged for a token */
    API_T_JOBS_SUBMIT, /* AUTH_WRITE_CATALOG (editor, admin): create, cancel jobs */
    API_T_JOBS,     /* AUTH_JOBS (worker, admin): claim and report on jobs */
};

/* Who is calling: set by api_authorize, read by handlers through req->app. */
struct api_who {
    struct auth_principal p;  /* via AUTH_VIA_NONE: anonymous */
    int authenticated;
    int limited;              /* refused by the rate limit */
};
/*
 * Authenticates req's credential, applies the rate limit and checks the
 * route's tag. Returns 0 when the handler may run; else writes the 401,
 * 403, 429 or store error into resp and returns -1.
 */
int api_authorize(const struct http_route *r, struct http_req *req, struct http_resp *resp,
                  struct api_who *who);
/* Writes the audit row of a write (any outcome but 429); reads are not audited. */
void api_audit(const struct http_req *req, const struct http_resp *resp,
               const struct api_who *who);
void api_token(struct http_req *, struct http_resp *);
void api_keys_list(struct http_req *, struct http_resp *);
void api_keys_create(struct http_req *, struct http_resp *);
void api_keys_delete(struct http_req *, struct http_resp *);
void api_audit_list(struct http_req *, struct http_resp *);

/* Writes the one error shape {"error":{code,message[,field]}} with status. */
void api_error(struct http_resp *resp, int status, const char *code, const char *field,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Maps a catalog/store error code to a status and error body. */
void api_fail(struct http_resp *resp, int rc, const struct err_detail *d);

/* Takes a primary store connection (writes); on failure writes 503 and returns non-zero. */
int api_conn(struct http_resp *resp, struct db_conn **c);
/*
 * Connections for GETs, used in a loop:
 *   for (attempt = 0;; attempt++) { api_read_conn; work; if (!api_read_done) break; reset }
 * api_read_conn takes a read connection (attempt 0: a healthy replica if
 * any, else the primary; later attempts: the primary); on failure it writes
 * 503 and returns non-zero. api_read_done gives the connection back,
 * reporting rc to the replica's breaker, and returns 1 when a replica failed
 * on the first attempt: the caller clears its output and runs the read
 * again on the primary.
 */
int api_read_conn(struct http_resp *resp, struct db_conn **c, int attempt);
int api_read_done(struct db_conn *c, int rc, int attempt);

/*
 * Parses the JSON body of a write: checks Content-Type (415), parses (400)
 * and requires an object. On failure writes the error and returns non-zero.
 * accept_merge: also accept application/merge-patch+json.
 */
int api_body(struct http_req *req, struct http_resp *resp, int accept_merge, json_t **out);
/*
 * api_body for a body with one bulky member, key: its value is cut out of
 * the text as it is (*span, *span_len; NULL when absent, pointing into the
 * request's body) and the rest, copied into rest (initialised by the
 * caller), is parsed into *out.
 */
int api_body_split(struct http_req *req, struct http_resp *resp, const char *key,
                   struct buf *rest, json_t **out, const char **span, size_t *span_len);

/*
 * Checks that every query argument is one of `allowed` (NULL-terminated)
 * and parses limit/cursor/sort into pg. Writes 400 and returns non-zero on
 * a bad argument.
 */
int api_list_args(struct http_req *req, struct http_resp *resp, const char *const *allowed,
                  struct cat_page *pg);
/* Parses an optional number / integer / boolean query argument (400 on error). */
int api_q_double(struct http_req *req, struct http_resp *resp, const char *key, int *has,
                 double *v);
int api_q_int(struct http_req *req, struct http_resp *resp, const char *key, int *has,
              int64_t *v);
int api_q_bool(struct http_req *req, struct http_resp *resp, const char *key, int *v);

/* Sends a single item: 200/201 with ETag, or 304 for a matching If-None-Match. */
void api_item(struct http_req *req, struct http_resp *resp, int status, const char *etag);
/* Adds "Location: prefix + percent-encoded id". */
void api_location(struct http_resp *resp, const char *prefix, const char *id);

typedef int (*cat_get_fn)(struct db_conn *, const char *, struct buf *, char[21],
                          struct err_detail *);
typedef int (*cat_write_fn)(struct db_conn *, enum cat_write, const char *, json_t *,
                            const char *, struct buf *, char[21], struct err_detail *);
typedef int (*cat_delete_fn)(struct db_conn *, const char *, int, const char *,
                             struct err_detail *);

/* GET of one item named by the path's {id}: 200 + ETag, 304, or an error. */
void api_get_item(struct http_req *req, struct http_resp *resp, cat_get_fn get);
/* POST (how = CAT_CREATE; Location under prefix), PUT or PATCH of one item. */
void api_write_item(struct http_req *req, struct http_resp *resp, cat_write_fn write,
                    enum cat_write how, const char *prefix);
/* DELETE of the path's {id}, honouring ?cascade= and If-Match: 204 or an error. */
void api_delete_item(struct http_req *req, struct http_resp *resp, cat_delete_fn del);
/* Finishes a list response: 200, 400 for a bad sort, or the mapped error. */
void api_list_done(struct http_resp *resp, int rc, const struct err_detail *d);

/* Handlers. */
void api_models_list(struct http_req *, struct http_resp *);
void api_models_create(struct http_req *, struct http_resp *);
void api_models_get(struct http_req *, struct http_resp *);
void api_models_put(struct http_req *, struct http_resp *);
void api_models_patch(struct http_req *, struct http_resp *);
void api_models_delete(struct http_req *, struct http_resp *);
void api_models_runs(struct http_req *, struct http_resp *);
void api_hw_list(struct http_req *, struct http_resp *);
void api_hw_create(struct http_req *, struct http_resp *);
void api_hw_get(struct http_req *, struct http_resp *);
void api_hw_put(struct http_req *, struct http_resp *);
void api_hw_delete(struct http_req *, struct http_resp *);
void api_runs_list(struct http_req *, struct http_resp *);
void api_runs_create(struct http_req *, struct http_resp *);
void api_runs_get(struct http_req *, struct http_resp *);
void api_runs_delete(struct http_req *, struct http_resp *);
void api_runs_samples(struct http_req *, struct http_resp *);
void api_runs_gpu_samples(struct http_req *, struct http_resp *);
void api_jobs_list(struct http_req *, struct http_resp *);
void api_jobs_create(struct http_req *, struct http_resp *);
void api_jobs_get(struct http_req *, struct http_resp *);
void api_jobs_cancel(struct http_req *, struct http_resp *);
void api_jobs_claim(struct http_req *, struct http_resp *);
void api_jobs_heartbeat(struct http_req *, struct http_resp *);
void api_jobs_checkpoint(struct http_req *, struct http_resp *);
void api_jobs_complete(struct http_req *, struct http_resp *);
void api_jobs_release(struct http_req *, struct http_resp *);
void api_healthz(struct http_req *, struct http_resp *);
void api_readyz(struct http_req *, struct http_resp *);
void api_openapi(struct http_req *, struct http_resp *);
void api_metrics(struct http_req *, struct http_resp *);

/* Counts a job released by its worker (api/metrics.c). */
void api_metrics_job_release(void);
/* A worker completed an attempt of a job with this outcome. */
void api_metrics_job_complete(int succeeded);
/* Records a stored checkpoint's size and the time its call took. */
void api_metrics_checkpoint(size_t bytes, int64_t dur_ns);

#endif
