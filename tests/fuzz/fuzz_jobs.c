/*
 * Fuzz target: the jobs queue's outside input (catalog/jobs.h). The first
 * byte picks what the rest is, parsed as the server parses bodies
 * (api_body), then run through the store of a throw-away SQLite catalog:
 *
 *   0      a job spec: POST /api/v1/jobs (job_spec_check's spec -> argv ->
 *          cfg_load(CMD_BENCH) and cross-field checks, labels,
 *          max_attempts), job_create, job_get, then cancel and delete
 *   1..5   a worker body: claim, heartbeat, checkpoint, complete, release
 *          (job_msg_parse); a valid one is then applied to a fresh job
 *          that its worker holds (the claim: claimed by it), and the job
 *          deleted again
 *
 * Properties (abort on violation):
 *  - an error's field and message are UTF-8 (they reach the client);
 *  - every refusal of a spec or body names the member (a non-empty field);
 *  - every rendered job is JSON; GET renders what create returned;
 *  - a stored spec passes job_spec_check again (what was accepted stays
 *    accepted), and the worker that holds a job may always call on it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "catalog/jobs.h"
#include "fuzz_store.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_jobs: property failed at line %d: %s\n",       \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define DETAIL(what, rc, d) fz_check_detail("fuzz_jobs", what, rc, d)

static const char base_spec[] =
    "{\"base_url\":\"http://127.0.0.1:9000\",\"model\":\"m\",\"labels\":{\"pool\":\"fuzz\"}}";

static const char *json_ct(const struct http_req *r, const char *name)
{
    (void)r;
    return strcasecmp(name, "Content-Type") == 0 ? "application/json" : NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fs_open(0);
    return 0;
}

static void delete_job(struct db_conn *c, const char *id)
{
    struct err_detail d;
    struct db_param p = db_p_text(id, strlen(id));
    int rc;
    if ((rc = db_exec(c, "DELETE FROM job_labels WHERE job_id = $1", &p, 1, NULL, &d)) ||
        (rc = db_exec(c, "DELETE FROM jobs WHERE id = $1", &p, 1, NULL, &d)))
        fs_die("delete of a job", rc, &d);
}

static void spec_case(struct db_conn *c, json_t *body)
{
    struct err_detail d;
    struct buf out, got;
    char id[37];
    err_clear(&d);
    buf_init(&out, 1 << 20);
    buf_init(&got, 1 << 20);
    int rc = job_create(c, body, "fuzz", 3, 1700000000000, &out, id, &d);
    DETAIL("job_create", rc, &d);
    if (rc == ERR_INVAL || rc == ERR_RANGE)
        CHECK(d.field[0] != '\0');
    if (!rc) {
        fz_check_json("fuzz_jobs", "a created job", out.p, out.len);
        CHECK(job_get(c, id, &got, &d) == 0);
        CHECK(got.len == out.len && memcmp(got.p, out.p, out.len) == 0);
        json_t *j = json_loadb(out.p, out.len, 0, NULL);
        if (j) {
            rc = job_spec_check(json_object_get(j, "spec"), &d);
            if (rc)
                fprintf(stderr, "fuzz_jobs: a stored spec is refused: %s: %s\n", d.field,
                        d.msg);
            CHECK(rc == 0);
            json_decref(j);
        }
        buf_reset(&got);
        CHECK(job_cancel(c, id, 1700000000001, &got, &d) == 0);
        delete_job(c, id);
    }
    buf_free(&out);
    buf_free(&got);
}

static void worker_case(struct db_conn *c, enum job_op op, json_t *body)
{
    struct err_detail d;
    struct job_msg m, hold;
    struct buf out;
    char id[37];
    int claimed = 0;
    err_clear(&d);
    int rc = job_msg_parse(op, body, &m, &d);
    DETAIL("job_msg_parse", rc, &d);
    if (rc == ERR_INVAL || rc == ERR_RANGE)
        CHECK(d.field[0] != '\0');
    if (rc)
        goto out;
    CHECK(m.worker && strlen(m.worker) <= JOB_WORKER_MAX);
    CHECK(!m.progress || strlen(m.progress) <= JOB_PROGRESS_MAX);
    buf_init(&out, 1 << 22);
    json_t *spec = json_loads(base_spec, 0, NULL);
    CHECK(spec);
    if (m.labels) /* a job the worker's labels match */
        CHECK(json_object_set(spec, "labels", m.labels) == 0);
    rc = job_create(c, spec, "fuzz", 2, 1700000000000, &out, id, &d);
    if (rc)
        fs_die("job_create", rc, &d);
    json_decref(spec);
    if (op != JOB_CLAIM) { /* the body's worker holds the job */
        memset(&hold, 0, sizeof(hold));
        hold.worker = m.worker;
        hold.lease_s = 60;
        hold.labels = m.labels ? m.labels : json_loads("{\"pool\":\"fuzz\"}", 0, NULL);
        buf_reset(&out);
        CHECK(job_claim(c, 0, &hold, 1700000000000, &out, &claimed, &d) == 0 && claimed);
        if (!m.labels)
            json_decref(hold.labels);
        buf_reset(&out);
        rc = job_worker_call(c, op, id, &m, 1700000001000, &out, &d);
        DETAIL("job_worker_call", rc, &d);
        CHECK(rc == 0 || rc == ERR_RANGE); /* ERR_RANGE: too many run ids in all */
    } else {
        buf_reset(&out);
        rc = job_claim(c, 0, &m, 1700000000000, &out, &claimed, &d);
        DETAIL("job_claim", rc, &d);
        CHECK(rc == 0 && claimed == (m.labels != NULL));
    }
    if (!rc && (op != JOB_CLAIM || claimed))
        fz_check_json("fuzz_jobs", "a worker call's answer", out.p, out.len);
    buf_reset(&out);
    CHECK(job_get(c, id, &out, &d) == 0);
    fz_check_json("fuzz_jobs", "a job after a worker call", out.p, out.len);
    delete_job(c, id);
    buf_free(&out);
out:
    job_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct http_req req;
    struct http_resp resp;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.method = HTTP_POST;
    req.method_name = "POST";
    req.path = "/api/v1/jobs";
    req.body = text;
    req.body_len = size - 1;
    req.header = json_ct;
    buf_init(&resp.body, 1 << 20);
    json_t *body = NULL;
    if (api_body(&req, &resp, 0, &body)) {
        fz_check_json("fuzz_jobs", "api_body's error response", resp.body.p, resp.body.len);
        goto out;
    }
    struct db_conn *c;
    struct err_detail d;
    int rc = db_acquire(fs_db, &c, &d);
    if (rc)
        fs_die("db_acquire", rc, &d);
    int sel = data[0] % 6;
    if (sel == 0)
        spec_case(c, body);
    else
        worker_case(c, (enum job_op)(sel - 1), body);
    db_release(fs_db, c);
    json_decref(body);
out:
    buf_free(&resp.body);
    free(text);
    return 0;
}
