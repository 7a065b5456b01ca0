"""Read replicas: ``serve --db-replicas``.

GETs read from a streaming replica while writes go to the primary; /readyz
lists each replica (URL with the password masked, breaker, lag). With the
replica stopped, reads fall back to the primary; with the primary stopped,
reads keep working from the replica and writes get 503 with Retry-After,
fast; once the primary is back, writes work and nothing acknowledged before
the stop is lost.

PostgreSQL only (the ``integration-postgres`` run). The first test uses the
shared services' primary and replica; the stop tests start a throw-away
primary + replica pair of their own with scripts/test-services.sh, so that
stopping a server never disturbs the other modules.
"""

import collections
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

import conftest
from conftest import REPO_ROOT, ServerProcess, hardware_body, store_url

pytestmark = pytest.mark.skipif(
    conftest.STORE != "postgres",
    reason="read replicas need PostgreSQL (runs under MODELCAT_TEST_STORE=postgres)")

HW = "/api/v1/hardware"
PGBIN = "/usr/lib/postgresql/15/bin"
SERVICES = str(REPO_ROOT / "scripts" / "test-services.sh")


def with_database(url, database):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + database, u.query, u.fragment))


def poll(fn, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def replicas_of(client):
    status, _, body = client.get("/readyz")
    return status, body["replicas"]


class UrlServer(ServerProcess):
    """A ServerProcess on a store URL of our choosing (our own primary)."""

    def __init__(self, db_url, extra_args=()):  # pylint: disable=super-init-not-called
        # The base would create a database on the shared server; set its fields here.
        self.db_path = "own primary"  # shown in failure reports: no password
        self.db_url = db_url
        self.extra_args = list(extra_args)
        self.env = None
        self.migrate = True
        self.proc = None
        self.port = None
        self.lines = collections.deque(maxlen=400)
        self._port_event = threading.Event()
        self._readers = []


class Pair:
    """A primary + streaming replica of our own (scripts/test-services.sh)."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="mc-replicas-", dir="/tmp")
        os.chmod(self.top, 0o755)  # the postgres user must reach DIR
        self.dir = os.path.join(self.top, "svc")
        res = subprocess.run([SERVICES, "start", self.dir], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:
            shutil.rmtree(self.top, ignore_errors=True)
            pytest.fail(f"test-services start failed: {res.stderr[-2000:]}")
        env = {}
        with open(os.path.join(self.dir, "env")) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    env[k] = v
        self.primary_url = env["MODELCAT_TEST_PG_URL"]
        self.replica_url = env["MODELCAT_TEST_PG_REPLICA_URL"]

    def pg_ctl(self, which, *args):
        cmd = [f"{PGBIN}/pg_ctl", "-D", os.path.join(self.dir, which)] + list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"pg_ctl {args} failed: {res.stderr}"

    def stop_server(self, which):
        self.pg_ctl(which, "stop", "-m", "fast", "-w")

    def start_server(self, which):
        self.pg_ctl(which, "-l", os.path.join(self.dir, which + ".log"), "-w", "-t", "30",
                    "start")

    def close(self):
        subprocess.run([SERVICES, "stop", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def pair_server(pair):
    srv = UrlServer(pair.primary_url,
                    ["--db-replicas", pair.replica_url, "--cache", "off"]).start()
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
        else:
            srv.kill()


def reads_from_replica(client):
    """Waits until /readyz shows the replica closed with a lag measured."""
    def ok():
        client.get(HW)
        _, reps = replicas_of(client)
        r = reps[0]
        return r if r["breaker"] == "closed" and r["lag_s"] is not None else None
    return poll(ok, what="a closed replica with a measured lag")


def test_reads_served_with_replica(server_factory, tmp_path):
    db_path = tmp_path / "replicated.db"
    primary = store_url(db_path)
    database = urllib.parse.urlsplit(primary).path.lstrip("/")
    replica = with_database(conftest._SERVICES["MODELCAT_TEST_PG_REPLICA_URL"], database)
    srv = server_factory(db_path=db_path, args=["--db-replicas", replica, "--cache", "off"])
    c = srv.client()
    body = hardware_body()
    status, _, _ = c.post(HW, body)
    assert status == 201
    # The replica catches up: the item reads back, and the replica is healthy.
    poll(lambda: c.get(f"{HW}/{body['id']}").status == 200, what="the write to read back")
    r = reads_from_replica(c)
    assert r["transitions"] == 0
    assert r["lag_s"] < 5
    assert ":****@" in r["url"] and database in r["url"]
    password = urllib.parse.urlsplit(replica).password
    resp = c.get("/readyz")
    assert resp.status == 200
    if password:
        assert password.encode() not in resp.raw
    # Reads of every kind answer while the replica serves them.
    for path in (HW, f"{HW}/{body['id']}", "/api/v1/models", "/api/v1/benchmarks"):
        assert c.get(path).status == 200, path
    # /metrics shows the replica's lag and breaker.
    text = c.get("/metrics").raw.decode()
    lag = [ln for ln in text.splitlines()
           if ln.startswith('modelcat_replica_lag_seconds{replica="replica-0"}')]
    assert lag and 0 <= float(lag[0].split()[-1]) < 5, lag
    assert 'modelcat_replica_lagging{replica="replica-0"} 0' in text
    assert 'modelcat_breaker_state{breaker="replica-0"} 0' in text
    # `modelcat config` masks each replica's password.
    res = conftest.run_cli("config", "--db-replicas", f"{replica},{replica}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("db-replicas =")][0]
    assert line.count(":****@") == 2
    if password:
        assert password not in res.stdout


def test_replica_stopped_reads_fall_back(pair, pair_server):
    c = pair_server.client()
    body = hardware_body()
    assert c.post(HW, body).status == 201
    reads_from_replica(c)

    statuses = []
    stop = threading.Event()

    def reader():
        rc = pair_server.client()
        while not stop.is_set():
            statuses.append(rc.get(f"{HW}/{body['id']}").status)
            statuses.append(rc.get(HW).status)
        rc.close()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        pair.stop_server("pg-replica")
        time.sleep(1.5)
    finally:
        stop.set()
        t.join(20)
    assert statuses and set(statuses) == {200}, f"non-200 reads: {sorted(set(statuses))}"
    status, reps = replicas_of(c)
    assert status == 200  # the primary is fine
    assert reps[0]["breaker"] in ("open", "half-open")
    assert reps[0]["transitions"] >= 1

    # Back: the breaker closes again once a probe succeeds.
    pair.start_server("pg-replica")
    reads_from_replica(c)


def test_primary_stopped_reads_from_replica(pair, pair_server):
    c = pair_server.client()
    reads_from_replica(c)
    acked = []
    for _ in range(10):
        body = hardware_body()
        status, _, _ = c.post(HW, body)
        assert status == 201
        acked.append(body["id"])
    # Fast shutdown sends all WAL to the replica before the primary stops.
    pair.stop_server("pg-primary")
    try:
        for hw_id in acked:
            assert c.get(f"{HW}/{hw_id}").status == 200, hw_id
        assert c.get(HW).status == 200
        t0 = time.monotonic()
        status, headers, err = c.post(HW, hardware_body())
        elapsed = time.monotonic() - t0
        assert status == 503, err
        assert err["error"]["code"] == "unavailable"
        assert any(k.lower() == "retry-after" for k in headers), headers
        assert elapsed < 3.0, f"a write to a dead primary took {elapsed:.1f}s"
        status, reps = replicas_of(c)
        assert status == 503  # /readyz keeps answering for the primary
        assert reps[0]["breaker"] == "closed"
    finally:
        pair.start_server("pg-primary")
    # Writes work again.
    body = hardware_body()
    status, _, err = c.post(HW, body)
    assert status == 201, err
    poll(lambda: c.get(f"{HW}/{body['id']}").status == 200, what="the new write to read back")
    for hw_id in acked:
        poll(lambda: c.get(f"{HW}/{hw_id}").status == 200, what=f"{hw_id} after the restart")
    assert c.get("/readyz").status == 200


def test_reads_right_after_a_write_never_see_an_older_replica(pair):
    """Replay paused on the replica: a write is still read back at once (the
    read goes to the primary for the fresh window), also through the cache."""
    port = urllib.parse.urlsplit(pair.replica_url).port

    def replica_sql(sql):
        cmd = ["psql", "-X", "-q", "-t", "-v", "ON_ERROR_STOP=1", "-h", pair.dir, "-p",
               str(port), "-U", "postgres", "-d", "postgres", "-c", sql]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    srv = UrlServer(pair.primary_url, ["--db-replicas", pair.replica_url,
                                       "--replica-max-lag", "30", "--cache", "local"]).start()
    c = srv.client()
    try:
        body = hardware_body(on_demand_usd_per_hour=1.0)
        c.create(HW, body)
        # Freeze the replica: with a 30 s allowed lag it stays "healthy", so
        # only the fresh window after each write keeps its old rows unread.
        poll(lambda: c.get(f"{HW}/{body['id']}").status == 200, what="the row on every node")
        replica_sql("SELECT pg_wal_replay_pause()")
        try:
            for price in (2.0, 3.0, 4.0):
                put = c.put(f"{HW}/{body['id']}", dict(body, on_demand_usd_per_hour=price))
                assert put.status == 200, put
                got = c.get(f"{HW}/{body['id']}")
                assert got.status == 200 and got.body["on_demand_usd_per_hour"] == price, got
                lst = c.get(HW, params={"limit": 200})
                mine = [h for h in lst.body["items"] if h["id"] == body["id"]]
                assert mine and mine[0]["on_demand_usd_per_hour"] == price, mine
        finally:
            replica_sql("SELECT pg_wal_replay_resume()")
    finally:
        c.close()
        srv.stop()
