/*
 * Restores (backup_restore) and fetching a set with its checks
 * (backup__fetch). Every check that can fail on bad input runs before the
 * target is touched: the manifest, sizes and SHA-256 (on a copy in a
 * private temporary directory), the schema version, the target being
 * empty, the archive decompressing and passing integrity_check. Only then
 * does the SQLite snapshot replace the target file (one rename in the
 * target's directory) or pg_restore run, in one transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup_int.h"
#include "db/migrate.h"

/* Gets key into dir/file with at most max bytes. */
static int get_file(struct backup_store *s, const char *set, const char *file,
                    const char *dir, uint64_t max, struct err_detail *d)
{
    char key[256], path[BACKUP_PATH_CAP];
    int rc = backup__key(key, sizeof(key), set, file, d);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%.4000s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(d, ERR_IO, NULL, "create %.200s: %s", path, strerror(errno));
    rc = s->ops->get(s, key, fd, max, d);
    if (rc == ERR_RANGE)
        rc = err_set(d, ERR_CORRUPT, NULL, "%s is larger than its manifest says", key);
    if (close(fd) && !rc)
        rc = err_set(d, ERR_IO, NULL, "close %.200s: %s", path, strerror(errno));
    return rc;
}

int backup__fetch(struct backup_store *s, const char *name, const char *dir,
                  json_t **manifest, const char **file, int *pg, struct err_detail *d)
{
    char path[BACKUP_PATH_CAP], sha[65];
    json_error_t je;
    uint64_t bytes = 0;
    int rc;
    *manifest = NULL;
    if ((rc = get_file(s, name, "manifest.json", dir, BACKUP_MANIFEST_MAX, d))) {
        if (rc == ERR_NOTFOUND)
            err_set(d, rc, NULL, "no backup set %.100s (no manifest.json)", name);
        return rc;
    }
    snprintf(path, sizeof(path), "%.4000s/manifest.json", dir);
    json_t *m = json_load_file(path, 0, &je);
    if (!m)
        return err_set(d, ERR_CORRUPT, NULL, "manifest.json: %.150s", je.text);
    *manifest = m;
    json_t *f = json_array_get(json_object_get(m, "files"), 0);
    const char *store = json_string_value(json_object_get(m, "store"));
    const char *fname = json_string_value(json_object_get(f, "name"));
    const char *want = json_string_value(json_object_get(f, "sha256"));
    json_t *jb = json_object_get(f, "bytes");
    if (json_integer_value(json_object_get(m, "format")) != 1 || !store || !fname || !want ||
        !json_is_integer(jb) || json_integer_value(jb) < 0 ||
        !json_is_integer(json_object_get(m, "schema_version")) ||
        !json_is_object(json_object_get(m, "tables")))
        return err_set(d, ERR_CORRUPT, NULL, "manifest.json is not a format 1 manifest");
    *pg = !strcmp(store, "postgres");
    if (strcmp(fname, *pg ? BACKUP_PG_FILE : BACKUP_SQLITE_FILE))
        return err_set(d, ERR_CORRUPT, NULL, "manifest.json names an unknown file");
    *file = fname;
    uint64_t size = (uint64_t)json_integer_value(jb);
    if ((rc = get_file(s, name, fname, dir, size, d)))
        return rc;
    snprintf(path, sizeof(path), "%.4000s/%s", dir, fname);
    if ((rc = backup__sha256_file(path, sha, &bytes, d)))
        return rc;
    if (bytes != size)
        return err_set(d, ERR_CORRUPT, NULL, "%s is %llu bytes, the manifest says %llu"
                       " (truncated archive?)", fname, (unsigned long long)bytes,
                       (unsigned long long)size);
    if (strcmp(sha, want))
        return err_set(d, ERR_CORRUPT, NULL, "%s: checksum mismatch (sha256 %.16s..., the"
                       " manifest says %.16s...)", fname, sha, want);
    return 0;
}

