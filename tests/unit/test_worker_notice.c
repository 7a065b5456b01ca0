/*
 * The spot-preemption notice watcher (worker/notice.h) against fake
 * metadata services: a tiny threaded HTTP/1.1 server per test, on a
 * 127.0.0.1 ephemeral port, that plays AWS IMDSv2, GCP or Azure. It checks
 * the exact method, path and required headers of every request (counting
 * violations, which every test expects to stay 0) and answers from a
 * script the test changes between polls: no notice, then a notice. Also:
 * the parsers and time formats, token refresh, auto-detection, an
 * unreachable service that comes up later, hostile bodies, SIGTERM, and
 * a printed (not asserted) per-poll latency for each cloud.
 *
 * The server answers "Connection: close", one request per connection;
 * everything is loopback and stops by itself; no timing thresholds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "worker/notice.h"

enum fake_kind { FAKE_AWS, FAKE_GCP, FAKE_AZURE };

struct fake {
    enum fake_kind kind;
    int lfd, port;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    /* The script (under mu). */
    int token_gen;              /* the valid token is "tok-<gen>" */
    int action_status, rebal_status;
    char action_body[512], rebal_body[512];
    char gcp_body[64];
    char azure_body[2048];
    const char *raw;            /* when set: the answer to the main GET */
    size_t raw_len;
    int raw_status, raw_no_length;
    const char *raw_extra;      /* header lines sent with raw, or NULL */
    const char *raw_token;      /* when set: the token PUT's body */
    /* What it saw (under mu). */
    int puts, gets, violations, unknown, unauthorized;
};

static const char *hdr_get(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p && p[2] != '\r') {
        p += 2;
        const char *e = strstr(p, "\r\n");
        if (!e)
            return NULL;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(e - v);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = e;
    }
    return NULL;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *extra, const char *body, size_t n,
                    int no_length)
{
    char head[512];
    int hl;
    if (no_length)
        hl = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nConnection: close\r\n%s\r\n",
                      status, extra);
    else
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                      status, n, extra);
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, n);
}

/* Answers one AWS request (f->mu held). */
static void serve_aws(struct fake *f, int fd, const char *m, const char *path, const char *head)
{
    char v[600], tok[32];
    snprintf(tok, sizeof(tok), "tok-%d", f->token_gen);
    if (strcmp(path, "/latest/api/token") == 0 && strcmp(m, "PUT") == 0) {
        f->puts++;
        if (!hdr_get(head, "X-aws-ec2-metadata-token-ttl-seconds", v, sizeof(v)) ||
            strcmp(v, "21600") != 0 || hdr_get(head, "X-aws-ec2-metadata-token", v, sizeof(v))) {
            f->violations++;
            respond(fd, 400, "", "", 0, 0);
            return;
        }
        const char *t = f->raw_token ? f->raw_token : tok;
        respond(fd, 200, "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n", t, strlen(t), 0);
        return;
    }
    int action = strcmp(path, "/latest/meta-data/spot/instance-action") == 0;
    int rebal = strcmp(path, "/latest/meta-data/events/recommendations/rebalance") == 0;
    if (!(action || rebal) || strcmp(m, "GET") != 0) {
        f->unknown++;
        respond(fd, 404, "", "", 0, 0);
        return;
    }
    f->gets++;
    if (!hdr_get(head, "X-aws-ec2-metadata-token", v, sizeof(v))) {
        f->violations++;
        respond(fd, 401, "", "", 0, 0);
        return;
    }
    if (strcmp(v, tok) != 0) {
        f->unauthorized++;
        respond(fd, 401, "", "", 0, 0);
        return;
    }
    if (action && f->raw) {
        respond(fd, f->raw_status, f->raw_extra ? f->raw_extra : "", f->raw, f->raw_len,
                f->raw_no_length);
        return;
    }
    const char *b = action ? f->action_body : f->rebal_body;
    respond(fd, action ? f->action_status : f->rebal_status, "", b, strlen(b), 0);
}

