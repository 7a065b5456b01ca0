/*
 * Catalog publishing (see publish.h), with libcurl: it is one request per
 * point, off the hot path, and gives TLS and proxies for free.
 */
#include "bench/publish.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/stats.h"
#include "core/buf.h"

/* Summary fields the catalog stores, named as in the result. */
static const char *const summary_fields[] = {
    "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
};
static const char *const stats[] = {"mean", "median", "std", "p50", "p90", "p95", "p99"};
static const char *const metrics[] = {"ttft", "tpot", "itl", "e2el"};

/* Telemetry summary fields (--gpu-telemetry), sent when known. */
static const char *const telemetry_fields[] = {
    "gpu_util_mean_pct", "gpu_util_max_pct", "gpu_mem_peak_bytes", "gpu_power_mean_w",
    "energy_per_output_token_j", "kv_cache_peak_pct",
};
/* The keys of a result's GPU sample that the catalog stores. */
static const char *const gpu_sample_keys[] = {
    "ts_ms", "gpu", "util_pct", "mem_used_bytes", "power_w", "temp_c", "sm_clock_mhz",
    "energy_j",
};

static void copy(json_t *dst, json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);
    if (v)
        json_object_set(dst, key, v);
}

static json_t *samples(const struct bench_run *run)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < run->n; i++) {
        const struct bench_req *r = &run->reqs[i];
        int64_t t0 = run->start_ns;
#define REL(x) ((x) > t0 ? (json_int_t)((x) - t0) : 0)
        json_t *s = json_pack("{s:I,s:I,s:o,s:o,s:i,s:i,s:o}",
            "scheduled_ns", REL(r->scheduled_ns), "sent_ns", REL(r->sent_ns),
            "first_token_ns", r->first_ns ? json_integer(REL(r->first_ns)) : json_null(),
            "last_token_ns", r->last_ns ? json_integer(REL(r->last_ns)) : json_null(),
            "input_tokens", r->input_tokens > 0 ? r->input_tokens : 0,
            "output_tokens", r->output_tokens > 0 ? r->output_tokens : 0,
            "error", r->err ? json_string(bench_err_name(r->err)) : json_null());
#undef REL
        if (!s || json_array_append_new(a, s)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *bench_publish_body(const struct bench_catalog *cat, json_t *result,
                           const struct bench_run *run, int with_samples)
{
    json_t *b = json_object();
    if (!b)
        return NULL;
    json_object_set_new(b, "model", json_string(cat->model));
    json_object_set_new(b, "engine", json_string(cat->engine));
    if (cat->engine_version && *cat->engine_version)
        json_object_set_new(b, "engine_version", json_string(cat->engine_version));
    if (cat->engine_args && *cat->engine_args)
        json_object_set_new(b, "engine_args", json_string(cat->engine_args));
    json_object_set_new(b, "hardware", json_string(cat->hardware));
    json_object_set_new(b, "gpu_count", json_integer(cat->gpu_count));
    json_object_set_new(b, "tensor_parallel", json_integer(cat->tensor_parallel));
    json_t *rate = json_object_get(result, "request_rate");
    json_object_set_new(b, "request_rate", json_is_number(rate) ? json_copy(rate) : json_null());
    static const char *const passthrough[] = {"dataset", "mean_input_tokens", "mean_output_tokens",
        "max_concurrency", "tool", "tool_version", "seed", "command", "sweep_id"};
    for (size_t i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++)
        copy(b, result, passthrough[i]);
    if (json_is_integer(json_object_get(b, "max_concurrency")) &&
        json_integer_value(json_object_get(b, "max_concurrency")) < 1)
        json_object_del(b, "max_concurrency");
    for (size_t i = 0; i < sizeof(summary_fields) / sizeof(summary_fields[0]); i++)
        copy(b, result, summary_fields[i]);
    for (size_t m = 0; m < 4; m++)
        for (size_t s = 0; s < sizeof(stats) / sizeof(stats[0]); s++) {
            char key[40];
            snprintf(key, sizeof(key), "%s_%s_ms", stats[s], metrics[m]);
            copy(b, result, key);
        }
    for (size_t i = 0; i < sizeof(telemetry_fields) / sizeof(telemetry_fields[0]); i++)
        if (json_is_number(json_object_get(result, telemetry_fields[i])))
            copy(b, result, telemetry_fields[i]);
    json_t *gs = json_object_get(result, "gpu_samples");
    if (json_array_size(gs)) {
        json_t *a = json_array();
        size_t i;
        json_t *g;
        json_array_foreach(gs, i, g) {
            json_t *o = json_object();
            for (size_t k = 0; o && k < sizeof(gpu_sample_keys) / sizeof(gpu_sample_keys[0]); k++)
                copy(o, g, gpu_sample_keys[k]);
            if (!o || json_array_append_new(a, o))
                break;
        }
        json_object_set_new(b, "gpu_samples", a);
    }
    if (with_samples) {
        json_t *a = samples(run);
        if (!a) {
            json_decref(b);
            return NULL;
        }
        json_object_set_new(b, "samples", a);
    }
    return b;
}

static const char *str_or(json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s ? s : dflt;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    buf_append(arg, p, size * n);
    return size * n;
}

/*
 * One POST of text. Returns 0 with id set, ERR_UNAVAIL when it is worth
 * retrying (no answer, 5xx, 429), or another error with the catalog's
 * message.
 */
static int post_once(const struct bench_catalog *cat, const char *text, const char *idem_key,
                     char id[64], struct err_detail *d)
{
    char url[1024], hdr_key[200], hdr_auth[600];
    snprintf(url, sizeof(url), "%s/api/v1/benchmarks", cat->url);
    snprintf(hdr_key, sizeof(hdr_key), "Idempotency-Key: %s", idem_key);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr_key);
    if (cat->api_key && *cat->api_key) {
        snprintf(hdr_auth, sizeof(hdr_auth), "Authorization: Bearer %s", cat->api_key);
        h = curl_slist_append(h, hdr_auth);
    }
    struct buf resp;
    buf_init(&resp, 1 << 20);
    CURL *c = curl_easy_init();
    int rc = 0;
    long status = 0;
    if (!c || !h) {
        rc = err_set(d, ERR_NOMEM, NULL, "cannot set up the HTTP client");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = err_set(d, ERR_UNAVAIL, "catalog", "cannot reach %s: %s", url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = resp.p ? json_loadb(resp.p, resp.len, 0, NULL) : NULL;
    if (status == 200 || status == 201) {
        snprintf(id, 64, "%s", str_or(json_object_get(j, "id"), ""));
    } else {
        json_t *e = json_object_get(j, "error");
        rc = err_set(d, status >= 500 || status == 429 ? ERR_UNAVAIL : ERR_IO, str_or(json_object_get(e, "field"), "catalog"),
                     "catalog answered %ld: %s", status,
                     str_or(json_object_get(e, "message"), "(no message)"));
    }
    json_decref(j);
out:
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(h);
    buf_free(&resp);
    return rc;
}

int bench_publish(const struct bench_catalog *cat, json_t *result, const struct bench_run *run,
                  const char *idem_key, char id[64], struct err_detail *d)
{
    json_t *body = bench_publish_body(cat, result, run, 1);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (text && strlen(text) > cat->max_body) { /* too big with samples: send without */
        free(text);
        json_object_del(body, "samples");
        text = json_dumps(body, JSON_COMPACT);
    }
    if (text && strlen(text) > cat->max_body) { /* and then without the GPU samples */
        free(text);
        json_object_del(body, "gpu_samples");
        text = json_dumps(body, JSON_COMPACT);
    }
    json_decref(body);
    if (!text)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    /* Retried with the same Idempotency-Key: the catalog stores the run once. */
    int rc = ERR_UNAVAIL;
    for (int attempt = 0; attempt < 4 && rc == ERR_UNAVAIL; attempt++) {
        if (attempt) {
            long ms = 250L << (attempt - 1); /* 250 ms, 500 ms, 1 s */
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        rc = post_once(cat, text, idem_key, id, d);
    }
    free(text);
    return rc;
}
