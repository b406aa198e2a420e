#!/usr/bin/env bash
# The Node recipe (examples/node-jose, npm `jose`) against a live server:
# target/debug/authgate (built by .ci/run), or $AUTHGATE_BIN. A token from
# authgate verifies there; one of a session that signed out is refused
# through the revocation feed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=.ci/server-work.sh
. .ci/server-work.sh

cd examples/node-jose
# --no-audit: see .ci/typescript-client.sh (the lockfile pins the version).
npm ci --no-audit --no-fund --loglevel=error

audience="https://api.example.com"
service_key="ci-node-jose-service-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_server "AUTHGATE_PUBLIC_URL=http://127.0.0.1:$port" "AUTHGATE_JWT_AUDIENCES=$audience" \
  "AUTHGATE_SERVICE_KEYS=$service_key"
AUTHGATE_URL="http://127.0.0.1:$port" AUDIENCE="$audience" AUTHGATE_SERVICE_KEY="$service_key" node check.mjs
