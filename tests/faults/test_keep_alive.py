"""An idle keep-alive connection is closed by the client or proxy in front of `vibexp serve`, never by the server first.

A server that closes an idle connection at the moment its peer reuses it resets the request on the wire: a POST (an
MCP call, a dashboard form) then fails (`httpx.ReadError` in a client, a 502 from an ingress-nginx that does not
retry non-idempotent requests). uvicorn's default idle timeout is 5 s, the same as httpx's own keep-alive expiry, and
shorter than ingress-nginx's upstream keep-alive (60 s): `vibexp serve` keeps idle connections for longer than
either (``KEEP_ALIVE_SECONDS``), so the side that reuses a connection is always the side that retires it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.cli import KEEP_ALIVE_SECONDS

pytestmark = pytest.mark.slow

#: Idle time before the connection is reused: past uvicorn's and httpx's 5 s defaults, with a margin for a slow loop.
IDLE_SECONDS = 7.0
#: ingress-nginx's default `upstream-keepalive-timeout` (seconds), the proxy the chart's Ingress is usually served by.
INGRESS_NGINX_UPSTREAM_KEEPALIVE = 60
#: httpx's default `keepalive_expiry` (seconds): the suite's own client.
HTTPX_KEEPALIVE = httpx.Limits().keepalive_expiry


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url)
    start_servers([live], tmp_path_factory.mktemp("keep-alive-logs"))
    with live:
        yield live


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read one complete response (headers and a Content-Length body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection instead of answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of a response"
        body += chunk
    return head


def test_an_idle_connection_is_still_open_when_its_client_reuses_it(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        first = _exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(IDLE_SECONDS)
        sock.setblocking(False)
        try:
            closed = sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:  # nothing to read and no end of stream: still open
            closed = False
        sock.setblocking(True)
        assert not closed, f"the server dropped an idle connection after less than {IDLE_SECONDS} s"
        # A non-idempotent request on the reused connection gets an answer (401 here: no key), not a reset.
        body = b'{"content": "x"}'
        second = _exchange(
            sock,
            b"POST /api/v1/memories HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        assert second.startswith(b"HTTP/1.1 401"), second


def test_the_server_outlasts_the_idle_timeouts_of_its_clients_and_proxies() -> None:
    assert HTTPX_KEEPALIVE is not None and KEEP_ALIVE_SECONDS > HTTPX_KEEPALIVE
    assert KEEP_ALIVE_SECONDS > INGRESS_NGINX_UPSTREAM_KEEPALIVE
    assert KEEP_ALIVE_SECONDS > IDLE_SECONDS
