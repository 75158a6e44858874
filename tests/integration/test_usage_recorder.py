"""The batched usage recorder: nothing on the request path, everything written by the flush or at stop."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from vibexp.core.clock import utcnow
from vibexp.core.keys.models import ApiKey
from vibexp.core.ratelimit.models import RateWindow
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.recorder import UsageEvent, UsageRecorder


def _event(key_id: str, tenant_id: str, *, seconds_ago: float, tool: str) -> UsageEvent:
    return UsageEvent(
        key_id=key_id,
        tenant_id=tenant_id,
        at=utcnow() - timedelta(seconds=seconds_ago),
        method="GET",
        route="/api/v1/prompts",
        action="GET /api/v1/prompts",
        status=200,
        tool_type=tool,
        client_ip="127.0.0.1",
    )


async def test_stop_writes_everything_still_buffered(db_factory: async_sessionmaker[AsyncSession]) -> None:
    account = await make_account(db_factory)
    engine = db_factory.kw["bind"]
    flushed: list[int] = []
    recorder = UsageRecorder(engine, flush_interval=1.0, on_flush=lambda n, _lag: flushed.append(n))
    await recorder.start()
    # Out of order on purpose: last_used_at must be the newest, tool type the newest event's.
    for i, tool in enumerate(["cursor", "claude_code", "vscode"]):
        recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=10 - i, tool=tool))
    recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=30, tool="curl"))
    assert recorder.pending == 4
    await recorder.stop()  # well before the first 1 s flush tick
    assert recorder.pending == 0 and flushed == [4]
    async with db_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.request_count == 4
        assert key.last_used_at is not None and utcnow() - key.last_used_at < timedelta(seconds=9)
        count = await session.scalar(select(func.count()).select_from(KeyAction).where(KeyAction.key_id == key.id))
        assert count == 4


async def test_later_flushes_add_to_the_counts(db_factory: async_sessionmaker[AsyncSession]) -> None:
    account = await make_account(db_factory)
    recorder = UsageRecorder(db_factory.kw["bind"])
    for _ in range(3):
        recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=1, tool="curl"))
        assert await recorder.flush() == 1
    assert await recorder.flush() == 0
    async with db_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.request_count == 3 and key.tool_type == "curl"


async def test_actions_name_the_full_route_template_never_the_raw_path(client: httpx.AsyncClient, app: FastAPI) -> None:
    account = await make_account(app.state.runtime.session_factory)
    created = await client.post(
        "/api/v1/memories",
        json={"content": "secret-ish id in path"},
        headers={**account.headers, "User-Agent": "claude-code/2.0"},
    )
    memory_id = created.json()["id"]
    assert (await client.get(f"/api/v1/memories/{memory_id}", headers=account.headers)).status_code == 200
    await app.state.runtime.usage.flush()
    usage = (await client.get(f"/api/v1/api-keys/{account.key_id}/usage", headers=account.headers)).json()
    routes = [a["route"] for a in usage["actions"]]
    assert routes[-2:] == ["/api/v1/memories/{item_id}", "/api/v1/memories"]
    assert all(memory_id not in a["route"] and memory_id not in a["action"] for a in usage["actions"])
    assert usage["actions"][-1]["tool_type"] == "claude_code"
    assert usage["actions"][-1]["action"] == "POST /api/v1/memories"


async def test_prune_drops_actions_past_retention_and_old_rate_windows(
    db_factory: async_sessionmaker[AsyncSession],
) -> None:
    account = await make_account(db_factory)
    recorder = UsageRecorder(db_factory.kw["bind"], retention=timedelta(days=1))
    recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=2 * 86400, tool="curl"))
    recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=60, tool="curl"))
    await recorder.flush()
    hour = int(utcnow().timestamp()) // 3600 * 3600
    async with db_factory() as session:
        session.add_all(
            [
                RateWindow(tenant_id=account.tenant.id, window_start=hour - 3 * 3600, used=5, last_grant=0),
                RateWindow(tenant_id=account.tenant.id, window_start=hour, used=7, last_grant=0),
            ]
        )
        await session.commit()
    await recorder.prune()
    async with db_factory() as session:
        ages = list(await session.scalars(select(KeyAction.at).where(KeyAction.key_id == account.key_id)))
        assert len(ages) == 1 and utcnow() - ages[0] < timedelta(hours=1)
        windows = list(
            await session.scalars(select(RateWindow.window_start).where(RateWindow.tenant_id == account.tenant.id))
        )
        assert windows == [hour]
