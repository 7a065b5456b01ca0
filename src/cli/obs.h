/*
 * --metrics-listen for worker, bench and sim: one process-wide registry
 * (core/metrics.h) with build info, the bench request families and the
 * worker's job families, served by core/metrics_http.h.
 *
 * Call cli_obs_start before any thread observes; the cli_obs_* observers
 * are lock-free and are no-ops when --metrics-listen is off.
 */
#ifndef MC_CLI_OBS_H
#define MC_CLI_OBS_H

#include <stddef.h>
#include <stdint.h>

#include "bench/req.h"
#include "core/metrics.h"

enum cli_obs_job { CLI_OBS_SUCCEEDED, CLI_OBS_FAILED, CLI_OBS_RELEASED, CLI_OBS_CANCELLED };
enum cli_obs_notice { CLI_OBS_TERMINATE, CLI_OBS_REBALANCE, CLI_OBS_SIGTERM };

/*
 * Starts the endpoint on addr when it is not empty, with build info and
 * the bench families, the worker's too when worker is set, and then
 * extra(reg, arg) when given (more families or collectors). Logs "metrics
 * on http://host:port/metrics". Returns 0 (also when addr is empty), or 1
 * after logging the error.
 */
int cli_obs_start(const char *addr, int worker,
                  int (*extra)(struct metrics *reg, void *arg), void *arg);
/* Stops the endpoint and frees the registry. Safe when never started. */
void cli_obs_stop(void);

/* A measured bench request was sent / finished. */
void cli_obs_bench_start(void *arg);
void cli_obs_bench_finish(void *arg, const struct bench_req *r);
/* An interrupted run left n measured requests unfinished (bench_run.incomplete). */
void cli_obs_bench_abandoned(size_t n);
/* Worker events; durations in nanoseconds. */
void cli_obs_job(enum cli_obs_job outcome);
void cli_obs_notice(enum cli_obs_notice kind);
void cli_obs_checkpoint(int64_t ns);
void cli_obs_notice_to_release(int64_t ns);

#endif
