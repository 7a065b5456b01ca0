/*
 * Scraped sources: a bounded libcurl GET (http:// only, no proxy, no
 * redirects, a timeout under the sampling interval, the body capped at
 * TEL_PROM_MAX_BODY) and the mapping of two kinds of Prometheus page to
 * samples.
 *
 * dcgm-exporter: DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_FB_USED (MiB),
 * DCGM_FI_DEV_POWER_USAGE (W), DCGM_FI_DEV_SM_CLOCK (MHz),
 * DCGM_FI_DEV_GPU_TEMP (C) and DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ),
 * one series per GPU told apart by the gpu label; its UUID label is kept.
 *
 * Engines: running and waiting requests and the KV-cache usage (a
 * fraction, reported here in percent) under the names of vLLM
 * (vllm:num_requests_running, vllm:num_requests_waiting,
 * vllm:gpu_cache_usage_perc or, in V1, vllm:kv_cache_usage_perc), TGI
 * (tgi_batch_current_size, tgi_queue_size) and LMDeploy (lmdeploy:*
 * under vLLM's names). Counts are summed over label sets (data-parallel
 * ranks); the KV usage is the busiest set's.
 */
#include <curl/curl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "telemetry/telemetry_int.h"

struct tel__http {
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
};

int tel__http_create(struct tel__http **out, struct err_detail *d)
{
    struct tel__http *h = mem_calloc(1, sizeof(*h));
    if (!h)
        return err_set(d, ERR_NOMEM, "gpu-telemetry", "out of memory");
    if (!(h->easy = curl_easy_init())) {
        mem_free(h);
        return err_set(d, ERR_INTERNAL, "gpu-telemetry", "libcurl could not create a handle");
    }
    *out = h;
    return 0;
}

void tel__http_destroy(struct tel__http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->easy);
    mem_free(h);
}

/* Appends a chunk unless it passes the buffer's cap; 0 aborts the transfer. */
static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    buf_append(b, p, size * nmemb);
    return buf_err(b) ? 0 : size * nmemb;
}

int tel__http_get(struct tel__http *h, const char *url, int timeout_ms, struct buf *body,
                  struct err_detail *d)
{
    CURL *c = h->easy;
    CURLcode cc = CURLE_OK;
    long status = 0;
    buf_reset(body);
    h->errbuf[0] = '\0';
    curl_easy_reset(c);
#define SET(opt, val) if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http");
#else
    SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_MAXFILESIZE, (long)TEL_PROM_MAX_BODY);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, body);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_USERAGENT, "modelcat-telemetry/" MODELCAT_VERSION);
#undef SET
    if (cc == CURLE_OK)
        cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_FILESIZE_EXCEEDED || (cc == CURLE_WRITE_ERROR && buf_err(body)))
        return err_set(d, ERR_TOOBIG, "gpu-telemetry", "%s: page over %d bytes", url,
                       TEL_PROM_MAX_BODY);
    if (cc != CURLE_OK)
        return err_set(d, cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_COULDNT_CONNECT
                              ? ERR_UNAVAIL : ERR_IO, "gpu-telemetry", "%s: %s", url,
                       h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
    if (status != 200)
        return err_set(d, ERR_IO, "gpu-telemetry", "%s answered %ld", url, status);
    return 0;
}

/* ---- dcgm-exporter ---- */

static const struct {
    const char *name;
    unsigned bit;
    size_t off;
    double scale;
} dcgm_fields[] = {
    {"DCGM_FI_DEV_GPU_UTIL", TEL_HAVE_UTIL, offsetof(struct tel_gpu_sample, util_pct), 1},
    {"DCGM_FI_DEV_FB_USED", TEL_HAVE_MEM, offsetof(struct tel_gpu_sample, mem_used_bytes),
     1048576.0},
    {"DCGM_FI_DEV_POWER_USAGE", TEL_HAVE_POWER, offsetof(struct tel_gpu_sample, power_w), 1},
    {"DCGM_FI_DEV_SM_CLOCK", TEL_HAVE_CLOCK, offsetof(struct tel_gpu_sample, sm_clock_mhz), 1},
    {"DCGM_FI_DEV_GPU_TEMP", TEL_HAVE_TEMP, offsetof(struct tel_gpu_sample, temp_c), 1},
    {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", TEL_HAVE_ENERGY,
     offsetof(struct tel_gpu_sample, energy_j), 1e-3},
};

