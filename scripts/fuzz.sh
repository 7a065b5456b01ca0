#!/bin/sh
# Runs every libFuzzer target of build-fuzz (make fuzz builds them) for
# FUZZ_SECONDS each (default 60), seeded from tests/fuzz/corpus/<target>,
# and prints the executions of each. New inputs go to a scratch corpus
# (build-fuzz/corpus/<target>); a crash leaves its input in
# build-fuzz/crashes/<target>/ and makes the script exit 1 after the rest
# have run. Add what is worth keeping to tests/fuzz/corpus by hand: those
# files replay in make test.
# Usage: scripts/fuzz.sh [target...]     env FUZZ_SECONDS, FUZZ_JOBS
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build-fuzz
SECS=${FUZZ_SECONDS:-60}
cd "$B" || { echo "fuzz.sh: no build-fuzz; run make fuzz" >&2; exit 2; }
targets=${*:-$(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
failed=0
printf '%-22s %12s %10s  %s\n' target executions exec/s result
for t in $targets; do
    bin=$(find "$B" -type f -name "$t" -perm -u+x | head -1)
    [ -n "$bin" ] || { echo "fuzz.sh: $t not built" >&2; failed=1; continue; }
    mkdir -p "$B/corpus/$t" "$B/crashes/$t"
    log=$B/crashes/$t.log
    "$bin" -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$B/crashes/$t/" \
        "$B/corpus/$t" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then res=ok; else res="FAILED (see $log)"; failed=1; fi
    printf '%-22s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$res"
done
exit $failed
