"""Durability: concurrent writers lose nothing, and a kill -9 in the middle of
writes loses no acknowledged write and leaves no half-written one."""

import http.client
import threading
import time

from conftest import (
    assert_fields_equal, enc, hardware_body, ids_of, model_body, run_body, run_threads, uid,
)

MODELS = "/api/v1/models"
HW = "/api/v1/hardware"
RUNS = "/api/v1/benchmarks"


def test_concurrent_writers_every_acknowledged_write_is_present(server):
    fam = "dur" + uid()
    acked = []
    failures = []
    lock = threading.Lock()

    def writer(n):
        def run():
            c = server.client(timeout=30)
            c.retry = False
            try:
                for i in range(200):
                    body = model_body(f"dur-org/w{n}-{i}-{uid()}", family=fam, parameters_b=i + 1)
                    r = c.post(MODELS, body)
                    with lock:
                        if r.status == 201:
                            acked.append(body["id"])
                        else:
                            failures.append(r)
            finally:
                c.close()
        return run

    run_threads([writer(n) for n in range(8)], timeout=120)
    assert not failures, f"{len(failures)} writes failed, first: {failures[0]!r}"
    assert len(acked) == 1600

    c = server.client()
    try:
        items, _ = c.list_all(MODELS, {"family": fam}, limit=200)
    finally:
        c.close()
    listed = ids_of(items)
    assert len(listed) == len(set(listed)), "duplicate ids in the listing"
    missing = set(acked) - set(listed)
    assert not missing, f"{len(missing)} acknowledged models are missing"
    assert len(listed) == len(acked)


SAMPLES_PER_RUN = 50


def _samples(tag):
    return [{"scheduled_ns": i * 1000, "sent_ns": i * 1000 + 5, "first_token_ns": i * 1000 + 50,
             "last_token_ns": i * 1000 + 900, "input_tokens": 100 + i, "output_tokens": tag % 97,
             "error": None} for i in range(SAMPLES_PER_RUN)]


