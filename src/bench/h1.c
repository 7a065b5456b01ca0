/*
 * HTTP/1.1 response parser (see h1.h). Hand-written rather than libcurl on
 * the benchmark's hot path: measured here, libcurl's multi interface adds
 * 49–78% CPU per streamed event at 1–2k streams and halves requests/s,
 * while this parser costs a memchr per line and a copy only when a read
 * splits a line. Strict about syntax, bounded in every buffer, fuzzed.
 */
#include "bench/h1.h"

#include <string.h>
#include <strings.h>

void h1_init(struct h1_parser *p, int head_only)
{
    p->state = H1_S_HEAD;
    p->status = 0;
    p->keep_alive = 1;
    p->chunked = 0;
    p->content_length = -1;
    p->remaining = 0;
    p->head_only = head_only;
    p->content_type[0] = '\0';
    p->head_len = 0;
    p->nheaders = 0;
}

static int ieq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* Trims spaces and tabs at both ends of [*v, *v + *n). */
static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t'))
        (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return 1;
    return 0;
}

static int status_line(struct h1_parser *p, const char *l, size_t n)
{
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
        l[8] != ' ' || l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
        l[11] < '0' || l[11] > '9' || (n > 12 && l[12] != ' '))
        return ERR_PARSE;
    p->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    p->keep_alive = l[7] == '1';
    return 0;
}

static int header_line(struct h1_parser *p, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l || ++p->nheaders > H1_MAX_HEADERS)
        return colon && colon != l ? ERR_TOOBIG : ERR_PARSE;
    size_t nl = (size_t)(colon - l);
    for (size_t i = 0; i < nl; i++)
        if (l[i] <= ' ' || l[i] >= 0x7f)
            return ERR_PARSE;
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    trim(&v, &vl);
    if (ieq(l, nl, "content-length")) {
        int64_t x = 0;
        if (vl == 0 || vl > 18)
            return ERR_PARSE;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return ERR_PARSE;
            x = x * 10 + (v[i] - '0');
        }
        if (p->content_length >= 0 && p->content_length != x)
            return ERR_PARSE; /* conflicting lengths: refuse, never guess */
        p->content_length = x;
    } else if (ieq(l, nl, "transfer-encoding")) {
        if (!has_token(v, vl, "chunked"))
            return ERR_PARSE; /* no other coding is acceptable here */
        p->chunked = 1;
    } else if (ieq(l, nl, "connection")) {
        if (has_token(v, vl, "close"))
            p->keep_alive = 0;
        else if (has_token(v, vl, "keep-alive"))
            p->keep_alive = 1;
    } else if (ieq(l, nl, "content-type")) {
        size_t k = vl < sizeof(p->content_type) - 1 ? vl : sizeof(p->content_type) - 1;
        memcpy(p->content_type, v, k);
        p->content_type[k] = '\0';
    }
    return 0;
}

