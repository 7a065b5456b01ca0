/*
 * Unit tests of the simulator's engine model (src/sim/engine.c) and PRNG
 * (core/rng.c), driven on a virtual clock: prefill time and its FIFO
 * order, decode steps, the max-num-seqs limit, stalls, cancellation from
 * inside the token callback, jitter. The sources are included so the tests
 * need no library of their own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/engine.c"

#define MS 1000000LL
#define MAXT 64

/* A sequence with the instants of its tokens. */
struct tseq {
    struct sim__seq seq;
    int64_t t[MAXT];
    int n;
    int cancel_at;     /* cancel itself at this token count (0: never) */
    int freed;
};

struct harness {
    struct sim__engine e;
    struct rng rng;
    int tokens;
};

static void on_token(void *arg, struct sim__seq *s, int64_t now)
{
    struct harness *h = arg;
    struct tseq *q = s->owner;
    h->tokens++;
    if (q->n < MAXT)
        q->t[q->n] = now;
    q->n++;
    assert_int_equal(q->n, s->emitted);
    if (q->cancel_at && q->n == q->cancel_at) {
        sim__engine_cancel(&h->e, s, now);
        q->freed = 1;
        memset(s, 0xa5, sizeof(*s)); /* the engine must not read it again */
    }
}

static void setup_h(struct harness *h, int max_seqs, double prefill, double itl,
                    double per_seq, double jitter)
{
    struct sim__engine_cfg cfg = {max_seqs, prefill, itl, per_seq, jitter};
    rng_seed(&h->rng, 42);
    sim__engine_init(&h->e, &cfg, &h->rng, on_token, h);
    h->tokens = 0;
}

static void init_seq(struct tseq *q, int64_t prompt, int64_t out)
{
    memset(q, 0, sizeof(*q));
    q->seq.prompt_tokens = prompt;
    q->seq.out_target = out;
    q->seq.stall_at = -1;
    q->seq.owner = q;
}

/* Runs the engine until idle (or `until`); returns the last instant. */
static int64_t drain(struct harness *h, int64_t until)
{
    int64_t t = 0, next;
    while ((next = sim__engine_next(&h->e)) >= 0 && next <= until) {
        t = next;
        sim__engine_run(&h->e, t);
    }
    return t;
}

static void test_single_sequence_timing(void **state)
{
    (void)state;
    struct harness h;
    struct tseq q;
    setup_h(&h, 8, 1000.0, 10.0, 0.0, 0.0);
    init_seq(&q, 50, 5); /* 50 tokens at 1000/s: 50 ms of prefill */
    sim__engine_submit(&h.e, &q.seq, 0);
    assert_int_equal(h.e.running, 1);
    drain(&h, INT64_MAX);
    assert_int_equal(q.n, 5);
    assert_int_equal(q.t[0], 50 * MS);
    for (int i = 1; i < 5; i++)
        assert_int_equal(q.t[i] - q.t[i - 1], 10 * MS);
    assert_int_equal(h.e.running, 0);
    assert_int_equal(q.seq.state, SIM_SEQ_IDLE);
    assert_int_equal(sim__engine_next(&h.e), -1);
}

static void test_prefill_is_fifo_and_serial(void **state)
{
    (void)state;
    struct harness h;
    struct tseq a, b;
    setup_h(&h, 8, 1000.0, 10.0, 0.0, 0.0);
    init_seq(&a, 30, 1);
    init_seq(&b, 20, 1);
    sim__engine_submit(&h.e, &a.seq, 0);
    sim__engine_submit(&h.e, &b.seq, 0);
    drain(&h, INT64_MAX);
    assert_int_equal(a.t[0], 30 * MS);
    assert_int_equal(b.t[0], 50 * MS); /* after a's prefill */
}

static void test_max_num_seqs_queues_fifo(void **state)
{
    (void)state;
    struct harness h;
    struct tseq q[4];
    setup_h(&h, 2, 1e9, 10.0, 0.0, 0.0);
    for (int i = 0; i < 4; i++) {
        init_seq(&q[i], 1, 5 + i);
        sim__engine_submit(&h.e, &q[i].seq, 0);
    }
    assert_int_equal(h.e.running, 2);
    assert_int_equal(h.e.waiting.n, 2);
    drain(&h, INT64_MAX);
    for (int i = 0; i < 4; i++)
        assert_int_equal(q[i].n, 5 + i);
    /* The third starts only after the first finished. */
    assert_true(q[2].t[0] >= q[0].t[4]);
    assert_true(q[3].t[0] >= q[1].t[5]);
    assert_int_equal(h.e.waiting.n, 0);
    assert_int_equal(h.e.running, 0);
}

static void test_step_time_grows_with_batch(void **state)
{
    (void)state;
    struct harness h;
    struct tseq q[10];
    setup_h(&h, 64, 1e12, 10.0, 1.0, 0.0);
    for (int i = 0; i < 10; i++) {
        init_seq(&q[i], 0, 4);
        sim__engine_submit(&h.e, &q[i].seq, 0);
    }
    drain(&h, INT64_MAX);
    /* 10 running: steps of 10 + 1 x 10 = 20 ms. */
    assert_int_equal(q[0].t[2] - q[0].t[1], 20 * MS);
    assert_int_equal(h.tokens, 40);
}

