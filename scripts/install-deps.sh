#!/bin/sh
# Installs the Debian 12 packages modelcat builds, runs and tests with.
# Idempotent: when every package is present it asks dpkg once and exits,
# which costs a few milliseconds. Run as root (or with sudo on PATH).
set -eu

PKGS="build-essential cmake pkg-config
libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3 libjwt-dev
libevent-dev libcurl4-openssl-dev libssl-dev
libcmocka-dev python3 python3-pytest python3-yaml curl openssl
libpq-dev postgresql-15 zlib1g-dev libhiredis-dev redis-server
clang libclang-rt-14-dev nginx-light prometheus nodejs"
# npm (for s3rver, the S3 test server): Debian's npm package, unless a
# nodejs that bundles npm (NodeSource) is installed already.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

# Extra groups, selected by the caller: "bench" adds the load tools.
for g in "$@"; do
    case "$g" in
    bench) PKGS="$PKGS wrk" ;;
    *) echo "install-deps: unknown group '$g'" >&2; exit 2 ;;
    esac
done

# One dpkg call; packages dpkg has never heard of print nothing, so the
# list of missing ones is "wanted minus installed".
installed=" $(dpkg-query -W -f='${db:Status-Status} ${Package}\n' $PKGS 2>/dev/null |
    awk '$1 == "installed" { printf "%s ", $2 }')"
missing=""
for p in $PKGS; do
    case "$installed" in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
missing=$(echo $missing)
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing $missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
