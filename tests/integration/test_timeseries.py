"""The time series of a run: GPU samples in and out, and, on PostgreSQL, the
month partitions that hold both series (made ahead by the server, rows moved
out of the default partition when their month's partition is made)."""

import csv
import datetime
import io
import subprocess
import urllib.parse

import pytest

from conftest import (
    PG_ADMIN_URL, STORE, assert_error, hardware_body, model_body, run_body, uid,
)

RUNS = "/api/v1/benchmarks"
T0 = 1_795_000_000_000  # 2026-11-18, ms


@pytest.fixture(scope="module")
def base(server):
    c = server.client()
    model = c.create("/api/v1/models", model_body(f"ts-org/m-{uid()}"))["id"]
    hw = c.create("/api/v1/hardware", hardware_body())["id"]
    c.close()
    return {"model": model, "hw": hw}


def gpu_rows(t0=T0, instants=3, gpus=2):
    rows = []
    for k in range(instants):
        for g in range(gpus):
            rows.append({
                "ts_ms": t0 + 1000 * k, "gpu": g, "util_pct": 90.5 + k,
                "mem_used_bytes": 70_000_000_000 + g, "power_w": 600.25 + g,
                "temp_c": 70.0 + k, "sm_clock_mhz": 1980.0,
                "energy_j": 1_000_000.5 + 600 * k,
            })
    rows.append({"ts_ms": t0 + 5000, "gpu": 7})  # a source that only knows the time
    return rows


def post_run(client, base, **extra):
    return client.create(RUNS, run_body(base["model"], base["hw"], **extra))


def test_gpu_samples_round_trip_json_and_csv(client, base):
    rows = gpu_rows()
    run = post_run(client, base, gpu_samples=list(reversed(rows)))
    r = client.get(f"{RUNS}/{run['id']}/gpu-samples")
    assert r.status == 200, r
    want = [dict({"util_pct": None, "mem_used_bytes": None, "power_w": None,
                  "temp_c": None, "sm_clock_mhz": None, "energy_j": None}, **x)
            for x in sorted(rows, key=lambda x: (x["ts_ms"], x["gpu"]))]
    assert r.body["items"] == want
    r = client.get(f"{RUNS}/{run['id']}/gpu-samples", headers={"Accept": "text/csv"})
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv"), r
    text = r.raw.decode() if isinstance(r.raw, bytes) else r.body
    got = list(csv.DictReader(io.StringIO(text)))
    assert [int(x["ts_ms"]) for x in got] == [x["ts_ms"] for x in want]
    assert got[0]["util_pct"] == "90.5" and got[-1]["util_pct"] == ""
    assert got[1]["mem_used_bytes"] == "70000000001"


def test_run_without_gpu_samples_has_an_empty_series(client, base):
    run = post_run(client, base)
    r = client.get(f"{RUNS}/{run['id']}/gpu-samples")
    assert r.status == 200 and r.body == {"items": []}, r
    assert_error(client.get(f"{RUNS}/{uid()}/gpu-samples"), 404)


@pytest.mark.parametrize("bad,field", [
    ({"ts_ms": T0, "gpu": 0, "util_pct": 100.5}, "gpu_samples[1].util_pct"),
    ({"ts_ms": T0, "util_pct": 5}, "gpu_samples[1].gpu"),
    ({"gpu": 0}, "gpu_samples[1].ts_ms"),
    ({"ts_ms": T0, "gpu": 0, "watts": 5}, "gpu_samples[1].watts"),
    ({"ts_ms": T0, "gpu": 1024}, "gpu_samples[1].gpu"),
    ({"ts_ms": -1, "gpu": 0}, "gpu_samples[1].ts_ms"),
    ({"ts_ms": T0, "gpu": 0, "power_w": "600"}, "gpu_samples[1].power_w"),
    ([1, 2], "gpu_samples"),
])
def test_bad_gpu_samples_are_refused_and_store_nothing(client, base, bad, field):
    sweep = f"bad-{uid()}"
    body = run_body(base["model"], base["hw"], sweep_id=sweep,
                    gpu_samples=[{"ts_ms": T0, "gpu": 0}, bad])
    assert_error(client.post(RUNS, body), 422, field=field)
    r = client.get(RUNS, params={"sweep_id": sweep})
    assert r.status == 200 and r.body["items"] == [], r


def test_gpu_samples_must_be_an_array(client, base):
    body = run_body(base["model"], base["hw"], gpu_samples={"ts_ms": T0, "gpu": 0})
    assert_error(client.post(RUNS, body), 422, field="gpu_samples")


def test_deleting_a_run_deletes_its_series(client, base):
    run = post_run(client, base, gpu_samples=gpu_rows(),
                   samples=[{"scheduled_ns": 0, "sent_ns": 1, "input_tokens": 1,
                             "output_tokens": 1}])
    assert client.delete(f"{RUNS}/{run['id']}").status == 204
    assert_error(client.get(f"{RUNS}/{run['id']}/gpu-samples"), 404)
    assert_error(client.get(f"{RUNS}/{run['id']}/samples"), 404)


