/*
 * Unit tests of src/cache/breaker.c with a fake clock: every transition
 * (closed -> open by consecutive failures and by the failure ratio, open ->
 * half-open after the wait, half-open -> closed and -> open), the sliding
 * window, the probe limit, late reports, and use from 4 threads at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/breaker.h"

#define SEC 1000000000LL

/* Consecutive failures only, 1 s open, K probes, S successes to close. */
static void init_consec(struct breaker *b, int n, int k, int s)
{
    struct breaker_opts o = {
        .failures = n, .window = 0, .open_ns = SEC, .half_open_max = k,
        .half_open_successes = s,
    };
    assert_int_equal(breaker_init(b, &o), 0);
}

static void test_defaults_and_bad_options(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_opts o;
    assert_int_equal(breaker_init(&b, NULL), 0);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    assert_int_equal(breaker_allow(&b, 0), 1);
    breaker_destroy(&b);

    breaker_default_opts(&o);
    o.half_open_max = 0;
    assert_int_equal(breaker_init(&b, &o), ERR_INVAL);
    breaker_default_opts(&o);
    o.window = BREAKER_WINDOW_MAX + 1;
    assert_int_equal(breaker_init(&b, &o), ERR_INVAL);
    breaker_default_opts(&o);
    o.min_calls = o.window + 1;
    assert_int_equal(breaker_init(&b, &o), ERR_INVAL);
    breaker_default_opts(&o);
    o.failure_ratio = 0;
    assert_int_equal(breaker_init(&b, &o), ERR_INVAL);
    breaker_default_opts(&o);
    o.failures = 0;
    o.window = 0; /* nothing could ever open it */
    assert_int_equal(breaker_init(&b, &o), ERR_INVAL);

    assert_string_equal(breaker_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_name(BREAKER_HALF_OPEN), "half-open");
}

static void test_consecutive_failures_open(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    init_consec(&b, 3, 1, 1);
    /* Two failures, then a success: the run is broken. */
    breaker_failure(&b, 1);
    breaker_failure(&b, 2);
    breaker_success(&b, 3);
    breaker_failure(&b, 4);
    breaker_failure(&b, 5);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_info(&b, &in);
    assert_int_equal(in.consecutive_failures, 2);
    assert_int_equal(in.transitions, 0);
    assert_int_equal(in.last_transition_ns, 0);
    breaker_failure(&b, 6);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    breaker_info(&b, &in);
    assert_int_equal(in.transitions, 1);
    assert_int_equal(in.last_transition_ns, 6);
    assert_int_equal(in.consecutive_failures, 0);
    breaker_destroy(&b);
}

static void test_open_waits_then_half_open(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    init_consec(&b, 1, 1, 1);
    breaker_failure(&b, 100);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    assert_int_equal(breaker_allow(&b, 100), 0);
    assert_int_equal(breaker_allow(&b, 100 + SEC - 1), 0);
    /* Reports while open (late calls) change nothing. */
    breaker_success(&b, 200);
    breaker_failure(&b, 300);
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_OPEN);
    assert_int_equal(in.transitions, 1);
    assert_int_equal(in.last_transition_ns, 100);
    /* The wait is over: the next call is the probe. */
    assert_int_equal(breaker_allow(&b, 100 + SEC), 1);
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_HALF_OPEN);
    assert_int_equal(in.transitions, 2);
    assert_int_equal(in.last_transition_ns, 100 + SEC);
    assert_int_equal(in.probes, 1);
    breaker_destroy(&b);
}

static void test_half_open_success_closes(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    init_consec(&b, 1, 1, 1);
    breaker_failure(&b, 0);
    assert_int_equal(breaker_allow(&b, SEC), 1);
    assert_int_equal(breaker_allow(&b, SEC), 0); /* K = 1 */
    breaker_success(&b, SEC + 5);
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_CLOSED);
    assert_int_equal(in.transitions, 3);
    assert_int_equal(in.last_transition_ns, SEC + 5);
    assert_int_equal(in.probes, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(breaker_allow(&b, SEC + 6), 1);
    breaker_destroy(&b);
}

