"""The benchmark jobs queue, end to end: creating jobs (the spec checked as
`modelcat bench` checks its flags), reading and listing them, the worker
protocol (claim, heartbeat, checkpoint, complete, release) with labels,
leases that expire, attempts, cancellation, and workers racing to claim.

Every job made here carries a label unique to its test, and every claim
asks with that label, so the tests of this module never take each other's
jobs (a job matches a worker that has all of the job's labels)."""

import time

import pytest

from conftest import RFC3339_MS, UUID_RE, assert_error, run_threads, uid


def spec(**over):
    body = {
        "backend": "vllm",
        "base_url": "http://127.0.0.1:9000",
        "model": "sim-model",
        "dataset": "random",
        "input_len": 128,
        "output_len": 16,
        "num_prompts": 20,
        "max_concurrency": 4,
        "request_rate": "inf",
        "hardware": "aws-p5.48xlarge",
        "gpu_count": 1,
        "engine_version": "0.6.3",
    }
    body.update(over)
    return body


@pytest.fixture(scope="module")
def keys(server):
    c = server.client()
    out = {}
    for role in ("viewer", "editor", "worker", "admin"):
        r = c.post("/api/v1/keys", {"name": f"jobs {role}", "role": role})
        assert r.status == 201, r
        out[role] = r.body["key"]
    out["workers"] = []
    for i in range(3):
        r = c.post("/api/v1/keys", {"name": f"jobs worker {i}", "role": "worker"})
        assert r.status == 201, r
        out["workers"].append(r.body["key"])
    c.close()
    return out


@pytest.fixture
def editor(server, keys):
    c = server.client(key=keys["editor"])
    yield c
    c.close()


@pytest.fixture
def worker(server, keys):
    c = server.client(key=keys["worker"])
    yield c
    c.close()


def make_job(editor, label, **over):
    labels = over.pop("labels", {"test": label})
    body = spec(**over)
    body["labels"] = labels
    r = editor.post("/api/v1/jobs", body)
    assert r.status == 201, r
    return r.body


def claim(worker, label, name="w1", lease_s=60, extra=None):
    labels = {"test": label}
    labels.update(extra or {})
    return worker.post("/api/v1/jobs/claim", {"worker": name, "labels": labels,
                                              "lease_s": lease_s})


def test_create_get_list(server, editor, keys):
    label = uid()
    r = editor.post("/api/v1/jobs", dict(spec(), labels={"test": label, "gpu": "h100"},
                                         max_attempts=5))
    assert r.status == 201, r
    job = r.body
    assert UUID_RE.match(job["id"])
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["attempts"] == 0 and job["max_attempts"] == 5
    assert job["spec"]["model"] == "sim-model" and job["spec"]["num_prompts"] == 20
    assert "labels" not in job["spec"] and "max_attempts" not in job["spec"]
    assert job["labels"] == {"test": label, "gpu": "h100"}
    assert job["checkpoint"] is None and job["progress"] is None and job["run_ids"] == []
    assert job["worker"] is None and job["lease_expires_at"] is None
    assert RFC3339_MS.match(job["created_at"]) and RFC3339_MS.match(job["updated_at"])
    assert job["created_by"]
    got = server.client(key=None).get(f"/api/v1/jobs/{job['id']}")
    assert got.status == 200 and got.body == job
    # The default max_attempts is the server's --max-attempts (3).
    assert make_job(editor, label)["max_attempts"] == 3
    # Lists: newest first, by status, paginated.
    ids = [make_job(editor, label)["id"] for _ in range(3)]
    items, pages = editor.list_all("/api/v1/jobs", {"status": "queued"}, limit=2)
    got_ids = [j["id"] for j in items]
    assert pages >= 2
    assert got_ids.index(ids[2]) < got_ids.index(ids[1]) < got_ids.index(ids[0])
    assert all(j["status"] == "queued" for j in items)
    assert job["id"] in got_ids
    r = editor.get("/api/v1/jobs", {"status": "succeeded"})
    assert r.status == 200 and job["id"] not in [j["id"] for j in r.body["items"]]
    assert_error(editor.get("/api/v1/jobs", {"status": "bogus"}), 400, field="status")
    assert_error(editor.get("/api/v1/jobs", {"nope": "1"}), 400)
    assert_error(editor.get("/api/v1/jobs/" + "0" * 8), 404)
    for i in [job["id"]] + ids:
        assert editor.post(f"/api/v1/jobs/{i}/cancel").status == 200


