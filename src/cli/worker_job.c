/*
 * One claimed job of `modelcat worker` (see worker.c for the threads):
 * its spec parsed as `modelcat bench` parses its flags, the points run in
 * order from the checkpoint's, a partial point finished with only its
 * remaining planned requests (bench_load.todo), each finished point
 * summarized over all its segments and published to the API as a run
 * under the Idempotency-Key job-<id>-point-<i>, then checkpointed. On a
 * notice the drained requests are checkpointed and the job released; the
 * time from the notice to the released checkpoint is logged.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/backend.h"
#include "cli/bench_spec.h"
#include "cli/obs.h"
#include "cli/worker_int.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/jw.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "telemetry/telemetry.h"

#define SPEC_ARGS_MAX 128

/* Notices handled by this process, for the log. */
static int notices_handled;

/* The job's settings, from its spec. */
struct job {
    const char *id;
    struct cfg c;
    struct bench_opts o;
    struct bench_dataset ds;
    char cmd[4096];
    char reason[512];
};

/* Appends --flag=value for one spec member (the server's rule: '_' → '-'). */
static void member_arg(struct buf *args, const char *k, json_t *v)
{
    char num[40];
    const char *val = NULL;
    if (json_is_string(v))
        val = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(num, sizeof(num), "%" PRId64, (int64_t)json_integer_value(v)), val = num;
    else if (json_is_real(v) && jw_fmt_double(num, sizeof(num), json_real_value(v)) >= 0)
        val = num;
    else if (json_is_boolean(v))
        val = json_is_true(v) ? "1" : "0";
    else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) member_arg(args, k, e);
        return;
    }
    if (!val)
        return;
    buf_puts(args, "--");
    for (const char *p = k; *p; p++)
        buf_putc(args, *p == '_' ? '-' : *p);
    buf_putc(args, '=');
    buf_puts(args, val);
    buf_putc(args, '\0');
}

/* Parses the spec into j (settings, load, dataset). 0, or 2 with j->reason. */
static int job_parse(struct job *j, json_t *spec)
{
    struct buf args;
    char *argv[SPEC_ARGS_MAX + 1];
    int argc = 1, rc = 2;
    const char *k;
    json_t *v;
    struct err_detail d;
    err_clear(&d);
    buf_init(&args, 1 << 20);
    json_object_foreach(spec, k, v) member_arg(&args, k, v);
    argv[0] = "bench";
    size_t n = (size_t)snprintf(j->cmd, sizeof(j->cmd), "modelcat bench");
    for (size_t off = 0; off < args.len && argc < SPEC_ARGS_MAX; argc++) {
        argv[argc] = args.p + off;
        off += strlen(args.p + off) + 1;
        if (n < sizeof(j->cmd))
            n += (size_t)snprintf(j->cmd + n, sizeof(j->cmd) - n, " %s", argv[argc]);
    }
    argv[argc] = NULL;
    if (buf_err(&args) || !json_is_object(spec))
        snprintf(j->reason, sizeof(j->reason), "the spec is not an object of settings");
    else if (cfg_load(&j->c, CMD_BENCH, argc, argv, &d))
        snprintf(j->reason, sizeof(j->reason), "spec: %s", d.msg);
    else if (bench_opts_parse(&j->c, &j->o, j->reason, sizeof(j->reason)) ||
             bench_opts_telemetry(&j->c, &j->o, j->reason, sizeof(j->reason)))
        cfg_free(&j->c);
    else
        rc = 0;
    buf_free(&args);
    return rc;
}

/* on_finish of bench_load: the request joins the checkpoint. */
static void on_finish(void *arg, const struct bench_req *r)
{
    struct worker_ctx *w = arg;
    pthread_mutex_lock(&w->mu);
    if (worker_ckpt_add(&w->ck, r, bench_planned_index(w->load, r)))
        log_error("worker", "job %s: out of memory keeping a request", w->job_id);
    w->ck_dirty = 1;
    pthread_mutex_unlock(&w->mu);
    cli_obs_bench_finish(NULL, r);
}

/* on_finish without a plan (duration runs): only the metrics. */
static void on_finish_obs(void *arg, const struct bench_req *r)
{
    (void)arg;
    cli_obs_bench_finish(NULL, r);
}

