"""A real Prometheus server (Debian's ``prometheus``, 127.0.0.1 only, temporary data directory) scrapes a running
API under generated load, plus the operator's metrics; then every query of every dashboard panel is evaluated
through the Prometheus HTTP API and must return data, and the alert rules load and evaluate.

The operator's metrics come from the operator's own ``OperatorMetrics`` (its registry and HTTP server), fed with
reconcile results by this test: running the real operator needs the kube-apiserver test environment, which the
operator's and the chart's tests use; here only the dashboard's view of those metric names is under test.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from helpers.factories import Account, make_account
from helpers.servers import REPO, LiveServer, free_port
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.operator.metrics import OperatorMetrics

pytestmark = pytest.mark.slow

DASHBOARD = REPO / "charts/vibexp/dashboards/vibexp-usage.json"
RULES = REPO / "charts/vibexp/rules/vibexp-alerts.yaml"
#: Grafana's variables as the test evaluates them: 2 s scrapes, so 30 s holds enough samples for rate().
VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$tenant": ".*", "${tenant}": ".*"}


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str, **params: Any) -> list[dict[str, Any]]:
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


@pytest.fixture
def operator_metrics_port() -> Iterator[tuple[OperatorMetrics, int]]:
    metrics = OperatorMetrics()
    port = free_port()
    metrics.serve("127.0.0.1", port)
    try:
        yield metrics, port
    finally:
        metrics.stop()


def start_prometheus(workdir: Path, targets: dict[str, int]) -> Prometheus:
    binary = shutil.which("prometheus")
    assert binary, "the Prometheus server is missing: run `make prometheus` (Debian's prometheus package)"
    config = {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
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
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                return prometheus
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def stop_prometheus(prometheus: Prometheus) -> None:
    prometheus.proc.terminate()
    try:
        prometheus.proc.wait(30)
    except subprocess.TimeoutExpired:
        prometheus.proc.kill()
        prometheus.proc.wait()


async def accounts(database_url: str) -> tuple[Account, Account, str, Account, str]:
    """Two keys of a busy tenant, a tenant with a limit of 10/hour, a revoked key and a suspended tenant's key."""
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    try:
        busy = await make_account(factory)
        limited = await make_account(factory, rate_limit=10)
        async with session_scope(factory) as session:
            second = await keys.create_key(session, tenant_id=busy.tenant.id, name="second tool", source="cli")
            revoked = await keys.create_key(session, tenant_id=busy.tenant.id, name="old", source="cli")
            await keys.revoke_key(session, key=revoked.record)
        suspended = await make_account(factory, suspended=True)
    finally:
        await engine.dispose()
    busy_second = Account(tenant=busy.tenant, key=second.plaintext, key_id=second.record.id)
    return busy, busy_second, revoked.plaintext, limited, suspended.key


