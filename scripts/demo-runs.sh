#!/bin/sh
# Fills a catalog with real benchmark runs for the demo: `modelcat bench`
# against `modelcat sim` (engine "sim", on a "sim-loopback" hardware row
# with no price), published through the API of a temporary `modelcat serve`
# on the same store. Nothing is invented: every figure is measured here.
# Idempotent: does nothing when the store already has sim runs.
# Usage: scripts/demo-runs.sh BIN DB_URL
set -eu
BIN=$1
DB=$2
TMP=$(mktemp -d /tmp/modelcat-demo.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start NAME ARGS...: runs "$BIN ARGS" on a free port, sets PORT.
start() {
    name=$1; shift
    "$BIN" "$@" --listen 127.0.0.1:0 2>"$TMP/$name.log" &
    PIDS="$PIDS $!"
    i=0
    while [ $i -lt 100 ]; do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$name.log")
        [ -n "$PORT" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "demo-runs: $name did not start" >&2; cat "$TMP/$name.log" >&2; exit 1
}

# Writes need a credential: a one-off admin key for this temporary server.
KEY=$("$BIN" keys generate)
export MODELCAT_BOOTSTRAP_ADMIN_KEY="$KEY"
start serve serve --db "$DB" --threads 2
unset MODELCAT_BOOTSTRAP_ADMIN_KEY
API="http://127.0.0.1:$PORT"
if curl -fsS "$API/api/v1/benchmarks?engine=sim&limit=1" | grep -q '"id"'; then
    echo "demo-runs: the catalog already has sim runs"
    exit 0
fi
curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $KEY" "$API/api/v1/hardware" \
    -d '{"id":"sim-loopback","gpu":"none (modelcat sim on loopback)","memory_gb":1,
         "provider":"local","gpus_per_instance":1,
         "price_source":"not a GPU: the engine simulator, for demos and calibration"}' || true

MODEL=meta-llama/Llama-3.1-8B-Instruct
start sim sim --model "$MODEL" --max-num-seqs 64 --itl-ms 6 --itl-ms-per-seq 0.1 \
    --prefill-tokens-per-s 12000 --jitter 0.05 --seed 1
echo "demo-runs: benchmarking modelcat sim into $API (about 10 s)"
"$BIN" bench --backend vllm --base-url "http://127.0.0.1:$PORT" --model "$MODEL" \
    --dataset random --input-len 512 --output-len 48 --range-ratio 0.2 --ignore-eos \
    --num-prompts 16 --sweep concurrency=1,4,16,64 --seed 1 \
    --catalog "$API" --catalog-api-key "$KEY" --hardware sim-loopback --engine sim --engine-version "$("$BIN" --version | cut -d' ' -f2)" \
    --engine-args "--max-num-seqs 64 --itl-ms 6 --itl-ms-per-seq 0.1" >"$TMP/bench.out" 2>&1 ||
    { cat "$TMP/bench.out" >&2; exit 1; }
echo "demo-runs: 4 runs published (GET $API/api/v1/benchmarks?engine=sim)"
