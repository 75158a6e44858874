"""A real HTTP server on a free loopback port, in a thread, that records what it receives: a webhook receiver, and
(``GET``, over TLS with ``tls``: ``helpers.tls``) a server of OAuth client metadata documents.

Each request gets the next scripted answer (``Answer``: status, extra headers, body, delay before answering); when
the script runs out, the last answer repeats. ``verify`` checks a delivery's signature the way docs/webhooks.md tells
a receiver to (written here independently of the server's ``sign``).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
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
    body: bytes = b"ok"
    #: Send ``Content-Length``; without it the body ends when the connection closes (HTTP/1.0).
    length: bool = True


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connections when several senders connect at once


class Receiver:
    def __init__(self, *answers: Answer, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._answers = list(answers) or [Answer()]
        self._tls = tls
        self._lock = threading.Lock()
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    index = min(len(receiver.received), len(receiver._answers)) - 1
                    answer = receiver._answers[index]
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.length:
                        self.send_header("Content-Length", str(len(answer.body)))
                    else:
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the client hung up (a refused body, a timeout): nothing to answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", port), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers`` (a document that names this server's own URL, say)."""
        with self._lock:
            self._answers = list(answers) or [Answer()]
            self.received.clear()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
