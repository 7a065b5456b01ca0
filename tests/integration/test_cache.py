"""The response cache: ``--cache local`` (hits, misses, ``X-Cache``, query
normalization, invalidation by writes, 304 from a cached item) and
``--cache redis://...`` with two API processes on one store and one Redis
(no stale page after a write on the other process, also with
``--cache-lease-ms``; a writer reads its own write; Redis stopped under
traffic and restarted).

Each Redis test starts its own ``redis-server`` on a free loopback port in a
temporary directory, and stops it at the end, also when the test fails.
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (
    enc, hardware_body, ids_of, model_body, run_body, run_cli, uid, with_query,
)

MODELS = "/api/v1/models"
HW = "/api/v1/hardware"
RUNS = "/api/v1/benchmarks"

REDIS_START_TIMEOUT = 10.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway redis-server: no persistence, loopback only."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited rc={self.proc.returncode} on port {self.port}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer PING on port {self.port}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path / "redis"
    directory.mkdir()
    srv = RedisServer(directory).start()
    try:
        yield srv
    finally:
        srv.stop()


def xcache(r):
    return r.headers.get("x-cache")


def get_ok(c, path, params=None, **kw):
    r = c.get(path, params, **kw)
    assert r.status == 200, f"GET {with_query(path, params)} -> {r!r}"
    return r


def readyz_cache(c):
    r = c.get("/readyz")
    assert r.status == 200, r
    assert "x-cache" not in r.headers
    return r.body["cache"]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout}s")


# ---------------------------------------------------------------------------
# --cache local
# ---------------------------------------------------------------------------


@pytest.fixture
def local(server_factory):
    srv = server_factory(args=["--cache", "local", "--cache-bytes", "8M"])
    c = srv.client()
    try:
        yield c
    finally:
        c.close()


def test_local_hit_miss_and_x_cache(local):
    c = local
    fam = "fam" + uid()
    m = c.create(MODELS, model_body(family=fam))
    q = {"family": fam, "limit": "10"}
    first = get_ok(c, MODELS, q)
    assert xcache(first) == "miss"
    second = get_ok(c, MODELS, q)
    assert xcache(second) == "hit"
    assert second.raw == first.raw
    assert second.headers["content-type"] == first.headers["content-type"]
    assert ids_of(second.body["items"]) == [m["id"]]

    item = f"{MODELS}/{enc(m['id'])}"
    a = get_ok(c, item)
    b = get_ok(c, item)
    assert (xcache(a), xcache(b)) == ("miss", "hit")
    assert a.raw == b.raw and a.headers["etag"] == b.headers["etag"]
    # If-None-Match on a cached item still gives 304, with the ETag.
    r = c.get(item, headers={"If-None-Match": a.headers["etag"]})
    assert r.status == 304 and xcache(r) == "hit" and r.raw == b""
    assert r.headers["etag"] == a.headers["etag"]
    r = c.get(item, headers={"If-None-Match": '"other"'})
    assert r.status == 200 and xcache(r) == "hit" and r.raw == a.raw
    # HEAD shares GET's entry.
    r = c.request("HEAD", item)
    assert r.status == 200 and xcache(r) == "hit"

    # Errors are not cached.
    missing = f"{MODELS}/{enc('nobody/' + uid())}"
    for _ in range(2):
        r = c.get(missing)
        assert r.status == 404 and xcache(r) == "miss"
    for _ in range(2):
        r = c.get(MODELS, {"limit": "0"})
        assert r.status == 400 and xcache(r) == "miss"

    # Routes outside the cache carry no X-Cache.
    for path in ("/healthz", "/readyz", "/openapi.json"):
        r = c.get(path)
        assert r.status == 200 and "x-cache" not in r.headers, (path, r.headers)

    st = readyz_cache(c)
    assert st["backend"] == "local"
    assert isinstance(st["generation"], int) and st["generation"] >= 1
    assert st["hits"] >= 4 and st["misses"] >= 2 and st["entries"] >= 2
    assert st["max_bytes"] == 8 * 1024 * 1024
    assert "breaker" not in st


def test_local_query_normalization(local):
    c = local
    fam = "norm" + uid()
    for i in range(3):
        c.create(MODELS, model_body(family=fam, parameters_b=i + 1))
    a = get_ok(c, MODELS + f"?family={fam}&limit=2&sort=name")
    assert xcache(a) == "miss"
    for order in (f"?limit=2&sort=name&family={fam}", f"?sort=name&family={fam}&limit=2"):
        b = get_ok(c, MODELS + order)
        assert xcache(b) == "hit", order
        assert b.raw == a.raw
    # Another value is another page.
    b = get_ok(c, MODELS + f"?family={fam}&limit=3&sort=name")
    assert xcache(b) == "miss" and len(b.body["items"]) == 3
    # Percent-encoding is normalized too: the arguments are compared decoded.
    b = get_ok(c, MODELS + f"?family={fam}&limit=%32&sort=name")
    assert xcache(b) == "hit" and b.raw == a.raw
    # The cursor of the cached page still leads to the next page.
    nxt = get_ok(c, MODELS, [("family", fam), ("limit", "2"), ("sort", "name"),
                             ("cursor", a.body["next_cursor"])])
    assert len(nxt.body["items"]) == 1


def test_local_writes_invalidate(local):
    c = local
    fam = "inv" + uid()
    q = {"family": fam}
    m = c.create(MODELS, model_body(family=fam, name="Before"))
    item = f"{MODELS}/{enc(m['id'])}"
    for path, params in ((MODELS, q), (item, None)):
        get_ok(c, path, params)
        assert xcache(get_ok(c, path, params)) == "hit"

    # PATCH: the writer's next read of the item and of the list is new.
    r = c.patch(item, {"name": "After"}, content_type="application/merge-patch+json")
    assert r.status == 200, r
    got = get_ok(c, item)
    assert got.body["name"] == "After" and xcache(got) == "miss"
    assert [x["name"] for x in get_ok(c, MODELS, q).body["items"]] == ["After"]

    # POST: a new row appears in the cached list.
    m2 = c.create(MODELS, model_body(family=fam))
    assert sorted(ids_of(get_ok(c, MODELS, q).body["items"])) == sorted([m["id"], m2["id"]])

    # PUT of hardware, POST of a run: the model's benchmarks and the run lists.
    hw = c.create(HW, hardware_body())
    runs_of_model = f"{item}/benchmarks"
    assert get_ok(c, runs_of_model).body["items"] == []
    assert xcache(get_ok(c, runs_of_model)) == "hit"
    run = c.create(RUNS, run_body(m["id"], hw["id"]))
    assert ids_of(get_ok(c, runs_of_model).body["items"]) == [run["id"]]
    hw_item = f"{HW}/{enc(hw['id'])}"
    get_ok(c, hw_item)
    assert c.put(hw_item, hardware_body(hw["id"], memory_gb=141)).status == 200
    assert get_ok(c, hw_item).body["memory_gb"] == 141

    # DELETE: gone from the item route and the lists.
    run_item = f"{RUNS}/{enc(run['id'])}"
    get_ok(c, run_item)
    assert c.delete(run_item).status == 204
    assert c.get(run_item).status == 404
    assert get_ok(c, runs_of_model).body["items"] == []
    assert c.delete(f"{MODELS}/{enc(m2['id'])}").status == 204
    assert ids_of(get_ok(c, MODELS, q).body["items"]) == [m["id"]]

    # A failed write does not invalidate.
    gen = readyz_cache(c)["generation"]
    assert c.post(MODELS, model_body(m["id"])).status == 409
    assert readyz_cache(c)["generation"] == gen
    assert xcache(get_ok(c, MODELS, q)) == "hit"


def test_cache_off(server_factory):
    srv = server_factory(args=["--cache", "off"])
    c = srv.client()
    try:
        c.create(MODELS, model_body())
        for _ in range(2):
            r = get_ok(c, MODELS)
            assert "x-cache" not in r.headers
        assert readyz_cache(c) == {"backend": "off"}
    finally:
        c.close()


@pytest.mark.parametrize("value", ["memcached://h:1", "redis://", "redis://h:99999", "redis://h/x"])
def test_bad_cache_flag_exits_2(tmp_path, value):
    res = run_cli("serve", "--db", f"sqlite:{tmp_path}/x.db", "--listen", "127.0.0.1:0",
                  "--cache", value, timeout=10)
    assert res.returncode == 2, res
    err = res.stderr.strip()
    assert err and "\n" not in err and "cache" in err, err


# ---------------------------------------------------------------------------
# --cache redis://: two replicas, one store, one Redis
# ---------------------------------------------------------------------------


def two_replicas(server_factory, tmp_path, redis, lease_ms=0):
    db = tmp_path / "shared.db"
    args = ["--cache", redis.url, "--cache-lease-ms", str(lease_ms)]
    a = server_factory(db_path=db, args=args)
    b = server_factory(db_path=db, args=args, migrate=False)
    return a, b


@pytest.mark.parametrize("lease_ms", [0, 1, 50])
def test_redis_replicas_never_serve_stale(server_factory, tmp_path, redis, lease_ms):
    a, b = two_replicas(server_factory, tmp_path, redis, lease_ms)
    ca, cb = a.client(), b.client()
    try:
        fam = "rep" + uid()
        q = {"family": fam}
        m = ca.create(MODELS, model_body(family=fam, name="v0"))
        item = f"{MODELS}/{enc(m['id'])}"
        # A fills Redis; B's first read is a hit from Redis.
        assert xcache(get_ok(ca, MODELS, q)) == "miss"
        assert xcache(get_ok(ca, MODELS, q)) == "hit"
        rb = get_ok(cb, MODELS, q)
        assert xcache(rb) == "hit" and ids_of(rb.body["items"]) == [m["id"]]

        # Writes alternate between the replicas; the other one's very next
        # read (which was a cache hit just before) is the new data.
        for i in range(1, 9):
            writer, reader = (ca, cb) if i % 2 else (cb, ca)
            assert xcache(get_ok(reader, item)) in ("hit", "miss")
            assert xcache(get_ok(reader, item)) == "hit"
            assert xcache(get_ok(reader, MODELS, q)) in ("hit", "miss")
            t0 = time.monotonic()
            r = writer.patch(item, {"name": f"v{i}"}, content_type="application/merge-patch+json")
            assert r.status == 200, r
            # With a lease the write outwaits it before answering.
            assert time.monotonic() - t0 >= lease_ms / 1000.0
            # The writer reads its own write...
            assert get_ok(writer, item).body["name"] == f"v{i}"
            # ...and so does the other replica, on the item and on the list.
            got = get_ok(reader, item)
            assert got.body["name"] == f"v{i}", f"stale page from the other replica: {got!r}"
            assert [x["name"] for x in get_ok(reader, MODELS, q).body["items"]] == [f"v{i}"]

        # A new row created on B is listed by A at once.
        m2 = cb.create(MODELS, model_body(family=fam))
        assert sorted(ids_of(get_ok(ca, MODELS, q).body["items"])) == sorted([m["id"], m2["id"]])
        # A delete on A is seen by B at once.
        assert ca.delete(f"{MODELS}/{enc(m2['id'])}").status == 204
        assert cb.get(f"{MODELS}/{enc(m2['id'])}").status == 404
        assert ids_of(get_ok(cb, MODELS, q).body["items"]) == [m["id"]]

        sa, sb = readyz_cache(ca), readyz_cache(cb)
        assert sa["backend"] == sb["backend"] == "redis"
        assert sa["breaker"] == sb["breaker"] == "closed"
        assert sa["lease_ms"] == sb["lease_ms"] == lease_ms
        assert sa["generation"] == sb["generation"] and sa["generation"] > 1_000_000_000_000
        assert sa["last_error"] is None
    finally:
        ca.close()
        cb.close()


def test_redis_outage_and_recovery(server_factory, tmp_path, redis):
    a, b = two_replicas(server_factory, tmp_path, redis)
    ca, cb = a.client(), b.client()
    fam = "out" + uid()
    q = {"family": fam}
    m = ca.create(MODELS, model_body(family=fam, name="before"))
    item = f"{MODELS}/{enc(m['id'])}"
    get_ok(ca, MODELS, q)
    assert xcache(get_ok(ca, MODELS, q)) == "hit"

    # Readers on both replicas, all through the outage.
    stop = threading.Event()
    statuses = []
    errors = []

    def reader(srv):
        c = srv.client(timeout=5)
        try:
            while not stop.is_set():
                r = c.get(MODELS, q)
                statuses.append(r.status)
                r = c.get(item)
                statuses.append(r.status)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            c.close()

    threads = [threading.Thread(target=reader, args=(s,), daemon=True) for s in (a, b, a)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        redis.stop()
        wait_for(lambda: readyz_cache(ca).get("breaker") == "open", 5, "A's breaker opening")
        wait_for(lambda: readyz_cache(cb).get("breaker") == "open", 5, "B's breaker opening")
        st = readyz_cache(ca)
        assert st["last_error"] and st["transitions"] >= 1 and st["last_transition"], st
        # Writes still work, and both replicas read them (from the store).
        r = ca.patch(item, {"name": "during"}, content_type="application/merge-patch+json")
        assert r.status == 200, r
        assert get_ok(ca, item).body["name"] == "during"
        assert get_ok(cb, item).body["name"] == "during"
        time.sleep(1.0)

        redis.start()  # same port, empty
        # Hits come back within a few seconds, and the data is current.
        def hit_again(c):
            r = get_ok(c, MODELS, q)
            assert [x["name"] for x in r.body["items"]] == ["during"], r
            return xcache(r) == "hit"
        wait_for(lambda: hit_again(ca), 8, "X-Cache: hit on A after Redis came back")
        wait_for(lambda: hit_again(cb), 8, "X-Cache: hit on B after Redis came back")
        assert readyz_cache(ca)["breaker"] == "closed"
        assert readyz_cache(cb)["breaker"] == "closed"
        # And a write after the restart still reaches the other replica.
        r = cb.patch(item, {"name": "after"}, content_type="application/merge-patch+json")
        assert r.status == 200, r
        assert get_ok(ca, item).body["name"] == "after"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        ca.close()
        cb.close()
    assert not errors, errors
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert a.alive() and b.alive()
