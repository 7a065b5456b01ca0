/*
 * Scheduled backups for serve: one thread of its own sleeps on a condition
 * variable between runs, so requests never wait for a backup, and
 * backup_sched_stop wakes it at once. Overlap is prevented three ways: one
 * thread runs them in turn, and backup_create takes a file lock on a
 * directory target and a PostgreSQL advisory lock, which keep several
 * servers on one store from backing up at once (the loser logs "busy").
 * The outcome of each run feeds a metrics collector.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "backup/backup.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/timeutil.h"

struct backup_sched {
    struct backup_opts o;
    char *db_url, *to, *endpoint, *region;
    double interval_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    _Atomic int64_t last_success_ms, last_duration_us;
    _Atomic uint64_t ok, failed, busy;
};

static void collect(struct buf *out, void *arg)
{
    struct backup_sched *s = arg;
    int64_t last = atomic_load(&s->last_success_ms);
    metrics_write_head(out, "modelcat_backup_last_success_timestamp_seconds",
                       "Unix time of the last successful scheduled backup (0: none yet)",
                       "gauge");
    metrics_write_sample(out, "modelcat_backup_last_success_timestamp_seconds", NULL, 0,
                         (double)last / 1e3);
    metrics_write_head(out, "modelcat_backup_last_duration_seconds",
                       "How long the last scheduled backup took, successful or not", "gauge");
    metrics_write_sample(out, "modelcat_backup_last_duration_seconds", NULL, 0,
                         (double)atomic_load(&s->last_duration_us) / 1e6);
    metrics_write_head(out, "modelcat_backups_total", "Scheduled backups by outcome",
                       "counter");
    const char *l[2] = {"outcome", "success"};
    metrics_write_sample(out, "modelcat_backups_total", l, 1, (double)atomic_load(&s->ok));
    l[1] = "failure";
    metrics_write_sample(out, "modelcat_backups_total", l, 1, (double)atomic_load(&s->failed));
    l[1] = "skipped";
    metrics_write_sample(out, "modelcat_backups_total", l, 1, (double)atomic_load(&s->busy));
}

/* One scheduled backup, logged and counted. */
static void run_once(struct backup_sched *s)
{
    struct backup_result r;
    struct err_detail d;
    err_clear(&d);
    int64_t t0 = time_mono_ns();
    int rc = backup_create(&s->o, time_wall_ms(), &r, &d);
    int64_t us = (time_mono_ns() - t0) / 1000;
    atomic_store(&s->last_duration_us, us);
    if (rc == ERR_BUSY) {
        atomic_fetch_add(&s->busy, 1);
        log_warn("backup", "skipped: %s", d.msg);
    } else if (rc) {
        atomic_fetch_add(&s->failed, 1);
        log_error("backup", "failed after %.1fs: %s", (double)us / 1e6, d.msg);
    } else {
        atomic_fetch_add(&s->ok, 1);
        atomic_store(&s->last_success_ms, time_wall_ms());
        log_info("backup", "%s: %llu bytes, %lld rows in %.2fs%s%s", r.name,
                 (unsigned long long)r.bytes, (long long)r.rows, (double)us / 1e6,
                 d.msg[0] ? "; " : "", d.msg);
        if (r.deleted)
            log_info("backup", "retention removed %d old set%s", r.deleted,
                     r.deleted == 1 ? "" : "s");
    }
}

static void *loop(void *arg)
{
    struct backup_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double at = (double)until.tv_sec + until.tv_nsec / 1e9 + s->interval_s;
        until.tv_sec = (time_t)at;
        until.tv_nsec = (long)((at - (double)until.tv_sec) * 1e9);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
            ;
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        run_once(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void sched_free(struct backup_sched *s)
{
    mem_free(s->db_url);
    mem_free(s->to);
    mem_free(s->endpoint);
    mem_free(s->region);
    mem_free(s);
}

int backup_sched_start(const struct backup_opts *o, double interval_s, struct metrics *m,
                       struct backup_sched **out, struct err_detail *d)
{
    struct backup_sched *s = mem_calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    s->o = *o;
    s->o.lock = 1;
    s->interval_s = interval_s;
    s->db_url = mem_strdup(o->db_url);
    s->to = mem_strdup(o->to);
    s->endpoint = o->store.s3_endpoint ? mem_strdup(o->store.s3_endpoint) : NULL;
    s->region = o->store.s3_region ? mem_strdup(o->store.s3_region) : NULL;
    if (!s->db_url || !s->to || (o->store.s3_endpoint && !s->endpoint) ||
        (o->store.s3_region && !s->region) || (m && metrics_collector(m, collect, s))) {
        sched_free(s);
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    }
    s->o.db_url = s->db_url;
    s->o.to = s->to;
    s->o.store.s3_endpoint = s->endpoint;
    s->o.store.s3_region = s->region;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, loop, s)) {
        /* The collector stays registered with s: keep s alive with the registry. */
        s->stop = 1;
        return err_set(d, ERR_IO, NULL, "cannot start the backup thread");
    }
    *out = s;
    return 0;
}

void backup_sched_stop(struct backup_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    sched_free(s);
}
