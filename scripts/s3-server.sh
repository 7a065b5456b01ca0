#!/bin/sh
# Starts and stops a throw-away S3-compatible server for the backup tests:
#
#   s3-server.sh start DIR   s3rver (npm, pinned) on a free 127.0.0.1 port
#                            with one bucket, its data and log in DIR;
#                            writes DIR/env (KEY=VALUE lines):
#                            MODELCAT_TEST_S3_ENDPOINT, MODELCAT_TEST_S3_BUCKET,
#                            AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
#                            (S3RVER / S3RVER, the pair s3rver knows) and
#                            AWS_REGION
#   s3-server.sh stop DIR    stops it and removes DIR
#
# s3rver is installed once with `npm install --prefix` into a cache
# (MODELCAT_S3RVER_CACHE, default /tmp/modelcat-s3rver-<version>); later
# starts use the cache and need no network. It listens on 127.0.0.1 only.
# Note: s3rver checks the access key id but not SigV4 signatures, so a
# wrong secret passes here (a wrong key id is refused: InvalidAccessKeyId).
# `start` on a DIR whose server answers does nothing; `stop` is safe to
# run twice and after a failed start. DIR/env appears only when the server
# is up, so its presence means "started".
set -eu

VERSION=3.7.1
BUCKET=modelcat-test
MARK=.modelcat-s3-server
CACHE=${MODELCAT_S3RVER_CACHE:-/tmp/modelcat-s3rver-$VERSION}
BIN=$CACHE/node_modules/.bin/s3rver

die() { echo "s3-server: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
cmd=$1
case "$2" in
/*) dir=$2 ;;
*) dir=$(pwd)/$2 ;;
esac
[ "$dir" != / ] || die "refusing DIR=/"

# Kills pid only if it is still node (a recycled pid is never hit).
kill_ours() {
    pid=$1
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    [ -r "/proc/$pid/comm" ] || return 0
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
    node* | s3rver*) kill "$pid" 2>/dev/null || true ;;
    *) return 0 ;;
    esac
    i=0
    while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
}

stop_all() {
    [ -d "$dir" ] || return 0
    if [ ! -e "$dir/$MARK" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        die "$dir was not made by this script (no $MARK); not removing it"
    fi
    [ -f "$dir/s3rver.pid" ] && kill_ours "$(cat "$dir/s3rver.pid" 2>/dev/null)"
    rm -rf "$dir"
}

# Installs the pinned s3rver into the cache unless it is there already.
install_s3rver() {
    [ -x "$BIN" ] && return 0
    command -v npm >/dev/null 2>&1 || die "npm not found (scripts/install-deps.sh installs nodejs)"
    mkdir -p "$CACHE"
    echo "s3-server: installing s3rver@$VERSION into $CACHE" >&2
    npm install --prefix "$CACHE" --no-audit --no-fund --no-save --loglevel=error \
        "s3rver@$VERSION" >"$CACHE/npm.log" 2>&1 ||
        { tail -n 20 "$CACHE/npm.log" >&2; die "npm install s3rver@$VERSION failed"; }
    [ -x "$BIN" ] || die "npm installed s3rver but $BIN is missing"
}

# 0 when the server of DIR/env answers on its port.
answers() {
    [ -f "$dir/env" ] || return 1
    ep=$(sed -n 's/^MODELCAT_TEST_S3_ENDPOINT=//p' "$dir/env")
    curl -s -o /dev/null --max-time 2 "$ep/" 2>/dev/null
}

start() {
    if answers; then return 0; fi
    stop_all
    install_s3rver
    mkdir -p "$dir/data"
    : >"$dir/$MARK"
    # Port 0: the kernel picks a free port, and s3rver prints it. Its
    # continuation tokens use DES, which OpenSSL 3 keeps in the legacy
    # provider: without it every truncated list page is a 500.
    NODE_OPTIONS=--openssl-legacy-provider nohup "$BIN" -d "$dir/data" -a 127.0.0.1 -p 0 --configure-bucket "$BUCKET" \
        --no-vhost-buckets -s >"$dir/s3rver.log" 2>&1 </dev/null &
    echo $! >"$dir/s3rver.pid"
    port=""
    i=0
    while [ $i -lt 300 ]; do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/s3rver.log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$(cat "$dir/s3rver.pid")" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        tail -n 20 "$dir/s3rver.log" >&2
        stop_all || true
        die "s3rver did not start"
    fi
    cat >"$dir/env.tmp" <<EOF
MODELCAT_TEST_S3_ENDPOINT=http://127.0.0.1:$port
MODELCAT_TEST_S3_BUCKET=$BUCKET
AWS_ACCESS_KEY_ID=S3RVER
AWS_SECRET_ACCESS_KEY=S3RVER
AWS_REGION=us-east-1
EOF
    mv "$dir/env.tmp" "$dir/env"
}

case "$cmd" in
start) start ;;
stop) stop_all ;;
*) die "usage: $0 start|stop DIR" ;;
esac
