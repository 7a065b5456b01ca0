"""Benchmark runs: full round trip, derived costs, filters, sorts, samples, deletes,
idempotency and references."""

import csv
import io
import time
import urllib.parse

import pytest

from conftest import (
    LATENCY_FIELDS, RFC3339_MS, UUID_RE, approx, assert_error, assert_fields_equal, enc,
    hardware_body, ids_of, model_body, run_body, uid,
)

RUNS = "/api/v1/benchmarks"
MODELS = "/api/v1/models"
HW = "/api/v1/hardware"


def rpath(run_id):
    return f"{RUNS}/{run_id}"


def expected_cost(usd_per_hour, gpu_count, gpus_per_instance, output_throughput):
    return usd_per_hour * gpu_count / gpus_per_instance / (output_throughput * 3600) * 1e6


@pytest.fixture(scope="module")
def base(server):
    c = server.client()
    model = c.create(MODELS, model_body(f"bench-org/base-{uid()}"))["id"]
    hw = c.create(HW, hardware_body(gpus_per_instance=8, on_demand_usd_per_hour=98.32,
                                    spot_usd_per_hour=39.33))
    hw_nospot = c.create(HW, hardware_body(gpus_per_instance=4, on_demand_usd_per_hour=12.5,
                                           spot_usd_per_hour=None))
    c.close()
    return {"model": model, "hw": hw, "hw_nospot": hw_nospot}


def make_samples(n, start=0):
    out = []
    for i in range(n):
        ok = i % 10 != 3
        sched = (start + i) * 1_000_000
        out.append({
            "scheduled_ns": sched,
            "sent_ns": sched + 1500,
            "first_token_ns": sched + 25_000_000 + i if ok else None,
            "last_token_ns": sched + 900_000_000 + 7 * i if ok else None,
            "input_tokens": 1024 + i,
            "output_tokens": 128 if ok else 0,
            "error": None if ok else f'timeout, "retried" #{i}',
        })
    return out


def full_run(model, hw):
    body = run_body(
        model, hw,
        engine="vllm", engine_version="0.6.3.post1",
        engine_args="--max-num-seqs 256 --enable-chunked-prefill",
        gpu_count=2, tensor_parallel=2, dataset="sharegpt_v3.json",
        mean_input_tokens=1023.75, mean_output_tokens=127.5,
        request_rate=12.5, max_concurrency=64,
        duration=123.456789, completed=995, failed=5,
        total_input_tokens=1018624, total_output_tokens=126862,
        request_throughput=8.0595, output_throughput=1027.6183412, total_token_throughput=9278.1234567,
        request_goodput=7.25,
        tool="vllm-bench-serve", tool_version="0.6.3", seed=2**63 - 1,
        command="vllm bench serve --model x --dataset-name sharegpt",
        sweep_id="sweep-" + uid(),
    )
    for i, name in enumerate(LATENCY_FIELDS):
        body[name] = round(1.5 + i * 3.25 + 0.001 * i, 6)
    return body


# ---------------------------------------------------------------------------
# Round trip and derived costs
# ---------------------------------------------------------------------------


def test_full_run_round_trip_with_costs(client, base):
    hw = base["hw"]
    sent = full_run(base["model"], hw["id"])
    samples = make_samples(7)
    r = client.post(RUNS, dict(sent, samples=samples[::-1]))
    assert r.status == 201, r
    run = r.body
    assert UUID_RE.match(run["id"]), run["id"]
    assert RFC3339_MS.match(run["created_at"]), run
    assert urllib.parse.urlsplit(r.headers.get("location", "")).path == rpath(run["id"]), r.headers
    assert_fields_equal(sent, run)
    assert run["seed"] == 2**63 - 1, "seed lost precision"
    assert run["sample_count"] == 7
    assert "samples" not in run, "samples must not be repeated in the run"

    od = expected_cost(98.32, 2, 8, sent["output_throughput"])
    spot = expected_cost(39.33, 2, 8, sent["output_throughput"])
    assert approx(run["cost_per_1m_output_tokens_on_demand_usd"], od, 1e-6), (run, od)
    assert approx(run["cost_per_1m_output_tokens_spot_usd"], spot, 1e-6), (run, spot)

    g = client.get(rpath(run["id"]))
    assert g.status == 200, g
    assert g.body == run