/* A worker call ending the job (complete or release). 0, or -1 logged. */
static int finish_call(struct worker_ctx *w, const char *what, json_t *body)
{
    struct worker_api_resp r;
    struct err_detail d;
    char path[128];
    err_clear(&d);
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/%s", w->job_id, what);
    int rc = body ? worker_api_call(w->api, "POST", path, body, &r, &d) : ERR_NOMEM;
    json_decref(body);
    if (rc) {
        log_error("worker", "job %s: %s: %s", w->job_id, what, d.msg);
        return -1;
    }
    json_decref(r.body);
    if (r.status != 200) {
        log_error("worker", "job %s: %s: HTTP %ld %s %s", w->job_id, what, r.status, r.code,
                  r.message);
        return -1;
    }
    return 0;
}

static int complete(struct worker_ctx *w, int ok, const char *reason)
{
    pthread_mutex_lock(&w->mu);
    json_t *b = json_pack("{s:s,s:s,s:O}", "worker", w->name, "outcome",
                          ok ? "succeeded" : "failed", "run_ids", w->ck.run_ids);
    pthread_mutex_unlock(&w->mu);
    if (b && reason)
        json_object_set_new(b, "reason", json_string(reason));
    if (ok)
        log_info("worker", "job %s succeeded", w->job_id);
    else
        log_error("worker", "job %s failed: %s", w->job_id, reason);
    cli_obs_job(ok ? CLI_OBS_SUCCEEDED : CLI_OBS_FAILED);
    return finish_call(w, "complete", b);
}

/*
 * Publishes the point held in w->ck (all its segments merged) and marks
 * it done. 0, or 1 with reason.
 */
