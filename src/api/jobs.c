/*
 * Handlers of /api/v1/jobs: benchmark jobs (catalog/jobs.h). Editors and
 * admins create and cancel jobs (API_T_JOBS_SUBMIT); workers and admins
 * claim them and report on them (API_T_JOBS); reads are reads. None of
 * these routes is cached: a job changes under its worker all the time.
 */
#include <stdatomic.h>
#include <string.h>

#include "api/api_int.h"
#include "catalog/jobs.h"
#include "core/timeutil.h"

static int def_attempts = 3;

void api_jobs_set_max_attempts(int n)
{
    if (n >= 1 && n <= JOB_ATTEMPTS_MAX)
        def_attempts = n;
}

/*
 * The creation time of a new job: the wall clock, but after every job this
 * process created before, so that jobs posted one after another are
 * claimed in that order even within one millisecond (claims take the
 * oldest by created_at, then id, and ids are random within a millisecond).
 */
static int64_t creation_ms(void)
{
    static _Atomic int64_t last;
    int64_t now = time_wall_ms(), prev = atomic_load(&last);
    for (;;) {
        int64_t t = now > prev ? now : prev + 1;
        if (atomic_compare_exchange_weak(&last, &prev, t))
            return t;
    }
}

/* api_fail, with the worker protocol's 409 codes (see jobs.h). */
static void job_fail(struct http_resp *resp, int rc, const struct err_detail *d)
{
    if (rc == ERR_CONFLICT && (!strcmp(d->field, "cancelled") ||
                               !strcmp(d->field, "lease_lost") ||
                               !strcmp(d->field, "finished")))
        api_error(resp, 409, d->field, NULL, "%s", d->msg);
    else
        api_fail(resp, rc, d);
}

static void json_ok(struct http_resp *resp, int status)
{
    resp->status = status;
    resp->content_type = "application/json; charset=utf-8";
    http_resp_header(resp, "Cache-Control", "no-store");
}

void api_jobs_list(struct http_req *req, struct http_resp *resp)
{
    static const char *const params[] = {"status", NULL};
    struct cat_page pg;
    struct db_conn *c;
    struct err_detail d;
    int rc;
    err_clear(&d);
    if (api_list_args(req, resp, params, &pg))
        return;
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = job_list(c, http_query(req, "status"), &pg, &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    api_list_done(resp, rc, &d);
}

void api_jobs_get(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    int rc;
    err_clear(&d);
    for (int attempt = 0;; attempt++) {
        if (api_read_conn(resp, &c, attempt))
            return;
        rc = job_get(c, req->params[0], &resp->body, &d);
        if (!api_read_done(c, rc, attempt))
            break;
        buf_reset(&resp->body);
        err_clear(&d);
    }
    if (rc)
        job_fail(resp, rc, &d);
    else
        json_ok(resp, 200);
}

void api_jobs_create(struct http_req *req, struct http_resp *resp)
{
    const struct api_who *who = req->app;
    struct db_conn *c;
    struct err_detail d;
    json_t *body;
    char id[37];
    err_clear(&d);
    if (api_body(req, resp, 0, &body))
        return;
    if (api_conn(resp, &c)) {
        json_decref(body);
        return;
    }
    int rc = job_create(c, body, who->p.id, def_attempts, creation_ms(), &resp->body, id, &d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    json_decref(body);
    if (rc) {
        job_fail(resp, rc, &d);
        return;
    }
    api_location(resp, "/api/v1/jobs/", id);
    json_ok(resp, 201);
}

void api_jobs_cancel(struct http_req *req, struct http_resp *resp)
{
    struct db_conn *c;
    struct err_detail d;
    err_clear(&d);
    if (api_conn(resp, &c))
        return;
    int rc = job_cancel(c, req->params[0], time_wall_ms(), &resp->body, &d);
    (void)db_release_result(api_db, c, rc, time_mono_ns());
    if (rc)
        job_fail(resp, rc, &d);
    else
        json_ok(resp, 200);
}

/*
 * Parses a worker body for op, takes a connection and runs the call: the
 * claim (200 with the job, or 204) or a call on the path's job (200).
 */
static void worker_call(struct http_req *req, struct http_resp *resp, enum job_op op)
{
    struct db_conn *c;
    struct err_detail d;
    struct job_msg m;
    json_t *body;
    int rc, claimed = 1;
    err_clear(&d);
    if (api_body(req, resp, 0, &body))
        return;
    if ((rc = job_msg_parse(op, body, &m, &d))) {
        job_fail(resp, rc, &d);
        goto out;
    }
    if (api_conn(resp, &c))
        goto out;
    int64_t t0 = time_mono_ns();
    if (op == JOB_CLAIM)
        rc = job_claim(c, strcmp(db_backend(api_db), "postgres") == 0, &m, time_wall_ms(),
                       &resp->body, &claimed, &d);
    else
        rc = job_worker_call(c, op, req->params[0], &m, time_wall_ms(), &resp->body, &d);
    int64_t t1 = time_mono_ns();
    (void)db_release_result(api_db, c, rc, t1);
    if (!rc && op == JOB_RELEASE)
        api_metrics_job_release();
    else if (!rc && op == JOB_COMPLETE)
        api_metrics_job_complete(m.succeeded);
    else if (!rc && op == JOB_CHECKPOINT)
        api_metrics_checkpoint(m.checkpoint_len, t1 - t0);
    if (rc) {
        job_fail(resp, rc, &d);
    } else if (!claimed) {
        buf_reset(&resp->body);
        resp->status = 204;
    } else {
        json_ok(resp, 200);
    }
out:
    job_msg_free(&m);
    json_decref(body);
}

void api_jobs_claim(struct http_req *req, struct http_resp *resp)
{
    worker_call(req, resp, JOB_CLAIM);
}

void api_jobs_heartbeat(struct http_req *req, struct http_resp *resp)
{
    worker_call(req, resp, JOB_HEARTBEAT);
}

void api_jobs_checkpoint(struct http_req *req, struct http_resp *resp)
{
    worker_call(req, resp, JOB_CHECKPOINT);
}

void api_jobs_complete(struct http_req *req, struct http_resp *resp)
{
    worker_call(req, resp, JOB_COMPLETE);
}

void api_jobs_release(struct http_req *req, struct http_resp *resp)
{
    worker_call(req, resp, JOB_RELEASE);
}
