"""`modelcat worker` end to end over loopback: a real server, `modelcat
sim` engines, worker processes, and a fake AWS metadata service. Jobs run
to their end, survive a spot notice, SIGTERM and kill -9 (resumed by a
second worker from the checkpoint), stop on cancel, and fail with a clear
reason when the engine cannot be reached. A resumed point must end with
exactly its planned samples, none duplicated.

The time from a notice to the released checkpoint is printed, not
asserted."""

import http.server
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import hardware_body, model_body, modelcat_bin, uid
from test_bench import Sim

WORKER_TIMEOUT = 120


@pytest.fixture
def env(server_factory):
    srv = server_factory()
    c = srv.client()
    model = model_body()
    c.create("/api/v1/models", model)
    hw = hardware_body(gpus_per_instance=8)
    c.create("/api/v1/hardware", hw)
    r = c.post("/api/v1/keys", {"name": "bench node", "role": "worker"})
    assert r.status == 201, r
    yield {"srv": srv, "c": c, "url": f"http://127.0.0.1:{srv.port}", "key": r.body["key"],
           "model": model["id"], "hw": hw["id"]}
    c.close()


def make_job(env, sim_url, label, **over):
    body = {"backend": "vllm", "base_url": sim_url, "model": "sim-model", "dataset": "random",
            "input_len": 16, "output_len": 8, "ignore_eos": True, "num_prompts": 20,
            "max_concurrency": 4, "seed": 5, "warmup": 1, "catalog_model": env["model"],
            "hardware": env["hw"], "engine": "sim", "labels": {"test": label}}
    body.update(over)
    r = env["c"].post("/api/v1/jobs", body)
    assert r.status == 201, r
    return r.body["id"]


