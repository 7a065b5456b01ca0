/*
 * The spot-preemption notice watcher: asks the cloud's instance metadata
 * service whether this node is about to be taken away, so a benchmark
 * worker can checkpoint and hand its job back before it goes.
 *
 * Sources (--cloud): AWS IMDSv2 spot/instance-action and the rebalance
 * recommendation, GCP instance/preempted, Azure Scheduled Events
 * (Preempt, Terminate); "auto" probes AWS, GCP, Azure in that order and
 * settles on the first that answers; "none" asks nobody. SIGTERM counts
 * as a notice too (worker_notice_signal from the handler).
 *
 * The metadata service is outside input like any other: every response
 * body is capped (WORKER_BODY_MAX), every HTTP call has connect and total
 * timeouts, redirects are not followed, only http:// base URLs are
 * accepted, no proxy is used, and the parsers below never crash on
 * garbage. The library does not log; it returns errors and fills
 * struct err_detail.
 *
 * Not thread-safe: one thread polls a struct worker_notice. Only
 * worker_notice_signal may be called concurrently (from a signal handler).
 */
#ifndef MC_WORKER_NOTICE_H
#define MC_WORKER_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WORKER_BODY_MAX (64 * 1024)      /* cap on a metadata response body */
#define WORKER_URL_MAX 256               /* cap on --metadata-url */
#define WORKER_POLL_INTERVAL_MS 5000     /* default --poll-interval */
#define WORKER_AWS_TOKEN_TTL_S 21600     /* IMDSv2 session token lifetime asked */

enum worker_cloud {
    WORKER_CLOUD_NONE,
    WORKER_CLOUD_AWS,
    WORKER_CLOUD_GCP,
    WORKER_CLOUD_AZURE,
    WORKER_CLOUD_AUTO,
};

enum worker_notice_kind {
    WORKER_NOTICE_NONE,
    WORKER_NOTICE_TERMINATE, /* preemption: the node goes away soon */
    WORKER_NOTICE_REBALANCE, /* AWS rebalance recommendation: elevated risk */
    WORKER_NOTICE_SIGTERM,   /* the process was asked to stop */
};

struct worker_notice_event {
    enum worker_notice_kind kind;
    enum worker_cloud source; /* the cloud that said so; NONE for SIGTERM off-cloud */
    char detail[256];         /* one line of printable ASCII, e.g.
                                 "aws spot instance-action terminate at 2026-..." */
    int64_t deadline_ms;      /* wall ms when the node goes away, 0 unknown */
};

struct worker_notice;

/* "none", "aws", "gcp", "azure" or "auto" as a string; never NULL. */
const char *worker_cloud_name(enum worker_cloud c);
/* "none", "terminate", "rebalance", "sigterm"; never NULL. */
const char *worker_notice_kind_name(enum worker_notice_kind k);

/*
 * Parses s ("aws", "gcp", "azure", "auto", "none") into *out: 0, or
 * ERR_INVAL with d->field "cloud" when s is anything else (or NULL).
 */
int worker_cloud_parse(const char *s, enum worker_cloud *out, struct err_detail *d) MC_WUR;

/*
 * Creates a watcher of cloud's metadata service at metadata_url (NULL or
 * "": the cloud's default, http://169.254.169.254, or
 * http://metadata.google.internal for GCP). timeout_ms (1..60000) bounds
 * each HTTP call, connect included; auto-detection probes with at most
 * 2000 ms each. Nothing is sent yet. Returns 0 and *out (free with
 * worker_notice_destroy); ERR_INVAL for a URL that is not plain http://
 * (field "metadata_url") or a bad cloud; ERR_RANGE for timeout_ms;
 * ERR_NOMEM; ERR_INTERNAL when libcurl cannot start.
 */
int worker_notice_create(enum worker_cloud cloud, const char *metadata_url, int timeout_ms,
                         struct worker_notice **out, struct err_detail *d) MC_WUR;

/* Frees n and everything it owns; NULL is a no-op. */
void worker_notice_destroy(struct worker_notice *n);

/*
 * One poll, blocking, each HTTP call bounded by the timeout. now_ms is the
 * caller's clock (time_wall_ms()); it only times the AWS token's refresh.
 * Returns 1 and fills *ev on a notice; 0 when there is none (ev->kind
 * NONE); <0 on error, the metadata service unreachable (ERR_UNAVAIL),
 * refusing us (ERR_DENIED), answering garbage (ERR_PARSE) or too much
 * (ERR_TOOBIG), or with an unexpected status (ERR_IO). On error the caller
 * logs d and keeps polling: the next poll starts afresh.
 *
 * A pending SIGTERM is reported first, without asking the network, and
 * stays reported on every later poll. Otherwise each poll reports the
 * current state: a notice that is still posted is reported again.
 * With WORKER_CLOUD_AUTO the first polls probe until one cloud answers
 * (ERR_UNAVAIL while none does); then that cloud is polled.
 */
int worker_notice_poll(struct worker_notice *n, int64_t now_ms, struct worker_notice_event *ev,
                       struct err_detail *d) MC_WUR;

/*
 * Marks SIGTERM as received: the next poll reports WORKER_NOTICE_SIGTERM.
 * Async-signal-safe (one lock-free atomic store); call it from a handler.
 */
void worker_notice_signal(struct worker_notice *n);

/* The cloud being polled: the one configured, or AUTO's pick (AUTO until then). */
enum worker_cloud worker_notice_cloud(const struct worker_notice *n);

/*
 * Parsers of the metadata services' bodies, apart from the HTTP so they
 * can be fuzzed. body need not be NUL-terminated; n is capped by the
 * caller (WORKER_BODY_MAX). Each returns 1 and fills *ev on a notice,
 * 0 when the body says there is none (ev->kind NONE), or ERR_PARSE when
 * the body is malformed (ev->kind NONE). ev->detail is always a
 * NUL-terminated line of printable ASCII, whatever the body held.
 */

/* AWS spot/instance-action, 200 body {"action":"terminate","time":"..."};
 * any action (hibernate, stop, terminate) is a TERMINATE notice. */
int worker_parse_aws_action(const char *body, size_t n, struct worker_notice_event *ev) MC_WUR;
/* AWS events/recommendations/rebalance, 200 body {"noticeTime":"..."}: REBALANCE. */
int worker_parse_aws_rebalance(const char *body, size_t n, struct worker_notice_event *ev) MC_WUR;
/* Azure Scheduled Events document: a Preempt (or else Terminate) event
 * that is not Completed/Canceled is a TERMINATE notice; other types are
 * ignored; deadline from its NotBefore. */
int worker_parse_azure_events(const char *body, size_t n, struct worker_notice_event *ev) MC_WUR;
/* GCP instance/preempted: "TRUE" a TERMINATE notice, "FALSE" none. */
int worker_parse_gcp_preempted(const char *body, size_t n, struct worker_notice_event *ev) MC_WUR;

/*
 * Time formats of those bodies, to wall ms since the epoch (UTC):
 * RFC 3339 "2026-11-27T08:22:00Z" (fraction and numeric offset allowed),
 * RFC 1123 "Mon, 19 Sep 2016 18:29:47 GMT". 0, or ERR_PARSE.
 */
int worker_time_rfc3339(const char *s, size_t n, int64_t *ms) MC_WUR;
int worker_time_rfc1123(const char *s, size_t n, int64_t *ms) MC_WUR;

#endif
