"""`modelcat sim`: the inference-engine simulator, driven over real sockets.

Each test starts its own simulator on a free loopback port (``--listen
127.0.0.1:0``; the port is read from the "listening on" line on stderr) and
stops it with SIGTERM, requiring exit code 0.  Responses are read with a
small raw HTTP/1.1 client so that the wire format itself is checked: one
chunk per SSE event, ``data: `` (OpenAI/vLLM) versus ``data:`` (TGI),
``[DONE]`` or not, the chunked terminator.  Timing assertions are loose on
purpose: the machine is shared and noisy.
"""

import json
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import threading
import time

import pytest

from conftest import LISTEN_RE, modelcat_bin, run_cli, run_threads

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 20.0


# ---------------------------------------------------------------------------
# The simulator process
# ---------------------------------------------------------------------------


class Sim:
    """One ``modelcat sim`` process with its output collected."""

    def __init__(self, args=()):
        self.args = list(args)
        self.proc = None
        self.port = None
        self.lines = []
        self._port_ready = threading.Event()
        self._readers = []

    def start(self):
        binary = modelcat_bin()
        assert os.path.exists(binary), f"modelcat binary not found at {binary}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MODELCAT_") or k == "MODELCAT_BIN"}
        self.proc = subprocess.Popen(
            [binary, "sim", "--listen", "127.0.0.1:0"] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for stream, name in ((self.proc.stderr, "stderr"), (self.proc.stdout, "stdout")):
            t = threading.Thread(target=self._drain, args=(stream, name), daemon=True)
            t.start()
            self._readers.append(t)
        if not self._port_ready.wait(START_TIMEOUT) or self.port is None:
            self.kill()
            pytest.fail(f"sim did not print 'listening on' in time\n{self.log()}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if request(self.port, "GET", "/health", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"/health never answered 200\n{self.log()}")

    def _drain(self, stream, name):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(f"[{name}] {line}")
            m = LISTEN_RE.search(line)
            if self.port is None and m:
                self.port = int(m.group(1))
                self._port_ready.set()
        stream.close()
        self._port_ready.set()

    def log(self):
        return "--- sim output ---\n" + "\n".join(self.lines[-60:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        assert self.alive(), f"sim died (rc={self.proc.returncode})\n{self.log()}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sim did not exit within {timeout}s of SIGTERM\n{self.log()}")
        for t in self._readers:
            t.join(2)
        assert rc == 0, f"sim exited rc={rc} after SIGTERM\n{self.log()}"

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


@pytest.fixture
def sim_factory():
    """``sim_factory(*args)`` starts a simulator; each is stopped (rc 0) at the end."""
    started = []

    def factory(*args):
        s = Sim(args)
        started.append(s)
        return s.start()

    yield factory
    failures = []
    for s in started:
        if s.alive():
            s.proc.send_signal(signal.SIGTERM)
            try:
                rc = s.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                s.kill()
                failures.append(f"sim did not stop\n{s.log()}")
                continue
            if rc != 0:
                failures.append(f"sim exited rc={rc}\n{s.log()}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def sim(sim_factory):
    return sim_factory()


# ---------------------------------------------------------------------------
# A raw HTTP/1.1 client that keeps the chunk framing
# ---------------------------------------------------------------------------


class Response:
    """Incremental parser of one response; feed() bytes as they arrive."""

    def __init__(self, head_only=False):
        self.buf = b""
        self.status = None
        self.headers = {}
        self.body = b""
        self.chunks = []           # (arrival time, chunk payload) when chunked
        self.chunked = False
        self.length = None
        self.done = False          # the response is complete
        self.terminated = False    # the chunked terminator arrived
        self.head_only = head_only

    def feed(self, data, now):
        self.buf += data
        while not self.done:
            if self.status is None:
                if b"\r\n\r\n" not in self.buf:
                    return
                head, _, self.buf = self.buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                if status == 100:
                    continue
                self.status = status
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    self.headers[k.strip().lower()] = v.strip()
                self.chunked = "chunked" in self.headers.get("transfer-encoding", "")
                if "content-length" in self.headers:
                    self.length = int(self.headers["content-length"])
                if self.head_only:
                    self.done = True
                continue
            if self.chunked:
                if b"\r\n" not in self.buf:
                    return
                line, _, rest = self.buf.partition(b"\r\n")
                size = int(line, 16)
                if len(rest) < size + 2:
                    return
                assert rest[size:size + 2] == b"\r\n", f"bad chunk end: {rest[:size + 8]!r}"
                self.buf = rest[size + 2:]
                if size == 0:
                    assert self.buf.startswith(b"\r\n") or self.buf == b"", self.buf[:40]
                    self.buf = self.buf[2:]
                    self.terminated = self.done = True
                    return
                self.chunks.append((now, rest[:size]))
                self.body += rest[:size]
                continue
            if self.length is not None:
                if len(self.buf) < self.length:
                    return
                self.body, self.buf = self.buf[:self.length], self.buf[self.length:]
                self.done = True
                return
            self.body += self.buf   # delimited by the close
            self.buf = b""
            return

    def eof(self):
        if self.status is not None and not self.chunked and self.length is None:
            self.done = True

    def json(self):
        return json.loads(self.body)


def build_request(method, path, body=None, headers=None):
    hdrs = {"Host": "127.0.0.1"}
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(data))
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode() + b"\r\n" + data


_LEFTOVER = {}  # socket -> bytes read past the previous response (pipelining)


def read_response(sock, timeout=IO_TIMEOUT, head_only=False):
    """Reads one response; its `t_end` is when the socket closed or it completed."""
    r = Response(head_only)
    sock.settimeout(timeout)
    pending = _LEFTOVER.pop(sock, b"")
    if pending:
        r.feed(pending, time.monotonic())
    while not r.done:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        now = time.monotonic()
        if not data:
            r.eof()
            r.closed = True
            break
        r.feed(data, now)
    if r.buf:
        _LEFTOVER[sock] = r.buf
    r.t_end = time.monotonic()
    return r


def request(port, method, path, body=None, headers=None, timeout=IO_TIMEOUT):
    """One request on a fresh connection; returns the Response with t_sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(build_request(method, path, body, headers))
        t_sent = time.monotonic()
        r = read_response(s, timeout)
        r.t_sent = t_sent
        return r


def post(port, path, body, headers=None, timeout=IO_TIMEOUT):
    return request(port, "POST", path, body, headers, timeout)


def words(n):
    return " ".join(f"w{i}" for i in range(n))


def sse_events(resp, tgi=False):
    """(arrival, kind, payload) per chunk, checking one SSE event per chunk.

    kind: "json" (payload parsed), "done", or "comment"."""
    out = []
    prefix = b"data:" if tgi else b"data: "
    for t, chunk in resp.chunks:
        assert chunk.endswith(b"\n\n") and chunk.count(b"\n\n") == 1, \
            f"a chunk is not exactly one SSE event: {chunk!r}"
        if chunk.startswith(b":"):
            out.append((t, "comment", chunk))
            continue
        assert chunk.startswith(prefix), f"event does not start with {prefix!r}: {chunk!r}"
        if tgi:
            assert not chunk.startswith(b"data: "), f"TGI events have no space: {chunk!r}"
        data = chunk[len(prefix):-2]
        if data == b"[DONE]":
            out.append((t, "done", None))
        else:
            out.append((t, "json", json.loads(data)))
    return out


def is_content(p):
    """A token-carrying event (not role-only, usage-only or error)."""
    if "error" in p:
        return False
    if "token" in p:
        return True
    choices = p.get("choices") or []
    if not choices:
        return False
    if "text" in choices[0]:
        return True
    delta = choices[0].get("delta", {})
    return "content" in delta and "role" not in delta


def content_events(evs):
    return [(t, p) for t, k, p in evs if k == "json" and is_content(p)]


def metrics(port):
    r = request(port, "GET", "/metrics")
    assert r.status == 200, r.body
    values = {}
    for line in r.body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return r.body.decode(), values


def metric(values, name, model="sim-model", extra=""):
    key = f'{name}{{model_name="{model}",engine="0"{extra}}}'
    assert key in values, f"{key} not in /metrics"
    return values[key]


# ---------------------------------------------------------------------------
# Command line, simple routes
# ---------------------------------------------------------------------------


def test_help_lists_flags():
    res = run_cli("sim", "--help")
    assert res.returncode == 0, res
    for flag in ("--listen", "--model", "--max-num-seqs", "--prefill-tokens-per-s", "--itl-ms",
                 "--itl-ms-per-seq", "--jitter", "--seed", "--max-connections", "--error-rate",
                 "--stall-rate", "--stall-ms", "--drop-rate", "--truth"):
        assert flag in res.stdout, f"sim --help lacks {flag}:\n{res.stdout}"


@pytest.mark.parametrize("args", [["--max-num-seqs", "0"], ["--error-rate", "1.5"],
                                  ["--bogus"], ["--itl-ms", "x"]])
def test_bad_flags_exit_2(args):
    res = run_cli("sim", "--listen", "127.0.0.1:0", *args, timeout=10)
    assert res.returncode == 2, res
    assert res.stderr.strip(), res


def test_health_models_and_404(sim_factory):
    s = sim_factory("--model", "org/test-model")
    r = request(s.port, "GET", "/health")
    assert r.status == 200 and r.body == b""
    r = request(s.port, "GET", "/v1/models")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["org/test-model"]
    assert body["data"][0]["object"] == "model"
    assert request(s.port, "GET", "/nope").status == 404
    assert request(s.port, "GET", "/v1/completions").status == 405
    assert request(s.port, "POST", "/health", {}).status == 405


# ---------------------------------------------------------------------------
# OpenAI / vLLM wire format
# ---------------------------------------------------------------------------


def test_completions_stream_format(sim):
    r = post(sim.port, "/v1/completions",
             {"model": "sim-model", "prompt": "one two  three\nfour", "max_tokens": 5,
              "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}},
             headers={"X-Request-Id": "req-abc"})
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers.get("x-request-id") == "req-abc"
    assert r.chunked and r.terminated
    evs = sse_events(r)
    kinds = [k for _, k, _ in evs]
    assert kinds == ["json"] * 6 + ["done"], kinds
    for i, (_, _, ev) in enumerate(evs[:5]):
        assert list(ev) == ["id", "object", "created", "model", "choices", "usage"], ev
        assert ev["id"] == "cmpl-req-abc" and ev["object"] == "text_completion"
        assert ev["model"] == "sim-model" and isinstance(ev["created"], int)
        assert ev["usage"] is None
        (choice,) = ev["choices"]
        assert choice == {"index": 0, "text": f" tok{i}", "logprobs": None,
                          "finish_reason": "length" if i == 4 else None,
                          "stop_reason": None}, choice
    usage = evs[5][2]
    assert usage["choices"] == [] and usage["id"] == "cmpl-req-abc"
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}


def test_completions_continuous_usage(sim):
    r = post(sim.port, "/v1/completions",
             {"prompt": words(7), "max_tokens": 4, "ignore_eos": True, "stream": True,
              "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    evs = sse_events(r)
    assert [k for _, k, _ in evs] == ["json"] * 5 + ["done"]
    for i, (_, _, ev) in enumerate(evs[:4]):
        u = ev["usage"]
        assert (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]) == (7, i + 1, 8 + i)
    assert evs[4][2]["choices"] == []
    assert evs[4][2]["usage"]["completion_tokens"] == 4


def test_stream_without_usage_options(sim):
    r = post(sim.port, "/v1/completions",
             {"prompt": "hi", "max_tokens": 3, "ignore_eos": True, "stream": True})
    evs = sse_events(r)
    assert [k for _, k, _ in evs] == ["json"] * 3 + ["done"]
    assert all(ev["choices"] for _, k, ev in evs if k == "json")


def test_chat_stream_format(sim):
    r = post(sim.port, "/v1/chat/completions",
             {"model": "sim-model", "max_completion_tokens": 3, "ignore_eos": True,
              "stream": True, "stream_options": {"include_usage": True,
                                                 "continuous_usage_stats": True},
              "messages": [{"role": "system", "content": "be brief"},
                           {"role": "user", "content": [{"type": "text", "text": "a b c"}]}]})
    assert r.status == 200 and r.terminated
    evs = sse_events(r)
    assert [k for _, k, _ in evs] == ["json"] * 5 + ["done"]
    role = evs[0][2]
    assert role["object"] == "chat.completion.chunk" and role["id"].startswith("chatcmpl-")
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": None, "finish_reason": None}]
    assert role["usage"]["prompt_tokens"] == 5 and role["usage"]["completion_tokens"] == 0
    for i, (_, _, ev) in enumerate(evs[1:4]):
        choice = ev["choices"][0]
        assert choice["delta"] == {"content": f" tok{i}"}
        assert choice["finish_reason"] == ("length" if i == 2 else None)
        assert ev["usage"]["completion_tokens"] == i + 1
    assert evs[4][2]["choices"] == []
    assert evs[4][2]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_non_stream_bodies(sim):
    r = post(sim.port, "/v1/completions", {"prompt": "a b", "max_tokens": 4, "ignore_eos": True})
    assert r.status == 200 and "content-length" in r.headers
    b = r.json()
    assert b["object"] == "text_completion"
    assert b["choices"][0]["text"] == " tok0 tok1 tok2 tok3"
    assert b["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["prompt_tokens"] == 2 and b["usage"]["completion_tokens"] == 4
    assert b["usage"]["total_tokens"] == 6

    r = post(sim.port, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "x y z"}], "max_tokens": 2,
              "ignore_eos": True})
    b = r.json()
    assert b["object"] == "chat.completion"
    msg = b["choices"][0]["message"]
    assert msg["role"] == "assistant" and msg["content"] == " tok0 tok1"
    assert b["usage"] == {"prompt_tokens": 3, "total_tokens": 5, "completion_tokens": 2,
                          "prompt_tokens_details": None}

    r = post(sim.port, "/generate",
             {"inputs": "p q", "parameters": {"max_new_tokens": 3, "details": True,
                                              "ignore_eos": True}})
    b = r.json()
    assert b["generated_text"] == " tok0 tok1 tok2"
    d = b["details"]
    assert d["finish_reason"] == "length" and d["generated_tokens"] == 3 and d["seed"] is None
    assert [t["text"] for t in d["tokens"]] == [" tok0", " tok1", " tok2"]

    r = post(sim.port, "/generate", {"inputs": "p", "parameters": {"max_new_tokens": 2,
                                                                   "ignore_eos": True}})
    assert r.json() == {"generated_text": " tok0 tok1"}


def test_random_lengths_without_ignore_eos(sim):
    lengths = set()
    for _ in range(30):
        b = post(sim.port, "/v1/completions", {"prompt": "x", "max_tokens": 6}).json()
        n = b["usage"]["completion_tokens"]
        assert 1 <= n <= 6
        assert b["choices"][0]["finish_reason"] == ("length" if n == 6 else "stop")
        assert b["choices"][0]["text"] == "".join(f" tok{i}" for i in range(n))
        lengths.add(n)
    assert len(lengths) >= 3, lengths


def test_exact_token_counts_with_ignore_eos(sim):
    for n in (1, 2, 17, 64):
        r = post(sim.port, "/v1/completions",
                 {"prompt": "x", "max_tokens": n, "ignore_eos": True, "stream": True})
        assert len(content_events(sse_events(r))) == n
        r = post(sim.port, "/generate_stream",
                 {"inputs": "x", "parameters": {"max_new_tokens": n, "ignore_eos": True}})
        assert len(content_events(sse_events(r, tgi=True))) == n


# ---------------------------------------------------------------------------
# TGI wire format
# ---------------------------------------------------------------------------


def test_tgi_stream_format(sim):
    r = post(sim.port, "/generate_stream",
             {"inputs": "the quick fox", "parameters": {"max_new_tokens": 4, "details": True,
                                                        "do_sample": False, "ignore_eos": True}})
    assert r.status == 200 and r.terminated
    assert b"[DONE]" not in r.body
    evs = sse_events(r, tgi=True)
    assert [k for _, k, _ in evs] == ["json"] * 4
    for i, (_, _, ev) in enumerate(evs):
        assert list(ev) == ["index", "token", "generated_text", "details"], ev
        assert ev["index"] == i + 1
        assert ev["token"]["text"] == f" tok{i}" and ev["token"]["special"] is False
        assert isinstance(ev["token"]["id"], int) and isinstance(ev["token"]["logprob"], float)
        if i < 3:
            assert ev["generated_text"] is None and ev["details"] is None
    last = evs[-1][2]
    assert last["generated_text"] == " tok0 tok1 tok2 tok3"
    assert last["details"] == {"finish_reason": "length", "generated_tokens": 4, "seed": None}

    r = post(sim.port, "/generate_stream",
             {"inputs": "x", "parameters": {"max_new_tokens": 2, "ignore_eos": True}})
    last = sse_events(r, tgi=True)[-1][2]
    assert last["generated_text"] == " tok0 tok1" and last["details"] is None


def test_tgi_keepalive_comment_before_slow_first_token(sim_factory):
    s = sim_factory("--prefill-tokens-per-s", "10")
    r = post(s.port, "/generate_stream",
             {"inputs": words(25), "parameters": {"max_new_tokens": 2, "ignore_eos": True}})
    evs = sse_events(r, tgi=True)
    kinds = [k for _, k, _ in evs]
    assert kinds[0] == "comment", kinds
    assert evs[0][2] == b":\n\n"
    assert kinds.count("json") == 2


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def assert_openai_error(r, status):
    assert r.status == status, (r.status, r.body)
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["code"] == status and isinstance(err["type"], str)
    return err


def test_bad_requests_get_400(sim):
    p = sim.port
    assert_openai_error(post(p, "/v1/completions", b"{not json"), 400)
    assert_openai_error(post(p, "/v1/completions", b"[1, 2]"), 400)
    err = assert_openai_error(post(p, "/v1/completions", {"prompt": "x", "max_tokens": 0}), 400)
    assert "max_tokens" in err["message"]
    assert_openai_error(post(p, "/v1/completions", {"prompt": "x", "max_tokens": 1000001}), 400)
    assert_openai_error(post(p, "/v1/completions", {"prompt": "x", "max_tokens": "9"}), 400)
    assert_openai_error(post(p, "/v1/chat/completions",
                             {"messages": [{"role": "user", "content": "x"}],
                              "max_completion_tokens": 0}), 400)
    assert_openai_error(post(p, "/v1/completions", {"prompt": "x", "stream_options":
                                                    {"include_usage": True}}), 400)
    assert_openai_error(post(p, "/v1/chat/completions", {"max_tokens": 3}), 400)
    assert_openai_error(post(p, "/v1/completions", {"model": "other", "prompt": "x"}), 404)
    r = post(p, "/generate_stream", {"inputs": "x", "parameters": {"max_new_tokens": 0}})
    assert r.status == 400 and r.json()["error_type"] == "validation"
    r = post(p, "/generate", b"nope")
    assert r.status == 400 and isinstance(r.json()["error"], str)
    assert_openai_error(post(p, "/v1/completions", {"prompt": "x"},
                             headers={"X-Sim-Fault": "bogus"}), 400)


def test_http_framing_errors(sim):
    p = sim.port
    with socket.create_connection(("127.0.0.1", p), timeout=IO_TIMEOUT) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n")
        assert read_response(s).status == 411
    with socket.create_connection(("127.0.0.1", p), timeout=IO_TIMEOUT) as s:
        # The answer comes before the body is read, and survives the client
        # sending the body anyway (the server drains it before closing).
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
                  + b"x" * 1000000)
        r = read_response(s)
        assert r.status == 413 and r.headers.get("connection") == "close"
    with socket.create_connection(("127.0.0.1", p), timeout=IO_TIMEOUT) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert read_response(s).status == 431
    with socket.create_connection(("127.0.0.1", p), timeout=IO_TIMEOUT) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert read_response(s).status == 400
    assert request(p, "GET", "/health").status == 200


def test_keepalive_pipelining_and_expect_continue(sim):
    body = json.dumps({"prompt": "x", "max_tokens": 2, "ignore_eos": True}).encode()
    req = build_request("POST", "/v1/completions", body)
    with socket.create_connection(("127.0.0.1", sim.port), timeout=IO_TIMEOUT) as s:
        s.sendall(req)
        assert read_response(s).json()["usage"]["completion_tokens"] == 2
        s.sendall(req + build_request("GET", "/health") + req)  # pipelined
        first, second, third = read_response(s), read_response(s), read_response(s)
        assert first.status == 200 and first.json()["choices"][0]["text"] == " tok0 tok1"
        assert second.status == 200 and second.body == b""
        assert third.json()["usage"]["completion_tokens"] == 2
        s.sendall(build_request("POST", "/v1/completions", None,
                                {"Content-Length": str(len(body)), "Expect": "100-continue"}))
        s.settimeout(IO_TIMEOUT)
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        assert read_response(s).json()["usage"]["completion_tokens"] == 2


def test_max_connections(sim_factory):
    s = sim_factory("--max-connections", "16")
    idle = [socket.create_connection(("127.0.0.1", s.port), timeout=IO_TIMEOUT) for _ in range(16)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", s.port), timeout=IO_TIMEOUT) as extra:
            extra.sendall(build_request("GET", "/health"))
            assert read_response(extra).status == 503
    finally:
        for c in idle:
            c.close()
    deadline = time.monotonic() + 5
    while request(s.port, "GET", "/health").status != 200:  # once the closes are seen
        assert time.monotonic() < deadline, "connections freed but still refused"
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def test_metrics_names_and_counters(sim):
    text, before = metrics(sim.port)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
        assert re.search(rf'^{re.escape(name)}{{model_name="sim-model"', text, re.M), name
    for hist in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                 "vllm:inter_token_latency_seconds"):
        assert f"# TYPE {hist} histogram" in text
        assert f'{hist}_bucket{{model_name="sim-model",engine="0",le="+Inf"}}' in text
        assert f"{hist}_sum{{" in text and f"{hist}_count{{" in text
    assert 'vllm:time_to_first_token_seconds_bucket{model_name="sim-model",engine="0",' \
           'le="0.001"}' in text
    assert 'le="2560.0"' in text and 'le="7680.0"' in text and 'le="80.0"' in text
    post(sim.port, "/v1/completions", {"prompt": words(11), "max_tokens": 6, "ignore_eos": True,
                                       "stream": True})
    _, after = metrics(sim.port)
    assert metric(after, "vllm:prompt_tokens_total") - metric(before, "vllm:prompt_tokens_total") == 11
    assert metric(after, "vllm:generation_tokens_total") - \
        metric(before, "vllm:generation_tokens_total") == 6
    ok = ',finished_reason="length"'
    assert metric(after, "vllm:request_success_total", extra=ok) == \
        metric(before, "vllm:request_success_total", extra=ok) + 1
    for hist, add in (("vllm:time_to_first_token_seconds", 1), ("vllm:e2e_request_latency_seconds", 1),
                      ("vllm:inter_token_latency_seconds", 5)):
        assert metric(after, hist + "_count") == metric(before, hist + "_count") + add
    assert metric(after, "vllm:num_requests_running") == 0


# ---------------------------------------------------------------------------
# The engine model
# ---------------------------------------------------------------------------


def stream_times(port, n_tokens, prompt="x", result=None, key=None, path="/v1/completions"):
    r = post(port, path, {"prompt": prompt, "max_tokens": n_tokens, "ignore_eos": True,
                          "stream": True})
    times = [t for t, _ in content_events(sse_events(r))]
    assert len(times) == n_tokens
    out = {"sent": r.t_sent, "first": times[0], "last": times[-1], "times": times}
    if result is not None:
        result[key] = out
    return out


def test_batching_limits_running_sequences(sim_factory):
    s = sim_factory("--max-num-seqs", "2", "--itl-ms", "20")
    results = {}
    waiting_seen = []

    def watch():
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not waiting_seen:
            _, v = metrics(s.port)
            if metric(v, "vllm:num_requests_waiting") == 2:
                waiting_seen.append(metric(v, "vllm:num_requests_running"))
            time.sleep(0.02)

    targets = [lambda k=k: stream_times(s.port, 40, result=results, key=k) for k in range(4)]
    run_threads(targets + [watch], timeout=60)
    order = sorted(results.values(), key=lambda r: r["first"])
    early, late = order[:2], order[2:]
    first_done = min(r["last"] for r in early)
    for r in late:
        # Admitted only when a slot frees: after one of the first two finished.
        assert r["first"] >= first_done - 0.005, (r["first"] - first_done, results)
    assert waiting_seen == [2.0], "with 4 requests and 2 slots, /metrics should show 2 waiting"


def test_ttft_grows_with_prompt_length(sim_factory):
    s = sim_factory("--prefill-tokens-per-s", "1000", "--itl-ms", "5")
    short = stream_times(s.port, 2, prompt=words(10))
    long = stream_times(s.port, 2, prompt=words(600))
    ttft_short = short["first"] - short["sent"]
    ttft_long = long["first"] - long["sent"]
    assert ttft_long >= 0.45, ttft_long          # 600 tokens at 1000/s = 0.6 s
    assert ttft_long < 3.0, ttft_long
    assert ttft_short < ttft_long - 0.3, (ttft_short, ttft_long)


def test_itl_matches_setting(sim_factory):
    s = sim_factory("--itl-ms", "20", "--itl-ms-per-seq", "0")
    t = stream_times(s.port, 40)["times"]
    gaps = [b - a for a, b in zip(t, t[1:])]
    med = statistics.median(gaps)
    assert 0.012 <= med <= 0.045, med
    assert (t[-1] - t[0]) >= 39 * 0.015, t[-1] - t[0]


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------


def test_fault_error(sim):
    r = post(sim.port, "/v1/completions", {"prompt": "x", "stream": True},
             headers={"X-Sim-Fault": "error"})
    err = assert_openai_error(r, 500)
    assert err["type"] == "InternalServerError"
    r = post(sim.port, "/generate", {"inputs": "x"}, headers={"X-Sim-Fault": "error"})
    assert r.status == 500 and r.json()["error_type"] == "generation"


def test_fault_error_event(sim):
    r = post(sim.port, "/v1/completions",
             {"prompt": "x", "max_tokens": 10, "ignore_eos": True, "stream": True},
             headers={"X-Sim-Fault": "error-event"})
    assert r.status == 200 and r.terminated
    evs = sse_events(r)
    assert [k for _, k, _ in evs] == ["json"] * 6 + ["done"]
    assert all("choices" in ev for _, _, ev in evs[:5])
    assert evs[5][2] == {"error": {"message": evs[5][2]["error"]["message"],
                                   "type": "InternalServerError", "code": 500}}
    r = post(sim.port, "/generate_stream",
             {"inputs": "x", "parameters": {"max_new_tokens": 4, "ignore_eos": True}},
             headers={"X-Sim-Fault": "error-event"})
    evs = sse_events(r, tgi=True)
    assert [k for _, k, _ in evs] == ["json"] * 3
    assert evs[2][2]["error_type"] == "generation" and isinstance(evs[2][2]["error"], str)
    assert r.terminated and b"[DONE]" not in r.body


def test_fault_stall(sim_factory):
    s = sim_factory("--stall-ms", "700", "--itl-ms", "5")
    r = post(s.port, "/v1/completions",
             {"prompt": "x", "max_tokens": 10, "ignore_eos": True, "stream": True},
             headers={"X-Sim-Fault": "stall"})
    t = [t for t, _ in content_events(sse_events(r))]
    assert len(t) == 10 and r.terminated
    gaps = [b - a for a, b in zip(t, t[1:])]
    worst = max(range(len(gaps)), key=lambda i: gaps[i])
    assert worst == 4, gaps          # between token 5 and token 6
    assert gaps[worst] >= 0.6, gaps


def test_fault_drop(sim):
    r = post(sim.port, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "x"}], "max_tokens": 8,
              "ignore_eos": True, "stream": True},
             headers={"X-Sim-Fault": "drop"})
    assert r.status == 200
    assert getattr(r, "closed", False) and not r.terminated
    assert len(content_events(sse_events(r))) == 4
    assert b"[DONE]" not in r.body
    assert request(sim.port, "GET", "/health").status == 200


def test_fault_rates(sim_factory):
    s = sim_factory("--error-rate", "1")
    for _ in range(5):
        assert post(s.port, "/v1/completions", {"prompt": "x"}).status == 500
    # The header wins over the rates.
    r = post(s.port, "/v1/completions", {"prompt": "x"}, headers={"X-Sim-Fault": "none"})
    assert r.status == 200


# ---------------------------------------------------------------------------
# Truth file, shutdown, scale
# ---------------------------------------------------------------------------


def test_truth_file(sim_factory, tmp_path):
    path = tmp_path / "truth.jsonl"
    s = Sim(["--truth", str(path), "--itl-ms", "2"]).start()
    try:
        sent = {}
        for i in range(6):
            rid = f"truth-{i}"
            n = 3 + i
            body = {"prompt": words(i + 1), "max_tokens": n, "ignore_eos": True,
                    "stream": i % 2 == 0}
            r = post(s.port, "/v1/completions", body, headers={"X-Request-Id": rid})
            assert r.status == 200
            sent[rid] = (i + 1, n, r)
        post(s.port, "/v1/completions", {"prompt": "x", "max_tokens": 6, "ignore_eos": True,
                                         "stream": True},
             headers={"X-Request-Id": "dropped", "X-Sim-Fault": "drop"})
        post(s.port, "/v1/completions", {"prompt": "x"},
             headers={"X-Request-Id": "failed", "X-Sim-Fault": "error"})
        post(s.port, "/generate_stream", {"inputs": "a b", "parameters": {"max_new_tokens": 2}})
        time.sleep(0.2)
    finally:
        s.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    by_id = {rec["request_id"]: rec for rec in lines}
    assert len(lines) == 9 and len(by_id) == 9, lines
    for rid, (prompt, n, _) in sent.items():
        rec = by_id[rid]
        assert rec["fault"] is None and rec["status"] == 200
        assert rec["prompt_tokens"] == prompt and rec["output_tokens"] == n
        assert rec["arrival_ns"] <= rec["first_token_ns"] <= rec["last_token_ns"], rec
        assert rec["endpoint"] == "/v1/completions"
    d = by_id["dropped"]
    assert d["fault"] == "drop" and d["output_tokens"] == 3
    assert d["first_token_ns"] <= d["last_token_ns"]
    f = by_id["failed"]
    assert f["fault"] == "error" and f["status"] == 500 and f["output_tokens"] == 0
    assert f["first_token_ns"] is None and f["last_token_ns"] is None
    gen = [rec for rec in lines if rec["endpoint"] == "/generate_stream"]
    assert len(gen) == 1 and re.fullmatch(r"[0-9a-f]{32}", gen[0]["request_id"])
    # Server-side stream duration is close to what the client saw.
    rec, r = by_id["truth-4"], sent["truth-4"][2]
    times = [t for t, _ in content_events(sse_events(r))]
    server_span = (rec["last_token_ns"] - rec["first_token_ns"]) / 1e9
    assert abs(server_span - (times[-1] - times[0])) < 0.25


def test_sigterm_with_open_streams(tmp_path):
    path = tmp_path / "truth.jsonl"
    s = Sim(["--truth", str(path), "--itl-ms", "50"]).start()
    socks = []
    try:
        for i in range(20):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=IO_TIMEOUT)
            c.sendall(build_request("POST", "/v1/completions",
                                    {"prompt": "x", "max_tokens": 1000, "ignore_eos": True,
                                     "stream": True}, {"X-Request-Id": f"open-{i}"}))
            socks.append(c)
        for c in socks:
            c.settimeout(IO_TIMEOUT)
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        s.stop()
    finally:
        for c in socks:
            c.close()
        s.kill()
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["request_id"] for r in recs) == sorted(f"open-{i}" for i in range(20))
    assert all(r["fault"] == "shutdown" for r in recs)


def test_500_concurrent_streams(sim_factory):
    s = sim_factory("--itl-ms", "10")
    n_streams, n_tokens = 500, 20
    sel = selectors.DefaultSelector()
    conns = {}
    try:
        for i in range(n_streams):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=IO_TIMEOUT)
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, i)
            conns[i] = (c, Response())
        for i, (c, _) in conns.items():
            c.sendall(build_request("POST", "/v1/completions",
                                    {"prompt": "x y", "max_tokens": n_tokens,
                                     "ignore_eos": True, "stream": True}))
        open_ = set(conns)
        deadline = time.monotonic() + 60
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                c, r = conns[key.data]
                data = c.recv(65536)
                if not data:
                    open_.discard(key.data)
                    sel.unregister(c)
                    continue
                r.feed(data, time.monotonic())
                if r.done:
                    open_.discard(key.data)
                    sel.unregister(c)
        assert not open_, f"{len(open_)} streams unfinished"
        for i, (_, r) in conns.items():
            assert r.status == 200 and r.terminated, i
            evs = sse_events(r)
            assert len(content_events(evs)) == n_tokens and evs[-1][1] == "done", i
    finally:
        for c, _ in conns.values():
            c.close()
