"""Per-tenant hourly limits, exact across every process that shares the database.

Each fixed UTC hour has one row per tenant in ``rate_windows``; ``used`` only grows, by an atomic
``UPDATE ... RETURNING`` that never lets it pass the limit, so the processes together can never admit more than the
limit. To keep the database off most requests, a process takes a *lease* of several requests at once and admits
from it locally. Leases shrink as the window fills (1/32 of what is left, at most 100) and become single requests
near the end, so the last requests of a window are granted one by one. A lease is only ever held by a process that
is receiving requests for that tenant, so it drains while traffic continues: under load, the tenant gets exactly
its limit. A lease a process stops using stays counted as used until the window ends; that is the price of not
touching the database on every request, and it is at most one lease per process.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import ClauseElement, Integer, String, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from vibexp.core import sqlite_direct
from vibexp.core.db import writing
from vibexp.core.ratelimit.models import RateWindow

__all__ = ["WINDOW_SECONDS", "RateDecision", "RateLimiter"]

WINDOW_SECONDS = 3600
MAX_LEASE = 100
LEASE_FRACTION = 32
#: Retry-After is spread over up to this many seconds past the reset so clients do not all return at once.
MAX_RETRY_JITTER = 30


_SUBJECT = bindparam("subject", type_=String)
_WINDOW = bindparam("window", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)
_WANTED = bindparam("wanted", type_=Integer)
_ROOM = _LIMIT - RateWindow.used
_GRANTED = case((RateWindow.used >= _LIMIT, 0), (_ROOM < _WANTED, _ROOM), else_=_WANTED)
#: A lease: up to ``wanted`` more requests of the window, never past ``limit``; the new count and the lease.
_TAKE = (
    update(RateWindow)
    .where(RateWindow.tenant_id == _SUBJECT, RateWindow.window_start == _WINDOW)
    .values(used=RateWindow.used + _GRANTED, last_grant=_GRANTED)
    .returning(RateWindow.used, RateWindow.last_grant)
)


class _Compiled:
    """A statement compiled once for SQLite's own driver: its SQL and its parameters in order."""

    def __init__(self, statement: ClauseElement, engine: AsyncEngine) -> None:
        self._compiled = cast(SQLCompiler, statement.compile(dialect=engine.dialect))
        self._sql = str(self._compiled)
        self._order = tuple(self._compiled.positiontup or ())

    def bind(self, params: dict[str, object]) -> tuple[str, tuple[object, ...]]:
        values = self._compiled.construct_params(params) or {}
        return self._sql, tuple(values[name] for name in self._order)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds of the next window
    retry_after: int  # seconds; 0 when allowed

    @property
    def seconds_to_reset(self) -> int:
        return max(0, self.reset_at - int(time.time()))


@dataclass(slots=True)
class _TenantWindow:
    window_start: int
    lease_left: int = 0
    used: int = 0  # the database's count as of our last grant (includes our lease)
    row_ready: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """``hit`` counts one request of a subject (a tenant; any other string of at most 36 characters, such as the
    OAuth registration throttle's address digest, shares the table without meeting one). ``max_tracked`` bounds the
    subjects this process remembers (oldest forgotten first: a forgotten lease stays counted as used, so forgetting
    can refuse a little early, never admit too much)."""

    def __init__(self, engine: AsyncEngine, *, max_tracked: int | None = None) -> None:
        self._engine = engine
        self._max_tracked = max_tracked
        self._windows: dict[str, _TenantWindow] = {}
        self._sqlite = engine.dialect.name == "sqlite"
        insert = sqlite.insert if self._sqlite else postgresql.insert
        self._create = (
            insert(RateWindow)
            .values(tenant_id=_SUBJECT, window_start=_WINDOW, used=0, last_grant=0)
            .on_conflict_do_nothing()
        )
        if self._sqlite:
            self._create_direct = _Compiled(self._create, engine)
            self._take_direct = _Compiled(_TAKE, engine)

    async def hit(self, *, tenant_id: str, limit: int, now: float | None = None) -> RateDecision:
        """Count one request for the tenant and say whether it is admitted."""
        now = time.time() if now is None else now
        window_start = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        state = self._windows.get(tenant_id)
        if state is None or state.window_start != window_start:
            if state is None and self._max_tracked is not None:
                while len(self._windows) >= self._max_tracked:
                    self._windows.pop(next(iter(self._windows)))
            state = self._windows[tenant_id] = _TenantWindow(window_start=window_start)
        if state.lease_left <= 0:
            async with state.lock:
                if state.lease_left <= 0:  # another coroutine may have refilled it while we waited
                    await self._grant(tenant_id, state, limit)
        reset_at = window_start + WINDOW_SECONDS
        if state.lease_left > 0:
            state.lease_left -= 1
            remaining = max(0, limit - state.used + state.lease_left)
            return RateDecision(True, limit, remaining, reset_at, 0)
        retry_after = max(1, reset_at - int(now)) + random.randint(0, MAX_RETRY_JITTER)  # noqa: S311 - not security
        return RateDecision(False, limit, 0, reset_at, retry_after)

    async def _grant(self, tenant_id: str, state: _TenantWindow, limit: int) -> None:
        params = {
            "subject": tenant_id,
            "window": state.window_start,
            "limit": limit,
            "wanted": max(1, min(MAX_LEASE, (limit - state.used) // LEASE_FRACTION)),
        }
        async with writing(self._engine):
            row = self._grant_direct(params, create=not state.row_ready) if self._sqlite else None
            if row is None:
                async with self._engine.begin() as conn:
                    if not state.row_ready:
                        await conn.execute(self._create, params)
                    taken = (await conn.execute(_TAKE, params)).one()
                row = int(taken[0]), int(taken[1])
        state.row_ready = True
        state.used, state.lease_left = row

    def _grant_direct(self, params: dict[str, object], *, create: bool) -> tuple[int, int] | None:
        """The lease on SQLite, on the event loop thread's own connection (``vibexp.core.sqlite_direct``): each
        statement its own transaction (the row's creation is idempotent; the UPDATE alone takes the lease), so the
        writer turn is held for two statements, not for a transaction's round trips to the pool's thread. ``None``
        when that connection is not available or met another process's lock (nothing was taken then)."""
        conn = sqlite_direct.direct(self._engine)
        if conn is None:
            return None
        try:
            if create:
                conn.execute(*self._create_direct.bind(params))
            rows = conn.execute(*self._take_direct.bind(params)).fetchall()
        except sqlite3.Error as exc:
            if sqlite_direct.busy(exc):
                return None
            raise OperationalError("rate window lease", params, exc) from exc
        (used, granted), *_ = rows
        return int(used), int(granted)

    async def peek(self, *, tenant_id: str, limit: int, now: float | None = None) -> RateDecision:
        """The tenant's limit status without counting a request (for the status endpoint); always allowed."""
        now = time.time() if now is None else now
        window_start = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        used = await self.current_use(tenant_id=tenant_id, now=now)
        return RateDecision(True, limit, max(0, limit - used), window_start + WINDOW_SECONDS, 0)

    async def current_use(self, *, tenant_id: str, now: float | None = None) -> int:
        """Requests counted in the tenant's current window, for dashboards and status."""
        now = time.time() if now is None else now
        window_start = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        async with self._engine.connect() as conn:
            used = await conn.scalar(
                select(RateWindow.used).where(
                    RateWindow.tenant_id == tenant_id, RateWindow.window_start == window_start
                )
            )
        state = self._windows.get(tenant_id)
        unused_lease = state.lease_left if state is not None and state.window_start == window_start else 0
        return max(0, int(used or 0) - unused_lease)
