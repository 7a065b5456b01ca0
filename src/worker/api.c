/*
 * The jobs API client (see api.h): a libcurl easy handle reset before
 * each call, the body collected into a capped buffer and parsed with
 * jansson; an error body's code and message are lifted out so the caller
 * can tell "cancelled" from "lease_lost" without reading JSON.
 */
#include "worker/api.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

struct worker_api {
    CURL *easy;
    int timeout_ms;
    char base[512];
    char auth[640];
    char errbuf[CURL_ERROR_SIZE];
    int traced;
    struct trace_ctx trace;       /* span_id: unused; each call gets its own */
};

int worker_api_create(const char *base_url, const char *key, int timeout_ms,
                      struct worker_api **out, struct err_detail *d)
{
    size_t n = strlen(base_url);
    if ((strncmp(base_url, "http://", 7) && strncmp(base_url, "https://", 8)) || n >= 512)
        return err_set(d, ERR_INVAL, "api", "--api: '%.64s' is not an http(s):// URL", base_url);
    struct worker_api *a = mem_calloc(1, sizeof(*a));
    if (!a)
        return err_set(d, ERR_NOMEM, "", "out of memory");
    a->easy = curl_easy_init();
    if (!a->easy) {
        mem_free(a);
        return err_set(d, ERR_INTERNAL, "", "libcurl could not create a handle");
    }
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    snprintf(a->base, sizeof(a->base), "%.*s", (int)n, base_url);
    if (key && *key)
        snprintf(a->auth, sizeof(a->auth), "Authorization: Bearer %s", key);
    a->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    *out = a;
    return 0;
}

void worker_api_destroy(struct worker_api *a)
{
    if (!a)
        return;
    curl_easy_cleanup(a->easy);
    mem_free(a);
}

void worker_api_set_trace(struct worker_api *a, const struct trace_ctx *t)
{
    a->traced = t != NULL;
    if (t)
        a->trace = *t;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    buf_append(b, p, size * nmemb);
    return buf_err(b) ? 0 : size * nmemb;
}

/* Lifts error.code and error.message out of an error body. */
static void error_of(struct worker_api_resp *r)
{
    json_t *e = json_object_get(r->body, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    snprintf(r->code, sizeof(r->code), "%s", code ? code : "");
    snprintf(r->message, sizeof(r->message), "%s", msg ? msg : "");
}

int worker_api_call(struct worker_api *a, const char *method, const char *path, json_t *body,
                    struct worker_api_resp *r, struct err_detail *d)
{
    char url[1024];
    struct buf in;
    struct curl_slist *h = NULL;
    char *text = NULL;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    buf_init(&in, WORKER_API_BODY_MAX);
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        rc = err_set(d, ERR_NOMEM, "", "out of memory");
        goto out;
    }
    snprintf(url, sizeof(url), "%s%s", a->base, path);
    curl_easy_reset(a->easy);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (h && a->auth[0])
        h = curl_slist_append(h, a->auth);
    if (h && a->traced) {
        char line[TRACE_PARENT_LEN + 16];
        struct trace_ctx t = a->trace;
        trace_random_id(t.span_id, sizeof(t.span_id));
        memcpy(line, "traceparent: ", 13);
        trace_format_parent(&t, line + 13);
        h = curl_slist_append(h, line);
    }
    CURL *c = a->easy;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (text)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &in);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(a->timeout_ms < 5000 ? a->timeout_ms
                                                                                : 5000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
    a->errbuf[0] = '\0';
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = buf_err(&in) == ERR_TOOBIG
                 ? err_set(d, ERR_TOOBIG, "", "the API's answer is over %d bytes",
                           WORKER_API_BODY_MAX)
                 : err_set(d, ERR_UNAVAIL, "", "%s %s: %s", method, path,
                           a->errbuf[0] ? a->errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (in.len)
        r->body = json_loadb(in.p, in.len, 0, NULL);
    if (r->status >= 400)
        error_of(r);
out:
    curl_slist_free_all(h);
    free(text);
    buf_free(&in);
    return rc;
}
