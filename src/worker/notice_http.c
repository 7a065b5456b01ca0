/*
 * The notice watcher's HTTP client: one libcurl easy handle, reset before
 * each call and set up with the limits that make a metadata service safe
 * to ask: plain http:// only (no redirects, no other scheme even if one is
 * offered), no proxy whatever the environment says, connect and total
 * timeouts, and a write callback that refuses the body past
 * WORKER_BODY_MAX. libcurl's own cap on header size bounds the rest.
 * The handle keeps its connection between calls when the server allows.
 */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "worker/notice.h"
#include "worker/notice_int.h"

struct worker__http {
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
};

int worker__http_create(struct worker__http **out, struct err_detail *d)
{
    struct worker__http *h = mem_calloc(1, sizeof(*h));
    if (!h)
        return err_set(d, ERR_NOMEM, "", "out of memory");
    h->easy = curl_easy_init();
    if (!h->easy) {
        mem_free(h);
        return err_set(d, ERR_INTERNAL, "", "libcurl could not create a handle");
    }
    *out = h;
    return 0;
}

void worker__http_destroy(struct worker__http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->easy);
    mem_free(h);
}

/* Appends a body chunk unless it passes the cap; 0 aborts the transfer. */
static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct worker__resp *r = arg;
    size_t n = size * nmemb;
    if (r->body.len + n > WORKER_BODY_MAX) {
        r->toobig = 1;
        return 0;
    }
    buf_append(&r->body, p, n);
    if (buf_err(&r->body)) {
        r->toobig = buf_err(&r->body) == ERR_TOOBIG;
        return 0;
    }
    return n;
}

/* Notes "Metadata-Flavor: Google" among the response headers. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct worker__resp *r = arg;
    size_t n = size * nmemb;
    static const char name[] = "Metadata-Flavor:";
    size_t nl = sizeof(name) - 1;
    if (n > nl && strncasecmp(p, name, nl) == 0) {
        const char *v = p + nl, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        r->flavor_google = e - v == 6 && memcmp(v, "Google", 6) == 0;
    }
    return n;
}

/* Sets the options every call shares; 0 or a CURLcode. */
static CURLcode setup(struct worker__http *h, const char *url, int timeout_ms,
                      struct worker__resp *r)
{
    CURL *c = h->easy;
    CURLcode cc = CURLE_OK;
#define SET(opt, val) if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http");
#else
    SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
    SET(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_MAXFILESIZE, (long)WORKER_BODY_MAX);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_USERAGENT, "modelcat-worker/" MODELCAT_VERSION);
#undef SET
    return cc;
}

/* Our code for a failed transfer. */
static int map_curl(CURLcode cc, const struct worker__resp *r)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return ERR_UNAVAIL;
    case CURLE_FILESIZE_EXCEEDED:
        return ERR_TOOBIG;
    case CURLE_WRITE_ERROR:
        return r->toobig ? ERR_TOOBIG : buf_err(&r->body) == ERR_NOMEM ? ERR_NOMEM : ERR_IO;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return ERR_INVAL;
    default:
        return ERR_IO;
    }
}

int worker__http_call(struct worker__http *h, const char *method, const char *url,
                      const char *const *hdrs, int timeout_ms, struct worker__resp *r,
                      const char *what, struct err_detail *d)
{
    struct curl_slist *list = NULL;
    int rc = 0;
    r->status = 0;
    r->flavor_google = 0;
    r->toobig = 0;
    buf_reset(&r->body);
    h->errbuf[0] = '\0';
    curl_easy_reset(h->easy);
    CURLcode cc = setup(h, url, timeout_ms, r);
    for (size_t i = 0; hdrs && hdrs[i] && cc == CURLE_OK; i++) {
        struct curl_slist *l = curl_slist_append(list, hdrs[i]);
        if (!l) {
            rc = err_set(d, ERR_NOMEM, "", "%s: out of memory", what);
            goto out;
        }
        list = l;
    }
    if (cc == CURLE_OK && list)
        cc = curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, list);
    if (cc == CURLE_OK && strcmp(method, "PUT") == 0) {
        /* A PUT with an empty body: the verb, and Content-Length: 0. */
        cc = curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, "PUT");
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, "");
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (cc != CURLE_OK) {
        rc = err_set(d, ERR_INTERNAL, "", "%s: libcurl setup: %s", what, curl_easy_strerror(cc));
        goto out;
    }
    cc = curl_easy_perform(h->easy);
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc != CURLE_OK) {
        int code = map_curl(cc, r);
        if (code == ERR_TOOBIG)
            rc = err_set(d, code, "", "%s: response body over %d bytes", what, WORKER_BODY_MAX);
        else
            rc = err_set(d, code, "", "%s: %s", what,
                         h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
    }
out:
    curl_slist_free_all(list);
    return rc;
}
