/*
 * Fuzz target: the router (http/router.c) over the real route table.
 *
 * Input: byte 0 picks the method (low 3 bits: GET HEAD POST PUT PATCH DELETE
 * OPTIONS, or an unknown one), the rest is the raw request path as the
 * server hands it over (not percent-decoded; a NUL ends it, as in a C
 * string from libmicrohttpd).
 *
 * Checks: captures are freed as the server frees them (req.nparams of
 * them), each capture is non-empty valid UTF-8, the route's method is the
 * one asked for, and re-encoding the captures into the route's pattern
 * routes back to the same route with the same captures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/codec.h"
#include "core/mem.h"
#include "http/http.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_router: property failed at line %d: %s\n",     \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

static const char *const method_names[8] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW",
};

static const char *no_header(const struct http_req *r, const char *name)
{
    (void)r, (void)name;
    return NULL;
}

static void free_params(struct http_req *req)
{
    /* Exactly what the server's free_req does. */
    for (int i = 0; i < req->nparams; i++)
        mem_free(req->params[i]);
    req->nparams = 0;
}

/* Builds the path of pattern with its {captures} replaced by the encoded
   params; returns a heap string or NULL when the pattern has no capture. */
static char *rebuild(const char *pattern, struct http_req *req)
{
    struct buf b;
    int k = 0;
    buf_init(&b, 1 << 20);
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            CHECK(e && k < req->nparams);
            codec_pct_encode(&b, req->params[k], strlen(req->params[k]));
            k++;
            p = e + 1;
        } else {
            buf_putc(&b, *p++);
        }
    }
    CHECK(!buf_err(&b) && k == req->nparams);
    if (k == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int nroutes;
    const struct http_route *routes = api_routes(&nroutes);

    char *path = malloc(size); /* size - 1 path bytes + NUL */
    if (!path)
        return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';

    struct http_req req;
    memset(&req, 0, sizeof(req));
    req.method_name = method_names[data[0] & 7];
    req.method = http_method_parse(req.method_name);
    req.path = path;
    req.body = "";
    req.header = no_header;

    int allow = -1, bad = -1;
    const struct http_route *r = http_route_match(routes, nroutes, &req, &allow, &bad);
    CHECK(bad == 0 || bad == 1);
    CHECK((allow & ~0x7f) == 0);
    char methods[128];
    http_allow_string(allow, methods, sizeof(methods));
    if (r) {
        int want = req.method == HTTP_HEAD ? HTTP_GET : req.method;
        CHECK(r->method == want && !bad);
        CHECK(allow & r->method);
        CHECK(req.nparams >= 0 && req.nparams <= HTTP_MAX_PARAMS);
        for (int i = 0; i < req.nparams; i++) {
            size_t n = strlen(req.params[i]);
            CHECK(n > 0 && codec_utf8_valid(req.params[i], n));
        }
        /* Round trip through the encoder. */
        char *again = rebuild(r->pattern, &req);
        if (again) {
            struct http_req req2;
            memset(&req2, 0, sizeof(req2));
            req2.method = req.method;
            req2.method_name = req.method_name;
            req2.path = again;
            req2.body = "";
            req2.header = no_header;
            int allow2, bad2;
            const struct http_route *r2 =
                http_route_match(routes, nroutes, &req2, &allow2, &bad2);
            CHECK(r2 == r && !bad2 && req2.nparams == req.nparams);
            for (int i = 0; i < req.nparams; i++)
                CHECK(strcmp(req.params[i], req2.params[i]) == 0);
            free_params(&req2);
            mem_free(again);
        }
    } else {
        CHECK(req.nparams == 0);
    }
    free_params(&req);
    free(path);
    return 0;
}
