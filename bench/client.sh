#!/usr/bin/env bash
# Measures modelcat bench itself against modelcat sim, on loopback:
#   - how much load one client process sustains (output tokens/s, requests/s);
#   - its CPU cost: seconds per 1M output tokens, microseconds per streamed
#     event and per request;
#   - the latency it adds: its TTFT minus the simulator's ground-truth TTFT
#     for the same request (p50, p99);
#   - events per read, because the kernel sets the floor.
# The sim and the client are pinned to different cores when there are two.
# Usage: bench/client.sh            (from the repository root)
# Env:   MODELCAT_BIN (default build/modelcat), SCALE (multiplies request counts),
#        TIMESTAMPS (kernel, the default, or user: bench --timestamps)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELCAT_BIN:-$ROOT/build/modelcat}
SCALE=${SCALE:-1}
[ -x "$BIN" ] || { echo "client.sh: $BIN not found; run make first" >&2; exit 1; }
TMP=$(mktemp -d /tmp/modelcat-client.XXXXXX)
SIM_PID=""
cleanup() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

CORES=$(nproc)
PIN_SIM=(); PIN_BENCH=()
if [ "$CORES" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SIM=(taskset -c 1); PIN_BENCH=(taskset -c 0)
fi

start_sim() { # args: extra sim flags
    "${PIN_SIM[@]}" "$BIN" sim --listen 127.0.0.1:0 --truth "$TMP/truth.jsonl" \
        --max-num-seqs 1000000 --prefill-tokens-per-s 1e12 --itl-ms-per-seq 0 \
        "$@" 2>"$TMP/sim.log" &
    SIM_PID=$!
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/sim.log")
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    echo "client.sh: sim did not start" >&2; cat "$TMP/sim.log" >&2; exit 1
}

stop_sim() {
    kill -TERM "$SIM_PID"; wait "$SIM_PID" || true; SIM_PID=""
}

# run NAME "sim flags" bench flags...
run() {
    local name=$1 simflags=$2; shift 2
    rm -f "$TMP/truth.jsonl"
    # shellcheck disable=SC2086
    start_sim $simflags
    "${PIN_BENCH[@]}" "$BIN" bench --base-url "http://127.0.0.1:$PORT" --model sim-model \
        --ignore-eos --warmup 0 --seed 1 --input-len 32 --request-timeout 120 \
        --timestamps "${TIMESTAMPS:-kernel}" \
        --result-json "$TMP/$name.json" --requests-out "$TMP/$name.jsonl" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || { cat "$TMP/$name.err" >&2; exit 1; }
    stop_sim
    python3 - "$name" "$TMP/$name.json" "$TMP/$name.jsonl" "$TMP/truth.jsonl" <<'PY'
import json, sys
name, res, reqs, truth = sys.argv[1:]
r = json.load(open(res))
t = {}
for line in open(truth):
    row = json.loads(line); t[row["request_id"]] = row
added = []
for line in open(reqs):
    x = json.loads(line)
    tr = t.get(x["request_id"])
    if tr and x["first_token_ns"] and tr.get("first_token_ns"):
        added.append(((x["first_token_ns"] - x["sent_ns"]) - (tr["first_token_ns"] - tr["arrival_ns"])) / 1e3)
added.sort()
def pct(p):
    if not added: return float("nan")
    k = (len(added) - 1) * p / 100; f = int(k); c = min(f + 1, len(added) - 1)
    return added[f] + (added[c] - added[f]) * (k - f)
cpu = r["client_cpu_user_s"] + r["client_cpu_sys_s"]
tok = r["total_output_tokens"]
events = tok  # ignore_eos and one token per event: one content event per token
reqs_n = r["completed"] + r["failed"]
print(f"{name:<22} {r['completed']:>7} {r['failed']:>5} {r['max_concurrent_requests']:>6} "
      f"{r['output_throughput']:>10.0f} {r['request_throughput']:>9.0f} "
      f"{cpu / tok * 1e6 if tok else float('nan'):>9.2f} {cpu / events * 1e6 if events else float('nan'):>7.2f} "
      f"{cpu / reqs_n * 1e6 if reqs_n else float('nan'):>8.1f} {r['events_per_read']:>6.2f} "
      f"{pct(50):>8.0f} {pct(99):>8.0f} "
      f"{(r['read_lag_ms_p99'] or 0) * 1e3:>8.0f}")
PY
}

echo "modelcat client benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "  binary:  $BIN ($("$BIN" --version))"
echo "  machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $CORES cores;" \
     "sim pinned: ${PIN_SIM[*]:-no}, bench pinned: ${PIN_BENCH[*]:-no}"
echo
printf '%-22s %7s %5s %6s %10s %9s %9s %7s %8s %6s %8s %8s %8s\n' point completed fail conc \
    "out tok/s" "req/s" "cpu s/1M" "us/evt" "us/req" "ev/rd" "+ttft p50" "+ttft p99" "lag p99"
printf '%-22s %7s %5s %6s %10s %9s %9s %7s %8s %6s %8s %8s %8s\n' "" "" "" "" "" "" "" "" "" "" "(us)" "(us)" "(us)"
# 100 streams paced at 20 ms per token: bursts of 100 events per step.
run "c100-paced-32tok" "--itl-ms 20" --max-concurrency 100 --num-prompts $((1000 * SCALE)) --output-len 32
# 1,000 streams paced by the engine (20 ms per token): one event per read,
# client far from saturated: CPU per event and added latency.
run "c1000-paced-32tok" "--itl-ms 20" --max-concurrency 1000 --num-prompts $((4000 * SCALE)) --output-len 32
# 2,000 concurrent streams: must complete with no errors.
run "c2000-paced-32tok" "--itl-ms 50" --max-concurrency 2000 --num-prompts $((6000 * SCALE)) --output-len 32
# Rate inf with 32-token outputs and no think time: the client's ceiling.
run "inf-c1000-32tok" "--itl-ms 0" --max-concurrency 1000 --num-prompts $((20000 * SCALE)) --output-len 32
# Few streams, no think time: events coalesce in reads.
run "c8-fast-256tok" "--itl-ms 0" --max-concurrency 8 --num-prompts $((400 * SCALE)) --output-len 256
# The sim writes 16 token events per write (--stream-interval): reads carry
# ~16 events, the coalesced regime.
run "c64-coalesced-256tok" "--itl-ms 1 --stream-interval 16" --max-concurrency 64 --num-prompts $((2000 * SCALE)) --output-len 256
# One-token responses: the per-request cost.
run "c64-1tok" "--itl-ms 0" --max-concurrency 64 --num-prompts $((20000 * SCALE)) --output-len 1
echo
echo "cpu s/1M: client CPU seconds (user+sys) per million output tokens; us/evt: per content"
echo "event; us/req: per request; ev/rd: SSE events per read(2); +ttft: client TTFT minus the"
echo "sim's ground-truth TTFT of the same request; lag p99: how long bytes waited in the"
echo "kernel before the client's loop read them (its saturation; not in the timestamps)."
echo "TIMESTAMPS=user measures with the loop's clock instead of the kernel's receive time."
