"""--metrics-listen: the stand-alone /metrics endpoint of sim and bench
(worker: test_worker.py::test_metrics_listen_during_and_after_a_job)."""
import re
import subprocess
import time
import urllib.request

from conftest import LISTEN_RE, modelcat_bin

URL_RE = re.compile(r"metrics on (http://127\.0\.0\.1:\d+/metrics)")


def _wait_url(proc_log, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with open(proc_log) as f:
            m = URL_RE.search(f.read())
        if m:
            return m.group(1)
        time.sleep(0.05)
    raise AssertionError("no 'metrics on' line in " + proc_log)


def _scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def _value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(series + " not found")


def _promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sim_and_bench_metrics_listen(tmp_path):
    binary = modelcat_bin()
    sim_log = tmp_path / "sim.log"
    sim = subprocess.Popen([binary, "sim", "--listen", "127.0.0.1:0",
                            "--metrics-listen", "127.0.0.1:0"],
                           stdout=open(sim_log, "w"), stderr=subprocess.STDOUT)
    try:
        sim_url = _wait_url(sim_log)
        port = None
        for _ in range(200):
            m = LISTEN_RE.search(sim_log.read_text())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        assert port, sim_log.read_text()
        bench_log = tmp_path / "bench.log"
        bench = subprocess.Popen(
            [binary, "bench", "--base-url", f"http://127.0.0.1:{port}", "--duration", "3",
             "--num-prompts", "0", "--max-concurrency", "4", "--input-len", "16",
             "--output-len", "32", "--metrics-listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=open(bench_log, "w"))
        try:
            bench_url = _wait_url(bench_log)
            text, ok = "", 0
            end = time.monotonic() + 10
            while time.monotonic() < end and bench.poll() is None:
                text = _scrape(bench_url)
                ok = _value(text, 'modelcat_bench_requests_total{outcome="ok"}')
                if ok >= 5:
                    break
                time.sleep(0.1)
            assert ok >= 5
            assert _value(text, "modelcat_bench_ttft_seconds_count") == ok
            assert "modelcat_build_info{" in text
            assert "modelcat_bench_requests_in_flight" in text
            _promtool(text)
            with urllib.request.urlopen(bench_url[:-len("/metrics")] + "/nope", timeout=5) as r:
                raise AssertionError("expected 404, got %d" % r.status)
        except urllib.error.HTTPError as e:
            assert e.code == 404
        finally:
            assert bench.wait(timeout=30) == 0
        sim_text = _scrape(sim_url)
        done = sum(_value(sim_text, 'modelcat_sim_requests_total{status="%s"}' % s)
                   for s in ("stop", "length", "abort"))
        assert done >= 5
        assert _value(sim_text, "modelcat_sim_tokens_total") > 0
        _promtool(sim_text)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
