"""A webhook receiver for the tests: every delivery is verified with the
Standard Webhooks reference library (PyPI `standardwebhooks`), not with
authgate's own code. Prints its port on the first line of stdout, then
serves until stdin closes (the test ends).

POST /hook         a delivery: verified with --secret (and --old-secret
                   when given, which must verify too); answered as the
                   current mode says.
POST /mode         body: ok | fail | stall | gone | redirect | retry-after
POST /secrets      body: the secrets to verify with, space-separated
GET  /deliveries   JSON list: {id, type, verified, status, data} per attempt
GET  /landed       a plain 200 (a redirect's target: counts the visits)
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

secrets = []
lock = threading.Lock()
state = {"mode": "ok", "attempts": [], "landed": 0}
release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/deliveries":
            with lock:
                body = json.dumps(state["attempts"]).encode()
            return self.answer(200, body, [("content-type", "application/json")])
        if self.path == "/landed":
            with lock:
                state["landed"] += 1
            return self.answer(200)
        if self.path == "/landed-count":
            with lock:
                return self.answer(200, str(state["landed"]).encode())
        self.answer(404)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path == "/secrets":
            with lock:
                secrets[:] = body.decode().split()
            return self.answer(200)
        if self.path == "/mode":
            with lock:
                state["mode"] = body.decode().strip()
            if state["mode"] != "stall":
                release.set()
            else:
                release.clear()
            return self.answer(200)
        if self.path != "/hook":
            return self.answer(404)
        headers = {k: v for k, v in self.headers.items()}
        with lock:
            current = list(secrets)
        verified = bool(current)
        payload = None
        for secret in current:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                verified = False
        with lock:
            mode = state["mode"]
            state["attempts"].append(
                {
                    "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                    "signature": headers.get("webhook-signature") or headers.get("Webhook-Signature"),
                    "verified": verified,
                    "type": (payload or {}).get("type"),
                    "data": (payload or {}).get("data"),
                    "mode": mode,
                }
            )
        if mode == "stall":
            release.wait(60)
            return self.answer(200)
        if mode == "fail":
            return self.answer(500, b"not now")
        if mode == "retry-after":
            return self.answer(429, b"", [("retry-after", "120")])
        if mode == "gone":
            return self.answer(410)
        if mode == "redirect":
            port = self.server.server_address[1]
            return self.answer(307, b"", [("location", f"http://127.0.0.1:{port}/landed")])
        self.answer(204)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A sender that went away mid-answer (a server killed by a test).
        pass


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
release.set()
