"""Authentication, authorization, rate limits and the audit trail, end to end:
every route × every role; refused keys and tokens (expired, forged, alg none,
wrong or retired kid, revoked key, malformed keys); 429 and recovery; audit
rows matching the writes; security headers and CORS."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from conftest import ADMIN_KEY, assert_error, hardware_body, make_key, model_body, run_body, uid

SECRET_A = b"a" * 32 + b"modelcat-test-secret-A"
SECRET_B = b"b" * 32 + b"modelcat-test-secret-B"


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt(header, claims, secret):
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    c = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest() if secret else b""
    return f"{h}.{c}.{b64u(sig)}"


KEYRING = f"new:{b64u(SECRET_A)},old:{b64u(SECRET_B)}:verify,gone:{b64u(b'g' * 40)}:retired"


@pytest.fixture(scope="module")
def srv(server_factory_module):
    return server_factory_module(args=("--jwt-keys", KEYRING, "--jwt-ttl", "600"))


@pytest.fixture(scope="module")
def server_factory_module(tmp_path_factory):
    from conftest import ServerProcess
    started = []

    def factory(args=(), env=None):
        s = ServerProcess(tmp_path_factory.mktemp("auth") / "m.db", extra_args=args, env=env)
        started.append(s)
        return s.start()

    yield factory
    for s in started:
        if s.alive():
            s.stop()


@pytest.fixture(scope="module")
def keys(srv):
    """One key per role, made by the bootstrap admin through the API."""
    c = srv.client()
    out = {}
    for role in ("viewer", "editor", "worker", "admin"):
        r = c.post("/api/v1/keys", {"name": f"{role} key", "role": role})
        assert r.status == 201, r
        assert r.body["key"].startswith("mc_") and r.body["role"] == role
        assert r.headers["location"] == f"/api/v1/keys/{r.body['id']}"
        out[role] = r.body
    c.close()
    return out


@pytest.fixture(scope="module")
def fixture_ids(srv):
    c = srv.client()
    m = c.create("/api/v1/models", model_body(f"auth-org/m-{uid()}"))["id"]
    h = c.create("/api/v1/hardware", hardware_body())["id"]
    run = c.create("/api/v1/benchmarks", run_body(m, h))["id"]
    c.close()
    return {"model": m, "hw": h, "run": run}


def as_(srv, key):
    return srv.client(key=key)


def requests_for(ids):
    """(method, path, body, permission) for every route of the API."""
    m, h, run = ids["model"], ids["hw"], ids["run"]
    from urllib.parse import quote
    mq = quote(m, safe="")
    new_model = lambda: model_body(f"auth-org/n-{uid()}")
    new_hw = lambda: hardware_body()
    return [
        ("GET", "/api/v1/models", None, "read"),
        ("GET", f"/api/v1/models/{mq}", None, "read"),
        ("GET", f"/api/v1/models/{mq}/benchmarks", None, "read"),
        ("GET", "/api/v1/hardware", None, "read"),
        ("GET", f"/api/v1/hardware/{h}", None, "read"),
        ("GET", "/api/v1/benchmarks", None, "read"),
        ("GET", f"/api/v1/benchmarks/{run}", None, "read"),
        ("GET", f"/api/v1/benchmarks/{run}/samples", None, "read"),
        ("GET", f"/api/v1/benchmarks/{run}/gpu-samples", None, "read"),
        ("POST", "/api/v1/models", new_model, "catalog"),
        ("PUT", f"/api/v1/models/{mq}", lambda: dict(model_body(m), description="put"), "catalog"),
        ("PATCH", f"/api/v1/models/{mq}", lambda: {"description": "patched"}, "catalog"),
        ("DELETE", "/api/v1/models/{fresh_model}", None, "catalog"),
        ("POST", "/api/v1/hardware", new_hw, "catalog"),
        ("PUT", f"/api/v1/hardware/{h}", lambda: dict(hardware_body(), id=h), "catalog"),
        ("DELETE", "/api/v1/hardware/{fresh_hw}", None, "catalog"),
        ("POST", "/api/v1/benchmarks", lambda: run_body(m, h), "results"),
        ("DELETE", "/api/v1/benchmarks/{fresh_run}", None, "catalog"),
        ("GET", "/api/v1/keys", None, "admin"),
        ("POST", "/api/v1/keys", lambda: {"name": "k", "role": "viewer"}, "admin"),
        ("DELETE", "/api/v1/keys/{fresh_key}", None, "admin"),
        ("GET", "/api/v1/audit", None, "admin"),
    ]


ALLOWED = {
    "viewer": {"read"},
    "editor": {"read", "catalog", "results"},
    "worker": {"read", "results"},
    "admin": {"read", "catalog", "results", "admin"},
}


def fresh(srv, what, ids):
    """Something a DELETE may remove, made by the admin."""
    c = srv.client()
    try:
        if what == "fresh_model":
            from urllib.parse import quote
            return quote(c.create("/api/v1/models", model_body(f"auth-org/d-{uid()}"))["id"], safe="")
        if what == "fresh_hw":
            return c.create("/api/v1/hardware", hardware_body())["id"]
        if what == "fresh_run":
            return c.create("/api/v1/benchmarks", run_body(ids["model"], ids["hw"]))["id"]
        if what == "fresh_key":
            return c.post("/api/v1/keys", {"name": "to delete", "role": "viewer"}).body["id"]
    finally:
        c.close()


@pytest.mark.parametrize("role", ["anonymous", "viewer", "editor", "worker", "admin"])
def test_every_route_for_every_role(srv, keys, fixture_ids, role):
    key = None if role == "anonymous" else keys[role]["key"]
    c = as_(srv, key)
    for method, path, body, perm in requests_for(fixture_ids):
        if "{" in path:
            what = path[path.index("{") + 1:path.index("}")]
            path = path.replace("{" + what + "}", fresh(srv, what, fixture_ids))
        r = c.request(method, path, json_body=body() if body else None) if body else \
            c.request(method, path)
        if role == "anonymous":
            want = "ok" if perm == "read" else 401
        else:
            want = "ok" if perm in ALLOWED[role] else 403
        if want == "ok":
            assert 200 <= r.status < 300, (role, method, path, r)
        else:
            assert_error(r, want)
            assert r.body["error"]["code"] == ("unauthorized" if want == 401 else "forbidden")
            if want == 401:
                assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
    c.close()


def test_public_routes_need_nothing_even_when_reads_are_required(server_factory_module):
    s = server_factory_module(args=("--auth-reads", "required"))
    c = s.client(key=None)
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert c.get(path).status == 200, path
    assert_error(c.get("/api/v1/models"), 401)
    assert s.client().get("/api/v1/models").status == 200


def token_for(srv, key):
    r = srv.client(key=key).post("/api/v1/auth/token")
    assert r.status == 200, r
    assert r.body["token_type"] == "Bearer" and r.body["expires_in"] == 600
    assert r.headers.get("cache-control") == "no-store"
    return r.body["access_token"]


def test_token_exchange_and_use(srv, keys, fixture_ids):
    tok = token_for(srv, keys["editor"]["key"])
    header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "new"} or header["kid"] == "new"
    assert claims["sub"] == keys["editor"]["id"] and claims["role"] == "editor"
    assert claims["exp"] - claims["iat"] == 600
    c = srv.client(key=tok)
    assert c.post("/api/v1/models", model_body(f"auth-org/t-{uid()}")).status == 201
    assert_error(c.post("/api/v1/keys", {"name": "x", "role": "admin"}), 403)
    # A token cannot be exchanged for another.
    assert_error(c.post("/api/v1/auth/token"), 401)
    assert_error(srv.client(key=None).post("/api/v1/auth/token"), 401)


def claims(sub, role, **kw):
    now = int(time.time())
    c = {"sub": sub, "role": role, "iat": now, "exp": now + 300, "jti": uid()}
    c.update(kw)
    return c


def test_forged_and_malformed_tokens_are_refused(srv, keys):
    editor = keys["editor"]["id"]
    now = int(time.time())
    good = jwt({"alg": "HS256", "typ": "JWT", "kid": "new"}, claims(editor, "editor"), SECRET_A)
    assert srv.client(key=good).post("/api/v1/models", model_body(f"auth-org/f-{uid()}")).status == 201
    # Rotation: a token of the previous key (verify-only) still works.
    old = jwt({"alg": "HS256", "typ": "JWT", "kid": "old"}, claims(editor, "editor"), SECRET_B)
    assert srv.client(key=old).get("/api/v1/models").status == 200
    bad = {
        "expired": jwt({"alg": "HS256", "kid": "new"},
                       claims(editor, "editor", iat=now - 700, exp=now - 100), SECRET_A),
        "forged": jwt({"alg": "HS256", "kid": "new"}, claims(editor, "admin"), b"x" * 40),
        "alg none": jwt({"alg": "none", "typ": "JWT", "kid": "new"}, claims(editor, "admin"), None),
        "alg HS512": jwt({"alg": "HS512", "kid": "new"}, claims(editor, "editor"), SECRET_A),
        "wrong kid": jwt({"alg": "HS256", "kid": "nope"}, claims(editor, "editor"), SECRET_A),
        "retired kid": jwt({"alg": "HS256", "kid": "gone"}, claims(editor, "editor"), b"g" * 40),
        "no kid signed by old": jwt({"alg": "HS256"}, claims(editor, "editor"), SECRET_B),
        "unknown subject": jwt({"alg": "HS256", "kid": "new"}, claims("zzzzzzzz", "admin"), SECRET_A),
        "flipped signature": good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
        "garbage": "abc.def.ghi",
    }
    for name, tok in bad.items():
        r = srv.client(key=tok).get("/api/v1/models")
        assert_error(r, 401)
        assert SECRET_A.decode() not in r.raw.decode() and tok not in r.raw.decode(), name


def test_bad_keys_are_refused(srv, keys):
    real = keys["viewer"]["key"]
    bad = {
        "unknown": make_key(),
        "wrong prefix": "xx" + real[2:],
        "too short": real[:-1],
        "too long": real + "A",
        "bad alphabet": real[:-3] + "!!!",
        "wrong secret": real[:12] + ("B" if real[12] != "B" else "C") + real[13:],
    }
    for name, key in bad.items():
        r = srv.client(key=key).get("/api/v1/models")
        assert_error(r, 401)
        assert real not in r.raw.decode(), name
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "Token " + real):
        r = srv.client(key=None).get("/api/v1/models", headers={"Authorization": header})
        assert_error(r, 401)


def test_revoked_key_and_its_tokens_fail_from_the_next_request(srv):
    admin = srv.client()
    made = admin.post("/api/v1/keys", {"name": "short-lived", "role": "editor"}).body
    tok = token_for(srv, made["key"])
    c, t = srv.client(key=made["key"]), srv.client(key=tok)
    assert c.post("/api/v1/models", model_body(f"auth-org/r-{uid()}")).status == 201
    assert t.post("/api/v1/models", model_body(f"auth-org/r-{uid()}")).status == 201
    assert admin.delete(f"/api/v1/keys/{made['id']}").status == 204
    assert_error(c.post("/api/v1/models", model_body(f"auth-org/r-{uid()}")), 401)
    assert_error(t.get("/api/v1/models"), 401)
    listed = admin.get("/api/v1/keys", params={"include_revoked": "true"}).body["items"]
    mine = [k for k in listed if k["id"] == made["id"]]
    assert mine and mine[0]["revoked_at"] is not None
    assert all(k["id"] != made["id"] for k in admin.get("/api/v1/keys").body["items"])
    assert "hash" not in json.dumps(listed) and made["key"] not in json.dumps(listed)
    assert_error(admin.delete(f"/api/v1/keys/{uid()[:8]}"), 404)


def test_rate_limit_gives_429_and_recovers(server_factory_module):
    s = server_factory_module(args=("--rate-limit", "5/s,burst=5"))
    anon = s.client(key=None)
    codes = [anon.get("/api/v1/models").status for _ in range(12)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
    r = anon.get("/api/v1/models")
    assert_error(r, 429)
    assert int(r.headers["retry-after"]) >= 1
    # A key has its own bucket: the anonymous flood does not stop it.
    assert s.client().get("/api/v1/models").status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if anon.get("/api/v1/models").status == 200:
            break
    else:
        pytest.fail("the bucket never refilled")
    # Health checks are never limited.
    assert all(anon.get("/healthz").status == 200 for _ in range(20))


def test_audit_rows_match_the_writes(srv, keys, fixture_ids):
    editor = srv.client(key=keys["editor"]["key"])
    viewer = srv.client(key=keys["viewer"]["key"])
    rid = f"req-{uid()}"
    made = editor.post("/api/v1/models", model_body(f"auth-org/a-{uid()}"),
                       headers={"X-Request-Id": rid})
    assert made.status == 201 and made.headers["x-request-id"] == rid
    refused = viewer.post("/api/v1/hardware", hardware_body(), headers={"X-Request-Id": rid + "v"})
    assert refused.status == 403
    anon = srv.client(key=None).delete(f"/api/v1/benchmarks/{fixture_ids['run']}",
                                       headers={"X-Request-Id": rid + "a"})
    assert anon.status == 401
    admin = srv.client()
    r = admin.get("/api/v1/audit", params={"actor": keys["editor"]["id"], "limit": 200})
    assert r.status == 200, r
    rows = [x for x in r.body["items"] if x["request_id"] == rid]
    assert len(rows) == 1, r.body
    row = rows[0]
    assert row["method"] == "POST" and row["path"] == "/api/v1/models"
    assert row["resource"] == "models" and row["resource_id"] == made.body["id"]
    assert row["status"] == 201 and row["outcome"] == "ok" and row["role"] == "editor"
    assert row["ip"] == "127.0.0.1"
    every, _ = admin.list_all("/api/v1/audit", limit=7)  # paging too
    by_req = {x["request_id"]: x for x in every}
    assert by_req[rid + "v"]["outcome"] == "forbidden" and by_req[rid + "v"]["actor"] == keys["viewer"]["id"]
    assert by_req[rid + "a"]["outcome"] == "denied" and by_req[rid + "a"]["actor"] is None
    # Reads leave no rows.
    assert all(x["method"] != "GET" for x in every)
    assert_error(viewer.get("/api/v1/audit"), 403)
    assert_error(admin.get("/api/v1/audit", params={"bogus": "1"}), 400)


def test_security_headers_and_cors(server_factory_module):
    s = server_factory_module(args=("--cors-origins", "https://ui.example"))
    c = s.client(key=None)
    r = c.get("/api/v1/models", headers={"Origin": "https://ui.example"})
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["access-control-allow-origin"] == "https://ui.example"
    assert "x-request-id" in r.headers
    r = c.get("/api/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = c.request("OPTIONS", "/api/v1/models", headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status == 204
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    assert_error(c.get("/nope"), 404)  # errors carry the headers too
    assert c.get("/nope").headers["x-content-type-options"] == "nosniff"


def test_too_many_request_headers_is_431(srv):
    hdrs = {f"X-Pad-{i}": "v" for i in range(80)}
    r = srv.client(key=None).get("/api/v1/models", headers=hdrs)
    assert r.status == 431, r


def test_cli_keys(srv, tmp_path):
    from conftest import run_cli
    res = run_cli("keys", "create", "--name", "from the cli", "--role", "worker",
                  "--db", srv.db_url)
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip()
    assert key.startswith("mc_") and len(key) == 55
    assert srv.client(key=key).post(
        "/api/v1/benchmarks", run_body("nope/nope", "nope")).status == 422  # allowed, then validated
    res = run_cli("keys", "list", "--db", srv.db_url)
    assert res.returncode == 0 and key[3:11] in res.stdout and key not in res.stdout
    res = run_cli("keys", "revoke", key[3:11], "--db", srv.db_url)
    assert res.returncode == 0, res.stderr
    assert_error(srv.client(key=key).get("/api/v1/models"), 401)
    assert run_cli("keys", "create", "--role", "admin", "--db", srv.db_url).returncode == 2
    assert run_cli("keys", "create", "--name", "x", "--role", "root", "--db", srv.db_url).returncode == 2
    gen = run_cli("keys", "generate")
    assert gen.returncode == 0 and gen.stdout.strip().startswith("mc_")


def test_no_secret_in_config_or_logs(srv, keys):
    from conftest import run_cli
    env = {"MODELCAT_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "MODELCAT_JWT_KEYS": KEYRING}
    res = run_cli("config", env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "bootstrap-admin-key" in out and "jwt-keys" in out
    assert ADMIN_KEY not in out and b64u(SECRET_A) not in out and b64u(SECRET_B) not in out
    # Refused credentials are not echoed into the server's log either.
    srv.client(key=keys["viewer"]["key"][:-1] + "Z").get("/api/v1/models")
    srv.client(key=ADMIN_KEY).get("/api/v1/models")
    log = "\n".join(srv.lines)
    for secret in (ADMIN_KEY, keys["viewer"]["key"], b64u(SECRET_A)):
        assert secret not in log


def test_slow_body_is_cut_off(server_factory_module):
    """A body trickling in (one byte at a time, which keeps the idle timer
    quiet) is cut off after --body-timeout."""
    s = server_factory_module(args=("--body-timeout", "1"))
    sock = s.raw_socket(timeout=5)
    try:
        sock.sendall(b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n")
        closed = False
        for _ in range(40):  # 40 bytes over ~10 s, far past the 1 s allowed
            try:
                sock.sendall(b" ")
            except OSError:
                closed = True
                break
            time.sleep(0.25)
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            finally:
                sock.setblocking(True)
        assert closed, "the server kept a trickling body open"
    finally:
        sock.close()
    assert s.client().get("/healthz").status == 200


def test_connections_per_ip_are_capped(server_factory_module):
    """With --max-connections-per-ip 2, at most two connections from 127.0.0.1
    are served at once (the start-up health check may still hold one)."""
    s = server_factory_module(args=("--max-connections-per-ip", "2"))
    held, refused = [], 0
    for _ in range(6):
        sock = s.raw_socket(timeout=5)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = sock.recv(4096)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 200"):
            held.append(sock)
        else:
            refused += 1
            sock.close()
    try:
        assert 1 <= len(held) <= 2 and refused >= 4, (len(held), refused)
    finally:
        for h in held:
            h.close()
    # Closed connections free their slots.
    deadline = time.monotonic() + 10
    while True:
        sock = s.raw_socket(timeout=5)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if sock.recv(4096).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            pass
        finally:
            sock.close()
        assert time.monotonic() < deadline, "slots were never freed"
        time.sleep(0.1)
