"""A complete alert-webhook receiver to start before you point a tenant at it (README "Alerts").

    export VIBEXP_WEBHOOK_SECRET=...   # the secret you give `vibexp tenant update --alert-webhook-secret`
    python docs/examples/webhook_receiver.py [PORT]   # listens on 127.0.0.1:PORT (default 9000)

It checks each delivery's signature over the raw body as docs/webhooks.md describes (time, delivery id, body;
a 5-minute replay window; a delivery id seen before is acknowledged and dropped), prints the alert on one line and
answers 204; a bad signature is 401 and printed as refused. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WINDOW = 300  # seconds a signature's timestamp may lie from this machine's clock


def verified(secret: str, body: bytes, signature: str, delivery_id: str, window: int = WINDOW) -> bool:
    fields = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
    if not fields.get("t", "").isdigit() or "v1" not in fields:
        return False
    if abs(time.time() - int(fields["t"])) > window:
        return False  # outside the replay window
    signed = f"{fields['t']}.{delivery_id}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


class Receiver(BaseHTTPRequestHandler):
    secret = ""
    seen: dict[str, float] = {}  # delivery id -> when it was handled, kept for the replay window

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        delivery = self.headers.get("X-VibeXP-Delivery", "")
        if not verified(self.secret, body, self.headers.get("X-VibeXP-Signature", ""), delivery):
            print(f"refused: bad or stale signature on delivery {delivery!r}", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        now = time.time()
        for old in [d for d, at in self.seen.items() if now - at > WINDOW]:
            del self.seen[old]
        if delivery not in self.seen:  # a retry of a delivery already handled is acknowledged, not repeated
            self.seen[delivery] = now
            alert = json.loads(body)
            print(
                f"alert {alert['kind']} key={alert['key_id']} at={alert['at']} details={alert['details']}", flush=True
            )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # one line per alert is enough
        pass


def main() -> None:
    secret = os.environ.get("VIBEXP_WEBHOOK_SECRET", "")
    if not secret:
        sys.exit("error: set VIBEXP_WEBHOOK_SECRET to the tenant's alert webhook secret")
    Receiver.secret = secret
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on http://127.0.0.1:{port}/vibexp-alerts", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
