"""GPU telemetry during benchmarks (bench --gpu-telemetry): NVML through the
stub libnvidia-ml.so.1 the build makes (tests/unit/nvml_stub.c), the
engine's own /metrics (modelcat sim serves vLLM's names), and a fake
dcgm-exporter; samples and the telemetry summary published to a real
catalog and read back from its routes.

A missing NVML library is a usage error: one line on stderr and exit 2,
before any request is sent (decided: a benchmark that was asked for energy
numbers and silently has none is worse than one that does not start).

The stub's values (per GPU i): utilisation 40 + 20 i %, memory (1 + i) GiB,
power 200 + 100 i W, an energy counter that grows at that power on the real
clock."""

import http.server
import json
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import hardware_body, model_body, modelcat_bin, uid
from test_bench import Sim, bench

GIB = 1 << 30


def stub_library():
    path = Path(modelcat_bin()).resolve().parent / "tests" / "nvml-stub" / "libnvidia-ml.so.1"
    assert path.exists(), f"the build should have made {path}"
    return str(path)


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path, "--itl-ms", "2", "--itl-ms-per-seq", "0", "--prefill-tokens-per-s",
            "100000", "--seed", "7", "--max-num-seqs", "4")
    yield s
    s.stop()


def per_gpu(items):
    out = {}
    for x in items:
        out.setdefault(x["gpu"], []).append(x)
    return out


def test_nvml_and_engine_published_to_catalog(tmp_path, sim, server_factory):
    srv = server_factory()
    c = srv.client()
    model = model_body()
    c.create("/api/v1/models", model)
    hw = hardware_body()
    c.create("/api/v1/hardware", hw)
    worker = c.post("/api/v1/keys", {"name": "gpu node", "role": "worker"})
    assert worker.status == 201, worker
    p, doc, _ = bench(tmp_path, sim.url, "--num-prompts", "0", "--duration", "3",
                      "--max-concurrency", "8", "--input-len", "16", "--output-len", "8",
                      "--ignore-eos", "--gpu-telemetry", "nvml,engine",
                      "--nvml-library", stub_library(),
                      "--catalog", f"http://127.0.0.1:{srv.port}",
                      "--catalog-api-key", worker.body["key"], "--catalog-model", model["id"],
                      "--hardware", hw["id"], "--gpu-count", "2", "--engine", "sim")
    assert "GPU telemetry" in p.stdout and "Energy per output token" in p.stdout
    assert doc["gpu_telemetry"]["energy_from"] == "counter"
    assert {x["uuid"] for x in doc["gpu_samples"]} == {"GPU-stub-0000", "GPU-stub-0001"}
    runs = c.get("/api/v1/benchmarks", params={"sweep_id": doc["sweep_id"]}).body["items"]
    assert len(runs) == 1
    run = runs[0]
    items = c.get(f"/api/v1/benchmarks/{run['id']}/gpu-samples").body["items"]
    gpus = per_gpu(items)
    assert sorted(gpus) == [0, 1]
    for i, series in gpus.items():
        assert all(x["util_pct"] == 40 + 20 * i for x in series)
        assert all(x["mem_used_bytes"] == (1 + i) * GIB for x in series)
        assert all(x["power_w"] == 200 + 100 * i for x in series)
        assert all(x["temp_c"] == 60 + i and x["sm_clock_mhz"] == 1400 + i for x in series)
        ts = [x["ts_ms"] for x in series]
        span_s = (ts[-1] - ts[0]) / 1000
        # One sample a second, plus the one at the end of the point.
        assert span_s >= 2.5 and abs(len(series) - (span_s + 1)) <= 1.5, (len(series), span_s)
        steps = [b - a for a, b in zip(ts, ts[1:-1])]
        assert all(900 <= s <= 1100 for s in steps), steps
    # The summary, against the samples the catalog stored.
    assert run["gpu_util_mean_pct"] == pytest.approx(50)
    assert run["gpu_util_max_pct"] == pytest.approx(60)
    assert run["gpu_mem_peak_bytes"] == 2 * GIB
    assert run["gpu_power_mean_w"] == pytest.approx(250)
    energy = sum(s[-1]["energy_j"] - s[0]["energy_j"] for s in gpus.values())
    assert run["energy_per_output_token_j"] == pytest.approx(
        energy / run["total_output_tokens"], rel=1e-6)
    # The stub's counter runs at 500 W in all over the sampled span.
    span = (items[-1]["ts_ms"] - items[0]["ts_ms"]) / 1000
    assert energy == pytest.approx(500 * span, rel=0.05, abs=5)
    # Engine: the sim reports running/max-num-seqs as its KV-cache usage.
    assert run["kv_cache_peak_pct"] is not None and 0 < run["kv_cache_peak_pct"] <= 100
    assert doc["engine_running_mean"] > 0 and doc["gpu_telemetry"]["engine_samples"] >= 3


def test_missing_nvml_library_is_exit_2(tmp_path, sim):
    p = subprocess.run([modelcat_bin(), "bench", "--base-url", sim.url, "--num-prompts", "5",
                        "--gpu-telemetry", "nvml", "--nvml-library",
                        str(tmp_path / "libnvidia-ml.so.1")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0
    assert "cannot load" in p.stderr and "--gpu-telemetry" in p.stderr
    p = subprocess.run([modelcat_bin(), "bench", "--base-url", sim.url, "--num-prompts", "5",
                        "--gpu-telemetry", "nvml,watts"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "unknown source" in p.stderr, p.stderr


DCGM_PAGE = """# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 1980
DCGM_FI_DEV_SM_CLOCK{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 1755
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 51
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 47
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 412.25
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 98.5
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} {e0}
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} {e1}
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 97
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 3
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-5a1c",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 71234
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-77be",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 512
"""


def test_dcgm_exporter(tmp_path, sim):
    scrapes = []

    class Exporter(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            n = len(scrapes)
            scrapes.append(self.path)
            # Energy counters that grow 1000 J per scrape on GPU 0, 100 J on GPU 1.
            body = DCGM_PAGE.replace("{e0}", str(5_000_000 + n * 1_000_000)).replace(
                "{e1}", str(7_000_000 + n * 100_000)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
        p, doc, _ = bench(tmp_path, sim.url, "--num-prompts", "20", "--output-len", "5",
                          "--ignore-eos", "--gpu-telemetry", f"dcgm:{url}",
                          "--gpu-telemetry-interval", "0.2")
    finally:
        httpd.shutdown()
    assert scrapes and all(x == "/metrics" for x in scrapes)
    gpus = per_gpu(doc["gpu_samples"])
    assert sorted(gpus) == [0, 1]
    g0, g1 = gpus[0][0], gpus[1][0]
    assert g0["uuid"] == "GPU-5a1c" and g1["uuid"] == "GPU-77be"
    assert g0["util_pct"] == 97 and g1["util_pct"] == 3
    assert g0["mem_used_bytes"] == 71234 * 1048576 and g1["mem_used_bytes"] == 512 * 1048576
    assert g0["power_w"] == 412.25 and g0["sm_clock_mhz"] == 1980 and g1["temp_c"] == 47
    assert doc["gpu_util_max_pct"] == 97 and doc["gpu_mem_peak_bytes"] == 71234 * 1048576
    assert doc["gpu_telemetry"]["energy_from"] == "counter"
    # Energy from the counters: (n-1) scrapes × (1000 + 100) J.
    n = len(gpus[0])
    assert doc["gpu_energy_j"] == pytest.approx((n - 1) * 1100)
    assert doc["energy_per_output_token_j"] == pytest.approx(
        (n - 1) * 1100 / doc["total_output_tokens"])
