#!/usr/bin/env bash
# Sample ingest and run-list queries of the catalog, on SQLite and on
# PostgreSQL (started by scripts/test-services.sh in a temporary directory):
#   - POST /api/v1/benchmarks with SAMPLES per-request samples (default
#     1,000,000): wall time and rows/s, end to end (HTTP, JSON parse,
#     validation, COPY on PostgreSQL / prepared INSERTs on SQLite);
#   - RUNS runs (default 100,000, loaded over the API with a few samples each),
#     then filtered and sorted list queries: p50 and p99 ms over 200 requests.
# Usage: bench/ingest.sh   (env SAMPLES, RUNS, MODELCAT_BIN)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELCAT_BIN:-$ROOT/build/modelcat}
SAMPLES=${SAMPLES:-1000000}
RUNS=${RUNS:-100000}
[ -x "$BIN" ] || { echo "ingest.sh: $BIN not found; run make first" >&2; exit 1; }
TMP=$(mktemp -d /tmp/modelcat-ingest.XXXXXX)
chmod 755 "$TMP" # the postgres user must reach its data directory
SERVE_PID=""
cleanup() {
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    "$ROOT/scripts/test-services.sh" stop "$TMP/services" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$ROOT/scripts/test-services.sh" start "$TMP/services" >/dev/null
# shellcheck disable=SC1091
. "$TMP/services/env"

# Writes need a credential: a one-off admin key for the servers started here.
MODELCAT_BOOTSTRAP_ADMIN_KEY=$("$BIN" keys generate)
export MODELCAT_BOOTSTRAP_ADMIN_KEY

start_serve() { # $1: db URL
    "$BIN" serve --listen 127.0.0.1:0 --db "$1" --threads 2 --max-body 1G --cache off \
        2>"$TMP/serve.log" &
    SERVE_PID=$!
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/serve.log")
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    cat "$TMP/serve.log" >&2; exit 1
}

stop_serve() { kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=""; }

measure() { # $1: store name, $2: db URL
    start_serve "$2"
    python3 - "$PORT" "$SAMPLES" "$RUNS" "$1" <<'PY'
import http.client, json, sys, time
port, samples, runs, store = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
import os
def req(method, path, body=None, headers=None):
    h = {"Content-Type": "application/json",
         "Authorization": "Bearer " + os.environ["MODELCAT_BOOTSTRAP_ADMIN_KEY"]}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse(); data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None
req("POST", "/api/v1/models", json.dumps({"id": "bench/ingest", "name": "ingest", "parameters_b": 8}))
req("POST", "/api/v1/hardware", json.dumps({"id": "bench-hw", "gpu": "H100", "memory_gb": 80,
                                            "on_demand_usd_per_hour": 10, "gpus_per_instance": 8}))
def run(i, nsamples, engine="vllm"):
    r = {"model": "bench/ingest", "engine": engine, "hardware": "bench-hw", "dataset": "random",
         "duration": 60.0, "completed": 1000, "total_input_tokens": 512000,
         "total_output_tokens": 128000, "request_throughput": 16.6 + i % 7,
         "output_throughput": 2000.0 + (i * 37) % 3000, "total_token_throughput": 10000.0,
         "p99_ttft_ms": 100.0 + (i * 13) % 900, "gpu_count": 1 + i % 8,
         "sweep_id": f"s{i // 4}", "max_concurrency": 1 << (i % 8)}
    if nsamples:
        r["samples"] = [{"scheduled_ns": k * 1000, "sent_ns": k * 1000 + 5, "first_token_ns": k * 1000 + 50000,
                         "last_token_ns": k * 1000 + 900000, "input_tokens": 512, "output_tokens": 128,
                         "error": None} for k in range(nsamples)]
    return json.dumps(r)
body = run(0, samples)
t = time.monotonic()
got = req("POST", "/api/v1/benchmarks", body)
dt = time.monotonic() - t
assert got["sample_count"] == samples
print(f"{store:<9} ingest: {samples} samples ({len(body) / 1e6:.0f} MB JSON) in {dt:.2f} s = {samples / dt:,.0f} rows/s")
t = time.monotonic()
for i in range(1, runs):
    req("POST", "/api/v1/benchmarks", run(i, 3, engine=("vllm", "tgi", "sglang")[i % 3]))
print(f"{store:<9} loaded {runs} runs in {time.monotonic() - t:.0f} s")
queries = [
    "/api/v1/benchmarks?limit=50",
    "/api/v1/benchmarks?engine=tgi&sort=-output_throughput&limit=50",
    "/api/v1/benchmarks?gpu_count=4&sort=p99_ttft_ms&limit=50",
    "/api/v1/benchmarks?model=bench/ingest&engine=vllm&sort=-request_throughput&limit=50",
    "/api/v1/benchmarks?sweep_id=s777&limit=50",
]
for q in queries:
    lat = []
    for _ in range(200):
        t = time.monotonic(); req("GET", q); lat.append((time.monotonic() - t) * 1000)
    lat.sort()
    print(f"{store:<9} {q:<78} p50 {lat[100]:7.2f} ms  p99 {lat[197]:7.2f} ms")
PY
    stop_serve
}

echo "modelcat ingest and query benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ)), $("$BIN" --version)"
measure sqlite "sqlite:$TMP/ingest.db"
measure postgres "$MODELCAT_TEST_PG_URL"
