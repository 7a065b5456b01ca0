/*
 * The HTTP layer: a libmicrohttpd server (epoll, internal thread pool) that
 * turns each complete request into a struct http_req, calls one dispatch
 * function, and sends the struct http_resp it filled; plus the router that
 * matches paths against a route table. Nothing here knows the catalog.
 *
 * Paths reach the router raw (not percent-decoded), so an encoded '/'
 * inside a segment (a model id "org%2Fname") stays inside that segment;
 * each captured segment and each query argument is decoded exactly once.
 */
#ifndef MC_HTTP_HTTP_H
#define MC_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_QUERY 64

struct http_query_arg {
    char *key;    /* decoded */
    char *value;  /* decoded; "" when the argument had no '=' */
};

struct http_req {
    int method;                          /* one HTTP_* bit; 0 if unknown */
    const char *method_name;
    const char *path;                    /* raw, without the query */
    char *params[HTTP_MAX_PARAMS];       /* decoded {captures}, set by the router */
    int nparams;
    struct http_query_arg query[HTTP_MAX_QUERY];
    int nquery;
    const char *bad_query;               /* key of a malformed argument, or NULL */
    const char *body;                    /* NUL-terminated; "" when none */
    size_t body_len;
    /* Header lookup (case-insensitive); NULL when absent. */
    const char *(*header)(const struct http_req *r, const char *name);
    void *conn;                          /* server private */
    char client_ip[48];                  /* the peer's address, "" if unknown */
    char request_id[65];                 /* the client's X-Request-Id if well-formed,
                                            else a new UUIDv7; sent back */
    void *app;                           /* the application's per-request state */
    const struct http_route *route;      /* set by http_route_match; NULL: none */
};

#define HTTP_MAX_HEADERS 12
#define HTTP_MAX_REQ_HEADERS 64  /* more request headers: 431 */

struct http_resp {
    int status;
    const char *content_type;            /* static string */
    struct buf body;
    int nhdr;
    struct {
        char name[32];
        char value[512];
    } hdr[HTTP_MAX_HEADERS];
};

/* Adds a response header (silently dropped past HTTP_MAX_HEADERS). */
void http_resp_header(struct http_resp *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline const char *http_header(const struct http_req *r, const char *name)
{
    return r->header(r, name);
}
/* Value of the first query argument named key, or NULL. */
const char *http_query(const struct http_req *r, const char *key);
/*
 * Adds one raw query argument (value NULL when it had no '='): decodes
 * both ('+' is a space), requires valid UTF-8 without NUL, and stores
 * copies in r (freed with the request). Returns 1, or 0 with r->bad_query
 * set when the argument is malformed or r is full.
 */
int http_query_add(struct http_req *r, const char *key, const char *value);

/* --- router --- */

typedef void (*http_handler)(struct http_req *req, struct http_resp *resp);

struct http_route {
    int method;            /* one HTTP_* bit (GET also serves HEAD) */
    const char *pattern;   /* "/api/v1/models/{id}"; {name} captures a segment */
    http_handler handler;
    int tag;               /* the application's (the API: who may call it) */
};

/*
 * Finds the route for req->method and req->path among n routes and stores
 * the decoded captures in req->params. Returns the route; NULL when none
 * matches, with *allow set to the methods that match the path (0: no such
 * path) and *bad set when a segment's percent-encoding is malformed.
 */
const struct http_route *http_route_match(const struct http_route *routes, int n,
                                          struct http_req *req, int *allow, int *bad);
/* Writes "GET, HEAD, PUT" for a method mask into out. */
void http_allow_string(int mask, char *out, size_t outlen);
/* HTTP_* bit of a method name; 0 when unknown. */
int http_method_parse(const char *name);

/* --- server --- */

struct http_server_opts {
    const char *listen;         /* "127.0.0.1:8000", "[::1]:8000" */
    int threads;
    size_t max_body;
    int max_connections;
    int max_connections_per_ip; /* 0: no limit */
    int idle_timeout_s;
    int body_timeout_s;         /* from the first header byte to the last body byte */
    void (*dispatch)(struct http_req *req, struct http_resp *resp);
    /* Called for a request refused before dispatch (e.g. 413), to fill the body. */
    void (*reject)(struct http_resp *resp, int status);
    /* Origins allowed to call from a browser (CORS): "https://a.example,..."
       ("*": any); NULL or "": none. */
    const char *cors_origins;
    /*
     * Called (may be NULL) once per answered request, after its response
     * is queued, refusals and preflights included: status, body bytes and
     * the time since its headers were complete. req->route says which
     * route served it (NULL: none); req->method is 0 for an unknown method.
     * Runs on a server thread: keep it short and lock-free.
     */
    void (*observe)(const struct http_req *req, int status, size_t bytes, int64_t dur_ns);
};

struct http_server;

/* Binds and starts serving. Returns 0 or ERR_INVAL/ERR_IO with detail. */
int http_server_start(const struct http_server_opts *o, struct http_server **out,
                      struct err_detail *d) MC_WUR;
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Requests between their headers and their completion, now. */
int http_server_inflight(struct http_server *s);
/*
 * Graceful stop: stops accepting, waits up to timeout_ms for in-flight
 * requests to finish, then closes every connection and frees s. Returns
 * the number of requests still in flight when it gave up (0 normally).
 */
int http_server_stop(struct http_server *s, int timeout_ms);

#endif
