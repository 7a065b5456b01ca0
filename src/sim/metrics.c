/*
 * GET /metrics: the simulator's counters and latency histograms in the
 * Prometheus text format under vLLM's metric names, bucket bounds and
 * labels (model_name, engine), so dashboards and scrapers built for vLLM
 * read the simulator unchanged. Bucket bounds are printed as Python's
 * prometheus_client prints them ("1.0", "+Inf").
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "sim/sim_int.h"

static const double ttft_le[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                 0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                 20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const char *const ttft_str[] = {
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",
    "0.25",  "0.5",   "0.75", "1.0",  "2.5",  "5.0",  "7.5",  "10.0",
    "20.0",  "40.0",  "80.0", "160.0", "640.0", "2560.0"};
static const double itl_le[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                7.5,  10.0,  20.0, 40.0,  80.0};
static const char *const itl_str[] = {"0.01", "0.025", "0.05", "0.075", "0.1",
                                      "0.15", "0.2",   "0.3",  "0.4",   "0.5",
                                      "0.75", "1.0",   "2.5",  "5.0",   "7.5",
                                      "10.0", "20.0",  "40.0", "80.0"};
static const double e2e_le[] = {0.3,  0.5,  0.8,  1.0,   1.5,   2.0,   2.5,
                                5.0,  10.0, 15.0, 20.0,  30.0,  40.0,  50.0,
                                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static const char *const e2e_str[] = {"0.3",   "0.5",   "0.8",   "1.0",   "1.5",
                                      "2.0",   "2.5",   "5.0",   "10.0",  "15.0",
                                      "20.0",  "30.0",  "40.0",  "50.0",  "60.0",
                                      "120.0", "240.0", "480.0", "960.0", "1920.0",
                                      "7680.0"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(N_OF(ttft_le) == N_OF(ttft_str) && N_OF(ttft_le) < SIM_HIST_MAX, "ttft");
_Static_assert(N_OF(itl_le) == N_OF(itl_str) && N_OF(itl_le) < SIM_HIST_MAX, "itl");
_Static_assert(N_OF(e2e_le) == N_OF(e2e_str) && N_OF(e2e_le) < SIM_HIST_MAX, "e2e");

static void hist_init(struct sim__hist *h, const double *le, const char *const *str, int n)
{
    memset(h, 0, sizeof(*h));
    h->le = le;
    h->le_str = str;
    h->n = n;
}

void sim__metrics_init(struct sim__metrics *m)
{
    memset(m, 0, sizeof(*m));
    hist_init(&m->ttft, ttft_le, ttft_str, N_OF(ttft_le));
    hist_init(&m->itl, itl_le, itl_str, N_OF(itl_le));
    hist_init(&m->e2e, e2e_le, e2e_str, N_OF(e2e_le));
}

void sim__hist_observe(struct sim__hist *h, double v)
{
    int i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->counts[i]++; /* i == n: only +Inf */
    h->count++;
    h->sum += v;
}

/* {model_name="...",engine="0" with the value escaped as the format asks. */
static void labels(struct buf *b, const char *model)
{
    buf_puts(b, "{model_name=\"");
    for (const char *p = model; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_putc(b, '\\');
        if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *p);
    }
    buf_puts(b, "\",engine=\"0\"");
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct buf *b, const char *name, const char *model, const char *extra,
                   double v)
{
    buf_puts(b, name);
    labels(b, model);
    if (extra)
        buf_puts(b, extra);
    buf_printf(b, "} %.17g\n", v);
}

static void hist(struct buf *b, const char *name, const char *help, const struct sim__hist *h,
                 const char *model)
{
    family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        buf_printf(b, "%s_bucket", name);
        labels(b, model);
        buf_printf(b, ",le=\"%s\"} %llu.0\n", i < h->n ? h->le_str[i] : "+Inf",
                   (unsigned long long)cum);
    }
    buf_printf(b, "%s_count", name);
    labels(b, model);
    buf_printf(b, "} %llu.0\n%s_sum", (unsigned long long)h->count, name);
    labels(b, model);
    buf_printf(b, "} %.17g\n", h->sum);
}

void sim__metrics_render(struct buf *b, const struct sim__metrics *m, const char *model,
                         int64_t running, int64_t waiting, double kv_usage)
{
    static const char *const reasons[SIM_FIN__N] = {"stop", "length", "abort"};
    family(b, "vllm:num_requests_running", "gauge",
           "Number of requests in model execution batches.");
    sample(b, "vllm:num_requests_running", model, NULL, (double)running);
    family(b, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.");
    sample(b, "vllm:num_requests_waiting", model, NULL, (double)waiting);
    family(b, "vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.");
    sample(b, "vllm:gpu_cache_usage_perc", model, NULL, kv_usage);
    family(b, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.");
    sample(b, "vllm:prompt_tokens_total", model, NULL, (double)m->prompt_tokens);
    family(b, "vllm:generation_tokens_total", "counter",
           "Number of generation tokens processed.");
    sample(b, "vllm:generation_tokens_total", model, NULL, (double)m->generation_tokens);
    family(b, "vllm:request_success_total", "counter",
           "Count of successfully processed requests.");
    for (int i = 0; i < SIM_FIN__N; i++) {
        char extra[48];
        snprintf(extra, sizeof(extra), ",finished_reason=\"%s\"", reasons[i]);
        sample(b, "vllm:request_success_total", model, extra, (double)m->success[i]);
    }
    hist(b, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
         &m->ttft, model);
    hist(b, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
         &m->itl, model);
    hist(b, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
         &m->e2e, model);
}

static atomic_ullong total_req[SIM_FIN__N], total_tok;

void sim__total_request(enum sim__finish f)
{
    atomic_fetch_add_explicit(&total_req[f], 1, memory_order_relaxed);
}

void sim__total_token(void) { atomic_fetch_add_explicit(&total_tok, 1, memory_order_relaxed); }

void sim_totals(struct sim_totals *out)
{
    for (int i = 0; i < SIM_FIN__N; i++)
        out->requests[i] = atomic_load_explicit(&total_req[i], memory_order_relaxed);
    out->tokens = atomic_load_explicit(&total_tok, memory_order_relaxed);
}