static void test_half_open_failure_reopens(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    init_consec(&b, 2, 1, 1);
    breaker_failure(&b, 0);
    breaker_failure(&b, 0);
    assert_int_equal(breaker_allow(&b, SEC), 1);
    breaker_failure(&b, SEC + 7); /* one probe failure is enough */
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_OPEN);
    assert_int_equal(in.transitions, 3);
    assert_int_equal(in.last_transition_ns, SEC + 7);
    /* The wait restarts from the reopening. */
    assert_int_equal(breaker_allow(&b, 2 * SEC), 0);
    assert_int_equal(breaker_allow(&b, 2 * SEC + 7), 1);
    breaker_destroy(&b);
}

static void test_probe_limit_and_successes(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    init_consec(&b, 1, 2, 3); /* K = 2 probes at once, S = 3 successes */
    breaker_failure(&b, 0);
    assert_int_equal(breaker_allow(&b, SEC), 1);
    assert_int_equal(breaker_allow(&b, SEC), 1);
    assert_int_equal(breaker_allow(&b, SEC), 0);
    assert_int_equal(breaker_allow(&b, SEC + 1), 0);
    breaker_success(&b, SEC + 2);  /* 1 of 3; a slot frees */
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_HALF_OPEN);
    assert_int_equal(in.probes, 1);
    assert_int_equal(breaker_allow(&b, SEC + 3), 1);
    assert_int_equal(breaker_allow(&b, SEC + 3), 0);
    breaker_success(&b, SEC + 4);  /* 2 of 3 */
    assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
    breaker_success(&b, SEC + 5);  /* 3 of 3 */
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    /* A report with no probe in flight (a late one) does not count. */
    breaker_failure(&b, SEC + 6);
    assert_int_equal(breaker_allow(&b, 3 * SEC), 1);
    breaker_destroy(&b);

    init_consec(&b, 1, 1, 1);
    breaker_failure(&b, 0);
    assert_int_equal(breaker_allow(&b, SEC), 1);
    breaker_success(&b, SEC); /* closes */
    breaker_failure(&b, 2 * SEC); /* opens again */
    assert_int_equal(breaker_allow(&b, 3 * SEC), 1); /* half-open, 1 probe */
    breaker_success(&b, 3 * SEC);
    breaker_success(&b, 3 * SEC); /* late: no probe in flight, ignored */
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_CLOSED);
    assert_int_equal(in.probes, 0);
    breaker_destroy(&b);
}

static void test_ratio_needs_min_calls(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_opts o = {
        .failures = 0, .window = 10, .min_calls = 5, .failure_ratio = 0.5,
        .open_ns = SEC, .half_open_max = 1, .half_open_successes = 1,
    };
    assert_int_equal(breaker_init(&b, &o), 0);
    /* 3 of 4 failed, but fewer than min_calls: stays closed. */
    breaker_failure(&b, 1);
    breaker_success(&b, 2);
    breaker_failure(&b, 3);
    breaker_failure(&b, 4);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    /* The 5th call fails: 4/5 >= 0.5. */
    breaker_failure(&b, 5);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    breaker_destroy(&b);

    /* Below the ratio: 2 failures in 5 calls never open it. */
    assert_int_equal(breaker_init(&b, &o), 0);
    for (int round = 0; round < 20; round++) {
        breaker_success(&b, round);
        breaker_failure(&b, round);
        breaker_success(&b, round);
        breaker_success(&b, round);
        breaker_failure(&b, round);
    }
    struct breaker_info in;
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_CLOSED);
    assert_int_equal(in.window_calls, 10);
    assert_int_equal(in.window_failures, 4);
    breaker_destroy(&b);
}

