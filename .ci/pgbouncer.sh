#!/usr/bin/env bash
# PgBouncer in transaction mode (what Neon's `-pooler` endpoints are) on
# 127.0.0.1:6499, in front of the local PostgreSQL on 5432. Idempotent;
# prints the URL for TEST_PGBOUNCER_URL.
#
# Why not simply `apt-get install pgbouncer`: Debian 12 ships PgBouncer 1.18,
# which cannot carry the extended query protocol in transaction mode
# (sqlx, under SeaORM, parses and binds in two round trips, and 1.18 may
# hand the second to another server connection). PgBouncer >= 1.21 tracks
# prepared statements (max_prepared_statements), as Neon's pooler does.
# So: use the Debian package when it is new enough, else build Debian 13's
# PgBouncer 1.24.1 from its source package (checksum pinned) once, cached.
set -euo pipefail

port=6499
version=1.24.1
sha256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
cache="${AUTHGATE_CI_CACHE:-$HOME/.cache/authgate-ci}"
run=/tmp/authgate-pgbouncer
# PgBouncer refuses to run as root.
as_user=postgres

new_enough() { # a pgbouncer binary whose version is >= 1.21
  local v
  v="$("$1" --version 2>/dev/null | awk 'NR==1 {print $2}')" || return 1
  [ -n "$v" ] && [ "$(printf '%s\n1.21\n' "$v" | sort -V | head -n1)" = "1.21" ]
}

bin=""
for candidate in "$(command -v pgbouncer || true)" /usr/sbin/pgbouncer "$cache/pgbouncer-$version/pgbouncer"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && new_enough "$candidate"; then bin="$candidate"; break; fi
done

if [ -z "$bin" ]; then
  candidate="$(apt-cache policy pgbouncer 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [ -n "$candidate" ] && [ "$(printf '%s\n1.21\n' "$candidate" | sort -V | head -n1)" = "1.21" ]; then
    echo "installing PgBouncer $candidate from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >&2
    bin=/usr/sbin/pgbouncer
  fi
fi

if [ -z "$bin" ]; then
  echo "building PgBouncer $version from Debian's source package (once, cached in $cache)" >&2
  pkg-config --exists libevent || DEBIAN_FRONTEND=noninteractive apt-get install -y -q libevent-dev libssl-dev pkgconf >&2
  mkdir -p "$cache"
  tarball="$cache/pgbouncer_$version.orig.tar.gz"
  [ -s "$tarball" ] || curl -fsSL --retry 3 -o "$tarball" \
    "http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_$version.orig.tar.gz"
  echo "$sha256  $tarball" | sha256sum -c --quiet -
  rm -rf "$cache/pgbouncer-$version"
  tar -C "$cache" -xzf "$tarball"
  (cd "$cache/pgbouncer-$version" && ./configure --without-cares >/dev/null && make -j2 >/dev/null)
  bin="$cache/pgbouncer-$version/pgbouncer"
  new_enough "$bin"
fi

# A fresh configuration and process every time: the settings are part of the test.
if [ -s "$run/pgbouncer.pid" ]; then kill "$(cat "$run/pgbouncer.pid")" 2>/dev/null || true; sleep 0.5; fi
rm -rf "$run" && mkdir -p "$run"
cp "$bin" "$run/pgbouncer"
printf '"postgres" ""\n' >"$run/users.txt"
cat >"$run/pgbouncer.ini" <<INI
[databases]
; any database name is passed through to the local server
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
admin_users = postgres
auth_file = $run/users.txt
pool_mode = transaction
; Neon's pooler: prepared statements tracked across server connections
max_prepared_statements = 200
; few server connections per database, so clients really do share them
default_pool_size = 3
max_client_conn = 1000
; sqlx sends it at start-up; Neon's pooler ignores it too
ignore_startup_parameters = extra_float_digits
logfile = $run/pgbouncer.log
pidfile = $run/pgbouncer.pid
INI
chown -R "$as_user" "$run"
runuser -u "$as_user" -- "$run/pgbouncer" -d "$run/pgbouncer.ini"
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.3; done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "FATAL: PgBouncer did not start (see $run/pgbouncer.log)" >&2; exit 1; }
mode="$(psql -h 127.0.0.1 -p "$port" -U postgres -d pgbouncer -tAc 'SHOW CONFIG' | awk -F'|' '$1 == "pool_mode" {print $2}')"
[ "$mode" = "transaction" ] || { echo "FATAL: PgBouncer is not in transaction mode ($mode)" >&2; exit 1; }
echo "postgres://postgres@127.0.0.1:$port/postgres?pgbouncer=true"
