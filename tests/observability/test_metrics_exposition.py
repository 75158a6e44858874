"""``/metrics`` after real requests through the app (SQLite and PostgreSQL): what each metric says, and what it
must never say (keys, hashes, raw paths, unbounded label values)."""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account, make_account, make_key
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.usage.tool_type import ToolType

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls), _ in samples.items() if n == name and label in dict(ls)}


async def test_metrics_after_real_requests(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(session_factory, rate_limit=4)
    tenant = account.tenant.name
    _, before = await scrape(client)

    curl = {**account.headers, "User-Agent": "curl/8.5.0"}
    created = await client.post("/api/v1/prompts", json={"name": "p", "content": "c"}, headers=curl)
    assert created.status_code == 201, created.text
    item = created.json()["id"]
    assert (await client.get(f"/api/v1/prompts/{item}", headers=curl)).status_code == 200
    cursor = {**account.headers, "User-Agent": "Cursor/0.42 (vscode 1.93)"}
    assert (await client.get("/api/v1/prompts", headers=cursor)).status_code == 200
    assert (await client.get("/api/v1/prompts/no-such-id", headers=cursor)).status_code == 404
    refused = await client.get("/api/v1/prompts", headers=curl)  # the 5th request of a 4/hour tenant
    assert refused.status_code == 429
    assert (await client.get("/api/v1/prompts")).status_code == 401
    bad = {"Authorization": "Bearer vib_" + "0" * 64}
    assert (await client.get(f"/api/v1/prompts/{item}", headers=bad)).status_code == 401
    suspended = await make_account(session_factory, suspended=True)
    assert (await client.get("/api/v1/prompts", headers=suspended.headers)).status_code == 403
    await app.state.runtime.usage.flush()  # what the background task does every 0.5 s

    text, after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "vibexp_http_requests_total"
    assert delta(requests, route="/api/v1/prompts", method="POST", status="201", tool_type="curl") == 1
    assert delta(requests, route="/api/v1/prompts/{item_id}", method="GET", status="200", tool_type="curl") == 1
    assert delta(requests, route="/api/v1/prompts", method="GET", status="200", tool_type="cursor") == 1
    assert delta(requests, route="/api/v1/prompts/{item_id}", method="GET", status="404", tool_type="cursor") == 1
    assert delta(requests, route="/api/v1/prompts", method="GET", status="429", tool_type="curl") == 1
    assert delta(requests, route="/api/v1/prompts", status="401") == 1
    assert delta(requests, route="/api/v1/prompts/{item_id}", status="401") == 1
    assert delta(requests, route="/api/v1/prompts", status="403") == 1
    latency = "vibexp_http_request_duration_seconds_count"
    assert delta(latency, route="/api/v1/prompts/{item_id}", method="GET", status="200", tool_type="curl") == 1
    assert delta("vibexp_http_request_duration_seconds_sum", route="/api/v1/prompts", status="201") > 0

    # Per key: every authenticated request, including the refused one, by key id and tenant name.
    key_requests = "vibexp_api_key_requests_total"
    assert value(after, key_requests, tenant=tenant, key_id=account.key_id, tool_type="curl") == 3
    assert value(after, key_requests, tenant=tenant, key_id=account.key_id, tool_type="cursor") == 2
    last_used = value(after, "vibexp_api_key_last_used_timestamp_seconds", tenant=tenant, key_id=account.key_id)
    assert abs(last_used - time.time()) < 60
    assert value(after, "vibexp_rate_limited_requests_total", tenant=tenant, tier="free") == 1
    assert value(after, "vibexp_tenant_window_requests", tenant=tenant) == 4
    assert value(after, "vibexp_tenant_window_limit", tenant=tenant) == 4
    assert value(after, "vibexp_tenant_window_reset_timestamp_seconds", tenant=tenant) == int(
        refused.headers["x-ratelimit-reset"]
    )

    assert delta("vibexp_auth_failures_total", reason="missing") == 1
    assert delta("vibexp_auth_failures_total", reason="unknown") == 1
    assert delta("vibexp_auth_failures_total", reason="account_suspended") == 1
    assert delta("vibexp_usage_events_flushed_total") >= 5  # the key's 5 requests (refused keys are not usage)
    assert delta("vibexp_usage_flush_lag_seconds_count") >= 1
    assert value(after, "vibexp_usage_last_flush_timestamp_seconds") > 0

    # The key, its hash and its display prefix appear nowhere (not even in a label).
    for secret in (account.key, hashlib.sha256(account.key.encode()).hexdigest(), account.key[:12]):
        assert secret not in text
    assert "0" * 64 not in text


async def test_no_key_or_hash_in_any_label(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    """Valid, rotated-out, revoked and unknown keys all leave only key ids (of existing keys) in the text."""
    second = await make_key(session_factory, tenant_id=account.tenant.id, name="second")
    async with session_scope(session_factory) as session:
        record = next(r for r in await keys.list_keys(session, tenant_id=account.tenant.id) if r.id != account.key_id)
        second_id = record.id
        await keys.revoke_key(session, actor=TEST_ACTOR, key=record)
    unknown = "vib_" + secrets.token_hex(32)
    for key in (account.key, second, unknown):
        await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})
        await client.post("/mcp/v1/common", headers={"Authorization": f"Bearer {key}"}, json={})
        await client.get("/api/v1/prompts", headers={"Authorization": key})  # wrong scheme
        await client.get("/api/v1/prompts", headers={"Authorization": f'Bearer "{key}"'})  # quoted
    await app.state.runtime.usage.flush()
    text, samples = await scrape(client)

    for key in (account.key, second, unknown):
        for forbidden in (key, key[4:], hashlib.sha256(key.encode()).hexdigest(), key[:12], key[4:12]):
            assert forbidden not in text, forbidden
    assert account.key_id in label_values(samples, "vibexp_api_key_requests_total", "key_id")
    assert second_id not in label_values(samples, "vibexp_api_key_requests_total", "key_id")
    reasons = label_values(samples, "vibexp_auth_failures_total", "reason")
    assert {"revoked", "unknown", "wrong_scheme", "quoted"} <= reasons