static void test_ratio_window_slides(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_info in;
    struct breaker_opts o = {
        .failures = 0, .window = 4, .min_calls = 4, .failure_ratio = 0.75,
        .open_ns = SEC, .half_open_max = 1, .half_open_successes = 1,
    };
    assert_int_equal(breaker_init(&b, &o), 0);
    breaker_failure(&b, 0);
    breaker_failure(&b, 0);
    breaker_success(&b, 0);
    breaker_success(&b, 0);   /* [F F S S] */
    breaker_success(&b, 0);   /* [F S S S]: the oldest failure left */
    breaker_success(&b, 0);   /* [S S S S] */
    breaker_info(&b, &in);
    assert_int_equal(in.window_calls, 4);
    assert_int_equal(in.window_failures, 0);
    breaker_failure(&b, 0);   /* 1/4 */
    breaker_failure(&b, 0);   /* 2/4: 4 failures of 8 calls, but not in the window */
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_failure(&b, 9);   /* 3/4 */
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_OPEN);
    assert_int_equal(in.last_transition_ns, 9);
    /* Closing again starts from an empty window. */
    assert_int_equal(breaker_allow(&b, 9 + SEC), 1);
    breaker_success(&b, 9 + SEC);
    breaker_info(&b, &in);
    assert_int_equal(in.state, BREAKER_CLOSED);
    assert_int_equal(in.window_calls, 0);
    breaker_failure(&b, 9 + SEC);
    breaker_failure(&b, 9 + SEC);
    breaker_failure(&b, 9 + SEC);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED); /* 3 calls < min_calls */
    breaker_destroy(&b);
}

static void test_both_rules(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_opts o;
    breaker_default_opts(&o); /* 5 in a row, or half of the last 20 (>= 10 calls) */
    assert_int_equal(breaker_init(&b, &o), 0);
    for (int i = 0; i < 4; i++)
        breaker_failure(&b, i);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_failure(&b, 4);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    breaker_destroy(&b);

    assert_int_equal(breaker_init(&b, &o), 0);
    for (int i = 0; i < 5; i++) { /* alternate: never 5 in a row */
        breaker_success(&b, i);
        breaker_failure(&b, i);
    }
    assert_int_equal(breaker_state(&b), BREAKER_OPEN); /* 5/10 */
    breaker_destroy(&b);
}

/* --- 4 threads --- */

#define NTHREADS 4
#define ITERS 200000
#define K 2

static struct breaker shared;
static atomic_llong fake_now;
static atomic_int max_probes_seen;
static atomic_long allowed_total;

static void *hammer(void *arg)
{
    unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < ITERS; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        int64_t now = atomic_fetch_add(&fake_now, 1000); /* 1 us per call */
        if (!breaker_allow(&shared, now))
            continue;
        atomic_fetch_add(&allowed_total, 1);
        struct breaker_info in;
        breaker_info(&shared, &in);
        int seen = atomic_load(&max_probes_seen);
        while (in.probes > seen && !atomic_compare_exchange_weak(&max_probes_seen, &seen,
                                                                 in.probes))
            ;
        /* Phases of 50 ms: a healthy phase, then a failing one. */
        int failing = (now / 50000000) % 2 == 1;
        if (failing || (x % 100) < 5)
            breaker_failure(&shared, now);
        else
            breaker_success(&shared, now);
    }
    return NULL;
}

static void test_four_threads(void **state)
{
    (void)state;
    struct breaker_opts o = {
        .failures = 5, .window = 50, .min_calls = 20, .failure_ratio = 0.5,
        .open_ns = 2000000 /* 2 ms */, .half_open_max = K, .half_open_successes = 3,
    };
    pthread_t t[NTHREADS];
    assert_int_equal(breaker_init(&shared, &o), 0);
    atomic_store(&fake_now, 1);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    struct breaker_info in;
    breaker_info(&shared, &in);
    /* The run spans 16 phases: the breaker opened and closed many times. */
    assert_true(in.transitions >= 8);
    assert_true(atomic_load(&max_probes_seen) <= K);
    assert_true(in.probes == 0); /* every probe was reported */
    assert_true(atomic_load(&allowed_total) < (long)NTHREADS * ITERS);
    assert_true(atomic_load(&allowed_total) > (long)NTHREADS * ITERS / 4);
    breaker_destroy(&shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_bad_options),
        cmocka_unit_test(test_consecutive_failures_open),
        cmocka_unit_test(test_open_waits_then_half_open),
        cmocka_unit_test(test_half_open_success_closes),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_probe_limit_and_successes),
        cmocka_unit_test(test_ratio_needs_min_calls),
        cmocka_unit_test(test_ratio_window_slides),
        cmocka_unit_test(test_both_rules),
        cmocka_unit_test(test_four_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
