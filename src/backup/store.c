/*
 * backup_store_open and the directory backend. A directory store maps the
 * key "set/file" to the file DIR/set/file; put writes DIR/set/file.part,
 * fsyncs it and renames it into place, so a key is either whole or absent.
 * A failed write (disk full included) removes its .part file and reports
 * ERR_IO with "no space left on device" in the detail.
 */
#include "backup/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

#define PATH_CAP 4096

struct dir_store {
    struct backup_store base;
    char root[PATH_CAP];
};

/* Joins root and key into out; ERR_INVAL for a key that would escape root. */
static int key_path(const struct dir_store *s, const char *key, char *out, size_t n,
                    struct err_detail *d)
{
    if (!*key || key[0] == '/' || strstr(key, "..") ||
        (size_t)snprintf(out, n, "%s/%s", s->root, key) >= n)
        return err_set(d, ERR_INVAL, "key", "bad backup key '%.64s'", key);
    return 0;
}

/* mkdir -p of the directories above path. */
static int make_parents(char *path, struct err_detail *d)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int bad = mkdir(path, 0750) && errno != EEXIST;
        int e = errno;
        *p = '/';
        if (bad)
            return err_set(d, ERR_IO, NULL, "mkdir %.200s: %s", path, strerror(e));
    }
    return 0;
}

/* Copies n bytes (or to EOF with n UINT64_MAX) from in to out; max caps it. */
static int copy_fd(int in, int out, uint64_t n, uint64_t max, const char *what,
                   struct err_detail *d)
{
    char buf[65536];
    uint64_t done = 0;
    while (done < n) {
        size_t want = n - done < sizeof(buf) ? (size_t)(n - done) : sizeof(buf);
        ssize_t r = read(in, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_set(d, ERR_IO, NULL, "read %.200s: %s", what, strerror(errno));
        if (r == 0) {
            if (n == UINT64_MAX)
                break;
            return err_set(d, ERR_IO, NULL, "%.200s: short read", what);
        }
        if (done + (uint64_t)r > max)
            return err_set(d, ERR_RANGE, NULL, "%.200s: larger than %llu bytes", what,
                           (unsigned long long)max);
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return err_set(d, ERR_IO, NULL, "write %.200s: %s", what, strerror(errno));
            w += k;
        }
        done += (uint64_t)r;
    }
    return 0;
}

static int dir_put(struct backup_store *bs, const char *key, int fd, uint64_t size,
                   struct err_detail *d)
{
    struct dir_store *s = (struct dir_store *)bs;
    char path[PATH_CAP], part[PATH_CAP + 8];
    int rc, out = -1;
    if ((rc = key_path(s, key, path, sizeof(path), d)) || (rc = make_parents(path, d)))
        return rc;
    snprintf(part, sizeof(part), "%s.part", path);
    out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0)
        return err_set(d, ERR_IO, NULL, "create %.200s: %s", part, strerror(errno));
    if ((rc = copy_fd(fd, out, size, UINT64_MAX, part, d)))
        goto out;
    if (fsync(out)) {
        rc = err_set(d, ERR_IO, NULL, "fsync %.200s: %s", part, strerror(errno));
        goto out;
    }
    if (close(out)) {
        out = -1;
        rc = err_set(d, ERR_IO, NULL, "close %.200s: %s", part, strerror(errno));
        goto out;
    }
    out = -1;
    if (rename(part, path))
        rc = err_set(d, ERR_IO, NULL, "rename %.200s: %s", path, strerror(errno));
out:
    if (out >= 0)
        close(out);
    if (rc)
        unlink(part);
    return rc;
}

static int dir_get(struct backup_store *bs, const char *key, int fd, uint64_t max,
                   struct err_detail *d)
{
    struct dir_store *s = (struct dir_store *)bs;
    char path[PATH_CAP];
    int rc;
    if ((rc = key_path(s, key, path, sizeof(path), d)))
        return rc;
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_set(d, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, NULL, "open %.200s: %s",
                       path, strerror(errno));
    rc = copy_fd(in, fd, UINT64_MAX, max, path, d);
    close(in);
    return rc;
}