def test_kill_9_loses_no_acknowledged_write(server_factory):
    srv = server_factory()
    setup = srv.client()
    model = setup.create(MODELS, model_body(f"kill-org/base-{uid()}"))["id"]
    hw = setup.create(HW, hardware_body())["id"]
    setup.close()

    fam, sweep = "kill" + uid(), "kill-" + uid()
    lock = threading.Lock()
    stop = threading.Event()
    sent_models, acked_models = {}, {}
    sent_runs, acked_runs = {}, {}  # keyed by the completed counter, unique per run

    def model_writer(n):
        c = srv.client(timeout=10)
        c.retry = False
        i = 0
        try:
            while not stop.is_set():
                body = model_body(f"kill-org/w{n}-{i}-{uid()}", family=fam, parameters_b=i + 1,
                                  tags=[f"w{n}", f"i{i}"])
                with lock:
                    sent_models[body["id"]] = body
                try:
                    r = c.post(MODELS, body)
                except (OSError, http.client.HTTPException):
                    return
                if r.status == 201:
                    with lock:
                        acked_models[body["id"]] = r.body
                i += 1
        finally:
            c.close()

    def run_writer(n):
        c = srv.client(timeout=10)
        c.retry = False
        i = 0
        try:
            while not stop.is_set():
                tag = n * 1_000_000 + i
                body = dict(run_body(model, hw, sweep_id=sweep, completed=tag),
                            samples=_samples(tag))
                with lock:
                    sent_runs[tag] = body
                try:
                    r = c.post(RUNS, body)
                except (OSError, http.client.HTTPException):
                    return
                if r.status == 201:
                    with lock:
                        acked_runs[tag] = r.body
                i += 1
        finally:
            c.close()

    threads = [threading.Thread(target=model_writer, args=(n,), daemon=True) for n in range(3)]
    threads += [threading.Thread(target=run_writer, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    srv.proc.kill()  # SIGKILL
    srv.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads), "writer threads hung after the kill"
    assert len(acked_models) >= 10, f"only {len(acked_models)} models acknowledged in 1s"
    assert len(acked_runs) >= 2, f"only {len(acked_runs)} runs acknowledged in 1s"

    again = server_factory(db_path=srv.db_path, migrate=False)
    c = again.client()
    try:
        # Every acknowledged write is there, exactly as acknowledged.
        for model_id, body in acked_models.items():
            g = c.get(f"{MODELS}/{enc(model_id)}")
            assert g.status == 200, f"acknowledged model {model_id} lost: {g!r}"
            assert g.body == body, f"model {model_id} differs after restart"
        for tag, body in acked_runs.items():
            g = c.get(f"{RUNS}/{body['id']}")
            assert g.status == 200, f"acknowledged run {body['id']} lost: {g!r}"
            assert g.body == body, f"run {body['id']} differs after restart"

        # Nothing half-written: whatever is there is complete.
        models, _ = c.list_all(MODELS, {"family": fam})
        for m in models:
            assert m["id"] in sent_models, f"unknown model {m['id']} appeared"
            assert_fields_equal(sent_models[m["id"]], m)
        assert set(acked_models) <= set(ids_of(models))

        runs, _ = c.list_all(RUNS, {"sweep_id": sweep})
        assert set(b["id"] for b in acked_runs.values()) <= set(ids_of(runs))
        for run in runs:
            tag = run["completed"]
            assert tag in sent_runs, f"unknown run {run!r}"
            sent = dict(sent_runs[tag])
            samples = sent.pop("samples")
            assert_fields_equal(sent, run)
            assert run["sample_count"] == SAMPLES_PER_RUN
            s = c.get(f"{RUNS}/{run['id']}/samples")
            assert s.status == 200 and s.body["items"] == samples, \
                f"run {run['id']} has {len(s.body.get('items', []))} of {SAMPLES_PER_RUN} samples"
    finally:
        c.close()


# Concurrent writers of one item: the store serializes them (SQLite's write
# lock, PostgreSQL's row lock taken before the item is read), so no write is
# lost, If-Match is checked against the version a write replaces, and a
# repeated Idempotency-Key creates one run however the requests interleave.

def _together(n, fn):
    """Run fn(i) in n threads released at the same moment; return the results."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def target(i):
        def run():
            barrier.wait(10)
            results[i] = fn(i)
        return run

    run_threads([target(i) for i in range(n)], timeout=120)
    return results


def test_concurrent_patches_of_one_model_all_apply(server):
    c = server.client()
    model = c.create(MODELS, model_body(f"race-org/m-{uid()}"))["id"]
    c.close()
    path = f"{MODELS}/{enc(model)}"

    def patcher(n):
        cc = server.client(timeout=30)
        try:
            return [cc.patch(path, {"name": f"w{n}-{i}", "tags": [f"w{n}", f"i{i}"]}).status
                    for i in range(20)]
        finally:
            cc.close()

    statuses = [s for r in _together(6, patcher) for s in r]
    assert statuses == [200] * len(statuses), sorted(set(statuses))
    c = server.client()
    final = c.get(path).body
    c.close()
    n, i = final["name"][1:].split("-")
    assert sorted(final["tags"]) == sorted([f"w{n}", f"i{i}"]), final


def test_concurrent_if_match_never_loses_an_update(server):
    c = server.client()
    model = c.create(MODELS, model_body(f"race-org/m-{uid()}"))["id"]
    c.close()
    path = f"{MODELS}/{enc(model)}"

    def patcher(n):
        cc = server.client(timeout=30)
        won = []
        try:
            for i in range(20):
                etag = cc.get(path).headers["etag"]
                r = cc.patch(path, {"name": f"w{n}-{i}"}, headers={"If-Match": etag})
                assert r.status in (200, 412), r
                if r.status == 200:
                    won.append(etag)
        finally:
            cc.close()
        return won

    won = [e for r in _together(6, patcher) for e in r]
    assert won, "no conditional PATCH succeeded"
    assert len(won) == len(set(won)), "two PATCHes succeeded with the same If-Match"


def test_concurrent_posts_with_one_idempotency_key_create_one_run(server):
    c = server.client()
    model = c.create(MODELS, model_body(f"race-org/m-{uid()}"))["id"]
    hw = c.create(HW, hardware_body())["id"]
    c.close()
    sweep, key = "race-" + uid(), "race-" + uid()
    body = dict(run_body(model, hw, sweep_id=sweep), samples=_samples(7))

    def poster(n):
        cc = server.client(timeout=30)
        try:
            return cc.post(RUNS, body, headers={"Idempotency-Key": key})
        finally:
            cc.close()

    results = _together(8, poster)
    assert sorted(r.status for r in results) == [200] * 7 + [201], results
    assert len({r.body["id"] for r in results}) == 1
    c = server.client()
    runs, _ = c.list_all(RUNS, {"sweep_id": sweep})
    c.close()
    assert ids_of(runs) == [results[0].body["id"]]
