/*
 * The request-head parser of the simulator's HTTP/1.1 server: request
 * line and the few headers the simulator acts on (Content-Length,
 * Transfer-Encoding, Connection, Expect, X-Request-Id, X-Sim-Fault).
 * Strict about syntax (CRLF line ends, no obsolete line folding, one
 * Content-Length), bounded by SIM_HEAD_MAX, and free of allocation: the
 * connection code keeps the bytes, this only reads them.
 */
#include <string.h>
#include <strings.h>

#include "sim/sim_int.h"

static int ieq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* 1 when [p, p+n) holds a token equal to tok in a comma-separated list. */
static int list_has(const char *p, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
            i++;
        if (i > s && ieq(p + s, i - s, tok))
            return 1;
    }
    return 0;
}

static int request_line(const char *l, size_t n, struct sim__head *h)
{
    const char *sp1 = memchr(l, ' ', n);
    if (!sp1 || sp1 == l)
        return ERR_PARSE;
    size_t ml = (size_t)(sp1 - l);
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)l[i]))
            return ERR_PARSE;
    /* Methods are case-sensitive. */
    h->method = ml == 3 && !memcmp(l, "GET", 3)    ? SIM_M_GET
                : ml == 4 && !memcmp(l, "POST", 4) ? SIM_M_POST
                : ml == 4 && !memcmp(l, "HEAD", 4) ? SIM_M_HEAD
                                                   : SIM_M_OTHER;
    const char *t = sp1 + 1, *end = l + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t || *t != '/')
        return ERR_PARSE;
    if (end - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return ERR_PARSE;
    h->http10 = sp2[8] == '0';
    h->keep_alive = !h->http10;
    for (const char *c = t; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return ERR_PARSE;
    const char *q = memchr(t, '?', (size_t)(sp2 - t));
    size_t pl = (size_t)((q ? q : sp2) - t);
    if (pl > SIM_PATH_MAX)
        return ERR_RANGE;
    memcpy(h->path, t, pl);
    h->path[pl] = '\0';
    return 0;
}

static int content_length(const char *v, size_t n, struct sim__head *h)
{
    int64_t x = 0;
    if (n == 0 || n > 18)
        return ERR_PARSE;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return ERR_PARSE;
        x = x * 10 + (v[i] - '0');
    }
    if (h->content_length >= 0 && h->content_length != x)
        return ERR_PARSE;
    h->content_length = x;
    return 0;
}

static int header(const char *name, size_t nl, const char *v, size_t vl,
                  struct sim__head *h)
{
    if (ieq(name, nl, "content-length"))
        return content_length(v, vl, h);
    if (ieq(name, nl, "transfer-encoding"))
        h->has_te = 1;
    else if (ieq(name, nl, "connection")) {
        if (list_has(v, vl, "close"))
            h->keep_alive = 0;
        else if (list_has(v, vl, "keep-alive"))
            h->keep_alive = 1;
    } else if (ieq(name, nl, "expect")) {
        h->expect_continue = ieq(v, vl, "100-continue");
    } else if (ieq(name, nl, "x-request-id")) {
        if (vl > SIM_ID_MAX)
            return ERR_RANGE;
        memcpy(h->request_id, v, vl);
        h->request_id[vl] = '\0';
    } else if (ieq(name, nl, "traceparent")) {
        size_t k = vl < sizeof(h->traceparent) - 1 ? vl : sizeof(h->traceparent) - 1;
        memcpy(h->traceparent, v, k);
        h->traceparent[k] = '\0';
    } else if (ieq(name, nl, "x-sim-fault")) {
        size_t k = vl < sizeof(h->fault) - 1 ? vl : sizeof(h->fault) - 1;
        memcpy(h->fault, v, k);
        h->fault[k] = '\0';
    }
    return 0;
}

static int header_line(const char *l, size_t n, struct sim__head *h)
{
    if (n == 0 || l[0] == ' ' || l[0] == '\t') /* obsolete line folding */
        return ERR_PARSE;
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return ERR_PARSE;
    size_t nl = (size_t)(colon - l);
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)l[i]))
            return ERR_PARSE;
    const char *v = colon + 1, *e = l + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    for (const char *c = v; c < e; c++)
        if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f)
            return ERR_PARSE;
    return header(l, nl, v, (size_t)(e - v), h);
}

int sim__head_parse(const char *p, size_t n, struct sim__head *h)
{
    size_t off = 0;
    while (n - off >= 2 && p[off] == '\r' && p[off + 1] == '\n')
        off += 2; /* empty lines before a request are allowed */
    size_t scan = n < SIM_HEAD_MAX + off ? n : SIM_HEAD_MAX + off;
    const char *end = memmem(p + off, scan - off, "\r\n\r\n", 4);
    if (!end)
        return n >= SIM_HEAD_MAX + off ? ERR_TOOBIG : 0;
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    h->len = (size_t)(end - p) + 4;
    const char *l = p + off, *stop = end + 2;
    int rc = 0, first = 1;
    while (l < stop) {
        const char *eol = memmem(l, (size_t)(stop - l), "\r\n", 2);
        size_t ll = (size_t)(eol - l);
        if (memchr(l, '\n', ll) || memchr(l, '\r', ll))
            return ERR_PARSE; /* a bare CR or LF */
        rc = first ? request_line(l, ll, h) : header_line(l, ll, h);
        if (rc)
            return rc;
        first = 0;
        l = eol + 2;
    }
    return 1;
}
