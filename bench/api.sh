#!/usr/bin/env bash
# bench/api.sh — read-path throughput of modelcat against nginx serving the
# same bytes as static files, all on loopback.
#
#   bench/api.sh                      # from the repository root
#   MODELCAT_BIN=/path/to/modelcat DURATION=30 bench/api.sh
#
# What it does:
#   1. starts `modelcat serve` on a free 127.0.0.1 port with a fresh SQLite db
#      in a temp dir and waits for GET /healthz;
#   2. loads MODELS (1000) models with bench/load_models.py (one keep-alive
#      connection, stdlib only);
#   3. saves the bodies of GET /api/v1/models?limit=50 and
#      GET /api/v1/models/bench-org%2Fmodel-0500 as /list.json and /item.json
#      under an nginx root, starts nginx on another free port and checks that
#      it returns byte-identical bodies;
#   4. per route, alternates wrk runs against modelcat and nginx (each run
#      preceded by a discarded WARMUP-second run);
#   5. prints req/s, p99 latency, the modelcat/nginx req/s ratio and the
#      targets (item >= 0.50, list >= 0.20).
# It is a measurement, not a test: a missed target still exits 0. A non-zero
# exit means something failed to run. Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   MODELCAT_BIN [build/modelcat]   THREADS [2]  modelcat --threads = nginx workers
#   DURATION [10]  seconds per measured run      WARMUP [2]  seconds, 0 = none
#   WRK_THREADS [1]  CONNECTIONS [64]            MODELS [1000]
#   ROUNDS [1]  measured runs per route and server; the table shows medians
#   STARTUP_TIMEOUT [20] seconds to wait for each server
#   KEEP_TMP [0]  1 keeps the temp dir (logs, wrk output, nginx config)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench/api.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# --- configuration ---------------------------------------------------------
THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WRK_THREADS=${WRK_THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
MODELS=${MODELS:-1000}
ROUNDS=${ROUNDS:-1}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-20}
KEEP_TMP=${KEEP_TMP:-0}

for v in THREADS DURATION WRK_THREADS CONNECTIONS MODELS ROUNDS STARTUP_TIMEOUT; do
    case "${!v}" in
    '' | *[!0-9]* | 0*) die "$v must be a positive integer (got '${!v}')" ;;
    esac
done
case "$WARMUP" in '' | *[!0-9]*) die "WARMUP must be an integer >= 0 (got '$WARMUP')" ;; esac
[ "$MODELS" -gt 500 ] || die "MODELS must be > 500 (the item route fetches model-0500)"
[ "$MODELS" -le 10000 ] || die "MODELS must be <= 10000 (ids have four digits)"

resolve_bin "$repo"

for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found on PATH (scripts/install-deps.sh bench installs wrk and nginx)"
done
NGINX=$(command -v nginx)

# --- temp dir and cleanup --------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/modelcat-bench.XXXXXX")
mc_pid=""
ngx_pid=""
wrk_pid=""


cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$wrk_pid" wrk
    stop_pid "$ngx_pid" nginx
    stop_pid "$mc_pid" modelcat
    if [ "$KEEP_TMP" = 1 ]; then
        say "temp dir kept: $tmp"
    else
        rm -rf -- "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# Two distinct free loopback ports (both bound at once, so they differ).
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss:
    s.close()
')
read -r mc_port ngx_port <<<"$ports"
mc_base="http://127.0.0.1:$mc_port"
ngx_base="http://127.0.0.1:$ngx_port"


# --- 1. modelcat -----------------------------------------------------------
say "starting modelcat on $mc_base (threads $THREADS, db $tmp/bench.db)"
# --cache off: this script measures the store's read path (bench/cache.sh the cache).
"$BIN" serve --listen "127.0.0.1:$mc_port" --db "sqlite:$tmp/bench.db" \
    --threads "$THREADS" --cache off >"$tmp/modelcat.log" 2>&1 &
mc_pid=$!
wait_http "$mc_base/healthz" "$mc_pid" modelcat "$tmp/modelcat.log"

# Version: `--version`, else `version`, else the OpenAPI document's info.version.
mc_version=""
for arg in --version version; do
    if out=$(timeout 5 "$BIN" "$arg" 2>/dev/null) && [ -n "$out" ]; then
        mc_version=$(printf '%s\n' "$out" | head -n 1)
        break
    fi
