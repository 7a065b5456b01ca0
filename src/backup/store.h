/*
 * src/backup/store.h: where backups live: a directory, or an S3-compatible
 * bucket (store_s3.c). A store is a flat namespace of keys ("set/file");
 * backup_store_open picks the backend from the URL and callers go through
 * the ops table. Every op returns 0 or a negative code from core/err.h
 * with the detail in d (ERR_NOTFOUND for a missing key, ERR_UNAVAIL for an
 * unreachable store, ERR_DENIED for a denied one, ERR_IO else, with
 * "no space left" in d->msg when a disk filled up).
 */
#ifndef MC_BACKUP_STORE_H
#define MC_BACKUP_STORE_H

#include <stdint.h>

#include "core/err.h"

struct backup_store;

struct backup_store_opts {
    const char *s3_endpoint;  /* NULL: https://s3.amazonaws.com style from region */
    const char *s3_region;
    int timeout_ms;
};

struct backup_store_ops {
    const char *name;                                   /* "dir", "s3" */
    /* Streams fd (size bytes, from its current offset) to key. */
    int (*put)(struct backup_store *s, const char *key, int fd, uint64_t size,
               struct err_detail *d);
    /* Streams key into fd, at most max bytes (ERR_RANGE when larger). */
    int (*get)(struct backup_store *s, const char *key, int fd, uint64_t max,
               struct err_detail *d);
    /* Calls cb for every key under prefix; a non-zero cb return stops and is returned. */
    int (*list)(struct backup_store *s, const char *prefix,
                int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                struct err_detail *d);
    /* Removes key; a missing key is not an error. */
    int (*del)(struct backup_store *s, const char *key, struct err_detail *d);
    /* Frees s and everything it owns. */
    void (*close)(struct backup_store *s);
};

struct backup_store { const struct backup_store_ops *ops; };

/*
 * Opens the store named by url: a path or file://PATH is a directory
 * (created if missing), s3://bucket/prefix an S3 bucket (only in builds
 * with MC_HAVE_S3; else ERR_INVAL "this build has no S3 support").
 * o may be NULL. Returns 0 and *out (the caller closes it with
 * (*out)->ops->close), or ERR_INVAL / ERR_IO / ERR_NOMEM with detail in d.
 */
int backup_store_open(const char *url, const struct backup_store_opts *o,
                      struct backup_store **out, struct err_detail *d) MC_WUR;
int backup__store_dir_open(const char *path, struct backup_store **out,
                           struct err_detail *d) MC_WUR;
int backup__store_s3_open(const char *bucket, const char *prefix,
                          const struct backup_store_opts *o, struct backup_store **out,
                          struct err_detail *d) MC_WUR;

#endif