/* Answers one GCP or Azure request (f->mu held). */
static void serve_other(struct fake *f, int fd, const char *m, const char *path,
                        const char *head)
{
    char v[64];
    int gcp = f->kind == FAKE_GCP;
    const char *want = gcp ? "/computeMetadata/v1/instance/preempted"
                           : "/metadata/scheduledevents?api-version=2020-07-01";
    if (strcmp(m, "GET") != 0 || strcmp(path, want) != 0) {
        f->unknown++;
        respond(fd, 404, "", "", 0, 0);
        return;
    }
    f->gets++;
    const char *hn = gcp ? "Metadata-Flavor" : "Metadata";
    if (!hdr_get(head, hn, v, sizeof(v)) || strcmp(v, gcp ? "Google" : "true") != 0) {
        f->violations++;
        respond(fd, gcp ? 403 : 400, "", "", 0, 0);
        return;
    }
    const char *extra = gcp ? "Metadata-Flavor: Google\r\n" : "";
    if (f->raw && f->raw_extra)
        extra = f->raw_extra;
    if (f->raw) {
        respond(fd, f->raw_status, extra, f->raw, f->raw_len, f->raw_no_length);
        return;
    }
    const char *b = gcp ? f->gcp_body : f->azure_body;
    respond(fd, 200, extra, b, strlen(b), 0);
}

/* Reads one request from fd and answers it. */
static void serve_conn(struct fake *f, int fd)
{
    char req[16384], m[16], path[512];
    size_t n = 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    if (!strstr(req, "\r\n\r\n") || sscanf(req, "%15s %511s HTTP/1.1\r\n", m, path) != 2)
        return;
    pthread_mutex_lock(&f->mu);
    if (f->kind == FAKE_AWS)
        serve_aws(f, fd, m, path, req);
    else
        serve_other(f, fd, m, path, req);
    pthread_mutex_unlock(&f->mu);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_conn(f, fd);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    return NULL;
}