/* Splits from into the store's URL and the set's name. */
static int split_from(const char *from, char *store, size_t sn, char *name,
                      struct err_detail *d)
{
    char buf[BACKUP_PATH_CAP];
    size_t n = strlen(from);
    while (n > 1 && from[n - 1] == '/')
        n--;
    if (n >= sizeof(buf))
        return err_set(d, ERR_INVAL, "from", "backup path too long");
    memcpy(buf, from, n);
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    const char *set = slash ? slash + 1 : buf;
    if (strncmp(set, "modelcat-", 9) || strlen(set) >= BACKUP_NAME_LEN)
        return err_set(d, ERR_INVAL, "from", "'%.100s' does not name a backup set"
                       " (.../modelcat-YYYYMMDDTHHMMSSZ)", from);
    memcpy(name, set, strlen(set) + 1); /* shorter than BACKUP_NAME_LEN: checked above */
    if (!slash)
        snprintf(store, sn, ".");
    else if (slash == buf)
        snprintf(store, sn, "/");
    else {
        *slash = '\0';
        snprintf(store, sn, "%s", buf);
    }
    return 0;
}

/* Rows in the target's tables (schema_migrations aside) into *rows; *tables_exist. */
static int target_rows(const char *url, int pg, int64_t *rows, int *has_tables,
                       struct err_detail *d)
{
    struct db_opts dop = {.max_conns = 1, .busy_timeout_ms = 5000};
    struct db *db;
    struct db_conn *c;
    json_t *t = json_object();
    int rc;
    *rows = 0;
    *has_tables = 0;
    if (!pg) {
        struct stat st;
        const char *path = backup__sqlite_path(url);
        if (!path || stat(path, &st) || st.st_size == 0) {
            json_decref(t);
            return 0; /* no file: empty */
        }
    }
    if (!t)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    if ((rc = db_open(url, &dop, &db, d))) {
        json_decref(t);
        return rc;
    }
    if (!(rc = db_acquire(db, &c, d))) {
        int64_t total = 0;
        if (!(rc = backup__count_tables(c, pg, t, &total, d))) {
            json_t *sm = json_object_get(t, "schema_migrations");
            *rows = total - (sm ? json_integer_value(sm) : 0);
            *has_tables = json_object_size(t) > 0;
        }
        db_release(db, c);
    }
    db_close(db);
    json_decref(t);
    return rc;
}

