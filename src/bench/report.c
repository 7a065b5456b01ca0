/*
 * Result documents and request logs of benchmark points (see report.h).
 * The summary's own fields come from stats.c; this file adds the run's
 * parameters and provenance and writes the per-request lines.
 */
#include "bench/report.h"

#include <math.h>
#include <string.h>

#include "bench/backend.h"
#include "core/jw.h"
#include "core/timeutil.h"

#ifndef MODELCAT_VERSION
#define MODELCAT_VERSION "0.0.0"
#endif

/* The upper bound of lag histogram bucket i, ns (see client.h). */
static double lag_bucket_top(int i)
{
    int msb = i / 4, sub = i % 4;
    if (msb < 2)
        return (double)(1ull << msb);
    return (double)((4ull + (uint64_t)sub + 1) << (msb - 2)) - 1;
}

/* Timestamps used, and how long bytes waited in the kernel for the loop. */
static void write_read_lag(struct jw *w, const struct bench_run *r)
{
    jw_key(w, "timestamps");
    jw_cstr(w, r->kernel_ts ? "kernel" : "user");
    jw_key(w, "read_lag_ms_mean");
    if (r->lag_n) jw_num(w, (double)r->lag_sum_ns / (double)r->lag_n / 1e6); else jw_null(w);
    jw_key(w, "read_lag_ms_p99");
    if (r->lag_n) {
        uint64_t want = (r->lag_n * 99 + 99) / 100, seen = 0;
        int i = 0;
        while (i < 255 && (seen += r->lag_hist[i]) < want)
            i++;
        double top = lag_bucket_top(i) / 1e6, max = (double)r->lag_max_ns / 1e6;
        jw_num(w, top < max ? top : max);
    } else {
        jw_null(w);
    }
    jw_key(w, "read_lag_ms_max");
    if (r->lag_n) jw_num(w, (double)r->lag_max_ns / 1e6); else jw_null(w);
}

static void write_params(struct jw *w, const struct bench_report_ctx *c)
{
    const struct bench_load *l = c->load;
    const struct bench_run *r = c->run;
    char date[32];
    time_fmt_rfc3339(date, sizeof(date), time_wall_ms());
    jw_key(w, "date"); jw_cstr(w, date);
    jw_key(w, "backend"); jw_cstr(w, bench_backend_name(l->backend));
    jw_key(w, "model_id"); jw_cstr(w, l->model);
    jw_key(w, "base_url"); jw_cstr(w, c->base_url);
    jw_key(w, "dataset"); jw_cstr(w, c->dataset);
    jw_key(w, "num_prompts");
    if (l->num_prompts) jw_i64(w, l->num_prompts); else jw_null(w);
    jw_key(w, "duration_limit_s");
    if (l->duration_s > 0) jw_num(w, l->duration_s); else jw_null(w);
    jw_key(w, "request_rate");
    if (isinf(l->rate)) jw_cstr(w, "inf"); else jw_num(w, l->rate);
    jw_key(w, "burstiness"); jw_num(w, l->burstiness);
    jw_key(w, "max_concurrency");
    if (l->max_concurrency) jw_i64(w, l->max_concurrency); else jw_null(w);
    jw_key(w, "warmup"); jw_i64(w, l->warmup);
    jw_key(w, "ignore_eos"); jw_bool(w, l->ignore_eos);
    jw_key(w, "seed"); jw_i64(w, (int64_t)l->seed);
    jw_key(w, "tool"); jw_cstr(w, "modelcat");
    jw_key(w, "tool_version"); jw_cstr(w, MODELCAT_VERSION);
    jw_key(w, "transport"); jw_cstr(w, l->transport_curl ? "curl" : "native");
    jw_key(w, "command"); jw_cstr(w, c->command);
    jw_key(w, "sweep_id"); jw_cstr(w, c->sweep_id);
    jw_key(w, "point"); jw_i64(w, c->point);
    jw_key(w, "interrupted"); jw_bool(w, r->interrupted);
    jw_key(w, "stopped_by_errors"); jw_bool(w, r->stopped_by_errors);
    jw_key(w, "incomplete"); jw_i64(w, (int64_t)r->incomplete);
    jw_key(w, "dispatch_lag_ms_mean"); jw_num(w, r->dispatch_lag_ms_mean);
    jw_key(w, "dispatch_lag_ms_max"); jw_num(w, r->dispatch_lag_ms_max);
    jw_key(w, "client_cpu_user_s"); jw_num(w, r->cpu_user_s);
    jw_key(w, "client_cpu_sys_s"); jw_num(w, r->cpu_sys_s);
    jw_key(w, "events_per_read");
    jw_num(w, r->reads ? (double)r->events / (double)r->reads : 0);
    write_read_lag(w, r);
}

static void write_means(struct jw *w, const struct bench_run *r)
{
    double in = 0, out = 0;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->reqs[i].err)
            continue;
        in += r->reqs[i].input_tokens;
        out += r->reqs[i].output_tokens;
        n++;
    }
    jw_key(w, "mean_input_tokens");
    if (n) jw_num(w, in / (double)n); else jw_null(w);
    jw_key(w, "mean_output_tokens");
    if (n) jw_num(w, out / (double)n); else jw_null(w);
}

json_t *bench_report_result(const struct bench_report_ctx *c)
{
    struct buf b;
    struct jw w;
    buf_init(&b, 1 << 20);
    jw_init(&w, &b);
    jw_obj_open(&w);
    write_params(&w, c);
    write_means(&w, c->run);
    bench_summary_json(c->summary, &w);
    jw_obj_close(&w);
    json_t *j = buf_err(&b) ? NULL : json_loadb(b.p, b.len, 0, NULL);
    buf_free(&b);
    return j;
}

int bench_report_requests(FILE *f, const struct bench_run *run, int point)
{
    struct buf b;
    struct jw w;
    buf_init(&b, 1 << 16);
    for (size_t i = 0; i < run->n; i++) {
        const struct bench_req *r = &run->reqs[i];
        char id[40];
        bench_request_id(run, r->id, id);
        buf_reset(&b);
        jw_init(&w, &b);
        jw_obj_open(&w);
        jw_key(&w, "request_id"); jw_cstr(&w, id);
        char tid[33];
        trace_hex(run->trace.trace_id, 16, tid);
        jw_key(&w, "trace_id"); jw_cstr(&w, tid);
        jw_key(&w, "point"); jw_i64(&w, point);
        jw_key(&w, "scheduled_ns"); jw_i64(&w, r->scheduled_ns);
        jw_key(&w, "sent_ns"); jw_i64(&w, r->sent_ns);
        jw_key(&w, "first_token_ns");
        if (r->first_ns) jw_i64(&w, r->first_ns); else jw_null(&w);
        jw_key(&w, "last_token_ns");
        if (r->last_ns) jw_i64(&w, r->last_ns); else jw_null(&w);
        jw_key(&w, "input_tokens"); jw_i64(&w, r->input_tokens);
        jw_key(&w, "output_tokens"); jw_i64(&w, r->output_tokens);
        jw_key(&w, "events"); jw_i64(&w, r->events);
        jw_key(&w, "http_status"); jw_i64(&w, r->http_status);
        jw_key(&w, "error");
        jw_cstr(&w, r->err ? bench_err_name(r->err) : NULL);
        jw_obj_close(&w);
        buf_putc(&b, '\n');
        if (buf_err(&b) || fwrite(b.p, 1, b.len, f) != b.len) {
            buf_free(&b);
            return -1;
        }
    }
    buf_free(&b);
    return 0;
}
