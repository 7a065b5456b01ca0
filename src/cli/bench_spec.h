/*
 * What `modelcat bench` and `modelcat worker` share: turning parsed bench
 * settings (core/config.h, CMD_BENCH) into a load (bench/client.h), the
 * dataset, the settings of one sweep point, the result document of a
 * point and its catalog description. bench.c drives them from argv;
 * worker_job.c from a job's spec.
 */
#ifndef MC_CLI_BENCH_SPEC_H
#define MC_CLI_BENCH_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/client.h"
#include "bench/dataset.h"
#include "bench/publish.h"
#include "bench/stats.h"

#define BENCH_SPEC_MAX_POINTS 64
#define BENCH_SPEC_MAX_HEADERS 32

struct cfg;
struct tel_sampler;

/* A parsed bench: the load, the target, and the sweep. */
struct bench_opts {
    struct trace_ctx join;        /* --traceparent, parsed (l.join points here) */
    struct bench_load l;
    struct bench_target t;
    struct bench_slo slo;
    double pcts[BENCH_PCT_MAX];
    int npcts;
    int sweep_conc;              /* 1: sweep concurrency, 0: rate, -1: no sweep */
    double points[BENCH_SPEC_MAX_POINTS];
    int npoints;                 /* 0 without a sweep */
    char *headers[BENCH_SPEC_MAX_HEADERS];
    char header_buf[4200];
    struct tel_sampler *tel;     /* --gpu-telemetry, or NULL */
};

/*
 * Fills o from the settings c (o->l.headers points into o, so o must not
 * move afterwards). A seed of -1 draws one. Returns 0, or 2 on a usage
 * error with a one-line message in msg (without the command's name).
 */
int bench_opts_parse(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap);

/*
 * Loads the dataset of c for o into ds (free with bench_dataset_free):
 * num_prompts + warmup prompts, or 10000 for a duration run. Returns 0, or
 * 2 with a message in msg.
 */
int bench_opts_dataset(const struct cfg *c, const struct bench_opts *o,
                       struct bench_dataset *ds, char *msg, size_t cap);

/* The number of points of o: its sweep's, or 1. */
int bench_opts_npoints(const struct bench_opts *o);

/* Sets o->l's concurrency or rate for sweep point i (nothing without a sweep). */
void bench_opts_point(struct bench_opts *o, int i);

/*
 * Fills cat from c's catalog settings; url and api_key as given (the
 * worker passes its API and key, bench its --catalog ones). Pointers
 * borrow from c and o.
 */
void bench_opts_catalog(const struct cfg *c, const struct bench_opts *o, const char *url,
                        const char *api_key, struct bench_catalog *cat);

/*
 * The result document of point i: run and s summarized with load l
 * (whose num_prompts is reported). NULL on ENOMEM. Caller owns.
 */
json_t *bench_opts_result(const struct cfg *c, const struct bench_load *l,
                          const struct bench_run *run, const struct bench_summary *s,
                          const char *cmd, const char *sweep_id, int point);

/*
 * Opens the telemetry sampler --gpu-telemetry asks for into o->tel (left
 * NULL without one; free with bench_opts_telemetry_free). Returns 0, or 2
 * with a message (an unknown source, NVML that cannot be loaded).
 */
int bench_opts_telemetry(const struct cfg *c, struct bench_opts *o, char *msg, size_t cap);
void bench_opts_telemetry_free(struct bench_opts *o);

/*
 * Adds the telemetry of the point just sampled by o->tel (stopped) to
 * result: the summary fields (null when unknown), "gpu_telemetry" with
 * counts, and "gpu_samples"; prints the summary to table when not NULL.
 * Nothing without o->tel. Returns 0, or -1 on ENOMEM.
 */
int bench_opts_telemetry_result(const struct cfg *c, const struct bench_opts *o, json_t *result,
                                const struct bench_summary *s, FILE *table);

#endif
