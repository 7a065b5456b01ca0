"""Operations: health/readiness/OpenAPI routes, the command line, migrate and seed,
graceful shutdown under load, idle connections."""

import http.client
import json
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (
    ADMIN_KEY, STORE, Client, check_alive, enc, ids_of, model_body, read_response, run_cli, store_url, uid,
)

MODELS = "/api/v1/models"
HW = "/api/v1/hardware"
RUNS = "/api/v1/benchmarks"


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status == 200, r
    assert r.body == {"status": "ok"}


def test_readyz(client):
    r = client.get("/readyz")
    assert r.status == 200, r
    assert r.body["status"] == "ready"
    assert r.body["store"] == STORE
    version = r.body["schema_version"]
    assert isinstance(version, int) and not isinstance(version, bool) and version >= 1, r.body


def test_openapi_document(client):
    r = client.get("/openapi.json")
    assert r.status == 200, r
    doc = r.body
    assert isinstance(doc, dict), f"/openapi.json is not a JSON object: {r!r}"
    assert isinstance(doc.get("openapi"), str) and doc["openapi"].startswith("3.1"), doc.get("openapi")
    paths = doc.get("paths", {})
    for route in ("/api/v1/models", "/api/v1/hardware", "/api/v1/benchmarks"):
        assert route in paths, f"{route} missing from the OpenAPI paths {sorted(paths)}"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def test_version():
    res = run_cli("--version")
    assert res.returncode == 0, res
    assert re.search(r"\d+\.\d+", res.stdout), res.stdout


def test_help_lists_commands():
    res = run_cli("--help")
    assert res.returncode == 0, res
    text = res.stdout + res.stderr
    for cmd in ("serve", "migrate", "seed", "config"):
        assert cmd in text, f"--help does not mention {cmd}:\n{text}"


def test_serve_help_lists_flags():
    res = run_cli("serve", "--help")
    assert res.returncode == 0, res
    text = res.stdout + res.stderr
    for flag in ("--listen", "--db", "--threads", "--max-body", "--max-connections",
                 "--idle-timeout", "--shutdown-timeout", "--log-level"):
        assert flag in text, f"serve --help does not mention {flag}:\n{text}"


def parse_config(text):
    settings = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+) = (.*)", line)
        assert m, f"config line is not `name = value`: {line!r}"
        settings[m.group(1).lower().replace("-", "_")] = m.group(2)
    return settings


def test_config_prints_settings_and_env_values(tmp_path):
    db = f"sqlite:{tmp_path}/cfg.db"
    res = run_cli("config", env={"MODELCAT_DB": db, "MODELCAT_LISTEN": "127.0.0.1:5599",
                                 "MODELCAT_THREADS": "7", "MODELCAT_MAX_BODY": "2048"})
    assert res.returncode == 0, res
    settings = parse_config(res.stdout)
    assert settings.get("db") == db, settings
    assert settings.get("listen") == "127.0.0.1:5599", settings
    assert settings.get("threads") == "7", settings
    assert settings.get("max_body") == "2048", settings
    for name in ("max_connections", "idle_timeout", "shutdown_timeout", "log_level"):
        assert name in settings, f"config does not print {name}: {settings}"


def test_config_defaults():
    res = run_cli("config")
    assert res.returncode == 0, res
    settings = parse_config(res.stdout)
    assert settings.get("max_body") == "1048576", settings
    assert settings.get("db") and settings.get("listen"), settings


