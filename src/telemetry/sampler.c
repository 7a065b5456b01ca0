/*
 * The telemetry sampler (see telemetry.h) and the summary of what it kept.
 *
 * DESIGN: one thread per sampler, started with each benchmark point and
 * joined when the point ends, so sampling never runs on the benchmark's
 * event loop and a slow scrape never delays a request. The thread ticks at
 * a fixed rate on CLOCK_MONOTONIC (a tick missed by a slow source is
 * skipped, not caught up), waits on a condition variable so a stop is
 * prompt, and hands the wall-clock time to tel_sampler_poll, which tests
 * call directly with their own clock. Only the thread writes the samples
 * while it runs; the caller reads them after the join. Samples are kept
 * in arrays that grow by doubling up to TEL_MAX_SAMPLES each; past that
 * they are counted as dropped.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "telemetry/telemetry_int.h"

#define URL_MAX 2048

struct tel_sampler {
    struct tel__nvml *nvml;
    struct tel__http *http;
    char dcgm_url[URL_MAX];     /* "" when not a source */
    char engine_url[URL_MAX];   /* {base}/metrics, "" when not a source */
    double interval_s;
    struct buf page;            /* the last scraped page */
    struct tel_gpu_sample *gpu;
    size_t ngpu, capgpu;
    struct tel_engine_sample *eng;
    size_t neng, capeng;
    uint64_t dropped, errors;
    char last_err[ERR_MSG_LEN];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop;
};

/* Parses "nvml,engine,dcgm:URL" into s; 0 or ERR_INVAL. */
static int parse_sources(struct tel_sampler *s, const struct tel_opts *o, int *nvml,
                         struct err_detail *d)
{
    const char *p = o->sources ? o->sources : "";
    if (!*p)
        return err_set(d, ERR_INVAL, "gpu-telemetry", "no source given");
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 4 && !memcmp(p, "nvml", 4)) {
            *nvml = 1;
        } else if (n == 6 && !memcmp(p, "engine", 6)) {
            const char *base = o->engine_url ? o->engine_url : "";
            size_t bl = strlen(base);
            while (bl && base[bl - 1] == '/')
                bl--;
            if (strncmp(base, "http://", 7) || bl + 9 > URL_MAX)
                return err_set(d, ERR_INVAL, "gpu-telemetry",
                               "engine: the base URL must be http:// to scrape /metrics");
            snprintf(s->engine_url, URL_MAX, "%.*s/metrics", (int)bl, base);
        } else if (n > 5 && !memcmp(p, "dcgm:", 5)) {
            if (n - 5 >= URL_MAX || strncmp(p + 5, "http://", 7))
                return err_set(d, ERR_INVAL, "gpu-telemetry",
                               "dcgm: want dcgm:http://host:9400/metrics");
            snprintf(s->dcgm_url, URL_MAX, "%.*s", (int)(n - 5), p + 5);
        } else {
            return err_set(d, ERR_INVAL, "gpu-telemetry",
                           "unknown source '%.*s' (want nvml, engine or dcgm:URL)",
                           (int)(n > 64 ? 64 : n), p);
        }
        p += n + (comma != NULL);
    }
    return 0;
}

int tel_sampler_create(struct tel_sampler **out, const struct tel_opts *o,
                       struct err_detail *d)
{
    struct tel_sampler *s = mem_calloc(1, sizeof(*s));
    int rc = 0, nvml = 0;
    pthread_condattr_t ca;
    if (!s)
        return err_set(d, ERR_NOMEM, "gpu-telemetry", "out of memory");
    buf_init(&s->page, TEL_PROM_MAX_BODY);
    s->interval_s = o->interval_s > 0 ? o->interval_s : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = parse_sources(s, o, &nvml, d)))
        goto out;
    if (nvml && (rc = tel__nvml_open(&s->nvml, o->nvml_library, d)))
        goto out;
    if ((s->dcgm_url[0] || s->engine_url[0]) && (rc = tel__http_create(&s->http, d)))
        goto out;
