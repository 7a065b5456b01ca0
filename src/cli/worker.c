/*
 * `modelcat worker`: takes benchmark jobs from a modelcat API and runs
 * them with the bench engine (worker_job.c). It holds no database
 * credentials; it speaks only HTTP to the API, with a worker key.
 *
 * DESIGN: the main thread claims a job and runs its points (bench_run
 * per point); a control thread, started per job, polls the preemption
 * watcher every --poll-interval, heartbeats every lease/3 and writes the
 * checkpoint every --checkpoint-interval. On a notice (a cloud's
 * preemption notice, or SIGTERM) or when the API answers that the job
 * was cancelled or its lease lost, it sets the run's stop flag: the bench
 * loop stops dispatching and lets in-flight requests finish for at most
 * --drain-timeout. The main thread then checkpoints and releases the job
 * (or just stops, when the job was taken away) and the worker exits 0.
 * Each thread has its own libcurl handle; the checkpoint's requests are
 * guarded by one mutex.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/jobs.h"
#include "cli/cli.h"
#include "cli/obs.h"
#include "cli/worker_int.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"

static struct worker_notice *sig_notice;
static volatile sig_atomic_t sig_term;

static void on_term(int sig)
{
    (void)sig;
    sig_term = 1;
    if (sig_notice)
        worker_notice_signal(sig_notice);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR && !sig_term)
        ;
}

void worker_note_notice(struct worker_ctx *w, const struct worker_notice_event *ev)
{
    pthread_mutex_lock(&w->mu);
    int first = !w->notice_ns;
    if (first) {
        w->notice_ns = time_mono_ns();
        w->ev = *ev;
    }
    pthread_mutex_unlock(&w->mu);
    int none = WSTOP_NONE;
    atomic_compare_exchange_strong(&w->why, &none, WSTOP_NOTICE);
    w->stop = 1;
    if (first && ev->kind != WORKER_NOTICE_NONE)
        cli_obs_notice(ev->kind == WORKER_NOTICE_TERMINATE   ? CLI_OBS_TERMINATE
                       : ev->kind == WORKER_NOTICE_REBALANCE ? CLI_OBS_REBALANCE
                                                             : CLI_OBS_SIGTERM);
    if (first)
        log_warn("worker", "notice: kind=%s source=%s detail=\"%s\" job=%s: stopping dispatch,"
                 " draining up to %g s", worker_notice_kind_name(ev->kind),
                 worker_cloud_name(ev->source), ev->detail, w->job_id[0] ? w->job_id : "-",
                 w->drain_s);
}

void worker_note_lost(struct worker_ctx *w, enum worker_stop why)
{
    int none = WSTOP_NONE;
    if (atomic_compare_exchange_strong(&w->why, &none, (int)why))
        log_warn("worker", "job %s %s: stopping", w->job_id,
                 why == WSTOP_CANCELLED ? "was cancelled" : "is no longer ours (lease lost)");
    w->stop = 1;
}

json_t *worker_progress(const struct worker_ctx *w)
{
    return json_pack("{s:i,s:i,s:I,s:I}", "point", w->point, "points", w->npoints,
                     "requests_done", (json_int_t)w->ck.n, "requests_planned",
                     (json_int_t)w->planned);
}

/* Maps a worker call's 409 to a stop reason; 1 when the job was taken away. */
static int taken_away(struct worker_ctx *w, const struct worker_api_resp *r)
{
    if (r->status != 409)
        return 0;
    worker_note_lost(w, !strcmp(r->code, "cancelled") ? WSTOP_CANCELLED : WSTOP_LEASE_LOST);
    return 1;
}

int worker_put_checkpoint(struct worker_ctx *w, struct worker_api *api)
{
    struct worker_api_resp r;
    struct err_detail d;
    char path[128];
    err_clear(&d);
    pthread_mutex_lock(&w->mu);
    json_t *body = json_pack("{s:s,s:o,s:o,s:O}", "worker", w->name, "checkpoint",
                             worker_ckpt_json(&w->ck, time_mono_ns()), "progress",
                             worker_progress(w), "run_ids", w->ck.run_ids);
    w->ck_dirty = 0;
    pthread_mutex_unlock(&w->mu);
    if (!body) {
        log_error("worker", "job %s: cannot build the checkpoint (out of memory)", w->job_id);
        return -1;
    }
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/checkpoint", w->job_id);
    int64_t t0 = time_mono_ns();
    int rc = worker_api_call(api, "PUT", path, body, &r, &d);
    cli_obs_checkpoint(time_mono_ns() - t0);
    json_decref(body);
    json_decref(r.body);
    if (rc) {
        log_warn("worker", "job %s: checkpoint: %s", w->job_id, d.msg);
        return -1;
    }
    if (taken_away(w, &r))
        return 1;
    if (r.status != 200) {
        log_warn("worker", "job %s: checkpoint: HTTP %ld %s", w->job_id, r.status, r.message);
        return -1;
    }
    log_debug("worker", "job %s: checkpoint written", w->job_id);
    return 0;
}

