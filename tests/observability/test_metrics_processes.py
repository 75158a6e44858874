"""Metrics across real processes: the separate metrics port of ``vibexp serve``, a metrics port that is taken, and
two uvicorn workers sharing their samples through ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.factories import TEST_ACTOR, Account, make_account
from helpers.servers import REPO, LiveServer, free_port
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys

pytestmark = pytest.mark.slow

#: The metrics port does not depend on the database: one backend is enough there (the exposition tests run both).
on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
#: Several workers per pod is a PostgreSQL deployment.
on_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def new_account(database_url: str) -> Account:
    engine = create_engine(database_url)
    try:
        return await make_account(create_session_factory(engine))
    finally:
        await engine.dispose()


def key_requests(text: str, key_id: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vibexp_api_key_requests_total" and sample.labels.get("key_id") == key_id:
                total += sample.value
    return total


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@on_sqlite
async def test_metrics_port_serves_the_same_metrics(database_url: str, tmp_path: Path) -> None:
    account = await new_account(database_url)
    port = free_port()
    env = {"VIBEXP_METRICS_PORT": str(port), "VIBEXP_METRICS_HOST": "127.0.0.1"}
    server = LiveServer(database_url, env=env).start(log_dir=tmp_path)
    try:
        assert httpx.get(f"{server.url}/api/v1/prompts", headers=account.headers).status_code == 200
        wait_for(lambda: key_requests(httpx.get(f"http://127.0.0.1:{port}/metrics").text, account.key_id) == 1)
        on_port = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert on_port.status_code == 200
        assert on_port.headers["content-type"].startswith("text/plain")
        assert key_requests(httpx.get(f"{server.url}/metrics").text, account.key_id) == 1
    finally:
        server.stop()
    # Stopped with the server: nothing listens there any more (SO_REUSEADDR only skips TIME_WAIT connections).
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


@on_sqlite
async def test_taken_metrics_port_does_not_stop_the_api(database_url: str, tmp_path: Path) -> None:
    account = await new_account(database_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"VIBEXP_METRICS_PORT": str(port), "VIBEXP_METRICS_HOST": "127.0.0.1"}
        server = LiveServer(database_url, env=env).start(log_dir=tmp_path)
        try:
            assert httpx.get(f"{server.url}/api/v1/prompts", headers=account.headers).status_code == 200
            wait_for(lambda: key_requests(httpx.get(f"{server.url}/metrics").text, account.key_id) == 1)
        finally:
            server.stop()
        # One plain line per record (no terminal-width wrapping), named by level and logger.
        line = f"WARNING vibexp.api.metrics: metrics port 127.0.0.1:{port} not served by this process"
        assert line in server.log()


@on_sqlite
async def test_taken_metrics_port_is_fatal_when_the_main_port_serves_no_metrics(
    database_url: str, tmp_path: Path
) -> None:
    """As the chart runs it (VIBEXP_METRICS_ON_MAIN_PORT=false), a process without a metrics port would be blind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "VIBEXP_METRICS_PORT": str(port),
            "VIBEXP_METRICS_HOST": "127.0.0.1",
            "VIBEXP_METRICS_ON_MAIN_PORT": "false",
        }
        server = LiveServer(database_url, env=env)
        with pytest.raises(RuntimeError, match="server exited early"):
            server.start(log_dir=tmp_path)
        assert f"cannot serve metrics on 127.0.0.1:{port}" in server.log()


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """``uvicorn --workers 2`` in multiprocess mode on loopback; yields (url, metrics port, multiprocess dir)."""
    port, metrics_port = free_port(), free_port()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    env = {
        **os.environ,
        "VIBEXP_DATABASE_URL": database_url,
        "VIBEXP_ENVIRONMENT": "test",
        "VIBEXP_AUTO_MIGRATE": "false",
        "VIBEXP_METRICS_PORT": str(metrics_port),
        "VIBEXP_METRICS_HOST": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "VIBEXP_KEY_POLICY_INTERVAL": "0.2",  # the key-expiry gauge is refreshed by the sweep
    }
    log = (tmp_path / "uvicorn.log").open("wb")
    command = [sys.executable, "-m", "uvicorn", "--factory", "vibexp.api.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "workers did not become ready"
            time.sleep(0.2)
        yield url, metrics_port, multiproc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@on_postgres
async def test_two_workers_report_the_same_totals(database_url: str, two_workers: tuple[str, int, Path]) -> None:
    url, metrics_port, multiproc = two_workers
    account = await new_account(database_url)
    requests = 40
    for _ in range(requests):  # a new connection each time, so both workers take some
        response = httpx.get(f"{url}/api/v1/prompts", headers={**account.headers, "Connection": "close"})
        assert response.status_code == 200

    wait_for(lambda: key_requests(httpx.get(f"{url}/metrics").text, account.key_id) == requests)
    for _ in range(6):  # whichever worker answers, it reports both workers' samples
        assert key_requests(httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text, account.key_id) == (
            requests
        )
    assert key_requests(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text, account.key_id) == requests
    writers = {path.stem.rsplit("_", 1)[-1] for path in multiproc.glob("counter_*.db")}
    assert len(writers) >= 2, f"only {writers} wrote counters: the requests did not reach both workers"


def expiry_samples(text: str, key_id: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vibexp_api_key_expiry_timestamp_seconds" and sample.labels.get("key_id") == key_id
    ]


@on_postgres
async def test_every_worker_reports_each_key_expiry_once(database_url: str, two_workers: tuple[str, int, Path]) -> None:
    """The expiry gauge comes from each worker's own sweep of the database, not from the multiprocess files: any
    worker answers with every key, once."""
    url, metrics_port, _ = two_workers
    engine = create_engine(database_url)
    expires_at = utcnow() + timedelta(days=5)
    try:
        factory = create_session_factory(engine)
        account = await make_account(factory)
        async with session_scope(factory) as session:
            new = await keys.create_key(
                session,
                actor=TEST_ACTOR,
                tenant_id=account.tenant.id,
                name="expiring",
                permissions=keys.KeyPermissions(expires_at=expires_at),
            )
    finally:
        await engine.dispose()
    key_id = new.record.id
    wait_for(lambda: expiry_samples(httpx.get(f"{url}/metrics").text, key_id) != [])
    time.sleep(0.5)  # both workers have swept since
    for _ in range(6):
        text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text
        assert expiry_samples(text, key_id) == [expires_at.timestamp()]
    assert expiry_samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text, key_id) == [
        expires_at.timestamp()
    ]
    assert expiry_samples(text, account.key_id) == []  # no expiry, no series
