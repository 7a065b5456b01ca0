/*
 * Helpers shared inside the backup component: temporary directories,
 * hashing, gzip, child processes (pg_dump, pg_restore), manifests.
 */
#ifndef MC_BACKUP_BACKUP_INT_H
#define MC_BACKUP_BACKUP_INT_H

#include <jansson.h>
#include <stdint.h>

#include "backup/backup.h"
#include "db/db.h"

#define BACKUP_PATH_CAP 4096
#define BACKUP_MANIFEST_MAX (1 << 20)
#define BACKUP_SQLITE_FILE "db.sqlite.gz"
#define BACKUP_PG_FILE "db.pgdump"

/* A private directory under $TMPDIR (or /tmp) in out. */
int backup__tmpdir(char *out, size_t n, struct err_detail *d) MC_WUR;
/* Removes dir's files and dir itself (one level). */
void backup__rmtree(const char *dir);
/* SHA-256 (lowercase hex, 65 bytes with NUL) and size of the file at path. */
int backup__sha256_file(const char *path, char hex[65], uint64_t *bytes,
                        struct err_detail *d) MC_WUR;
/* Compresses in to out (gzip), streaming. */
int backup__gzip(const char *in, const char *out, struct err_detail *d) MC_WUR;
/* Decompresses in to out; ERR_CORRUPT when the stream is damaged or cut short. */
int backup__gunzip(const char *in, const char *out, struct err_detail *d) MC_WUR;
/* PRAGMA integrity_check of the SQLite file at path; ERR_CORRUPT unless "ok". */
int backup__sqlite_check(const char *path, struct err_detail *d) MC_WUR;

/*
 * Runs argv[0] (found on PATH) with the environment plus PGPASSWORD taken
 * from pg_url (never on a command line), its stdout into out_fd (-1:
 * /dev/null). Returns 0 when it exits 0, else ERR_IO with the tail of its
 * stderr in d (ERR_UNAVAIL when it cannot be started).
 */
int backup__run_pg(char *const argv[], const char *pg_url, int out_fd,
                   struct err_detail *d) MC_WUR;
/* pg_url with its password removed, for a command line. */
int backup__pg_url_nopass(const char *pg_url, char *out, size_t n, struct err_detail *d) MC_WUR;

/* 1 for a postgres:// or postgresql:// URL. */
int backup__is_pg(const char *url);
/* The file path of a sqlite: URL. */
const char *backup__sqlite_path(const char *url);

/*
 * Every modelcat table (SQLite: sqlite_master; PostgreSQL: the tables and
 * partitioned parents of the current schema, partitions excluded) with
 * its row count into tables (name -> integer), and the sum in *total.
 */
int backup__count_tables(struct db_conn *c, int pg, json_t *tables, int64_t *total,
                         struct err_detail *d) MC_WUR;

/* Names of the files of a set: "NAME/FILE" into out. */
int backup__key(char *out, size_t n, const char *set, const char *file,
                struct err_detail *d) MC_WUR;

/*
 * Fetches set `name`: manifest into *manifest (the caller decrefs), the
 * dump into dir/FILE after checking its size and SHA-256; *file gets the
 * manifest's entry name (borrowed from *manifest), *pg whether it is a
 * PostgreSQL dump. ERR_CORRUPT on a mismatch or a malformed manifest.
 */
int backup__fetch(struct backup_store *s, const char *name, const char *dir,
                  json_t **manifest, const char **file, int *pg, struct err_detail *d) MC_WUR;

#endif
