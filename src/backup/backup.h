/*
 * Backups and restores of the catalog store (issue "Backups and disaster
 * recovery"). A backup is a set named by its UTC time,
 * "modelcat-YYYYMMDDTHHMMSSZ", in a backup store (backup/store.h): the dump
 * (db.sqlite.gz: an online-backup-API snapshot, gzip-compressed; or
 * db.pgdump: pg_dump -Fc) and manifest.json, written last, so a set
 * without a manifest is incomplete and never listed or restored:
 *   {"format": 1, "created_at": "...Z", "store": "sqlite"|"postgres",
 *    "schema_version": N, "files": [{"name", "bytes", "sha256"}],
 *    "tables": {"name": rows, ...}, "modelcat_version": "..."}
 * Row counts come from the same snapshot as the dump. Partitioned tables
 * are counted at their parent only.
 *
 * Functions return 0 or a negative code from core/err.h with one sentence
 * in d; they do not log. Temporary files live in a private directory under
 * $TMPDIR (default /tmp) and are removed on every path.
 */
#ifndef MC_BACKUP_BACKUP_H
#define MC_BACKUP_BACKUP_H

#include <stdint.h>

#include "backup/store.h"
#include "core/err.h"

#define BACKUP_NAME_LEN 64

struct backup_opts {
    const char *db_url;                /* sqlite:PATH or postgres://... */
    const char *to;                    /* store URL (directory, file://, s3://) */
    struct backup_store_opts store;
    int keep;                          /* retention after success: newest N (0: all) */
    double keep_days;                  /* and delete sets older than this (0: never) */
    int lock;                          /* refuse to overlap another backup (ERR_BUSY) */
};

struct backup_result {
    char name[BACKUP_NAME_LEN];        /* the set made */
    uint64_t bytes;                    /* the dump's size */
    int64_t rows;                      /* rows over all tables */
    int deleted;                       /* sets removed by retention */
};

/*
 * Makes one backup set of o->db_url in o->to at now_ms (wall clock), then
 * applies retention. Returns 0 with r filled; ERR_BUSY when o->lock and
 * another backup holds the lock; ERR_EXISTS when a set of that second
 * exists; else the store's or the database's error. On failure every key
 * of the partial set is removed again and the database is untouched. A
 * retention failure after a good set is logged into d but returns 0.
 */
int backup_create(const struct backup_opts *o, int64_t now_ms, struct backup_result *r,
                  struct err_detail *d) MC_WUR;

/* One complete set as backup_list reports it. */
struct backup_set_info {
    char name[BACKUP_NAME_LEN];
    uint64_t bytes;                    /* every file of the set */
};

/*
 * Calls cb for each complete set in s (with a manifest), oldest first.
 * Returns 0, cb's non-zero return, or the store's error.
 */
int backup_list(struct backup_store *s,
                int (*cb)(void *arg, const struct backup_set_info *set), void *arg,
                struct err_detail *d) MC_WUR;

/*
 * Verifies set `name` of s: the manifest parses, each file's size and
 * SHA-256 match it, and the dump is readable (gzip stream complete and an
 * SQLite integrity_check "ok"; pg_restore -l for a PostgreSQL dump).
 * Returns 0 or ERR_CORRUPT / ERR_NOTFOUND / the store's error.
 */
int backup_verify(struct backup_store *s, const char *name, struct err_detail *d) MC_WUR;

/*
 * Deletes complete sets beyond the keep newest and older than keep_days
 * (each 0: no limit of that kind; the newest set always stays). *deleted
 * (may be NULL) gets how many went.
 */
int backup_retain(struct backup_store *s, int keep, double keep_days, int64_t now_ms,
                  int *deleted, struct err_detail *d) MC_WUR;

struct backup_restore_opts {
    const char *from;                  /* a set: DIR/modelcat-..., s3://bucket/prefix/set */
    const char *db_url;                /* the target */
    struct backup_store_opts store;
    int force;                         /* replace a target that holds data */
};

struct backup_restore_result {
    char name[BACKUP_NAME_LEN];
    int schema_from, migrations;       /* the backup's schema, migrations run after */
    int64_t rows;                      /* rows restored, checked against the manifest */
};

/*
 * Restores o->from into o->db_url. Before touching the target it checks
 * the manifest (format, store kind, schema not newer than this binary),
 * the files' sizes and checksums, the archive's readability, and that
 * the target is empty (no modelcat table with rows) unless o->force.
 * SQLite: the snapshot is decompressed next to the target, checked, and
 * renamed over it. PostgreSQL: pg_restore --single-transaction. Then
 * migrates forward and checks every table's row count. Returns 0, or
 * ERR_CORRUPT (bad archive or checksum, count mismatch after restore),
 * ERR_RANGE (newer schema), ERR_CONFLICT (target not empty), ERR_INVAL,
 * ERR_IO, the store's or the database's error.
 */
int backup_restore(const struct backup_restore_opts *o, struct backup_restore_result *r,
                   struct err_detail *d) MC_WUR;

/*
 * Parses a duration: "90s", "30m", "1h", "2d" or plain seconds; fractional
 * values allowed. Returns 0 with *seconds > 0, else ERR_INVAL.
 */
int backup_parse_duration(const char *s, double *seconds) MC_WUR;

struct metrics;
struct backup_sched;
/*
 * Starts the scheduled backups of serve: a thread of its own that runs
 * backup_create (o->lock forced on) every interval_s and logs each
 * outcome. With m, registers a collector for
 *   modelcat_backup_last_success_timestamp_seconds,
 *   modelcat_backup_last_duration_seconds, modelcat_backups_total{outcome}.
 * o's strings are copied. Returns 0 and *out, or ERR_NOMEM / ERR_IO.
 */
int backup_sched_start(const struct backup_opts *o, double interval_s, struct metrics *m,
                       struct backup_sched **out, struct err_detail *d) MC_WUR;
/* Stops the thread (waiting for a backup in progress) and frees s. NULL: no-op.
   The metrics registry must be destroyed after this. */
void backup_sched_stop(struct backup_sched *s);

#endif