out:
    if (rc) {
        tel_sampler_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tel_sampler_destroy(struct tel_sampler *s)
{
    if (!s)
        return;
    tel_sampler_stop(s);
    tel__nvml_close(s->nvml);
    tel__http_destroy(s->http);
    buf_free(&s->page);
    mem_free(s->gpu);
    mem_free(s->eng);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    mem_free(s);
}

/* Room for k more elements of size sz in *v (count n, capacity *cap); 0 or -1. */
static int reserve(void **v, size_t n, size_t *cap, size_t k, size_t sz)
{
    if (n + k > TEL_MAX_SAMPLES)
        return -1;
    if (n + k <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < n + k)
        c *= 2;
    if (c > TEL_MAX_SAMPLES)
        c = TEL_MAX_SAMPLES;
    void *p = mem_realloc(*v, c * sz);
    if (!p)
        return -1;
    *v = p;
    *cap = c;
    return 0;
}

static void add_gpu(struct tel_sampler *s, const struct tel_gpu_sample *g, int n)
{
    if (n <= 0)
        return;
    if (reserve((void **)&s->gpu, s->ngpu, &s->capgpu, (size_t)n, sizeof(*g))) {
        s->dropped += (uint64_t)n;
        return;
    }
    memcpy(s->gpu + s->ngpu, g, (size_t)n * sizeof(*g));
    s->ngpu += (size_t)n;
}

static void failed(struct tel_sampler *s, const struct err_detail *d)
{
    s->errors++;
    snprintf(s->last_err, sizeof(s->last_err), "%s", d->msg);
}

void tel_sampler_poll(struct tel_sampler *s, int64_t now_ms)
{
    struct tel_gpu_sample g[TEL_MAX_GPUS];
    struct err_detail d;
    int timeout_ms = (int)(s->interval_s * 900);
    timeout_ms = timeout_ms < 200 ? 200 : timeout_ms > 5000 ? 5000 : timeout_ms;
    if (s->nvml)
        add_gpu(s, g, tel__nvml_sample(s->nvml, now_ms, g, TEL_MAX_GPUS));
    if (s->dcgm_url[0]) {
        int n;
        err_clear(&d);
        if ((n = tel__http_get(s->http, s->dcgm_url, timeout_ms, &s->page, &d)) ||
            (n = tel_dcgm_map(s->page.p ? s->page.p : "", s->page.len, now_ms, g, TEL_MAX_GPUS,
                              &d)) < 0)
            failed(s, &d);
        else
            add_gpu(s, g, n);
    }
    if (s->engine_url[0]) {
        struct tel_engine_sample e;
        int n;
        err_clear(&d);
        if ((n = tel__http_get(s->http, s->engine_url, timeout_ms, &s->page, &d)) ||
            (n = tel_engine_map(s->page.p ? s->page.p : "", s->page.len, now_ms, &e, &d)) < 0)
            failed(s, &d);
        else if (n == 1 && reserve((void **)&s->eng, s->neng, &s->capeng, 1, sizeof(e)))
            s->dropped++;
        else if (n == 1)
            s->eng[s->neng++] = e;
    }
}

static void *loop(void *arg)
{
    struct tel_sampler *s = arg;
    int64_t step = (int64_t)(s->interval_s * 1e9), next = time_mono_ns();
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        tel_sampler_poll(s, time_wall_ms());
        int64_t now = time_mono_ns();
        next += step;
        if (next < now) /* a slow source: skip the missed ticks */
            next = now + step - (now - next) % step;
        struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
        pthread_mutex_lock(&s->mu);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&s->mu);
    tel_sampler_poll(s, time_wall_ms()); /* the end of the point */
    return NULL;
}

int tel_sampler_start(struct tel_sampler *s, struct err_detail *d)
{
    tel_sampler_stop(s);
    s->ngpu = s->neng = 0;
    s->dropped = s->errors = 0;
    s->last_err[0] = '\0';
    s->stop = 0;
    if (pthread_create(&s->thread, NULL, loop, s))
        return err_set(d, ERR_NOMEM, "gpu-telemetry", "cannot start the sampling thread");
    s->running = 1;
    return 0;
}

void tel_sampler_stop(struct tel_sampler *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
}

const struct tel_gpu_sample *tel_sampler_gpu(const struct tel_sampler *s, size_t *n)
{
    *n = s->ngpu;
    return s->gpu;
}

const struct tel_engine_sample *tel_sampler_engine(const struct tel_sampler *s, size_t *n)
{
    *n = s->neng;
    return s->eng;
}

uint64_t tel_sampler_errors(const struct tel_sampler *s, const char **last)
{
    if (last)
        *last = s->last_err;
    return s->errors;
}
