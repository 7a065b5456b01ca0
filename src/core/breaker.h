/*
 * A circuit breaker for a dependency that may fail or hang (Redis, for the
 * response cache). It sits in front of each call: breaker_allow says whether
 * to try the dependency at all, and the caller reports how the call went
 * with breaker_success or breaker_failure.
 *
 *   closed ──(N failures in a row, or failures/calls >= ratio over the
 *             last W calls once there are at least M)──► open
 *   open ──(open_ns after opening, on the next breaker_allow)──► half-open
 *   half-open: at most K calls (probes) in flight at once;
 *             S successes ──► closed; any failure ──► open
 *
 * Every function that needs time takes `now_ns` (any monotonic clock, e.g.
 * time_mono_ns()), so tests drive the breaker with a fake clock. All
 * functions are thread-safe: one mutex per breaker, held for a few
 * instructions.
 *
 * Contract: every breaker_allow() that returned 1 is followed by exactly one
 * breaker_success() or breaker_failure(). A report that arrives after the
 * state changed under it (a call let through while closed that fails after
 * the breaker opened) is counted where it still makes sense: while open it
 * is ignored; while half-open it only counts if a probe is in flight.
 */
#ifndef MC_CORE_BREAKER_H
#define MC_CORE_BREAKER_H

#include <pthread.h>
#include <stdint.h>

#include "core/err.h"

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

#define BREAKER_WINDOW_MAX 256

struct breaker_opts {
    int failures;            /* N: open after this many failures in a row; 0: off */
    int window;              /* W: the ratio looks at the last W calls (<= 256); 0: off */
    int min_calls;           /* M: the ratio applies once the window holds M calls */
    double failure_ratio;    /* open when failures/calls >= this, in (0, 1] */
    int64_t open_ns;         /* time in open before the first probe */
    int half_open_max;       /* K: probes in flight at most, >= 1 */
    int half_open_successes; /* S: probe successes that close the breaker, >= 1 */
};

/* What /readyz shows. */
struct breaker_info {
    enum breaker_state state;
    uint64_t transitions;       /* state changes since breaker_init */
    uint64_t transitions_to[3]; /* of them, into each enum breaker_state */
    int64_t last_transition_ns; /* now_ns of the last change; 0 if none */
    int consecutive_failures;
    int window_calls, window_failures;
    int probes;                 /* probes in flight (half-open) */
};

/* The state; the body is public only so a breaker can be embedded. */
struct breaker {
    pthread_mutex_t mu;
    struct breaker_opts o;
    enum breaker_state state;
    int consecutive;
    unsigned char ring[BREAKER_WINDOW_MAX]; /* 1 = failure, oldest at pos */
    int ring_pos, ring_len, ring_fail;
    int probes, probe_ok;
    int64_t since_ns;                       /* when the current state began */
    uint64_t transitions;
    uint64_t transitions_to[3];             /* by the state entered */
};

/*
 * Defaults: 5 failures in a row, or half of the last 20 calls once there
 * are 10; 1 s open; 1 probe at a time; 1 success closes.
 */
void breaker_default_opts(struct breaker_opts *o);
/*
 * Initialises b closed with options o (NULL: the defaults). Returns 0, or
 * ERR_INVAL when an option is out of range (b is then unusable).
 */
int breaker_init(struct breaker *b, const struct breaker_opts *o) MC_WUR;
/* Releases the mutex of an initialised breaker. */
void breaker_destroy(struct breaker *b);

/*
 * Returns 1 when the caller may call the dependency now, 0 when it must
 * not (open, or half-open with K probes already in flight). An open breaker
 * whose wait is over turns half-open here and lets the call through as a
 * probe.
 */
int breaker_allow(struct breaker *b, int64_t now_ns);
/* Reports a call that succeeded (see the contract above). */
void breaker_success(struct breaker *b, int64_t now_ns);
/* Reports a call that failed or timed out. */
void breaker_failure(struct breaker *b, int64_t now_ns);

/* The current state (an open breaker stays open until breaker_allow). */
enum breaker_state breaker_state(struct breaker *b);
/* "closed", "open" or "half-open"; never NULL. */
const char *breaker_name(enum breaker_state s);
/* Fills *out with a consistent snapshot. */
void breaker_info(struct breaker *b, struct breaker_info *out);

#endif