static void test_joining_waits_for_next_step(void **state)
{
    (void)state;
    struct harness h;
    struct tseq a, b;
    setup_h(&h, 8, 1000.0, 10.0, 0.0, 0.0);
    init_seq(&a, 0, 10);
    sim__engine_submit(&h.e, &a.seq, 0);
    drain(&h, 0);
    init_seq(&b, 5, 3); /* prefill done at 5 ms, inside a's first step */
    sim__engine_submit(&h.e, &b.seq, 0);
    drain(&h, INT64_MAX);
    assert_int_equal(b.t[0], 5 * MS);
    assert_int_equal(b.t[1], 20 * MS); /* the step starting at 10 ms */
    assert_int_equal(a.n, 10);
}

static void test_stall_pauses_after_half(void **state)
{
    (void)state;
    struct harness h;
    struct tseq q;
    setup_h(&h, 8, 1e12, 10.0, 0.0, 0.0);
    init_seq(&q, 0, 10);
    q.seq.stall_at = 5;
    q.seq.stall_ns = 300 * MS;
    sim__engine_submit(&h.e, &q.seq, 0);
    drain(&h, INT64_MAX);
    assert_int_equal(q.n, 10);
    assert_true(q.t[5] - q.t[4] >= 300 * MS);
    assert_true(q.t[5] - q.t[4] <= 310 * MS);
    assert_int_equal(q.t[4] - q.t[3], 10 * MS);
    /* Stall before the first token. */
    init_seq(&q, 0, 1);
    q.seq.stall_at = 0;
    q.seq.stall_ns = 100 * MS;
    sim__engine_submit(&h.e, &q.seq, 1000 * MS);
    drain(&h, INT64_MAX);
    assert_int_equal(q.n, 1);
    assert_true(q.t[0] >= 1100 * MS && q.t[0] <= 1110 * MS);
}

static void test_cancel_from_callback_and_waiting(void **state)
{
    (void)state;
    struct harness h;
    struct tseq *q = calloc(3, sizeof(*q));
    setup_h(&h, 2, 1e12, 10.0, 0.0, 0.0);
    for (int i = 0; i < 3; i++)
        init_seq(&q[i], 0, 20);
    q[0].cancel_at = 3; /* cancels (and scribbles over) itself mid-step */
    for (int i = 0; i < 3; i++)
        sim__engine_submit(&h.e, &q[i].seq, 0);
    assert_int_equal(h.e.waiting.n, 1);
    drain(&h, INT64_MAX);
    assert_true(q[0].freed);
    assert_int_equal(q[0].n, 3);
    assert_int_equal(q[1].n, 20);
    assert_int_equal(q[2].n, 20);
    assert_true(q[2].t[0] <= q[0].t[2] + 10 * MS); /* took the freed slot at once */
    /* Cancelling a waiting or idle sequence. */
    struct tseq a, b, c;
    setup_h(&h, 1, 1e12, 10.0, 0.0, 0.0);
    init_seq(&a, 0, 5);
    init_seq(&b, 0, 5);
    init_seq(&c, 0, 5);
    sim__engine_submit(&h.e, &a.seq, 0);
    sim__engine_submit(&h.e, &b.seq, 0);
    sim__engine_submit(&h.e, &c.seq, 0);
    sim__engine_cancel(&h.e, &b.seq, 0);
    sim__engine_cancel(&h.e, &b.seq, 0); /* idle: no-op */
    assert_int_equal(h.e.waiting.n, 1);
    drain(&h, INT64_MAX);
    assert_int_equal(a.n, 5);
    assert_int_equal(b.n, 0);
    assert_int_equal(c.n, 5);
    free(q);
}

static void test_jitter_and_rng(void **state)
{
    (void)state;
    struct harness h;
    struct tseq q;
    setup_h(&h, 8, 1e12, 10.0, 0.0, 0.5);
    init_seq(&q, 0, MAXT);
    sim__engine_submit(&h.e, &q.seq, 0);
    drain(&h, INT64_MAX);
    int differ = 0;
    for (int i = 1; i < MAXT; i++) {
        int64_t g = q.t[i] - q.t[i - 1];
        assert_true(g >= 0);
        differ += g != 10 * MS;
    }
    assert_true(differ > MAXT / 2);
    struct rng r1, r2;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    for (int i = 0; i < 1000; i++) /* the same seed, the same stream */
        assert_true(rng_next(&r1) == rng_next(&r2));
    double sum = 0, sq = 0;
    for (int i = 0; i < 20000; i++) {
        int64_t v = rng_range(&r1, 1, 6);
        assert_true(v >= 1 && v <= 6);
        double u = rng_unit(&r2);
        assert_true(u >= 0 && u < 1);
        double z = rng_normal(&r1);
        sum += z;
        sq += z * z;
    }
    assert_true(fabs(sum / 20000) < 0.05);
    assert_true(fabs(sq / 20000 - 1.0) < 0.05);
    assert_int_equal(rng_range(&r1, 5, 5), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_sequence_timing),
        cmocka_unit_test(test_prefill_is_fifo_and_serial),
        cmocka_unit_test(test_max_num_seqs_queues_fifo),
        cmocka_unit_test(test_step_time_grows_with_batch),
        cmocka_unit_test(test_joining_waits_for_next_step),
        cmocka_unit_test(test_stall_pauses_after_half),
        cmocka_unit_test(test_cancel_from_callback_and_waiting),
        cmocka_unit_test(test_jitter_and_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
