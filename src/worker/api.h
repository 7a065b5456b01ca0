/*
 * The worker's client of the modelcat jobs API (docs: the worker protocol
 * of /api/v1/jobs): JSON over HTTP with a Bearer worker key, one libcurl
 * easy handle per struct worker_api, so each thread that talks to the API
 * makes its own. Bodies are capped (WORKER_API_BODY_MAX), every call has
 * connect and total timeouts, redirects are not followed. The library
 * does not log.
 */
#ifndef MC_WORKER_API_H
#define MC_WORKER_API_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "core/trace.h"

#define WORKER_API_BODY_MAX (64 << 20) /* cap on a response (a claim holds a checkpoint) */

struct worker_api;

/* The answer of one call. */
struct worker_api_resp {
    long status;            /* HTTP status */
    json_t *body;           /* parsed JSON body, or NULL (none, or not JSON); caller frees */
    char code[64];          /* error.code of an error body, or "" */
    char message[256];      /* error.message of an error body, or "" */
};

/*
 * A client of base_url (http:// or https://, no trailing '/') with key
 * (may be "" for none). timeout_ms bounds each call. 0 and *out (free with
 * worker_api_destroy), ERR_INVAL for another scheme, ERR_NOMEM or
 * ERR_INTERNAL (libcurl).
 */
int worker_api_create(const char *base_url, const char *key, int timeout_ms,
                      struct worker_api **out, struct err_detail *d) MC_WUR;
void worker_api_destroy(struct worker_api *a);
/*
 * Puts a's later calls in trace t (copied; NULL: none): each call then
 * carries a traceparent with t's trace id and flags and a new span id.
 */
void worker_api_set_trace(struct worker_api *a, const struct trace_ctx *t);

/*
 * One call: method ("GET", "POST", "PUT") of path (from "/api/...") with
 * body (NULL: none) sent as JSON. Returns 0 when the API answered (any
 * status; r filled, release r->body with json_decref), ERR_UNAVAIL when
 * it could not be reached or the call timed out, ERR_TOOBIG for a body
 * over the cap, ERR_NOMEM.
 */
int worker_api_call(struct worker_api *a, const char *method, const char *path, json_t *body,
                    struct worker_api_resp *r, struct err_detail *d) MC_WUR;

#endif
