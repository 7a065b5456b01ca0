"""Backups and disaster recovery: `modelcat backup`, `backup list|verify`,
`restore`, and `serve --backup-every`, on the store of this run (SQLite or
PostgreSQL: the suite runs once per store).

The drill loads a catalog of the size the issue asks for (1,000 models,
10,000 runs, 1,000,000 samples: one run carries the million, 9,999 are
small), backs it up while the server runs, destroys the database, restores
it and compares every table's row count and an ordered hash of its
contents.  It prints the load, backup and restore times and sizes (copied
into docs/operations.md).  The bad-input cases each check that the target
is left exactly as it was."""

import hashlib
import re
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import conftest
from conftest import (
    PG_URL, STORE, hardware_body, model_body, pg_admin, run_body, run_cli, store_url, uid,
)

MODELS = "/api/v1/models"
HW = "/api/v1/hardware"
RUNS = "/api/v1/benchmarks"
BIG = 1_000_000


# -- helpers ------------------------------------------------------------------


def _pg_db(url):
    return urllib.parse.urlsplit(url).path.lstrip("/")


def table_digests(url):
    """{table: (rows, sha256 of its rows in order)} for every table of the store."""
    out = {}
    if STORE == "sqlite":
        path = url[len("sqlite:"):]
        if not os.path.exists(path):
            return out
        con = sqlite3.connect(path)
        try:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name")]
            for t in names:
                ncol = len(con.execute(f'SELECT * FROM "{t}" LIMIT 0').description)
                order = ", ".join(str(i + 1) for i in range(ncol))
                h, n = hashlib.sha256(), 0
                for row in con.execute(f'SELECT * FROM "{t}" ORDER BY {order}'):
                    h.update(repr(row).encode())
                    n += 1
                out[t] = (n, h.hexdigest())
        finally:
            con.close()
        return out
    names = _psql(url, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid ="
                       " c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r','p')"
                       " AND NOT c.relispartition ORDER BY 1").split()
    for t in names:
        res = _psql(url, f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n'"
                         f" ORDER BY t::text), '')) FROM \"{t}\" t")
        n, h = res.split("|")
        out[t] = (int(n), h)
    return out


def _psql(url, sql):
    res = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def destroy(url):
    """Deletes the database: the SQLite file, or DROP and CREATE DATABASE."""
    if STORE == "sqlite":
        path = url[len("sqlite:"):]
        for sfx in ("", "-wal", "-shm"):
            if os.path.exists(path + sfx):
                os.unlink(path + sfx)
        return
    name = _pg_db(url)
    owner = urllib.parse.unquote(urllib.parse.urlsplit(PG_URL).username or "")
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
             f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))


def only_set(root):
    sets = sorted(p for p in Path(root).iterdir() if p.name.startswith("modelcat-"))
    assert len(sets) == 1, sets
    return sets[0]


def dump_name():
    return "db.pgdump" if STORE == "postgres" else "db.sqlite.gz"


def _samples_json(n):
    # Compact and fast to build: 1,000,000 samples is ~100 MB of JSON.
    parts = []
    for i in range(n):
        t = i * 1000
        parts.append(f'{{"scheduled_ns":{t},"sent_ns":{t + 5},"first_token_ns":{t + 50},'
                     f'"last_token_ns":{t + 900},"input_tokens":{100 + i % 900},'
                     f'"output_tokens":{i % 97},"error":null}}')
    return "[" + ",".join(parts) + "]"


# -- the drill ----------------------------------------------------------------