def test_defaults_and_unbounded_request_rate(client, base):
    r = client.post(RUNS, run_body(base["model"], base["hw"]["id"], request_rate=None))
    assert r.status == 201, r
    assert r.body["gpu_count"] == 1 and r.body["tensor_parallel"] == 1
    assert r.body.get("request_rate") is None
    assert r.body["sample_count"] == 0
    body = {k: v for k, v in run_body(base["model"], base["hw"]["id"]).items()
            if k not in ("gpu_count", "tensor_parallel", "failed", "engine_version")}
    r2 = client.post(RUNS, body)
    assert r2.status == 201, r2
    assert r2.body["gpu_count"] == 1 and r2.body["tensor_parallel"] == 1


def test_spot_cost_is_null_when_spot_price_unknown(client, base):
    hw = base["hw_nospot"]
    r = client.post(RUNS, run_body(base["model"], hw["id"], gpu_count=3, output_throughput=500.0))
    assert r.status == 201, r
    assert r.body["cost_per_1m_output_tokens_spot_usd"] is None
    assert approx(r.body["cost_per_1m_output_tokens_on_demand_usd"],
                  expected_cost(12.5, 3, 4, 500.0), 1e-6), r.body


def test_costs_are_null_when_output_throughput_is_zero(client, base):
    r = client.post(RUNS, run_body(base["model"], base["hw"]["id"], output_throughput=0,
                                   total_output_tokens=0))
    assert r.status == 201, r
    assert r.body["cost_per_1m_output_tokens_on_demand_usd"] is None
    assert r.body["cost_per_1m_output_tokens_spot_usd"] is None


def test_costs_follow_current_hardware_prices(client, base):
    hw = client.create(HW, hardware_body(gpus_per_instance=1, on_demand_usd_per_hour=2.0,
                                         spot_usd_per_hour=1.0))
    run = client.create(RUNS, run_body(base["model"], hw["id"], output_throughput=100.0))
    assert approx(run["cost_per_1m_output_tokens_on_demand_usd"], expected_cost(2.0, 1, 1, 100.0), 1e-6)

    p = client.put(f"{HW}/{enc(hw['id'])}", dict(hw, on_demand_usd_per_hour=4.0, spot_usd_per_hour=None))
    assert p.status == 200, p
    g = client.get(rpath(run["id"])).body
    assert approx(g["cost_per_1m_output_tokens_on_demand_usd"], expected_cost(4.0, 1, 1, 100.0), 1e-6), g
    assert g["cost_per_1m_output_tokens_spot_usd"] is None


# ---------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------


