/*
 * GPU and engine telemetry during a benchmark: a sampler that runs on its
 * own thread, asks its sources once per interval, and keeps what they
 * answer (bounded) until the point ends; then a summary of it (utilisation,
 * memory, power, energy per output token, KV-cache usage).
 *
 * Sources, combined with commas ("nvml,engine", "dcgm:URL"):
 *   nvml        libnvidia-ml.so.1, loaded with dlopen at run time (no build
 *               dependency); a symbol it lacks leaves its column unknown.
 *   dcgm:URL    a dcgm-exporter's Prometheus page (DCGM_FI_DEV_* gauges),
 *               one sample per GPU with its gpu and UUID labels kept.
 *   engine      the engine's own {base_url}/metrics: running and waiting
 *               requests and KV-cache usage (vLLM, TGI, LMDeploy names).
 *
 * Also the Prometheus text-format parser the scrapes use (prom.c).
 * Nothing here logs; errors come back with detail.
 */
#ifndef MC_TELEMETRY_TELEMETRY_H
#define MC_TELEMETRY_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

/* ---- Prometheus text format (prom.c) ---- */

#define TEL_PROM_MAX_LINE (64 * 1024)
#define TEL_PROM_MAX_BODY (8 * 1024 * 1024)
#define TEL_PROM_MAX_LABELS 64

struct tel_prom_label {
    const char *name;   /* NUL-terminated, valid during the callback only */
    const char *value;  /* unescaped, NUL-terminated, valid during the callback */
};

struct tel_prom_sample {
    const char *name;   /* metric name, NUL-terminated */
    int nlabels;
    struct tel_prom_label labels[TEL_PROM_MAX_LABELS];
    double value;       /* may be NaN or ±Inf */
    int has_ts;
    int64_t ts_ms;      /* when has_ts */
};

/* Called for each sample line; a non-zero return stops the parse and is returned. */
typedef int (*tel_prom_cb)(void *arg, const struct tel_prom_sample *s);

/*
 * Parses a Prometheus text exposition (version 0.0.4): comments, HELP and
 * TYPE lines, samples with labels (escapes \" \\ \n), values including NaN
 * and ±Inf, optional timestamps. Returns 0, ERR_TOOBIG for a body over
 * TEL_PROM_MAX_BODY, a line over TEL_PROM_MAX_LINE or more than
 * TEL_PROM_MAX_LABELS labels, ERR_PARSE for bad syntax (the line number in
 * d), or the callback's non-zero return. Allocates one line buffer.
 */
int tel_prom_parse(const char *body, size_t len, tel_prom_cb cb, void *arg,
                   struct err_detail *d) MC_WUR;

/* The value of label `name` of s, or NULL. */
const char *tel_prom_label(const struct tel_prom_sample *s, const char *name);

/* ---- samples ---- */

#define TEL_MAX_GPUS 64
#define TEL_MAX_SAMPLES 1000000 /* per run, GPU and engine samples each */

/* Bits of tel_gpu_sample.have. */
enum {
    TEL_HAVE_UTIL = 1 << 0,
    TEL_HAVE_MEM = 1 << 1,
    TEL_HAVE_POWER = 1 << 2,
    TEL_HAVE_TEMP = 1 << 3,
    TEL_HAVE_CLOCK = 1 << 4,
    TEL_HAVE_ENERGY = 1 << 5,
};

/* One GPU at one instant. */
struct tel_gpu_sample {
    int64_t ts_ms;          /* wall clock, ms since the epoch */
    int gpu;                /* index (NVML's, or dcgm's gpu label) */
    unsigned have;          /* TEL_HAVE_* */
    double util_pct, mem_used_bytes, power_w, temp_c, sm_clock_mhz, energy_j;
    char uuid[96];          /* "" when unknown (NVML: at most 96 with the NUL) */
};

/* Bits of tel_engine_sample.have. */
enum { TEL_HAVE_RUNNING = 1, TEL_HAVE_WAITING = 2, TEL_HAVE_KV = 4 };

