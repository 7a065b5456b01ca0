/*
 * Fuzz target: what a cloud metadata service answers the spot-preemption
 * watcher (worker/notice_parse.c): the AWS instance-action and rebalance
 * documents, the Azure Scheduled Events document, GCP's TRUE/FALSE, and
 * the two time formats. The first byte picks the parser; the rest is the
 * body. Properties: a parser returns 1, 0 or ERR_PARSE; a notice comes
 * with a kind and a source and nothing else does; the detail line is
 * NUL-terminated printable ASCII whatever the body held.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/notice.h"

typedef int (*parse_fn)(const char *, size_t, struct worker_notice_event *);

static void check_event(int rc, const struct worker_notice_event *ev, int which)
{
    const char *end = memchr(ev->detail, '\0', sizeof(ev->detail));
    if (rc != 1 && rc != 0 && rc != ERR_PARSE) {
        fprintf(stderr, "fuzz_worker_notice: parser %d returned %d\n", which, rc);
        abort();
    }
    if (!end) {
        fprintf(stderr, "fuzz_worker_notice: parser %d: detail not terminated\n", which);
        abort();
    }
    for (const char *p = ev->detail; p < end; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            fprintf(stderr, "fuzz_worker_notice: parser %d: byte 0x%02x in detail\n", which,
                    (unsigned char)*p);
            abort();
        }
    }
    int notice = ev->kind != WORKER_NOTICE_NONE;
    if ((rc == 1) != notice || (notice && ev->source == WORKER_CLOUD_NONE) ||
        (!notice && (ev->detail[0] || ev->deadline_ms))) {
        fprintf(stderr, "fuzz_worker_notice: parser %d: rc %d with kind %d source %d\n", which,
                rc, (int)ev->kind, (int)ev->source);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const parse_fn parsers[] = {worker_parse_aws_action, worker_parse_aws_rebalance,
                                       worker_parse_azure_events, worker_parse_gcp_preempted};
    if (size < 1 || size - 1 > WORKER_BODY_MAX)
        return 0;
    int which = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    if (which == 4) {
        int64_t a = 0, b = 0;
        int ra = worker_time_rfc3339(body, n, &a), rb = worker_time_rfc1123(body, n, &b);
        if ((ra != 0 && ra != ERR_PARSE) || (rb != 0 && rb != ERR_PARSE))
            abort();
        return 0;
    }
    struct worker_notice_event ev;
    memset(&ev, 0xa5, sizeof(ev));
    int rc = parsers[which](body, n, &ev);
    check_event(rc, &ev, which);
    if (which == 0 && rc == 0) {
        fprintf(stderr, "fuzz_worker_notice: instance-action body said \"no notice\"\n");
        abort();
    }
    return 0;
}