/* Starts a fake of kind on 127.0.0.1:port (0: ephemeral), scripted "no notice". */
static struct fake *fake_start(enum fake_kind kind, int port)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->kind = kind;
    pthread_mutex_init(&f->mu, NULL);
    f->action_status = f->rebal_status = 404;
    snprintf(f->gcp_body, sizeof(f->gcp_body), "FALSE");
    snprintf(f->azure_body, sizeof(f->azure_body), "{\"DocumentIncarnation\":0,\"Events\":[]}");
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* A 127.0.0.1 port where nothing listens (bound, then closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static struct worker_notice *watch(enum worker_cloud c, int port)
{
    char url[64];
    struct worker_notice *n = NULL;
    struct err_detail d;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    assert_int_equal(worker_notice_create(c, url, 2000, &n, &d), 0);
    return n;
}

static int poll_once(struct worker_notice *n, int64_t now, struct worker_notice_event *ev,
                     struct err_detail *d)
{
    return worker_notice_poll(n, now, ev, d);
}

#define LOCKED(f, stmt) do { pthread_mutex_lock(&(f)->mu); stmt; pthread_mutex_unlock(&(f)->mu); } while (0)

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000;
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms;
    const char *s = "2026-11-27T08:22:00Z";
    assert_int_equal(worker_time_rfc3339(s, strlen(s), &ms), 0);
    assert_true(ms == utc_ms(2026, 11, 27, 8, 22, 0));
    s = "2024-02-29T23:59:59.250+01:30";
    assert_int_equal(worker_time_rfc3339(s, strlen(s), &ms), 0);
    assert_true(ms == utc_ms(2024, 2, 29, 22, 29, 59) + 250);
    s = "Mon, 19 Sep 2016 18:29:47 GMT";
    assert_int_equal(worker_time_rfc1123(s, strlen(s), &ms), 0);
    assert_true(ms == utc_ms(2016, 9, 19, 18, 29, 47));
    const char *bad[] = {"2023-02-29T00:00:00Z", "2026-11-27 08:22:00Z", "2026-11-27T08:22:00",
                         "2026-13-01T00:00:00Z", "2026-11-27T24:00:00Z", "", "2026-11-27T08:22:00Zx",
                         "2026-11-27T08:22:00.Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(worker_time_rfc3339(bad[i], strlen(bad[i]), &ms), ERR_PARSE);
    const char *bad2[] = {"Mon, 19 Sept 2016 18:29:47 GMT", "Mon, 31 Sep 2016 18:29:47 GMT",
                          "Mon 19 Sep 2016 18:29:47 GMT", "Mon, 19 Sep 2016 18:29:47 PST",
                          "Mon, 19 Sep 2016 18:29:47", ""};
    for (size_t i = 0; i < sizeof(bad2) / sizeof(bad2[0]); i++)
        assert_int_equal(worker_time_rfc1123(bad2[i], strlen(bad2[i]), &ms), ERR_PARSE);
}

static int parse_str(int (*p)(const char *, size_t, struct worker_notice_event *), const char *s,
                     struct worker_notice_event *ev)
{
    return p(s, strlen(s), ev);
}

static void test_parsers(void **state)
{
    (void)state;
    struct worker_notice_event ev;
    assert_int_equal(parse_str(worker_parse_aws_action,
                               "{\"action\": \"stop\", \"time\": \"2026-11-27T08:22:00Z\"}", &ev), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_TERMINATE);
    assert_string_equal(ev.detail, "aws spot instance-action stop at 2026-11-27T08:22:00Z");
    assert_int_equal(parse_str(worker_parse_aws_action, "{\"action\":\"terminate\"}", &ev), 1);
    assert_true(ev.deadline_ms == 0);
    assert_int_equal(parse_str(worker_parse_aws_action, "{\"action\":\"x\\u0001\\n\",\"time\":7}",
                               &ev), 1);
    assert_string_equal(ev.detail, "aws spot instance-action x?? at unknown");
    const char *garbage[] = {"", "null", "[]", "{\"action\":1}", "{\"action\":\"\"}", "{",
                             "<html>404</html>", "{\"action\":\"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_int_equal(parse_str(worker_parse_aws_action, garbage[i], &ev), ERR_PARSE);
        assert_int_equal(ev.kind, WORKER_NOTICE_NONE);
    }
    assert_int_equal(parse_str(worker_parse_aws_rebalance,
                               "{\"noticeTime\":\"2020-10-27T08:22:00Z\"}", &ev), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_REBALANCE);
    assert_int_equal(parse_str(worker_parse_aws_rebalance, "{\"noticeTime\":\"soon\"}", &ev),
                     ERR_PARSE);
    assert_int_equal(parse_str(worker_parse_gcp_preempted, "TRUE\n", &ev), 1);
    assert_int_equal(ev.source, WORKER_CLOUD_GCP);
    assert_int_equal(parse_str(worker_parse_gcp_preempted, " FALSE", &ev), 0);
    assert_int_equal(parse_str(worker_parse_gcp_preempted, "true", &ev), ERR_PARSE);
    assert_int_equal(parse_str(worker_parse_gcp_preempted, "TRUEFALSE", &ev), ERR_PARSE);
    assert_int_equal(worker_parse_gcp_preempted("TRUE\0", 5, &ev), ERR_PARSE);
    /* Azure: a Preempt wins over a Terminate; Reboot, Freeze and Completed ones do not count. */
    assert_int_equal(parse_str(worker_parse_azure_events,
        "{\"DocumentIncarnation\":3,\"Events\":[{\"EventId\":\"A\",\"EventType\":\"Reboot\","
        "\"EventStatus\":\"Scheduled\",\"NotBefore\":\"\"},{\"EventId\":\"B\",\"EventType\":"
        "\"Terminate\",\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\"},{\"EventId\":\"C\","
        "\"EventType\":\"Preempt\",\"EventStatus\":\"Scheduled\",\"Resources\":[\"vm\"],"
        "\"NotBefore\":\"Tue, 20 Sep 2016 01:02:03 GMT\"}]}", &ev), 1);
    assert_string_equal(ev.detail,
                        "azure scheduled event Preempt C not before Tue, 20 Sep 2016 01:02:03 GMT");
    assert_true(ev.deadline_ms == utc_ms(2016, 9, 20, 1, 2, 3));
    assert_int_equal(parse_str(worker_parse_azure_events,
        "{\"DocumentIncarnation\":1,\"Events\":[{\"EventType\":\"Freeze\"},{\"EventType\":"
        "\"Preempt\",\"EventStatus\":\"Completed\"},{\"EventType\":\"Redeploy\"}]}", &ev), 0);
    const char *agarbage[] = {"{\"Events\":[]}", "{\"DocumentIncarnation\":1}",
                              "{\"DocumentIncarnation\":1,\"Events\":{}}",
                              "{\"DocumentIncarnation\":1,\"Events\":[1]}", "[]", "\xff\xfe"};
    for (size_t i = 0; i < sizeof(agarbage) / sizeof(agarbage[0]); i++)
        assert_int_equal(parse_str(worker_parse_azure_events, agarbage[i], &ev), ERR_PARSE);
}

static void test_config_errors(void **state)
{
    (void)state;
    enum worker_cloud c;
    struct err_detail d;
    struct worker_notice *n = NULL;
    assert_int_equal(worker_cloud_parse("azure", &c, &d), 0);
    assert_int_equal(c, WORKER_CLOUD_AZURE);
    assert_int_equal(worker_cloud_parse("AWS", &c, &d), ERR_INVAL);
    assert_string_equal(d.field, "cloud");
    assert_int_equal(worker_cloud_parse(NULL, &c, &d), ERR_INVAL);
    const char *bad[] = {"https://169.254.169.254", "file:///etc/passwd", "ftp://x", "http://",
                         "http:///x", "http://a b", "http://x/?q", "http://u@x",
                         "gopher://127.0.0.1:70/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(worker_notice_create(WORKER_CLOUD_AWS, bad[i], 1000, &n, &d), ERR_INVAL);
        assert_string_equal(d.field, "metadata_url");
    }
    assert_int_equal(worker_notice_create(WORKER_CLOUD_AWS, NULL, 0, &n, &d), ERR_RANGE);
    assert_int_equal(worker_notice_create((enum worker_cloud)9, NULL, 100, &n, &d), ERR_INVAL);
    /* none: never a notice, and nothing is asked. */
    assert_int_equal(worker_notice_create(WORKER_CLOUD_NONE, NULL, 100, &n, &d), 0);
    struct worker_notice_event ev;
    assert_int_equal(worker_notice_poll(n, 0, &ev, &d), 0);
    assert_int_equal(ev.kind, WORKER_NOTICE_NONE);
    worker_notice_destroy(n);
}

static void test_aws(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_AWS, 0);
    struct worker_notice *n = watch(WORKER_CLOUD_AWS, f->port);
    struct worker_notice_event ev;
    struct err_detail d;
    assert_int_equal(poll_once(n, 1000, &ev, &d), 0);
    assert_int_equal(ev.kind, WORKER_NOTICE_NONE);
    LOCKED(f, f->rebal_status = 200;
           snprintf(f->rebal_body, sizeof(f->rebal_body), "{\"noticeTime\":\"2026-11-27T08:20:00Z\"}"));
    assert_int_equal(poll_once(n, 2000, &ev, &d), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_REBALANCE);
    assert_int_equal(ev.source, WORKER_CLOUD_AWS);
    assert_string_equal(ev.detail, "aws rebalance recommendation at 2026-11-27T08:20:00Z");
    LOCKED(f, f->action_status = 200;
           snprintf(f->action_body, sizeof(f->action_body),
                    "{\"action\":\"terminate\",\"time\":\"2026-11-27T08:22:00Z\"}"));
    assert_int_equal(poll_once(n, 3000, &ev, &d), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_TERMINATE);
    assert_string_equal(ev.detail, "aws spot instance-action terminate at 2026-11-27T08:22:00Z");
    assert_true(ev.deadline_ms == utc_ms(2026, 11, 27, 8, 22, 0));
    /* Still posted: reported again. */
    assert_int_equal(poll_once(n, 4000, &ev, &d), 1);
    LOCKED(f, assert_int_equal(f->puts, 1); assert_int_equal(f->violations, 0);
           assert_int_equal(f->unknown, 0));
    worker_notice_destroy(n);
    fake_stop(f);
}