def test_drill_backup_destroy_restore(server_factory, tmp_path):
    db_path = tmp_path / "drill.db"
    srv = server_factory(db_path=db_path, args=["--max-body", "512M", "--threads", "4"])
    url = srv.db_url
    c = srv.client(timeout=600)
    t0 = time.monotonic()
    models = [c.create(MODELS, model_body(f"drill/m{i:04d}-{uid()}"))["id"] for i in range(1000)]
    hw = c.create(HW, hardware_body())["id"]
    body = json.dumps(run_body(models[0], hw))[:-1] + ',"samples":' + _samples_json(BIG) + "}"
    r = c.request("POST", RUNS, body=body)
    assert r.status == 201, r
    small = json.dumps(run_body(models[1], hw))
    for i in range(9999):
        r = c.request("POST", RUNS, body=small)
        assert r.status == 201, r
    load_s = time.monotonic() - t0
    c.close()

    bdir = tmp_path / "backups"
    t0 = time.monotonic()
    res = run_cli("backup", "--to", str(bdir), "--db", url, timeout=300)
    backup_s = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    srv.stop()
    before = table_digests(url)
    assert before["models"][0] == 1000 and before["runs"][0] == 10000
    assert before["samples"][0] == BIG

    sset = only_set(bdir)
    manifest = json.loads((sset / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["store"] == STORE
    assert manifest["tables"]["samples"] == BIG and manifest["tables"]["runs"] == 10000
    assert {f["name"] for f in manifest["files"]} == {dump_name()}
    size = (sset / dump_name()).stat().st_size
    res = run_cli("backup", "verify", "--to", str(bdir), timeout=300)
    assert res.returncode == 0, res.stderr
    res = run_cli("backup", "list", "--to", str(bdir))
    assert res.returncode == 0 and sset.name in res.stdout

    destroy(url)
    t0 = time.monotonic()
    res = run_cli("restore", str(sset), "--db", url, timeout=300)
    restore_s = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    after = table_digests(url)
    assert after == before
    print(f"\nDRILL store={STORE} load={load_s:.1f}s backup={backup_s:.2f}s "
          f"restore={restore_s:.2f}s dump={size} bytes ({dump_name()})")

    # The same through an S3-compatible server on loopback (make test starts
    # s3rver and names its env file in MODELCAT_TEST_S3_ENV).
    env_file = conftest._SERVICES.get("MODELCAT_TEST_S3_ENV")
    if not env_file:
        pytest.skip("no S3 server (MODELCAT_TEST_S3_ENV unset): the directory drill passed")
    s3 = dict(line.split("=", 1) for line in Path(env_file).read_text().split() if "=" in line)
    env = {k: s3[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in s3}
    target = f"s3://{s3['MODELCAT_TEST_S3_BUCKET']}/drill-{uid()}"
    ep = ["--s3-endpoint", s3["MODELCAT_TEST_S3_ENDPOINT"]]
    t0 = time.monotonic()
    res = run_cli("backup", "--to", target, "--db", url, *ep, env=env, timeout=300)
    s3_backup_s = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    res = run_cli("backup", "list", "--to", target, *ep, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    names = re.findall(r"modelcat-[0-9TZ]+", res.stdout)
    assert len(set(names)) == 1, res.stdout
    destroy(url)
    t0 = time.monotonic()
    res = run_cli("restore", f"{target}/{names[0]}", "--db", url, *ep, env=env, timeout=300)
    s3_restore_s = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert table_digests(url) == before
    print(f"DRILL-S3 store={STORE} backup={s3_backup_s:.2f}s restore={s3_restore_s:.2f}s")


# -- bad input ----------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    """A demo catalog, one backup set of it, and a second non-empty target."""
    src = store_url(tmp_path / "src.db")
    res = run_cli("seed", "--demo", "--db", src)
    assert res.returncode == 0, res.stderr
    bdir = tmp_path / "bk"
    res = run_cli("backup", "--to", str(bdir), "--db", src)
    assert res.returncode == 0, res.stderr
    target = store_url(tmp_path / "target.db")
    res = run_cli("seed", "--demo", "--db", target)
    assert res.returncode == 0, res.stderr
    # Make the target differ from the backup, so a restore would show.
    con_res = run_cli("keys", "create", "--name", "x", "--role", "viewer", "--db", target)
    assert con_res.returncode == 0, con_res.stderr
    return {"src": src, "set": only_set(bdir), "target": target, "tmp": tmp_path}


def _copy_set(small, name="bad"):
    dst = small["tmp"] / name / small["set"].name
    shutil.copytree(small["set"], dst)
    return dst


def _rewrite_manifest(sset, **changes):
    m = json.loads((sset / "manifest.json").read_text())
    m.update(changes)
    dump = sset / dump_name()
    m["files"] = [{"name": dump_name(), "bytes": dump.stat().st_size,
                   "sha256": hashlib.sha256(dump.read_bytes()).hexdigest()}]
    (sset / "manifest.json").write_text(json.dumps(m))


def _refused(small, sset, *extra, want=None):
    before = table_digests(small["target"])
    res = run_cli("restore", str(sset), "--db", small["target"], *extra, timeout=60)
    assert res.returncode != 0, res.stderr
    if want:
        assert want in res.stderr, res.stderr
    assert table_digests(small["target"]) == before
    return res


def test_truncated_archive_is_refused(small):
    sset = _copy_set(small)
    dump = sset / dump_name()
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    _refused(small, sset, "--force", want="truncated")
    # Also with a manifest that matches the cut file: the archive itself is checked.
    _rewrite_manifest(sset)
    _refused(small, sset, "--force")


def test_flipped_byte_fails_the_checksum(small):
    sset = _copy_set(small)
    dump = sset / dump_name()
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x40
    dump.write_bytes(bytes(data))
    _refused(small, sset, "--force", want="checksum")
    res = run_cli("backup", "verify", "--to", str(sset.parent), sset.name)
    assert res.returncode != 0 and "checksum" in res.stderr


def test_newer_schema_manifest_is_refused(small):
    sset = _copy_set(small)
    m = json.loads((sset / "manifest.json").read_text())
    _rewrite_manifest(sset, schema_version=m["schema_version"] + 1)
    _refused(small, sset, "--force", want="newer")


def test_non_empty_target_needs_force(small):
    _refused(small, small["set"], want="--force")
    res = run_cli("restore", str(small["set"]), "--db", small["target"], "--force")
    assert res.returncode == 0, res.stderr
    assert table_digests(small["target"]) == table_digests(small["src"])


def test_unreachable_object_store(small):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    before = table_digests(small["target"])
    res = run_cli("restore", f"s3://bucket/prefix/{small['set'].name}", "--db", small["target"],
                  "--force", "--s3-endpoint", f"http://127.0.0.1:{port}", env=env, timeout=60)
    if "no S3 support" in res.stderr:
        pytest.skip("this build has no S3 backend (src/backup/store_s3.c absent)")
    assert res.returncode != 0, res.stderr
    assert table_digests(small["target"]) == before
    res = run_cli("backup", "--to", "s3://bucket/prefix", "--db", small["src"],
                  "--s3-endpoint", f"http://127.0.0.1:{port}", env=env, timeout=60)
    assert res.returncode != 0


def test_disk_full_during_backup(small):
    mnt = small["tmp"] / "full"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {res.stderr.strip()}")
    try:
        before = table_digests(small["src"])
        res = run_cli("backup", "--to", str(mnt), "--db", small["src"], timeout=60)
        assert res.returncode != 0
        assert "No space left" in res.stderr, res.stderr
        left = [p.name for p in mnt.iterdir() if not p.name.startswith(".")]
        assert left == [] or all(not any((mnt / n).iterdir()) for n in left), left
        assert table_digests(small["src"]) == before
        res = run_cli("backup", "list", "--to", str(mnt))
        assert res.returncode == 0 and res.stdout.strip() == ""
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# -- scheduled backups --------------------------------------------------------


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_serve_backs_up_on_a_schedule_with_retention(server_factory, tmp_path):
    bdir = tmp_path / "sched"
    srv = server_factory(args=["--backup-every", "2s", "--backup-to", str(bdir), "--keep", "2"])
    c = srv.client()
    c.create(MODELS, model_body())
    deadline = time.monotonic() + 30
    ok = 0
    while time.monotonic() < deadline:
        text = c.get("/metrics").raw.decode()
        ok = _metric(text, 'modelcat_backups_total{outcome="success"}') or 0
        if ok >= 3:
            break
        time.sleep(0.5)
    assert ok >= 3, srv.log_tail()
    last = _metric(text, "modelcat_backup_last_success_timestamp_seconds")
    assert last and abs(time.time() - last) < 10
    assert _metric(text, "modelcat_backup_last_duration_seconds") is not None
    sets = [p for p in bdir.iterdir() if p.name.startswith("modelcat-")]
    assert len(sets) == 2, sets
    res = run_cli("backup", "verify", "--to", str(bdir))
    assert res.returncode == 0, res.stderr
    c.close()
