/*
 * Clocks and time formats. Code with TTLs, leases or timeouts takes `now`
 * as a parameter instead of calling these, so tests control time.
 */
#ifndef MC_CORE_TIMEUTIL_H
#define MC_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t time_mono_ns(void);
/* Wall clock (CLOCK_REALTIME) in milliseconds since the Unix epoch. */
int64_t time_wall_ms(void);
/*
 * CLOCK_MONOTONIC nanoseconds of a CLOCK_REALTIME time (a kernel socket
 * timestamp). The clocks' offset is read with the real-time clock between
 * two monotonic reads, again when a preemption came between them, so the
 * conversion does not carry the preemption as an error.
 */
int64_t time_mono_from_realtime(const struct timespec *rt);
/*
 * Writes ms (since the epoch, UTC) as "2026-11-26T23:51:42.123Z" into out
 * (>= 25 bytes). Returns the length, or -1 when out is too small or the
 * year is outside 0..9999.
 */
int time_fmt_rfc3339(char *out, size_t outlen, int64_t ms);
/* Parses "YYYY-MM-DD" strictly (a real calendar date); 0 or ERR_PARSE. */
int time_parse_date(const char *s, size_t n);

#endif