static void heartbeat(struct worker_ctx *w, struct worker_api *api)
{
    struct worker_api_resp r;
    struct err_detail d;
    char path[128];
    err_clear(&d);
    pthread_mutex_lock(&w->mu);
    json_t *body = json_pack("{s:s,s:o}", "worker", w->name, "progress", worker_progress(w));
    pthread_mutex_unlock(&w->mu);
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/heartbeat", w->job_id);
    int rc = body ? worker_api_call(api, "POST", path, body, &r, &d) : ERR_NOMEM;
    json_decref(body);
    if (rc) {
        log_warn("worker", "job %s: heartbeat: %s", w->job_id, d.msg);
        return;
    }
    if (!taken_away(w, &r) && r.status != 200)
        log_warn("worker", "job %s: heartbeat: HTTP %ld %s", w->job_id, r.status, r.message);
    json_decref(r.body);
}

static void poll_notice(struct worker_ctx *w)
{
    struct worker_notice_event ev;
    struct err_detail d;
    err_clear(&d);
    int rc = worker_notice_poll(w->notice, time_wall_ms(), &ev, &d);
    if (rc == 1)
        worker_note_notice(w, &ev);
    else if (rc < 0)
        log_debug("worker", "notice poll: %s", d.msg);
}

/* The control thread: notices, heartbeats and checkpoints of one job. */
static void *control(void *arg)
{
    struct worker_ctx *w = arg;
    struct worker_api *api = NULL;
    struct err_detail d;
    err_clear(&d);
    if (worker_api_create(w->api_url, w->api_key, 10000, &api, &d)) {
        log_error("worker", "control thread: %s", d.msg);
        return NULL;
    }
    worker_api_set_trace(api, &w->trace); /* the job attempt's trace */
    int64_t now = time_mono_ns(), poll_ns = (int64_t)(w->poll_s * 1e9);
    int64_t hb_ns = (int64_t)w->lease_s * 1000000000 / 3;
    int64_t ck_ns = (int64_t)(w->ckpt_interval_s * 1e9);
    int64_t next_poll = now, next_hb = now + hb_ns, next_ck = now + ck_ns;
    while (!atomic_load(&w->thr_quit)) {
        now = time_mono_ns();
        if (now >= next_poll && atomic_load(&w->why) == WSTOP_NONE) {
            poll_notice(w);
            next_poll = now + poll_ns;
        }
        if (now >= next_hb && atomic_load(&w->why) != WSTOP_CANCELLED) {
            heartbeat(w, api);
            next_hb = now + hb_ns;
        }
        if (now >= next_ck && atomic_load(&w->why) == WSTOP_NONE) {
            pthread_mutex_lock(&w->mu);
            int dirty = w->ck_dirty;
            pthread_mutex_unlock(&w->mu);
            if (dirty)
                (void)worker_put_checkpoint(w, api);
            next_ck = now + ck_ns;
        }
        sleep_s(0.02);
    }
    worker_api_destroy(api);
    return NULL;
}

int worker_control_start(struct worker_ctx *w)
{
    atomic_store(&w->thr_quit, 0);
    return pthread_create(&w->thr, NULL, control, w) ? ERR_INTERNAL : 0;
}

void worker_control_stop(struct worker_ctx *w)
{
    atomic_store(&w->thr_quit, 1);
    pthread_join(w->thr, NULL);
}

/* "k=v,k=v" into an object; 0 or 2 with a message. */
static int parse_labels(const char *s, json_t *out)
{
    while (*s) {
        size_t n = strcspn(s, ","), k = strcspn(s, "=");
        if (k >= n || k == 0 || k + 1 == n) {
            fprintf(stderr, "modelcat worker: --labels: '%.*s' is not key=value\n", (int)n, s);
            return 2;
        }
        char key[JOB_LABEL_LEN + 1], val[JOB_LABEL_LEN + 1];
        snprintf(key, sizeof(key), "%.*s", (int)k, s);
        snprintf(val, sizeof(val), "%.*s", (int)(n - k - 1), s + k + 1);
        json_object_set_new(out, key, json_string(val));
        s += n + (s[n] == ',');
    }
    struct err_detail d;
    err_clear(&d);
    if (job_labels_check(out, "labels", &d)) {
        fprintf(stderr, "modelcat worker: --labels: %s\n", d.msg);
        return 2;
    }
    return 0;
}

/* One claim. Returns 1 with *job (owned), 0 when none, -1 on an error (logged). */
static int claim(struct worker_ctx *w, json_t **job)
{
    struct worker_api_resp r;
    struct err_detail d;
    err_clear(&d);
    *job = NULL;
    /* A new trace for each job attempt, from its claim to its end. */
    trace_random_id(w->trace.trace_id, sizeof(w->trace.trace_id));
    memset(w->trace.span_id, 0, sizeof(w->trace.span_id));
    w->trace.flags = 1;
    worker_api_set_trace(w->api, &w->trace);
    json_t *body = json_pack("{s:s,s:O,s:i}", "worker", w->name, "labels", w->labels,
                             "lease_s", w->lease_s);
    int rc = body ? worker_api_call(w->api, "POST", "/api/v1/jobs/claim", body, &r, &d)
                  : ERR_NOMEM;
    json_decref(body);
    if (rc) {
        log_warn("worker", "claim: %s", d.msg);
        return -1;
    }
    if (r.status == 204) {
        json_decref(r.body);
        return 0;
    }
    json_t *j = json_object_get(r.body, "job");
    if (r.status != 200 || !json_is_object(j)) {
        log_error("worker", "claim: HTTP %ld %s %s", r.status, r.code, r.message);
        json_decref(r.body);
        return r.status == 401 || r.status == 403 ? -2 : -1;
    }
    *job = json_incref(j);
    json_decref(r.body);
    return 1;
}

