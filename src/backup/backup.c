/*
 * Making backup sets (backup_create), listing them, verifying them and
 * retention. See backup.h for the set's layout.
 *
 * DESIGN. The dump is first written to a private temporary directory,
 * never next to the live database: SQLite through the online backup API
 * inside a read transaction on the source (in WAL mode writers go on, and
 * the copy is one consistent snapshot, taken 512 pages a step); PostgreSQL
 * through pg_dump -Fc --snapshot= of a REPEATABLE READ transaction that
 * also counts the rows, so the counts in the manifest describe exactly the
 * dump. Then the dump and, last, the manifest go to the store; a failure
 * there (a full disk, a denying bucket) deletes what was put.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup_int.h"
#include "core/mem.h"
#include "db/migrate.h"

#ifndef MODELCAT_VERSION
#define MODELCAT_VERSION "0.0.0"
#endif

#define BACKUP_PG_LOCK_KEY 0x6d636270 /* "mcbp": one backup at a time per database */

/* SQLite: the online backup API from src into the file dst. */
static int sqlite_snapshot(const char *src, const char *dst, struct err_detail *d)
{
    sqlite3 *s = NULL, *t = NULL;
    sqlite3_backup *b = NULL;
    int rc = 0, r;
    struct stat st;
    if (stat(src, &st))
        return err_set(d, ERR_NOTFOUND, "db", "no database at %.200s", src);
    if (sqlite3_open_v2(src, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_open_v2(dst, &t, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK) {
        rc = err_set(d, ERR_IO, "db", "open: %.200s", sqlite3_errmsg(s ? s : t));
        goto out;
    }
    sqlite3_busy_timeout(s, 5000);
    /* One read transaction for the whole copy: a consistent snapshot. */
    if (sqlite3_exec(s, "BEGIN; SELECT COUNT(*) FROM sqlite_master", NULL, NULL, NULL) !=
        SQLITE_OK) {
        rc = err_set(d, ERR_IO, "db", "read %.200s", sqlite3_errmsg(s));
        goto out;
    }
    if (!(b = sqlite3_backup_init(t, "main", s, "main"))) {
        rc = err_set(d, ERR_IO, NULL, "backup: %.200s", sqlite3_errmsg(t));
        goto out;
    }
    while ((r = sqlite3_backup_step(b, 512)) == SQLITE_OK || r == SQLITE_BUSY ||
           r == SQLITE_LOCKED)
        if (r != SQLITE_OK)
            sqlite3_sleep(20);
    if (r != SQLITE_DONE)
        rc = err_set(d, ERR_IO, NULL, "backup step: %.200s%s", sqlite3_errstr(r),
                     r == SQLITE_FULL ? " (disk full)" : "");
out:
    if (b && sqlite3_backup_finish(b) != SQLITE_OK && !rc)
        rc = err_set(d, ERR_IO, NULL, "backup: %.200s", sqlite3_errmsg(t));
    if (s)
        sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(s);
    sqlite3_close(t);
    return rc;
}

/* Opens url with one connection; counts tables and the schema version. */
static int count_store(const char *url, int pg, json_t *tables, int64_t *rows, int *schema,
                       struct err_detail *d)
{
    struct db_opts dop = {.max_conns = 1, .busy_timeout_ms = 5000};
    struct db *db;
    struct db_conn *c;
    int rc = db_open(url, &dop, &db, d);
    if (rc)
        return rc;
    if (!(rc = db_acquire(db, &c, d))) {
        if (!(rc = backup__count_tables(c, pg, tables, rows, d)))
            rc = db_schema_version(c, schema, d);
        db_release(db, c);
    }
    db_close(db);
    return rc;
}

/* SQLite dump: snapshot, compress, count (from the snapshot). */
static int dump_sqlite(const struct backup_opts *o, const char *tmp, json_t *tables,
                       int64_t *rows, int *schema, struct err_detail *d)
{
    char snap[BACKUP_PATH_CAP], gz[BACKUP_PATH_CAP], url[BACKUP_PATH_CAP + 16];
    const char *src = backup__sqlite_path(o->db_url);
    int rc;
    snprintf(snap, sizeof(snap), "%.4000s/snapshot.db", tmp);
    snprintf(gz, sizeof(gz), "%.4000s/%s", tmp, BACKUP_SQLITE_FILE);
    snprintf(url, sizeof(url), "sqlite:%s", snap);
    if (!src)
        return err_set(d, ERR_INVAL, "db", "unsupported database URL");
    if ((rc = sqlite_snapshot(src, snap, d)) || (rc = backup__gzip(snap, gz, d)) ||
        (rc = count_store(url, 0, tables, rows, schema, d)))
        return rc;
    return 0;
}

/* PostgreSQL dump: pg_dump of a snapshot shared with the row counts. */
static int dump_pg(const struct backup_opts *o, const char *tmp, json_t *tables,
                   int64_t *rows, int *schema, struct err_detail *d)
{
    struct db_opts dop = {.max_conns = 1, .busy_timeout_ms = 5000};
    struct db *db;
    struct db_conn *c = NULL;
    struct db_rows *r = NULL;
    char out[BACKUP_PATH_CAP], snapid[128] = "", url[BACKUP_PATH_CAP], snaparg[160];
    int rc, fd = -1, locked = 0, intx = 0;
    int64_t got = 0;
    snprintf(out, sizeof(out), "%.4000s/%s", tmp, BACKUP_PG_FILE);
    if ((rc = backup__pg_url_nopass(o->db_url, url, sizeof(url), d)) ||
        (rc = db_open(o->db_url, &dop, &db, d)))
        return rc;
    if ((rc = db_acquire(db, &c, d)))
        goto out;
    if (o->lock) {
        struct db_param p = db_p_int(BACKUP_PG_LOCK_KEY);
        if ((rc = db_query_int(c, "SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0"
                                  " END", &p, 1, &got, d)))
            goto out;
        if (!got) {
            rc = err_set(d, ERR_BUSY, NULL, "another backup of this database is running");
            goto out;
        }
        locked = 1;
    }
    if ((rc = db_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, 0, NULL,
                      d)))
        goto out;
    intx = 1;
    if ((rc = db_query(c, "SELECT pg_export_snapshot()", NULL, 0, &r, d)))
        goto out;
    if (db_next(r) == 1 && db_col_text(r, 0, NULL))
        snprintf(snapid, sizeof(snapid), "%s", db_col_text(r, 0, NULL));
    db_rows_close(r);
    if (!snapid[0]) {
        rc = err_set(d, ERR_IO, NULL, "pg_export_snapshot returned nothing");
        goto out;
    }
    if ((rc = backup__count_tables(c, 1, tables, rows, d)) ||
        (rc = db_schema_version(c, schema, d)))
        goto out;
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = err_set(d, ERR_IO, NULL, "create %.200s: %s", out, strerror(errno));
        goto out;
    }
    snprintf(snaparg, sizeof(snaparg), "--snapshot=%s", snapid);
    char *argv[] = {"pg_dump", "-Fc", "--no-password", snaparg, "-d", url, NULL};
    if ((rc = backup__run_pg(argv, o->db_url, fd, d)))
        goto out;
    if (fsync(fd))
        rc = err_set(d, ERR_IO, NULL, "fsync %.200s: %s", out, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (intx && db_exec(c, "ROLLBACK", NULL, 0, NULL, NULL))
        intx = 0; /* db_release closes nothing more; the error is the first one */
    if (locked) {
        struct db_param p = db_p_int(BACKUP_PG_LOCK_KEY);
        if (db_query_int(c, "SELECT CASE WHEN pg_advisory_unlock($1) THEN 1 ELSE 0 END",
                         &p, 1, &got, NULL))
            got = 0; /* the session ends with the connection: so does the lock */
    }
    if (c)
        db_release(db, c);
    db_close(db);
    return rc;
}

/* Writes the manifest of the set to path. */
static int write_manifest(const char *path, const char *created, int pg, int schema,
                          const char *file, uint64_t bytes, const char *sha, json_t *tables,
                          struct err_detail *d)
{
    json_t *m = json_pack("{s:i, s:s, s:s, s:i, s:[{s:s, s:I, s:s}], s:O, s:s}", "format", 1,
                          "created_at", created, "store", pg ? "postgres" : "sqlite",
                          "schema_version", schema, "files", "name", file, "bytes",
                          (json_int_t)bytes, "sha256", sha, "tables", tables,
                          "modelcat_version", MODELCAT_VERSION);
    if (!m)
        return err_set(d, ERR_NOMEM, NULL, "manifest: out of memory");
    int rc = json_dump_file(m, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(m);
    return rc ? err_set(d, ERR_IO, NULL, "write %.200s failed (disk full?)", path) : 0;
}

/* Puts the file dir/file as set/file. */
static int put_file(struct backup_store *s, const char *set, const char *dir,
                    const char *file, struct err_detail *d)
{
    char path[BACKUP_PATH_CAP], key[256];
    struct stat st;
    int rc;
    snprintf(path, sizeof(path), "%.4000s/%s", dir, file);
    if ((rc = backup__key(key, sizeof(key), set, file, d)))
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        rc = err_set(d, ERR_IO, NULL, "open %.200s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    rc = s->ops->put(s, key, fd, (uint64_t)st.st_size, d);
    close(fd);
    return rc;
}

/* A file lock on DIR/.modelcat-backup.lock for directory targets; -1: none needed. */
static int dir_lock(const char *to, int *fd, struct err_detail *d)
{
    char path[BACKUP_PATH_CAP];
    *fd = -1;
    if (!strncmp(to, "s3://", 5))
        return 0;
    if (!strncmp(to, "file://", 7))
        to += 7;
    mkdir(to, 0750);
    snprintf(path, sizeof(path), "%.4000s/.modelcat-backup.lock", to);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (*fd < 0)
        return err_set(d, ERR_IO, "to", "lock %.200s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB)) {
        close(*fd);
        *fd = -1;
        return err_set(d, ERR_BUSY, NULL, "another backup into %.200s is running", to);
    }
    return 0;
}

int backup_create(const struct backup_opts *o, int64_t now_ms, struct backup_result *r,
                  struct err_detail *d)
{
    struct backup_store *s = NULL;
    char tmp[BACKUP_PATH_CAP] = "", created[32], key[256], path[BACKUP_PATH_CAP], sha[65];
    int rc, lockfd = -1, schema = 0, put_dump = 0, pg = backup__is_pg(o->db_url);
    const char *file = pg ? BACKUP_PG_FILE : BACKUP_SQLITE_FILE;
    json_t *tables = json_object();
    uint64_t bytes = 0;
    memset(r, 0, sizeof(*r));
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(r->name, sizeof(r->name), "modelcat-%Y%m%dT%H%M%SZ", &tm);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!tables)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    if ((o->lock && (rc = dir_lock(o->to, &lockfd, d))) ||
        (rc = backup_store_open(o->to, &o->store, &s, d)))
        goto out;
    /* A set of this second already there is never overwritten. */
    if ((rc = backup__key(key, sizeof(key), r->name, "manifest.json", d)))
        goto out;
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    rc = s->ops->get(s, key, nul, 0, d);
    close(nul);
    if (rc == 0 || rc == ERR_RANGE) {
        rc = err_set(d, ERR_EXISTS, NULL, "backup set %s already exists", r->name);
        goto out;
    }
    if (rc != ERR_NOTFOUND) /* an unreachable or denying store fails here, early */
        goto out;
    err_clear(d);
    if ((rc = backup__tmpdir(tmp, sizeof(tmp), d)))
        goto out;
    rc = pg ? dump_pg(o, tmp, tables, &r->rows, &schema, d)
            : dump_sqlite(o, tmp, tables, &r->rows, &schema, d);
    if (rc)
        goto out;
    snprintf(path, sizeof(path), "%.4000s/%s", tmp, file);
    if ((rc = backup__sha256_file(path, sha, &bytes, d)))
        goto out;
    r->bytes = bytes;
    snprintf(path, sizeof(path), "%.4000s/manifest.json", tmp);
    if ((rc = write_manifest(path, created, pg, schema, file, bytes, sha, tables, d)))
        goto out;
    put_dump = 1;
    if ((rc = put_file(s, r->name, tmp, file, d)) ||
        (rc = put_file(s, r->name, tmp, "manifest.json", d)))
        goto out;
    put_dump = 0;
    if (o->keep > 0 || o->keep_days > 0) {
        struct err_detail rd;
        err_clear(&rd);
        if (backup_retain(s, o->keep, o->keep_days, now_ms, &r->deleted, &rd))
            err_set(d, 0, NULL, "retention: %.200s", rd.msg);
    }
out:
    if (put_dump) { /* the partial set goes again; the database was only read */
        if (!backup__key(key, sizeof(key), r->name, file, NULL))
            (void)s->ops->del(s, key, NULL);
        if (!backup__key(key, sizeof(key), r->name, "manifest.json", NULL))
            (void)s->ops->del(s, key, NULL);
    }
    if (tmp[0])
        backup__rmtree(tmp);
    if (s)
        s->ops->close(s);
    if (lockfd >= 0)
        close(lockfd);
    json_decref(tables);
    return rc;
}

/* --- listing and retention --- */

#define MAX_SETS 4096

struct set_list {
    struct backup_set_info sets[MAX_SETS];
    int complete[MAX_SETS];
    int n;
};

static int collect(void *arg, const char *key, uint64_t size)
{
    struct set_list *l = arg;
    const char *slash = strchr(key, '/');
    if (!slash || strncmp(key, "modelcat-", 9) || (size_t)(slash - key) >= BACKUP_NAME_LEN)
        return 0;
    size_t n = (size_t)(slash - key);
    int i;
    for (i = 0; i < l->n; i++)
        if (strlen(l->sets[i].name) == n && !memcmp(l->sets[i].name, key, n))
            break;
    if (i == l->n) {
        if (l->n == MAX_SETS)
            return 0;
        memcpy(l->sets[i].name, key, n);
        l->sets[i].name[n] = '\0';
        l->sets[i].bytes = 0;
        l->complete[i] = 0;
        l->n++;
    }
    l->sets[i].bytes += size;
    if (!strcmp(slash + 1, "manifest.json"))
        l->complete[i] = 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct backup_set_info *)a)->name,
                  ((const struct backup_set_info *)b)->name);
}