static void test_aws_token_refresh(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_AWS, 0);
    struct worker_notice *n = watch(WORKER_CLOUD_AWS, f->port);
    struct worker_notice_event ev;
    struct err_detail d;
    assert_int_equal(poll_once(n, 0, &ev, &d), 0);
    LOCKED(f, assert_int_equal(f->puts, 1));
    /* The service forgets the token: 401, a fresh PUT, the GET again. */
    LOCKED(f, f->token_gen++);
    assert_int_equal(poll_once(n, 10, &ev, &d), 0);
    LOCKED(f, assert_int_equal(f->puts, 2); assert_int_equal(f->unauthorized, 1));
    /* Before its TTL runs out the token is replaced unasked. */
    assert_int_equal(poll_once(n, 10 + (WORKER_AWS_TOKEN_TTL_S - 60) * 1000LL, &ev, &d), 0);
    LOCKED(f, assert_int_equal(f->puts, 3); assert_int_equal(f->unauthorized, 1));
    /* A token that is not printable ASCII is refused. */
    LOCKED(f, f->raw_token = "bad\x01token"; f->token_gen++);
    assert_int_equal(poll_once(n, 20 + (WORKER_AWS_TOKEN_TTL_S - 60) * 1000LL, &ev, &d), ERR_PARSE);
    LOCKED(f, f->raw_token = NULL);
    assert_int_equal(poll_once(n, 30 + (WORKER_AWS_TOKEN_TTL_S - 60) * 1000LL, &ev, &d), 0);
    LOCKED(f, assert_int_equal(f->violations, 0));
    worker_notice_destroy(n);
    fake_stop(f);
}

