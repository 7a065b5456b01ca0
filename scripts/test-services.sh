#!/bin/sh
# Starts and stops the throw-away servers the test suite runs against:
#
#   test-services.sh start DIR   PostgreSQL 15 primary + streaming replica and
#                                a redis-server, all on free 127.0.0.1 ports,
#                                with their data, sockets and logs in DIR;
#                                writes DIR/env (KEY=VALUE lines) for the tests
#   test-services.sh stop DIR    stops all of them and removes DIR
#
# As root the PostgreSQL binaries run as the `postgres` user (runuser);
# otherwise as the caller. Only 127.0.0.1 and sockets in DIR are used: the
# system cluster (port 5432, /var/run/postgresql) is never touched.
# `start` on a DIR whose servers all answer does nothing; `stop` is safe to
# run twice and after a failed start. DIR/env appears only when everything
# is up, so its presence means "started".
set -eu

PGBIN=/usr/lib/postgresql/15/bin
MARK=.modelcat-test-services

die() { echo "test-services: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
cmd=$1
case "$2" in
/*) dir=$2 ;;
*) dir=$(pwd)/$2 ;;
esac
[ "$dir" != / ] || die "refusing DIR=/"

if [ "$(id -u)" -eq 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

# Kills pid only if it is still the program we started (name match on
# /proc/PID/comm), so a recycled pid is never hit.
kill_ours() {
    pid=$1 name=$2
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    [ -r "/proc/$pid/comm" ] || return 0
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
    "$name"*) kill "$pid" 2>/dev/null || true ;;
    *) return 0 ;;
    esac
    i=0
    while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
}

stop_pg() {
    data=$1
    [ -f "$data/postmaster.pid" ] || return 0
    as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate -w -t 20 stop >/dev/null 2>&1 && return 0
    kill_ours "$(head -n 1 "$data/postmaster.pid" 2>/dev/null)" postgres
}

stop_all() {
    [ -d "$dir" ] || return 0
    if [ ! -e "$dir/$MARK" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        die "$dir was not made by this script (no $MARK); not removing it"
    fi
    stop_pg "$dir/pg-replica"
    stop_pg "$dir/pg-primary"
    [ -f "$dir/redis.pid" ] && kill_ours "$(cat "$dir/redis.pid" 2>/dev/null)" redis-server
    rm -rf "$dir"
}

# Prints the tails of the logs after a failure, then cleans up.
fail() {
    echo "test-services: $*" >&2
    for f in "$dir"/*.log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -n 20 "$f" >&2
    done
    stop_all || true
    exit 1
}

running() {
    [ -f "$dir/env" ] || return 1
    . "$dir/env" || return 1
    as_pg "$PGBIN/pg_ctl" -D "$dir/pg-primary" status >/dev/null 2>&1 &&
        as_pg "$PGBIN/pg_ctl" -D "$dir/pg-replica" status >/dev/null 2>&1 &&
        [ "$(redis-cli -u "$MODELCAT_TEST_REDIS_URL" ping 2>/dev/null)" = PONG ]
}

# Three distinct free loopback ports (all bound at once, then released).
free_ports() {
    python3 - <<'EOF'
import socket
socks = []
while len(socks) < 3:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    if s.getsockname()[1] == 5432:
        continue
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

psql_at() { # port, then psql arguments; as the postgres superuser over DIR's socket
    port=$1; shift
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}

start_all() {
    if running; then
        echo "test-services: already running in $dir"
        return 0
    fi
    stop_all
    mkdir -p "$dir"
    : >"$dir/$MARK"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    set -- $(free_ports)
    pg_port=$1 replica_port=$2 redis_port=$3
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

    # Primary. C locale: text sorts by code point, as SQLite's BINARY does.
    as_pg "$PGBIN/initdb" -D "$dir/pg-primary" -U postgres -A trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || fail "initdb failed"
    cat >>"$dir/pg-primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 32MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 4
EOF
    cat >"$dir/pg-primary/pg_hba.conf" <<EOF
local all         all                trust
host  all         all  127.0.0.1/32  trust
host  replication all  127.0.0.1/32  trust
EOF
    as_pg "$PGBIN/pg_ctl" -D "$dir/pg-primary" -l "$dir/pg-primary.log" -w -t 30 start \
        >/dev/null || fail "the primary did not start"
    psql_at "$pg_port" -d postgres \
        -c "CREATE ROLE modelcat LOGIN CREATEDB PASSWORD '$password'" \
        -c "CREATE DATABASE modelcat OWNER modelcat" || fail "cannot create role/database"

    # Streaming replica.
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres \
        -D "$dir/pg-replica" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
        fail "pg_basebackup failed"
    echo "port = $replica_port" >>"$dir/pg-replica/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$dir/pg-replica" -l "$dir/pg-replica.log" -w -t 30 start \
        >/dev/null || fail "the replica did not start"
    [ "$(psql_at "$replica_port" -d postgres -Atc 'SELECT pg_is_in_recovery()')" = t ] ||
        fail "the replica is not in recovery"

    # Redis, no persistence.
    redis-server --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" ||
        fail "redis-server did not start"
    i=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "redis-server does not answer"
        sleep 0.05
    done

    cat >"$dir/env.tmp" <<EOF
MODELCAT_TEST_PG_URL=postgres://modelcat:$password@127.0.0.1:$pg_port/modelcat
MODELCAT_TEST_PG_REPLICA_URL=postgres://modelcat:$password@127.0.0.1:$replica_port/modelcat
MODELCAT_TEST_PG_ADMIN_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
MODELCAT_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
    mv "$dir/env.tmp" "$dir/env"
    echo "test-services: PostgreSQL on 127.0.0.1:$pg_port (replica :$replica_port)," \
        "redis on 127.0.0.1:$redis_port, env in $dir/env"
}

case "$cmd" in
start) start_all ;;
stop) stop_all ;;
*) die "usage: $0 start|stop DIR" ;;
esac
