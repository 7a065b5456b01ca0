/*
 * The HTTP server on libmicrohttpd (see http.h).
 *
 * DESIGN: MHD runs an epoll loop per pool thread and calls on_access
 * several times per request: first with headers only (we set up per-request
 * state and refuse an oversized Content-Length at once, without reading
 * the body), then once per body chunk (appended to a capped buffer), then a
 * final time with no data, when we dispatch and queue the response.
 * Queuing on that later call, not the first, keeps the connection alive.
 * The URL unescaper is replaced by the identity so that the router sees raw
 * paths (an encoded '/' stays in its segment) and query arguments are
 * decoded by us, strictly.
 *
 * Every response, refusals included, carries the security headers below
 * and the request's X-Request-Id; a request from an Origin on the CORS
 * allow-list gets the CORS headers, and its preflight (OPTIONS with
 * Access-Control-Request-Method) is answered here, before routing.
 * Request headers are bounded in size by MHD's per-connection memory (431
 * from MHD) and in number here (431).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/http.h"

struct http_server {
    struct MHD_Daemon *d;
    struct http_server_opts o;
    atomic_int inflight;
    atomic_int draining;  /* set by http_server_stop: answer with Connection: close */
    int port;
};

/* Per-request state, from the first call of on_access to completion. */
struct conn_req {
    int64_t started_ns;  /* when the headers were complete */
    struct buf body;
    size_t discarded;   /* body bytes dropped past the cap */
    int too_big;
    struct http_req req;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *get_header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static size_t unescape_identity(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return strlen(s);
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    return http_query_add(cls, key, value) ? MHD_YES : MHD_NO;
}

static void free_req(struct conn_req *cr)
{
    for (int i = 0; i < cr->req.nparams; i++)
        mem_free(cr->req.params[i]);
    for (int i = 0; i < cr->req.nquery; i++) {
        mem_free(cr->req.query[i].key);
        mem_free(cr->req.query[i].value);
    }
    buf_free(&cr->body);
    mem_free(cr);
}

static void free_body(void *p)
{
    mem_free(p);
}

/* Sent with every response: an API answer is never a page to frame or sniff. */
static const char *const security_headers[][2] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Resource-Policy", "same-site"},
};

static const char cors_allow_headers[] =
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-Id";
static const char cors_expose_headers[] =
    "ETag, Location, Retry-After, X-Cache, X-Request-Id";

/* 1 when origin is on the allow-list (a comma-separated list, or "*"). */
static int origin_allowed(const char *list, const char *origin)
{
    if (!list || !*list || !origin || !*origin)
        return 0;
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == 1 && *p == '*')
            return 1;
        if ((size_t)(t - p) == n && strncasecmp(p, origin, n) == 0)
            return 1;
        p = e;
    }
    return 0;
}

static void add_common_headers(struct http_server *s, struct MHD_Connection *conn,
                               const struct http_req *req, struct MHD_Response *r)
{
    for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
        MHD_add_response_header(r, security_headers[i][0], security_headers[i][1]);
    if (req && req->request_id[0])
        MHD_add_response_header(r, "X-Request-Id", req->request_id);
    if (s->o.cors_origins && *s->o.cors_origins) {
        const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
        MHD_add_response_header(r, "Vary", "Origin");
        if (origin_allowed(s->o.cors_origins, origin)) {
            MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
            MHD_add_response_header(r, "Access-Control-Expose-Headers", cors_expose_headers);
        }
    }
}

