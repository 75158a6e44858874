"""PostgreSQL's hot reads by key taking turns (``vibexp.core.hotread._Batches``, issue #27): the reads that come
while one is in flight are answered by one statement, each with its own row (another tenant's key finds nothing);
a cancelled read, or a cancelled turn, holds up no other; a batch whose connection is lost answers each read
alone, and an idle reader runs the one-row statement as before."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import ARRAY, Select, String, Table, any_, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.databases import terminate_connections
from helpers.factories import make_account
from vibexp.core import pg_direct
from vibexp.core.content.models import Prompt
from vibexp.core.content.schemas import PromptCreate
from vibexp.core.content.service import prompts
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.hotread import RowReader

TABLE = Prompt.__table__
assert isinstance(TABLE, Table)


async def _prompts(engine: AsyncEngine, *names: str) -> tuple[str, dict[str, str]]:
    """A new tenant with a prompt of each name: (tenant id, {name: prompt id})."""
    factory = create_session_factory(engine)
    account = await make_account(factory)
    ids = {}
    async with session_scope(factory) as session:
        for name in names:
            created = await prompts.create(
                session, tenant_id=account.tenant.id, data=PromptCreate(name=name, content=f"{name} text")
            )
            ids[name] = created.id
    return account.tenant.id, ids


def _statements(engine: AsyncEngine) -> list[str]:
    """The statements on ``prompts`` run from now on, on every held connection (hold one first); not asyncpg's own
    (the introspection of the array type, once per connection)."""
    seen: list[str] = []
    connections = pg_direct.held(engine)
    assert connections is not None and connections.free >= 1
    for held in connections._free:
        held.driver.add_query_logger(
            lambda record: seen.append(record.query) if "FROM prompts" in record.query else None
        )
    return seen


def _slow_reader(engine: AsyncEngine, seconds: float) -> RowReader:
    """A prompt's id and tenant by key, each row taking ``seconds`` (``pg_sleep``), alone or in a batch."""

    def query(*where: Any) -> Select[Any]:
        slept = func.pg_sleep(literal_column(repr(seconds))).label("slept")
        return select(TABLE.c.tenant_id, TABLE.c.id, slept).where(*where)

    one = query(TABLE.c.tenant_id == bindparam("tenant_id"), TABLE.c.id == bindparam("id"))
    many = query(*(TABLE.c[name] == any_(bindparam(name, type_=ARRAY(String()))) for name in ("tenant_id", "id")))
    return RowReader(engine, one, batched=many)


async def _batch_in_flight(reader: RowReader, tenant: str, ids: dict[str, str]) -> list[asyncio.Task[Any]]:
    """Reads of alpha and beta that waited while a leader read alpha, and are now one statement in flight."""
    leader = asyncio.create_task(reader.one(tenant_id=tenant, id=ids["alpha"]))
    await _until_running(leader, reader)
    batch = [asyncio.create_task(reader.one(tenant_id=tenant, id=ids[name])) for name in ("alpha", "beta")]
    await leader  # the turn passes to the first of them, which fetches both
    await asyncio.sleep(0.1)
    return batch


