/*
 * Benchmark jobs: a queue of `modelcat bench` specs that workers claim
 * under a lease, report progress and checkpoints on, and finish; a job
 * whose worker vanished (spot preemption) goes back to the queue when its
 * lease expires, with its checkpoint, until it has used max_attempts.
 *
 * jobs_spec.c validates what comes from outside (the spec, labels and the
 * worker protocol's bodies) without a store; jobs.c keeps the jobs in one
 * table (migrations/0006_jobs.sql), written once for SQLite and
 * PostgreSQL. api/jobs.c maps HTTP to these calls.
 *
 * Errors as in catalog.h; in addition a worker call on a job it no longer
 * holds is ERR_CONFLICT with d->field naming the reason, which api/jobs.c
 * sends as the error code: "cancelled" (the job was cancelled),
 * "lease_lost" (another worker holds it, or it went back to the queue) or
 * "finished" (it succeeded or failed).
 */
#ifndef MC_CATALOG_JOBS_H
#define MC_CATALOG_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include "catalog/catalog.h"

#define JOB_LABELS_MAX 32          /* labels of a job or a worker */
#define JOB_LABEL_LEN 64           /* bytes of a label key or value */
#define JOB_WORKER_MAX 128         /* bytes of a worker name */
#define JOB_REASON_MAX 1024        /* bytes of a reason */
#define JOB_PROGRESS_MAX 65536     /* bytes of progress, as compact JSON */
#define JOB_RUN_IDS_MAX 10000      /* run ids of one job */
#define JOB_LEASE_DEF 60           /* seconds */
#define JOB_LEASE_MAX 3600
#define JOB_ATTEMPTS_MAX 100
#define JOB_SPEC_MAX 65536         /* bytes of a spec, as compact JSON */

/*
 * Checks a job spec (the body of POST /api/v1/jobs without labels and
 * max_attempts) the way `modelcat bench` checks its flags: each member
 * becomes --name=value (name with '_' written '-') and the settings are
 * parsed by cfg_load(CMD_BENCH), then the command's cross-field checks
 * run. Unknown members, settings that make no sense in a job and a
 * missing base_url or model are refused. Returns 0, or ERR_INVAL /
 * ERR_RANGE with d->field the member's name.
 */
int job_spec_check(json_t *spec, struct err_detail *d) MC_WUR;

/*
 * Checks labels: an object of at most JOB_LABELS_MAX members, keys and
 * string values of 1..JOB_LABEL_LEN bytes of [A-Za-z0-9._/-]. NULL is
 * fine (no labels). Errors name `field`.
 */
int job_labels_check(json_t *labels, const char *field, struct err_detail *d) MC_WUR;

/* The worker protocol's calls. */
enum job_op { JOB_CLAIM, JOB_HEARTBEAT, JOB_CHECKPOINT, JOB_COMPLETE, JOB_RELEASE };

/* A validated worker body; members borrowed from the JSON, texts owned. */
struct job_msg {
    const char *worker;     /* 1..JOB_WORKER_MAX printable ASCII */
    json_t *labels;         /* claim: the worker's labels, or NULL */
    int64_t lease_s;        /* claim: 1..JOB_LEASE_MAX */
    char *progress;         /* compact JSON object, or NULL */
    char *checkpoint;       /* checkpoint: compact JSON object */
    size_t checkpoint_len;
    json_t *run_ids;        /* array of uuid strings, or NULL */
    int succeeded;          /* complete: outcome */
    const char *reason;     /* complete/release, or NULL */
};

/*
 * Validates body for op into m (release with job_msg_free, also on error).
 * Unknown members are refused. Returns 0, or ERR_INVAL / ERR_RANGE with
 * d->field the member.
 */
int job_msg_parse(enum job_op op, json_t *body, struct job_msg *m,
                  struct err_detail *d) MC_WUR;
void job_msg_free(struct job_msg *m);

/*
 * Creates a queued job from body ({spec members..., labels?,
 * max_attempts?}; max_attempts defaults to def_attempts) made by
 * created_by at now_ms, appends it to out and writes its id. Returns 0 or
 * a validation or store error.
 */
int job_create(struct db_conn *c, json_t *body, const char *created_by, int def_attempts,
               int64_t now_ms, struct buf *out, char id[37], struct err_detail *d) MC_WUR;
/* Appends job id (with a checkpoint summary, not its content) to out. */
int job_get(struct db_conn *c, const char *id, struct buf *out, struct err_detail *d) MC_WUR;
/* The statuses of a job, in the order job_count_by_status counts them. */
#define JOB_NSTATUS 5
extern const char *const job_statuses[JOB_NSTATUS];
/*
 * Counts the jobs of each status into n (one GROUP BY query; at most
 * JOB_NSTATUS rows). Returns 0 or a store error.
 */
int job_count_by_status(struct db_conn *c, int64_t n[JOB_NSTATUS], struct err_detail *d) MC_WUR;
/* Lists jobs, newest first, of one status when status is not NULL. */
int job_list(struct db_conn *c, const char *status, const struct cat_page *pg,
             struct buf *out, struct err_detail *d) MC_WUR;
/*
 * Cancels a queued or running job and appends it to out. ERR_NOTFOUND,
 * or ERR_CONFLICT (field "finished") when it has finished.
 */
int job_cancel(struct db_conn *c, const char *id, int64_t now_ms, struct buf *out,
               struct err_detail *d) MC_WUR;

/*
 * Claim: first puts running jobs whose lease expired back in the queue (or
 * fails those that used max_attempts), then takes the oldest queued job
 * whose labels the worker's all match, in one write transaction (on
 * PostgreSQL the row is chosen with FOR UPDATE SKIP LOCKED: concurrent
 * claims never take one job). Appends {"job":{...with spec and the
 * checkpoint's content},"lease_expires_at":...} to out and sets *claimed,
 * or leaves out alone and *claimed = 0 when nothing matches.
 */
int job_claim(struct db_conn *c, int pg, const struct job_msg *m, int64_t now_ms,
              struct buf *out, int *claimed, struct err_detail *d) MC_WUR;
/*
 * The calls of the worker that holds job id (m->worker; see the errors
 * above). heartbeat and checkpoint extend the lease by the claim's lease_s
 * and append {"lease_expires_at","status"}; complete and release append
 * the job. complete succeeded closes the job; complete failed and release
 * put it back in the queue (the checkpoint kept) unless it has used
 * max_attempts, when it fails with the reason.
 */
int job_worker_call(struct db_conn *c, enum job_op op, const char *id,
                    const struct job_msg *m, int64_t now_ms, struct buf *out,
                    struct err_detail *d) MC_WUR;

#endif