def generate_load(url: str, users: tuple[Account, Account, str, Account, str], operator: OperatorMetrics) -> int:
    """12 rounds of mixed traffic a second apart (at most 30 s), on loopback only."""
    busy, busy_second, revoked, limited, suspended = users
    sent = 0
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, timeout=10) as http:
        for round_ in range(12):
            if time.monotonic() > deadline:
                break
            curl = {**busy.headers, "User-Agent": "curl/8.5.0"}
            created = http.post("/api/v1/prompts", json={"name": f"p{round_}", "content": "c"}, headers=curl)
            assert created.status_code == 201, created.text
            for _ in range(8):
                assert http.get(f"/api/v1/prompts/{created.json()['id']}", headers=curl).status_code == 200
            cursor = {**busy_second.headers, "User-Agent": "Cursor/0.42 (vscode 1.93)"}
            for _ in range(4):
                assert http.get("/api/v1/prompts", headers=cursor).status_code == 200
            assert http.get("/api/v1/prompts/missing", headers=cursor).status_code == 404
            for _ in range(3):  # 10 an hour: from the 4th round on, these are 429s
                assert http.get("/api/v1/prompts", headers=limited.headers).status_code in (200, 429)
            assert http.get("/api/v1/prompts").status_code == 401
            assert http.get("/api/v1/prompts", headers={"Authorization": "Bearer vib_" + "0" * 64}).status_code == 401
            assert http.get("/api/v1/prompts", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
            assert http.get("/api/v1/prompts", headers={"Authorization": f"Bearer {suspended}"}).status_code == 403
            sent += 20
            for resource, handler in (("apikeys", "reconcile"), ("vibexptenants", "reconcile")):
                operator.observe(resource, handler, "success", 0.02 + 0.01 * round_)
            if round_ % 4 == 0:
                operator.observe("apikeys", "reconcile", "temporary_error", 0.2)
            time.sleep(1)
    return sent


def panel_queries() -> list[tuple[str, str, str, bool]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, replacement in VARIABLES.items():
                expr = expr.replace(name, replacement)
            assert "$" not in expr, f"unknown variable in {panel['title']}: {expr}"
            queries.append((panel["title"], target["refId"], expr, bool(target.get("instant"))))
    return queries


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values: list[float] = []
    for series in result:
        points = series.get("values") or [series["value"]]
        values += [float(v) for _, v in points if math.isfinite(float(v))]
    return values


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_every_dashboard_panel_returns_data(
    database_url: str, tmp_path: Path, operator_metrics_port: tuple[OperatorMetrics, int]
) -> None:
    operator, operator_port = operator_metrics_port
    users = await accounts(database_url)
    metrics_port = free_port()
    env = {"VIBEXP_METRICS_PORT": str(metrics_port), "VIBEXP_METRICS_HOST": "127.0.0.1"}
    server = LiveServer(database_url, env=env).start(log_dir=tmp_path)
    prometheus = None
    try:
        prometheus = start_prometheus(tmp_path, {"vibexp-api": metrics_port, "vibexp-operator": operator_port})
        load_started = time.time()
        sent = generate_load(server.url, users, operator)
        assert sent >= 100
        time.sleep(5)  # a few more scrapes and rule evaluations after the last request

        up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("max_over_time(up[1m])")}
        assert up == {"vibexp-api": "1", "vibexp-operator": "1"}, prometheus.log_path.read_text()

        window = {"start": f"{load_started:.3f}", "end": f"{time.time():.3f}", "step": "2"}
        empty = []
        for title, ref, expr, instant in panel_queries():
            result = prometheus.query(expr) if instant else prometheus.query(expr, **window)
            if not finite_values(result):
                empty.append(f"{title} [{ref}]: {expr}")
        assert empty == [], "panels without data:\n" + "\n".join(empty)

        # What the panels show matches the traffic.
        busy, _, _, limited, _ = users
        last_used = prometheus.query(f'vibexp_api_key_last_used_timestamp_seconds{{key_id="{busy.key_id}"}}')
        assert abs(float(last_used[0]["value"][1]) - time.time()) < 30
        tools = {s["metric"]["tool_type"] for s in prometheus.query("vibexp_api_key_requests_total")}
        assert {"curl", "cursor"} <= tools
        limited_hits = prometheus.query(f'vibexp_rate_limited_requests_total{{tenant="{limited.tenant.name}"}}')
        assert float(limited_hits[0]["value"][1]) > 0

        # The alert rules load and evaluate against the real series; the 429s fire VibeXPTenantAtLimit.
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == len([r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]])
        assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
        firing = {
            (alert["labels"]["alertname"], alert["labels"].get("tenant"))
            for alert in prometheus.get("/api/v1/alerts")["alerts"]
            if alert["state"] == "firing"
        }
        assert ("VibeXPTenantAtLimit", limited.tenant.name) in firing
        assert ("VibeXPRetiredKeyUsed", None) in firing
    finally:
        if prometheus is not None:
            stop_prometheus(prometheus)
        server.stop()
    assert prometheus is not None and prometheus.proc.returncode is not None
