#!/usr/bin/env bash
# bench/cache.sh — throughput of modelcat's response cache on the list route,
# `--cache local`, `--cache redis://... --cache-lease-ms 0` (the generation
# read from Redis on every request) and `--cache redis://...` with
# `--cache-lease-ms LEASE_MS` (read once per lease; 1 ms is the default),
# against nginx serving the same bytes as a static file, all on loopback,
# in one run.
#
#   bench/cache.sh                    # from the repository root
#   MODELCAT_BIN=/path/to/modelcat DURATION=30 ROUNDS=3 bench/cache.sh
#
# What it does:
#   1. starts redis-server (no persistence) and three `modelcat serve` processes
#      on one fresh SQLite file in a temp dir: --cache local, --cache
#      redis://127.0.0.1:PORT/0 --cache-lease-ms 0, and the same with
#      --cache-lease-ms LEASE_MS; waits for
#      GET /healthz on each;
#   2. loads MODELS (1000) models through the local one (bench/load_models.py);
#   3. saves the body of GET /api/v1/models?limit=50 under an nginx root,
#      starts nginx and checks that nginx and the modelcat processes return
#      byte-identical bodies, and that modelcat's second fetch is X-Cache: hit;
#   4. per round, runs wrk against local, redis, lease and nginx in turn, each run
#      preceded by a discarded WARMUP-second run; the cache counters of
#      /readyz before and after each modelcat run give its hit ratio;
#   5. prints req/s, p99, hit ratio and the ratio to nginx (target >= 0.80).
# It is a measurement, not a test: a missed target still exits 0. A non-zero
# exit means something failed to run. Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   MODELCAT_BIN [build/modelcat]   THREADS [2]  modelcat --threads = nginx workers
#   DURATION [10]  seconds per measured run      WARMUP [2]  seconds, 0 = none
#   WRK_THREADS [1]  CONNECTIONS [64]            MODELS [1000]
#   ROUNDS [1]  measured runs per server; the table shows medians
#   LEASE_MS [1]  --cache-lease-ms of the third modelcat
#   STARTUP_TIMEOUT [20] seconds to wait for each server
#   KEEP_TMP [0]  1 keeps the temp dir (logs, wrk output, nginx config)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench/cache.sh: error: %s\n' "$*" >&2; exit 1; }
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
LEASE_MS=${LEASE_MS:-1}
TARGET=0.80

for v in THREADS DURATION WRK_THREADS CONNECTIONS MODELS ROUNDS STARTUP_TIMEOUT LEASE_MS; do
    case "${!v}" in
    '' | *[!0-9]* | 0*) die "$v must be a positive integer (got '${!v}')" ;;
    esac
done
case "$WARMUP" in '' | *[!0-9]*) die "WARMUP must be an integer >= 0 (got '$WARMUP')" ;; esac
[ "$MODELS" -ge 50 ] || die "MODELS must be >= 50 (the list route fetches 50)"
[ "$MODELS" -le 10000 ] || die "MODELS must be <= 10000 (ids have four digits)"

resolve_bin "$repo"

for tool in wrk nginx curl python3 redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found on PATH (scripts/install-deps.sh bench installs wrk and nginx)"
done
NGINX=$(command -v nginx)

# --- temp dir and cleanup --------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/modelcat-cache-bench.XXXXXX")
local_pid=""
redis_mc_pid=""
lease_pid=""
redis_pid=""
ngx_pid=""
wrk_pid=""


cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$wrk_pid" wrk
    stop_pid "$ngx_pid" nginx
    stop_pid "$local_pid" "modelcat (local)"
    stop_pid "$redis_mc_pid" "modelcat (redis)"
    stop_pid "$lease_pid" "modelcat (redis, lease)"
    stop_pid "$redis_pid" redis-server
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


# Five distinct free loopback ports (all bound at once, so they differ).
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss:
    s.close()
')
read -r local_port redis_mc_port lease_port ngx_port redis_port <<<"$ports"
local_base="http://127.0.0.1:$local_port"
redis_mc_base="http://127.0.0.1:$redis_mc_port"
lease_base="http://127.0.0.1:$lease_port"
ngx_base="http://127.0.0.1:$ngx_port"
redis_url="redis://127.0.0.1:$redis_port/0"


