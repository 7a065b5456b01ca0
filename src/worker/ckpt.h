/*
 * A job's checkpoint: which sweep points are done (and their runs), and
 * of the point in progress the measured requests that finished, with
 * their samples, so a resumed job runs only the rest of the point and
 * publishes it with exactly its planned number of samples.
 *
 * The format, a JSON object, versioned:
 *   {"v":1, "seed":N, "points_done":k, "run_ids":["..."],
 *    "partial":{"point":i, "segments_duration_s":x,
 *               "requests":[{"index","scheduled_ns","sent_ns","first_ns",
 *                            "last_ns","input_tokens","output_tokens","events",
 *                            "err","http_status","tok_src","itl_ns":[...]}]}}
 * ("partial" is null between points). Times are nanoseconds from the start
 * of the point's first segment, each later segment laid after the ones
 * before it: a segment's times are offset by the total duration of the
 * segments before it, so the requests of all segments form one run of
 * segments_duration_s.
 *
 * DESIGN: requests of the segment in progress are kept with the bench
 * client's monotonic times, and placed on the checkpoint's timeline when
 * written (with the segment's start taken as the earliest scheduled time
 * seen) or when the segment ends (worker_ckpt_seal, with the run's exact
 * start). Not thread-safe: the caller locks.
 */
#ifndef MC_WORKER_CKPT_H
#define MC_WORKER_CKPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/req.h"
#include "core/err.h"

#define WORKER_CKPT_VERSION 1
#define WORKER_CKPT_ITL_MAX 1000000 /* gaps of one request kept at most */

struct worker_ckpt {
    uint64_t seed;
    int points_done;
    json_t *run_ids;            /* array of run id strings (owned) */
    int point;                  /* the partial point, or -1 */
    int64_t acc_ns;             /* total duration of the sealed segments */
    struct bench_req *reqs;     /* finished requests of the partial point (own itl_ns) */
    size_t *index;              /* their planned indices */
    size_t n, cap;
    size_t nsealed;             /* reqs[0..nsealed) are on the checkpoint's timeline */
    int64_t seg_start_ns;       /* earliest scheduled time of the open segment, or 0 */
};

/* An empty checkpoint with seed; 0 or ERR_NOMEM. */
int worker_ckpt_init(struct worker_ckpt *ck, uint64_t seed) MC_WUR;
/* Frees what ck owns; it can be inited again. */
void worker_ckpt_free(struct worker_ckpt *ck);

/*
 * Starts (or continues) the partial point `point`: when it is another
 * point than the one held, the held requests are dropped first.
 */
void worker_ckpt_begin_point(struct worker_ckpt *ck, int point);

/*
 * Adds a finished request of the open segment (bench client times),
 * copying r and its itl_ns gaps, as planned request `index`. A request
 * whose index is already held is ignored (returns 0). 0 or ERR_NOMEM.
 */
int worker_ckpt_add(struct worker_ckpt *ck, const struct bench_req *r, size_t index) MC_WUR;

/*
 * Ends the open segment, measured from start_ns to end_ns (the run's
 * interval): its requests move onto the checkpoint's timeline and the
 * duration is added.
 */
void worker_ckpt_seal(struct worker_ckpt *ck, int64_t start_ns, int64_t end_ns);

/*
 * Marks the partial point done with run_id (may be NULL): points_done =
 * point + 1, the requests dropped.
 */
int worker_ckpt_point_done(struct worker_ckpt *ck, const char *run_id) MC_WUR;

/*
 * The checkpoint as JSON (caller owns), the open segment counted up to
 * now_ns. NULL on ENOMEM.
 */
json_t *worker_ckpt_json(const struct worker_ckpt *ck, int64_t now_ns);

/*
 * Reads a checkpoint written by worker_ckpt_json into ck (inited; its
 * contents replaced). Requests whose index is not below planned or is
 * repeated are dropped. Returns 0, ERR_PARSE (not a v1 checkpoint, with
 * detail) or ERR_NOMEM.
 */
int worker_ckpt_load(struct worker_ckpt *ck, json_t *j, size_t planned,
                     struct err_detail *d) MC_WUR;

/*
 * The planned indices below planned not held, ascending, into *todo
 * (caller frees with mem_free; NULL when none) and *ntodo. 0 or ERR_NOMEM.
 */
int worker_ckpt_todo(const struct worker_ckpt *ck, size_t planned, size_t **todo,
                     size_t *ntodo) MC_WUR;

/*
 * Orders the held (sealed) requests by send time, numbers them (id =
 * planned index) and returns the total duration in seconds: the merged
 * point, ready for bench_summarize over ck->reqs, ck->n.
 */
double worker_ckpt_merge(struct worker_ckpt *ck);

#endif
