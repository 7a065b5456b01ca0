"""GET /metrics end to end: the Prometheus text of a running server passes
`promtool check metrics` after real traffic; its counters move with the
requests (route templates, methods, statuses, latency histograms), the
response cache's hits, the store's errors, jobs by status, checkpoints and
releases; build info is there; and a real Prometheus (the Debian binary,
on loopback, with a temporary config and storage) scrapes the server and
answers a query for the request counter."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import enc, hardware_body, model_body, run_body, uid

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels.items())): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = {}
        if m.group(2):
            for k, v in LABEL_RE.findall(m.group(2)):
                labels[k] = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(server):
    c = server.client(key=None)  # public: no credential
    try:
        r = c.get("/metrics")
    finally:
        c.close()
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.raw.decode()


def test_counters_move_with_requests(server, client):
    mid = f"metrics-org/{uid()}"
    assert client.post("/api/v1/models", model_body(mid)).status == 201
    before = parse(scrape(server))
    for _ in range(3):
        assert client.get(f"/api/v1/models/{enc(mid)}").status == 200
    assert client.get("/no/such/route").status == 404
    after = parse(scrape(server))
    route = "/api/v1/models/{id}"
    key = dict(route=route, method="GET", status="200")
    assert value(after, "modelcat_http_requests_total", **key) - \
        value(before, "modelcat_http_requests_total", **key) == 3
    cnt = "modelcat_http_request_duration_seconds_count"
    assert value(after, cnt, route=route, method="GET") - \
        value(before, cnt, route=route, method="GET") == 3
    inf = dict(route=route, method="GET", le="+Inf")
    assert value(after, "modelcat_http_request_duration_seconds_bucket", **inf) == \
        value(after, cnt, route=route, method="GET")
    assert value(after, "modelcat_http_requests_total", route="unmatched", method="GET",
                 status="404") >= 1
    # The first GET stored the page, the next two were answered from it.
    hits = dict(level="local", result="hit")
    assert value(after, "modelcat_cache_requests_total", **hits) - \
        value(before, "modelcat_cache_requests_total", **hits) >= 2
    assert value(after, "modelcat_cache_entries", level="local") >= 1
    assert value(after, "modelcat_build_info", version=value_of_version(after)) == 1
    assert value(after, "modelcat_process_start_time_seconds") > 1.6e9
    assert value(after, "modelcat_uptime_seconds") >= 0
    assert value(after, "modelcat_http_requests_in_flight") >= 1  # the scrape itself
    # The scrape's own line appears from the next scrape on, never raw paths.
    text = scrape(server)
    assert 'route="/metrics"' in text and mid not in text


def value_of_version(samples):
    versions = [dict(l)["version"] for (n, l) in samples if n == "modelcat_build_info"]
    assert len(versions) == 1 and re.match(r"^\d+\.\d+\.\d+", versions[0]), versions
    return versions[0]


def test_db_errors_and_queries(server, client):
    mid = f"metrics-org/{uid()}"
    assert client.post("/api/v1/models", model_body(mid)).status == 201
    before = parse(scrape(server))
    assert client.post("/api/v1/models", model_body(mid)).status == 409  # unique key
    after = parse(scrape(server))
    backend = "postgres" if server.db_url.startswith("postgres") else "sqlite"
    err = dict(backend=backend, role="primary", code="exists")
    assert value(after, "modelcat_db_errors_total", **err) - \
        value(before, "modelcat_db_errors_total", **err) == 1
    cnt = "modelcat_db_query_duration_seconds_count"
    assert value(after, cnt, backend=backend, role="primary") > \
        value(before, cnt, backend=backend, role="primary")


def test_jobs_checkpoints_releases(server, client):
    label = uid()
    body = {"backend": "vllm", "base_url": "http://127.0.0.1:9000", "model": "sim-model",
            "dataset": "random", "input_len": 16, "output_len": 4, "num_prompts": 2,
            "labels": {"test": label}}
    before = parse(scrape(server))
    r = client.post("/api/v1/jobs", body)
    assert r.status == 201, r
    jid = r.body["id"]
    r = client.post("/api/v1/jobs/claim", {"worker": "mw", "labels": {"test": label}})
    assert r.status == 200, r
    r = client.put(f"/api/v1/jobs/{jid}/checkpoint", {"worker": "mw",
                                                     "checkpoint": {"state": "x" * 2000}})
    assert r.status == 200, r
    r = client.post(f"/api/v1/jobs/{jid}/release", {"worker": "mw", "reason": "spot"})
    assert r.status == 200, r
    time.sleep(1.1)  # job counts are reused for a second
    after = parse(scrape(server))
    assert value(after, "modelcat_job_releases_total") - \
        value(before, "modelcat_job_releases_total") == 1
    cb = "modelcat_job_checkpoint_bytes_count"
    assert value(after, cb) - value(before, cb) == 1
    assert value(after, "modelcat_job_checkpoint_bytes_bucket", le="1024") == \
        value(before, "modelcat_job_checkpoint_bytes_bucket", le="1024")
    assert value(after, "modelcat_job_checkpoint_duration_seconds_count") >= 1
    assert value(after, "modelcat_jobs", status="queued") >= 1  # released: queued again
    for st in ("running", "succeeded", "failed", "cancelled"):
        assert ("modelcat_jobs", frozenset({"status": st}.items())) in after


def test_job_completions_and_catalog_costs(server_factory):
    """Completions by outcome, and the cheapest cost per 1M output tokens by
    model, engine and hardware (read once a minute: a fresh server)."""
    srv = server_factory()
    c = srv.client()
    m = c.create("/api/v1/models", model_body(f"metrics-org/c-{uid()}"))["id"]
    hw = c.create("/api/v1/hardware", hardware_body(gpus_per_instance=8,
                                                    on_demand_usd_per_hour=98.32,
                                                    spot_usd_per_hour=39.33))["id"]
    for tput, gpus in ((2000.0, 1), (9000.0, 2)):  # 4,500 tok/s per GPU is the cheaper
        c.create("/api/v1/benchmarks", run_body(m, hw, output_throughput=tput, gpu_count=gpus,
                                                engine="vllm"))
    label = uid()
    spec = {"base_url": "http://127.0.0.1:9000", "model": "sim-model", "num_prompts": 2,
            "labels": {"t": label}}
    for outcome in ("succeeded", "failed"):
        jid = c.post("/api/v1/jobs", spec).body["id"]
        assert c.post("/api/v1/jobs/claim", {"worker": "w", "labels": {"t": label}}).status == 200
        r = c.post(f"/api/v1/jobs/{jid}/complete", {"worker": "w", "outcome": outcome,
                                                    "reason": "test"})
        assert r.status == 200, r
    got = parse(scrape(srv))
    assert value(got, "modelcat_job_completions_total", outcome="succeeded") == 1
    assert value(got, "modelcat_job_completions_total", outcome="failed") == 1
    cost = "modelcat_catalog_cost_per_1m_output_tokens_usd"
    want = 98.32 / 8 / (4500 * 3600) * 1e6
    assert abs(value(got, cost, model=m, engine="vllm", hardware=hw, pricing="on_demand")
               - want) < 1e-6 * want
    want = 39.33 / 8 / (4500 * 3600) * 1e6
    assert abs(value(got, cost, model=m, engine="vllm", hardware=hw, pricing="spot")
               - want) < 1e-6 * want


def test_promtool_check(server, client):
    assert shutil.which(PROMTOOL) or False, "promtool missing: run scripts/install-deps.sh"
    client.get("/api/v1/models")
    client.get("/api/v1/models", params={"limit": "1"})
    client.request("PATCH", "/healthz")  # 405, unmatched
    text = scrape(server)
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, f"promtool: {res.stdout}{res.stderr}"
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_real_prometheus_scrapes(server, client, tmp_path):
    assert shutil.which(PROMETHEUS) or False, "prometheus missing: run scripts/install-deps.sh"
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: modelcat\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{server.port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        for _ in range(5):
            assert client.get("/healthz").status == 200
        q = 'modelcat_http_requests_total{route="/healthz",method="GET",status="200"}'
        deadline, got = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                res = prom_query(port, q)
                got = res["data"]["result"]
                if got and float(got[0]["value"][1]) >= 5:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert got, "Prometheus never returned the series:\n" + \
            (tmp_path / "prometheus.log").read_text()[-2000:]
        assert got[0]["metric"]["job"] == "modelcat"
        assert float(got[0]["value"][1]) >= 5
        up = prom_query(port, 'up{job="modelcat"}')["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