done
if [ -z "$mc_version" ]; then
    mc_version=$(curl -fsS --max-time 5 "$mc_base/openapi.json" 2>/dev/null | python3 -c '
import json, sys
print("%s (from /openapi.json)" % json.load(sys.stdin)["info"]["version"])
' 2>/dev/null) || mc_version="unknown"
fi

# --- 2. data ---------------------------------------------------------------
say "loading $MODELS models"
t0=$(date +%s.%N)
if ! python3 "$here/load_models.py" 127.0.0.1 "$mc_port" "$MODELS" >"$tmp/load.log" 2>&1; then
    cat "$tmp/load.log" >&2
    show_log "$tmp/modelcat.log" "modelcat log"
    die "loading models failed"
fi
t1=$(date +%s.%N)
load_secs=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
say "$(tail -n 1 "$tmp/load.log") in ${load_secs}s"

# --- 3. static copies for nginx --------------------------------------------
list_path='/api/v1/models?limit=50'
item_path='/api/v1/models/bench-org%2Fmodel-0500'
www=$tmp/www
ngx_dir=$tmp/nginx
mkdir -p "$www" "$ngx_dir/tmp"

fetch() { # url out-file headers-file -> prints the content type
    curl -fsS --max-time 10 -D "$3" -o "$2" -w '%{content_type}' "$1" ||
        die "GET $1 failed"
}
list_ct=$(fetch "$mc_base$list_path" "$www/list.json" "$tmp/list.headers")
item_ct=$(fetch "$mc_base$item_path" "$www/item.json" "$tmp/item.headers")

python3 - "$www/list.json" "$www/item.json" <<'EOF' || die "unexpected bodies from modelcat (see above)"
import json, sys
lst = json.load(open(sys.argv[1], "rb"))
item = json.load(open(sys.argv[2], "rb"))
n = len(lst.get("items", []))
if n != 50:
    sys.exit("list: expected 50 items, got %d" % n)
if item.get("id") != "bench-org/model-0500":
    sys.exit("item: expected id bench-org/model-0500, got %r" % item.get("id"))
EOF
list_bytes=$(wc -c <"$www/list.json" | tr -d ' ')
item_bytes=$(wc -c <"$www/item.json" | tr -d ' ')
if [ "$list_ct" != "$item_ct" ]; then
    say "note: content types differ (list '$list_ct', item '$item_ct'); nginx sends the item's"
fi
# nginx sends modelcat's Content-Type verbatim (same header size); it is
# written inside double quotes in the config, so refuse anything odd.
ngx_type=${item_ct:-application/json}
case "$ngx_type" in
*'"'* | *\\* | *'{'* | *'}'* | *'$'*) ngx_type=application/json ;;
esac
for h in "$tmp/list.headers" "$tmp/item.headers"; do
    if tr -d '\r' <"$h" | grep -qi '^connection: *close'; then
        say "warning: modelcat answered 'Connection: close' ($(basename "$h" .headers)); wrk will reconnect per request"
    fi
done

start_nginx "$ngx_dir" "$www" "$ngx_port" "$ngx_type" "$THREADS" bench/api.sh /item.json

for f in list item; do
    curl -fsS --max-time 10 -o "$tmp/$f.nginx" "$ngx_base/$f.json" ||
        die "GET $ngx_base/$f.json failed"
    cmp -s "$www/$f.json" "$tmp/$f.nginx" ||
        die "nginx body for /$f.json differs from modelcat's"
    # modelcat must be stable too: a second fetch gives the same bytes.
    case "$f" in list) p=$list_path ;; item) p=$item_path ;; esac
    curl -fsS --max-time 10 -o "$tmp/$f.again" "$mc_base$p" || die "GET $mc_base$p failed"
    cmp -s "$www/$f.json" "$tmp/$f.again" ||
        die "modelcat returned different bytes for $p on a second fetch"
done
say "bodies identical: list $list_bytes B, item $item_bytes B"

# --- 4. wrk ----------------------------------------------------------------

# wrk runs in the background and is waited for, so that INT/TERM reach the
# traps at once instead of after the run.

