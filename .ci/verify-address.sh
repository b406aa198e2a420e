#!/usr/bin/env bash
# Proves an address as its owner would: waits (at most 10 s) for the
# verification mail in a development server's outbox, and follows its link
# with verifyEmail. Usage: verify-address.sh OUTBOX EMAIL GRAPHQL_URL
set -euo pipefail
outbox="$1" email="$2" url="$3"
python3 - "$outbox" "$email" "$url" <<'PY'
import email, json, pathlib, re, sys, time, urllib.request
outbox, to, url = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
token = None
for _ in range(100):
    for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes())
        if message["To"] != to:
            continue
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                found = re.search(r"verify-email\?token=([A-Za-z0-9_-]+)", part.get_payload(decode=True).decode())
                token = found and found.group(1)
        if token:
            break
    if token:
        break
    time.sleep(0.1)
if not token:
    sys.exit(f"no verification mail to {to} in {outbox}")
body = json.dumps({"query": "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }", "variables": {"t": token}})
request = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
answer = json.load(urllib.request.urlopen(request))
if answer.get("data", {}).get("verifyEmail", {}).get("emailVerified") is not True:
    sys.exit(f"verifyEmail failed: {answer}")
PY