@pytest.mark.parametrize("body,field", [
    (spec(backend="nope"), "backend"),
    (spec(num_prompts=-1), "num_prompts"),
    (spec(num_prompts=1.5), "num_prompts"),
    (spec(foo=1), "foo"),
    (spec(**{"base-url": "http://x:1"}), "base-url"),
    ({k: v for k, v in spec().items() if k != "base_url"}, "base_url"),
    ({k: v for k, v in spec().items() if k != "model"}, "model"),
    (spec(base_url="ftp://x"), "base_url"),
    (spec(base_url="https://x:1"), "base_url"),
    (spec(api_key="secret"), "api_key"),
    (spec(result_json="/tmp/x.json"), "result_json"),
    (spec(catalog="http://127.0.0.1:1"), "catalog"),
    (spec(ignore_eos="yes"), "ignore_eos"),
    (spec(ignore_eos=1), "ignore_eos"),
    (spec(duration=10), "duration"),
    (spec(request_rate="-3"), "request_rate"),
    (spec(request_rate=0), "request_rate"),
    (spec(sweep="concurrency=1,x"), "sweep"),
    (spec(goodput="ttft:0"), "goodput"),
    (spec(percentiles="50,101"), "percentiles"),
    (spec(header=["no colon"]), "header"),
    (spec(header=[1]), "header"),
    (spec(dataset="sharegpt"), "dataset_path"),
    (spec(model={"a": 1}), "model"),
    (dict(spec(), labels={"a b": "x"}), "labels"),
    (dict(spec(), labels={"k": 1}), "labels"),
    (dict(spec(), labels=["x"]), "labels"),
    (dict(spec(), labels={f"k{i}": "v" for i in range(33)}), "labels"),
    (dict(spec(), labels={"k": "v" * 65}), "labels"),
    (dict(spec(), max_attempts=0), "max_attempts"),
    (dict(spec(), max_attempts=101), "max_attempts"),
])
def test_bad_specs_are_422_naming_the_field(editor, body, field):
    assert_error(editor.post("/api/v1/jobs", body), 422, "validation_failed", field)


def test_good_spec_variants(editor):
    label = uid()
    for over in ({"num_prompts": 0, "duration": 30}, {"ignore_eos": True},
                 {"header": ["X-A: 1", "X-B: 2"], "sweep": "rate=1,2.5"},
                 {"request_rate": 4.5, "goodput": "ttft:500,tpot:50"},
                 {"base_url": "https://h:1", "transport": "curl"}):
        job = make_job(editor, label, **over)
        assert editor.post(f"/api/v1/jobs/{job['id']}/cancel").status == 200


def test_roles(server, keys):
    label = uid()
    body = dict(spec(), labels={"test": label})
    for role in ("viewer", "worker"):
        c = server.client(key=keys[role])
        assert_error(c.post("/api/v1/jobs", body), 403, "forbidden")
        c.close()
    assert_error(server.client(key=None).post("/api/v1/jobs", body), 401)
    c = server.client(key=keys["editor"])
    job = c.create("/api/v1/jobs", body)
    assert_error(c.post("/api/v1/jobs/claim", {"worker": "e", "labels": {"test": label}}),
                 403, "forbidden")
    assert_error(c.post(f"/api/v1/jobs/{job['id']}/heartbeat", {"worker": "e"}), 403)
    v = server.client(key=keys["viewer"])
    assert_error(v.post(f"/api/v1/jobs/{job['id']}/cancel"), 403)
    assert v.get(f"/api/v1/jobs/{job['id']}").status == 200
    w = server.client(key=keys["worker"])
    assert_error(w.post(f"/api/v1/jobs/{job['id']}/cancel"), 403)
    # The admin may do both.
    a = server.client()
    assert a.post("/api/v1/jobs/claim", {"worker": "adm", "labels": {"test": label}}).status == 200
    assert a.post(f"/api/v1/jobs/{job['id']}/cancel").status == 200


