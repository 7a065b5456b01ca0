/*
 * Parsers of what the cloud metadata services answer: the AWS spot
 * instance-action and rebalance documents, the Azure Scheduled Events
 * document, GCP's TRUE/FALSE, and the two time formats they use. Kept
 * apart from the HTTP so tests/fuzz/fuzz_worker_notice.c can drive them.
 *
 * Every body is hostile: JSON goes through jansson (depth-limited, UTF-8
 * checked, NUL refused), times through strict hand-written parsers, and
 * any text copied into ev->detail is reduced to printable ASCII and
 * truncated, so a detail line is always safe to log.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "worker/notice.h"

#define FIELD_MAX 64 /* bytes of one outside string kept in a detail */

/* Copies up to FIELD_MAX bytes of s into out (>= FIELD_MAX + 1), each byte
 * outside printable ASCII as '?'. */
static void clean_field(char *out, const char *s, size_t n)
{
    size_t i;
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[i] = '\0';
}

/* Empties ev: no notice, no detail. */
static void ev_clear(struct worker_notice_event *ev)
{
    memset(ev, 0, sizeof(*ev));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly k digits at s[*i] into *v; 0, or -1. */
static int digits(const char *s, size_t n, size_t *i, int k, int *v)
{
    int x = 0;
    if (*i + (size_t)k > n)
        return -1;
    for (int j = 0; j < k; j++) {
        char c = s[*i + (size_t)j];
        if (c < '0' || c > '9')
            return -1;
        x = x * 10 + (c - '0');
    }
    *i += (size_t)k;
    *v = x;
    return 0;
}

/* 1 when s[*i] is c (and then steps over it). */
static int lit(const char *s, size_t n, size_t *i, char c)
{
    if (*i < n && s[*i] == c) {
        (*i)++;
        return 1;
    }
    return 0;
}

/* Checks a calendar date and time of day, and folds them into ms. */
static int to_ms(int y, int mo, int d, int h, int mi, int sec, int64_t *ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return ERR_PARSE;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return ERR_PARSE;
    if (sec == 60) /* a leap second: the next one, for a deadline */
        sec = 59;
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000;
    return 0;
}

/*
 * RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 't'
 * and 'z' as well. Fractions are truncated to ms.
 */
int worker_time_rfc3339(const char *s, size_t n, int64_t *ms)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
    if (!s || digits(s, n, &i, 4, &y) || !lit(s, n, &i, '-') || digits(s, n, &i, 2, &mo) ||
        !lit(s, n, &i, '-') || digits(s, n, &i, 2, &d))
        return ERR_PARSE;
    if (!lit(s, n, &i, 'T') && !lit(s, n, &i, 't'))
        return ERR_PARSE;
    if (digits(s, n, &i, 2, &h) || !lit(s, n, &i, ':') || digits(s, n, &i, 2, &mi) ||
        !lit(s, n, &i, ':') || digits(s, n, &i, 2, &sec))
        return ERR_PARSE;
    if (lit(s, n, &i, '.')) {
        size_t start = i;
        for (int scale = 100; i < n && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
            frac += (s[i] - '0') * scale;
        if (i == start)
            return ERR_PARSE;
    }
    if (lit(s, n, &i, 'Z') || lit(s, n, &i, 'z'))
        sign = 0;
    else if (lit(s, n, &i, '+'))
        sign = 1;
    else if (lit(s, n, &i, '-'))
        sign = -1;
    else
        return ERR_PARSE;
    if (sign && (digits(s, n, &i, 2, &oh) || !lit(s, n, &i, ':') ||
                 digits(s, n, &i, 2, &om) || oh > 23 || om > 59))
        return ERR_PARSE;
    if (i != n)
        return ERR_PARSE;
    int64_t t;
    if (to_ms(y, mo, d, h, mi, sec, &t))
        return ERR_PARSE;
    *ms = t + frac - (int64_t)sign * (oh * 60 + om) * 60000;
    return 0;
}

/* RFC 1123 date as HTTP sends it: "Mon, 19 Sep 2016 18:29:47 GMT" (also "UTC"). */
int worker_time_rfc1123(const char *s, size_t n, int64_t *ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    size_t i = 0;
    int d, y, h, mi, sec, mo = 0;
    if (!s || n < 5 || s[3] != ',' || s[4] != ' ')
        return ERR_PARSE;
    i = 5;
    if (digits(s, n, &i, 2, &d) || !lit(s, n, &i, ' ') || i + 4 > n)
        return ERR_PARSE;
    for (int k = 0; k < 12; k++)
        if (memcmp(s + i, months + 3 * k, 3) == 0)
            mo = k + 1;
    i += 3;
    if (!mo || !lit(s, n, &i, ' ') || digits(s, n, &i, 4, &y) || !lit(s, n, &i, ' ') ||
        digits(s, n, &i, 2, &h) || !lit(s, n, &i, ':') || digits(s, n, &i, 2, &mi) ||
        !lit(s, n, &i, ':') || digits(s, n, &i, 2, &sec) || !lit(s, n, &i, ' '))
        return ERR_PARSE;
    if (n - i != 3 || (memcmp(s + i, "GMT", 3) != 0 && memcmp(s + i, "UTC", 3) != 0))
        return ERR_PARSE;
    return to_ms(y, mo, d, h, mi, sec, ms);
}

/* The body as a JSON object, or NULL when it is not one. */
static json_t *load_object(const char *body, size_t n)
{
    if (!body)
        return NULL;
    json_t *j = json_loadb(body, n, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* The string member key of o, or NULL (absent or not a string). */
static const char *str_member(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/*
 * {"action":"terminate","time":"2026-11-27T08:22:00Z"}. The document only
 * exists while an interruption is coming, so any non-empty action counts;
 * a time that does not parse leaves the deadline unknown.
 */
int worker_parse_aws_action(const char *body, size_t n, struct worker_notice_event *ev)
{
    char action[FIELD_MAX + 1], when[FIELD_MAX + 1];
    size_t al = 0, tl = 0;
    ev_clear(ev);
    json_t *j = load_object(body, n);
    const char *a = j ? str_member(j, "action", &al) : NULL;
    if (!a || al == 0) {
        json_decref(j);
        return ERR_PARSE;
    }
    const char *t = str_member(j, "time", &tl);
    clean_field(action, a, al);
    clean_field(when, t ? t : "unknown", t ? tl : 7);
    if (t && worker_time_rfc3339(t, tl, &ev->deadline_ms))
        ev->deadline_ms = 0;
    ev->kind = WORKER_NOTICE_TERMINATE;
    ev->source = WORKER_CLOUD_AWS;
    snprintf(ev->detail, sizeof(ev->detail), "aws spot instance-action %s at %s", action, when);
    json_decref(j);
    return 1;
}

/* {"noticeTime":"2020-10-27T08:22:00Z"}: a recommendation, no deadline. */
int worker_parse_aws_rebalance(const char *body, size_t n, struct worker_notice_event *ev)
{
    char when[FIELD_MAX + 1];
    size_t tl = 0;
    int64_t ignored;
    ev_clear(ev);
    json_t *j = load_object(body, n);
    const char *t = j ? str_member(j, "noticeTime", &tl) : NULL;
    if (!t || worker_time_rfc3339(t, tl, &ignored)) {
        json_decref(j);
        return ERR_PARSE;
    }
    clean_field(when, t, tl);
    ev->kind = WORKER_NOTICE_REBALANCE;
    ev->source = WORKER_CLOUD_AWS;
    snprintf(ev->detail, sizeof(ev->detail), "aws rebalance recommendation at %s", when);
    json_decref(j);
    return 1;
}

/* 2 for a Preempt event, 1 for Terminate, 0 for one to ignore. */
static int azure_rank(json_t *e)
{
    size_t tl = 0, sl = 0;
    const char *type = str_member(e, "EventType", &tl);
    const char *status = str_member(e, "EventStatus", &sl);
    if (!type)
        return 0;
    if (status && ((sl == 9 && memcmp(status, "Completed", 9) == 0) ||
                   (sl == 8 && memcmp(status, "Canceled", 8) == 0)))
        return 0;
    if (tl == 7 && memcmp(type, "Preempt", 7) == 0)
        return 2;
    if (tl == 9 && memcmp(type, "Terminate", 9) == 0)
        return 1;
    return 0;
}

/* Fills ev from the chosen Azure event e. */
static void azure_fill(json_t *e, struct worker_notice_event *ev)
{
    char type[FIELD_MAX + 1], id[FIELD_MAX + 1], nb[FIELD_MAX + 1];
    size_t tl = 0, il = 0, nl = 0;
    const char *t = str_member(e, "EventType", &tl);
    const char *i = str_member(e, "EventId", &il);
    const char *b = str_member(e, "NotBefore", &nl);
    clean_field(type, t, tl);
    clean_field(id, i ? i : "", i ? il : 0);
    clean_field(nb, b && nl ? b : "unknown", b && nl ? nl : 7);
    ev->kind = WORKER_NOTICE_TERMINATE;
    ev->source = WORKER_CLOUD_AZURE;
    if (!b || worker_time_rfc1123(b, nl, &ev->deadline_ms))
        ev->deadline_ms = 0;
    snprintf(ev->detail, sizeof(ev->detail), "azure scheduled event %s %s not before %s", type,
             id, nb);
}

/*
 * {"DocumentIncarnation":N,"Events":[{"EventId":..,"EventType":"Preempt",
 * "EventStatus":"Scheduled","NotBefore":"Mon, 19 Sep 2016 18:29:47 GMT",
 * ...}]}. A Preempt event wins over a Terminate one; Reboot, Redeploy,
 * Freeze and unknown types are ignored. The Resources list is not
 * checked against this VM's name: on a shared availability set a notice
 * may be another VM's (we would rather leave early than be killed).
 */
int worker_parse_azure_events(const char *body, size_t n, struct worker_notice_event *ev)
{
    ev_clear(ev);
    json_t *j = load_object(body, n);
    json_t *events = j ? json_object_get(j, "Events") : NULL;
    if (!j || !json_is_integer(json_object_get(j, "DocumentIncarnation")) ||
        !json_is_array(events)) {
        json_decref(j);
        return ERR_PARSE;
    }
    json_t *best = NULL;
    int best_rank = 0;
    size_t k;
    json_t *e;
    json_array_foreach(events, k, e) {
        if (!json_is_object(e)) {
            json_decref(j);
            return ERR_PARSE;
        }
        int r = azure_rank(e);
        if (r > best_rank) {
            best = e;
            best_rank = r;
        }
    }
    if (best)
        azure_fill(best, ev);
    json_decref(j);
    return best ? 1 : 0;
}

/* "TRUE" or "FALSE", with surrounding whitespace allowed. */
int worker_parse_gcp_preempted(const char *body, size_t n, struct worker_notice_event *ev)
{
    ev_clear(ev);
    if (!body)
        return ERR_PARSE;
    while (n && (body[0] == ' ' || body[0] == '\t' || body[0] == '\r' || body[0] == '\n')) {
        body++;
        n--;
    }
    while (n && (body[n - 1] == ' ' || body[n - 1] == '\t' || body[n - 1] == '\r' ||
                 body[n - 1] == '\n'))
        n--;
    if (n == 5 && memcmp(body, "FALSE", 5) == 0)
        return 0;
    if (n != 4 || memcmp(body, "TRUE", 4) != 0)
        return ERR_PARSE;
    ev->kind = WORKER_NOTICE_TERMINATE;
    ev->source = WORKER_CLOUD_GCP;
    snprintf(ev->detail, sizeof(ev->detail), "gcp instance preempted");
    return 1;
}
