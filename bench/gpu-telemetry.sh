#!/usr/bin/env bash
# Real-GPU check of `modelcat bench --gpu-telemetry nvml`: loads GPU 0 with
# a PyTorch matmul loop (~40 s), benchmarks a local `modelcat sim` for ~30 s
# with NVML telemetry at 1 s, and samples nvidia-smi at 1 s alongside; then
# prints both series side by side (by second) and the mean utilisation,
# memory and power of each, so the two can be compared.
# Needs only: the modelcat binary (its shared libraries through
# LD_LIBRARY_PATH), nvidia-smi, and python3 with torch.
# Usage: bench/gpu-telemetry.sh [path/to/modelcat]
# Env:   MODELCAT_BIN, DURATION (bench seconds, default 30), LOAD_S (matmul
#        seconds, default 40), OUT (outputs go there; default a temp dir)
set -euo pipefail

BIN=${1:-${MODELCAT_BIN:-$(dirname "$0")/../build/modelcat}}
DURATION=${DURATION:-30}
LOAD_S=${LOAD_S:-40}
[ -x "$BIN" ] || { echo "gpu-telemetry.sh: $BIN not found" >&2; exit 1; }
command -v nvidia-smi >/dev/null || { echo "gpu-telemetry.sh: no nvidia-smi" >&2; exit 1; }
DIR=${OUT:-$(mktemp -d /tmp/modelcat-gpu-telemetry.XXXXXX)}
mkdir -p "$DIR"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

PORT=$((20000 + RANDOM % 20000))
"$BIN" sim --listen 127.0.0.1:$PORT --model sim-model --max-num-seqs 64 \
    >"$DIR/sim.out" 2>"$DIR/sim.log" &
PIDS+=($!)
for _ in $(seq 50); do grep -q "listening on" "$DIR/sim.log" && break; sleep 0.1; done

python3 -c "
import time, torch
assert torch.cuda.is_available(), 'no CUDA device for torch'
a = torch.randn(8192, 8192, device='cuda', dtype=torch.float16)
b = torch.randn(8192, 8192, device='cuda', dtype=torch.float16)
end = time.time() + $LOAD_S
while time.time() < end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
" >"$DIR/load.log" 2>&1 &
LOAD_PID=$!
PIDS+=($LOAD_PID)
sleep 3 # let the load ramp up before both samplers start

nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used,power.draw \
    --format=csv,noheader,nounits -lms 1000 >"$DIR/nvidia-smi.csv" 2>"$DIR/nvidia-smi.err" &
SMI_PID=$!
PIDS+=($SMI_PID)

set +e
"$BIN" bench --base-url http://127.0.0.1:$PORT --model sim-model --num-prompts 0 \
    --duration "$DURATION" --max-concurrency 16 --input-len 64 --output-len 64 --ignore-eos \
    --gpu-telemetry nvml --gpu-telemetry-interval 1 \
    --result-json "$DIR/out.json" >"$DIR/bench.out" 2>"$DIR/bench.log"
RC=$?
set -e
kill "$SMI_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
cat "$DIR/bench.out"
[ "$RC" -eq 0 ] || { echo "gpu-telemetry.sh: bench exited $RC:"; tail -5 "$DIR/bench.log"; exit 1; }

python3 - "$DIR/out.json" "$DIR/nvidia-smi.csv" <<'PY' | tee "$DIR/compare.txt"
import datetime, json, sys
doc = json.load(open(sys.argv[1]))
mc = [s for s in doc.get("gpu_samples", []) if s.get("gpu") == 0]
smi = []
for line in open(sys.argv[2]):
    f = [x.strip() for x in line.split(",")]
    if len(f) < 5 or f[1] != "0":
        continue
    try:
        ts = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        smi.append((ts, float(f[2]), float(f[3]) * 1048576, float(f[4])))
    except ValueError:
        continue  # "[N/A]" and the like
t0 = mc[0]["ts_ms"] / 1000 if mc else 0
# nvidia-smi prints local time: align its clock to the run by the nearest start.
if smi and mc:
    off = min((abs(s[0] - t0), s[0] - t0) for s in smi)[1]
    local_shift = round(off / 1800) * 1800  # timezone offset, half-hour steps
    smi = [(s[0] - local_shift,) + s[1:] for s in smi]
def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")
print(f"{'t (s)':>6} | {'modelcat util%':>14} {'mem GiB':>8} {'power W':>8} | "
      f"{'nvidia-smi util%':>16} {'mem GiB':>8} {'power W':>8}")
for s in mc:
    t = s["ts_ms"] / 1000
    near = min(smi, key=lambda x: abs(x[0] - t)) if smi else None
    ok = near and abs(near[0] - t) <= 0.6
    print(f"{t - t0:6.1f} | {s.get('util_pct', float('nan')):14.1f} "
          f"{s.get('mem_used_bytes', 0) / 2**30:8.2f} {s.get('power_w', float('nan')):8.1f} | "
          + (f"{near[1]:16.1f} {near[2] / 2**30:8.2f} {near[3]:8.1f}" if ok else f"{'-':>16}"))
# The means over the same window: nvidia-smi samples inside the bench's span.
lo, hi = (mc[0]["ts_ms"] / 1000, mc[-1]["ts_ms"] / 1000) if mc else (0, 0)
win = [s for s in smi if lo - 0.5 <= s[0] <= hi + 0.5]
print()
print(f"{'':24} {'samples':>8} {'util %':>8} {'mem GiB':>8} {'power W':>8}")
print(f"{'modelcat (nvml)':24} {len(mc):8d} {mean([s.get('util_pct') for s in mc]):8.1f} "
      f"{mean([s.get('mem_used_bytes') for s in mc]) / 2**30:8.2f} "
      f"{mean([s.get('power_w') for s in mc]):8.1f}")
print(f"{'nvidia-smi':24} {len(win):8d} {mean([s[1] for s in win]):8.1f} "
      f"{mean([s[2] for s in win]) / 2**30:8.2f} {mean([s[3] for s in win]):8.1f}")
print(f"summary: gpu_util_mean_pct={doc.get('gpu_util_mean_pct')} "
      f"gpu_power_mean_w={doc.get('gpu_power_mean_w')} "
      f"gpu_mem_peak_bytes={doc.get('gpu_mem_peak_bytes')} "
      f"energy_per_output_token_j={doc.get('energy_per_output_token_j')} "
      f"energy_from={doc.get('gpu_telemetry', {}).get('energy_from')}")
PY
echo "outputs in $DIR"
