"""The usage log and the metrics name a request by the same route template, whether the router ran or not.

The template is resolved once, when the request reaches the API-key layer: a 429 (answered before routing) on
``/api/v1/prompts/{id}`` is ``/api/v1/prompts/{item_id}`` in both places, never ``(unmatched)`` in one of them.
"""

from __future__ import annotations

from collections import Counter

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.windows import inside_one_hour_window
from vibexp.core.usage.models import KeyAction

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


async def _requests_by_route(client: httpx.AsyncClient) -> Counter[tuple[str, str]]:
    """``vibexp_http_requests_total`` summed by (status, route)."""
    text = (await client.get("/metrics")).text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vibexp_http_requests_total":
                counts[(sample.labels["status"], sample.labels["route"])] += int(sample.value)
    return counts


async def test_a_refused_request_has_the_same_route_in_usage_and_metrics(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await inside_one_hour_window()
    before = await _requests_by_route(client)
    account = await make_account(session_factory, rate_limit=1)
    assert (await client.get("/api/v1/prompts/some-id", headers=account.headers)).status_code == 404
    assert (await client.get("/api/v1/prompts/other-id", headers=account.headers)).status_code == 429
    mcp_headers = {**account.headers, "Accept": "application/json, text/event-stream"}
    assert (await client.post("/mcp/v1/common", json=PING, headers=mcp_headers)).status_code == 429
    await app.state.runtime.usage.flush()

    async with session_factory() as session:
        rows = (await session.execute(select(KeyAction).where(KeyAction.key_id == account.key_id))).scalars().all()
    logged = {(row.status, row.route) for row in rows}
    assert logged == {(404, "/api/v1/prompts/{item_id}"), (429, "/api/v1/prompts/{item_id}"), (429, "/mcp/v1/common")}
    counted = await _requests_by_route(client) - before
    assert counted == Counter(
        {("404", "/api/v1/prompts/{item_id}"): 1, ("429", "/api/v1/prompts/{item_id}"): 1, ("429", "/mcp/v1/common"): 1}
    )


def test_templates_are_exactly_the_documented_paths_plus_the_mounts() -> None:
    """Templates come from ``app.routes`` (no OpenAPI build per app); they must stay the document's own paths."""
    from starlette.routing import Mount

    from vibexp.api.app import create_app
    from vibexp.api.route_templates import _RouteTable
    from vibexp.api.settings import ApiSettings

    app = create_app(
        ApiSettings(database_url="sqlite+aiosqlite:///unused.db", environment="test", bench_endpoints=True)
    )
    table = _RouteTable.build(app)
    assert app.openapi_schema is None, "building the route table must not generate the OpenAPI document"
    mounts = {r.path for r in app.router.routes if isinstance(r, Mount)}
    documented = set(app.openapi()["paths"])
    from_mounts = {t for t in {*table.static, *table.templates} if any(t.startswith(m + "/") for m in mounts)}
    assert {*table.static, *table.templates} - from_mounts == documented
    assert table.match("/api/v1/prompts/abc") == "/api/v1/prompts/{item_id}"