wrk_cmd_text="wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --latency URL"
results=$tmp/results.txt
: >"$results"

run_wrk() { # route server url round
    local route=$1 server=$2 url=$3 round=$4 out
    if [ "$WARMUP" -gt 0 ]; then
        wrk_run "$tmp/wrk-$route-$server-$round-warmup.txt" \
            -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" || {
            cat "$tmp/wrk-$route-$server-$round-warmup.txt" >&2
            die "wrk warm-up against $url failed"
        }
    fi
    out=$tmp/wrk-$route-$server-$round.txt
    say "wrk $route $server (round $round/$ROUNDS, ${DURATION}s)"
    wrk_run "$out" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" || {
        cat "$out" >&2
        die "wrk against $url failed"
    }
    local parsed
    parsed=$(parse_wrk "$out") || {
        cat "$out" >&2
        die "could not parse the wrk output above ($route $server)"
    }
    kill -0 "$mc_pid" 2>/dev/null || { show_log "$tmp/modelcat.log" "modelcat log"; die "modelcat died during the run"; }
    kill -0 "$ngx_pid" 2>/dev/null || { show_log "$ngx_dir/error.log" "nginx error log"; die "nginx died during the run"; }
    printf '%s %s %s %s\n' "$route" "$server" "$round" "$parsed" >>"$results"
}

for route in item list; do
    case "$route" in
    item) mc_url=$mc_base$item_path ngx_url=$ngx_base/item.json ;;
    list) mc_url=$mc_base$list_path ngx_url=$ngx_base/list.json ;;
    esac
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        run_wrk "$route" modelcat "$mc_url" "$r"
        run_wrk "$route" nginx "$ngx_url" "$r"
        r=$((r + 1))
    done
done

# --- 5. report -------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
wrk_version=$(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }' || true)
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')

echo
echo "modelcat API benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "  modelcat:  $mc_version  ($BIN, --threads $THREADS, sqlite, $MODELS models)"
echo "  nginx:     $nginx_version  (worker_processes $THREADS, static files)"
echo "  machine:   $cpu_model, $cores cores (wrk, modelcat and nginx share them)"
echo "  wrk:       $wrk_version; each measured run: $wrk_cmd_text"
echo "             preceded by a discarded ${WARMUP}s run; $ROUNDS round(s), modelcat and nginx alternating"
echo "  item URL:  $mc_base$item_path  vs  $ngx_base/item.json"
echo "  list URL:  $mc_base$list_path  vs  $ngx_base/list.json"
echo
python3 - "$results" "$item_bytes" "$list_bytes" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
size = {"item": int(sys.argv[2]), "list": int(sys.argv[3])}
target = {"item": 0.50, "list": 0.20}
def med(route, server, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == route and r[1] == server)
hdr = ("route", "body B", "modelcat req/s", "modelcat p99 ms",
       "nginx req/s", "nginx p99 ms", "ratio", "target", "")
fmt = "%-5s %7s %15s %16s %12s %13s %6s %7s  %s"
print(fmt % hdr)
warnings = []
for route in ("item", "list"):
    mr, mp = med(route, "modelcat", 3), med(route, "modelcat", 4)
    nr, np_ = med(route, "nginx", 3), med(route, "nginx", 4)
    ratio = mr / nr if nr > 0 else float("nan")
    ok = ratio >= target[route]
    print(fmt % (route, size[route], "%.0f" % mr, "%.2f" % mp, "%.0f" % nr,
                 "%.2f" % np_, "%.2f" % ratio, ">= %.2f" % target[route],
                 "met" if ok else "MISSED"))
    for r in rows:
        if r[0] == route and (int(r[5]) or int(r[6])):
            warnings.append("%s %s round %s: %s non-2xx/3xx responses, %s socket errors"
                            % (r[0], r[1], r[2], r[5], r[6]))
if len({r[2] for r in rows}) > 1:
    print("\nper round (req/s, p99 ms):")
    for r in rows:
        print("  %-4s %-8s round %-2s %10.0f %9.2f" % (r[0], r[1], r[2], float(r[3]), float(r[4])))
if warnings:
    print("\nWARNING: errors during measured runs (numbers are suspect):")
    for w in warnings:
        print("  " + w)
EOF
