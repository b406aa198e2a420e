# shellcheck shell=bash
# Sourced by the steps that start a server of their own: a work directory
# for it, a free loopback port ($port), `start_server` and, on exit, the
# server stopped and the directory removed; on failure the server's log is
# printed first (it would go with the directory). Set $root first.
work="$(mktemp -d)"
server_pid=""
cleanup() {
  status=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  if [ "$status" -ne 0 ] && [ -s "$work/server.log" ]; then
    echo "---- server log ($0 failed with $status) ----" >&2
    tail -n 200 "$work/server.log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# Starts target/debug/authgate (or $AUTHGATE_BIN) on $port in $work, with
# the "NAME=value" arguments added to its environment, and waits until it
# is ready (10 s at most, else fails).
start_server() {
  (cd "$work" && exec env AUTHGATE_BIND="127.0.0.1:$port" AUTHGATE_LOG=warn "$@" \
    "${AUTHGATE_BIN:-$root/target/debug/authgate}" >"$work/server.log" 2>&1) &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FATAL: the server did not answer /readyz within 10 s" >&2
  return 1
}
