"""The OAuth tables' housekeeping: a periodic job on every process (``Runtime.tasks``) that deletes, in bounded
batches:

* authorization codes that expired more than ``CODE_RETENTION`` ago, used or not. A used code is kept that long
  after its expiry so that presenting it again is still recognised as a reuse (RFC 6749 4.1.2: its grant is
  revoked); after that a replay is refused as unknown, exactly as an expired code is;
* abandoned consents: grants whose code was never exchanged (no token ever issued, not revoked) once every code of
  theirs is purgeable (created more than ``CODE_TTL + CODE_RETENTION`` ago). Listed, they would look like an active
  connected app that never made a request;
* registered clients (RFC 7591: anyone may register) that no grant of any account names, registered more than
  ``UNUSED_CLIENT_TTL`` ago. A client of a revoked grant stays (the grant is listed with it); a metadata-document
  client's row is only a cache of its document and stays too (fetched again when needed).

Every replica runs it: each delete is idempotent, a row another replica deleted first is simply not there. A run
deletes at most ``BATCH * MAX_BATCHES`` rows of each kind, one write unit per batch (short transactions, the SQLite
writer's turn taken per batch); what is left waits for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, CursorResult, Delete, Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.oauth.models import ClientKind, OAuthClient, OAuthCode, OAuthGrant
from vibexp.core.oauth.service import CODE_TTL
from vibexp.core.tasks import PeriodicTask

__all__ = ["BATCH", "CODE_RETENTION", "MAX_BATCHES", "UNUSED_CLIENT_TTL", "OAuthPurge", "Purged"]

log = logging.getLogger(__name__)

#: How long after its expiry a code (used or not) is kept: a reuse within it still revokes the grant.
CODE_RETENTION = timedelta(hours=1)
#: How long a registered client with no grant is kept (a client registers just before it sends the person to the
#: consent page; one that never got a grant in a week is abandoned).
UNUSED_CLIENT_TTL = timedelta(days=7)
#: Rows deleted per statement, and statements per kind and run.
BATCH = 500
MAX_BATCHES = 20


@dataclass(frozen=True, slots=True)
class Purged:
    codes: int = 0
    grants: int = 0
    clients: int = 0


class OAuthPurge:
    """Runs :meth:`purge_once` every ``interval`` seconds, the first time one interval after start (module
    docstring)."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, interval: float, batch: int = BATCH
    ) -> None:
        self._session_factory = session_factory
        self._batch = batch
        self._task = PeriodicTask(
            "vibexp-oauth-purge",
            self.purge_once,
            interval=interval,
            logger=log,
            what="OAuth purge of expired codes, abandoned consents and unused clients",
            consequence="they are kept until the next run succeeds (nothing else depends on it)",
        )

    async def start(self) -> None:
        await self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def purge_once(self) -> Purged:
        now = utcnow()
        codes = await self._in_batches(
            select(OAuthCode.code_hash).where(OAuthCode.expires_at < now - CODE_RETENTION),
            lambda keys: delete(OAuthCode).where(OAuthCode.code_hash.in_(keys)),
        )
        abandoned = (
            OAuthGrant.created_at < now - CODE_TTL - CODE_RETENTION,
            OAuthGrant.revoked_at.is_(None),
            OAuthGrant.access_hash.is_(None),
            OAuthGrant.refresh_hash.is_(None),
            OAuthGrant.previous_refresh_hash.is_(None),
            OAuthGrant.last_used_at.is_(None),
        )
        grants = await self._in_batches(
            select(OAuthGrant.id).where(*abandoned),
            # Checked again in the delete: a code exchanged since the select keeps its grant.
            lambda keys: delete(OAuthGrant).where(OAuthGrant.id.in_(keys), *abandoned),
        )
        unused: tuple[ColumnElement[bool], ...] = (
            OAuthClient.kind == ClientKind.registered.value,
            OAuthClient.created_at < now - UNUSED_CLIENT_TTL,
            ~select(OAuthGrant.id).where(OAuthGrant.client_id == OAuthClient.id).exists(),
        )
        clients = await self._in_batches(
            select(OAuthClient.id).where(*unused),
            # Checked again in the delete: a grant made since the select keeps its client.
            lambda keys: delete(OAuthClient).where(OAuthClient.id.in_(keys), *unused),
        )
        purged = Purged(codes, grants, clients)
        if codes or grants or clients:
            log.info(
                "OAuth purge: %d expired code(s), %d abandoned consent(s), %d unused client(s) deleted",
                codes,
                grants,
                clients,
            )
        return purged

    async def _in_batches(self, candidates: Select[str], deleting: Callable[[list[str]], Delete]) -> int:
        """Select at most ``batch`` keys of ``candidates``, delete them with ``deleting(keys)``, one write unit
        each, until none is left or ``MAX_BATCHES`` ran; the number of rows deleted."""
        total = 0
        for _ in range(MAX_BATCHES):
            async with session_scope(self._session_factory, write=True) as session:
                keys = list(await session.scalars(candidates.limit(self._batch)))
                if not keys:
                    break
                result = await session.execute(deleting(keys))
                total += result.rowcount if isinstance(result, CursorResult) else 0
            if len(keys) < self._batch:
                break
        return total
