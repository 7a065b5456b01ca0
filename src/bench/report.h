/*
 * What a benchmark point produces: the result document (vLLM `bench
 * serve` field names where the meaning is the same, ours beside them) and
 * the per-request JSON lines of --requests-out.
 */
#ifndef MC_BENCH_REPORT_H
#define MC_BENCH_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "bench/client.h"
#include "bench/stats.h"

struct bench_report_ctx {
    const struct bench_load *load;
    const struct bench_run *run;
    const struct bench_summary *summary;
    const char *dataset;
    const char *base_url;
    const char *command;
    const char *sweep_id;
    int point;
};

/* The result of one point as a JSON object (caller owns); NULL on ENOMEM. */
json_t *bench_report_result(const struct bench_report_ctx *c);
/* Appends one JSON line per request of run to f; 0, or -1 on a write error. */
int bench_report_requests(FILE *f, const struct bench_run *run, int point);

#endif