static enum MHD_Result send_resp(struct http_server *s, struct MHD_Connection *conn,
                                 const struct http_req *req, struct http_resp *resp)
{
    size_t len = 0;
    char *body = buf_steal(&resp->body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
        len, body ? body : (char *)"", body ? free_body : NULL);
    if (!r) {
        mem_free(body);
        return MHD_NO;
    }
    if (resp->content_type && len)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (int i = 0; i < resp->nhdr; i++)
        MHD_add_response_header(r, resp->hdr[i].name, resp->hdr[i].value);
    add_common_headers(s, conn, req, r);
    /* While draining, each connection ends with the response it is on. */
    if (atomic_load(&s->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Reports a queued response to the observe hook. */
static void observed(struct http_server *s, struct conn_req *cr, int status, size_t bytes)
{
    if (s->o.observe)
        s->o.observe(&cr->req, status, bytes, mono_ns() - cr->started_ns);
}

static enum MHD_Result reject(struct http_server *s, struct MHD_Connection *conn,
                              struct conn_req *cr, int status)
{
    struct http_resp resp;
    resp.nhdr = 0;
    resp.content_type = NULL;
    buf_init(&resp.body, 4096);
    resp.status = status;
    s->o.reject(&resp, status);
    if (status == 413 && !atomic_load(&s->draining))
        http_resp_header(&resp, "Connection", "close");
    size_t bytes = resp.body.len;
    enum MHD_Result rc = send_resp(s, conn, NULL, &resp);
    buf_free(&resp.body);
    observed(s, cr, status, bytes);
    return rc;
}

/* The peer's address as text into out ("" when unknown). */
static void client_ip(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

/* The client's X-Request-Id when it is 1..64 of [A-Za-z0-9._:-], else a UUIDv7. */
static void request_id(struct MHD_Connection *conn, char out[65])
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = v ? strlen(v) : 0;
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = v[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == ':' || c == '-';
    }
    if (ok) {
        memcpy(out, v, n + 1);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (codec_uuid7(out, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000))
        out[0] = '\0';
}

/* Answers a CORS preflight: 204 with what the API accepts, for allowed origins. */
static enum MHD_Result preflight(struct http_server *s, struct MHD_Connection *conn,
                                 struct conn_req *cr)
{
    const struct http_req *req = &cr->req;
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    add_common_headers(s, conn, req, r);
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin_allowed(s->o.cors_origins, origin)) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods",
                                "GET, HEAD, POST, PUT, PATCH, DELETE");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", cors_allow_headers);
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    observed(s, cr, MHD_HTTP_NO_CONTENT, 0);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct conn_req *cr = *con_cls;
    (void)version;
    if (!cr) {
        if (!(cr = mem_calloc(1, sizeof(*cr))))
            return MHD_NO;
        buf_init(&cr->body, s->o.max_body);
        cr->started_ns = mono_ns();
        client_ip(conn, cr->req.client_ip, sizeof(cr->req.client_ip));
        cr->req.method = http_method_parse(method);
        cr->req.method_name = method;
        *con_cls = cr;
        atomic_fetch_add(&s->inflight, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body)
            return reject(s, conn, cr, 413);
        if (MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL) >
            HTTP_MAX_REQ_HEADERS)
            return reject(s, conn, cr, 431);
        return MHD_YES;
    }
    if (*upload_size) {
        /* A body that trickles in keeps the idle timer quiet: bound it. */
        if (s->o.body_timeout_s > 0 &&
            mono_ns() - cr->started_ns > (int64_t)s->o.body_timeout_s * 1000000000) {
            log_debug("http", "%s: body not sent within %ds; closing", cr->req.client_ip,
                      s->o.body_timeout_s);
            return MHD_NO;
        }
        if (!cr->too_big) {
            buf_append(&cr->body, upload, *upload_size);
            cr->too_big = buf_err(&cr->body) != 0;
        }
        if (cr->too_big) {
            cr->discarded += *upload_size;
            /* A chunked body far past the cap: stop reading, drop the client. */
            if (cr->discarded > 16 * s->o.max_body)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cr->too_big)
        return reject(s, conn, cr, 413);

    struct http_req *req = &cr->req;
    req->path = url;
    req->body = cr->body.p ? cr->body.p : "";
    req->body_len = cr->body.len;
    req->header = get_header;
    req->conn = conn;
    request_id(conn, req->request_id);
    if (strcmp(method, "OPTIONS") == 0 &&
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method"))
        return preflight(s, conn, cr);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, req);

    struct http_resp resp;
    resp.nhdr = 0; /* the header array stays uninitialised until used */
    resp.content_type = NULL;
    buf_init(&resp.body, (size_t)1 << 30);
    resp.status = 500;
    s->o.dispatch(req, &resp);
    size_t bytes = resp.body.len;
    enum MHD_Result rc = send_resp(s, conn, req, &resp);
    buf_free(&resp.body);
    observed(s, cr, resp.status, bytes);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    (void)conn, (void)toe;
    if (*con_cls) {
        free_req(*con_cls);
        *con_cls = NULL;
        atomic_fetch_sub(&s->inflight, 1);
    }
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("http", "%s", msg);
}

/* Parses "host:port" or "[v6]:port" into ss. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                        struct err_detail *d)
{
    char host[128];
    const char *colon;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return err_set(d, ERR_INVAL, "listen", "--listen: bad address '%.64s'", s);
        snprintf(host, sizeof(host), "%.*s", (int)(rb - s - 1), s + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return err_set(d, ERR_INVAL, "listen", "--listen: want host:port, got '%.64s'", s);
        snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return err_set(d, ERR_INVAL, "listen", "--listen: bad port in '%.64s'", s);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        return err_set(d, ERR_INVAL, "listen", "--listen: '%.64s' is not an IP address", host);
    }
    return 0;
}

int http_server_start(const struct http_server_opts *o, struct http_server **out,
                      struct err_detail *d)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = parse_listen(o->listen, &ss, &sslen, d);
    if (rc)
        return rc;
    struct http_server *s = mem_calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    s->o = *o;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_identity, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL,
        MHD_OPTION_END);
    if (!s->d) {
        mem_free(s);
        return err_set(d, ERR_IO, "listen", "cannot listen on %s (in use, or not a local address?)",
                       o->listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (info && getsockname(info->listen_fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

int http_server_inflight(struct http_server *s)
{
    return atomic_load(&s->inflight);
}

int http_server_stop(struct http_server *s, int timeout_ms)
{
    atomic_store(&s->draining, 1);
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0; atomic_load(&s->inflight) > 0 && waited < timeout_ms; waited += 10)
        nanosleep(&tick, NULL);
    int left = atomic_load(&s->inflight);
    MHD_stop_daemon(s->d);
    mem_free(s);
    return left;
}
