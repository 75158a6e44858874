"""A real HTTP server on a free loopback port, in a thread, that records what it receives: a webhook receiver.

Each request gets the next scripted answer (``Answer``: status, extra headers, delay before answering); when the
script runs out, the last answer repeats. ``verify`` checks a delivery's signature the way docs/webhooks.md tells
a receiver to (written here independently of the server's ``sign``).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["REPLAY_WINDOW", "Answer", "Received", "Receiver", "verify"]

#: Seconds a signature's timestamp may lie from now (docs/webhooks.md).
REPLAY_WINDOW = 300


def verify(secret: str, received: Received, *, now: float | None = None, window: int = REPLAY_WINDOW) -> bool:
    """Whether ``received`` carries ``X-VibeXP-Signature: t=<unix>,v1=<hex>`` over "<t>.<delivery id>.<body>" under
    ``secret``, with ``t`` within ``window`` seconds of ``now``."""
    fields = dict(
        part.split("=", 1) for part in received.headers.get("x-vibexp-signature", "").split(",") if "=" in part
    )
    if not fields.get("t", "").isdigit() or "v1" not in fields:
        return False
    timestamp = int(fields["t"])
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    delivery = received.headers.get("x-vibexp-delivery", "")
    expected = hmac.new(secret.encode(), f"{timestamp}.{delivery}.".encode() + received.body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), fields["v1"])


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connections when several senders connect at once


class Receiver:
    def __init__(self, *answers: Answer, port: int = 0) -> None:
        self._answers = list(answers) or [Answer()]
        self._lock = threading.Lock()
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    index = min(len(receiver.received), len(receiver._answers)) - 1
                    answer = receiver._answers[index]
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