# --- 1. redis-server and the two modelcat processes -------------------------
mkdir -p "$tmp/redis"
say "starting redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp/redis" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
deadline=$((SECONDS + STARTUP_TIMEOUT))
until [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; do
    kill -0 "$redis_pid" 2>/dev/null || { show_log "$tmp/redis.log" "redis log"; die "redis-server exited"; }
    [ "$SECONDS" -lt "$deadline" ] || die "redis-server did not answer PING"
    sleep 0.1
done

"$BIN" migrate --db "sqlite:$tmp/bench.db" >"$tmp/migrate.log" 2>&1 ||
    { cat "$tmp/migrate.log" >&2; die "migrate failed"; }
say "starting modelcat --cache local on $local_base (threads $THREADS)"
"$BIN" serve --listen "127.0.0.1:$local_port" --db "sqlite:$tmp/bench.db" \
    --threads "$THREADS" --cache local >"$tmp/modelcat-local.log" 2>&1 &
local_pid=$!
say "starting modelcat --cache $redis_url --cache-lease-ms 0 on $redis_mc_base (threads $THREADS)"
"$BIN" serve --listen "127.0.0.1:$redis_mc_port" --db "sqlite:$tmp/bench.db" \
    --threads "$THREADS" --cache "$redis_url" --cache-lease-ms 0 >"$tmp/modelcat-redis.log" 2>&1 &
redis_mc_pid=$!
say "starting modelcat --cache $redis_url --cache-lease-ms $LEASE_MS on $lease_base"
"$BIN" serve --listen "127.0.0.1:$lease_port" --db "sqlite:$tmp/bench.db" \
    --threads "$THREADS" --cache "$redis_url" --cache-lease-ms "$LEASE_MS" \
    >"$tmp/modelcat-lease.log" 2>&1 &
lease_pid=$!
wait_http "$local_base/healthz" "$local_pid" "modelcat (local)" "$tmp/modelcat-local.log"
wait_http "$redis_mc_base/healthz" "$redis_mc_pid" "modelcat (redis)" "$tmp/modelcat-redis.log"
wait_http "$lease_base/healthz" "$lease_pid" "modelcat (lease)" "$tmp/modelcat-lease.log"

mc_version=$(timeout 5 "$BIN" --version 2>/dev/null | head -n 1) || mc_version=unknown

# --- 2. data ---------------------------------------------------------------
say "loading $MODELS models"
if ! python3 "$here/load_models.py" 127.0.0.1 "$local_port" "$MODELS" >"$tmp/load.log" 2>&1; then
    cat "$tmp/load.log" >&2
    show_log "$tmp/modelcat-local.log" "modelcat log"
    die "loading models failed"
fi

# --- 3. the page, for nginx and for the checks -------------------------------
list_path='/api/v1/models?limit=50'
www=$tmp/www
ngx_dir=$tmp/nginx
mkdir -p "$www" "$ngx_dir/tmp"
list_ct=$(curl -fsS --max-time 10 -o "$www/list.json" -w '%{content_type}' \
    "$local_base$list_path") || die "GET $local_base$list_path failed"
python3 - "$www/list.json" <<'EOF' || die "unexpected body from modelcat (see above)"
import json, sys
n = len(json.load(open(sys.argv[1], "rb")).get("items", []))
if n != 50:
    sys.exit("list: expected 50 items, got %d" % n)
EOF
list_bytes=$(wc -c <"$www/list.json" | tr -d ' ')

# Every modelcat process: same bytes, and the second fetch is a cache hit.
for base in "$local_base" "$redis_mc_base" "$lease_base"; do
    for n in 1 2; do
        curl -fsS --max-time 10 -D "$tmp/h.$n" -o "$tmp/b.$n" "$base$list_path" ||
            die "GET $base$list_path failed"
        cmp -s "$www/list.json" "$tmp/b.$n" || die "$base returned different bytes"
    done
    tr -d '\r' <"$tmp/h.2" | grep -qi '^x-cache: hit' ||
        die "$base: the second GET $list_path was not X-Cache: hit"
done

ngx_type=${list_ct:-application/json}
case "$ngx_type" in
*'"'* | *\\* | *'{'* | *'}'* | *'$'*) ngx_type=application/json ;;
esac
start_nginx "$ngx_dir" "$www" "$ngx_port" "$ngx_type" "$THREADS" bench/cache.sh /list.json
curl -fsS --max-time 10 -o "$tmp/list.nginx" "$ngx_base/list.json" || die "GET from nginx failed"
cmp -s "$www/list.json" "$tmp/list.nginx" || die "nginx body differs from modelcat's"
say "bodies identical: list $list_bytes B"

# --- 4. wrk ----------------------------------------------------------------


counters() { # base -> "hits misses bypasses" from /readyz
    curl -fsS --max-time 5 "$1/readyz" | python3 -c '
import json, sys
c = json.load(sys.stdin)["cache"]
print(c.get("hits", 0), c.get("misses", 0), c.get("bypasses", 0))'
}

