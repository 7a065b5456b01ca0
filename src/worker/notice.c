/*
 * The spot-preemption notice watcher (interface in notice.h): one poll
 * asks the configured cloud's metadata service whether this node is
 * about to go, over the bounded HTTP client of notice_http.c, and hands
 * the body to the parsers of notice_parse.c.
 *
 * DESIGN
 * - Polling, not long-polling: each poll is a few short requests, each
 *   bounded by the caller's timeout, so a poll can never outlive
 *   (requests x timeout) and a caller that polls every 5 s sees a notice
 *   within one interval of it appearing.
 * - AWS IMDSv2 needs a session token (PUT /latest/api/token). We keep it
 *   for its lifetime less a margin (now_ms passed in, so tests control
 *   time), and fetch a fresh one when a GET answers 401 (token expired or
 *   the metadata service restarted), then retry that GET once.
 * - auto probes AWS (token PUT answered 200), GCP (the answer carries
 *   "Metadata-Flavor: Google"), Azure (a Scheduled Events document) with
 *   short timeouts, and settles on the first; until one answers each
 *   poll probes again and fails with ERR_UNAVAIL. Without --metadata-url
 *   all three are probed at 169.254.169.254, where GCP answers too, so
 *   off-cloud no DNS lookup of metadata.google.internal is made.
 * - SIGTERM: the handler stores 1 in a lock-free atomic; the poll reads
 *   it first and reports it without touching the network.
 */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "worker/notice.h"
#include "worker/notice_int.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the SIGTERM flag must be lock-free");

#define DEFAULT_BASE "http://169.254.169.254"
#define GCP_DEFAULT_BASE "http://metadata.google.internal"
#define PROBE_TIMEOUT_MS 2000
#define TOKEN_MAX 512             /* longest IMDSv2 token we accept */
#define TOKEN_MARGIN_MS 300000    /* refresh this long before the token expires */

#define AWS_TOKEN_PATH "/latest/api/token"
#define AWS_ACTION_PATH "/latest/meta-data/spot/instance-action"
#define AWS_REBALANCE_PATH "/latest/meta-data/events/recommendations/rebalance"
#define GCP_PREEMPTED_PATH "/computeMetadata/v1/instance/preempted"
#define AZURE_EVENTS_PATH "/metadata/scheduledevents?api-version=2020-07-01"

struct worker_notice {
    enum worker_cloud cloud;   /* being polled; AUTO until a probe settles */
    char base[WORKER_URL_MAX]; /* no trailing '/' */
    int timeout_ms;
    struct worker__http *http;
    struct worker__resp resp;
    char token[TOKEN_MAX];     /* "" when none */
    int64_t token_at_ms;       /* now_ms when it was fetched */
    atomic_int sigterm;
};

const char *worker_cloud_name(enum worker_cloud c)
{
    switch (c) {
    case WORKER_CLOUD_NONE: return "none";
    case WORKER_CLOUD_AWS: return "aws";
    case WORKER_CLOUD_GCP: return "gcp";
    case WORKER_CLOUD_AZURE: return "azure";
    case WORKER_CLOUD_AUTO: return "auto";
    }
    return "?";
}

const char *worker_notice_kind_name(enum worker_notice_kind k)
{
    switch (k) {
    case WORKER_NOTICE_NONE: return "none";
    case WORKER_NOTICE_TERMINATE: return "terminate";
    case WORKER_NOTICE_REBALANCE: return "rebalance";
    case WORKER_NOTICE_SIGTERM: return "sigterm";
    }
    return "?";
}

int worker_cloud_parse(const char *s, enum worker_cloud *out, struct err_detail *d)
{
    static const enum worker_cloud all[] = {WORKER_CLOUD_NONE, WORKER_CLOUD_AWS,
                                            WORKER_CLOUD_GCP, WORKER_CLOUD_AZURE,
                                            WORKER_CLOUD_AUTO};
    for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, worker_cloud_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return err_set(d, ERR_INVAL, "cloud", "cloud must be aws, gcp, azure, auto or none");
}

/*
 * Copies a metadata base URL into out (WORKER_URL_MAX) without its
 * trailing '/': http:// only, a host, printable ASCII without spaces,
 * no query or fragment. 0 or ERR_INVAL.
 */
static int base_url(const char *url, char *out, struct err_detail *d)
{
    size_t n = strlen(url);
    if (n >= WORKER_URL_MAX)
        return err_set(d, ERR_INVAL, "metadata_url", "metadata URL longer than %d bytes",
                       WORKER_URL_MAX - 1);
    if (n < 8 || strncasecmp(url, "http://", 7) != 0 || url[7] == '/')
        return err_set(d, ERR_INVAL, "metadata_url",
                       "metadata URL must be http://HOST[:PORT][/PATH]");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '@')
            return err_set(d, ERR_INVAL, "metadata_url",
                           "metadata URL has a space, control, '?', '#' or '@' byte");
    }
    while (n > 8 && url[n - 1] == '/')
        n--;
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