def test_list_filters(client, base):
    hw1 = base["hw"]["id"]
    hw2 = base["hw_nospot"]["id"]
    m1 = client.create(MODELS, model_body())["id"]
    m2 = client.create(MODELS, model_body())["id"]
    eng_a, eng_b = "ea" + uid(), "eb" + uid()
    ver_a, ver_b = "1.0-" + uid(), "2.0-" + uid()
    sw1, sw2 = "sw-" + uid(), "sw-" + uid()
    ds1, ds2 = "ds-" + uid() + ".json", "ds-" + uid()
    spec = {
        "r1": dict(model=m1, engine=eng_a, engine_version=ver_a, hardware=hw1, gpu_count=1, sweep_id=sw1, dataset=ds1),
        "r2": dict(model=m1, engine=eng_b, engine_version=ver_b, hardware=hw2, gpu_count=2, sweep_id=sw1, dataset=ds2),
        "r3": dict(model=m2, engine=eng_a, engine_version=ver_b, hardware=hw1, gpu_count=8, sweep_id=sw2, dataset=ds1),
        "r4": dict(model=m2, engine=eng_a, engine_version=ver_a, hardware=hw2, gpu_count=1, sweep_id=None, dataset=ds2),
    }
    ids = {}
    for name, s in spec.items():
        body = run_body(s.pop("model"), s.pop("hardware"), **s)
        ids[name] = client.create(RUNS, body)["id"]

    def f(**params):
        items, _ = client.list_all(RUNS, params)
        found = ids_of(items)
        assert len(found) == len(set(found))
        return sorted(found)

    def want(*names):
        return sorted(ids[n] for n in names)

    assert f(model=m1) == want("r1", "r2")
    assert f(model=m2) == want("r3", "r4")
    assert f(engine=eng_a) == want("r1", "r3", "r4")
    assert f(engine=eng_b) == want("r2")
    assert f(engine_version=ver_b) == want("r2", "r3")
    assert f(engine=eng_a, engine_version=ver_a) == want("r1", "r4")
    assert f(model=m1, hardware=hw1) == want("r1")
    assert f(model=m2, hardware=hw2) == want("r4")
    assert f(model=m2, gpu_count="8") == want("r3")
    assert f(engine=eng_a, gpu_count="1") == want("r1", "r4")
    assert f(sweep_id=sw1) == want("r1", "r2")
    assert f(sweep_id=sw2) == want("r3")
    assert f(dataset=ds1) == want("r1", "r3")
    assert f(dataset=ds2, model=m1) == want("r2")
    assert f(model=m1, engine=eng_a, engine_version=ver_a, hardware=hw1, gpu_count="1",
             sweep_id=sw1, dataset=ds1) == want("r1")
    assert f(model=m1, sweep_id=sw2) == []


def test_list_parameter_errors(client):
    assert_error(client.get(RUNS, {"gpu_count": "many"}), 400, "bad_parameter", "gpu_count")
    assert_error(client.get(RUNS, {"sort": "not_a_metric"}), 400, "bad_parameter", "sort")
    assert_error(client.get(RUNS, {"limit": "0"}), 400, "bad_parameter", "limit")
    assert_error(client.get(RUNS, {"cursor": "zzzz"}), 400, "bad_cursor")


@pytest.fixture(scope="module")
def metric_set(server, base):
    """Runs of one sweep, some without p99_ttft_ms / request_goodput, created in order."""
    c = server.client()
    sweep = "metric-" + uid()
    spec = [  # (output_throughput, p99_ttft_ms, request_goodput)
        (500.5, 120.0, None),
        (1500.0, None, 3.5),
        (250.25, 80.5, 1.25),
        (3000.0, 300.0, None),
        (750.0, None, 9.0),
        (2000.0, 45.0, 4.75),
    ]
    runs = []
    for od, p99, good in spec:
        body = run_body(base["model"], base["hw"]["id"], sweep_id=sweep, output_throughput=od)
        if p99 is not None:
            body["p99_ttft_ms"] = p99
        body["request_goodput"] = good
        runs.append(c.create(RUNS, body))
        time.sleep(0.01)
    c.close()
    return sweep, runs


@pytest.mark.parametrize("sort", ["output_throughput", "-output_throughput", "p99_ttft_ms",
                                  "-p99_ttft_ms", "request_goodput", "-request_goodput"])
def test_sort_by_metric_with_missing_last(client, metric_set, sort):
    sweep, runs = metric_set
    field = sort.lstrip("-")
    desc = sort.startswith("-")
    with_metric = sorted((r for r in runs if r.get(field) is not None),
                         key=lambda r: r[field], reverse=desc)
    without = {r["id"] for r in runs if r.get(field) is None}
    expected_head = ids_of(with_metric)

    for limit in (200, 2):
        items, _ = client.list_all(RUNS, {"sweep_id": sweep, "sort": sort}, limit=limit)
        got = ids_of(items)
        assert len(got) == len(set(got)) == len(runs), got
        assert got[: len(expected_head)] == expected_head, f"sort={sort} limit={limit}: {got}"
        assert set(got[len(expected_head):]) == without, f"runs lacking {field} must come last"


