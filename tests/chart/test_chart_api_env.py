"""A real `vibexp serve` with the environment the chart renders for the API container: the settings parse, and
the MCP endpoint accepts the Host headers of the chart's Service and Ingress while still refusing others."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helmlib import Helm, find
from helpers.databases import sqlite_url
from helpers.servers import REPO, LiveServer, free_port
from vibexp.core.migrate import upgrade_async

pytestmark = pytest.mark.kube  # needs the helm binary of the test environment

INGRESS_HOST = "vibexp.example.com"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "chart-test", "version": "1"},
    },
}


def rendered_api_env(helm: Helm) -> dict[str, str]:
    """The API container's literal env values with the Ingress on (Secrets and production mode left to the test)."""
    values = {
        "api": {
            "ingress": {
                "enabled": True,
                "hosts": [{"host": INGRESS_HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
            }
        }
    }
    deployment = find(helm.template(values), "Deployment", "vibexp-api")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] != "VIBEXP_ENVIRONMENT"}


@pytest.fixture(scope="module")
def chart_api(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, int]]:
    workdir = tmp_path_factory.mktemp("chart-api")
    url = sqlite_url(workdir)
    asyncio.run(upgrade_async(url))
    env = rendered_api_env(helm)
    metrics_port = free_port()
    env["VIBEXP_METRICS_PORT"] = str(metrics_port)  # the chart's 9090 may be taken on this machine
    env["VIBEXP_METRICS_HOST"] = "127.0.0.1"
    cli_env = {"VIBEXP_DATABASE_URL": url, "VIBEXP_ENVIRONMENT": "test", "PATH": str(Path(sys.executable).parent)}
    subprocess.run([sys.executable, "-m", "vibexp.cli", "tenant", "create", "chart"], env=cli_env, check=True, cwd=REPO)
    key = subprocess.run(
        [sys.executable, "-m", "vibexp.cli", "key", "create", "--tenant", "chart", "--name", "mcp"],
        env=cli_env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = LiveServer(url, env=env).start(workdir)
    yield server, key, metrics_port
    server.stop()


def mcp_status(server: LiveServer, key: str, host: str) -> int:
    headers = {
        "Authorization": f"Bearer {key}",
        "Host": host,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    return httpx.post(f"{server.url}/mcp/v1/common", json=INITIALIZE, headers=headers, timeout=10).status_code


@pytest.mark.parametrize(
    "host",
    [
        "vibexp-api",
        "vibexp-api.vibexp",
        "vibexp-api.vibexp.svc:80",
        "vibexp-api.vibexp.svc.cluster.local",
        "vibexp-api.vibexp.svc.cluster.local:80",
        INGRESS_HOST,
        "localhost:8000",  # kubectl port-forward
    ],
)
def test_mcp_accepts_the_charts_host_names(chart_api: tuple[LiveServer, str, int], host: str) -> None:
    server, key, _ = chart_api
    assert mcp_status(server, key, host) == 200


def test_mcp_refuses_other_host_names(chart_api: tuple[LiveServer, str, int]) -> None:
    server, key, _ = chart_api
    assert mcp_status(server, key, "attacker.example.net") == 421
    assert mcp_status(server, key, "vibexp-api.other-namespace.svc") == 421


def test_metrics_only_on_the_metrics_port(chart_api: tuple[LiveServer, str, int]) -> None:
    server, _, metrics_port = chart_api
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).status_code == 200