static int publish(struct worker_ctx *w, struct job *j, const struct bench_run *last, int i,
                   int with_tel, char *reason, size_t cap)
{
    struct bench_summary s;
    struct bench_catalog cat;
    struct err_detail d;
    char idem[128], id[64] = "";
    err_clear(&d);
    pthread_mutex_lock(&w->mu);
    struct bench_run m = *last;
    struct bench_load l = j->o.l;
    m.start_ns = 0;
    m.incomplete = 0;
    m.interrupted = 0;
    if (w->planned) { /* the merged point */
        double dur = worker_ckpt_merge(&w->ck);
        m.reqs = w->ck.reqs;
        m.n = w->ck.n;
        m.end_ns = (int64_t)(dur * 1e9);
        l.num_prompts = (int)w->planned;
    } else {
        m.end_ns = last->end_ns - last->start_ns;
        m.start_ns = 0;
    }
    int rc = 1;
    json_t *result = NULL;
    if (bench_summarize(&s, m.reqs, m.n, (double)(m.end_ns - m.start_ns) / 1e9, &j->o.slo,
                        j->o.pcts, j->o.npcts, &d)) {
        snprintf(reason, cap, "point %d: %s", i, d.msg);
        goto out;
    }
    s.request_rate = l.rate;
    s.max_concurrency = l.max_concurrency;
    if (!s.completed) {
        snprintf(reason, cap, "point %d: no request completed (%" PRId64 " failed, first error"
                 " %s)", i, s.failed, m.n ? bench_err_name(m.reqs[0].err) : "none");
        goto out;
    }
    result = bench_opts_result(&j->c, &l, &m, &s, j->cmd, j->id, i);
    if (result && with_tel && bench_opts_telemetry_result(&j->c, &j->o, result, &s, NULL)) {
        snprintf(reason, cap, "point %d: out of memory", i);
        goto out;
    }
    bench_opts_catalog(&j->c, &j->o, w->api_url, w->api_key, &cat);
    snprintf(idem, sizeof(idem), "job-%s-point-%d", j->id, i);
    if (!result || bench_publish(&cat, result, &m, idem, id, &d)) {
        snprintf(reason, cap, "point %d: publish: %s%s%s", i, d.field, d.field[0] ? ": " : "",
                 result ? d.msg : "out of memory");
        goto out;
    }
    log_info("worker", "job %s: point %d/%d published as run %s (%zu samples, %" PRId64
             " completed)", j->id, i + 1, w->npoints, id, m.n, s.completed);
    rc = worker_ckpt_point_done(&w->ck, id) ? 1 : 0;
    if (rc)
        snprintf(reason, cap, "out of memory");
out:
    json_decref(result);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/*
 * Runs what is left of point i. Returns 0 (done or stopped: see w->why),
 * or 1 with reason when the point failed.
 */
static int run_point(struct worker_ctx *w, struct job *j, int i, char *reason, size_t cap)
{
    struct bench_run run;
    struct err_detail d;
    struct bench_load l;
    size_t *todo = NULL, ntodo = 0;
    int rc = 0;
    err_clear(&d);
    bench_opts_point(&j->o, i);
    l = j->o.l;
    pthread_mutex_lock(&w->mu);
    w->point = i;
    worker_ckpt_begin_point(&w->ck, i);
    if (w->planned && worker_ckpt_todo(&w->ck, w->planned, &todo, &ntodo))
        rc = 1;
    w->load = &l;
    pthread_mutex_unlock(&w->mu);
    if (rc) {
        snprintf(reason, cap, "out of memory");
        return 1;
    }
    l.stop = &w->stop;
    l.drain_s = w->drain_s;
    l.progress = 0;
    l.on_start = cli_obs_bench_start;
    l.on_finish = on_finish_obs;
    if (w->planned) {
        l.num_prompts = (int)ntodo;
        l.todo = todo;
        l.ntodo = ntodo;
        l.on_finish = on_finish;
        l.on_finish_arg = w;
    }
    log_info("worker", "job %s: point %d/%d: %zu of %zu planned requests to do", j->id, i + 1,
             w->npoints, w->planned ? ntodo : 0, w->planned);
    memset(&run, 0, sizeof(run));
    /*
     * GPU telemetry, sampled around the run as bench does. The sampler only
     * holds this segment's samples, so a point resumed after a preemption
     * (earlier segments done by this or another worker) is published
     * without telemetry rather than with a part of it.
     */
    int with_tel = j->o.tel && (!w->planned || ntodo == w->planned);
    if (with_tel && tel_sampler_start(j->o.tel, &d)) {
        snprintf(reason, cap, "point %d: gpu telemetry: %s", i, d.msg);
        mem_free(todo);
        return 1;
    }
    int brc = (!w->planned || ntodo) ? bench_run(&j->o.t, &l, &run, &d) : 0;
    if (with_tel)
        tel_sampler_stop(j->o.tel);
    if (brc) {
        snprintf(reason, cap, "point %d: %s", i, d.msg);
        mem_free(todo);
        return 1;
    }
    if (!with_tel && j->o.tel)
        log_info("worker", "job %s: point %d resumed: published without gpu telemetry", j->id, i);
    cli_obs_bench_abandoned(run.incomplete);
    int64_t stopped_at = time_mono_ns();
    pthread_mutex_lock(&w->mu);
    w->load = NULL;
    if (w->planned && ntodo)
        worker_ckpt_seal(&w->ck, run.start_ns, run.end_ns);
    if (w->notice_ns)
        w->drain_ns = stopped_at - w->notice_ns;
    pthread_mutex_unlock(&w->mu);
    mem_free(todo);
    if (run.interrupted && atomic_load(&w->why) == WSTOP_NONE) { /* SIGTERM in the loop */
        struct worker_notice_event ev = {.kind = WORKER_NOTICE_SIGTERM};
        snprintf(ev.detail, sizeof(ev.detail), "SIGTERM during the run");
        worker_note_notice(w, &ev);
        pthread_mutex_lock(&w->mu);
        w->drain_ns = 0; /* the loop drained before we heard */
        pthread_mutex_unlock(&w->mu);
    }
    if (atomic_load(&w->why) == WSTOP_NONE || (w->planned && w->ck.n >= w->planned)) {
        if (run.stopped_by_errors) {
            snprintf(reason, cap, "point %d: stopped by max_errors", i);
            rc = 1;
        } else
            rc = publish(w, j, &run, i, with_tel, reason, cap);
    }
    bench_run_free(&run);
    return rc;
}

/* On a notice: checkpoint, release, log the handling time. */
static int release(struct worker_ctx *w)
{
    int put = worker_put_checkpoint(w, w->api);
    pthread_mutex_lock(&w->mu);
    struct worker_notice_event ev = w->ev;
    int64_t t0 = w->notice_ns, drain = w->drain_ns;
    json_t *b = json_pack("{s:s,s:s+,s:o}", "worker", w->name, "reason", "preempted: ",
                          ev.detail[0] ? ev.detail : worker_notice_kind_name(ev.kind),
                          "progress", worker_progress(w));
    pthread_mutex_unlock(&w->mu);
    int rc = put ? -1 : finish_call(w, "release", b);
    if (put)
        json_decref(b);
    double total = (double)(time_mono_ns() - t0) / 1e6;
    if (!rc) {
        cli_obs_job(CLI_OBS_RELEASED);
        cli_obs_notice_to_release(time_mono_ns() - t0);
    }
    notices_handled++;
    log_warn("worker", "notice handled: kind=%s detail=\"%s\" job=%s %s: %.1f ms from notice to"
             " released checkpoint (%.1f ms draining, %.1f ms without the drain); notices"
             " handled: %d", worker_notice_kind_name(ev.kind), ev.detail, w->job_id,
             rc ? "NOT released" : "released", total, (double)drain / 1e6,
             total - (double)drain / 1e6, notices_handled);
    return rc ? 1 : 0;
}

/* Reads the claim's checkpoint, or starts one with the job's seed. 0 or 1. */
static int job_checkpoint(struct worker_ctx *w, struct job *j, json_t *ckj)
{
    struct err_detail d;
    err_clear(&d);
    if (worker_ckpt_init(&w->ck, j->o.l.seed))
        return 1;
    if (json_is_object(ckj)) {
        if (worker_ckpt_load(&w->ck, ckj, w->planned, &d)) {
            log_warn("worker", "job %s: %s; starting over", j->id, d.msg);
            worker_ckpt_free(&w->ck);
            return worker_ckpt_init(&w->ck, j->o.l.seed) ? 1 : 0;
        }
        j->o.l.seed = w->ck.seed; /* every attempt plans the same prompts */
        log_info("worker", "job %s: resuming at point %d with %zu requests done", j->id,
                 w->ck.point >= 0 ? w->ck.point : w->ck.points_done, w->ck.n);
    }
    return 0;
}

static void job_reset(struct worker_ctx *w)
{
    w->stop = 0;
    atomic_store(&w->why, WSTOP_NONE);
    w->notice_ns = w->drain_ns = 0;
    w->ck_dirty = 0;
    w->point = 0;
    memset(&w->ev, 0, sizeof(w->ev));
}

int worker_run_job(struct worker_ctx *w, json_t *jobj)
{
    struct job j;
    char reason[512] = "";
    int failed = 0, rc = 0;
    memset(&j, 0, sizeof(j));
    job_reset(w);
    j.id = json_string_value(json_object_get(jobj, "id"));
    if (!j.id || strlen(j.id) >= sizeof(w->job_id)) {
        log_error("worker", "claim: a job without an id");
        return 1;
    }
    snprintf(w->job_id, sizeof(w->job_id), "%s", j.id);
    log_info("worker", "job %s claimed (attempt %" PRId64 ")", j.id,
             (int64_t)json_integer_value(json_object_get(jobj, "attempts")));
    if (job_parse(&j, json_object_get(jobj, "spec")))
        return complete(w, 0, j.reason) ? 1 : 0;
    w->planned = j.o.l.num_prompts > 0 ? (size_t)j.o.l.num_prompts : 0;
    w->npoints = bench_opts_npoints(&j.o);
    if (job_checkpoint(w, &j, json_object_get(jobj, "checkpoint")) ||
        bench_opts_dataset(&j.c, &j.o, &j.ds, reason, sizeof(reason))) {
        failed = 1;
        goto done;
    }
    j.o.l.prompts = j.ds.v;
    j.o.l.nprompts = j.ds.n;
    /* The benchmark joins the job attempt's trace (its API calls' trace). */
    j.o.l.join = &w->trace;
    if (worker_control_start(w)) {
        rc = 1;
        goto out;
    }
    for (int i = w->ck.points_done; i < w->npoints && !failed; i++) {
        failed = run_point(w, &j, i, reason, sizeof(reason));
        if (atomic_load(&w->why) != WSTOP_NONE)
            break;
        if (!failed && worker_put_checkpoint(w, w->api) > 0)
            break;
    }
    worker_control_stop(w);
done:
    switch (atomic_load(&w->why)) {
    case WSTOP_NOTICE:
        rc = release(w);
        break;
    case WSTOP_CANCELLED:
    case WSTOP_LEASE_LOST:
        log_info("worker", "job %s: stopped without finishing it", j.id);
        cli_obs_job(CLI_OBS_CANCELLED);
        break;
    default:
        rc = complete(w, !failed, failed ? reason : NULL) ? 1 : 0;
    }
out:
    worker_ckpt_free(&w->ck);
    bench_dataset_free(&j.ds);
    bench_opts_telemetry_free(&j.o);
    cfg_free(&j.c);
    return rc;
}
