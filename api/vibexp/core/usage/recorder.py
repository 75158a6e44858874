"""Usage tracking written in batches, off the request path.

The request path only appends an event to a list. A background task flushes the list every ``flush_interval``
seconds (at most one second): one UPDATE per key that was used (count, last used, tool type, client IP) or OAuth
grant (count, last used), the action-log rows in one statement (on PostgreSQL a binary ``COPY``, which costs the
server about half the CPU per row of a multi-row INSERT and this process a third; on SQLite one executemany of
ready values), each
row with its client address's registered country (``vibexp.core.geo``: looked up here, never on the request path,
and cached per address), and one UPDATE statement (run for each person) that marks the owners of the personal keys
and grants used as seen in their account (``memberships.last_seen_at``, never moved backwards; the owner comes with
the event, from the verifier's cache). A grant's request is recorded exactly like a key's: its action-log row names
the grant (``grant_id``) instead. Stopping the recorder flushes what is left, so a graceful shutdown loses nothing.
If the database is unreachable the events are kept (up to ``max_buffer``) and retried.

Nothing a client sends can jam the flush. An event is made storable when it is made
(``vibexp.core.traffic.UsageEvent``: names and routes without control characters or lone surrogates, cut to their
columns; the client address an IP literal or none). Should the database still refuse a batch for anything but an
outage, the batch is written again row by row: a row it refuses is dropped with one log line (naming the key id,
never a key) and the others are written.

Refused authentication attempts (``vibexp.core.traffic.Refusal``) are buffered beside the events, and each flush
hands both to the ``detector`` (the alert detectors, ``vibexp.core.alerts.detectors``): alerts are computed per
batch, never per request, and each event is handed over once, whether its write succeeded, was dropped or is kept
for the next try. A detector failure is logged and never loses usage.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Update, bindparam, case, delete, insert, literal, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vibexp.core.audit import service as audit
from vibexp.core.clock import utcnow
from vibexp.core.db import UTCDateTime, writing
from vibexp.core.failure_log import FailureLog
from vibexp.core.geo import country_of
from vibexp.core.keys.models import ApiKey
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.outage import is_database_unavailable
from vibexp.core.pg_direct import connection_lost
from vibexp.core.ratelimit.limiter import WINDOW_SECONDS
from vibexp.core.ratelimit.models import RateWindow
from vibexp.core.tasks import PeriodicTask
from vibexp.core.traffic import Refusal, UsageEvent
from vibexp.core.usage.models import KeyAction
from vibexp.core.users.models import Membership

__all__ = ["BatchDetector", "UsageRecorder"]

log = logging.getLogger(__name__)

#: Old action-log rows and rate windows are pruned this often (seconds).
PRUNE_INTERVAL = 600.0
#: Refusals kept between flushes at most (a flood of bad keys must not grow memory without bound).
MAX_REFUSALS = 20_000


@dataclass(slots=True)
class _Progress:
    """How many events of a batch are done with (written, or dropped as unstorable), from the front."""

    done: int = 0
    dropped: int = 0


class BatchDetector(Protocol):
    """What the flush hands each batch to (the alert detectors)."""

    async def detect(self, events: Sequence[UsageEvent], refusals: Sequence[Refusal]) -> None: ...


class UsageRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_interval: float = 0.5,
        retention: timedelta = timedelta(days=30),
        audit_retention: timedelta = timedelta(days=365),
        max_buffer: int = 200_000,
        on_flush: Callable[[int, float], None] | None = None,
        detector: BatchDetector | None = None,
    ) -> None:
        self._engine = engine
        self._retention = retention
        self._audit_retention = audit_retention
        self._buffer: deque[UsageEvent] = deque(maxlen=max_buffer)
        self._loop = PeriodicTask(
            "vibexp-usage-flush",
            self._flush_and_prune,
            interval=flush_interval,
            logger=log,
            what="usage flush",
            consequence=lambda: f"{self.pending} events kept for the next try",
            final=self.flush,  # a graceful shutdown loses no usage
        )
        self._flush_lock = asyncio.Lock()
        self._last_prune = 0.0
        #: Called after each successful flush with (events written, seconds the oldest one waited).
        self._on_flush = on_flush
        self._refusals: deque[Refusal] = deque(maxlen=MAX_REFUSALS)
        self.detector = detector
        self._detect_failures = FailureLog(log, "alert detection")
        #: How many events at the front of the buffer the detectors have seen (kept after a failed write).
        self._detected = 0

    def record(self, event: UsageEvent) -> None:
        self._buffer.append(event)

    def record_refusal(self, refusal: Refusal) -> None:
        """A refused authentication attempt, for the alert detectors (dropped when no detector is set)."""
        if self.detector is not None:
            self._refusals.append(refusal)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        """Stop the flush loop, then flush what is left."""
        await self._loop.stop()

    async def _flush_and_prune(self) -> None:
        await self.flush()
        if time.monotonic() - self._last_prune > PRUNE_INTERVAL:
            await self.prune()

    async def flush(self) -> int:
        async with self._flush_lock:
            if not self._buffer and not self._refusals:
                return 0
            events = list(self._buffer)
            self._buffer.clear()
            refusals = list(self._refusals)
            self._refusals.clear()
            seen = min(self._detected, len(events))  # these were handed to the detectors by an earlier flush
            self._detected = 0
            progress = _Progress()
            try:
                await self._store(events, progress)
            except BaseException as exc:
                rest = events[progress.done :]
                self._buffer.extendleft(reversed(rest))  # keep order; retried next time
                if isinstance(exc, Exception):  # the database is unreachable: detect now all the same, once
                    await self._detect(events[seen:], refusals)
                    self._detected = len(rest)
                else:  # cancelled (stopping): the final flush writes and detects what is left
                    self._detected = max(0, seen - progress.done)
                    self._refusals.extendleft(reversed(refusals))
                raise
            written = len(events) - progress.dropped
            if written and self._on_flush is not None:
                self._on_flush(written, (utcnow() - events[0].at).total_seconds())
            await self._detect(events[seen:], refusals)
            return written

    async def _store(self, events: list[UsageEvent], progress: _Progress) -> None:
        """Write ``events``: in one transaction, or, when the database refuses that for anything but an outage, one
        transaction per row, dropping each row it refuses. Raises (with ``progress`` saying how many are done) when
        the database is unreachable; what is not done is then kept by the caller."""
        if not events:
            return
        try:
            await self._write(events)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise
        else:
            progress.done = len(events)
            return
        for event in events:
            try:
                await self._write([event])
            except Exception as exc:
                if is_database_unavailable(exc):
                    raise
                _log_dropped(event, exc)
                progress.dropped += 1
            progress.done += 1

    async def _detect(self, events: list[UsageEvent], refusals: list[Refusal]) -> None:
        # Under the flush lock (the detectors' in-memory state sees batches in order), after the write or its
        # failure. Best effort: a failure loses this batch's alerts, never its usage.
        if self.detector is None or not (events or refusals):
            return
        try:
            await self.detector.detect(events, refusals)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._detect_failures.failed("this batch raised no alerts")
        else:
            self._detect_failures.succeeded()

    async def _write(self, events: list[UsageEvent]) -> None:
        """One transaction, taking its row locks in the installation's order (docs/architecture.md, "Lock order"): the
        people's memberships first, then the keys and grants, each set sorted by id. A removal or a role change
        locks a membership and then the person's keys and grants; a flush that took a key first would deadlock
        with it, and PostgreSQL would abort one of the two (a removal answered 500). Sorted, two replicas flushing
        the same keys at once take turns."""
        per_credential: dict[str, list[UsageEvent]] = {}
        for event in events:
            per_credential.setdefault(event.key_id, []).append(event)
        async with writing(self._engine), self._engine.begin() as conn:
            seen = _people_seen(events)
            if seen:
                await conn.execute(_MARK_SEEN, seen)
            for credential_id, used in sorted(per_credential.items()):
                last = max(used, key=lambda e: e.at)
                if last.is_grant:
                    await conn.execute(_count_use(OAuthGrant, credential_id, len(used), last.at))
                else:
                    await conn.execute(
                        _count_use(ApiKey, credential_id, len(used), last.at).values(
                            tool_type=last.tool_type, last_ip=last.client_ip
                        )
                    )
            await _insert_actions(
                conn,
                [
                    {
                        "key_id": None if e.is_grant else e.key_id,
                        "grant_id": e.key_id if e.is_grant else None,
                        "tenant_id": e.tenant_id,
                        "at": e.at,
                        "method": e.method,
                        "route": e.route,
                        "action": e.action,
                        "status": e.status,
                        "tool_type": e.tool_type,
                        "client_ip": e.client_ip,
                        "country": country_of(e.client_ip),
                    }
                    for e in events
                ],
            )

    async def prune(self) -> None:
        """Drop action-log rows and audit events past their retention periods, and rate windows older than the
        previous hour."""
        self._last_prune = time.monotonic()
        oldest_window = int(time.time()) // WINDOW_SECONDS * WINDOW_SECONDS - WINDOW_SECONDS
        async with writing(self._engine), self._engine.begin() as conn:
            await conn.execute(delete(KeyAction).where(KeyAction.at < utcnow() - self._retention))
            await conn.execute(delete(RateWindow).where(RateWindow.window_start < oldest_window))
            await conn.execute(audit.expired(before=utcnow() - self._audit_retention))


#: The action log's INSERT for SQLite's driver, and the columns a flush writes in its parameters' order (``id`` is
#: the database's); the COPY names the same columns.
_SQLITE_INSERT_ACTIONS_COMPILED = insert(KeyAction).compile(
    dialect=sqlite_dialect.dialect(), column_keys=[c.key for c in KeyAction.__table__.columns if c.key != "id"]
)
_SQLITE_INSERT_ACTIONS = str(_SQLITE_INSERT_ACTIONS_COMPILED)
_ACTION_COLUMNS: tuple[str, ...] = tuple(_SQLITE_INSERT_ACTIONS_COMPILED.positiontup or ())


async def _insert_actions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """The action-log rows, in the flush's transaction, their values converted by the columns' own bind processors
    first (so the rows are what the ORM would have written, and a naive time is refused alike), then handed to the
    driver in one call: PostgreSQL copies them in (binary ``COPY``), SQLite takes one ``executemany`` (without
    SQLAlchemy's per-row parameter handling: ~10 µs of this process's CPU a row, while holding the writer turn). A
    row the database refuses fails the whole call either way, and the caller then writes the batch row by row."""
    dialect = conn.dialect
    processors = [
        KeyAction.__table__.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _ACTION_COLUMNS
    ]
    records = [
        tuple(
            value if process is None else process(value)
            for value, process in zip((row[name] for name in _ACTION_COLUMNS), processors, strict=True)
        )
        for row in rows
    ]
    # The count UPDATEs before it began the transaction on this connection: the rows are part of it.
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        if dialect.name == "postgresql":
            await driver.copy_records_to_table(KeyAction.__tablename__, records=records, columns=_ACTION_COLUMNS)
        else:
            await driver.executemany(_SQLITE_INSERT_ACTIONS, records)
    except Exception as exc:  # as SQLAlchemy's own errors, so the flush tells an outage from a refused row
        lost = connection_lost(exc)
        error = OperationalError if lost or isinstance(exc, sqlite3.OperationalError) else DBAPIError
        raise error("INSERT INTO key_actions", None, exc, connection_invalidated=lost) from exc


def _count_use(model: type[ApiKey] | type[OAuthGrant], credential_id: str, count: int, at: datetime) -> Update:
    """The key's or grant's ``request_count`` grows by ``count``; ``last_used_at`` moves to ``at``, never back."""
    last_at = literal(at, type_=UTCDateTime())
    return (
        update(model)
        .where(model.id == credential_id)
        .values(
            request_count=model.request_count + count,
            last_used_at=case(
                (model.last_used_at.is_(None), last_at),
                (model.last_used_at < last_at, last_at),
                else_=model.last_used_at,
            ),
        )
    )


_SEEN_AT = bindparam("seen_at", type_=UTCDateTime())
#: A person's membership seen at ``seen_at`` (by a personal key of theirs), never earlier than it already was: one
#: statement, executed with one parameter set per person.
_MARK_SEEN = (
    update(Membership)
    .where(Membership.tenant_id == bindparam("seen_tenant"), Membership.user_id == bindparam("seen_user"))
    .values(
        last_seen_at=case(
            (Membership.last_seen_at.is_(None), _SEEN_AT),
            (Membership.last_seen_at < _SEEN_AT, _SEEN_AT),
            else_=Membership.last_seen_at,
        )
    )
)


def _people_seen(events: Sequence[UsageEvent]) -> list[dict[str, object]]:
    """``_MARK_SEEN``'s parameters: each key owner's latest use in each account, in a stable order (two replicas
    flushing at once lock the same memberships in the same order: no deadlock)."""
    latest: dict[tuple[str, str], datetime] = {}
    for event in events:
        if event.owner_user_id is None:
            continue
        person = (event.tenant_id, event.owner_user_id)
        if person not in latest or latest[person] < event.at:
            latest[person] = event.at
    return [
        {"seen_tenant": tenant_id, "seen_user": user_id, "seen_at": at}
        for (tenant_id, user_id), at in sorted(latest.items())
    ]


def _log_dropped(event: UsageEvent, exc: Exception) -> None:
    """One line for an event the database refused: the key id and the action (escaped), never a key."""
    orig = getattr(exc, "orig", None)  # the driver's error inside SQLAlchemy's
    cause = orig if isinstance(orig, BaseException) else exc
    reason = f"{type(cause).__name__}: {str(cause).partition(chr(10))[0]}"[:200]
    log.warning(
        "usage event dropped: the database refused it (%s); %s id %s, action %s, at %s",
        ascii(reason),
        event.credential.value,
        event.key_id,
        ascii(event.action[:100]),
        event.at.isoformat(),
    )
