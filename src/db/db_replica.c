/*
 * Read replicas (db.h): a pool, a circuit breaker and a lag check per
 * replica, round-robin selection for reads, and the fallback to the
 * primary when no replica is usable.
 *
 * DESIGN: the breaker is the only health state. A replica is tried when
 * its breaker allows a call; every call let through ends in exactly one
 * report: a failure when the connection, the lag check or (through
 * db_release_result) the caller's work failed, else a success. The lag
 * check runs on the connection being handed out, at most once a second per
 * replica (the first thread to find it due claims it under the pool's
 * mutex); between checks the last verdict stands, so a lagging replica
 * keeps failing and its breaker opens after a few reads instead of being
 * reset by the successes of the reads in between. While open, the breaker's
 * half-open probe is an ordinary read whose acquire re-checks the lag. A
 * replica connection that fails with ERR_UNAVAIL is closed together with the
 * pool's idle ones (db__pool_drop), so the probe after a restart opens a
 * fresh connection instead of tripping over each stale one in turn.
 */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "db/db_int.h"

#define LAG_CHECK_NS 1000000000LL

/*
 * The replay lag in seconds. pg_last_xact_replay_timestamp() stops moving
 * on an idle primary, so everything received being replayed while the WAL
 * receiver runs means 0. With no WAL receiver (the standby lost its
 * primary) nothing says how stale it is but the last replayed commit: its
 * age is the lag. A server that is not a standby (a promoted replica) is
 * as fresh as it gets: 0. pg_stat_wal_receiver has a row exactly while
 * the receiver runs, and an unprivileged user sees the row.
 */
static const char lag_sql[] =
    "SELECT (CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
    "  AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)"
    " END)::float8";

int db_add_replica(struct db *db, const char *url, double max_lag_s, struct err_detail *d)
{
    if (strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0)
        return err_set(d, ERR_INVAL, "db-replicas", "a replica URL must be postgres://...");
    if (db->primary.ops != &db_pg_ops)
        return err_set(d, ERR_INVAL, "db-replicas", "replicas need a PostgreSQL primary");
    if (db->nreplicas >= DB_MAX_REPLICAS)
        return err_set(d, ERR_RANGE, "db-replicas", "at most %d replicas", DB_MAX_REPLICAS);
    struct db_replica *r = mem_calloc(1, sizeof(*r));
    if (!r)
        return err_set(d, ERR_NOMEM, "db", "out of memory");
    if (db__pool_init(&r->pool, &db_pg_ops, url, &db->primary.opts) ||
        breaker_init(&r->br, NULL)) {
        db__pool_fini(&r->pool);
        mem_free(r);
        return err_set(d, ERR_NOMEM, "db", "out of memory");
    }
    r->pool.replica = r;
    db__pool_metrics(db, &r->pool);
    r->max_lag_s = max_lag_s;
    r->lag_s = -1;
    cfg_mask_url(r->shown, sizeof(r->shown), url);
    db->replicas[db->nreplicas++] = r;
    return 0;
}

void db__replicas_free(struct db *db)
{
    for (int i = 0; i < db->nreplicas; i++) {
        db__pool_fini(&db->replicas[i]->pool);
        breaker_destroy(&db->replicas[i]->br);
        mem_free(db->replicas[i]);
    }
    db->nreplicas = 0;
}

int db_replicas(const struct db *db)
{
    return db->nreplicas;
}

/*
 * Runs the lag check on c when one is due. Returns 0 when the replica may
 * serve (its last verdict included), ERR_UNAVAIL with *lags = 1 when it
 * lags too far, or the query's error.
 */
static int lag_check(struct db_replica *r, struct db_conn *c, int64_t now_ns,
                     int *lags, struct err_detail *d)
{
    pthread_mutex_lock(&r->pool.mu);
    int due = r->lag_checked_ns == 0 || now_ns - r->lag_checked_ns >= LAG_CHECK_NS;
    if (due)
        r->lag_checked_ns = now_ns;
    int lagging = r->lagging;
    double lag = r->lag_s;
    pthread_mutex_unlock(&r->pool.mu);
    if (due) {
        struct db_rows *rows;
        int rc = db_query(c, lag_sql, NULL, 0, &rows, d);
        if (rc)
            return rc;
        rc = db_next(rows);
        lag = rc == 1 ? db_col_real(rows, 0) : 0;
        db_rows_close(rows);
        if (rc < 0)
            return err_set(d, ERR_IO, NULL, "replica lag check failed");
        lagging = lag > r->max_lag_s;
        pthread_mutex_lock(&r->pool.mu);
        r->lag_s = lag;
        r->lagging = lagging;
        pthread_mutex_unlock(&r->pool.mu);
    }
    *lags = lagging;
    if (lagging)
        return err_set(d, ERR_UNAVAIL, NULL, "replica lags %.1f s (max %.1f s)", lag,
                       r->max_lag_s);
    return 0;
}

int db_acquire_read(struct db *db, struct db_conn **out, int64_t now_ns,
                    struct err_detail *d)
{
    int n = db->nreplicas;
    unsigned start = n ? __atomic_fetch_add(&db->rr, 1u, __ATOMIC_RELAXED) : 0;
    for (int k = 0; k < n; k++) {
        struct db_replica *r = db->replicas[(start + (unsigned)k) % (unsigned)n];
        if (!breaker_allow(&r->br, now_ns))
            continue;
        struct db_conn *c = NULL;
        struct err_detail rd;
        err_clear(&rd);
        int lags = 0;
        int rc = db__pool_get(&r->pool, &c, &rd);
        if (!rc)
            rc = lag_check(r, c, now_ns, &lags, &rd);
        if (!rc) {
            c->acquired_ns = now_ns;
            *out = c;
            return 0;
        }
        breaker_failure(&r->br, now_ns);
        if (c && rc == ERR_UNAVAIL && !lags)
            db__pool_drop(&r->pool, c);
        else if (c)
            db__pool_put(&r->pool, c);
    }
    return db_acquire(db, out, d);
}

int db_release_result(struct db *db, struct db_conn *c, int rc, int64_t now_ns)
{
    (void)db;
    struct db_pool *p = c->pool;
    int failed = p->replica && (rc == ERR_UNAVAIL || rc == ERR_IO);
    if (p->replica) {
        if (failed)
            breaker_failure(&p->replica->br, now_ns);
        else
            breaker_success(&p->replica->br, now_ns);
    }
    if (rc == ERR_UNAVAIL) /* the primary's stale connections go too */
        db__pool_drop(p, c);
    else
        db__pool_put(p, c);
    return failed;
}

int db_conn_is_replica(const struct db_conn *c)
{
    return c->pool->replica != NULL;
}

void db_replica_info(struct db *db, int i, struct db_replica_info *out)
{
    struct db_replica *r = db->replicas[i];
    snprintf(out->url, sizeof(out->url), "%s", r->shown);
    breaker_info(&r->br, &out->breaker);
    pthread_mutex_lock(&r->pool.mu);
    out->lag_s = r->lag_s;
    out->lag_checked_ns = r->lag_checked_ns;
    out->lagging = r->lagging;
    pthread_mutex_unlock(&r->pool.mu);
}