# --------------------------------------------------------------------------
# PostgreSQL: month partitions

pg_only = pytest.mark.skipif(STORE != "postgres", reason="partitions are PostgreSQL's")


def sql(server, query):
    """Run query as the admin in the server's database; the rows as tuples of text."""
    u = urllib.parse.urlsplit(PG_ADMIN_URL)
    db = urllib.parse.urlsplit(server.db_url).path
    url = urllib.parse.urlunsplit((u.scheme, u.netloc, db, u.query, u.fragment))
    res = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          "-d", url, "-c", query], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [tuple(line.split("\t")) for line in res.stdout.splitlines()]


def month(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y%m")


def months_from_now(n):
    d = datetime.datetime.now(datetime.timezone.utc).replace(day=1)
    for _ in range(n):
        d = (d + datetime.timedelta(days=32)).replace(day=1)
    return d.strftime("%Y%m")


@pg_only
def test_series_are_partitioned_by_month_and_made_ahead(server, client, base):
    r = client.get("/readyz")
    assert r.status == 200, r
    ts = r.body["timeseries"]
    assert ts["kind"] == "partitioned", r.body
    parts = {p for (p,) in sql(server, "SELECT inhrelid::regclass FROM pg_inherits"
                                       " WHERE inhparent = 'samples'::regclass")}
    ahead = {f"samples_{months_from_now(k)}" for k in range(4)}  # --partitions-ahead 3
    assert ahead <= parts, parts
    assert "samples_default" in parts
    assert ts["partitions"]["samples"] == len(parts)

    run = post_run(client, base, samples=[{"scheduled_ns": i, "sent_ns": i, "input_tokens": 1,
                                           "output_tokens": 1} for i in range(3)],
                   gpu_samples=gpu_rows(t0=int(datetime.datetime.now().timestamp() * 1000)))
    where = sql(server, f"SELECT DISTINCT tableoid::regclass FROM samples"
                        f" WHERE run_id = '{run['id']}'")
    assert where == [(f"samples_{months_from_now(0)}",)]
    # The server reads a run's samples at its created_at: one partition.
    [(created,)] = sql(server, f"SELECT created_at FROM runs WHERE id = '{run['id']}'")
    plan = "\n".join(x[0] for x in sql(
        server, f"EXPLAIN SELECT * FROM samples WHERE run_id = '{run['id']}' AND ts = {created}"))
    assert f"samples_{months_from_now(0)}" in plan and "samples_default" not in plan, plan


@pg_only
def test_deletes_remove_the_series_without_foreign_keys(server, client, base):
    # The series have no foreign key on PostgreSQL: the catalog deletes them.
    fks = sql(server, "SELECT conname FROM pg_constraint WHERE contype = 'f'"
                      " AND conrelid IN ('samples'::regclass, 'gpu_samples'::regclass)")
    assert fks == [], fks
    one = [{"scheduled_ns": 0, "sent_ns": 1, "input_tokens": 1, "output_tokens": 1}]
    run = post_run(client, base, samples=one, gpu_samples=gpu_rows())
    assert client.delete(f"{RUNS}/{run['id']}").status == 204
    # Cascades through a model delete too.
    m = client.create("/api/v1/models", model_body(f"ts-org/c-{uid()}"))["id"]
    run2 = client.create(RUNS, run_body(m, base["hw"], samples=one, gpu_samples=gpu_rows()))
    from conftest import enc
    assert client.delete(f"/api/v1/models/{enc(m)}", params={"cascade": "true"}).status == 204
    for rid in (run["id"], run2["id"]):
        for table in ("samples", "gpu_samples"):
            assert sql(server, f"SELECT count(*) FROM {table} WHERE run_id = '{rid}'") == [("0",)]


@pg_only
def test_rows_outside_the_made_months_move_when_their_partition_is_made(
        server, client, base, server_factory):
    far = 1_924_992_000_000 + 86_400_000 * 10  # 2031-01-11
    run = post_run(client, base, gpu_samples=gpu_rows(t0=far))
    got = sql(server, f"SELECT tableoid::regclass, count(*) FROM gpu_samples"
                      f" WHERE run_id = '{run['id']}' GROUP BY 1")
    assert got == [("gpu_samples_default", str(len(gpu_rows())))], got
    # A second server on the store that keeps 60 months ahead makes 2031-01.
    other = server_factory(db_path=server.db_path, args=("--partitions-ahead", "60"))
    r = other.client().get("/readyz")
    assert r.status == 200, r
    got = sql(server, f"SELECT tableoid::regclass, count(*) FROM gpu_samples"
                      f" WHERE run_id = '{run['id']}' GROUP BY 1")
    assert got == [(f"gpu_samples_{month(far)}", str(len(gpu_rows())))], got
    r = client.get(f"{RUNS}/{run['id']}/gpu-samples")
    assert r.status == 200 and len(r.body["items"]) == len(gpu_rows()), r
