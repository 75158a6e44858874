"""The batched usage recorder: nothing on the request path, everything written by the flush or at stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.teams import make_person
from vibexp.core.access import Caller, Role
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, session_scope
from vibexp.core.geo import country_of
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.members import usecases as members
from vibexp.core.members.service import Removal
from vibexp.core.outage import is_database_unavailable
from vibexp.core.ratelimit.models import RateWindow
from vibexp.core.traffic import Refusal, UsageEvent
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.recorder import UsageRecorder


def _event(
    key_id: str, tenant_id: str, *, seconds_ago: float, tool: str, owner_user_id: str | None = None
) -> UsageEvent:
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
        owner_user_id=owner_user_id,
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


class _Detector:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    async def detect(self, events: Sequence[UsageEvent], refusals: Sequence[Refusal]) -> None:
        self.batches.append((len(events), len(refusals)))


def test_an_event_is_made_storable_when_it_is_made() -> None:
    event = UsageEvent(
        key_id="k",
        tenant_id="t",
        at=utcnow(),
        method="PROPFIND-" + "X" * 40,
        route="/mcp/v1/common\x00",
        action="tools/\ud800call\x00" + "y" * 500,
        status=200,
        tool_type="other\udfff" + "z" * 50,
        client_ip="a" * 300,
    )
    for value, limit in ((event.method, 16), (event.route, 200), (event.action, 200), (event.tool_type, 32)):
        assert len(value) <= limit and "\x00" not in value
        value.encode("utf-8")  # no lone surrogate left
    assert event.action.startswith("tools/\ufffdcall\ufffd")
    assert event.client_ip is None  # not an address: none rather than a made-up one
    assert UsageEvent("k", "t", utcnow(), "GET", "/", "GET /", 200, "curl", "::ffff:10.0.0.1").client_ip == "10.0.0.1"


async def test_a_poison_row_is_dropped_and_the_rest_of_its_batch_written(
    db_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    account = await make_account(db_factory)
    other = await make_account(db_factory)
    detector = _Detector()
    recorder = UsageRecorder(db_factory.kw["bind"], detector=detector)
    recorder.record_refusal(Refusal(reason="unknown_key", at=utcnow(), client_ip="127.0.0.1"))
    for _ in range(3):
        recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=1, tool="curl"))
    poison = _event(account.key_id, account.tenant.id, seconds_ago=1, tool="curl")
    poison.action = "\ud800" + "\x00" * 300  # past the event's own sanitising, as a future bug might be
    recorder.record(poison)
    recorder.record(_event(other.key_id, other.tenant.id, seconds_ago=1, tool="curl"))
    with caplog.at_level(logging.WARNING, logger="vibexp.core.usage.recorder"):
        assert await recorder.flush() == 4
    assert recorder.pending == 0, "a poison row is not retried"
    async with db_factory() as session:
        first = await session.get(ApiKey, account.key_id)
        second = await session.get(ApiKey, other.key_id)
        assert first is not None and first.request_count == 3 and first.last_used_at is not None
        assert second is not None and second.request_count == 1
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and account.key_id in dropped[0].getMessage()
    assert detector.batches == [(5, 1)], "the detectors see the whole batch, the dropped row too"
    # Later flushes work as usual.
    recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=0, tool="curl"))
    assert await recorder.flush() == 1
    async with db_factory() as session:
        first = await session.get(ApiKey, account.key_id)
        assert first is not None and first.request_count == 4


async def test_the_detectors_run_when_the_write_fails(db_factory: async_sessionmaker[AsyncSession]) -> None:
    account = await make_account(db_factory)
    detector = _Detector()
    unreachable = create_engine("postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none")
    try:
        recorder = UsageRecorder(unreachable, detector=detector)
        recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=1, tool="curl"))
        recorder.record_refusal(Refusal(reason="unknown_key", at=utcnow(), client_ip="127.0.0.1"))
        with pytest.raises(Exception) as refused:  # whatever the driver raises when refused
            await recorder.flush()
        assert is_database_unavailable(refused.value)
        assert detector.batches == [(1, 1)]
        assert recorder.pending == 1, "the events are kept for the next try"
        with pytest.raises(Exception) as refused_again:
            await recorder.flush()
        assert is_database_unavailable(refused_again.value)
        assert detector.batches == [(1, 1)], "a retried event is not detected twice"
    finally:
        await unreachable.dispose()


async def test_the_action_rows_read_back_as_the_events_were_recorded(
    db_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The flush's one statement (PostgreSQL: a binary COPY; SQLite: executemany) writes each event as the ORM
    would: the same time to the microsecond, in UTC, the texts, the status and the address's country."""
    account = await make_account(db_factory)
    recorder = UsageRecorder(db_factory.kw["bind"])
    events = [_event(account.key_id, account.tenant.id, seconds_ago=s, tool="curl") for s in (3.25, 1.5)]
    events[1].client_ip = "81.2.69.160"
    events[1].status = 404
    for event in events:
        recorder.record(event)
    assert await recorder.flush() == 2
    async with db_factory() as session:
        rows = (
            await session.scalars(select(KeyAction).where(KeyAction.key_id == account.key_id).order_by(KeyAction.id))
        ).all()
    assert [(r.at, r.method, r.route, r.action, r.status, r.tool_type, r.client_ip, r.country) for r in rows] == [
        (e.at, e.method, e.route, e.action, e.status, e.tool_type, e.client_ip, country_of(e.client_ip)) for e in events
    ]
    assert all(r.grant_id is None and r.tenant_id == account.tenant.id for r in rows)