def test_sort_created_and_default(client, metric_set):
    sweep, runs = metric_set
    order = ids_of(runs)
    items, _ = client.list_all(RUNS, {"sweep_id": sweep, "sort": "created"}, limit=4)
    assert ids_of(items) == order
    items, _ = client.list_all(RUNS, {"sweep_id": sweep, "sort": "-created"}, limit=4)
    assert ids_of(items) == order[::-1]
    r = client.get(RUNS, {"sweep_id": sweep})
    assert r.status == 200, r
    assert ids_of(r.body["items"]) == order[::-1], "default sort is -created"


def test_cursor_with_other_sort_is_400(client, metric_set):
    sweep, _ = metric_set
    r = client.get(RUNS, {"sweep_id": sweep, "sort": "-output_throughput", "limit": "2"})
    cursor = r.body["next_cursor"]
    assert cursor
    assert_error(client.get(RUNS, {"sweep_id": sweep, "sort": "output_throughput", "limit": "2",
                                   "cursor": cursor}), 400, "bad_cursor")
    assert_error(client.get(RUNS, {"sweep_id": sweep, "limit": "2", "cursor": cursor}), 400, "bad_cursor")


def test_model_benchmarks_route(client, base):
    m1 = client.create(MODELS, model_body(f"bench-org/route-{uid()}"))["id"]
    m2 = client.create(MODELS, model_body())["id"]
    hw = base["hw"]["id"]
    eng = "er" + uid()
    a = client.create(RUNS, run_body(m1, hw, engine=eng, output_throughput=10.0))["id"]
    b = client.create(RUNS, run_body(m1, hw, output_throughput=30.0))["id"]
    c = client.create(RUNS, run_body(m1, hw, engine=eng, output_throughput=20.0))["id"]
    client.create(RUNS, run_body(m2, hw, engine=eng))
    route = f"{MODELS}/{enc(m1)}/benchmarks"

    items, _ = client.list_all(route, {"sort": "-output_throughput"}, limit=2)
    assert ids_of(items) == [b, c, a]
    items, _ = client.list_all(route, {"engine": eng, "sort": "output_throughput"})
    assert ids_of(items) == [a, c]
    assert all(i["model"] == m1 for i in items)
    assert_error(client.get(f"{MODELS}/{enc('nobody/none-' + uid())}/benchmarks"), 404, "not_found")


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------

SAMPLE_FIELDS = ["scheduled_ns", "sent_ns", "first_token_ns", "last_token_ns", "input_tokens",
                 "output_tokens", "error"]


def test_samples_as_json_and_csv(client, base):
    samples = make_samples(2000)
    shuffled = samples[1::2] + samples[0::2]
    run = client.create(RUNS, dict(run_body(base["model"], base["hw"]["id"]), samples=shuffled))
    assert run["sample_count"] == 2000

    r = client.get(rpath(run["id"]) + "/samples")
    assert r.status == 200, r
    assert r.body["items"] == samples, "samples differ or are not ordered by scheduled_ns"

    c = client.get(rpath(run["id"]) + "/samples", headers={"Accept": "text/csv"})
    assert c.status == 200, c
    assert c.headers.get("content-type", "").lower().startswith("text/csv"), c.headers
    rows = list(csv.reader(io.StringIO(c.raw.decode("utf-8"))))
    header, data = rows[0], rows[1:]
    assert set(SAMPLE_FIELDS) <= set(header), header
    assert len(data) == 2000, f"{len(data)} CSV data rows"
    col = {name: header.index(name) for name in SAMPLE_FIELDS}
    assert [int(row[col["scheduled_ns"]]) for row in data] == [s["scheduled_ns"] for s in samples]
    for row, s in zip(data, samples):
        assert len(row) == len(header), row
        assert int(row[col["output_tokens"]]) == s["output_tokens"]
        if s["error"] is None:
            assert row[col["error"]] == ""
            assert int(row[col["first_token_ns"]]) == s["first_token_ns"]
        else:
            assert row[col["error"]] == s["error"], "CSV quoting lost the error text"
            assert row[col["first_token_ns"]] == ""


