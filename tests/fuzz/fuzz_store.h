/*
 * Shared by the fuzz targets that need a catalog store (fuzz_body,
 * fuzz_cursor, fuzz_api): a throw-away SQLite file under /tmp (mkstemp,
 * named after the pid; those of dead processes are swept at start-up),
 * migrated, with the embedded demo catalog and a few benchmark runs, plus
 * helpers to put it back into that state. Header-only (static functions),
 * since every target is one translation unit plus replay.c.
 */
#ifndef MC_FUZZ_STORE_H
#define MC_FUZZ_STORE_H

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "core/codec.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "fuzz_util.h"

/* Generated from src/catalog/demo_seed.json into mc_catalog. */
extern const char demo_seed_json[];
extern const size_t demo_seed_json_len;

/* A model and hardware of the demo catalog that the seeded runs use. */
#define FS_MODEL "meta-llama/Llama-3.1-8B-Instruct"
#define FS_HW "aws-p5.48xlarge"
#define FS_HW2 "aws-g5.xlarge"

static struct db *fs_db;
static char fs_path[64];
static json_t *fs_demo; /* the parsed demo catalog */

static inline void fs_die(const char *what, int rc, const struct err_detail *d)
{
    fprintf(stderr, "fuzz store: %s failed: %s (%s) %s\n", what, err_name(rc),
            d ? d->field : "", d ? d->msg : "");
    abort();
}

static inline void fs_cleanup(void)
{
    if (fs_db)
        db_close(fs_db);
    fs_db = NULL;
    json_decref(fs_demo);
    fs_demo = NULL;
    if (fs_path[0]) {
        char p[80];
        unlink(fs_path);
        snprintf(p, sizeof(p), "%s-wal", fs_path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", fs_path);
        unlink(p);
        fs_path[0] = '\0';
    }
}

/* One summary of a run, in the field names of vLLM's bench serve. */
static const char fs_run_fmt[] =
    "{\"model\":\"%s\",\"engine\":\"vllm\",\"engine_version\":\"0.6.3\","
    "\"hardware\":\"%s\",\"gpu_count\":%d,\"tensor_parallel\":%d,\"dataset\":\"random\","
    "\"duration\":60.5,\"completed\":1000,\"failed\":0,\"total_input_tokens\":1024000,"
    "\"total_output_tokens\":128000,\"request_throughput\":16.5,"
    "\"output_throughput\":%g,\"total_token_throughput\":19042.9,"
    "\"p99_ttft_ms\":%g,\"sweep_id\":\"sweep-%d\",\"seed\":%d,"
    "\"samples\":[{\"scheduled_ns\":0,\"sent_ns\":10,\"first_token_ns\":200,"
    "\"last_token_ns\":900,\"input_tokens\":1024,\"output_tokens\":128,\"error\":null},"
    "{\"scheduled_ns\":5,\"sent_ns\":15,\"first_token_ns\":null,\"last_token_ns\":null,"
    "\"input_tokens\":1024,\"output_tokens\":0,\"error\":\"timeout\"}]}";

/* Creates n benchmark runs over the seed model and two hardware types. */
static inline void fs_seed_runs(struct db_conn *c, int n)
{
    for (int i = 0; i < n; i++) {
        char text[2048], id[37], etag[21];
        int replayed;
        struct err_detail d;
        struct buf out;
        snprintf(text, sizeof(text), fs_run_fmt, i % 3 == 2 ? "Qwen/Qwen2.5-7B-Instruct" : FS_MODEL,
                 i % 2 ? FS_HW2 : FS_HW, 1 << (i % 4), 1 << (i % 4), 1000.0 + 250.0 * (i % 5),
                 i % 4 == 3 ? 0.0 : 80.0 + i, i % 2, i);
        json_t *body = json_loads(text, 0, NULL);
        if (!body)
            fs_die("seed run JSON", ERR_PARSE, NULL);
        buf_init(&out, 1 << 20);
        err_clear(&d);
        int rc = cat_run_create(c, body, NULL, &out, etag, id, &replayed, &d);
        if (rc)
            fs_die("seed run", rc, &d);
        buf_free(&out);
        json_decref(body);
    }
}

/* Empties every table and loads the demo catalog and nruns runs again. */
static inline void fs_reset(int nruns)
{
    static const char *const wipe[] = {
        "DELETE FROM idempotency_keys", "DELETE FROM samples", "DELETE FROM runs",
        "DELETE FROM model_tags", "DELETE FROM models", "DELETE FROM hardware",
    };
    struct db_conn *c;
    struct err_detail d;
    int rc, nm, nh;
    err_clear(&d);
    if ((rc = db_acquire(fs_db, &c, &d)))
        fs_die("db_acquire", rc, &d);
    for (size_t i = 0; i < sizeof(wipe) / sizeof(wipe[0]); i++)
        if ((rc = db_exec(c, wipe[i], NULL, 0, NULL, &d)))
            fs_die(wipe[i], rc, &d);
    db_release(fs_db, c);
    if ((rc = cat_seed_demo(fs_db, &nm, &nh, &d)))
        fs_die("cat_seed_demo", rc, &d);
    if ((rc = db_acquire(fs_db, &c, &d)))
        fs_die("db_acquire", rc, &d);
    fs_seed_runs(c, nruns);
    db_release(fs_db, c);
}

/*
 * A crash (abort, sanitizer report) ends the process without atexit, so
 * its store stays behind. Store files carry the creating pid: remove those
 * of processes that no longer exist.
 */
static inline void fs_sweep(void)
{
    DIR *dir = opendir("/tmp");
    struct dirent *e;
    if (!dir)
        return;
    while ((e = readdir(dir))) {
        long pid;
        char rest[64];
        if (sscanf(e->d_name, "modelcat-fuzz-%ld-%63s", &pid, rest) != 2 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char p[300];
        snprintf(p, sizeof(p), "/tmp/%s", e->d_name);
        unlink(p);
    }
    closedir(dir);
}

/* Opens the store once: temp file, migrations, catalog SQL, demo data. */
static inline void fs_open(int nruns)
{
    struct err_detail d;
    int rc;
    err_clear(&d);
    log_set_level(LOG_ERROR);
    fs_sweep();
    snprintf(fs_path, sizeof(fs_path), "/tmp/modelcat-fuzz-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(fs_path);
    if (fd < 0) {
        perror("fuzz store: mkstemp");
        abort();
    }
    close(fd);
    atexit(fs_cleanup);
    char url[96];
    snprintf(url, sizeof(url), "sqlite:%s", fs_path);
    struct db_opts o = {.max_conns = 1, .busy_timeout_ms = 5000, .sync_full = 0};
    if ((rc = db_open(url, &o, &fs_db, &d)))
        fs_die("db_open", rc, &d);
    if ((rc = db_migrate(fs_db, NULL, &d)))
        fs_die("db_migrate", rc, &d);
    cat_init();
    fs_demo = json_loadb(demo_seed_json, demo_seed_json_len, JSON_REJECT_DUPLICATES, NULL);
    if (!fs_demo)
        fs_die("demo JSON", ERR_PARSE, NULL);
    fs_reset(nruns);
}

/* A fresh copy of the demo item `id` of array `what` ("models", "hardware"). */
static inline json_t *fs_demo_item(const char *what, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(fs_demo, what), i, v) {
        const char *vid = json_string_value(json_object_get(v, "id"));
        if (vid && strcmp(vid, id) == 0)
            return json_deep_copy(v);
    }
    fs_die("demo item lookup", ERR_NOTFOUND, NULL);
    return NULL;
}

#endif