/* Every complete set, sorted oldest first, into *out (the caller frees). */
static int load_sets(struct backup_store *s, struct set_list **out, struct err_detail *d)
{
    struct set_list *l = mem_calloc(1, sizeof(*l));
    if (!l)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    int rc = s->ops->list(s, "modelcat-", collect, l, d);
    if (rc) {
        mem_free(l);
        return rc;
    }
    int k = 0;
    for (int i = 0; i < l->n; i++)
        if (l->complete[i])
            l->sets[k++] = l->sets[i];
    l->n = k;
    qsort(l->sets, (size_t)k, sizeof(l->sets[0]), by_name);
    *out = l;
    return 0;
}

int backup_list(struct backup_store *s,
                int (*cb)(void *arg, const struct backup_set_info *set), void *arg,
                struct err_detail *d)
{
    struct set_list *l = NULL;
    int rc = load_sets(s, &l, d);
    for (int i = 0; !rc && i < l->n; i++)
        rc = cb(arg, &l->sets[i]);
    if (l)
        mem_free(l);
    return rc;
}

/* The UTC time of a set's name in ms since the epoch; -1 when malformed. */
static int64_t set_time_ms(const char *name)
{
    struct tm tm = {0};
    const char *end = strptime(name, "modelcat-%Y%m%dT%H%M%SZ", &tm);
    if (!end)
        return -1;
    return (int64_t)timegm(&tm) * 1000;
}

