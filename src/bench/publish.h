/*
 * Publishing a benchmark point to a modelcat catalog: POST
 * /api/v1/benchmarks with the summary, provenance and per-request samples,
 * under an Idempotency-Key so a retried publish never duplicates a run.
 */
#ifndef MC_BENCH_PUBLISH_H
#define MC_BENCH_PUBLISH_H

#include <jansson.h>

#include "bench/client.h"
#include "core/err.h"

struct bench_catalog {
    const char *url;             /* http(s)://host:port of the catalog */
    const char *api_key;         /* Bearer key, or NULL/"" */
    const char *model;           /* catalog model id */
    const char *engine;          /* vllm, tgi, sim, ... */
    const char *engine_version;  /* or "" */
    const char *engine_args;     /* or "" */
    const char *hardware;        /* catalog hardware id */
    int gpu_count, tensor_parallel;
    size_t max_body;             /* samples are left out past this size */
};

/*
 * Builds the catalog's run body from a point's result (the JSON object
 * written to --result-json) and its requests, and posts it. idem_key makes
 * a retry safe. On success writes the run id into id[64]. Returns 0 or an
 * error with the catalog's message in d.
 */
int bench_publish(const struct bench_catalog *cat, json_t *result, const struct bench_run *run,
                  const char *idem_key, char id[64], struct err_detail *d) MC_WUR;

/* Builds (without sending) the body bench_publish would post; NULL on ENOMEM. */
json_t *bench_publish_body(const struct bench_catalog *cat, json_t *result,
                           const struct bench_run *run, int with_samples);

#endif