/* The head is complete in p->head: parse it and choose the body framing. */
static int end_of_head(struct h1_parser *p)
{
    const char *s = p->head, *end = p->head + p->head_len;
    int first = 1, rc;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = (size_t)((nl ? nl : end) - s);
        if (n && s[n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        rc = first ? status_line(p, s, n) : header_line(p, s, n);
        if (rc)
            return rc;
        first = 0;
        s = nl ? nl + 1 : end;
    }
    if (first)
        return ERR_PARSE;
    p->head_len = 0;
    if (p->head_only || p->status == 204 || p->status == 304 || p->status < 200) {
        p->state = H1_S_DONE;
    } else if (p->chunked) {
        p->state = H1_S_CHUNK_SIZE;
    } else if (p->content_length >= 0) {
        p->remaining = p->content_length;
        p->state = p->remaining ? H1_S_BODY_LEN : H1_S_DONE;
    } else {
        p->keep_alive = 0;
        p->state = H1_S_BODY_EOF;
    }
    return 0;
}

/*
 * Appends bytes of a line into p->head until '\n'. Returns 1 with the line
 * complete (len in *len, without CRLF), 0 when more is needed, or an error.
 */
static int take_line(struct h1_parser *p, const char **s, const char *end, size_t cap,
                     size_t *len)
{
    const char *nl = memchr(*s, '\n', (size_t)(end - *s));
    size_t n = (size_t)((nl ? nl + 1 : end) - *s);
    if (p->head_len + n > cap)
        return ERR_TOOBIG;
    memcpy(p->head + p->head_len, *s, n);
    p->head_len += n;
    *s += n;
    if (!nl)
        return 0;
    *len = p->head_len - 1;
    if (*len && p->head[*len - 1] == '\r')
        (*len)--;
    p->head_len = 0;
    return 1;
}

static int chunk_size(struct h1_parser *p, const char *l, size_t n)
{
    int64_t x = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = l[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            break;
        if (i >= 15)
            return ERR_TOOBIG;
        x = x * 16 + d;
    }
    if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
        return ERR_PARSE;
    p->remaining = x;
    p->state = x ? H1_S_CHUNK_DATA : H1_S_TRAILER;
    return 0;
}

int h1_feed(struct h1_parser *p, const char *s, size_t n, size_t *used, h1_body_cb cb,
            void *arg)
{
    const char *start = s, *end = s + n;
    int rc = 0;
    size_t len;
    while (s < end && p->state != H1_S_DONE && rc == 0) {
        switch (p->state) {
        case H1_S_HEAD: {
            /* Look for the blank line; keep the head in p->head. */
            size_t room = H1_MAX_HEAD - p->head_len, k = (size_t)(end - s);
            size_t take = k < room ? k : room;
            memcpy(p->head + p->head_len, s, take);
            size_t old = p->head_len;
            p->head_len += take;
            const char *h = p->head, *stop = NULL;
            size_t from = old > 3 ? old - 3 : 0;
            for (size_t i = from; i < p->head_len; i++) {
                if (h[i] != '\n')
                    continue;
                if (i >= 1 && h[i - 1] == '\n') { stop = h + i + 1; break; }
                if (i >= 2 && h[i - 1] == '\r' && h[i - 2] == '\n') { stop = h + i + 1; break; }
            }
            if (!stop) {
                if (p->head_len == H1_MAX_HEAD)
                    rc = ERR_TOOBIG;
                s += take;
                break;
            }
            size_t head = (size_t)(stop - h);
            s += head - old;
            p->head_len = head;
            rc = end_of_head(p);
            break;
        }
        case H1_S_BODY_LEN:
        case H1_S_CHUNK_DATA: {
            size_t k = (size_t)(end - s);
            if ((int64_t)k > p->remaining)
                k = (size_t)p->remaining;
            rc = cb(arg, s, k);
            s += k;
            p->remaining -= (int64_t)k;
            if (p->remaining == 0)
                p->state = p->state == H1_S_BODY_LEN ? H1_S_DONE : H1_S_CHUNK_CRLF;
            break;
        }
        case H1_S_BODY_EOF:
            rc = cb(arg, s, (size_t)(end - s));
            s = end;
            break;
        case H1_S_CHUNK_CRLF:
            if ((rc = take_line(p, &s, end, 8, &len)) == 1)
                rc = len == 0 ? (p->state = H1_S_CHUNK_SIZE, 0) : ERR_PARSE;
            break;
        case H1_S_CHUNK_SIZE:
            if ((rc = take_line(p, &s, end, 64, &len)) == 1)
                rc = chunk_size(p, p->head, len);
            break;
        case H1_S_TRAILER:
            if ((rc = take_line(p, &s, end, 4096, &len)) == 1)
                rc = len == 0 ? (p->state = H1_S_DONE, 0) : 0;
            break;
        case H1_S_DONE:
            break;
        }
    }
    *used = (size_t)(s - start);
    if (rc)
        return rc;
    return p->state == H1_S_DONE;
}

int h1_eof(struct h1_parser *p)
{
    if (p->state == H1_S_BODY_EOF) {
        p->state = H1_S_DONE;
        return 1;
    }
    return p->state == H1_S_DONE ? 1 : ERR_PARSE;
}
