"""`vibexp serve` as a real subprocess on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import httpx

__all__ = ["LiveServer", "free_port"]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    #: Every process started and not yet stopped, so the suite can prove none outlives it (see tests/conftest.py).
    _running: ClassVar[set[subprocess.Popen[bytes]]] = set()

    def __init__(
        self,
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        #: Extra ``vibexp serve`` arguments (``("--workers", "2")``).
        self.serve_args = serve_args
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "VIBEXP_DATABASE_URL": database_url,
            "VIBEXP_ENVIRONMENT": "test",
            "VIBEXP_AUTO_MIGRATE": "false",
            # Every test's requests come from 127.0.0.1, and the registration limit holds across the processes on
            # the session's database for an hour: the suite's own registrations would add up. A test of the limit
            # sets its own.
            "VIBEXP_OAUTH_REGISTER_LIMIT": "1000",
            **(env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, log_dir: Path | None = None, timeout: float = 90.0) -> LiveServer:
        log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"vibexp-serve-{self.port}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "vibexp.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)),
                    *self.serve_args,
                ],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        LiveServer._running.add(self._proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()  # reaps it and forgets it
                raise RuntimeError(f"server exited early: {self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:  # slow on a busy machine
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.log()}")

    @property
    def pid(self) -> int:
        """The ``vibexp serve`` process (with ``--workers``, the supervisor of the worker processes)."""
        if self._proc is None:
            raise RuntimeError("server not started")
        return self._proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a graceful shutdown, which flushes usage) and wait."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        code = self._proc.returncode
        LiveServer._running.discard(self._proc)
        self._proc = None
        return code

    def kill(self) -> int | None:
        """SIGKILL (``kill -9``: no shutdown, nothing flushed) and reap it."""
        if self._proc is None:
            return None
        self._proc.kill()
        self._proc.wait()
        code = self._proc.returncode
        LiveServer._running.discard(self._proc)
        self._proc = None
        return code

    @classmethod
    def stop_leftovers(cls) -> list[str]:
        """Kill every server that was started and never stopped; describe each one."""
        leftovers = []
        for proc in list(cls._running):
            cls._running.discard(proc)
            if proc.poll() is None:  # one that exited by itself leaks nothing
                leftovers.append(f"pid {proc.pid}: {proc.args}")
                proc.kill()
                proc.wait()
        return leftovers

    def __enter__(self) -> LiveServer:
        # `with LiveServer(url).start(log_dir) as server` is fine too: never start a second process (it would leak
        # the first, which nothing would stop).
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