struct dcgm_acc {
    struct tel_gpu_sample *out;
    int n, max;
    int64_t now_ms;
};

/* The slot of GPU index gpu, made on first sight; NULL when full. */
static struct tel_gpu_sample *dcgm_slot(struct dcgm_acc *a, int gpu)
{
    for (int i = 0; i < a->n; i++)
        if (a->out[i].gpu == gpu)
            return &a->out[i];
    if (a->n == a->max)
        return NULL;
    struct tel_gpu_sample *s = &a->out[a->n++];
    memset(s, 0, sizeof(*s));
    s->ts_ms = a->now_ms;
    s->gpu = gpu;
    return s;
}

static int on_dcgm(void *arg, const struct tel_prom_sample *s)
{
    struct dcgm_acc *a = arg;
    if (strncmp(s->name, "DCGM_FI_DEV_", 12))
        return 0;
    for (size_t i = 0; i < sizeof(dcgm_fields) / sizeof(dcgm_fields[0]); i++) {
        if (strcmp(s->name, dcgm_fields[i].name))
            continue;
        const char *g = tel_prom_label(s, "gpu"), *uuid = tel_prom_label(s, "UUID");
        char *end;
        long gpu = g ? strtol(g, &end, 10) : -1;
        if (!g || !*g || *end || gpu < 0 || gpu > 1023 || !isfinite(s->value))
            return 0;
        struct tel_gpu_sample *t = dcgm_slot(a, (int)gpu);
        if (!t)
            return 0;
        if (uuid && !t->uuid[0])
            snprintf(t->uuid, sizeof(t->uuid), "%s", uuid);
        double v = s->value * dcgm_fields[i].scale;
        if (dcgm_fields[i].bit == TEL_HAVE_UTIL)
            v = v < 0 ? 0 : v > 100 ? 100 : v;
        memcpy((char *)t + dcgm_fields[i].off, &v, sizeof(v));
        t->have |= dcgm_fields[i].bit;
        return 0;
    }
    return 0;
}

int tel_dcgm_map(const char *body, size_t len, int64_t now_ms, struct tel_gpu_sample *out,
                 int max, struct err_detail *d)
{
    struct dcgm_acc a = {out, 0, max, now_ms};
    int rc = tel_prom_parse(body, len, on_dcgm, &a, d);
    return rc ? rc : a.n;
}

/* ---- engines ---- */

enum { E_RUNNING, E_WAITING, E_KV };

static const struct {
    const char *name;
    int what;
} engine_names[] = {
    {"vllm:num_requests_running", E_RUNNING},
    {"vllm:num_requests_waiting", E_WAITING},
    {"vllm:gpu_cache_usage_perc", E_KV},
    {"vllm:kv_cache_usage_perc", E_KV},
    {"tgi_batch_current_size", E_RUNNING},
    {"tgi_queue_size", E_WAITING},
    {"lmdeploy:num_requests_running", E_RUNNING},
    {"lmdeploy:num_requests_waiting", E_WAITING},
    {"lmdeploy:gpu_cache_usage_perc", E_KV},
};

static int on_engine(void *arg, const struct tel_prom_sample *s)
{
    struct tel_engine_sample *e = arg;
    if (!isfinite(s->value))
        return 0;
    for (size_t i = 0; i < sizeof(engine_names) / sizeof(engine_names[0]); i++) {
        if (strcmp(s->name, engine_names[i].name))
            continue;
        switch (engine_names[i].what) {
        case E_RUNNING:
            e->running += s->value;
            e->have |= TEL_HAVE_RUNNING;
            break;
        case E_WAITING:
            e->waiting += s->value;
            e->have |= TEL_HAVE_WAITING;
            break;
        default: {
            double pct = s->value * 100;
            if (!(e->have & TEL_HAVE_KV) || pct > e->kv_pct)
                e->kv_pct = pct;
            e->have |= TEL_HAVE_KV;
        }
        }
        return 0;
    }
    return 0;
}

int tel_engine_map(const char *body, size_t len, int64_t now_ms, struct tel_engine_sample *out,
                   struct err_detail *d)
{
    memset(out, 0, sizeof(*out));
    out->ts_ms = now_ms;
    int rc = tel_prom_parse(body, len, on_engine, out, d);
    return rc ? rc : out->have != 0;
}
