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

# No settings of its own (the defaults).
# shellcheck disable=SC2119
start_server
AUTHGATE_URL="http://127.0.0.1:$port/graphql" AUTHGATE_OUTBOX="$work/data/outbox" node dist/main.js