/* Deletes every file of set `name`. */
static int delete_set(struct backup_store *s, const char *name, struct err_detail *d)
{
    static const char *const files[] = {BACKUP_SQLITE_FILE, BACKUP_PG_FILE, "manifest.json"};
    char key[256];
    int rc = 0;
    /* The manifest goes last: until then the set still lists. */
    for (size_t i = 0; !rc && i < sizeof(files) / sizeof(files[0]); i++)
        if (!(rc = backup__key(key, sizeof(key), name, files[i], d)))
            rc = s->ops->del(s, key, d);
    return rc;
}

int backup_retain(struct backup_store *s, int keep, double keep_days, int64_t now_ms,
                  int *deleted, struct err_detail *d)
{
    struct set_list *l;
    int rc = load_sets(s, &l, d), n = 0;
    if (rc)
        return rc;
    for (int i = 0; !rc && i < l->n - 1; i++) { /* the newest always stays */
        int newer = l->n - 1 - i;               /* sets newer than this one */
        int64_t t = set_time_ms(l->sets[i].name);
        int too_many = keep > 0 && newer >= keep;
        int too_old = keep_days > 0 && t >= 0 && now_ms - t > (int64_t)(keep_days * 86400e3);
        if (too_many || too_old) {
            rc = delete_set(s, l->sets[i].name, d);
            n += !rc;
        }
    }
    mem_free(l);
    if (deleted)
        *deleted = n;
    return rc;
}