async def test_label_values_stay_bounded(client: httpx.AsyncClient, account: Account) -> None:
    """Raw paths, odd methods and odd user agents map to fixed values, before and after authentication."""
    token = secrets.token_hex(8)
    odd = {"User-Agent": f"agent-{token}"}
    await client.get(f"/api/v1/{token}/{token}", headers={**account.headers, **odd})
    await client.get(f"/api/v1/{token}", headers=odd)  # 401 before routing
    await client.request("PROPFIND", "/api/v1/prompts", headers=account.headers)
    await client.request(f"X{token[:6].upper()}", "/api/v1/prompts")
    await client.get(f"/mcp/v1/{token}", headers=account.headers)
    await client.get(f"/api/v1/prompts/{token}", headers=account.headers)
    text, samples = await scrape(client)

    assert token not in text
    assert token[:6].upper() not in text
    routes = label_values(samples, "vibexp_http_requests_total", "route")
    assert "(unmatched)" in routes
    assert "/api/v1/prompts/{item_id}" in routes
    assert all("{" in r or r == "(unmatched)" or r.count("/") <= 4 for r in routes)
    assert label_values(samples, "vibexp_http_requests_total", "method") <= {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"
    }  # fmt: skip
    assert "other" in label_values(samples, "vibexp_http_requests_total", "method")
    assert label_values(samples, "vibexp_http_requests_total", "tool_type") <= {t.value for t in ToolType}


async def test_metrics_is_not_counted_as_api_traffic(client: httpx.AsyncClient) -> None:
    _, before = await scrape(client)
    await client.get("/metrics")
    await client.get("/healthz")
    _, after = await scrape(client)
    assert value(after, "vibexp_http_requests_total") == value(before, "vibexp_http_requests_total")
    assert "/metrics" not in label_values(after, "vibexp_http_requests_total", "route")
