"""Shared fixtures and helpers for the modelcat black-box integration tests.

Only the Python standard library is used.  The server binary comes from the
environment variable MODELCAT_BIN (default ``build/modelcat`` relative to the
repository root).  Every test module gets its own server on a fresh temporary
database (fixture ``server``); tests talk to it through ``Client``.

The store is chosen by MODELCAT_TEST_STORE: ``sqlite`` (default; a file per
database) or ``postgres``, where every test database is a database of its own
on the server of MODELCAT_TEST_PG_URL, created through MODELCAT_TEST_PG_ADMIN_URL
with ``psql``.  Those URLs come from the file named by MODELCAT_TEST_SERVICES
(KEY=VALUE lines, as written by scripts/test-services.sh) or the environment.
A test names a database by a path (``db_path``); ``store_url(db_path)`` gives
the same store for the same path, so a restart finds its data on both stores.

Every server starts with a bootstrap admin key (MODELCAT_BOOTSTRAP_ADMIN_KEY =
``ADMIN_KEY``), and ``Client`` sends it unless told otherwise (``key=None``
for an anonymous client, or an explicit Authorization header): writes need a
credential, and the authorization tests make their own keys.

Helpers live here and are imported by the test modules with
``from conftest import ...`` (pytest's default "prepend" import mode puts this
folder on sys.path).
"""

import base64
import collections
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_key():
    """A well-formed API key: mc_ + 8 base32 chars + _ + 43 base64url chars."""
    kid = base64.b32encode(os.urandom(5)).decode().lower()
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return f"mc_{kid}_{secret}"


ADMIN_KEY = make_key()

# Seconds; every socket and every wait uses a bounded timeout.
SOCKET_TIMEOUT = 10.0
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 20.0

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LISTEN_RE = re.compile(r"listening on http://[^\s:/]+:(\d+)")

# The 28 latency summary fields of a benchmark run.
LATENCY_FIELDS = [
    f"{stat}_{metric}_ms"
    for metric in ("ttft", "tpot", "itl", "e2el")
    for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99")
]


# ---------------------------------------------------------------------------
# Store selection (read before _clean_env below drops MODELCAT_* variables)
# ---------------------------------------------------------------------------


def _services_env():
    values = {k: v for k, v in os.environ.items() if k.startswith("MODELCAT_TEST_")}
    path = os.environ.get("MODELCAT_TEST_SERVICES")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise pytest.UsageError(f"MODELCAT_TEST_SERVICES={path}: {exc}") from exc
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                values[key.strip()] = value.strip()
    return values


