"""modelcat bench against modelcat sim: every backend, dataset and load mode;
accuracy against the simulator's per-request ground truth; faults counted as
errors; SIGTERM mid-run; both transports agreeing; publishing to a catalog.

Timing is never asserted against wall-clock limits: only the agreement of
two measurements of the same requests (client vs server), with the tolerance
the issue sets (1 ms or 2% on medians)."""

import json
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import LISTEN_RE, enc, hardware_body, model_body, modelcat_bin, uid

BACKENDS = ["vllm", "openai", "openai-chat", "tgi", "lmdeploy"]


class Sim:
    """A `modelcat sim` on a free loopback port, with a truth file."""

    def __init__(self, tmp: Path, *args):
        self.truth = tmp / f"truth-{uid()}.jsonl"
        self.proc = subprocess.Popen(
            [modelcat_bin(), "sim", "--listen", "127.0.0.1:0", "--truth", str(self.truth),
             "--model", "sim-model", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = LISTEN_RE.search(line)
                if m and not ready.is_set():
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        assert ready.wait(10) and self.port, f"sim did not start: {''.join(self.lines)}"
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("sim did not stop on SIGTERM")
            assert rc == 0, f"sim exited {rc}: {''.join(self.lines[-20:])}"
        self.reader.join(5)

    def truth_rows(self):
        """Stops the sim (which flushes its truth file) and reads the file."""
        self.stop()
        rows = {}
        for line in self.truth.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["request_id"]] = row
        return rows


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path, "--itl-ms", "2", "--itl-ms-per-seq", "0", "--prefill-tokens-per-s",
            "100000", "--seed", "7")
    yield s
    s.stop()


def bench(tmp_path, url, *args, timeout=120, check=True):
    result = tmp_path / f"result-{uid()}.json"
    reqs = tmp_path / f"reqs-{uid()}.jsonl"
    cmd = [modelcat_bin(), "bench", "--base-url", url, "--model", "sim-model",
           "--result-json", str(result), "--requests-out", str(reqs), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"bench failed rc={p.returncode}\n{p.stderr[-3000:]}"
    doc = json.loads(result.read_text()) if result.exists() else None
    lines = [json.loads(x) for x in reqs.read_text().splitlines()] if reqs.exists() else []
    return p, doc, lines


def write_datasets(tmp_path):
    share = tmp_path / "sharegpt.json"
    share.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": f"question number {i} about gpus"},
                           {"from": "gpt", "value": " ".join(["word"] * (3 + i % 5))}]}
        for i in range(30)]))
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": f"tell me {i} things", "output_len": 4 + i % 3})
                             + "\n" for i in range(30)))
    return {"random": [], "sharegpt": ["--dataset-path", str(share)],
            "jsonl": ["--dataset-path", str(jsonl)]}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dataset", ["random", "sharegpt", "jsonl"])
@pytest.mark.parametrize("mode", [["--max-concurrency", "4"], ["--request-rate", "200"]])
def test_backend_dataset_mode_matrix(tmp_path, sim, backend, dataset, mode):
    extra = write_datasets(tmp_path)[dataset]
    p, doc, lines = bench(tmp_path, sim.url, "--backend", backend, "--dataset", dataset, *extra,
                          "--num-prompts", "12", "--input-len", "16", "--output-len", "6",
                          "--ignore-eos", "--seed", "3", *mode)
    assert doc["completed"] == 12 and doc["failed"] == 0, doc["error_counts"]
    assert len(lines) == 12
    truth = sim.truth_rows()
    for line in lines:
        t = truth[line["request_id"]]  # every request reached the sim with its id
        assert line["output_tokens"] == t["output_tokens"], (line, t)
        assert line["error"] is None and line["first_token_ns"] <= line["last_token_ns"]
    assert doc["total_output_tokens"] == sum(t["output_tokens"] for t in
                                             (truth[x["request_id"]] for x in lines))
    if dataset == "random":
        assert all(x["output_tokens"] == 6 for x in lines)  # ignore_eos: exact
    expected_src = {"tgi": "details"}.get(backend, "usage")
    assert doc["token_count_source"] == expected_src