static void test_gcp(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_GCP, 0);
    struct worker_notice *n = watch(WORKER_CLOUD_GCP, f->port);
    struct worker_notice_event ev;
    struct err_detail d;
    assert_int_equal(poll_once(n, 0, &ev, &d), 0);
    LOCKED(f, snprintf(f->gcp_body, sizeof(f->gcp_body), "TRUE"));
    assert_int_equal(poll_once(n, 0, &ev, &d), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_TERMINATE);
    assert_int_equal(ev.source, WORKER_CLOUD_GCP);
    assert_string_equal(ev.detail, "gcp instance preempted");
    assert_true(ev.deadline_ms == 0);
    LOCKED(f, assert_int_equal(f->gets, 2); assert_int_equal(f->violations, 0));
    worker_notice_destroy(n);
    fake_stop(f);
}

static void test_azure(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_AZURE, 0);
    struct worker_notice *n = watch(WORKER_CLOUD_AZURE, f->port);
    struct worker_notice_event ev;
    struct err_detail d;
    assert_int_equal(poll_once(n, 0, &ev, &d), 0);
    LOCKED(f, snprintf(f->azure_body, sizeof(f->azure_body),
        "{\"DocumentIncarnation\":2,\"Events\":[{\"EventId\":\"E1\",\"EventType\":\"Reboot\","
        "\"ResourceType\":\"VirtualMachine\",\"Resources\":[\"vm\"],\"EventStatus\":\"Scheduled\","
        "\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\"}]}"));
    assert_int_equal(poll_once(n, 0, &ev, &d), 0);
    LOCKED(f, snprintf(f->azure_body, sizeof(f->azure_body),
        "{\"DocumentIncarnation\":3,\"Events\":[{\"EventId\":\"E2\",\"EventType\":\"Preempt\","
        "\"ResourceType\":\"VirtualMachine\",\"Resources\":[\"vm\"],\"EventStatus\":\"Scheduled\","
        "\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\"}]}"));
    assert_int_equal(poll_once(n, 0, &ev, &d), 1);
    assert_int_equal(ev.kind, WORKER_NOTICE_TERMINATE);
    assert_int_equal(ev.source, WORKER_CLOUD_AZURE);
    assert_string_equal(ev.detail,
                        "azure scheduled event Preempt E2 not before Mon, 19 Sep 2016 18:29:47 GMT");
    assert_true(ev.deadline_ms == utc_ms(2016, 9, 19, 18, 29, 47));
    LOCKED(f, assert_int_equal(f->violations, 0));
    worker_notice_destroy(n);
    fake_stop(f);
}

