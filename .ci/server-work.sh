# shellcheck shell=bash
# Sourced by the steps that start a server of their own: a work directory
# for it and, on exit, the server stopped and the directory removed; on
# failure the server's log is printed first (it would go with the directory).
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
