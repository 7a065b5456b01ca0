/*
 * The backup component's plumbing: a private temporary directory, SHA-256
 * of files, gzip in and out in 64 KiB chunks (never a whole file in
 * memory), pg_dump / pg_restore as child processes (posix_spawnp with an
 * explicit argv and environment: the password travels in PGPASSWORD,
 * never on a command line), and row counts per table.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "backup/backup_int.h"

extern char **environ;

int backup__tmpdir(char *out, size_t n, struct err_detail *d)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t)
        t = "/tmp";
    if ((size_t)snprintf(out, n, "%s/modelcat-backup-XXXXXX", t) >= n)
        return err_set(d, ERR_INVAL, NULL, "TMPDIR is too long");
    if (!mkdtemp(out))
        return err_set(d, ERR_IO, NULL, "temporary directory in %.200s: %s", t,
                       strerror(errno));
    return 0;
}

void backup__rmtree(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *e;
        char path[BACKUP_PATH_CAP];
        while ((e = readdir(dp)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
                unlink(path);
        closedir(dp);
    }
    rmdir(dir);
}

int backup__sha256_file(const char *path, char hex[65], uint64_t *bytes, struct err_detail *d)
{
    unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
    unsigned mdlen = 0;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(d, ERR_IO, NULL, "open %.200s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    *bytes = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(d, ERR_IO, NULL, "read %.200s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        *bytes += (uint64_t)r;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
out:
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}

/* Writes all of buf to fd; ERR_IO with strerror (ENOSPC: disk full). */
static int write_all(int fd, const void *buf, size_t n, const char *what, struct err_detail *d)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return err_set(d, ERR_IO, NULL, "write %.200s: %s", what, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int backup__gzip(const char *in, const char *out, struct err_detail *d)
{
    unsigned char ibuf[65536], obuf[65536];
    int rc = 0, ifd = open(in, O_RDONLY | O_CLOEXEC), flush = Z_NO_FLUSH;
    int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    z_stream z = {0};
    int zok = 0;
    if (ifd < 0 || ofd < 0) {
        rc = err_set(d, ERR_IO, NULL, "gzip %.200s: %s", ifd < 0 ? in : out, strerror(errno));
        goto out;
    }
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        rc = err_set(d, ERR_NOMEM, NULL, "gzip: out of memory");
        goto out;
    }
    zok = 1;
    while (flush != Z_FINISH) {
        ssize_t r = read(ifd, ibuf, sizeof(ibuf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(d, ERR_IO, NULL, "read %.200s: %s", in, strerror(errno));
            goto out;
        }
        flush = r == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = ibuf;
        z.avail_in = (uInt)r;
        do {
            z.next_out = obuf;
            z.avail_out = sizeof(obuf);
            (void)deflate(&z, flush);
            if ((rc = write_all(ofd, obuf, sizeof(obuf) - z.avail_out, out, d)))
                goto out;
        } while (z.avail_out == 0);
    }
    if (fsync(ofd))
        rc = err_set(d, ERR_IO, NULL, "fsync %.200s: %s", out, strerror(errno));
out:
    if (zok)
        deflateEnd(&z);
    if (ifd >= 0)
        close(ifd);
    if (ofd >= 0 && close(ofd) && !rc)
        rc = err_set(d, ERR_IO, NULL, "close %.200s: %s", out, strerror(errno));
    return rc;
}

int backup__gunzip(const char *in, const char *out, struct err_detail *d)
{
    unsigned char ibuf[65536], obuf[65536];
    int rc = 0, zr = Z_OK, zok = 0, ifd = open(in, O_RDONLY | O_CLOEXEC);
    int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    z_stream z = {0};
    if (ifd < 0 || ofd < 0) {
        rc = err_set(d, ERR_IO, NULL, "gunzip %.200s: %s", ifd < 0 ? in : out,
                     strerror(errno));
        goto out;
    }
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        rc = err_set(d, ERR_NOMEM, NULL, "gunzip: out of memory");
        goto out;
    }
    zok = 1;
    while (zr != Z_STREAM_END) {
        ssize_t r = read(ifd, ibuf, sizeof(ibuf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(d, ERR_IO, NULL, "read %.200s: %s", in, strerror(errno));
            goto out;
        }
        if (r == 0) {
            rc = err_set(d, ERR_CORRUPT, NULL, "the archive is truncated (gzip stream"
                                               " ends early)");
            goto out;
        }
        z.next_in = ibuf;
        z.avail_in = (uInt)r;
        while (z.avail_in > 0 && zr != Z_STREAM_END) {
            z.next_out = obuf;
            z.avail_out = sizeof(obuf);
            zr = inflate(&z, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                rc = err_set(d, ERR_CORRUPT, NULL, "the archive is damaged (gzip: %.100s)",
                             z.msg ? z.msg : "bad data");
                goto out;
            }
            if ((rc = write_all(ofd, obuf, sizeof(obuf) - z.avail_out, out, d)))
                goto out;
        }
    }
    if (fsync(ofd))
        rc = err_set(d, ERR_IO, NULL, "fsync %.200s: %s", out, strerror(errno));
out:
    if (zok)
        inflateEnd(&z);
    if (ifd >= 0)
        close(ifd);
    if (ofd >= 0 && close(ofd) && !rc)
        rc = err_set(d, ERR_IO, NULL, "close %.200s: %s", out, strerror(errno));
    return rc;
}

int backup__sqlite_check(const char *path, struct err_detail *d)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        rc = err_set(d, ERR_CORRUPT, NULL, "the snapshot is not an SQLite database: %.150s",
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    int s = sqlite3_step(st);
    const char *t = s == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (!t || strcmp(t, "ok"))
        rc = err_set(d, ERR_CORRUPT, NULL, "the snapshot fails integrity_check: %.150s",
                     t ? t : sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int backup__is_pg(const char *url)
{
    return !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13);
}

const char *backup__sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite:", 7))
        return NULL;
    url += 7;
    return strncmp(url, "//", 2) ? url : url + 2;
}

/* Splits the userinfo of a URL: [start of password, end) or none. */
static int find_password(const char *url, const char **pw, const char **end)
{
    const char *p = strstr(url, "://");
    if (!p)
        return 0;
    p += 3;
    const char *at = NULL;
    for (const char *q = p; *q && *q != '/' && *q != '?'; q++)
        if (*q == '@')
            at = q;
    if (!at)
        return 0;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
        return 0;
    *pw = colon + 1;
    *end = at;
    return 1;
}

int backup__pg_url_nopass(const char *pg_url, char *out, size_t n, struct err_detail *d)
{
    const char *pw, *end;
    int k;
    if (find_password(pg_url, &pw, &end))
        k = snprintf(out, n, "%.*s%s", (int)(pw - 1 - pg_url), pg_url, end);
    else
        k = snprintf(out, n, "%s", pg_url);
    if (k < 0 || (size_t)k >= n)
        return err_set(d, ERR_INVAL, "db", "database URL too long");
    return 0;
}

/* The percent-decoded password of pg_url into out ("" when none). */
static void url_password(const char *pg_url, char *out, size_t n)
{
    const char *pw, *end;
    size_t k = 0;
    out[0] = '\0';
    if (!find_password(pg_url, &pw, &end))
        return;
    for (const char *p = pw; p < end && k + 1 < n; p++) {
        unsigned v;
        if (*p == '%' && end - p >= 3 && sscanf(p + 1, "%2x", &v) == 1) {
            out[k++] = (char)v;
            p += 2;
        } else {
            out[k++] = *p;
        }
    }
    out[k] = '\0';
}

/* Reads what the child wrote to errfd into d's message (its last line). */
static void child_error(int errfd, const char *prog, int status, struct err_detail *d)
{
    char buf[1024];
    ssize_t n = pread(errfd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    err_set(d, ERR_IO, NULL, "%s failed (%s %d): %.180s", prog,
            WIFEXITED(status) ? "exit" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), buf);
}

int backup__run_pg(char *const argv[], const char *pg_url, int out_fd, struct err_detail *d)
{
    char *envp[512], pwenv[1100], pw[1024];
    int n = 0, rc = 0, errfd = -1, nullfd = -1, status = 0;
    for (char **e = environ; *e && n < 508; e++)
        if (strncmp(*e, "PGPASSWORD=", 11))
            envp[n++] = *e;
    url_password(pg_url, pw, sizeof(pw));
    if (*pw) {
        snprintf(pwenv, sizeof(pwenv), "PGPASSWORD=%s", pw);
        envp[n++] = pwenv;
    }
    envp[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    char errpath[BACKUP_PATH_CAP];
    if ((rc = backup__tmpdir(errpath, sizeof(errpath) - 8, d)))
        goto out;
    size_t len = strlen(errpath);
    snprintf(errpath + len, sizeof(errpath) - len, "/err");
    errfd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    unlink(errpath);
    errpath[len] = '\0';
    rmdir(errpath);
    nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (errfd < 0 || nullfd < 0) {
        rc = err_set(d, ERR_IO, NULL, "%s: %s", argv[0], strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_adddup2(&fa, nullfd, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : nullfd, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
    if (e) {
        rc = err_set(d, ERR_UNAVAIL, NULL, "cannot run %s: %s (install postgresql-client)",
                     argv[0], strerror(e));
        goto out;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        child_error(errfd, argv[0], status, d);
        rc = ERR_IO;
    }
out:
    posix_spawn_file_actions_destroy(&fa);
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(pwenv, sizeof(pwenv));
    if (errfd >= 0)
        close(errfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

/* 1 when s is a plain identifier (safe to quote into SQL). */
static int is_ident(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

int backup__count_tables(struct db_conn *c, int pg, json_t *tables, int64_t *total,
                         struct err_detail *d)
{
    static const char q_sqlite[] =
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name";
    static const char q_pg[] =
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        " AND NOT c.relispartition ORDER BY c.relname";
    struct db_rows *rows;
    int rc = db_query(c, pg ? q_pg : q_sqlite, NULL, 0, &rows, d);
    if (rc)
        return rc;
    while ((rc = db_next(rows)) == 1) {
        const char *name = db_col_text(rows, 0, NULL);
        if (name && is_ident(name))
            json_object_set_new(tables, name, json_integer(0));
    }
    db_rows_close(rows);
    if (rc < 0)
        return err_set(d, rc, NULL, "listing the tables failed");
    *total = 0;
    const char *name;
    json_t *v;
    json_object_foreach(tables, name, v) {
        char sql[256];
        int64_t n = 0;
        /* name is a checked identifier from the catalog, never a value. */
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM \"%s\"", name);
        if ((rc = db_query_int(c, sql, NULL, 0, &n, d)))
            return rc;
        json_integer_set(v, n);
        *total += n;
    }
    return 0;
}

int backup__key(char *out, size_t n, const char *set, const char *file, struct err_detail *d)
{
    if ((size_t)snprintf(out, n, "%s/%s", set, file) >= n)
        return err_set(d, ERR_INVAL, NULL, "backup key too long");
    return 0;
}
