#!/usr/bin/env bash
# GraphiQL and passkeys tested in a real browser: Debian's Chromium
# (installed if missing) driven by playwright-core. GraphiQL with the default
# configuration: its scripts come from the binary, and the browser may reach
# nothing but the server (every other host fails to resolve and any other
# request fails the test). Passkeys with Chromium's virtual authenticator on
# a page of the server's origin at http://localhost (AUTHGATE_PUBLIC_URL, so
# it is an allowed WebAuthn origin; the relying party is `localhost`).
# Runs target/debug/authgate (built by .ci/run), or $AUTHGATE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
if [ ! -x /usr/bin/chromium ]; then
  apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi
# shellcheck source=.ci/server-work.sh
. .ci/server-work.sh

cd tests/browser
# --no-audit: the registry this machine reaches answers the audit endpoint
# with 405 (checked 2026-12-06: `npm audit` fails with "audit endpoint
# returned an error"); the lockfile pins every version instead.
npm ci --no-audit --no-fund --loglevel=error
start_server "AUTHGATE_PUBLIC_URL=http://localhost:$port"
email="graphiql-$RANDOM@example.com"
token="$(curl -fsS "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
  -d "{\"query\":\"mutation(\$i: RegisterInput!) { register(input: \$i) { token } }\",\"variables\":{\"i\":{\"email\":\"$email\",\"password\":\"browsers render the playground too\"}}}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["register"]["token"])')"
AUTHGATE_URL="http://127.0.0.1:$port" AUTHGATE_TOKEN="$token" AUTHGATE_EMAIL="$email" SCREENSHOT="${SCREENSHOT:-}" node graphiql.mjs
email="passkey-$RANDOM@example.com"
token="$(curl -fsS "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
  -d "{\"query\":\"mutation(\$i: RegisterInput!) { register(input: \$i) { token } }\",\"variables\":{\"i\":{\"email\":\"$email\",\"password\":\"browsers keep secret keys too\"}}}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["register"]["token"])')"
# Only a proved address may add a passkey: follow the mailed link first.
bash "$root/.ci/verify-address.sh" "$work/data/outbox" "$email" "http://127.0.0.1:$port/graphql"
AUTHGATE_URL="http://localhost:$port" AUTHGATE_TOKEN="$token" AUTHGATE_EMAIL="$email" node passkeys.mjs