static int settings(const struct cfg *c, struct worker_ctx *w)
{
    struct err_detail d;
    enum worker_cloud cloud;
    err_clear(&d);
    w->api_url = cfg_str(c, CFG_WORKER_API);
    w->api_key = cfg_str(c, CFG_WORKER_API_KEY);
    w->lease_s = (int)cfg_int(c, CFG_WORKER_LEASE);
    w->ckpt_interval_s = cfg_double(c, CFG_WORKER_CHECKPOINT_INTERVAL);
    w->poll_s = cfg_double(c, CFG_WORKER_POLL_INTERVAL);
    w->drain_s = cfg_double(c, CFG_WORKER_DRAIN_TIMEOUT);
    if (!*w->api_url) {
        fprintf(stderr, "modelcat worker: --api URL is required\n");
        return 2;
    }
    if (*cfg_str(c, CFG_WORKER_NAME))
        snprintf(w->name, sizeof(w->name), "%s", cfg_str(c, CFG_WORKER_NAME));
    else {
        char host[64] = "worker";
        if (gethostname(host, sizeof(host)))
            snprintf(host, sizeof(host), "worker");
        host[sizeof(host) - 1] = '\0';
        snprintf(w->name, sizeof(w->name), "%s-%ld", host, (long)getpid());
    }
    if (!(w->labels = json_object()) || parse_labels(cfg_str(c, CFG_WORKER_LABELS), w->labels))
        return 2;
    if (worker_cloud_parse(cfg_str(c, CFG_WORKER_CLOUD), &cloud, &d) ||
        worker_notice_create(cloud, cfg_str(c, CFG_WORKER_METADATA_URL), 2000, &w->notice, &d) ||
        worker_api_create(w->api_url, w->api_key, 30000, &w->api, &d)) {
        fprintf(stderr, "modelcat worker: %s\n", d.msg);
        return 2;
    }
    log_info("worker", "%s: jobs from %s, labels %s, cloud %s, poll %g s, lease %d s",
             w->name, w->api_url, cfg_str(c, CFG_WORKER_LABELS), worker_cloud_name(cloud),
             w->poll_s, w->lease_s);
    return 0;
}

/* Whether a notice (or SIGTERM) came while no job ran; logs it. */
static int idle_notice(struct worker_ctx *w)
{
    struct worker_notice_event ev;
    struct err_detail d;
    err_clear(&d);
    if (worker_notice_poll(w->notice, time_wall_ms(), &ev, &d) != 1)
        return sig_term;
    log_warn("worker", "notice: kind=%s source=%s detail=\"%s\" while idle: exiting",
             worker_notice_kind_name(ev.kind), worker_cloud_name(ev.source), ev.detail);
    return 1;
}

static int claim_loop(struct worker_ctx *w, int once)
{
    double backoff = 0.5;
    for (;;) {
        if (idle_notice(w))
            return 0;
        json_t *job;
        int got = claim(w, &job);
        if (got == -2)
            return 1;
        if (got == 1) {
            int rc = worker_run_job(w, job);
            json_decref(job);
            int why = atomic_load(&w->why);
            if (rc || once || why == WSTOP_NOTICE)
                return rc;
            backoff = 0.5;
            continue;
        }
        if (once)
            return got < 0 ? 1 : 0;
        sleep_s(backoff);
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
}

int cli_worker(int argc, char **argv)
{
    struct cfg c;
    struct worker_ctx w;
    int rc = cli_setup(&c, CMD_WORKER, argc, argv,
                       "usage: modelcat worker --api URL --api-key KEY [--labels k=v,...] [flags]\n\n"
                       "Takes benchmark jobs from a modelcat API and runs them against the\n"
                       "engines they name; checkpoints as it goes and hands a job back on a\n"
                       "spot-preemption notice or SIGTERM.");
    if (rc >= 0)
        return rc;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    if ((rc = settings(&c, &w)))
        goto out;
    if (cli_obs_start(cfg_str(&c, CFG_METRICS_LISTEN), 1, NULL, NULL)) {
        rc = 2;
        goto out;
    }
    sig_notice = w.notice;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = claim_loop(&w, (int)cfg_int(&c, CFG_WORKER_ONCE));
out:
    cli_obs_stop();
    sig_notice = NULL;
    worker_api_destroy(w.api);
    worker_notice_destroy(w.notice);
    json_decref(w.labels);
    pthread_mutex_destroy(&w.mu);
    cfg_free(&c);
    return rc;
}
