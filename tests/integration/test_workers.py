"""`vibexp serve --workers 2`: both workers serve, /metrics counts every worker's requests (Prometheus multiprocess
mode), a revocation reaches the other worker within a second, and a graceful stop loses no worker's usage."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.servers import LiveServer
from vibexp.core.keys.models import ApiKey

pytestmark = pytest.mark.slow

REQUESTS = 60


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    metrics_dir = tmp_path / "prometheus"
    server = LiveServer(
        database_url,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "VIBEXP_USAGE_FLUSH_INTERVAL": "0.1"},
        serve_args=("--workers", "2"),
    )
    server.start(tmp_path, timeout=120)
    try:
        # start() returns once one worker answers; the other may still be importing on a busy machine.
        deadline = time.monotonic() + 120
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        yield server, metrics_dir
    finally:
        server.stop()


def _fresh_client() -> httpx.AsyncClient:
    # A new connection per request, so the kernel spreads them over both workers' accept queues.
    return httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def _requests_counted(metrics: str, route: str) -> float:
    pattern = re.compile(r"^vibexp_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    return sum(float(v) for labels, v in pattern.findall(metrics) if f'route="{route}"' in labels)


async def test_two_workers_serve_and_metrics_count_both(
    two_workers: tuple[LiveServer, Path], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    server, metrics_dir = two_workers
    account = await make_account(db_factory)
    async with _fresh_client() as client:

        async def one() -> None:
            response = await client.get(f"{server.url}/api/v1/prompts", headers=account.headers)
            assert response.status_code == 200, response.text

        for _ in range(REQUESTS // 20):  # 20 at a time: while one worker is busy, the other accepts
            await asyncio.gather(*(one() for _ in range(20)))
        metrics = (await client.get(f"{server.url}/metrics")).text
    # Each worker writes its own files; both served requests, and any worker's /metrics adds them all up.
    workers = {m.group(1) for f in metrics_dir.glob("counter_*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}
    assert len(workers) == 2, f"expected samples from 2 worker processes, found files {sorted(workers)}"
    assert _requests_counted(metrics, "/api/v1/prompts") == REQUESTS

    assert server.stop() in (0, -15)  # graceful: every worker flushes its buffered usage
    async with db_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.request_count == REQUESTS


async def test_revocation_reaches_the_other_worker_within_one_second(
    two_workers: tuple[LiveServer, Path], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    server, _ = two_workers
    account = await make_account(db_factory)
    url = f"{server.url}/api/v1/prompts"
    async with _fresh_client() as client:
        for _ in range(20):  # warm both workers' key caches
            assert (await client.get(url, headers=account.headers)).status_code == 200
        revoked = await client.delete(f"{server.url}/api/v1/api-keys/{account.key_id}", headers=account.headers)
        assert revoked.status_code == 200
        started = time.monotonic()
        refused_in_a_row = 0
        while refused_in_a_row < 20:  # 20 fresh connections in a row refused: both workers know
            status = (await client.get(url, headers=account.headers)).status_code
            assert status in (200, 401)
            refused_in_a_row = refused_in_a_row + 1 if status == 401 else 0
            assert time.monotonic() - started < 1.0 or refused_in_a_row, "a worker accepts the revoked key after 1 s"
            await asyncio.sleep(0)