static void test_auto(void **state)
{
    (void)state;
    static const enum worker_cloud want[] = {WORKER_CLOUD_AWS, WORKER_CLOUD_GCP,
                                             WORKER_CLOUD_AZURE};
    struct worker_notice_event ev;
    struct err_detail d;
    for (int k = FAKE_AWS; k <= FAKE_AZURE; k++) {
        struct fake *f = fake_start((enum fake_kind)k, 0);
        struct worker_notice *n = watch(WORKER_CLOUD_AUTO, f->port);
        assert_int_equal(worker_notice_cloud(n), WORKER_CLOUD_AUTO);
        assert_int_equal(poll_once(n, 0, &ev, &d), 0);
        assert_int_equal(worker_notice_cloud(n), want[k]);
        assert_int_equal(poll_once(n, 0, &ev, &d), 0);
        LOCKED(f, assert_int_equal(f->violations, 0);
               /* Probes of the clouds before it only. */
               assert_int_equal(f->unknown, k));
        worker_notice_destroy(n);
        fake_stop(f);
    }
    /* Nobody answers: an error now, and the probe again next time. */
    int port = free_port();
    struct worker_notice *n = watch(WORKER_CLOUD_AUTO, port);
    assert_int_equal(poll_once(n, 0, &ev, &d), ERR_UNAVAIL);
    assert_string_equal(d.field, "cloud");
    struct fake *f = fake_start(FAKE_GCP, port);
    assert_int_equal(poll_once(n, 0, &ev, &d), 0);
    assert_int_equal(worker_notice_cloud(n), WORKER_CLOUD_GCP);
    worker_notice_destroy(n);
    fake_stop(f);
}

static void test_unreachable_then_up(void **state)
{
    (void)state;
    struct worker_notice_event ev;
    struct err_detail d;
    for (int k = FAKE_AWS; k <= FAKE_AZURE; k++) {
        static const enum worker_cloud c[] = {WORKER_CLOUD_AWS, WORKER_CLOUD_GCP,
                                              WORKER_CLOUD_AZURE};
        int port = free_port();
        struct worker_notice *n = watch(c[k], port);
        int64_t t0 = time_mono_ns();
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_UNAVAIL);
        print_message("      %s unreachable: ERR_UNAVAIL in %lld us (%s)\n",
                      worker_cloud_name(c[k]), (long long)((time_mono_ns() - t0) / 1000), d.msg);
        struct fake *f = fake_start((enum fake_kind)k, port);
        assert_int_equal(poll_once(n, 0, &ev, &d), 0);
        LOCKED(f, assert_int_equal(f->violations, 0));
        worker_notice_destroy(n);
        fake_stop(f);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    struct worker_notice_event ev;
    struct err_detail d;
    size_t big = WORKER_BODY_MAX * 2;
    char *junk = malloc(big);
    assert_non_null(junk);
    for (size_t i = 0; i < big; i++)
        junk[i] = (char)(i * 131 + 7);
    for (int k = FAKE_AWS; k <= FAKE_AZURE; k++) {
        static const enum worker_cloud c[] = {WORKER_CLOUD_AWS, WORKER_CLOUD_GCP,
                                              WORKER_CLOUD_AZURE};
        struct fake *f = fake_start((enum fake_kind)k, 0);
        struct worker_notice *n = watch(c[k], f->port);
        /* Over the cap, announced by Content-Length and not. */
        LOCKED(f, f->raw = junk; f->raw_len = big; f->raw_status = 200);
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_TOOBIG);
        assert_non_null(strstr(d.msg, "response body over 65536 bytes"));
        LOCKED(f, f->raw_no_length = 1);
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_TOOBIG);
        assert_non_null(strstr(d.msg, "response body over 65536 bytes"));
        assert_int_equal(ev.kind, WORKER_NOTICE_NONE);
        /* Garbage under the cap. */
        LOCKED(f, f->raw_len = 3000; f->raw_no_length = 0);
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_PARSE);
        LOCKED(f, f->raw = "{\"action\":"; f->raw_len = strlen(f->raw));
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_PARSE);
        /* Statuses: a redirect is not followed, 5xx is "unavailable". */
        LOCKED(f, f->raw = ""; f->raw_len = 0; f->raw_status = 302;
               f->raw_extra = "Location: http://127.0.0.1:1/latest/api/token\r\n");
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_IO);
        assert_non_null(strstr(d.msg, "unexpected HTTP status 302"));
        LOCKED(f, f->raw_status = 503; f->raw_extra = NULL);
        assert_int_equal(poll_once(n, 0, &ev, &d), ERR_UNAVAIL);
        /* And the next honest answer is read. */
        LOCKED(f, f->raw = NULL);
        assert_int_equal(poll_once(n, 0, &ev, &d), 0);
        LOCKED(f, assert_int_equal(f->violations, 0));
        worker_notice_destroy(n);
        fake_stop(f);
    }
    free(junk);
}

