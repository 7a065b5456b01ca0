/*
 * What the two files of `modelcat worker` share: worker.c (the command,
 * the claim loop, the control thread that watches for notices,
 * heartbeats and checkpoints) and worker_job.c (running one claimed job
 * with the bench engine).
 */
#ifndef MC_CLI_WORKER_INT_H
#define MC_CLI_WORKER_INT_H

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bench/client.h"
#include "worker/api.h"
#include "worker/ckpt.h"
#include "worker/notice.h"

/* Why a job stopped before its end. */
enum worker_stop {
    WSTOP_NONE,
    WSTOP_NOTICE,     /* preemption notice or SIGTERM: drain, checkpoint, release */
    WSTOP_CANCELLED,  /* the job was cancelled (409 cancelled) */
    WSTOP_LEASE_LOST, /* another worker holds it now (409 lease_lost / finished) */
};

struct worker_ctx {
    /* settings */
    const char *api_url, *api_key;
    char name[128];
    json_t *labels;              /* the worker's labels (owned) */
    int lease_s;
    double ckpt_interval_s, poll_s, drain_s;
    struct worker_api *api;      /* the main thread's client */
    struct trace_ctx trace;      /* the job attempt's trace (set at each claim) */
    struct worker_notice *notice;
    /* the job in progress */
    char job_id[64];
    volatile sig_atomic_t stop;  /* bench_load.stop of the run in progress */
    _Atomic int why;             /* enum worker_stop, the first reason seen */
    pthread_mutex_t mu;          /* guards the members below */
    struct worker_ckpt ck;
    const struct bench_load *load; /* of the run in progress, for planned indices */
    int ck_dirty;                /* requests finished since the last checkpoint */
    int point, npoints;
    size_t planned;
    int64_t notice_ns;           /* monotonic time of the notice, 0 none */
    struct worker_notice_event ev;
    int64_t drain_ns;            /* time the run took to drain after the notice */
    /* the control thread */
    pthread_t thr;
    _Atomic int thr_quit;
};

/*
 * Records a notice (the first one wins) and stops the run in progress.
 * Thread-safe.
 */
void worker_note_notice(struct worker_ctx *w, const struct worker_notice_event *ev);
/* Records that the API took the job away (cancelled or lease lost). */
void worker_note_lost(struct worker_ctx *w, enum worker_stop why);

/* Starts / stops the control thread of the job in w->job_id. 0 or an error. */
int worker_control_start(struct worker_ctx *w);
void worker_control_stop(struct worker_ctx *w);

/*
 * Writes the checkpoint of w (under its lock) with run_ids, using api.
 * Returns 0, 1 when the API took the job away (noted), or -1 on another
 * error (logged).
 */
int worker_put_checkpoint(struct worker_ctx *w, struct worker_api *api);

/* The progress object of w's job (caller owns); call with w->mu held. */
json_t *worker_progress(const struct worker_ctx *w);

/*
 * Runs the claimed job (the claim's "job" object) to its end: done and
 * published, failed, cancelled, or released on a notice. Returns 0, or 1
 * on an error of the worker itself (the API unreachable).
 */
int worker_run_job(struct worker_ctx *w, json_t *job);

#endif
