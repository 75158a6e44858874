"""A real Prometheus server (Debian's ``prometheus``, 127.0.0.1 only, temporary data directory) scrapes a running
API under generated load; then every query of every API panel of the dashboard is evaluated through the
Prometheus HTTP API and must return data, and the alert rules load, evaluate and fire on what the load did.

The operator's panels are evaluated the same way against the real operator, in
``tests/operator/test_operator_dashboard_panels.py`` (it needs the kube-apiserver test environment).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from helpers.factories import TEST_ACTOR, Account, make_account
from helpers.prometheus import RULES, panel_queries, panels_without_data, start_prometheus
from helpers.servers import LiveServer, free_port
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys

pytestmark = pytest.mark.slow


async def accounts(database_url: str) -> tuple[Account, Account, str, Account, str]:
    """Two keys of a busy tenant (and a third that expires in 3 days), a tenant with a limit of 10/hour, a revoked key
    and a suspended tenant's key."""
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    try:
        busy = await make_account(factory)
        limited = await make_account(factory, rate_limit=10)
        async with session_scope(factory) as session:
            second = await keys.create_key(
                session, actor=TEST_ACTOR, tenant_id=busy.tenant.id, name="second tool", source="cli"
            )
            revoked = await keys.create_key(
                session, actor=TEST_ACTOR, tenant_id=busy.tenant.id, name="old", source="cli"
            )
            await keys.revoke_key(session, actor=TEST_ACTOR, key=revoked.record)
            # For "Keys expiring within 30 days" (the key policy sweep reports it when the server starts).
            await keys.create_key(
                session,
                actor=TEST_ACTOR,
                tenant_id=busy.tenant.id,
                name="expires soon",
                source="cli",
                permissions=keys.KeyPermissions(expires_at=utcnow() + timedelta(days=3)),
            )
        suspended = await make_account(factory, suspended=True)
    finally:
        await engine.dispose()
    busy_second = Account(tenant=busy.tenant, key=second.plaintext, key_id=second.record.id)
    return busy, busy_second, revoked.plaintext, limited, suspended.key


def generate_load(url: str, users: tuple[Account, Account, str, Account, str]) -> int:
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
            time.sleep(1)
    return sent


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_every_api_panel_returns_data(database_url: str, tmp_path: Path) -> None:
    users = await accounts(database_url)
    metrics_port = free_port()
    env = {"VIBEXP_METRICS_PORT": str(metrics_port), "VIBEXP_METRICS_HOST": "127.0.0.1"}
    server = LiveServer(database_url, env=env).start(log_dir=tmp_path)
    prometheus = None
    try:
        prometheus = start_prometheus(tmp_path, {"vibexp-api": metrics_port})
        load_started = time.time()
        assert generate_load(server.url, users) >= 100
        time.sleep(5)  # a few more scrapes and rule evaluations after the last request

        up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("max_over_time(up[1m])")}
        assert up == {"vibexp-api": "1"}, prometheus.log_path.read_text()

        queries = panel_queries(lambda expr: "vibexp_operator_" not in expr)
        assert len(queries) >= 15
        empty = panels_without_data(prometheus, queries, load_started)
        assert empty == [], "panels without data:\n" + "\n".join(empty)

        # What the panels show matches the traffic.
        busy, _, _, limited, _ = users
        last_used = prometheus.query(f'vibexp_api_key_last_used_timestamp_seconds{{key_id="{busy.key_id}"}}')
        assert abs(float(last_used[0]["value"][1]) - time.time()) < 30
        tools = {s["metric"]["tool_type"] for s in prometheus.query("vibexp_api_key_requests_total")}
        assert {"curl", "cursor"} <= tools
        # Per-key panels name the keys (vibexp_api_key_info joined on key_id), once each: the fallback for keys
        # without a name (no longer active) adds no second, nameless row for a named key.
        [by_key] = [q for q in queries if q.panel == "Requests by key"]
        rows = prometheus.query(by_key.expr)
        assert all("name" in s["metric"] for s in rows), rows
        assert len({s["metric"]["key_id"] for s in rows}) == len(rows)
        assert {"test key", "second tool"} <= {s["metric"]["name"] for s in rows}
        [expiring] = [q for q in queries if q.panel == "Keys expiring within 30 days"]
        soon = [s for s in prometheus.query(expiring.expr) if s["metric"]["tenant"] == busy.tenant.name]
        assert [s["metric"].get("name") for s in soon] == ["expires soon"], soon
        assert 2 * 86400 < float(soon[0]["value"][1]) <= 3 * 86400
        limited_hits = prometheus.query(f'vibexp_rate_limited_requests_total{{tenant="{limited.tenant.name}"}}')
        assert float(limited_hits[0]["value"][1]) > 0

        # The alert rules load and evaluate against the real series; the load fires two of them.
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
            assert prometheus.stop() is not None
        server.stop()