static struct worker_notice *g_sig_notice;

static void on_sigterm(int sig)
{
    (void)sig;
    worker_notice_signal(g_sig_notice);
}

static void test_sigterm(void **state)
{
    (void)state;
    struct worker_notice_event ev;
    struct err_detail d;
    /* No service at all: SIGTERM is reported without asking one. */
    g_sig_notice = watch(WORKER_CLOUD_AWS, free_port());
    assert_int_equal(poll_once(g_sig_notice, 0, &ev, &d), ERR_UNAVAIL);
    struct sigaction sa = {.sa_handler = on_sigterm}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGTERM, &sa, &old), 0);
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(sigaction(SIGTERM, &old, NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(poll_once(g_sig_notice, 0, &ev, &d), 1);
        assert_int_equal(ev.kind, WORKER_NOTICE_SIGTERM);
        assert_int_equal(ev.source, WORKER_CLOUD_AWS);
        assert_string_equal(ev.detail, "SIGTERM received");
    }
    worker_notice_destroy(g_sig_notice);
    g_sig_notice = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Per-poll latency of each cloud against its fake (printed, not asserted). */
static void test_latency(void **state)
{
    (void)state;
    enum { N = 200 };
    static const enum worker_cloud c[] = {WORKER_CLOUD_AWS, WORKER_CLOUD_GCP, WORKER_CLOUD_AZURE};
    int64_t us[N];
    struct worker_notice_event ev;
    struct err_detail d;
    for (int k = FAKE_AWS; k <= FAKE_AZURE; k++) {
        struct fake *f = fake_start((enum fake_kind)k, 0);
        struct worker_notice *n = watch(c[k], f->port);
        assert_int_equal(poll_once(n, 0, &ev, &d), 0); /* the token, for AWS */
        for (int i = 0; i < N; i++) {
            int64_t t0 = time_mono_ns();
            assert_true(poll_once(n, 0, &ev, &d) >= 0);
            us[i] = (time_mono_ns() - t0) / 1000;
        }
        qsort(us, N, sizeof(us[0]), cmp_i64);
        print_message("      %-5s poll (no notice): median %lld us, p90 %lld us, max %lld us"
                      " over %d polls\n", worker_cloud_name(c[k]), (long long)us[N / 2],
                      (long long)us[N * 9 / 10], (long long)us[N - 1], N);
        worker_notice_destroy(n);
        fake_stop(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_aws),
        cmocka_unit_test(test_aws_token_refresh),
        cmocka_unit_test(test_gcp),
        cmocka_unit_test(test_azure),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_unreachable_then_up),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
