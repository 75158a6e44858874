"""A private PostgreSQL cluster for fault tests: ``initdb`` into a temporary directory, its own loopback port.

Tests that stop the database use this one, never the machine's shared cluster. It runs as the ``postgres`` system
user (PostgreSQL refuses to run as root) via ``su``, or directly when the tests are not root. ``remove()`` stops it
(immediate mode) and deletes the directory; it is safe to call twice.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from helpers.servers import free_port

__all__ = ["PG_BIN", "PrivatePostgres"]

PG_BIN = Path(os.environ.get("VIBEXP_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vibexp-faults-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/vibexp"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = " ".join(shlex.quote(a) for a in args)
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", command] if os.geteuid() == 0 else ["/bin/sh", "-c", command]
        subprocess.run(argv, check=True, timeout=timeout, capture_output=True)

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.dir, postgres.pw_uid, postgres.pw_gid)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._initialised = True
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    async def create_database(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database="postgres")
        try:
            await conn.execute("CREATE DATABASE vibexp")
        finally:
            await conn.close()

    def remove(self) -> None:
        if self._initialised and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