class Worker:
    def __init__(self, env, label, *args):
        self.lines = []
        self.proc = subprocess.Popen(
            [modelcat_bin(), "worker", "--api", env["url"], "--api-key", env["key"],
             "--labels", f"test={label}", "--worker-name", f"w-{uid()}", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait(self, timeout=WORKER_TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("worker did not exit:\n" + self.log())
        self.reader.join(5)
        return rc

    def log(self):
        return "".join(self.lines[-60:])

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, x) for x in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the worker's log:\n{self.log()}")


def job(env, jid):
    r = env["c"].get(f"/api/v1/jobs/{jid}")
    assert r.status == 200, r
    return r.body


def wait_job(env, jid, statuses, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job(env, jid)
        if j["status"] in statuses:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {jid} stayed {j['status']}: {j}")


def samples_of(env, run_id):
    items, cursor = [], None
    while True:
        params = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = env["c"].get(f"/api/v1/benchmarks/{run_id}/samples", params=params)
        assert r.status == 200, r
        items += r.body["items"]
        cursor = r.body.get("next_cursor")
        if not cursor:
            return items


def check_runs(env, j, points, planned):
    assert j["status"] == "succeeded", j
    assert len(j["run_ids"]) == points, j
    for rid in j["run_ids"]:
        run = env["c"].get(f"/api/v1/benchmarks/{rid}").body
        assert run["sample_count"] == planned, run
        assert run["completed"] + run["failed"] == planned, run
        assert len(samples_of(env, rid)) == planned


def test_happy_path_two_point_sweep(tmp_path, env):
    sim = Sim(tmp_path, "--itl-ms", "1", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        jid = make_job(env, sim.url, label, sweep="concurrency=1,4", num_prompts=12)
        w = Worker(env, label, "--once")
        assert w.wait() == 0, w.log()
        check_runs(env, job(env, jid), 2, 12)
        truth = sim.truth_rows()
        assert len(truth) == 2 * (12 + 1)  # each point: its warmup and its prompts
        # The benchmark joins the job attempt's trace: one trace id for all
        # its requests (a single attempt here), each with a span of its own.
        parents = [t["traceparent"] for t in truth.values()]
        assert all(p and re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", p)
                   for p in parents), parents
        assert len({p.split("-")[1] for p in parents}) == 1, parents
        assert len({p.split("-")[2] for p in parents}) == len(parents), parents
    finally:
        sim.stop()


class Metadata:
    """A fake AWS IMDSv2: token, then spot/instance-action 404 until armed."""

    def __init__(self):
        self.armed_at = None
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                self._send(200 if self.path == "/latest/api/token" else 404, b"tok")

            def do_GET(self):
                if self.path == "/latest/meta-data/spot/instance-action" and outer.armed_at:
                    self._send(200, json.dumps({"action": "terminate",
                                                "time": "2030-01-01T00:00:00Z"}).encode())
                else:
                    self._send(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def arm(self):
        self.armed_at = time.monotonic()

    def close(self):
        self.httpd.shutdown()


def handled_ms(w):
    for line in w.lines:
        m = re.search(r"([\d.]+) ms from notice to released checkpoint \(([\d.]+) ms draining, "
                      r"([\d.]+) ms without", line)
        if m:
            return float(m.group(1)), float(m.group(2)), float(m.group(3))
    raise AssertionError("no handling time logged:\n" + w.log())


def resume_and_check(tmp_path, env, sim, jid, label, planned, points=1):
    j = wait_job(env, jid, ("queued",))
    assert j["attempts"] == 1, j
    w2 = Worker(env, label, "--once", "--cloud", "none")
    assert w2.wait() == 0, w2.log()
    assert any("resuming at point" in x for x in w2.lines), w2.log()
    j = job(env, jid)
    check_runs(env, j, points, planned)
    # The catalog holds exactly the planned samples. The drain (60 s by
    # default) let every request in flight finish, so the sim saw each
    # planned request once, plus one warmup request per attempt.
    truth = sim.truth_rows()
    assert len(truth) == planned * points + 2 * points, (len(truth), planned)
    return j


def test_spot_notice_releases_and_a_second_worker_resumes(tmp_path, env):
    sim = Sim(tmp_path, "--itl-ms", "20", "--itl-ms-per-seq", "0")
    md = Metadata()
    try:
        label = uid()
        planned = 60
        jid = make_job(env, sim.url, label, num_prompts=planned, output_len=10)
        w = Worker(env, label, "--once", "--cloud", "aws", "--metadata-url", md.url,
                   "--poll-interval", "0.2", "--checkpoint-interval", "0.5")
        w.wait_for(r"point 1/1: \d+ of 60")
        time.sleep(1.0)
        md.arm()
        assert w.wait() == 0, w.log()
        assert any("notice: kind=terminate" in x for x in w.lines), w.log()
        total, drain, handling = handled_ms(w)
        print(f"\nspot notice -> released checkpoint: {total:.1f} ms "
              f"({drain:.1f} ms draining, {handling:.1f} ms without the drain)")
        j = job(env, jid)
        assert j["status"] == "queued" and j["attempts"] == 1, j
        resume_and_check(tmp_path, env, sim, jid, label, planned)
    finally:
        md.close()
        sim.stop()


def test_sigterm_is_a_notice(tmp_path, env):
    sim = Sim(tmp_path, "--itl-ms", "20", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        jid = make_job(env, sim.url, label, num_prompts=60, output_len=10)
        w = Worker(env, label, "--once", "--cloud", "none")
        w.wait_for(r"point 1/1: \d+ of 60")
        time.sleep(1.0)
        w.proc.send_signal(signal.SIGTERM)
        assert w.wait() == 0, w.log()
        assert any("notice handled: kind=sigterm" in x for x in w.lines), w.log()
        resume_and_check(tmp_path, env, sim, jid, label, 60)
    finally:
        sim.stop()


def test_kill9_lease_expires_and_a_second_worker_resumes(tmp_path, env):
    sim = Sim(tmp_path, "--itl-ms", "20", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        jid = make_job(env, sim.url, label, num_prompts=60, output_len=10)
        w = Worker(env, label, "--once", "--lease", "2", "--checkpoint-interval", "0.3")
        w.wait_for(r"point 1/1: \d+ of 60")
        time.sleep(1.5)
        w.proc.kill()
        w.wait()
        time.sleep(2.5)  # the lease runs out; the next claim requeues it
        w2 = Worker(env, label, "--once")
        assert w2.wait() == 0, w2.log()
        assert any("resuming at point" in x for x in w2.lines), w2.log()
        j = job(env, jid)
        assert j["attempts"] == 2, j
        check_runs(env, j, 1, 60)
    finally:
        sim.stop()


def test_cancel_stops_the_worker(tmp_path, env):
    sim = Sim(tmp_path, "--itl-ms", "20", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        jid = make_job(env, sim.url, label, num_prompts=400, output_len=10)
        w = Worker(env, label, "--once", "--lease", "3")
        w.wait_for(r"point 1/1: \d+ of 400")
        r = env["c"].post(f"/api/v1/jobs/{jid}/cancel")
        assert r.status == 200, r
        assert w.wait(30) == 0, w.log()
        assert any("was cancelled" in x for x in w.lines), w.log()
        assert job(env, jid)["status"] == "cancelled"
    finally:
        sim.stop()


def test_unreachable_engine_fails_the_job(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    label = uid()
    jid = make_job(env, f"http://127.0.0.1:{port}", label, num_prompts=3, max_attempts=2)
    for _ in range(2):
        w = Worker(env, label, "--once")
        assert w.wait() == 0, w.log()
    j = job(env, jid)
    assert j["status"] == "failed", j
    assert "no request completed" in j["reason"] and "connect" in j["reason"], j


def test_bad_flags_exit_2():
    for args in (["--api", "ftp://x"], ["--cloud", "mars"], ["--labels", "novalue"], []):
        p = subprocess.run([modelcat_bin(), "worker", *args], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode == 2, (args, p.stderr)


def test_gpu_telemetry_published_with_the_run(tmp_path, env):
    from test_telemetry import stub_library
    sim = Sim(tmp_path, "--itl-ms", "2", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        jid = make_job(env, sim.url, label, gpu_telemetry="nvml",
                       gpu_telemetry_interval=0.05, nvml_library=stub_library())
        w = Worker(env, label, "--once")
        assert w.wait() == 0, w.log()
        j = job(env, jid)
        check_runs(env, j, 1, 20)
        rid = j["run_ids"][0]
        run = env["c"].get(f"/api/v1/benchmarks/{rid}").body
        items = env["c"].get(f"/api/v1/benchmarks/{rid}/gpu-samples").body["items"]
        assert items, run
        assert {x["gpu"] for x in items} == {0, 1}  # the stub's two GPUs
        assert run["gpu_util_mean_pct"] == pytest.approx(50), run  # GPUs at 40 and 60 %
        assert run["gpu_util_max_pct"] == pytest.approx(60)
        assert run["gpu_mem_peak_bytes"] == 2 << 30
        assert run["gpu_power_mean_w"] == pytest.approx(250)
        assert run["energy_per_output_token_j"] > 0, run
    finally:
        sim.stop()


def test_metrics_listen_during_and_after_a_job(tmp_path, env):
    from test_metrics_listen import URL_RE, _promtool, _scrape, _value
    sim = Sim(tmp_path, "--itl-ms", "20", "--itl-ms-per-seq", "0")
    try:
        label = uid()
        # ~3 s: 40 prompts of 8 tokens at 20 ms a token, two at a time.
        jid = make_job(env, sim.url, label, num_prompts=40, max_concurrency=2)
        w = Worker(env, label, "--metrics-listen", "127.0.0.1:0", "--poll-interval", "0.2")
        try:
            w.wait_for(URL_RE.pattern)
            url = next(URL_RE.search(x).group(1) for x in w.lines if URL_RE.search(x))
            ok, text, end = 0, "", time.monotonic() + 30
            while time.monotonic() < end and job(env, jid)["status"] != "succeeded":
                text = _scrape(url)
                ok = _value(text, 'modelcat_bench_requests_total{outcome="ok"}')
                if ok >= 5:
                    break
                time.sleep(0.1)
            assert 5 <= ok < 40, (ok, w.log())  # seen moving during the run
            assert _value(text, "modelcat_bench_ttft_seconds_count") == ok
            _promtool(text)
            check_runs(env, wait_job(env, jid, ("succeeded", "failed")), 1, 40)
            end = time.monotonic() + 10
            while _value(_scrape(url), 'modelcat_worker_jobs_total{outcome="succeeded"}') < 1:
                assert time.monotonic() < end, w.log()
                time.sleep(0.1)
            text = _scrape(url)
            assert _value(text, 'modelcat_bench_requests_total{outcome="ok"}') == 40
            _promtool(text)
        finally:
            w.proc.send_signal(signal.SIGTERM)
            w.wait(30)
    finally:
        sim.stop()
