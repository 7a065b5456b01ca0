"""Tracing end to end: a fixture OTLP collector (a Python http.server on
loopback storing each POST /v1/traces body) receives the spans of a real
`modelcat serve`; their structure, parent-child links, attributes and the
honoured incoming traceparent are checked, and no credential appears. A
collector that is not there costs dropped spans, never failed requests.
`modelcat bench` sends a distinct traceparent per request to `modelcat
sim`, whose truth file records it."""

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ADMIN_KEY, model_body
from test_bench import Sim, bench

TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
IN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
IN_PARENT = "00f067aa0ba902b7"


class Collector:
    """POST /v1/traces on 127.0.0.1:<port>; bodies kept as parsed JSON."""

    def __init__(self):
        self.bodies, self.heads = [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                outer.heads.append((self.path, self.headers.get("Content-Type")))
                outer.bodies.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        out = []
        for b in list(self.bodies):
            for rs in b["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out.extend(ss["spans"])
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def wait_for(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def attrs(span):
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def test_spans_exported_with_links(server_factory, collector):
    srv = server_factory(args=["--otlp-endpoint", collector.url])
    c = srv.client()
    st, _, _ = c.post("/api/v1/models", model_body())
    assert st == 201
    st, _, _ = c.get("/api/v1/models")
    assert st == 200
    tp = f"00-{IN_TRACE}-{IN_PARENT}-01"
    st, _, _ = c.get("/api/v1/models", headers={"traceparent": tp, "tracestate": "k=v"})
    assert st == 200
    # A malformed traceparent starts a new trace.
    st, _, _ = c.get("/api/v1/hardware", headers={"traceparent": "00-" + "0" * 32 + "-" +
                                                  IN_PARENT + "-01"})
    assert st == 200
    c.close()

    def server_spans():
        return [s for s in collector.spans() if s["kind"] == 2]
    assert wait_for(lambda: len(server_spans()) >= 4), collector.bodies
    assert all(h == ("/v1/traces", "application/json") for h in collector.heads)
    for body in collector.bodies:
        rs = body["resourceSpans"][0]
        res = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
        assert res["service.name"] == "modelcat" and res["service.version"]
    text = json.dumps(collector.bodies)
    assert ADMIN_KEY not in text and "Bearer" not in text and "uthorization" not in text

    spans = collector.spans()
    by_parent = {}
    for s in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}",
                                                                             s["spanId"])
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0
        by_parent.setdefault(s.get("parentSpanId"), []).append(s)
    joined = [s for s in server_spans() if s["traceId"] == IN_TRACE]
    assert len(joined) == 1 and joined[0]["parentSpanId"] == IN_PARENT
    assert joined[0].get("traceState") == "k=v"
    a = attrs(joined[0])
    assert a["http.method"] == "GET" and a["http.route"] == "/api/v1/models"
    assert int(a["http.status_code"]) == 200
    assert joined[0]["name"] == "GET /api/v1/models"
    hw = [s for s in server_spans() if attrs(s)["http.route"] == "/api/v1/hardware"]
    assert hw and hw[0]["traceId"] != "0" * 32 and "parentSpanId" not in hw[0]

    # The POST: its db spans (and the cache bump) are its children.
    post = [s for s in server_spans() if attrs(s)["http.method"] == "POST"][0]
    kids = by_parent.get(post["spanId"], [])
    assert any(k["name"].startswith("db ") for k in kids), kids
    assert any(k["name"] == "cache bump" for k in kids), kids
    for k in kids:
        assert k["kind"] == 3 and k["traceId"] == post["traceId"]
        ka = attrs(k)
        assert ka["db.system"] in ("sqlite", "postgresql", "memory", "redis")
        assert re.fullmatch(r"[A-Za-z]+", ka["db.operation"])
    # The joined GET (a cache hit or miss) has cache spans with its trace id.
    jk = by_parent.get(joined[0]["spanId"], [])
    assert any(k["name"] == "cache get" for k in jk), jk
    assert all(k["traceId"] == IN_TRACE for k in jk)
    # An unsampled incoming trace is not recorded.
    before = len(spans)
    c = srv.client()
    st, _, _ = c.get("/api/v1/models", headers={"traceparent": f"00-{'1' * 32}-{IN_PARENT}-00"})
    assert st == 200
    c.close()
    time.sleep(1.5)
    assert not [s for s in collector.spans() if s["traceId"] == "1" * 32]
    assert len(collector.spans()) >= before


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_dead_collector_drops_spans_without_failing(server_factory):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # a closed port: every export fails
    srv = server_factory(args=["--otlp-endpoint", f"http://127.0.0.1:{port}"])
    c = srv.client()
    for _ in range(20):
        st, _, _ = c.get("/api/v1/models")
        assert st == 200
    ok = wait_for(lambda: (metric(c.get("/metrics").raw.decode(),
                                  "modelcat_trace_spans_failed_total") or 0) > 0)
    text = c.get("/metrics").raw.decode()
    assert ok, text
    assert metric(text, "modelcat_trace_spans_dropped_total") is not None
    assert metric(text, "modelcat_trace_spans_exported_total") == 0
    c.close()


def test_queue_bound_drop_counter(server_factory, tmp_path):
    # A collector that accepts and never answers: the exporter is stuck in
    # its POST (5 s timeout), so the queue fills and spans are dropped.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        srv = server_factory(args=["--otlp-endpoint", f"http://127.0.0.1:{port}"])
        c = srv.client()
        dropped = 0
        for i in range(60):
            # Each list is a server span plus its db and cache spans.
            for _ in range(100):
                st, _, _ = c.get("/api/v1/models", params={"limit": "1"})
                assert st == 200
            dropped = metric(c.get("/metrics").raw.decode(),
                             "modelcat_trace_spans_dropped_total") or 0
            if dropped > 0:
                break
        assert dropped > 0
        c.close()
    finally:
        s.close()


def test_bench_propagates_traceparent(tmp_path):
    sim = Sim(tmp_path, "--itl-ms", "1", "--itl-ms-per-seq", "0", "--seed", "3")
    try:
        p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "20", "--max-concurrency", "4",
                              "--input-len", "16", "--output-len", "4", "--dataset", "random")
        truth = sim.truth_rows()
    finally:
        sim.stop()
    assert len(lines) == 20
    seen = set()
    trace_ids = {line["trace_id"] for line in lines}
    assert len(trace_ids) == 1  # one trace per run
    for line in lines:
        row = truth[line["request_id"]]
        m = TP_RE.match(row["traceparent"] or "")
        assert m, row
        assert m.group(1) == line["trace_id"] and m.group(3) == "01"
        assert m.group(2) != "0" * 16
        seen.add(row["traceparent"])
    assert len(seen) == len(lines)  # distinct per request

    # --traceparent joins a given trace.
    sim = Sim(tmp_path, "--itl-ms", "1", "--itl-ms-per-seq", "0")
    try:
        p, doc, lines = bench(tmp_path, sim.url, "--num-prompts", "3", "--input-len", "16",
                              "--output-len", "2", "--dataset", "random", "--traceparent",
                              f"00-{IN_TRACE}-{IN_PARENT}-01")
        truth = sim.truth_rows()
    finally:
        sim.stop()
    assert {line["trace_id"] for line in lines} == {IN_TRACE}
    assert all(truth[x["request_id"]]["traceparent"].split("-")[1] == IN_TRACE for x in lines)
    p, _, _ = bench(tmp_path, "http://127.0.0.1:9", "--num-prompts", "1", "--traceparent",
                    "01-bad", check=False)
    assert p.returncode != 0 and "traceparent" in p.stderr