def test_happy_path(editor, worker):
    label = uid()
    job = make_job(editor, label)
    r = claim(worker, label, "w-happy")
    assert r.status == 200, r
    assert r.body["job"]["id"] == job["id"]
    assert r.body["job"]["status"] == "running" and r.body["job"]["attempts"] == 1
    assert r.body["job"]["spec"] == job["spec"] and r.body["job"]["checkpoint"] is None
    assert r.body["job"]["worker"] == "w-happy"
    assert RFC3339_MS.match(r.body["lease_expires_at"])
    assert r.body["job"]["lease_expires_at"] == r.body["lease_expires_at"]
    jid = job["id"]
    r = worker.post(f"/api/v1/jobs/{jid}/heartbeat", {"worker": "w-happy",
                                                    "progress": {"done": 3, "of": 20}})
    assert r.status == 200, r
    assert r.body["status"] == "running" and RFC3339_MS.match(r.body["lease_expires_at"])
    run1, run2 = "0190a6e2-0000-7000-8000-000000000001", "0190a6e2-0000-7000-8000-000000000002"
    ckpt = {"point": 1, "seed": 42, "state": {"sent": [1, 2, 3]}}
    r = worker.put(f"/api/v1/jobs/{jid}/checkpoint", {"worker": "w-happy", "checkpoint": ckpt,
                                                     "progress": {"done": 10},
                                                     "run_ids": [run1]})
    assert r.status == 200, r
    got = editor.get(f"/api/v1/jobs/{jid}").body
    assert got["progress"] == {"done": 10} and got["run_ids"] == [run1]
    assert set(got["checkpoint"]) == {"bytes", "updated_at"}
    assert got["checkpoint"]["bytes"] > 0 and RFC3339_MS.match(got["checkpoint"]["updated_at"])
    assert "sent" not in str(got)
    r = worker.post(f"/api/v1/jobs/{jid}/complete", {"worker": "w-happy",
                                                   "outcome": "succeeded",
                                                   "run_ids": [run1, run2, run2]})
    assert r.status == 200, r
    assert r.body["status"] == "succeeded" and r.body["run_ids"] == [run1, run2]
    assert r.body["lease_expires_at"] is None
    got = editor.get(f"/api/v1/jobs/{jid}").body
    assert got["status"] == "succeeded" and got["run_ids"] == [run1, run2]
    assert jid in [j["id"] for j in editor.list_all("/api/v1/jobs", {"status": "succeeded"})[0]]
    # Finished: no more reports, no cancel.
    assert_error(worker.post(f"/api/v1/jobs/{jid}/heartbeat", {"worker": "w-happy"}), 409,
                 "lease_lost")
    assert_error(editor.post(f"/api/v1/jobs/{jid}/cancel"), 409)


def test_bad_worker_bodies(editor, worker):
    label = uid()
    jid = make_job(editor, label)["id"]
    assert claim(worker, label, "wb").status == 200
    cases = [
        ("POST", "/api/v1/jobs/claim", {"labels": {"test": label}}, "worker"),
        ("POST", "/api/v1/jobs/claim", {"worker": "x" * 129}, "worker"),
        ("POST", "/api/v1/jobs/claim", {"worker": "a\nb"}, "worker"),
        ("POST", "/api/v1/jobs/claim", {"worker": "w", "lease_s": 0}, "lease_s"),
        ("POST", "/api/v1/jobs/claim", {"worker": "w", "lease_s": "5"}, "lease_s"),
        ("POST", "/api/v1/jobs/claim", {"worker": "w", "labels": {"a": "b c"}}, "labels"),
        ("POST", "/api/v1/jobs/claim", {"worker": "w", "bogus": 1}, "bogus"),
        ("POST", f"/api/v1/jobs/{jid}/heartbeat", {"worker": "wb", "progress": [1]}, "progress"),
        ("POST", f"/api/v1/jobs/{jid}/heartbeat",
         {"worker": "wb", "progress": {"x": "y" * 70000}}, "progress"),
        ("PUT", f"/api/v1/jobs/{jid}/checkpoint", {"worker": "wb"}, "checkpoint"),
        ("PUT", f"/api/v1/jobs/{jid}/checkpoint", {"worker": "wb", "checkpoint": 3}, "checkpoint"),
        ("PUT", f"/api/v1/jobs/{jid}/checkpoint",
         {"worker": "wb", "checkpoint": {}, "run_ids": ["nope"]}, "run_ids"),
        ("PUT", f"/api/v1/jobs/{jid}/checkpoint",
         {"worker": "wb", "checkpoint": {}, "run_ids": "x"}, "run_ids"),
        ("POST", f"/api/v1/jobs/{jid}/complete", {"worker": "wb"}, "outcome"),
        ("POST", f"/api/v1/jobs/{jid}/complete", {"worker": "wb", "outcome": "ok"}, "outcome"),
        ("POST", f"/api/v1/jobs/{jid}/release", {"worker": "wb"}, "reason"),
        ("POST", f"/api/v1/jobs/{jid}/release", {"worker": "wb", "reason": ""}, "reason"),
    ]
    for method, path, body, field in cases:
        assert_error(worker.request(method, path, json_body=body), 422, "validation_failed", field)
    assert_error(worker.request("POST", "/api/v1/jobs/claim", body="{"), 400)
    assert_error(worker.request("POST", f"/api/v1/jobs/{jid}/heartbeat", body="{}",
                                content_type="text/plain"), 415)
    assert_error(worker.post("/api/v1/jobs/0190a6e2-0000-7000-8000-00000000dead/heartbeat",
                             {"worker": "wb"}), 404)
    # Another worker's name: the lease is not its.
    assert_error(worker.post(f"/api/v1/jobs/{jid}/heartbeat", {"worker": "other"}), 409,
                 "lease_lost")
    assert worker.post(f"/api/v1/jobs/{jid}/heartbeat", {"worker": "wb"}).status == 200
    assert editor.post(f"/api/v1/jobs/{jid}/cancel").status == 200


