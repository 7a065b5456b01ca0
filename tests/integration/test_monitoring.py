"""The monitoring manifests in deploy/monitoring: the alert rules pass
`promtool check rules`, and every metric a rule or a dashboard queries is one
modelcat exports (or, for the GPU dashboard, one of dcgm-exporter's)."""

import json
import re
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

import conftest
from conftest import STORE, hardware_body, model_body, run_body, store_url, uid

MON = conftest.REPO_ROOT / "deploy" / "monitoring"
# dcgm-exporter's names that the GPU dashboard reads (the DCGM fields the
# benchmark telemetry also scrapes).
DCGM = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}
NAME_RE = re.compile(r"\b(modelcat_[a-z0-9_]+|DCGM_[A-Z0-9_]+)\b")


def rule_groups():
    doc = yaml.safe_load((MON / "prometheusrule.yaml").read_text())
    assert doc["kind"] == "PrometheusRule"
    return doc["spec"]["groups"]


def queries():
    """(where, PromQL) of every rule and every dashboard target."""
    out = []
    for g in rule_groups():
        for r in g["rules"]:
            out.append((f"rule {r['alert']}", r["expr"]))
    for f in sorted((MON / "dashboards").glob("*.json")):
        d = json.loads(f.read_text())
        for p in d["panels"]:
            assert p["targets"], f"{f.name}: panel {p['title']!r} has no query"
            for t in p["targets"]:
                out.append((f"{f.name}: {p['title']}", t["expr"]))
    return out


def test_rules_pass_promtool(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}))
    res = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"]}
    for want in ("ModelcatHighErrorRatio", "ModelcatHighLatencyP99", "ModelcatBreakerOpen",
                 "ModelcatReplicaLag", "ModelcatJobFailureRate", "ModelcatPreemptionRate",
                 "ModelcatBackupTooOld"):
        assert want in alerts


def test_dashboards_are_valid_and_distinct():
    uids = set()
    files = sorted((MON / "dashboards").glob("*.json"))
    assert {f.stem for f in files} >= {"api-performance", "gpu-utilisation",
                                       "cache-performance", "cost-tracking"}
    for f in files:
        d = json.loads(f.read_text())
        assert d["uid"] not in uids
        uids.add(d["uid"])
        assert d["panels"]


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(STORE != "postgres", reason="needs a replica: runs in the PostgreSQL pass")
def test_every_queried_metric_is_exported(server_factory, tmp_path):
    db_path = tmp_path / "mon.db"
    primary = store_url(db_path)
    database = urllib.parse.urlsplit(primary).path
    rep = urllib.parse.urlsplit(conftest._SERVICES["MODELCAT_TEST_PG_REPLICA_URL"])
    replica = urllib.parse.urlunsplit((rep.scheme, rep.netloc, database, rep.query, ""))
    srv = server_factory(db_path=db_path, args=[
        "--db-replicas", replica, "--cache", f"redis://127.0.0.1:{closed_port()}/0",
        "--backup-every", "1h", "--backup-to", str(tmp_path / "backups")])
    c = srv.client()
    m = c.create("/api/v1/models", model_body(f"mon-org/{uid()}"))["id"]
    hw = c.create("/api/v1/hardware", hardware_body(on_demand_usd_per_hour=10.0,
                                                    spot_usd_per_hour=4.0))["id"]
    c.create("/api/v1/benchmarks", run_body(m, hw))
    for _ in range(3):
        c.get("/api/v1/models")
    text = c.get("/metrics").raw.decode()
    exported = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            exported.add(name)
            if kind == "histogram":
                exported |= {name + "_bucket", name + "_sum", name + "_count"}
    missing = []
    for where, expr in queries():
        for name in NAME_RE.findall(expr):
            if name.startswith("DCGM_"):
                ok = name in DCGM
            else:
                ok = name in exported
            if not ok:
                missing.append(f"{where}: {name}")
    assert not missing, "queried but not exported:\n" + "\n".join(missing)
    # The collector families the rules rely on are really there.
    for name in ("modelcat_breaker_state", "modelcat_replica_lag_seconds",
                 "modelcat_catalog_cost_per_1m_output_tokens_usd",
                 "modelcat_job_completions_total",
                 "modelcat_backup_last_success_timestamp_seconds"):
        assert name in exported, name
