/*
 * Route matching over a small static table: a linear scan that compares
 * raw path segments (a few dozen routes; a trie would not pay for itself).
 * Captures are percent-decoded here, once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/codec.h"
#include "core/mem.h"
#include "http/http.h"

static const struct {
    int bit;
    const char *name;
} methods[] = {
    {HTTP_GET, "GET"}, {HTTP_HEAD, "HEAD"}, {HTTP_POST, "POST"}, {HTTP_PUT, "PUT"},
    {HTTP_PATCH, "PATCH"}, {HTTP_DELETE, "DELETE"}, {HTTP_OPTIONS, "OPTIONS"},
};

int http_method_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(name, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

void http_allow_string(int mask, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    if (mask & HTTP_GET)
        mask |= HTTP_HEAD;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if ((mask & methods[i].bit) && n < outlen)
            n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? ", " : "",
                                  methods[i].name);
}

/*
 * Matches path against pattern; on success stores captures (decoded, owned
 * by req) when store is set. Returns 1 on match, 0 otherwise, -1 when a
 * capture is malformed.
 */
static int match(const char *pattern, const char *path, struct http_req *req, int store)
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (pl > 1 && p[0] == '{') {
            if (sl == 0 || np >= HTTP_MAX_PARAMS)
                return 0;
            if (store) {
                char *v = mem_malloc(sl + 1);
                long n = v ? codec_pct_decode(s, sl, v, 0) : -1;
                if (n <= 0 || !codec_utf8_valid(v, (size_t)n)) {
                    mem_free(v);
                    for (int i = 0; i < np; i++)
                        mem_free(req->params[i]);
                    return -1;
                }
                req->params[np] = v;
            }
            np++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl, s += sl;
    }
    if (*p || *s)
        return 0;
    if (store)
        req->nparams = np;
    return 1;
}

const struct http_route *http_route_match(const struct http_route *routes, int n,
                                          struct http_req *req, int *allow, int *bad)
{
    int want = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    *allow = 0;
    *bad = 0;
    for (int i = 0; i < n; i++) {
        if (!match(routes[i].pattern, req->path, req, 0))
            continue;
        *allow |= routes[i].method;
        if (routes[i].method != want)
            continue;
        int m = match(routes[i].pattern, req->path, req, 1);
        if (m < 0) {
            *bad = 1;
            return NULL;
        }
        req->route = &routes[i];
        return &routes[i];
    }
    return NULL;
}

void http_resp_header(struct http_resp *r, const char *name, const char *fmt, ...)
{
    if (r->nhdr >= HTTP_MAX_HEADERS)
        return;
    snprintf(r->hdr[r->nhdr].name, sizeof(r->hdr[0].name), "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->hdr[r->nhdr].value, sizeof(r->hdr[0].value), fmt, ap);
    va_end(ap);
    r->nhdr++;
}

int http_query_add(struct http_req *r, const char *key, const char *value)
{
    if (r->nquery >= HTTP_MAX_QUERY) {
        r->bad_query = "query";
        return 0;
    }
    size_t kl = strlen(key), vl = value ? strlen(value) : 0;
    char *k = mem_malloc(kl + 1), *v = mem_malloc(vl + 1);
    if (!k || !v || codec_pct_decode(key, kl, k, 1) < 0 ||
        codec_pct_decode(value ? value : "", vl, v, 1) < 0 ||
        !codec_utf8_valid(k, strlen(k)) || !codec_utf8_valid(v, strlen(v))) {
        mem_free(k);
        mem_free(v);
        r->bad_query = "query";
        return 0;
    }
    r->query[r->nquery].key = k;
    r->query[r->nquery].value = v;
    r->nquery++;
    return 1;
}

const char *http_query(const struct http_req *r, const char *key)
{
    for (int i = 0; i < r->nquery; i++)
        if (strcmp(r->query[i].key, key) == 0)
            return r->query[i].value;
    return NULL;
}