int worker_notice_create(enum worker_cloud cloud, const char *metadata_url, int timeout_ms,
                         struct worker_notice **out, struct err_detail *d)
{
    struct worker_notice *n = NULL;
    int rc;
    if (cloud < WORKER_CLOUD_NONE || cloud > WORKER_CLOUD_AUTO)
        return err_set(d, ERR_INVAL, "cloud", "unknown cloud %d", (int)cloud);
    if (timeout_ms < 1 || timeout_ms > 60000)
        return err_set(d, ERR_RANGE, "timeout_ms", "timeout must be 1..60000 ms");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(d, ERR_INTERNAL, "", "libcurl could not initialize");
    n = mem_calloc(1, sizeof(*n));
    if (!n) {
        rc = err_set(d, ERR_NOMEM, "", "out of memory");
        goto out;
    }
    n->cloud = cloud;
    n->timeout_ms = timeout_ms;
    atomic_init(&n->sigterm, 0);
    buf_init(&n->resp.body, WORKER_BODY_MAX);
    if (metadata_url && metadata_url[0])
        rc = base_url(metadata_url, n->base, d);
    else
        rc = base_url(cloud == WORKER_CLOUD_GCP ? GCP_DEFAULT_BASE : DEFAULT_BASE, n->base, d);
    if (rc == 0)
        rc = worker__http_create(&n->http, d);
out:
    if (rc) {
        if (n)
            worker_notice_destroy(n);
        else
            curl_global_cleanup();
        return rc;
    }
    *out = n;
    return 0;
}

void worker_notice_destroy(struct worker_notice *n)
{
    if (!n)
        return;
    worker__http_destroy(n->http);
    buf_free(&n->resp.body);
    mem_free(n);
    curl_global_cleanup();
}

void worker_notice_signal(struct worker_notice *n)
{
    if (n)
        atomic_store(&n->sigterm, 1);
}

enum worker_cloud worker_notice_cloud(const struct worker_notice *n)
{
    return n->cloud;
}

/* Our code for an HTTP status that is neither the answer nor "none". */
static int status_err(long status, const char *what, struct err_detail *d)
{
    int code = status == 401 || status == 403 ? ERR_DENIED
             : status >= 500 ? ERR_UNAVAIL : ERR_IO;
    return err_set(d, code, "", "%s: unexpected HTTP status %ld", what, status);
}

/* Sends method to base + path with hdrs, within timeout_ms. */
static int call(struct worker_notice *n, const char *method, const char *path,
                const char *const *hdrs, int timeout_ms, const char *what,
                struct err_detail *d)
{
    char url[WORKER_URL_MAX + 128];
    snprintf(url, sizeof(url), "%s%s", n->base, path);
    return worker__http_call(n->http, method, url, hdrs, timeout_ms, &n->resp, what, d);
}