def test_label_matching(editor, worker):
    label = uid()
    job = make_job(editor, label, labels={"test": label, "gpu": "h100", "region": "us-east-1"})
    assert claim(worker, "other-" + label).status == 204
    assert claim(worker, label).status == 204
    assert claim(worker, label, extra={"gpu": "a100", "region": "us-east-1"}).status == 204
    assert claim(worker, label, extra={"gpu": "h100"}).status == 204
    r = claim(worker, label, extra={"gpu": "h100", "region": "us-east-1", "spot": "yes"})
    assert r.status == 200 and r.body["job"]["id"] == job["id"]
    assert r.raw == r.raw  # a 200 has a body; a 204 has none
    r = claim(worker, label, extra={"gpu": "h100", "region": "us-east-1"})
    assert r.status == 204 and r.raw == b""
    # Oldest first.
    a, b = make_job(editor, label)["id"], make_job(editor, label)["id"]
    assert claim(worker, label).body["job"]["id"] == a
    assert claim(worker, label).body["job"]["id"] == b
    for i in (job["id"], a, b):
        assert editor.post(f"/api/v1/jobs/{i}/cancel").status == 200


def test_lease_expiry_moves_the_job(server, editor, keys):
    label = uid()
    job = make_job(editor, label)
    w1 = server.client(key=keys["workers"][0])
    w2 = server.client(key=keys["workers"][1])
    r = claim(w1, label, "first", lease_s=1)
    assert r.status == 200 and r.body["job"]["attempts"] == 1
    time.sleep(1.3)  # the lease runs out
    r = claim(w2, label, "second")
    assert r.status == 200, r
    assert r.body["job"]["id"] == job["id"] and r.body["job"]["attempts"] == 2
    assert r.body["job"]["reason"] == "lease expired"
    assert_error(w1.post(f"/api/v1/jobs/{job['id']}/heartbeat", {"worker": "first"}), 409,
                 "lease_lost")
    assert_error(w1.put(f"/api/v1/jobs/{job['id']}/checkpoint",
                        {"worker": "first", "checkpoint": {"a": 1}}), 409, "lease_lost")
    assert w2.post(f"/api/v1/jobs/{job['id']}/heartbeat", {"worker": "second"}).status == 200
    got = editor.get(f"/api/v1/jobs/{job['id']}").body
    assert got["worker"] == "second" and got["status"] == "running"
    assert editor.post(f"/api/v1/jobs/{job['id']}/cancel").status == 200


def test_lease_expiry_after_max_attempts_fails(editor, worker):
    label = uid()
    job = make_job(editor, label, max_attempts=1)
    assert claim(worker, label, "w", lease_s=1).status == 200
    time.sleep(1.3)
    assert claim(worker, label, "w").status == 204
    got = editor.get(f"/api/v1/jobs/{job['id']}").body
    assert got["status"] == "failed" and got["reason"] == "lease expired 1 times"
    assert got["lease_expires_at"] is None


