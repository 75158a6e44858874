"""The API exactly as the chart configures it: /metrics only on the metrics port, never on the Ingress-routed port.

The chart's Ingress routes every path of the Service's `http` port, so the chart sets VIBEXP_METRICS_ON_MAIN_PORT=false
and VIBEXP_METRICS_PORT (the Service's `metrics` port, which no Ingress path names). A real `vibexp serve` with the
environment the chart renders proves that the main port does not answer /metrics and the metrics port does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.databases import sqlite_url
from helpers.servers import LiveServer, free_port
from vibexp.core.migrate import upgrade_async


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("metrics-exposure"))
    asyncio.run(upgrade_async(url))
    return url


def serve(url: str, log_dir: Path, **env: str) -> LiveServer:
    return LiveServer(url, env=env).start(log_dir)


@pytest.fixture
def chart_configured_api(migrated_sqlite: str, tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    metrics_port = free_port()
    server = serve(
        migrated_sqlite,
        tmp_path,
        VIBEXP_METRICS_PORT=str(metrics_port),
        VIBEXP_METRICS_HOST="127.0.0.1",
        VIBEXP_METRICS_ON_MAIN_PORT="false",  # as templates/api-deployment.yaml sets it
    )
    yield server, metrics_port
    server.stop()


def test_main_port_does_not_serve_metrics_the_metrics_port_does(chart_configured_api: tuple[LiveServer, int]) -> None:
    server, metrics_port = chart_configured_api
    # Traffic first, so the metrics have samples with labels.
    assert httpx.get(f"{server.url}/api/v1/prompts", timeout=10).status_code == 401
    main = httpx.get(f"{server.url}/metrics", timeout=10)
    assert main.status_code == 404, main.text[:300]
    assert "vibexp_" not in main.text
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert 'vibexp_auth_failures_total{reason="missing"}' in scraped.text
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200  # the probes still work


def test_without_the_chart_setting_the_main_port_still_serves_metrics(migrated_sqlite: str, tmp_path: Path) -> None:
    """The default for `vibexp serve` on a laptop is unchanged: /metrics on the main port."""
    server = serve(migrated_sqlite, tmp_path)
    try:
        resp = httpx.get(f"{server.url}/metrics", timeout=10)
        assert resp.status_code == 200 and "vibexp_http_requests_total" in resp.text
    finally:
        server.stop()
