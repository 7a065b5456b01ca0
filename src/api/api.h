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

/* The route table, for tests (e.g. that each route is in the OpenAPI doc). */
const struct http_route *api_routes(int *n);

#endif
