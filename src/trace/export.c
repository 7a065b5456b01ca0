/*
 * The OTLP/HTTP exporter thread (see export.h). Every interval, or as soon
 * as TRACE_EXPORT_BATCH spans wait, it takes up to that many spans from
 * the queue, encodes them (core/trace_otlp.c) and POSTs the JSON. A batch
 * that fails (no connection, a timeout, a status other than 2xx) is tried
 * once more, then dropped and counted in
 * modelcat_trace_spans_failed_total: spans are telemetry, and the queue
 * behind them is bounded, so a dead collector costs dropped spans, never a
 * slower request. No redirects are followed and the collector's reply is
 * read into a small capped buffer and discarded.
 */
#include "trace/export.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"

struct trace_exporter {
    pthread_t thread;
    int started;
    atomic_int stop;
    char url[1024];
    const char *version;
    int interval_ms, timeout_ms;
    CURL *easy;
    struct trace_span *batch;
    struct buf body;
};

/* Discards the collector's reply, up to 64 KiB. */
static size_t on_reply(char *p, size_t size, size_t nmemb, void *arg)
{
    size_t *seen = arg;
    (void)p;
    *seen += size * nmemb;
    return *seen > 65536 ? 0 : size * nmemb;
}

/* One POST of e->body. Returns 0 on a 2xx reply, else -1. */
static int post(struct trace_exporter *e)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t seen = 0;
    long status = 0;
    CURL *c = e->easy;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, e->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, e->body.p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->body.len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(e->timeout_ms < 2000 ? e->timeout_ms : 2000));
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return rc == CURLE_OK && status >= 200 && status < 300 ? 0 : -1;
}

/* Takes one batch from the queue and exports it. Returns the spans taken. */
static size_t flush_one(struct trace_exporter *e)
{
    size_t n = trace_dequeue(e->batch, TRACE_EXPORT_BATCH);
    if (n == 0)
        return 0;
    buf_reset(&e->body);
    int ok = trace_otlp_encode(&e->body, e->batch, n, e->version) == 0 &&
             (post(e) == 0 || post(e) == 0);
    trace_count_export(n, ok);
    if (!ok)
        log_debug("trace", "dropped a batch of %zu spans (export to %s failed)", n, e->url);
    return n;
}

static void *run(void *arg)
{
    struct trace_exporter *e = arg;
    while (!atomic_load(&e->stop)) {
        (void)trace_wait(TRACE_EXPORT_BATCH, e->interval_ms);
        while (flush_one(e) == TRACE_EXPORT_BATCH && !atomic_load(&e->stop))
            ;
    }
    while (flush_one(e) > 0) /* the last spans, at shutdown */
        ;
    return NULL;
}

int trace_export_start(const struct trace_export_opts *o, struct trace_exporter **out,
                       struct err_detail *d)
{
    const char *ep = o->endpoint;
    size_t n = ep ? strlen(ep) : 0;
    if (!ep || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) || n > 900)
        return err_set(d, ERR_INVAL, "otlp-endpoint",
                       "--otlp-endpoint: want http(s)://host:port");
    while (n > 0 && ep[n - 1] == '/')
        n--;
    struct trace_exporter *e = mem_calloc(1, sizeof(*e));
    if (!e)
        return err_set(d, ERR_NOMEM, "", "out of memory");
    snprintf(e->url, sizeof(e->url), "%.*s/v1/traces", (int)n, ep);
    e->version = o->version;
    e->interval_ms = o->interval_ms > 0 ? o->interval_ms : 1000;
    e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    buf_init(&e->body, TRACE_EXPORT_BODY_MAX);
    e->batch = mem_calloc(TRACE_EXPORT_BATCH, sizeof(*e->batch));
    e->easy = curl_easy_init();
    if (!e->batch || !e->easy) {
        trace_export_stop(e);
        return err_set(d, ERR_NOMEM, "", "out of memory");
    }
    if (pthread_create(&e->thread, NULL, run, e) != 0) {
        trace_export_stop(e);
        return err_set(d, ERR_INTERNAL, "", "cannot start the trace exporter thread");
    }
    e->started = 1;
    *out = e;
    return 0;
}

void trace_export_stop(struct trace_exporter *e)
{
    if (!e)
        return;
    if (e->started) {
        atomic_store(&e->stop, 1);
        trace_wake();
        pthread_join(e->thread, NULL);
    }
    if (e->easy)
        curl_easy_cleanup(e->easy);
    buf_free(&e->body);
    mem_free(e->batch);
    mem_free(e);
}