/* Fetches an IMDSv2 session token into n->token: 0, or an error. */
static int aws_token(struct worker_notice *n, int64_t now_ms, int timeout_ms,
                     struct err_detail *d)
{
    static const char *const hdrs[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    _Static_assert(WORKER_AWS_TOKEN_TTL_S == 21600, "keep the header in step");
    n->token[0] = '\0';
    int rc = call(n, "PUT", AWS_TOKEN_PATH, hdrs, timeout_ms, "aws token", d);
    if (rc)
        return rc;
    if (n->resp.status != 200)
        return status_err(n->resp.status, "aws token", d);
    const char *t = n->resp.body.p ? n->resp.body.p : "";
    size_t len = n->resp.body.len;
    if (len == 0 || len >= TOKEN_MAX)
        return err_set(d, ERR_PARSE, "", "aws token: %zu bytes, want 1..%d", len, TOKEN_MAX - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return err_set(d, ERR_PARSE, "", "aws token: not printable ASCII");
    memcpy(n->token, t, len);
    n->token[len] = '\0';
    n->token_at_ms = now_ms;
    return 0;
}

/*
 * GETs an AWS metadata path with the session token, fetching one first
 * when there is none or it is near its end, and once more on 401.
 * 0 with n->resp holding the answer, or an error.
 */
static int aws_get(struct worker_notice *n, int64_t now_ms, const char *path, const char *what,
                   struct err_detail *d)
{
    char hdr[TOKEN_MAX + 40];
    const char *hdrs[] = {hdr, NULL};
    int64_t age = now_ms - n->token_at_ms;
    int rc;
    if (!n->token[0] || age < 0 || age >= WORKER_AWS_TOKEN_TTL_S * 1000LL - TOKEN_MARGIN_MS) {
        if ((rc = aws_token(n, now_ms, n->timeout_ms, d)))
            return rc;
    }
    for (int attempt = 0;; attempt++) {
        snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", n->token);
        if ((rc = call(n, "GET", path, hdrs, n->timeout_ms, what, d)))
            return rc;
        if (n->resp.status != 401 || attempt == 1)
            return 0;
        if ((rc = aws_token(n, now_ms, n->timeout_ms, d)))
            return rc;
    }
}

/* The body of n->resp through parse; maps a malformed body to ERR_PARSE. */
static int parse_resp(struct worker_notice *n,
                      int (*parse)(const char *, size_t, struct worker_notice_event *),
                      struct worker_notice_event *ev, const char *what, struct err_detail *d)
{
    int rc = parse(n->resp.body.p ? n->resp.body.p : "", n->resp.body.len, ev);
    if (rc < 0)
        return err_set(d, ERR_PARSE, "", "%s: malformed body (%zu bytes)", what,
                       n->resp.body.len);
    return rc;
}

/* instance-action first (404: none), then the rebalance recommendation. */
static int poll_aws(struct worker_notice *n, int64_t now_ms, struct worker_notice_event *ev,
                    struct err_detail *d)
{
    int rc = aws_get(n, now_ms, AWS_ACTION_PATH, "aws instance-action", d);
    if (rc)
        return rc;
    if (n->resp.status == 200)
        return parse_resp(n, worker_parse_aws_action, ev, "aws instance-action", d);
    if (n->resp.status != 404)
        return status_err(n->resp.status, "aws instance-action", d);
    rc = aws_get(n, now_ms, AWS_REBALANCE_PATH, "aws rebalance", d);
    if (rc)
        return rc;
    if (n->resp.status == 200)
        return parse_resp(n, worker_parse_aws_rebalance, ev, "aws rebalance", d);
    if (n->resp.status != 404)
        return status_err(n->resp.status, "aws rebalance", d);
    return 0;
}

static int get_gcp(struct worker_notice *n, int timeout_ms, struct err_detail *d)
{
    static const char *const hdrs[] = {"Metadata-Flavor: Google", NULL};
    return call(n, "GET", GCP_PREEMPTED_PATH, hdrs, timeout_ms, "gcp preempted", d);
}

static int get_azure(struct worker_notice *n, int timeout_ms, struct err_detail *d)
{
    static const char *const hdrs[] = {"Metadata: true", NULL};
    return call(n, "GET", AZURE_EVENTS_PATH, hdrs, timeout_ms, "azure scheduledevents", d);
}

/* GETs path with hdr and parses a 200 answer; other statuses are errors. */
static int poll_simple(struct worker_notice *n, int (*get)(struct worker_notice *, int,
                                                              struct err_detail *),
                       int (*parse)(const char *, size_t, struct worker_notice_event *),
                       struct worker_notice_event *ev, const char *what, struct err_detail *d)
{
    int rc = get(n, n->timeout_ms, d);
    if (rc)
        return rc;
    if (n->resp.status != 200)
        return status_err(n->resp.status, what, d);
    return parse_resp(n, parse, ev, what, d);
}

/* Probes AWS, GCP, Azure in turn; settles n->cloud on the first to answer. */
static int probe(struct worker_notice *n, int64_t now_ms, struct err_detail *d)
{
    int t = n->timeout_ms < PROBE_TIMEOUT_MS ? n->timeout_ms : PROBE_TIMEOUT_MS;
    struct worker_notice_event scratch;
    struct err_detail ignored;
    if (aws_token(n, now_ms, t, &ignored) == 0) {
        n->cloud = WORKER_CLOUD_AWS;
        return 0;
    }
    if (get_gcp(n, t, &ignored) == 0 && n->resp.status == 200 && n->resp.flavor_google) {
        n->cloud = WORKER_CLOUD_GCP;
        return 0;
    }
    if (get_azure(n, t, &ignored) == 0 && n->resp.status == 200 &&
        worker_parse_azure_events(n->resp.body.p ? n->resp.body.p : "", n->resp.body.len,
                                  &scratch) >= 0) {
        n->cloud = WORKER_CLOUD_AZURE;
        return 0;
    }
    return err_set(d, ERR_UNAVAIL, "cloud",
                   "auto: no metadata service answered at %s (aws, gcp, azure)", n->base);
}

int worker_notice_poll(struct worker_notice *n, int64_t now_ms, struct worker_notice_event *ev,
                       struct err_detail *d)
{
    int rc;
    memset(ev, 0, sizeof(*ev));
    if (atomic_load(&n->sigterm)) {
        ev->kind = WORKER_NOTICE_SIGTERM;
        ev->source = n->cloud == WORKER_CLOUD_AUTO ? WORKER_CLOUD_NONE : n->cloud;
        snprintf(ev->detail, sizeof(ev->detail), "SIGTERM received");
        return 1;
    }
    if (n->cloud == WORKER_CLOUD_AUTO && (rc = probe(n, now_ms, d)))
        return rc;
    switch (n->cloud) {
    case WORKER_CLOUD_AWS:
        rc = poll_aws(n, now_ms, ev, d);
        break;
    case WORKER_CLOUD_GCP:
        rc = poll_simple(n, get_gcp, worker_parse_gcp_preempted, ev, "gcp preempted", d);
        break;
    case WORKER_CLOUD_AZURE:
        rc = poll_simple(n, get_azure, worker_parse_azure_events, ev, "azure scheduledevents",
                         d);
        break;
    default:
        rc = 0;
        break;
    }
    if (rc <= 0)
        memset(ev, 0, sizeof(*ev));
    return rc;
}