def test_samples_of_run_without_samples(client, base):
    run = client.create(RUNS, run_body(base["model"], base["hw"]["id"], samples=None))
    assert run["sample_count"] == 0
    r = client.get(rpath(run["id"]) + "/samples")
    assert r.status == 200 and r.body["items"] == [], r
    c = client.get(rpath(run["id"]) + "/samples", headers={"Accept": "text/csv"})
    assert c.status == 200, c
    rows = [row for row in csv.reader(io.StringIO(c.raw.decode("utf-8"))) if row]
    assert len(rows) == 1 and set(SAMPLE_FIELDS) <= set(rows[0]), rows


def test_unknown_run_is_404(client):
    missing = "00000000-0000-7000-8000-000000000000"
    assert_error(client.get(rpath(missing)), 404, "not_found")
    assert_error(client.get(rpath(missing) + "/samples"), 404, "not_found")
    assert_error(client.delete(rpath(missing)), 404, "not_found")
    assert_error(client.get(rpath("not-a-uuid")), 404, "not_found")


# ---------------------------------------------------------------------------
# Deletes
# ---------------------------------------------------------------------------


def test_delete_run(client, base):
    run = client.create(RUNS, dict(run_body(base["model"], base["hw"]["id"]), samples=make_samples(3)))
    d = client.delete(rpath(run["id"]))
    assert d.status == 204 and d.raw == b"", d
    assert_error(client.get(rpath(run["id"])), 404, "not_found")
    assert_error(client.get(rpath(run["id"]) + "/samples"), 404, "not_found")
    assert_error(client.delete(rpath(run["id"])), 404, "not_found")


def test_model_delete_refused_while_referenced_unless_cascade(client, base):
    model = client.create(MODELS, model_body())["id"]
    hw = base["hw"]["id"]
    runs = [client.create(RUNS, dict(run_body(model, hw), samples=make_samples(4)))["id"] for _ in range(3)]
    mp = f"{MODELS}/{enc(model)}"
    assert_error(client.delete(mp), 409, "conflict")
    assert client.get(mp).status == 200
    assert all(client.get(rpath(r)).status == 200 for r in runs)

    d = client.delete(mp, {"cascade": "true"})
    assert d.status == 204, d
    assert_error(client.get(mp), 404, "not_found")
    for r in runs:
        assert_error(client.get(rpath(r)), 404, "not_found")
        assert_error(client.get(rpath(r) + "/samples"), 404, "not_found")
    items, _ = client.list_all(RUNS, {"model": model})
    assert items == []
    assert client.get(f"{HW}/{enc(hw)}").status == 200


# ---------------------------------------------------------------------------
# Idempotency and references
# ---------------------------------------------------------------------------


def test_idempotency_key(client, base):
    sweep = "idem-" + uid()
    body = run_body(base["model"], base["hw"]["id"], sweep_id=sweep)
    key = "key-" + uid()
    first = client.post(RUNS, body, headers={"Idempotency-Key": key})
    assert first.status == 201, first
    again = client.post(RUNS, body, headers={"Idempotency-Key": key})
    assert again.status == 200, again
    assert again.body["id"] == first.body["id"]
    assert again.body == first.body

    other = client.post(RUNS, dict(body, completed=999), headers={"Idempotency-Key": key})
    assert_error(other, 409, "idempotency_conflict")

    # Without the key (or with another key) the same body makes a new run.
    fresh = client.post(RUNS, body, headers={"Idempotency-Key": "key-" + uid()})
    assert fresh.status == 201 and fresh.body["id"] != first.body["id"], fresh
    items, _ = client.list_all(RUNS, {"sweep_id": sweep})
    assert sorted(ids_of(items)) == sorted([first.body["id"], fresh.body["id"]])


def test_unknown_model_or_hardware_is_422(client, base):
    r = client.post(RUNS, run_body(f"nobody/none-{uid()}", base["hw"]["id"]))
    assert_error(r, 422, "validation_failed", "model")
    r = client.post(RUNS, run_body(base["model"], f"nohw-{uid()}"))
    assert_error(r, 422, "validation_failed", "hardware")