async def test_a_naive_time_is_refused_and_dropped_alone(
    db_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """A time without a zone (a bug, never a client's doing) is refused by the column's own conversion on both
    databases: that row is dropped and logged, the rest of its batch written."""
    account = await make_account(db_factory)
    recorder = UsageRecorder(db_factory.kw["bind"])
    naive = _event(account.key_id, account.tenant.id, seconds_ago=1, tool="curl")
    naive.at = naive.at.replace(tzinfo=None)
    recorder.record(_event(account.key_id, account.tenant.id, seconds_ago=2, tool="curl"))
    recorder.record(naive)
    with caplog.at_level(logging.WARNING, logger="vibexp.core.usage.recorder"):
        assert await recorder.flush() == 1
    async with db_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(KeyAction).where(KeyAction.key_id == account.key_id)
        )
    assert count == 1
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1


async def _until_waiting_for_locks(engine: AsyncEngine, count: int) -> None:
    """Until ``count`` sessions on the test's database wait for a lock (at most 10 s). Each look in a transaction of
    its own: ``pg_stat_activity`` is read once per transaction."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 10
    async with engine.connect() as conn:
        while (await conn.scalar(waiting) or 0) < count:
            await conn.rollback()
            assert time.monotonic() < deadline, f"fewer than {count} sessions came to wait for a lock"
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_flush_and_a_removal_of_the_keys_owner_take_turns(db_factory: async_sessionmaker[AsyncSession]) -> None:
    """A flush counting a person's key and marking them seen, and that person's removal (which locks their
    membership, then revokes their keys), meet halfway: both finish, neither is a deadlock's victim. A third
    transaction holds the action log (``LOCK TABLE ... SHARE``), so the flush stops after its row locks and before
    its commit while the removal comes to wait, the interleaving of two busy replicas. A flush that counted the key
    before marking its owner seen deadlocked here: PostgreSQL aborted the removal (the API answered 500)."""
    account = await make_account(db_factory)
    person = await make_person(db_factory, tenant_id=account.tenant.id, role=Role.member)
    engine = db_factory.kw["bind"]
    recorder = UsageRecorder(engine)
    recorder.record(_event(person.key_id, account.tenant.id, seconds_ago=1, tool="curl", owner_user_id=person.user_id))

    async def remove() -> Removal:
        async with session_scope(db_factory, write=True) as session:
            return await members.remove(session, caller=Caller.cli(account.tenant.id), user_id=person.user_id)

    async with engine.connect() as holder:
        await holder.execute(text("LOCK TABLE key_actions IN SHARE MODE"))
        flush = asyncio.create_task(recorder.flush())
        await _until_waiting_for_locks(engine, 1)
        removal = asyncio.create_task(remove())
        await _until_waiting_for_locks(engine, 2)
        await holder.rollback()
    async with asyncio.timeout(20):
        removed, written = await asyncio.gather(removal, flush)
    assert removed.revoked_keys == [person.key_id] and written == 1
    async with db_factory() as session:
        key = await session.get(ApiKey, person.key_id)
        assert key is not None and key.status == KeyStatus.revoked.value and key.request_count == 1
        logged = await session.scalar(
            select(func.count()).select_from(KeyAction).where(KeyAction.key_id == person.key_id)
        )
        assert logged == 1