@pytest.mark.parametrize("stamps", ["kernel", "user"])
def test_latencies_agree_with_ground_truth(tmp_path, sim, stamps):
    p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "200", "--max-concurrency", "16",
                          "--input-len", "64", "--output-len", "24", "--ignore-eos",
                          "--seed", "11", "--timestamps", stamps)
    assert doc["timestamps"] == stamps
    if stamps == "kernel":
        assert 0 <= doc["read_lag_ms_mean"] <= doc["read_lag_ms_p99"] <= doc["read_lag_ms_max"]
    else:
        assert doc["read_lag_ms_p99"] is None
    truth = sim.truth_rows()
    client_ttft, truth_ttft, client_e2el, truth_e2el = [], [], [], []
    for x in lines:
        t = truth[x["request_id"]]
        assert x["output_tokens"] == t["output_tokens"] == 24
        # One clock on one machine, and causality: a request reaches the sim
        # after the client starts writing it, a token reaches the client after
        # the sim starts writing it.
        assert x["sent_ns"] <= t["arrival_ns"], (x, t)
        assert t["first_token_ns"] <= x["first_token_ns"], (x, t)
        assert t["last_token_ns"] <= x["last_token_ns"], (x, t)
        client_ttft.append((x["first_token_ns"] - x["sent_ns"]) / 1e6)
        truth_ttft.append((t["first_token_ns"] - t["arrival_ns"]) / 1e6)
        client_e2el.append((x["last_token_ns"] - x["sent_ns"]) / 1e6)
        truth_e2el.append((t["last_token_ns"] - t["arrival_ns"]) / 1e6)
    for c, t, name in ((client_ttft, truth_ttft, "ttft"), (client_e2el, truth_e2el, "e2el")):
        mc, mt = statistics.median(c), statistics.median(t)
        assert abs(mc - mt) <= max(1.0, 0.02 * mt), f"{name}: client {mc:.3f} ms, truth {mt:.3f} ms"
        assert mc >= mt - 0.05, f"{name}: the client cannot see a token before it is sent"
    # The summary's medians are the same computation over the same requests.
    assert abs(doc["median_ttft_ms"] - statistics.median(client_ttft)) < 1e-6


def test_injected_faults_are_counted(tmp_path):
    s = Sim(tmp_path, "--itl-ms", "1", "--error-rate", "0.15", "--drop-rate", "0.1",
            "--seed", "5")
    try:
        p, doc, lines = bench(tmp_path, s.url, "--num-prompts", "150", "--max-concurrency", "8",
                              "--input-len", "8", "--output-len", "8", "--ignore-eos",
                              "--warmup", "0", "--seed", "2")
        truth = s.truth_rows()
        faults = {}
        for x in lines:
            f = truth[x["request_id"]]["fault"]
            faults[f] = faults.get(f, 0) + 1
            if f == "error":
                assert x["error"] == "http_5xx", x
            elif f == "drop":
                assert x["error"] in ("reset", "truncated"), x
            else:
                assert x["error"] is None, x
        assert faults.get("error", 0) > 0 and faults.get("drop", 0) > 0, faults
        counts = doc["error_counts"]
        assert counts["http_5xx"] == faults["error"]
        assert counts["reset"] + counts["truncated"] == faults["drop"]
        assert doc["failed"] == faults["error"] + faults["drop"]
    finally:
        s.stop()


@pytest.mark.parametrize("fault,category", [("error", "http_5xx"), ("error-event", "stream_error"),
                                            ("drop", None)])
def test_forced_fault_header(tmp_path, sim, fault, category):
    p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "5", "--max-concurrency", "2",
                          "--output-len", "8", "--ignore-eos", "--warmup", "0",
                          "--header", f"X-Sim-Fault: {fault}", check=False)
    assert p.returncode == 1  # nothing completed
    assert doc["failed"] == 5 and doc["completed"] == 0
    if category:
        assert doc["error_counts"][category] == 5
    else:
        assert doc["error_counts"]["reset"] + doc["error_counts"]["truncated"] == 5


def test_max_errors_stops_a_broken_run(tmp_path, sim):
    p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "500", "--max-concurrency", "2",
                          "--output-len", "4", "--warmup", "0", "--max-errors", "5",
                          "--header", "X-Sim-Fault: error", check=False)
    assert p.returncode == 1
    assert doc["stopped_by_errors"] is True
    assert 5 <= doc["failed"] < 500