int backup_verify(struct backup_store *s, const char *name, struct err_detail *d)
{
    char tmp[BACKUP_PATH_CAP], path[BACKUP_PATH_CAP], out[BACKUP_PATH_CAP];
    json_t *m = NULL;
    const char *file;
    int rc, pg;
    if ((rc = backup__tmpdir(tmp, sizeof(tmp), d)))
        return rc;
    if ((rc = backup__fetch(s, name, tmp, &m, &file, &pg, d)))
        goto out;
    snprintf(path, sizeof(path), "%.4000s/%s", tmp, file);
    if (pg) {
        char *argv[] = {"pg_restore", "-l", path, NULL};
        if ((rc = backup__run_pg(argv, "", -1, d)))
            rc = err_set(d, ERR_CORRUPT, NULL, "the dump is not readable: %.200s", d->msg);
    } else {
        snprintf(out, sizeof(out), "%.4000s/check.db", tmp);
        if (!(rc = backup__gunzip(path, out, d)))
            rc = backup__sqlite_check(out, d);
    }
out:
    json_decref(m);
    backup__rmtree(tmp);
    return rc;
}

int backup_parse_duration(const char *s, double *seconds)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0))
        return ERR_INVAL;
    double mul = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
               : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : 0;
    if (!mul || v * mul > 366 * 86400.0)
        return ERR_INVAL;
    *seconds = v * mul;
    return 0;
}
