/*
 * Clock reads and the two time formats of the API: RFC 3339 timestamps and
 * calendar dates. Date arithmetic is done here (days from civil) rather than
 * with gmtime_r so that formatting never touches the C library's locale or
 * time zone state.
 */
#include "core/timeutil.h"

#include <stdio.h>
#include <time.h>

#include "core/err.h"

int64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int64_t time_mono_from_realtime(const struct timespec *rt)
{
    struct timespec m1, r, m2;
    int64_t off = 0, best = INT64_MAX;
    for (int i = 0; i < 4; i++) {
        clock_gettime(CLOCK_MONOTONIC, &m1);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &m2);
        int64_t gap = ts_ns(&m2) - ts_ns(&m1);
        if (gap < best) { /* the tightest bracket wins */
            best = gap;
            off = ts_ns(&r) - (ts_ns(&m1) + gap / 2);
        }
        if (gap < 2000)
            break;
    }
    return ts_ns(rt) - off;
}

int64_t time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Howard Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

int time_fmt_rfc3339(char *out, size_t outlen, int64_t ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int msec = (int)(ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || outlen < 25)
        return -1;
    /* Written digit by digit: this runs twice per row on every list page. */
    int hh = (int)(rem / 3600), mm = (int)(rem / 60 % 60), ss = (int)(rem % 60);
    char *o = out;
    *o++ = (char)('0' + y / 1000); *o++ = (char)('0' + y / 100 % 10);
    *o++ = (char)('0' + y / 10 % 10); *o++ = (char)('0' + y % 10); *o++ = '-';
    *o++ = (char)('0' + m / 10); *o++ = (char)('0' + m % 10); *o++ = '-';
    *o++ = (char)('0' + d / 10); *o++ = (char)('0' + d % 10); *o++ = 'T';
    *o++ = (char)('0' + hh / 10); *o++ = (char)('0' + hh % 10); *o++ = ':';
    *o++ = (char)('0' + mm / 10); *o++ = (char)('0' + mm % 10); *o++ = ':';
    *o++ = (char)('0' + ss / 10); *o++ = (char)('0' + ss % 10); *o++ = '.';
    *o++ = (char)('0' + msec / 100); *o++ = (char)('0' + msec / 10 % 10);
    *o++ = (char)('0' + msec % 10); *o++ = 'Z'; *o = '\0';
    return 24;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int time_parse_date(const char *s, size_t n)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 10 || s[4] != '-' || s[7] != '-')
        return ERR_PARSE;
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return ERR_PARSE;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return ERR_PARSE;
    return 0;
}
