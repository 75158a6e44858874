"""`vibexp serve --workers 2` on Linux: each worker listens on a socket of its own (SO_REUSEPORT), so the kernel
spreads connections over the workers, and the port still belongs to one server (vibexp.cli.listeners).

uvicorn's shared socket let the worker that woke first take a whole burst of keep-alive connections: 16 of 16 in
about one run in eight on 2 cores, and two workers then served what one does.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest

from helpers.databases import sqlite_url
from helpers.servers import REPO, LiveServer, free_port
from vibexp.cli.listeners import ReusePortListener, balanced_listeners, reserve_port
from vibexp.core.migrate import upgrade

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not balanced_listeners(), reason="SO_REUSEPORT balancing is Linux's"),
]

CONNECTIONS = 64
_LISTEN, _ESTABLISHED = "0A", "01"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = sqlite_url(tmp_path_factory.mktemp("worker-sockets-db"))
    upgrade(url)
    server = LiveServer(url, serve_args=("--workers", "2"))
    server.start(tmp_path_factory.mktemp("worker-sockets-logs"), timeout=120)
    with server:
        # start() returns once one worker answers; the other may still be importing on a busy machine.
        deadline = time.monotonic() + 120
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        yield server


def _workers(parent: int) -> list[int]:
    """The worker processes (multiprocessing's spawned children; its resource tracker is a child too)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return sorted(int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if m := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(m.group(1))
    return inodes


def _tcp_table(port: int) -> list[tuple[str, int, str]]:
    """(state, remote port, inode) of every IPv4 socket whose local port is ``port``."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) == port:
            rows.append((state, int(remote.split(":")[1], 16), inode))
    return rows


def _open_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections, all opened before any is used (a burst, as a load balancer's pool opens),
    each then answered once so it is surely accepted."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    for conn in conns:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    for conn in conns:
        assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "every connection is served"
    return conns


def test_each_worker_listens_on_its_own_socket_and_connections_spread(two_workers: LiveServer) -> None:
    workers = _workers(two_workers.pid)
    assert len(workers) == 2, workers
    owned = {pid: _socket_inodes(pid) for pid in [two_workers.pid, *workers]}
    table = _tcp_table(two_workers.port)

    listening = [inode for state, _, inode in table if state == _LISTEN]
    holders = {inode: [pid for pid, inodes in owned.items() if inode in inodes] for inode in listening}
    # One listening socket per worker, each held by that worker alone (uvicorn's shared socket: one, held by all).
    assert sorted(pid for pids in holders.values() for pid in pids) == workers, holders

    conns = _open_connections(two_workers.port, CONNECTIONS)
    try:
        ours = {conn.getsockname()[1] for conn in conns}
        table = _tcp_table(two_workers.port)
        served = [inode for state, peer, inode in table if state == _ESTABLISHED and peer in ours]
        assert len(served) == CONNECTIONS
        held = {pid: _socket_inodes(pid) for pid in workers}
        per_worker = Counter(next(pid for pid in workers if inode in held[pid]) for inode in served)
        # The kernel hashes each connection to a socket: 64 split like coin flips. At least 16 each fails for an even
        # hash about once in 40,000 runs; uvicorn's shared socket often gave one worker nearly all of a burst.
        assert min(per_worker[pid] for pid in workers) >= 16, per_worker
    finally:
        for conn in conns:
            conn.close()


def _serve(port: int, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vibexp.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env={**os.environ, "VIBEXP_DATABASE_URL": database_url, "VIBEXP_AUTO_MIGRATE": "false"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_server_on_the_port_is_refused(two_workers: LiveServer, tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second server of the same user join the port and take half its connections."""
    second = _serve(two_workers.port, sqlite_url(tmp_path))
    assert second.returncode == 3, second.stderr
    assert "Address already in use" in second.stderr
    conns = _open_connections(two_workers.port, 4)  # the first server still has the port, and serves
    for conn in conns:
        conn.close()


def test_a_port_taken_by_another_program_is_refused(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        result = _serve(other.getsockname()[1], sqlite_url(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "Address already in use" in result.stderr


def test_the_parents_hold_refuses_every_other_bind_and_a_worker_binds_beside_it() -> None:
    port = free_port()
    holder = reserve_port("127.0.0.1", port)
    try:
        with pytest.raises(OSError, match="in use"):
            reserve_port("127.0.0.1", port)  # another `vibexp serve`
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            plain.bind(("127.0.0.1", port))  # any other program
        # What a worker gets in place of the parent's socket: spawn pickles it, and unpickling binds the worker's own.
        with _in_worker(ReusePortListener("127.0.0.1", port)) as worker_socket:
            assert worker_socket.getsockname() == ("127.0.0.1", port)
            assert worker_socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        holder.close()
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", port))  # the hold ends with the server


def test_port_zero_is_resolved_once_for_every_worker() -> None:
    with reserve_port("127.0.0.1", 0) as holder:
        port = holder.getsockname()[1]
        assert port != 0
        with _in_worker(ReusePortListener("127.0.0.1", port)) as worker_socket:
            assert worker_socket.getsockname()[1] == port


def _in_worker(listener: ReusePortListener) -> socket.socket:
    """What a worker unpickles: uvicorn's workers are spawned, and spawn pickles their arguments."""
    result = pickle.loads(ForkingPickler.dumps(listener))
    assert isinstance(result, socket.socket)
    return result
