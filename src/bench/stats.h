/*
 * The summary of a benchmark run, computed from its per-request records
 * (req.h) the way vLLM's `bench serve` computes its result, and written as
 * vLLM's JSON members and its "Serving Benchmark Result" table.
 *
 * Definitions (docs: DESIGN.md, "Benchmark metrics"), per completed
 * request (err == BENCH_OK, warmup == 0):
 *   TTFT = first - sent            E2EL = last - sent
 *   TPOT = (E2EL - TTFT) / (output_tokens - 1), only when output_tokens > 1
 *   ITL  = every itl_ns gap of every completed request, pooled
 *   queue = sent - scheduled; ttft_from_scheduled = first - scheduled;
 *   e2el_from_scheduled = last - scheduled (free of coordinated omission).
 * A completed request without a content event (first_ns == 0, or times
 * out of order) counts in completed and in the token totals but adds no
 * latency sample except its queueing delay, and is not "good" under any SLO. Failed requests count in `failed` and errors[]
 * only; warmup requests count nowhere.
 *
 * Statistics match numpy: mean; population std (ddof = 0); median as
 * np.median; percentiles by linear interpolation (np.percentile's default).
 * An empty set gives 0 for all of them, as vLLM's `np.mean(x or 0)` does.
 * Latencies are in milliseconds, throughputs per second of `duration`.
 */
#ifndef MC_BENCH_STATS_H
#define MC_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/req.h"
#include "core/err.h"
#include "core/jw.h"

#define BENCH_PCT_MAX 16

/* Goodput SLOs in milliseconds; 0 leaves one unset. */
struct bench_slo {
    double ttft_ms, tpot_ms, e2el_ms;
};

/* The distributions of a summary, in the order the table prints them. */
enum bench_metric {
    BENCH_M_TTFT,
    BENCH_M_TPOT,
    BENCH_M_ITL,
    BENCH_M_E2EL,
    BENCH_M_QUEUE,
    BENCH_M_TTFT_SCHED,
    BENCH_M_E2EL_SCHED,
    BENCH_M__COUNT
};

struct bench_dist {
    size_t n;                   /* samples */
    double mean, median, std;   /* ms */
    double pct[BENCH_PCT_MAX];  /* ms, at the summary's pcts[] */
};

/* Values of bench_summary.tok_src besides enum bench_tok_src. */
#define BENCH_TOK_SRC_NONE (-1) /* no completed request */
#define BENCH_TOK_SRC_MIXED 3   /* requests disagree */

struct bench_summary {
    double duration;                 /* s, as given */
    int64_t completed, failed;
    int64_t total_input_tokens, total_output_tokens;
    double request_throughput;       /* completed / duration */
    double request_goodput;          /* good / duration; NAN when no SLO is set */
    int64_t good;                    /* completed requests meeting every set SLO */
    struct bench_slo slo;
    double output_throughput;        /* total_output_tokens / duration */
    double total_token_throughput;   /* (input + output tokens) / duration */
    double max_output_tokens_per_s;  /* busiest 1-s bucket, counting content events */
    int64_t max_concurrent_requests; /* most requests active in one 1-s bucket */
    int npct;
    double pcts[BENCH_PCT_MAX];      /* percentiles asked for, in [0, 100] */
    struct bench_dist m[BENCH_M__COUNT];
    int64_t errors[BENCH_E__COUNT];  /* failed requests by enum bench_err */
    int tok_src;                     /* enum bench_tok_src, _NONE or _MIXED */
    /* Context for the table only; bench_summarize sets them to "not shown". */
    double request_rate;             /* configured req/s; 0 or INFINITY: not shown */
    int max_concurrency;             /* 0: not shown */
};

/*
 * Summarizes the n records at reqs over a run of duration_s seconds.
 * slo may be NULL (no goodput); pcts/npct are the percentiles to report
 * (NULL or 0: 50, 90, 95, 99). Throughputs are 0 when duration_s <= 0.
 * Returns 0 and fills *s, ERR_RANGE (a percentile outside [0, 100], more
 * than BENCH_PCT_MAX, or a negative SLO) or ERR_NOMEM, with detail.
 * The records are not changed.
 */
int bench_summarize(struct bench_summary *s, const struct bench_req *reqs, size_t n,
                    double duration_s, const struct bench_slo *slo, const double *pcts,
                    int npct, struct err_detail *d) MC_WUR;

/*
 * The p-th percentile (0..100) of the n ascending values at sorted, by
 * numpy's linear interpolation; 0 when n is 0.
 */
double bench_percentile(const double *sorted, size_t n, double p);

/*
 * Parses SLOs "ttft:MS,tpot:MS,e2el:MS" (any subset, separated by commas
 * or spaces; each value > 0) into *slo, which is cleared first. Returns 0
 * or ERR_INVAL with detail.
 */
int bench_slo_parse(const char *spec, struct bench_slo *slo, struct err_detail *d) MC_WUR;

/*
 * Parses percentiles "50,90,99.9" into out[BENCH_PCT_MAX] and *n. Returns 0
 * or ERR_INVAL / ERR_RANGE with detail.
 */
int bench_pcts_parse(const char *spec, double *out, int *n, struct err_detail *d) MC_WUR;

/* "connect", "reset", ... for an enum bench_err; "ok" for BENCH_OK, "unknown" past the end. */
const char *bench_err_name(int err);
/* "usage", "details", "events", "mixed", or NULL for BENCH_TOK_SRC_NONE. */
const char *bench_tok_src_name(int src);
/* Key stem of a metric: "ttft", "tpot", "itl", "e2el", "queue", "ttft_from_scheduled", ... */
const char *bench_metric_name(int m);

/*
 * Writes the summary as members of the object w has open, with vLLM's
 * names ("duration", "completed", "failed", "request_goodput" (null when no
 * SLO), "mean_ttft_ms", "p99_itl_ms", ...) followed by ours: the same stats
 * for queue_ms, ttft_from_scheduled_ms and e2el_from_scheduled_ms,
 * "error_counts" (an object by category) and "token_count_source".
 */
void bench_summary_json(const struct bench_summary *s, struct jw *w);

/* Prints the summary as vLLM's "Serving Benchmark Result" block, plus our sections. */
void bench_summary_table(const struct bench_summary *s, FILE *f);

#endif
