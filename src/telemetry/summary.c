/*
 * The telemetry summary of a benchmark point (see telemetry.h): means and
 * peaks over the kept samples, and the energy the GPUs used over the point
 * per output token. A GPU's energy is its energy counter's last reading
 * minus its first (exact, and immune to the sampling interval); a GPU
 * without a counter (or whose counter went backwards) is integrated from
 * its power readings by the trapezoid rule instead.
 */
#include <math.h>
#include <string.h>

#include "telemetry/telemetry.h"

/* Per GPU, while walking the samples in time order. */
struct gpu_acc {
    int gpu;
    int nenergy, npower;
    double e_first, e_last;
    double p_last;
    int64_t t_last;
    double integral_j;
};

static struct gpu_acc *acc_of(struct gpu_acc *a, int *n, int gpu)
{
    for (int i = 0; i < *n; i++)
        if (a[i].gpu == gpu)
            return &a[i];
    if (*n == TEL_MAX_GPUS)
        return NULL;
    memset(&a[*n], 0, sizeof(a[0]));
    a[*n].gpu = gpu;
    return &a[(*n)++];
}

static void energy(const struct gpu_acc *a, int n, struct tel_summary *out)
{
    double total = 0;
    int known = 0, counters = 0;
    for (int i = 0; i < n; i++) {
        if (a[i].nenergy >= 2 && a[i].e_last >= a[i].e_first) {
            total += a[i].e_last - a[i].e_first;
            known++, counters++;
        } else if (a[i].npower >= 2) {
            total += a[i].integral_j;
            known++;
        }
    }
    if (known) {
        out->energy_j = total;
        out->energy_from_counter = counters == n;
    }
}

static void engine(const struct tel_engine_sample *e, size_t ne, struct tel_summary *out)
{
    double run = 0, wait = 0;
    size_t nrun = 0, nwait = 0;
    for (size_t i = 0; i < ne; i++) {
        if (e[i].have & TEL_HAVE_RUNNING)
            run += e[i].running, nrun++;
        if (e[i].have & TEL_HAVE_WAITING)
            wait += e[i].waiting, nwait++;
        if ((e[i].have & TEL_HAVE_KV) && !(e[i].kv_pct <= out->kv_peak_pct))
            out->kv_peak_pct = e[i].kv_pct;
    }
    if (nrun)
        out->running_mean = run / (double)nrun;
    if (nwait)
        out->waiting_mean = wait / (double)nwait;
}

void tel_summarize(const struct tel_gpu_sample *g, size_t ng, const struct tel_engine_sample *e,
                   size_t ne, int64_t output_tokens, struct tel_summary *out)
{
    struct gpu_acc acc[TEL_MAX_GPUS];
    int nacc = 0;
    double util = 0, power = 0;
    size_t nutil = 0, npower = 0;
    memset(out, 0, sizeof(*out));
    out->gpu_samples = ng;
    out->engine_samples = ne;
    out->util_mean_pct = out->util_max_pct = out->mem_peak_bytes = NAN;
    out->power_mean_w = out->energy_j = out->energy_per_output_token_j = NAN;
    out->kv_peak_pct = out->running_mean = out->waiting_mean = NAN;
    for (size_t i = 0; i < ng; i++) {
        const struct tel_gpu_sample *s = &g[i];
        struct gpu_acc *a = acc_of(acc, &nacc, s->gpu);
        if (s->have & TEL_HAVE_UTIL) {
            util += s->util_pct, nutil++;
            if (!(s->util_pct <= out->util_max_pct))
                out->util_max_pct = s->util_pct;
        }
        if ((s->have & TEL_HAVE_MEM) && !(s->mem_used_bytes <= out->mem_peak_bytes))
            out->mem_peak_bytes = s->mem_used_bytes;
        if (!a)
            continue;
        if (s->have & TEL_HAVE_POWER) {
            power += s->power_w, npower++;
            if (a->npower++)
                a->integral_j += (s->power_w + a->p_last) / 2 * (double)(s->ts_ms - a->t_last) / 1e3;
            a->p_last = s->power_w;
            a->t_last = s->ts_ms;
        }
        if (s->have & TEL_HAVE_ENERGY) {
            if (!a->nenergy++)
                a->e_first = s->energy_j;
            a->e_last = s->energy_j;
        }
    }
    out->gpus = nacc;
    if (nutil)
        out->util_mean_pct = util / (double)nutil;
    if (npower)
        out->power_mean_w = power / (double)npower;
    energy(acc, nacc, out);
    if (output_tokens > 0 && !isnan(out->energy_j))
        out->energy_per_output_token_j = out->energy_j / (double)output_tokens;
    engine(e, ne, out);
}

static void row(FILE *f, const char *label, double v, const char *fmt)
{
    if (isnan(v))
        fprintf(f, "%-40s %-10s\n", label, "-");
    else
        fprintf(f, fmt, label, v);
}

void tel_summary_print(const struct tel_summary *s, FILE *f)
{
    if (!s->gpu_samples && !s->engine_samples)
        return;
    fputs("------------------ GPU telemetry -----------------\n", f);
    if (s->gpu_samples) {
        fprintf(f, "%-40s %-10d\n", "GPUs sampled:", s->gpus);
        fprintf(f, "%-40s %-10zu\n", "GPU samples:", s->gpu_samples);
        row(f, "Mean GPU utilization (%):", s->util_mean_pct, "%-40s %-10.2f\n");
        row(f, "Max GPU utilization (%):", s->util_max_pct, "%-40s %-10.2f\n");
        row(f, "Peak GPU memory (GiB):", s->mem_peak_bytes / 1073741824.0, "%-40s %-10.3f\n");
        row(f, "Mean GPU power (W):", s->power_mean_w, "%-40s %-10.2f\n");
        row(f, "GPU energy (J):", s->energy_j, "%-40s %-10.2f\n");
        row(f, "Energy per output token (J/tok):", s->energy_per_output_token_j,
            "%-40s %-10.4f\n");
    }
    if (s->engine_samples) {
        row(f, "Mean running requests:", s->running_mean, "%-40s %-10.2f\n");
        row(f, "Mean waiting requests:", s->waiting_mean, "%-40s %-10.2f\n");
        row(f, "Peak KV-cache usage (%):", s->kv_peak_pct, "%-40s %-10.2f\n");
    }
    fputs("==================================================\n", f);
}