async def _until_running(task: asyncio.Task[Any], reader: RowReader) -> None:
    """Until ``task`` holds the reader's turn (bounded)."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if reader._batches is not None and reader._batches._busy:
            return
    raise AssertionError(f"{task} never took the turn")


async def test_reads_that_come_while_one_is_in_flight_are_answered_by_one_statement(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=5)
    try:
        tenant, ids = await _prompts(engine, "alpha", "beta")
        other, theirs = await _prompts(engine, "gamma")
        await prompts.read(engine, tenant_id=tenant, id=ids["alpha"])  # holds a connection
        statements = _statements(engine)
        asked = [
            (tenant, ids["alpha"]),
            (tenant, ids["alpha"]),  # the same key twice
            (tenant, ids["beta"]),
            (other, theirs["gamma"]),
            (tenant, theirs["gamma"]),  # another tenant's prompt: not found
            (other, ids["alpha"]),
            (tenant, "01a00000-0000-7000-8000-000000000000"),  # no such prompt
        ]
        together = await asyncio.gather(
            *(prompts.read(engine, tenant_id=t, id=i) for t, i in asked), return_exceptions=True
        )
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers soon after, not at once
        # The first read alone, then one statement for the six that came meanwhile.
        assert len(statements) == 2, [s.split("WHERE")[-1] for s in statements]
        assert "= ANY" not in statements[0] and "= ANY" in statements[1]
        alone = []
        for t, i in asked:
            try:
                alone.append(await prompts.read(engine, tenant_id=t, id=i))
            except Exception as exc:
                alone.append(exc)
        assert [row if isinstance(row, dict) else type(row) for row in together] == [
            row if isinstance(row, dict) else type(row) for row in alone
        ]
        found = [row["name"] if isinstance(row, dict) else type(row).__name__ for row in together]
        assert found == ["alpha", "alpha", "beta", "gamma", "NotFound", "NotFound", "NotFound"]
        await asyncio.sleep(0.05)
        # One at a time: each alone, with the one-row statement.
        assert len(statements) == 2 + len(asked), [s.split("WHERE")[-1] for s in statements]
        by_name = await asyncio.gather(*(prompts.read(engine, tenant_id=tenant, name=n) for n in ("beta", "alpha")))
        assert [row["id"] for row in by_name] == [ids["beta"], ids["alpha"]]
    finally:
        await engine.dispose()


async def test_a_cancelled_read_or_turn_holds_up_no_other(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=5)
    try:
        tenant, ids = await _prompts(engine, "alpha", "beta")
        reader = _slow_reader(engine, 0.3)
        first = asyncio.create_task(reader.one(tenant_id=tenant, id=ids["alpha"]))
        await _until_running(first, reader)
        waiting = asyncio.create_task(reader.one(tenant_id=tenant, id=ids["alpha"]))
        after = asyncio.create_task(reader.one(tenant_id=tenant, id=ids["beta"]))
        await asyncio.sleep(0.05)
        waiting.cancel()  # a read that was waiting for its turn
        first.cancel()  # the read holding the turn, mid-statement
        for cancelled in (waiting, first):
            try:
                await cancelled
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("the cancelled read was answered")
        async with asyncio.timeout(5):
            row = await after
        assert row is not None and row["id"] == ids["beta"]
        # A turn cancelled while it carries a batch: its reads are answered by the next turn.
        carried = await _batch_in_flight(reader, tenant, ids)
        late = asyncio.create_task(reader.one(tenant_id=tenant, id=ids["beta"]))
        await asyncio.sleep(0.05)
        carried[0].cancel()
        async with asyncio.timeout(5):
            rows = await asyncio.gather(carried[1], late)
        assert [row["id"] for row in rows if row is not None] == [ids["beta"], ids["beta"]]
        assert carried[0].cancelled()
        assert reader._batches is not None and not reader._batches._busy
    finally:
        await engine.dispose()


async def test_a_batch_whose_connection_is_lost_answers_each_read_alone(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=5)
    try:
        tenant, ids = await _prompts(engine, "alpha", "beta")
        reader = _slow_reader(engine, 0.3)
        batch = await _batch_in_flight(reader, tenant, ids)  # its statement is sleeping on the server
        assert await terminate_connections(postgres_url) >= 1
        async with asyncio.timeout(10):
            rows = await asyncio.gather(*batch)
        assert [row["id"] for row in rows if row is not None] == [ids["alpha"], ids["beta"]]
    finally:
        await engine.dispose()


# The abandoned loop's held connection is never checked in: SQLAlchemy warns when the collector terminates it.
@pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up non-checked-in connection")
def test_a_turn_left_by_a_closed_event_loop_is_not_waited_for(postgres_url: str) -> None:
    """A loop closed while its read held the turn and another waited (a test's loop torn down mid-request): a read
    on the next loop is answered at once."""
    engine = create_engine(postgres_url, pool_size=5)
    reader = _slow_reader(engine, 0.3)
    first = asyncio.new_event_loop()
    abandoned: list[asyncio.Task[Any]] = []
    try:
        tenant, ids = first.run_until_complete(_prompts(engine, "alpha"))

        async def abandon() -> None:
            abandoned.append(asyncio.create_task(reader.one(tenant_id=tenant, id=ids["alpha"])))
            await _until_running(abandoned[0], reader)
            abandoned.append(asyncio.create_task(reader.one(tenant_id=tenant, id=ids["alpha"])))
            await asyncio.sleep(0.05)

        first.run_until_complete(abandon())
    finally:
        first.close()  # its tasks never finish: the turn stays taken
    assert reader._batches is not None and reader._batches._busy

    async def again() -> dict[str, Any] | None:
        await engine.dispose(close=False)  # the closed loop's connections cannot be used from this one
        try:
            async with asyncio.timeout(5):
                return await reader.one(tenant_id=tenant, id=ids["alpha"])
        finally:
            await engine.dispose()

    row = asyncio.run(again())
    assert row is not None and row["id"] == ids["alpha"]
    for task in abandoned:  # closed here, not by the garbage collector (whose errors would only be printed)
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        with contextlib.suppress(BaseException):
            task.get_coro().close()  # type: ignore[union-attr]