_SERVICES = _services_env()
STORE = _SERVICES.get("MODELCAT_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"MODELCAT_TEST_STORE={STORE!r}: want sqlite or postgres")
PG_URL = _SERVICES.get("MODELCAT_TEST_PG_URL")
PG_ADMIN_URL = _SERVICES.get("MODELCAT_TEST_PG_ADMIN_URL")
if STORE == "postgres" and not (PG_URL and PG_ADMIN_URL):
    # Never fall back to SQLite silently: a PostgreSQL run without a server fails.
    raise pytest.UsageError("MODELCAT_TEST_STORE=postgres needs MODELCAT_TEST_PG_URL and "
                            "MODELCAT_TEST_PG_ADMIN_URL (or MODELCAT_TEST_SERVICES=<env file>)")

_PG_DATABASES = {}  # db_path -> database name


def pg_admin(*statements):
    """Run SQL statements as the PostgreSQL admin with psql; fails the test on error."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", PG_ADMIN_URL]
    for sql in statements:
        cmd += ["-c", sql]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        pytest.fail(f"psql {statements!r} failed rc={res.returncode}: {res.stderr.strip()}")


def _pg_url(database):
    u = urllib.parse.urlsplit(PG_URL)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + database, u.query, u.fragment))


def store_url(db_path):
    """The store URL of the test database named by ``db_path``.

    SQLite: the file itself.  PostgreSQL: a database of its own, created on
    first use; the same path gives the same database afterwards.
    """
    db_path = str(db_path)
    if STORE == "sqlite":
        return "sqlite:" + db_path
    name = _PG_DATABASES.get(db_path)
    if name is None:
        name = "mc_" + uid()
        owner = urllib.parse.unquote(urllib.parse.urlsplit(PG_URL).username or "")
        pg_admin(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        _PG_DATABASES[db_path] = name
    return _pg_url(name)


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_databases():
    yield
    if STORE == "postgres" and _PG_DATABASES:
        # Servers are stopped by now; FORCE covers any that a failed test left.
        pg_admin(*[f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in _PG_DATABASES.values()])


def modelcat_bin():
    value = os.environ.get("MODELCAT_BIN", "build/modelcat")
    path = Path(value)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return str(path)


def uid():
    """A short unique lowercase token, to keep tests sharing one db apart."""
    return uuid.uuid4().hex[:12]


def enc(resource_id):
    """Percent-encode a path segment, '/' included."""
    return urllib.parse.quote(resource_id, safe="")


def with_query(path, params=None):
    """Append a query string; ``params`` is a dict or a list of pairs (repeats allowed)."""
    if not params:
        return path
    if isinstance(params, dict):
        params = list(params.items())
    return path + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


# ---------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------


class ServerProcess:
    """One ``modelcat serve`` process with its stdout/stderr collected."""

    def __init__(self, db_path, extra_args=(), env=None, migrate=True):
        self.db_path = str(db_path)
        self.db_url = store_url(self.db_path)
        self.extra_args = list(extra_args)
        self.env = env
        self.migrate = migrate
        self.proc = None
        self.port = None
        self.lines = collections.deque(maxlen=400)
        self._port_event = threading.Event()
        self._readers = []

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        _STARTED.append(self)
        binary = modelcat_bin()
        assert os.path.exists(binary), f"modelcat binary not found at {binary} (set MODELCAT_BIN)"
        env = dict(os.environ)
        env["MODELCAT_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY
        if self.env:
            env.update(self.env)
        if self.migrate:
            res = run_cli("migrate", "--db", self.db_url, env=self.env)
            assert res.returncode == 0, f"migrate failed rc={res.returncode}: {res.stderr!r}"
        cmd = [
            binary, "serve",
            "--listen", "127.0.0.1:0",
            "--db", self.db_url,
            "--threads", "4",
        ] + self.extra_args
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env,
        )
        for stream, name in ((self.proc.stderr, "stderr"), (self.proc.stdout, "stdout")):
            t = threading.Thread(target=self._drain, args=(stream, name), daemon=True)
            t.start()
            self._readers.append(t)
        if not self._port_event.wait(START_TIMEOUT):
            self.kill()
            pytest.fail("server did not print 'listening on http://127.0.0.1:PORT' within "
                        f"{START_TIMEOUT}s\n{self.log_tail()}")
        if self.port is None:
            self.kill()
            pytest.fail(f"server exited before listening (rc={self.proc.returncode})\n{self.log_tail()}")
        self.wait_healthy()
        return self

    def _drain(self, stream, name):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(f"[{name}] {line}")
            if self.port is None and name == "stderr":
                m = LISTEN_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._port_event.set()
        stream.close()
        self._port_event.set()  # process gone: unblock a waiting start()

    def wait_healthy(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with rc={self.proc.returncode} while starting\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"/healthz did not answer 200 within {timeout}s (last: {last})\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then require exit code 0 within ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            pytest.fail(f"server was not running at stop (rc={rc})\n{self.log_tail()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        self._join_readers()
        assert rc == 0, f"server exited with rc={rc} after SIGTERM\n{self.log_tail()}"

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._join_readers()

    def _join_readers(self):
        for t in self._readers:
            t.join(2)

    def log_tail(self, n=60):
        lines = list(self.lines)[-n:]
        return "--- server output (last %d lines) ---\n%s" % (len(lines), "\n".join(lines))

    # -- clients -----------------------------------------------------------

    def client(self, timeout=SOCKET_TIMEOUT, key=ADMIN_KEY):
        return Client("127.0.0.1", self.port, timeout=timeout, server=self, key=key)

    def raw_socket(self, timeout=SOCKET_TIMEOUT):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


# ---------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------


class Resp:
    """A response; unpacks as ``status, headers, body``.

    ``headers`` has lowercased names (repeated headers joined with ", ");
    ``body`` is the parsed JSON when the response is JSON, else the raw bytes;
    ``raw`` always holds the raw bytes.
    """

    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        raw = self.raw[:600]
        return f"<Resp {self.status} {self.headers.get('content-type')!r} {raw!r}>"


_NO_BODY = object()


class Client:
    """A keep-alive HTTP/1.1 client bound to one server, one connection."""

    def __init__(self, host, port, timeout=SOCKET_TIMEOUT, server=None, retry=True,
                 key=ADMIN_KEY):
        self.host = host
        self.port = port
        self.key = key
        self.timeout = timeout
        self.server = server
        self.retry = retry
        self.conn = None
        self._used = False

    def new_connection(self, **kw):
        """Another client to the same server, with its own connection."""
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("retry", self.retry)
        kw.setdefault("key", self.key)
        return Client(self.host, self.port, server=self.server, **kw)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._used = False

    def request(self, method, path, json_body=_NO_BODY, body=None, headers=None,
                content_type="application/json"):
        hdrs = dict(headers or {})
        if self.key and not any(k.lower() == "authorization" for k in hdrs):
            hdrs["Authorization"] = f"Bearer {self.key}"
        if json_body is not _NO_BODY:
            body = json.dumps(json_body).encode("utf-8")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None and content_type is not None:
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = content_type
        attempts = 2 if self.retry else 1
        for attempt in range(attempts):
            if self.conn is None:
                self._connect()
            reused = self._used
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                self._used = True
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server had closed: retry once on a
                # fresh connection; a failure on a fresh connection is real.
                self.close()
                if reused and attempt + 1 < attempts:
                    continue
                raise
            except Exception:
                self.close()
                raise
            break
        headers_out = {}
        for name, value in resp.getheaders():
            key = name.lower()
            headers_out[key] = headers_out[key] + ", " + value if key in headers_out else value
        if resp.will_close:
            self.close()
        parsed = raw
        ctype = headers_out.get("content-type", "")
        if raw and "json" in ctype.lower():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
        return Resp(resp.status, headers_out, parsed, raw)

    def get(self, path, params=None, **kw):
        return self.request("GET", with_query(path, params), **kw)

    def delete(self, path, params=None, **kw):
        return self.request("DELETE", with_query(path, params), **kw)

    def post(self, path, json_body=_NO_BODY, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path, json_body=_NO_BODY, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def patch(self, path, json_body=_NO_BODY, **kw):
        return self.request("PATCH", path, json_body=json_body, **kw)

    # -- convenience -------------------------------------------------------

    def create(self, collection, obj, expect=201, **kw):
        r = self.post(collection, obj, **kw)
        assert r.status == expect, f"POST {collection} -> {r!r} for {obj!r}"
        return r.body

    def list_all(self, path, params=None, limit=200, max_pages=1000):
        """Follow next_cursor to the end; return (items, pages).  Fails on a repeated page."""
        params = list(params.items()) if isinstance(params, dict) else list(params or [])
        items, pages, cursor = [], 0, None
        while True:
            q = params + [("limit", str(limit))]
            if cursor is not None:
                q.append(("cursor", cursor))
            r = self.get(path, q)
            assert r.status == 200, f"GET {with_query(path, q)} -> {r!r}"
            check_list_shape(r.body)
            items.extend(r.body["items"])
            pages += 1
            assert len(r.body["items"]) <= limit
            cursor = r.body["next_cursor"]
            if cursor is None:
                return items, pages
            assert pages < max_pages, "pagination does not terminate"


def check_list_shape(body):
    assert isinstance(body, dict), f"list body is not a JSON object: {body!r}"
    assert isinstance(body.get("items"), list), f"list body without items: {body!r}"
    assert "next_cursor" in body, f"list body without next_cursor: {body!r}"
    assert body["next_cursor"] is None or isinstance(body["next_cursor"], str)


def ids_of(items, key="id"):
    return [it[key] for it in items]


def assert_error(resp, status, code=None, field=None):
    """The response is an error of ``status`` with exactly the documented shape."""
    assert resp.status == status, f"expected {status}, got {resp!r}"
    ctype = resp.headers.get("content-type", "")
    assert ctype.lower().startswith("application/json"), f"error Content-Type {ctype!r}: {resp!r}"
    body = resp.body
    assert isinstance(body, dict), f"error body is not a JSON object: {resp!r}"
    assert set(body) == {"error"}, f"error body has other top-level members: {body!r}"
    err = body["error"]
    assert isinstance(err, dict), f"error member is not an object: {body!r}"
    assert {"code", "message"} <= set(err) <= {"code", "message", "field"}, f"bad error shape: {body!r}"
    assert isinstance(err["code"], str) and err["code"], body
    assert isinstance(err["message"], str) and err["message"], body
    if "field" in err:
        assert isinstance(err["field"], str) and err["field"], body
    if code is not None:
        assert err["code"] == code, f"expected code {code!r}: {body!r}"
    if field is not None:
        assert err.get("field") == field, f"expected field {field!r}: {body!r}"
    return err


def is_strong_etag(value):
    return isinstance(value, str) and not value.startswith("W/") and re.fullmatch(r'"[^"]*"', value) is not None


def approx(a, b, rel=1e-9):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def assert_fields_equal(sent, got, skip=()):
    """Every member of ``sent`` comes back equal (floats compared to 1e-9 relative)."""
    for key, value in sent.items():
        if key in skip:
            continue
        assert key in got or value is None, f"{key} missing from {got!r}"
        back = got.get(key)
        if isinstance(value, float) or isinstance(back, float):
            assert value is not None and back is not None and approx(float(value), float(back)), \
                f"{key}: sent {value!r}, got {back!r}"
        else:
            assert back == value, f"{key}: sent {value!r}, got {back!r}"


# -- request bodies --------------------------------------------------------


def model_body(model_id=None, **overrides):
    body = {
        "id": model_id or f"test-org/model-{uid()}",
        "name": "Test Model",
        "family": "testfam",
        "parameters_b": 7.5,
        "architecture": "LlamaForCausalLM",
        "context_length": 8192,
        "quantization": "bf16",
        "license": "apache-2.0",
        "source_uri": "https://example.com/model",
        "description": "A model made by the integration tests.",
        "tags": ["test", "chat"],
    }
    body.update(overrides)
    return body


def hardware_body(hw_id=None, **overrides):
    body = {
        "id": hw_id or f"hw-{uid()}",
        "gpu": "H100 80GB SXM",
        "memory_gb": 80,
        "provider": "aws",
        "instance_type": "p5.48xlarge",
        "gpus_per_instance": 8,
        "on_demand_usd_per_hour": 98.32,
        "spot_usd_per_hour": 39.33,
        "price_source": "https://aws.amazon.com/ec2/pricing/",
        "price_date": "2025-01-15",
    }
    body.update(overrides)
    return body


def run_body(model, hardware, **overrides):
    body = {
        "model": model,
        "engine": "vllm",
        "engine_version": "0.6.3",
        "hardware": hardware,
        "gpu_count": 1,
        "tensor_parallel": 1,
        "dataset": "random",
        "duration": 60.5,
        "completed": 1000,
        "failed": 0,
        "total_input_tokens": 1024000,
        "total_output_tokens": 128000,
        "request_throughput": 16.5,
        "output_throughput": 2115.7,
        "total_token_throughput": 19042.9,
    }
    body.update(overrides)
    return body


def read_response(sock, timeout=5.0):
    """Read one HTTP/1.1 response from a raw socket.

    Returns (status, headers, body) with lowercased header names, or None when
    the server closed the connection without answering.  Raises socket.timeout
    when nothing complete arrives within ``timeout`` seconds.
    """
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise socket.timeout("no complete response head")
        chunk = sock.recv(65536)
        if not chunk:
            if not buf:
                return None
            raise AssertionError(f"connection closed inside the response head: {buf[:300]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        length = int(length)
        while len(rest) < length:
            if time.monotonic() > deadline:
                raise socket.timeout("response body incomplete")
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        rest = rest[:length]
    return status, headers, rest


def check_alive(server):
    """The process still runs and a fresh connection gets 200 from /healthz."""
    assert server.alive(), f"server died (rc={server.proc.returncode})\n{server.log_tail()}"
    c = server.client(timeout=5)
    try:
        r = c.get("/healthz")
    finally:
        c.close()
    assert r.status == 200, f"/healthz answered {r!r}\n{server.log_tail()}"
    assert server.alive()


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def run_cli(*args, env=None, timeout=CLI_TIMEOUT):
    """Run the binary with ``args``; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    # Keep settings from the outer environment from leaking into the tests.
    for key in list(full_env):
        if key.startswith("MODELCAT_") and key != "MODELCAT_BIN":
            del full_env[key]
    if env:
        full_env.update(env)
    try:
        return subprocess.run([modelcat_bin()] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`modelcat {' '.join(args)}` did not finish within {timeout}s "
                    f"(stdout={exc.stdout!r}, stderr={exc.stderr!r})")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

# Every server started in this session, so a failing test's report can show
# what the servers it used printed.
_STARTED = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    shown = set()
    candidates = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, ServerProcess)]
    candidates += [s for s in _STARTED if s.proc is not None and s not in candidates
                   and getattr(s, "_test", None) == item.nodeid]
    for srv in candidates:
        if id(srv) in shown:
            continue
        shown.add(id(srv))
        rep.sections.append((f"modelcat on port {srv.port} (db {srv.db_path})", srv.log_tail(40)))


