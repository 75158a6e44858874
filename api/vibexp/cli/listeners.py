"""``vibexp serve --workers N``: each worker listens on a socket of its own, and the kernel spreads the connections.

uvicorn's ``--workers`` binds one socket in the parent and hands it to every worker. Every worker waits on it; the
one that runs first accepts every connection waiting. A burst of keep-alive connections (a load balancer's pool, a
benchmark's 16) then lands mostly or wholly on one worker and stays there: measured on 2 cores, 16 connections
split 16/0 in about one run in eight, and two workers then serve what one does.

So on Linux each worker binds its own socket to the address with ``SO_REUSEPORT``, and the kernel picks a socket
for each new connection by a hash of its addresses: an even split on average, whichever worker is busy.

A port shared with ``SO_REUSEPORT`` may be joined by any other process of the same user that asks for it, which
would silently split one server's traffic with another's (``make run`` started twice). So the parent first binds
the address without it, as a one-worker server does: a port in use is refused there ("Address already in use",
exit 3, as uvicorn refuses it). It then keeps a socket bound with ``SO_REUSEPORT``, never listening, for as long
as it runs: every later bind without ``SO_REUSEPORT`` (another ``vibexp serve``'s check included) is refused.

Elsewhere (no ``SO_REUSEPORT`` balancing: macOS, Windows) ``vibexp serve`` keeps uvicorn's shared socket.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

__all__ = ["ReusePortListener", "balanced_listeners", "bind_reuse_port", "reserve_port"]


def balanced_listeners() -> bool:
    """Whether this system spreads connections over ``SO_REUSEPORT`` sockets (Linux does, since 3.9)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound(host: str, port: int, *options: int) -> socket.socket:
    """A TCP socket with these ``SOL_SOCKET`` options set, bound to ``host:port`` (an IPv6 literal has a colon, as
    uvicorn decides); closed again if the bind fails."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        for option in options:
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """The parent's hold on ``host:port``: raises ``OSError`` (``EADDRINUSE``) if anything has the port, else returns
    a socket bound with ``SO_REUSEPORT`` that never listens (``port`` 0: the kernel's choice, read it from the
    socket). Close it when the workers are gone."""
    if port:
        _bound(host, port, socket.SO_REUSEADDR).close()  # as uvicorn binds: a TIME_WAIT connection owns no port
    return _bound(host, port, socket.SO_REUSEPORT)  # not SO_REUSEADDR: no one may bind beside it


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A worker's own socket on the address (bound, not yet listening: uvicorn listens with its backlog)."""
    return _bound(host, port, socket.SO_REUSEADDR, socket.SO_REUSEPORT)


class ReusePortListener:
    """What the parent hands each worker in place of a socket: unpickled in the worker (uvicorn starts workers with
    ``spawn``, which pickles their sockets), it becomes that worker's own :func:`bind_reuse_port` socket. A worker
    uvicorn restarts binds a new one the same way."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return bind_reuse_port, (self.host, self.port)