/* The engine's scheduler at one instant (summed over its label sets). */
struct tel_engine_sample {
    int64_t ts_ms;
    unsigned have;
    double running, waiting, kv_pct; /* kv_pct: the busiest set, 0..100 */
};

/* ---- sources, mapped from a scrape (scrape.c) ---- */

/*
 * Maps a dcgm-exporter page to one sample per GPU (at most max) stamped
 * now_ms. Returns the count (0 when the page has no DCGM_FI_DEV_ gauge) or
 * a parse error.
 */
int tel_dcgm_map(const char *body, size_t len, int64_t now_ms, struct tel_gpu_sample *out,
                 int max, struct err_detail *d);

/*
 * Maps an engine's /metrics page to *out. Returns 1 with a sample, 0 when
 * the page names none of the known gauges, or a parse error.
 */
int tel_engine_map(const char *body, size_t len, int64_t now_ms, struct tel_engine_sample *out,
                   struct err_detail *d);

/* ---- the sampler (sampler.c) ---- */

struct tel_opts {
    const char *sources;      /* "nvml", "engine", "dcgm:URL", comma-separated */
    double interval_s;        /* > 0 */
    const char *nvml_library; /* path, or NULL/"" for libnvidia-ml.so.1 */
    const char *engine_url;   /* base URL; /metrics is appended */
};

struct tel_sampler;

/*
 * Opens the sources of o (loads NVML, checks the URLs). Returns 0 with
 * *out (free with tel_sampler_destroy), ERR_INVAL for a bad source list,
 * or ERR_UNAVAIL when NVML cannot be loaded or initialized, with a
 * sentence in d.
 */
int tel_sampler_create(struct tel_sampler **out, const struct tel_opts *o,
                       struct err_detail *d) MC_WUR;
void tel_sampler_destroy(struct tel_sampler *s);

/*
 * Forgets the samples of the last point and starts the sampling thread:
 * one sample at once, then one per interval. Returns 0 or ERR_NOMEM.
 */
int tel_sampler_start(struct tel_sampler *s, struct err_detail *d) MC_WUR;

/* Stops the thread after one last sample. The samples stay until the next start. */
void tel_sampler_stop(struct tel_sampler *s);

/*
 * One sampling step of every source at now_ms (the thread calls this; so
 * can tests, with their own clock). A source that fails is counted in
 * errors and skipped; it never stops the others.
 */
void tel_sampler_poll(struct tel_sampler *s, int64_t now_ms);

/* The GPU samples kept since the last start; valid until the next start. */
const struct tel_gpu_sample *tel_sampler_gpu(const struct tel_sampler *s, size_t *n);
/* The engine samples kept since the last start. */
const struct tel_engine_sample *tel_sampler_engine(const struct tel_sampler *s, size_t *n);
/* Failed source reads since the last start, and the last one's message (or ""). */
uint64_t tel_sampler_errors(const struct tel_sampler *s, const char **last);

/* The telemetry summary of a point; NaN where unknown. */
struct tel_summary {
    size_t gpu_samples, engine_samples;
    int gpus;                        /* distinct GPUs seen */
    double util_mean_pct, util_max_pct;
    double mem_peak_bytes;           /* the most any one GPU used */
    double power_mean_w;             /* mean per-GPU draw */
    double energy_j;                 /* all GPUs over the point */
    double energy_per_output_token_j;
    double kv_peak_pct;
    double running_mean, waiting_mean;
    int energy_from_counter;         /* 1: counter delta; 0: ∫ power dt */
};

/*
 * Summarizes samples: energy from each GPU's energy counter (last minus
 * first) or, for a GPU without one, the trapezoid integral of its power;
 * per output token when output_tokens > 0.
 */
void tel_summarize(const struct tel_gpu_sample *g, size_t ng, const struct tel_engine_sample *e,
                   size_t ne, int64_t output_tokens, struct tel_summary *out);

/* Prints the summary as lines of bench's table (nothing when it has no samples). */
void tel_summary_print(const struct tel_summary *s, FILE *f);

#endif