def _clean_env():
    for key in list(os.environ):
        if key.startswith("MODELCAT_") and key != "MODELCAT_BIN":
            del os.environ[key]


_clean_env()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server per test module, on a fresh temporary database."""
    tmp = tmp_path_factory.mktemp("modelcat")
    srv = ServerProcess(tmp / "modelcat.db").start()
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
        else:
            srv.kill()
            pytest.fail(f"server died during the module (rc={srv.proc.returncode})\n{srv.log_tail()}")


@pytest.fixture
def client(server):
    c = server.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def server_factory(tmp_path, request):
    """Start extra servers: ``server_factory(db_path=None, args=(), env=None)``.

    Servers still running at the end of the test are stopped with SIGTERM and
    must exit 0.
    """
    started = []

    def factory(db_path=None, args=(), env=None, migrate=True):
        if db_path is None:
            db_path = tmp_path / f"extra-{len(started)}.db"
        srv = ServerProcess(db_path, extra_args=args, env=env, migrate=migrate)
        srv._test = request.node.nodeid
        started.append(srv)
        return srv.start()

    yield factory
    failures = []
    for srv in started:
        if srv.alive():
            srv.proc.send_signal(signal.SIGTERM)
            try:
                rc = srv.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                srv.kill()
                failures.append(f"server did not exit after SIGTERM\n{srv.log_tail()}")
                continue
            srv._join_readers()
            if rc != 0:
                failures.append(f"server exited rc={rc} after SIGTERM\n{srv.log_tail()}")
        else:
            srv.kill()
    if failures:
        pytest.fail("\n".join(failures))


def run_threads(targets, timeout=60):
    """Start one thread per callable, join them all; re-raise the first exception."""
    errors = []

    def wrap(fn):
        def inner():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return inner

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"worker threads still running after {timeout}s"
    if errors:
        raise errors[0]