results=$tmp/results.txt
: >"$results"

run_wrk() { # server url round
    local server=$1 url=$2 round=$3 out parsed base="" before="0 0 0" after="0 0 0"
    case "$server" in
    local) base=$local_base ;;
    redis) base=$redis_mc_base ;;
    lease) base=$lease_base ;;
    esac
    if [ "$WARMUP" -gt 0 ]; then
        wrk_run "$tmp/wrk-$server-$round-warmup.txt" \
            -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" ||
            { cat "$tmp/wrk-$server-$round-warmup.txt" >&2; die "wrk warm-up against $url failed"; }
    fi
    [ -z "$base" ] || before=$(counters "$base")
    out=$tmp/wrk-$server-$round.txt
    say "wrk $server (round $round/$ROUNDS, ${DURATION}s)"
    wrk_run "$out" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" ||
        { cat "$out" >&2; die "wrk against $url failed"; }
    [ -z "$base" ] || after=$(counters "$base")
    parsed=$(parse_wrk "$out") || { cat "$out" >&2; die "could not parse the wrk output ($server)"; }
    for p in "$local_pid" "$redis_mc_pid" "$lease_pid" "$ngx_pid" "$redis_pid"; do
        kill -0 "$p" 2>/dev/null || die "a server died during the run (logs in $tmp; KEEP_TMP=1 keeps them)"
    done
    printf '%s %s %s %s %s\n' "$server" "$round" "$parsed" "$before" "$after" >>"$results"
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
    run_wrk local "$local_base$list_path" "$r"
    run_wrk redis "$redis_mc_base$list_path" "$r"
    run_wrk lease "$lease_base$list_path" "$r"
    run_wrk nginx "$ngx_base/list.json" "$r"
    r=$((r + 1))
done

# --- 5. report -------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
wrk_version=$(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }' || true)
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
redis_version=$(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')

echo
echo "modelcat response cache benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "  modelcat:  $mc_version  ($BIN, --threads $THREADS, sqlite, $MODELS models)"
echo "  redis:     $redis_version (no persistence, loopback)"
echo "  nginx:     $nginx_version  (worker_processes $THREADS, static file)"
echo "  machine:   $cpu_model, $cores cores (wrk, modelcat, redis and nginx share them)"
echo "  wrk:       $wrk_version; each measured run: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --latency URL"
echo "             preceded by a discarded ${WARMUP}s run; $ROUNDS round(s): local, redis, lease, nginx"
echo "  URL:       GET $list_path ($list_bytes B)"
echo
python3 - "$results" "$TARGET" "$LEASE_MS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
target = float(sys.argv[2])
lease = sys.argv[3]
def med(server, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == server)
def hit_ratio(server):
    hits = sum(int(r[10]) - int(r[7]) for r in rows if r[0] == server)
    total = sum(int(r[10]) + int(r[11]) + int(r[12]) - int(r[7]) - int(r[8]) - int(r[9])
                for r in rows if r[0] == server)
    # bypasses are counted apart from misses; a request is a hit, a miss or a bypass
    return hits / total if total > 0 else float("nan")
nr, np_ = med("nginx", 2), med("nginx", 3)
fmt = "%-34s %10s %8s %9s %7s %7s  %s"
print(fmt % ("server", "req/s", "p99 ms", "hit ratio", "ratio", "target", ""))
for server, label in (("local", "modelcat --cache local"),
                      ("redis", "modelcat --cache redis, lease 0"),
                      ("lease", "modelcat --cache redis, lease %s ms%s"
                       % (lease, " (default)" if lease == "1" else ""))):
    rps, p99 = med(server, 2), med(server, 3)
    ratio = rps / nr if nr > 0 else float("nan")
    print(fmt % (label, "%.0f" % rps, "%.2f" % p99, "%.4f" % hit_ratio(server), "%.2f" % ratio,
                 ">= %.2f" % target, "met" if ratio >= target else "MISSED"))
print(fmt % ("nginx (static file)", "%.0f" % nr, "%.2f" % np_, "", "1.00", "", ""))
warnings = ["%s round %s: %s non-2xx/3xx responses, %s socket errors" % (r[0], r[1], r[4], r[5])
            for r in rows if int(r[4]) or int(r[5])]
if len({r[1] for r in rows}) > 1:
    print("\nper round (req/s, p99 ms):")
    for r in rows:
        print("  %-6s round %-2s %10.0f %9.2f" % (r[0], r[1], float(r[2]), float(r[3])))
if warnings:
    print("\nWARNING: errors during measured runs (numbers are suspect):")
    for w in warnings:
        print("  " + w)
EOF
