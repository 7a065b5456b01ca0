/*
 * Migration runner (see migrate.h). The table of migrations is generated at
 * build time from db/migrations/ (CMake's embed step), so a binary always
 * carries the schema it expects. Concurrent migrators (several servers
 * starting on one store) wait for each other: on SQLite the write
 * transaction's lock does it, on PostgreSQL a session advisory lock held
 * from before the first read of the version to the end.
 *
 * A migration is one SQL text for both backends, unless the two must
 * differ (partitioned tables exist only on PostgreSQL): then the file
 * NNNN_name_pg.sql is PostgreSQL's form and NNNN_name.sql SQLite's; a
 * migration with no form for a backend only records its version there.
 */
#include "db/migrate.h"

#include <string.h>

#include "core/timeutil.h"
#include "db/db_int.h"

/* Generated: see CMakeLists.txt. */
extern const char mig_0001_catalog[];
extern const char mig_0002_timeseries[];
extern const char mig_0002_timeseries_pg[];
extern const char mig_0003_run_sort_indexes[];
extern const char mig_0004_auth[];
extern const char mig_0005_series_unchecked_pg[];
extern const char mig_0006_jobs[];
extern const char mig_0007_run_telemetry[];

static const struct {
    int version;
    const char *name;
    const char *sql;
    const char *sql_pg; /* NULL: sql serves both; with sql NULL, PostgreSQL only */
} migs[] = {
    {1, "catalog", mig_0001_catalog, NULL},
    {2, "timeseries", mig_0002_timeseries, mig_0002_timeseries_pg},
    {3, "run_sort_indexes", mig_0003_run_sort_indexes, NULL},
    {4, "auth", mig_0004_auth, NULL},
    {5, "series_unchecked", NULL, mig_0005_series_unchecked_pg},
    {6, "jobs", mig_0006_jobs, NULL},
    {7, "run_telemetry", mig_0007_run_telemetry, NULL},
};
#define NMIGS ((int)(sizeof(migs) / sizeof(migs[0])))

static const char create_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

int db_schema_latest(void)
{
    return migs[NMIGS - 1].version;
}

int db_schema_version(struct db_conn *c, int *version, struct err_detail *d)
{
    int64_t v = 0;
    int rc = db_query_int(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                          NULL, 0, &v, d);
    *version = (int)v;
    return rc;
}

int db_migrate(struct db *db, int *applied, struct err_detail *d)
{
    struct db_conn *c;
    int rc, n = 0, locked = 0;
    if ((rc = db_acquire(db, &c, d)))
        return rc;
    if ((rc = db__schema_lock(c, 1, d)))
        goto out;
    locked = 1;
    if ((rc = db_exec(c, create_table, NULL, 0, NULL, d)))
        goto out;
    for (int i = 0; i < NMIGS; i++) {
        int cur;
        /* Lock first, then read the version: two migrators never race. */
        if ((rc = db_begin(c, 1, d)) || (rc = db_schema_version(c, &cur, d)))
            goto out;
        if (cur >= migs[i].version) {
            db_rollback(c);
            continue;
        }
        struct db_param p[3] = {db_p_int(migs[i].version),
                                db_p_text(migs[i].name, strlen(migs[i].name)),
                                db_p_int(time_wall_ms())};
        const char *sql = migs[i].sql;
        if (strcmp(db_backend(db), "postgres") == 0 && (migs[i].sql_pg || !sql))
            sql = migs[i].sql_pg;
        if ((sql && (rc = db_exec_script(c, sql, d))) ||
            (rc = db_exec(c, "INSERT INTO schema_migrations (version, name, applied_at)"
                             " VALUES ($1, $2, $3)", p, 3, NULL, d)) ||
            (rc = db_commit(c, d)))
            goto out;
        n++;
    }
out:
    db_rollback(c);
    if (locked)
        (void)db__schema_lock(c, 0, NULL);
    db_release(db, c);
    if (applied)
        *applied = n;
    return rc;
}
