#!/usr/bin/env bash
# The typed client example, end to end: npm ci, codegen from schema.graphql
# and the contract's operations, tsc, then the program against a fresh
# server: target/debug/authgate (built by .ci/run), or $AUTHGATE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=.ci/server-work.sh
. .ci/server-work.sh

cd examples/typescript-client
# --no-audit: the registry this machine reaches answers the audit endpoint
# with 405 (checked 2026-12-06: `npm audit` fails with "audit endpoint
# returned an error"); the lockfile pins every version instead.
npm ci --no-audit --no-fund --loglevel=error
npm run --silent codegen
npm run --silent typecheck
npm run --silent build

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$work" && AUTHGATE_BIND="127.0.0.1:$port" AUTHGATE_LOG=warn exec "${AUTHGATE_BIN:-$root/target/debug/authgate}" >"$work/server.log" 2>&1) &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
AUTHGATE_URL="http://127.0.0.1:$port/graphql" AUTHGATE_OUTBOX="$work/data/outbox" node dist/main.js