@pytest.mark.parametrize("args,mention", [
    (["serve", "--bogus"], "bogus"),
    (["--bogus"], "bogus"),
    (["frobnicate"], "frobnicate"),
    (["serve", "--threads", "0"], "threads"),
    (["serve", "--threads", "257"], "threads"),
    (["serve", "--threads", "four"], "threads"),
    (["serve", "--max-body", "1023"], "max-body"),
    (["serve", "--max-body", "1073741825"], "max-body"),
    (["serve", "--log-level", "bogus"], "log-level"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, mention):
    full = args + (["--db", f"sqlite:{tmp_path}/x.db", "--listen", "127.0.0.1:0"]
                   if args[0] == "serve" else [])
    res = run_cli(*full, timeout=10)
    assert res.returncode == 2, f"{full}: rc={res.returncode} stderr={res.stderr!r}"
    err = res.stderr.strip()
    assert err, "no message on stderr"
    assert "\n" not in err, f"stderr is more than one line: {res.stderr!r}"
    assert mention.split("-")[0] in err.lower(), f"message does not name {mention}: {err!r}"


def test_out_of_range_env_value_exits_2(tmp_path):
    res = run_cli("serve", "--db", f"sqlite:{tmp_path}/x.db", "--listen", "127.0.0.1:0",
                  env={"MODELCAT_THREADS": "0"}, timeout=10)
    assert res.returncode == 2, res
    assert res.stderr.strip() and "\n" not in res.stderr.strip(), res.stderr


def test_max_body_from_env_and_flag_wins(server_factory):
    body = model_body(description="x" * 2000)
    env = {"MODELCAT_MAX_BODY": "1024"}
    from_env = server_factory(env=env)
    c = from_env.client()
    r = c.post(MODELS, body)
    c.close()
    assert r.status == 413, f"MODELCAT_MAX_BODY=1024 not applied: {r!r}"

    flag_wins = server_factory(args=["--max-body", "8192"], env=env)
    c = flag_wins.client()
    r = c.post(MODELS, body)
    c.close()
    assert r.status == 201, f"--max-body 8192 should win over MODELCAT_MAX_BODY=1024: {r!r}"


# ---------------------------------------------------------------------------
# migrate and seed
# ---------------------------------------------------------------------------


def test_migrate_fresh_file_then_readyz(tmp_path, server_factory):
    db = tmp_path / "fresh.db"
    for _ in range(2):  # idempotent
        res = run_cli("migrate", "--db", store_url(db))
        assert res.returncode == 0, res
    if STORE == "sqlite":
        assert db.exists()
    srv = server_factory(db_path=db, migrate=False)
    c = srv.client()
    r = c.get("/readyz")
    assert r.status == 200, r
    assert r.body["status"] == "ready" and r.body["store"] == STORE
    assert isinstance(r.body["schema_version"], int) and r.body["schema_version"] >= 1
    assert c.post(MODELS, model_body()).status == 201
    c.close()


def _catalog(srv):
    c = srv.client()
    try:
        models, _ = c.list_all(MODELS)
        hardware, _ = c.list_all(HW)
        runs, _ = c.list_all(RUNS)
        for m in models:
            g = c.get(f"{MODELS}/{enc(m['id'])}")
            assert g.status == 200 and g.body == m, g
    finally:
        c.close()
    return models, hardware, runs


def test_seed_demo_is_idempotent(tmp_path, server_factory):
    db = tmp_path / "seed.db"
    url = store_url(db)
    assert run_cli("migrate", "--db", url).returncode == 0
    res = run_cli("seed", "--demo", "--db", url)
    assert res.returncode == 0, res
    srv = server_factory(db_path=db, migrate=False)
    models, hardware, runs = _catalog(srv)
    srv.stop()
    assert len(models) >= 10, f"{len(models)} demo models"
    assert len(hardware) >= 5, f"{len(hardware)} demo hardware rows"
    assert runs == []
    assert any(h.get("on_demand_usd_per_hour") is not None for h in hardware), "no prices in the demo"

    res = run_cli("seed", "--demo", "--db", url)
    assert res.returncode == 0, res
    srv2 = server_factory(db_path=db, migrate=False)
    models2, hardware2, runs2 = _catalog(srv2)
    assert sorted(ids_of(models2)) == sorted(ids_of(models))
    assert sorted(ids_of(hardware2)) == sorted(ids_of(hardware))
    assert runs2 == []


# ---------------------------------------------------------------------------
# Shutdown and connections
# ---------------------------------------------------------------------------


def test_sigterm_with_requests_in_flight(server_factory):
    # --shutdown-timeout bounds how long in-flight requests may take to finish;
    # these requests take milliseconds, so the server must be gone well before
    # it even while clients keep sending on their keep-alive connections (new
    # requests after SIGTERM are not in flight: the server should close those
    # connections rather than keep serving them until the timeout).
    srv = server_factory(args=["--shutdown-timeout", "30"])
    stop = threading.Event()
    acked = {}
    lock = threading.Lock()
    statuses = []
    fam = "term" + uid()

    def writer():
        c = srv.client(timeout=10)
        c.retry = False
        try:
            while not stop.is_set():
                body = model_body(f"term-org/m-{uid()}", family=fam)
                try:
                    r = c.post(MODELS, body)
                except (OSError, http.client.HTTPException):
                    return
                with lock:
                    statuses.append(r.status)
                    if r.status == 201:
                        acked[body["id"]] = r.body
        finally:
            c.close()

    def reader():
        c = srv.client(timeout=10)
        c.retry = False
        try:
            while not stop.is_set():
                try:
                    r = c.get(MODELS, {"family": fam, "limit": "200"})
                except (OSError, http.client.HTTPException):
                    return
                with lock:
                    statuses.append(r.status)
        finally:
            c.close()

    idle = srv.client()
    assert idle.get("/healthz").status == 200  # an idle keep-alive connection stays open
    threads = [threading.Thread(target=fn, daemon=True) for fn in [writer] * 4 + [reader] * 2]
    for t in threads:
        t.start()
    time.sleep(0.8)
    with lock:
        acked_before = len(acked)
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        srv.kill()
        with lock:
            served = len(statuses)
        pytest.fail(f"no exit within 10s of SIGTERM (--shutdown-timeout 30) while clients kept "
                    f"sending on keep-alive connections ({served} responses in all)\n{srv.log_tail()}")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        idle.close()
    assert rc == 0, f"rc={rc} after SIGTERM\n{srv.log_tail()}"
    assert acked_before > 0, "no write was acknowledged before SIGTERM"
    assert 500 not in statuses, f"a 500 during shutdown\n{srv.log_tail()}"

    again = server_factory(db_path=srv.db_path, migrate=False)
    c = again.client()
    for model_id, body in acked.items():
        g = c.get(f"{MODELS}/{enc(model_id)}")
        assert g.status == 200 and g.body == body, f"acknowledged {model_id} lost: {g!r}"
    c.close()


def test_sigterm_finishes_requests_in_flight_and_serves_no_new_ones(server_factory):
    srv = server_factory(args=["--shutdown-timeout", "30"])
    bodies = [json.dumps(model_body()).encode() for _ in range(2)]
    socks = [srv.raw_socket(timeout=5) for _ in range(2)]
    try:
        # Two requests in flight: headers and half of each body sent.
        for sock, body in zip(socks, bodies):
            head = (f"POST {MODELS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {ADMIN_KEY}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            sock.sendall(head + body[:20])
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)

        # The first finishes while the second still holds the drain open.
        socks[0].sendall(bodies[0][20:])
        resp = read_response(socks[0], timeout=5)
        assert resp is not None, f"a request in flight at SIGTERM was cut\n{srv.log_tail()}"
        assert resp[0] == 201, resp
        served_again = None
        if "close" not in resp[1].get("connection", "").lower():
            try:
                socks[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                served_again = read_response(socks[0], timeout=3)
            except OSError:
                served_again = None
        assert served_again is None, (
            "while draining after SIGTERM the server answered without `Connection: close` and then "
            f"served a new request on the same keep-alive connection (status {served_again[0]}); "
            "with clients that keep sending, the drain then lasts until --shutdown-timeout")

        socks[1].sendall(bodies[1][20:])
        resp = read_response(socks[1], timeout=5)
        assert resp is not None and resp[0] == 201, f"second request in flight: {resp!r}"
    finally:
        for sock in socks:
            sock.close()
    try:
        rc = srv.proc.wait(max(0.1, 5 - (time.monotonic() - signalled)))
    except subprocess.TimeoutExpired:
        srv.kill()
        pytest.fail(f"no exit within 5s of SIGTERM once the requests in flight were done\n{srv.log_tail()}")
    assert rc == 0, f"rc={rc}\n{srv.log_tail()}"

    again = server_factory(db_path=srv.db_path, migrate=False)
    c = again.client()
    for body in bodies:
        model_id = json.loads(body)["id"]
        assert c.get(f"{MODELS}/{enc(model_id)}").status == 200, f"{model_id} acknowledged but lost"
    c.close()


def _raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_1000_idle_connections_do_not_block_requests(server_factory):
    soft = _raise_nofile(4096)
    assert soft >= 1100, f"RLIMIT_NOFILE soft limit {soft} is too low for this test"
    srv = server_factory()  # started after raising the limit, so it inherits it
    socks = []
    try:
        for i in range(1000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
            except OSError as exc:
                pytest.fail(f"idle connection {i} could not be opened: {exc!r}")
        time.sleep(0.2)
        started = time.monotonic()
        c = Client("127.0.0.1", srv.port, timeout=5, retry=False)
        try:
            r = c.get(MODELS, {"limit": "1"})
            h = c.get("/healthz")
        finally:
            c.close()
        elapsed = time.monotonic() - started
        assert r.status == 200 and h.status == 200, (r, h)
        assert elapsed < 5, f"took {elapsed:.1f}s with 1000 idle connections"
        # One of the idle connections can still be used.
        s = socks[500]
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(64).startswith(b"HTTP/1.1 200"), "an idle connection was not served"
    finally:
        for s in socks:
            s.close()
    check_alive(srv)


def test_idle_timeout_closes_silent_connections(server_factory):
    srv = server_factory(args=["--idle-timeout", "1"])
    sock = srv.raw_socket(timeout=6)
    try:
        started = time.monotonic()
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            except socket.timeout:
                pytest.fail("a silent connection was still open 6s after --idle-timeout 1")
            if not chunk:
                break
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert 0.5 <= elapsed < 5, f"closed after {elapsed:.1f}s with --idle-timeout 1"
    check_alive(srv)
