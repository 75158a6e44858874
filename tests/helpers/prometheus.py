"""A real Prometheus server for tests (Debian's ``prometheus``; ``make prometheus`` installs it): listens on
127.0.0.1 only, keeps its data in the test's temporary directory, and is stopped by the caller. Plus the queries
of the Grafana dashboard, with Grafana's variables filled in, to evaluate through its HTTP API."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from helpers.servers import REPO, free_port

__all__ = [
    "DASHBOARD",
    "RULES",
    "SCRAPE_INTERVAL",
    "PanelQuery",
    "Prometheus",
    "finite_values",
    "panel_queries",
    "panels_without_data",
    "start_prometheus",
]

DASHBOARD = REPO / "charts/vibexp/dashboards/vibexp-usage.json"
RULES = REPO / "charts/vibexp/rules/vibexp-alerts.yaml"
SCRAPE_INTERVAL = 2
#: Grafana's variables as the tests evaluate them: 2 s scrapes, so 30 s holds enough samples for rate().
VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "${tenant}": ".*", "$tenant": ".*"}


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str
    instant: bool


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str, **params: str) -> list[dict[str, Any]]:
        """An instant query, or a range query when ``start``/``end``/``step`` are given."""
        path = "/api/v1/query_range" if "start" in params else "/api/v1/query"
        response = httpx.get(f"{self.url}{path}", params={"query": expr, **params}, timeout=30)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def wait_for(self, expr: str, what: str, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {expr}"
            time.sleep(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_prometheus(workdir: Path, targets: dict[str, int], timeout: float = 60) -> Prometheus:
    """Scrape ``127.0.0.1:<port>`` of each job every 2 s and evaluate the chart's alert rules."""
    binary = shutil.which("prometheus")
    assert binary, "the Prometheus server is missing: run `make prometheus` (Debian's prometheus package)"
    interval = f"{SCRAPE_INTERVAL}s"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]} for job, port in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                return prometheus
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            prometheus.stop()
            raise AssertionError(f"prometheus not ready: {log_path.read_text()}")
        time.sleep(0.2)


def panel_queries(select: Callable[[str], bool] = lambda expr: True) -> list[PanelQuery]:
    """Every target of every dashboard panel whose expression ``select`` accepts, variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, replacement in VARIABLES.items():
                expr = expr.replace(name, replacement)
            assert "$" not in expr, f"unknown variable in {panel['title']}: {expr}"
            if select(expr):
                queries.append(PanelQuery(panel["title"], target["refId"], expr, bool(target.get("instant"))))
    return queries


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """The finite sample values of an instant or range query result (NaN from empty histograms excluded)."""
    values: list[float] = []
    for series in result:
        points = series.get("values") or [series["value"]]
        values += [float(v) for _, v in points if math.isfinite(float(v))]
    return values


def panels_without_data(prometheus: Prometheus, queries: list[PanelQuery], start: float) -> list[str]:
    """The queries that return no finite value: instant ones now, range ones (like Grafana) since ``start``."""
    window = {"start": f"{start:.3f}", "end": f"{time.time():.3f}", "step": str(SCRAPE_INTERVAL)}
    empty = []
    for q in queries:
        result = prometheus.query(q.expr) if q.instant else prometheus.query(q.expr, **window)
        if not finite_values(result):
            empty.append(f"{q.panel} [{q.ref}]: {q.expr}")
    return empty