/* SQLite: decompress next to the target, check, rename over it. */
static int restore_sqlite(const char *dump, const char *target, struct err_detail *d)
{
    char tmp[BACKUP_PATH_CAP], dir[BACKUP_PATH_CAP], side[BACKUP_PATH_CAP + 16];
    snprintf(dir, sizeof(dir), "%s", target);
    const char *parent = dirname(dir);
    snprintf(tmp, sizeof(tmp), "%.4000s/.modelcat-restore-XXXXXX", parent);
    int fd = mkstemp(tmp), rc;
    if (fd < 0)
        return err_set(d, ERR_IO, "db", "temporary file next to %.200s: %s", target,
                       strerror(errno));
    close(fd);
    if ((rc = backup__gunzip(dump, tmp, d)) || (rc = backup__sqlite_check(tmp, d))) {
        unlink(tmp);
        return rc;
    }
    /* A stale WAL of the old file must never be replayed into the new one. */
    static const char *const sfx[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(side, sizeof(side), "%s%s", target, sfx[i]);
        unlink(side);
    }
    if (rename(tmp, target)) {
        rc = err_set(d, ERR_IO, "db", "rename over %.200s: %s", target, strerror(errno));
        unlink(tmp);
        return rc;
    }
    int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/*
 * PostgreSQL over a target that has modelcat tables (--force, or migrated
 * but empty): pg_restore --clean cannot drop partitioned tables' inherited
 * constraints, so the dump becomes an SQL script that psql runs after
 * emptying the schema, all in one transaction: a failure keeps the old data.
 */
static int restore_pg_over(const char *pg_url, const char *url, const char *tmp,
                           const char *dump, struct err_detail *d)
{
    char script[BACKUP_PATH_CAP];
    snprintf(script, sizeof(script), "%.4000s/restore.sql", tmp);
    char *gen[] = {"pg_restore", "--no-owner", "--exit-on-error", "-f", script, (char *)dump, NULL};
    char *run[] = {"psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                   "--single-transaction", "-c",
                   "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public",
                   "-f", script, "-d", (char *)url, NULL};
    int rc = backup__run_pg(gen, "", -1, d);
    if (!rc)
        rc = backup__run_pg(run, pg_url, -1, d);
    unlink(script);
    return rc;
}

/* Migrates the restored store forward and checks each table's rows. */
static int finish(const char *url, int pg, json_t *m, struct backup_restore_result *r,
                  struct err_detail *d)
{
    struct db_opts dop = {.max_conns = 1, .busy_timeout_ms = 5000};
    struct db *db;
    struct db_conn *c;
    json_t *now = json_object();
    int rc = now ? db_open(url, &dop, &db, d) : ERR_NOMEM;
    if (rc) {
        json_decref(now);
        return rc;
    }
    if (r->schema_from < db_schema_latest() && (rc = db_migrate(db, &r->migrations, d)))
        goto out;
    if ((rc = db_acquire(db, &c, d)))
        goto out;
    rc = backup__count_tables(c, pg, now, &r->rows, d);
    db_release(db, c);
    const char *name;
    json_t *want;
    json_object_foreach(json_object_get(m, "tables"), name, want) {
        if (rc)
            break;
        if (r->migrations && !strcmp(name, "schema_migrations"))
            continue;
        json_t *got = json_object_get(now, name);
        if (!got || json_integer_value(got) != json_integer_value(want))
            rc = err_set(d, ERR_CORRUPT, name, "table %s has %lld rows after the restore, the"
                         " manifest says %lld", name,
                         got ? (long long)json_integer_value(got) : -1LL,
                         (long long)json_integer_value(want));
    }
out:
    db_close(db);
    json_decref(now);
    return rc;
}

int backup_restore(const struct backup_restore_opts *o, struct backup_restore_result *r,
                   struct err_detail *d)
{
    struct backup_store *s = NULL;
    char storeurl[BACKUP_PATH_CAP], tmp[BACKUP_PATH_CAP] = "", dump[BACKUP_PATH_CAP];
    char url[BACKUP_PATH_CAP];
    json_t *m = NULL;
    const char *file;
    int rc, pg = 0, has_tables;
    int64_t rows;
    memset(r, 0, sizeof(*r));
    int target_pg = backup__is_pg(o->db_url);
    if (!target_pg && !backup__sqlite_path(o->db_url))
        return err_set(d, ERR_INVAL, "db", "unsupported database URL");
    if ((rc = split_from(o->from, storeurl, sizeof(storeurl), r->name, d)) ||
        (rc = backup_store_open(storeurl, &o->store, &s, d)) ||
        (rc = backup__tmpdir(tmp, sizeof(tmp), d)) ||
        (rc = backup__fetch(s, r->name, tmp, &m, &file, &pg, d)))
        goto out;
    r->schema_from = (int)json_integer_value(json_object_get(m, "schema_version"));
    if (r->schema_from > db_schema_latest()) {
        rc = err_set(d, ERR_RANGE, NULL, "the backup has schema version %d, newer than this"
                     " binary's %d: restore it with a newer modelcat", r->schema_from,
                     db_schema_latest());
        goto out;
    }
    if (pg != target_pg) {
        rc = err_set(d, ERR_INVAL, "db", "the backup is of a %s store, the target is %s",
                     pg ? "PostgreSQL" : "SQLite", target_pg ? "PostgreSQL" : "SQLite");
        goto out;
    }
    if ((rc = target_rows(o->db_url, pg, &rows, &has_tables, d)))
        goto out;
    if (rows > 0 && !o->force) {
        rc = err_set(d, ERR_CONFLICT, "db", "the target database holds %lld rows: restore"
                     " over it only with --force", (long long)rows);
        goto out;
    }
    snprintf(dump, sizeof(dump), "%.4000s/%s", tmp, file);
    if (pg) {
        char *check[] = {"pg_restore", "-l", dump, NULL};
        if ((rc = backup__run_pg(check, "", -1, d))) {
            rc = err_set(d, ERR_CORRUPT, NULL, "the dump is not readable: %.200s", d->msg);
            goto out;
        }
        if ((rc = backup__pg_url_nopass(o->db_url, url, sizeof(url), d)))
            goto out;
        if (!has_tables) {
            char *argv[] = {"pg_restore", "--no-owner", "--exit-on-error", "--single-transaction",
                            "--no-password", "-d", url, dump, NULL};
            rc = backup__run_pg(argv, o->db_url, -1, d);
        } else {
            rc = restore_pg_over(o->db_url, url, tmp, dump, d);
        }
        if (rc)
            goto out;
    } else if ((rc = restore_sqlite(dump, backup__sqlite_path(o->db_url), d))) {
        goto out;
    }
    rc = finish(o->db_url, pg, m, r, d);
out:
    json_decref(m);
    if (tmp[0])
        backup__rmtree(tmp);
    if (s)
        s->ops->close(s);
    return rc;
}