def test_release_keeps_checkpoint_then_fails_after_max(editor, worker):
    label = uid()
    job = make_job(editor, label, max_attempts=2)
    jid = job["id"]
    assert claim(worker, label, "spot-1").status == 200
    ckpt = {"points_done": 2, "results": [{"p": 1}, {"p": 2}]}
    assert worker.put(f"/api/v1/jobs/{jid}/checkpoint",
                      {"worker": "spot-1", "checkpoint": ckpt}).status == 200
    reason = "preempted: aws spot instance-action"
    r = worker.post(f"/api/v1/jobs/{jid}/release", {"worker": "spot-1", "reason": reason})
    assert r.status == 200, r
    assert r.body["status"] == "queued" and r.body["reason"] == reason
    assert r.body["checkpoint"]["bytes"] > 0
    r = claim(worker, label, "spot-2")
    assert r.status == 200
    assert r.body["job"]["id"] == jid and r.body["job"]["attempts"] == 2
    assert r.body["job"]["checkpoint"] == ckpt
    r = worker.post(f"/api/v1/jobs/{jid}/release", {"worker": "spot-2", "reason": reason})
    assert r.status == 200 and r.body["status"] == "failed" and r.body["reason"] == reason
    assert claim(worker, label, "spot-3").status == 204
    assert_error(editor.post(f"/api/v1/jobs/{jid}/cancel"), 409)


def test_complete_failed_requeues_until_max(editor, worker):
    label = uid()
    jid = make_job(editor, label, max_attempts=2)["id"]
    assert claim(worker, label, "f").status == 200
    r = worker.post(f"/api/v1/jobs/{jid}/complete", {"worker": "f", "outcome": "failed",
                                                   "reason": "engine crashed"})
    assert r.status == 200 and r.body["status"] == "queued"
    assert claim(worker, label, "f").status == 200
    r = worker.post(f"/api/v1/jobs/{jid}/complete", {"worker": "f", "outcome": "failed",
                                                   "reason": "engine crashed again"})
    assert r.status == 200 and r.body["status"] == "failed"
    assert r.body["reason"] == "engine crashed again" and r.body["attempts"] == 2


def test_cancel_while_running(editor, worker):
    label = uid()
    jid = make_job(editor, label)["id"]
    assert claim(worker, label, "c").status == 200
    r = editor.post(f"/api/v1/jobs/{jid}/cancel")
    assert r.status == 200 and r.body["status"] == "cancelled"
    assert_error(worker.post(f"/api/v1/jobs/{jid}/heartbeat", {"worker": "c"}), 409, "cancelled")
    assert_error(worker.put(f"/api/v1/jobs/{jid}/checkpoint",
                            {"worker": "c", "checkpoint": {}}), 409, "cancelled")
    assert_error(worker.post(f"/api/v1/jobs/{jid}/complete",
                             {"worker": "c", "outcome": "succeeded"}), 409, "cancelled")
    assert_error(editor.post(f"/api/v1/jobs/{jid}/cancel"), 409)
    assert claim(worker, label, "c").status == 204
    # A queued job can be cancelled too, and is never claimed.
    jid2 = make_job(editor, label)["id"]
    assert editor.post(f"/api/v1/jobs/{jid2}/cancel").body["status"] == "cancelled"
    assert claim(worker, label, "c").status == 204


def test_three_workers_race_for_100_jobs(server, editor, keys):
    label = uid()
    created = {make_job(editor, label, num_prompts=1)["id"] for _ in range(100)}
    claimed = [[] for _ in range(3)]

    def work(i):
        def run():
            c = server.client(key=keys["workers"][i]).new_connection()
            name = f"racer-{i}"
            try:
                while True:
                    r = claim(c, label, name)
                    if r.status == 204:
                        return
                    assert r.status == 200, r
                    jid = r.body["job"]["id"]
                    claimed[i].append(jid)
                    r = c.post(f"/api/v1/jobs/{jid}/complete",
                               {"worker": name, "outcome": "succeeded"})
                    assert r.status == 200, r
            finally:
                c.close()
        return run

    run_threads([work(i) for i in range(3)], timeout=120)
    every = [j for lst in claimed for j in lst]
    assert len(every) == len(set(every)) == 100
    assert set(every) == created
    done = {j["id"] for j in editor.list_all("/api/v1/jobs", {"status": "succeeded"})[0]}
    assert created <= done
