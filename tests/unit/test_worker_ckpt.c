/*
 * The checkpoint of a benchmark job (worker/ckpt.c): requests placed on
 * one timeline across segments, the JSON round trip, duplicates dropped,
 * the remaining planned indices, and the merge of a resumed point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "worker/ckpt.h"

static struct bench_req req(uint64_t id, int64_t t0)
{
    static int64_t gaps[2] = {5, 7};
    struct bench_req r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.scheduled_ns = t0;
    r.sent_ns = t0 + 1;
    r.first_ns = t0 + 10;
    r.last_ns = t0 + 22;
    r.input_tokens = 16;
    r.output_tokens = 3;
    r.events = 3;
    r.http_status = 200;
    r.itl_ns = gaps;
    r.itl_len = 2;
    return r;
}

static void test_segments_round_trip_and_merge(void **state)
{
    (void)state;
    struct worker_ckpt ck, back;
    struct err_detail d;
    assert_int_equal(worker_ckpt_init(&ck, 42), 0);
    worker_ckpt_begin_point(&ck, 1);
    /* Segment 1 starts at 1000 (monotonic) and lasts 100 ns. */
    struct bench_req a = req(1, 1000), b = req(2, 1050);
    assert_int_equal(worker_ckpt_add(&ck, &a, 3), 0);
    assert_int_equal(worker_ckpt_add(&ck, &b, 0), 0);
    assert_int_equal(worker_ckpt_add(&ck, &b, 0), 0); /* again: ignored */
    assert_int_equal(ck.n, 2);
    worker_ckpt_seal(&ck, 1000, 1100);
    assert_int_equal(ck.reqs[0].sent_ns, 1);
    assert_int_equal(ck.reqs[1].sent_ns, 51);
    assert_int_equal(ck.acc_ns, 100);

    json_t *j = worker_ckpt_json(&ck, 0);
    assert_non_null(j);
    assert_int_equal(worker_ckpt_init(&back, 0), 0);
    assert_int_equal(worker_ckpt_load(&back, j, 5, &d), 0);
    json_decref(j);
    assert_int_equal(back.seed, 42);
    assert_int_equal(back.point, 1);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.acc_ns, 100);
    assert_int_equal(back.reqs[1].itl_len, 2);
    assert_int_equal(back.reqs[1].itl_ns[1], 7);

    size_t *todo, ntodo;
    assert_int_equal(worker_ckpt_todo(&back, 5, &todo, &ntodo), 0);
    assert_int_equal(ntodo, 3);
    assert_int_equal(todo[0], 1);
    assert_int_equal(todo[1], 2);
    assert_int_equal(todo[2], 4);
    mem_free(todo);

    /* Segment 2 (resumed) starts at 9000; its times follow segment 1's. */
    worker_ckpt_begin_point(&back, 1);
    struct bench_req c = req(0, 9000);
    assert_int_equal(worker_ckpt_add(&back, &c, 2), 0);
    /* A mid-segment checkpoint counts the open segment up to now. */
    j = worker_ckpt_json(&back, 9040);
    json_t *p = json_object_get(j, "partial");
    assert_true(json_real_value(json_object_get(p, "segments_duration_s")) > 139e-9);
    json_t *last = json_array_get(json_object_get(p, "requests"), 2);
    assert_int_equal(json_integer_value(json_object_get(last, "sent_ns")), 101);
    json_decref(j);
    worker_ckpt_seal(&back, 9000, 9050);
    double dur = worker_ckpt_merge(&back);
    assert_true(dur > 149e-9 && dur < 151e-9);
    assert_int_equal(back.reqs[2].id, 2);
    assert_int_equal(back.reqs[2].sent_ns, 101);
    assert_int_equal(back.reqs[0].id, 3);

    assert_int_equal(worker_ckpt_point_done(&back, "0190d6f2-0000-7000-8000-000000000000"), 0);
    assert_int_equal(back.points_done, 2);
    assert_int_equal(back.n, 0);
    j = worker_ckpt_json(&back, 0);
    assert_true(json_is_null(json_object_get(j, "partial")));
    assert_int_equal(json_array_size(json_object_get(j, "run_ids")), 1);
    json_decref(j);
    worker_ckpt_free(&back);
    worker_ckpt_free(&ck);
}

static void test_load_refuses_garbage_and_drops_bad_indices(void **state)
{
    (void)state;
    struct worker_ckpt ck;
    struct err_detail d;
    assert_int_equal(worker_ckpt_init(&ck, 1), 0);
    json_t *j = json_loads("{\"v\":2,\"seed\":1,\"points_done\":0,\"run_ids\":[]}", 0, NULL);
    assert_int_equal(worker_ckpt_load(&ck, j, 10, &d), ERR_PARSE);
    json_decref(j);
    j = json_loads("{\"v\":1,\"seed\":9,\"points_done\":0,\"run_ids\":[],\"partial\":"
                   "{\"point\":0,\"segments_duration_s\":1.5,\"requests\":["
                   "{\"index\":4,\"itl_ns\":[]},{\"index\":4,\"itl_ns\":[]},"
                   "{\"index\":99,\"itl_ns\":[]},{\"index\":-1,\"itl_ns\":[]}]}}", 0, NULL);
    assert_int_equal(worker_ckpt_load(&ck, j, 10, &d), 0);
    assert_int_equal(ck.n, 1);
    assert_int_equal(ck.seed, 9);
    json_decref(j);
    j = json_loads("{\"v\":1,\"seed\":9,\"points_done\":0,\"run_ids\":[],\"partial\":"
                   "{\"point\":0,\"segments_duration_s\":1,\"requests\":[{\"index\":1,"
                   "\"err\":99,\"itl_ns\":[]}]}}", 0, NULL);
    assert_int_equal(worker_ckpt_load(&ck, j, 10, &d), ERR_PARSE);
    json_decref(j);
    worker_ckpt_free(&ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments_round_trip_and_merge),
        cmocka_unit_test(test_load_refuses_garbage_and_drops_bad_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
