"""Key state races through a real ``vibexp serve``: concurrent rotations, a revocation racing a rotation, a rotation
during the grace period and concurrent leak reports of one key (issue 26, item 6).

Each transition is one conditional ``UPDATE`` (``vibexp.core.keys.service``): exactly one rotation of a key wins and
the others get 409 ``key_already_rotated``; a key revoked first is never rotated (no successor of a revoked key); one
audit event per transition. Before, a read-then-write let eight concurrent rotations mint up to eight working
successors on PostgreSQL, and 16 reports of one leaked key recorded 13 ``key.leaked`` events. (On SQLite one server
process takes its writers in turn, so these races need PostgreSQL to show; the rules are checked on both.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account, make_account
from helpers.fixtures import START_TIMEOUT
from helpers.servers import LiveServer
from vibexp.core.alerts.models import Alert
from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import session_scope
from vibexp.core.keys.models import ApiKey

pytestmark = pytest.mark.slow

T = TypeVar("T")

ROTATIONS = 8
LEAK_REPORTS = 16
#: Rounds of a revocation racing a rotation (each a fresh key): enough for the race to show on PostgreSQL.
REVOKE_ROUNDS = 8


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url).start(tmp_path_factory.mktemp("logs"), START_TIMEOUT)
    try:
        yield live
    finally:
        live.stop()


async def _released(count: int, attempt: Callable[[int], Awaitable[T]]) -> list[T]:
    """``count`` attempts held at one gate and released together, so their transactions overlap; bounded."""
    gate = asyncio.Event()

    async def one(i: int) -> T:
        await gate.wait()
        return await attempt(i)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0.05)
    gate.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)


async def _new_key(http: httpx.AsyncClient, account: Account, name: str) -> dict[str, Any]:
    created = await http.post("/api/v1/api-keys", json={"name": name}, headers=account.headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _events(factory: async_sessionmaker[AsyncSession], key_id: str) -> list[str]:
    async with session_scope(factory) as session:
        query = select(AuditEvent.action).where(AuditEvent.target_id == key_id).order_by(AuditEvent.at)
        return list(await session.scalars(query))


async def _successors(factory: async_sessionmaker[AsyncSession], key_id: str) -> list[ApiKey]:
    async with session_scope(factory) as session:
        return list(await session.scalars(select(ApiKey).where(ApiKey.rotated_from_id == key_id)))


def _client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=2 * LEAK_REPORTS))


async def test_concurrent_rotations_mint_exactly_one_successor(
    server: LiveServer, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    async with _client(server) as http:
        old = await _new_key(http, account, "rotated eight times at once")

        async def rotate(_: int) -> httpx.Response:
            body = {"grace_period_seconds": 3600}  # the old key stays active: every rotation could claim it
            return await http.post(f"/api/v1/api-keys/{old['id']}/rotate", json=body, headers=account.headers)

        answers = await _released(ROTATIONS, rotate)
        statuses = [a.status_code for a in answers]
        print(f"{ROTATIONS} concurrent rotations: {statuses}")
        assert statuses.count(201) == 1, statuses
        for answer in answers:
            if answer.status_code != 201:
                assert_error(answer, 409, "key_already_rotated")
        winner = next(a.json() for a in answers if a.status_code == 201)
        successors = await _successors(db_factory, old["id"])
        assert [s.id for s in successors] == [winner["id"]]
        assert (await _events(db_factory, old["id"])).count("key.rotated") == 1
        stored = await http.get(f"/api/v1/api-keys/{old['id']}", headers=account.headers)
        assert stored.json()["status"] == "active"  # in its grace period
        # The one successor works; the old key too, until its grace period ends.
        for key in (winner["key"], old["key"]):
            assert (await http.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})).status_code == 200


async def test_rotating_during_the_grace_period_is_409(
    server: LiveServer, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    async with _client(server) as http:
        old = await _new_key(http, account, "rotated twice")
        first = await http.post(
            f"/api/v1/api-keys/{old['id']}/rotate", json={"grace_period_seconds": 3600}, headers=account.headers
        )
        assert first.status_code == 201, first.text
        second = await http.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}, headers=account.headers)
        error = assert_error(second, 409, "key_already_rotated")
        assert first.json()["id"] in error["message"]  # names the key to rotate instead
        assert len(await _successors(db_factory, old["id"])) == 1
        # The successor itself rotates as usual.
        third = await http.post(f"/api/v1/api-keys/{first.json()['id']}/rotate", json={}, headers=account.headers)
        assert third.status_code == 201, third.text


async def test_a_revocation_racing_a_rotation_leaves_no_successor_of_a_revoked_key(
    server: LiveServer, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Rotation without a grace period and revocation both end the old key: exactly one of them may do it. A
    rotation that comes second finds the key revoked (422) and mints nothing; a revocation that comes second finds
    it revoked and records nothing."""
    account = await make_account(db_factory, rate_limit=100_000)
    outcomes: list[tuple[int, int]] = []
    async with _client(server) as http:
        for round_ in range(REVOKE_ROUNDS):
            old = await _new_key(http, account, f"race {round_}")

            async def act(i: int, key_id: str = old["id"]) -> httpx.Response:
                if i == 0:
                    return await http.post(f"/api/v1/api-keys/{key_id}/rotate", json={}, headers=account.headers)
                return await http.delete(f"/api/v1/api-keys/{key_id}", headers=account.headers)

            rotated, revoked = await _released(2, act)
            outcomes.append((rotated.status_code, revoked.status_code))
            events = await _events(db_factory, old["id"])
            successors = await _successors(db_factory, old["id"])
            # One transition revoked the key: the rotation or the revocation, never both.
            assert events.count("key.rotated") + events.count("key.revoked") == 1, (round_, events)
            if rotated.status_code == 201:
                assert [s.id for s in successors] == [rotated.json()["id"]]
                assert events.count("key.rotated") == 1
            else:
                assert_error(rotated, 422, "invalid_input")
                assert successors == [] and events.count("key.revoked") == 1
            assert revoked.status_code == 200, revoked.text
    print(f"revoke racing rotate (rotate status, delete status): {outcomes}")


async def test_concurrent_leak_reports_of_one_key_record_one_event(
    server: LiveServer, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    async with _client(server) as http:
        leaked = await _new_key(http, account, "leaked")

        async def report(i: int) -> int:
            body = [{"token": leaked["key"], "url": f"https://example.com/paste/{i}", "source": "race test"}]
            return (await http.post("/api/v1/leaked-keys", json=body)).status_code

        statuses = await _released(LEAK_REPORTS, report)
        assert statuses == [202] * LEAK_REPORTS, statuses
        events = await _events(db_factory, leaked["id"])
        async with session_scope(db_factory) as session:
            alerts = await session.scalar(select(func.count()).select_from(Alert).where(Alert.key_id == leaked["id"]))
        print(f"{LEAK_REPORTS} concurrent leak reports: {events.count('key.leaked')} key.leaked, {alerts} alert(s)")
        assert events.count("key.leaked") == 1, events
        assert alerts == 1
        refused = await http.get("/api/v1/prompts", headers={"Authorization": f"Bearer {leaked['key']}"})
        assert_error(refused, 401, "invalid_api_key")