def test_sigterm_writes_a_valid_partial_result(tmp_path, sim):
    result = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [modelcat_bin(), "bench", "--base-url", sim.url, "--model", "sim-model",
         "--num-prompts", "0", "--duration", "120", "--max-concurrency", "8", "--output-len",
         "16", "--input-len", "16", "--result-json", str(result)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err[-2000:]
    doc = json.loads(result.read_text())
    assert doc["interrupted"] is True
    assert doc["completed"] > 0
    assert "Serving Benchmark Result" in out


@pytest.mark.parametrize("drain", [0, 30])
def test_sigterm_with_and_without_a_drain(tmp_path, drain):
    """SIGTERM stops releasing requests; with --drain-timeout the ones in
    flight finish (none incomplete), without it they are cut (incomplete)."""
    slow = Sim(tmp_path, "--itl-ms", "40", "--itl-ms-per-seq", "0")
    try:
        result = tmp_path / "drained.json"
        proc = subprocess.Popen(
            [modelcat_bin(), "bench", "--base-url", slow.url, "--model", "sim-model",
             "--num-prompts", "1000", "--max-concurrency", "8", "--output-len", "20",
             "--ignore-eos", "--input-len", "16", "--result-json", str(result),
             "--drain-timeout", str(drain)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-2000:]
        doc = json.loads(result.read_text())
        assert doc["interrupted"] is True and 0 < doc["completed"] < 1000
        if drain:
            assert doc["incomplete"] == 0 and doc["failed"] == 0, doc
        else:
            assert doc["incomplete"] > 0, doc
    finally:
        slow.stop()


def test_transports_agree(tmp_path, sim):
    runs = {}
    for t in ("native", "curl"):
        p, doc, lines = bench(tmp_path, sim.url, "--transport", t, "--num-prompts", "60",
                              "--max-concurrency", "4", "--output-len", "12", "--ignore-eos",
                              "--seed", "9")
        runs[t] = doc
    a, b = runs["native"], runs["curl"]
    assert a["completed"] == b["completed"] == 60
    assert a["total_output_tokens"] == b["total_output_tokens"] == 60 * 12
    assert a["total_input_tokens"] == b["total_input_tokens"]
    for k in ("median_ttft_ms", "median_itl_ms", "median_e2el_ms"):
        assert abs(a[k] - b[k]) <= max(2.0, 0.25 * a[k]), (k, a[k], b[k])


def test_sweep_and_publish_to_catalog(tmp_path, sim, server_factory):
    srv = server_factory()
    c = srv.client()
    model = model_body()
    c.create("/api/v1/models", model)
    hw = hardware_body(on_demand_usd_per_hour=8.0, spot_usd_per_hour=2.0, gpus_per_instance=8)
    c.create("/api/v1/hardware", hw)
    url = f"http://127.0.0.1:{srv.port}"
    # A worker key: what a benchmark node holds, allowed to post results.
    worker = c.post("/api/v1/keys", {"name": "bench node", "role": "worker"})
    assert worker.status == 201, worker
    p, doc, lines = bench(tmp_path, sim.url, "--sweep", "concurrency=1,4", "--num-prompts", "10",
                          "--output-len", "5", "--ignore-eos", "--catalog", url,
                          "--catalog-api-key", worker.body["key"],
                          "--catalog-model", model["id"], "--hardware", hw["id"],
                          "--gpu-count", "2", "--engine", "sim", "--engine-version", "0.1.0")
    assert [pt["max_concurrency"] for pt in doc["points"]] == [1, 4]
    sweep_id = doc["sweep_id"]
    got = c.get("/api/v1/benchmarks", params={"sweep_id": sweep_id})
    assert got.status == 200 and len(got.body["items"]) == 2
    for run in got.body["items"]:
        assert run["engine"] == "sim" and run["model"] == model["id"]
        assert run["completed"] == 10 and run["sample_count"] == 10
        assert run["tool"] == "modelcat" and run["seed"] is not None
        assert run["cost_per_1m_output_tokens_on_demand_usd"] > 0
        s = c.get(f"/api/v1/benchmarks/{run['id']}/samples")
        assert len(s.body["items"]) == 10
        assert all(x["output_tokens"] == 5 for x in s.body["items"])


def test_bad_flags_exit_2(tmp_path):
    for args in (["--request-rate", "fast"], ["--backend", "grpc"], ["--sweep", "size=1,2"],
                 ["--goodput", "ttft:abc"], ["--base-url", "ftp://x"],
                 ["--num-prompts", "0"], ["--percentiles", "101"]):
        p = subprocess.run([modelcat_bin(), "bench", *args], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.strip().count("\n") == 0 and "bench" in p.stderr, (args, p.stderr)


def test_publish_retries_with_the_same_idempotency_key(tmp_path, sim):
    """A catalog answering 503 once gets the same run again, same key."""
    import http.server
    seen = []

    class Catalog(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Idempotency-Key"), json.loads(body)))
            status, out = (503, {"error": {"code": "unavailable", "message": "busy"}}) \
                if len(seen) == 1 else (201, {"id": "run-1"})
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.HTTPServer(("127.0.0.1", 0), Catalog)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "3", "--output-len", "2",
                              "--catalog", f"http://127.0.0.1:{srv.server_port}",
                              "--catalog-model", "org/model", "--hardware", "hw")
    finally:
        srv.shutdown()
    assert len(seen) == 2, seen
    assert seen[0][0] == seen[1][0] == "/api/v1/benchmarks"
    assert seen[0][1] and seen[0][1] == seen[1][1]
    assert seen[0][2] == seen[1][2] and seen[0][2]["completed"] == 3
    assert "published point 0 as run run-1" in p.stderr


def test_curl_transport_over_tls(tmp_path):
    """--transport curl reaches an https:// server and verifies it with --cacert."""
    import http.server
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)

    class Engine(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            n = req["max_tokens"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [{"choices": [{"index": 0, "text": f" t{i}"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": i + 1}} for i in range(n)]
            for e in [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]:
                b = e.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.write(b"0\r\n\r\n")

    srv = http.server.HTTPServer(("127.0.0.1", 0), Engine)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    url = f"https://127.0.0.1:{srv.server_port}"
    try:
        p, doc, lines = bench(tmp_path, url, "--transport", "curl", "--cacert", str(cert),
                              "--num-prompts", "4", "--max-concurrency", "1", "--output-len", "5",
                              "--warmup", "0")
        assert doc["completed"] == 4 and doc["total_output_tokens"] == 20
        assert doc["transport"] == "curl"
        # Without the CA the server is not trusted: every request fails to connect.
        p, doc, lines = bench(tmp_path, url, "--transport", "curl", "--num-prompts", "2",
                              "--warmup", "0", check=False)
        assert p.returncode == 1 and doc["error_counts"]["connect"] == 2, doc["error_counts"]
        # The native transport refuses https outright.
        p = subprocess.run([modelcat_bin(), "bench", "--base-url", url], capture_output=True,
                           text=True, timeout=20)
        assert p.returncode == 2 and "--transport curl" in p.stderr
    finally:
        srv.shutdown()


def test_curl_transport_over_http2(tmp_path, sim):
    """--transport curl speaks HTTP/2 (ALPN over TLS) to nginx in front of the sim,
    and the token counts are the sim's, request by request."""
    import shutil
    import socket
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for d in ("tmp", "logs"):
        (tmp_path / d).mkdir()
    t = tmp_path / "tmp"
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{ }}
http {{
    log_format proto '$server_protocol $status';
    access_log {tmp_path}/logs/access.log proto;
    client_body_temp_path {t}/body; proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fcgi; uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {sim.url};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    ng = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert ng.poll() is None, ng.stderr.read()
                time.sleep(0.05)
        p, doc, lines = bench(tmp_path, f"https://127.0.0.1:{port}", "--transport", "curl",
                              "--cacert", str(cert), "--num-prompts", "12",
                              "--max-concurrency", "4", "--output-len", "7", "--ignore-eos")
        assert doc["completed"] == 12 and doc["failed"] == 0, doc["error_counts"]
        truth = sim.truth_rows()
        assert all(x["output_tokens"] == truth[x["request_id"]]["output_tokens"] == 7
                   for x in lines)
        protos = (tmp_path / "logs" / "access.log").read_text().split("\n")
        protos = [x for x in protos if x]
        assert protos and all(x == "HTTP/2.0 200" for x in protos), protos
    finally:
        ng.terminate()
        ng.wait(10)


def test_coalesced_events_are_all_counted(tmp_path):
    """With the sim writing 8 events per write, reads carry several events;
    every token is still counted and timed per request."""
    s = Sim(tmp_path, "--itl-ms", "2", "--stream-interval", "8", "--seed", "3")
    try:
        p, doc, lines = bench(tmp_path, s.url, "--num-prompts", "20", "--max-concurrency", "4",
                              "--output-len", "20", "--ignore-eos", "--seed", "4")
        truth = s.truth_rows()
    finally:
        s.stop()
    assert doc["completed"] == 20 and doc["total_output_tokens"] == 400
    assert doc["events_per_read"] > 3, doc["events_per_read"]
    for x in lines:
        assert x["output_tokens"] == truth[x["request_id"]]["output_tokens"] == 20
        assert x["events"] == 20