/* Lists the regular files of root/dir (one level: sets hold files only). */
static int list_dir(struct dir_store *s, const char *dir,
                    int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                    const char *prefix, struct err_detail *d)
{
    char path[2 * PATH_CAP], key[PATH_CAP];
    snprintf(path, sizeof(path), "%s%s%s", s->root, *dir ? "/" : "", dir);
    DIR *dp = opendir(path);
    if (!dp)
        return errno == ENOENT ? 0 : err_set(d, ERR_IO, NULL, "opendir %.200s: %s", path,
                                             strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(dp))) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(key, sizeof(key), "%s%s%s", dir, *dir ? "/" : "", e->d_name) >=
            sizeof(key))
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->root, key);
        if (stat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode) && !*dir)
            rc = list_dir(s, key, cb, arg, prefix, d);
        else if (S_ISREG(st.st_mode) && !strncmp(key, prefix, strlen(prefix)))
            rc = cb(arg, key, (uint64_t)st.st_size);
    }
    closedir(dp);
    return rc;
}

static int dir_list(struct backup_store *bs, const char *prefix,
                    int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                    struct err_detail *d)
{
    return list_dir((struct dir_store *)bs, "", cb, arg, prefix ? prefix : "", d);
}

static int dir_del(struct backup_store *bs, const char *key, struct err_detail *d)
{
    struct dir_store *s = (struct dir_store *)bs;
    char path[PATH_CAP];
    int rc;
    if ((rc = key_path(s, key, path, sizeof(path), d)))
        return rc;
    if (unlink(path) && errno != ENOENT)
        return err_set(d, ERR_IO, NULL, "unlink %.200s: %s", path, strerror(errno));
    char *slash = strrchr(path, '/');
    if (slash && slash > path + strlen(s->root)) {
        *slash = '\0';
        (void)rmdir(path); /* the set's directory, once empty */
    }
    return 0;
}

static void dir_close(struct backup_store *bs)
{
    mem_free(bs);
}

static const struct backup_store_ops dir_ops = {
    .name = "dir", .put = dir_put, .get = dir_get, .list = dir_list, .del = dir_del,
    .close = dir_close,
};

int backup__store_dir_open(const char *path, struct backup_store **out, struct err_detail *d)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (!n || n >= PATH_CAP - 512)
        return err_set(d, ERR_INVAL, "to", "bad backup directory '%.64s'", path);
    struct dir_store *s = mem_calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    s->base.ops = &dir_ops;
    memcpy(s->root, path, n);
    s->root[n] = '\0';
    char probe[PATH_CAP + 4];
    snprintf(probe, sizeof(probe), "%s/x", s->root);
    struct stat st;
    int rc = make_parents(probe, d);
    if (!rc && (stat(s->root, &st) || !S_ISDIR(st.st_mode)))
        rc = err_set(d, ERR_IO, "to", "%.200s is not a directory", s->root);
    if (rc) {
        mem_free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

int backup_store_open(const char *url, const struct backup_store_opts *o,
                      struct backup_store **out, struct err_detail *d)
{
    if (!strncmp(url, "s3://", 5)) {
#ifdef MC_HAVE_S3
        char bucket[256];
        const char *b = url + 5, *slash = strchr(b, '/');
        size_t n = slash ? (size_t)(slash - b) : strlen(b);
        if (!n || n >= sizeof(bucket))
            return err_set(d, ERR_INVAL, "to", "s3:// URL without a bucket");
        memcpy(bucket, b, n);
        bucket[n] = '\0';
        struct backup_store_opts none = {0};
        return backup__store_s3_open(bucket, slash ? slash + 1 : "", o ? o : &none, out, d);
#else
        (void)o;
        return err_set(d, ERR_INVAL, "to", "this build has no S3 support");
#endif
    }
    (void)o;
    if (!strncmp(url, "file://", 7))
        url += 7;
    if (!*url)
        return err_set(d, ERR_INVAL, "to", "no backup location given");
    if (strstr(url, "://"))
        return err_set(d, ERR_INVAL, "to", "unsupported backup location scheme (want a"
                                           " directory, file:// or s3://)");
    return backup__store_dir_open(url, out, d);
}
