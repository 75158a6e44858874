"""The tenant key policy, applied by the server: revoke keys left unused, and report when keys expire.

Every ``interval`` seconds each API process runs :meth:`KeyPolicySweep.sweep`:

* For each tenant with ``revoke_unused_after_days``, one conditional ``UPDATE ... WHERE status = 'active' AND
  <unused> RETURNING`` revokes its keys whose last use (or, never used, creation) is older than that. Replicas
  racing each other need no leader: the row lock and the re-checked condition let exactly one of them revoke a
  key, and only that one gets the row back and writes its ``key.auto_revoked`` audit event (same transaction).
  The change reaches verifiers as a manual revocation does: ``updated_at`` for other processes' polls, and
  ``vibexp.core.notices`` (``Notice.KEY_CHANGED``) for this process's cache at commit.
* Each key whose ``expires_at`` has passed gets one ``key.expired`` audit event (GitHub's "your token expired"),
  claimed the same way: ``UPDATE ... SET expiry_recorded_at ... WHERE expiry_recorded_at IS NULL ... RETURNING``.
  Nothing else changes: verifiers already refuse an expired key from its cached ``expires_at``. Keys revoked
  before they expired get no event (they had stopped working already).
* It reads the active keys (tenant, id, name, expiry) and hands them to ``on_active_keys`` (the API's
  ``vibexp_api_key_expiry_timestamp_seconds`` and ``vibexp_api_key_info``), so scraping costs no query and requests
  none at all.

Last use lags: the usage recorder writes ``last_used_at`` in batches. The sweep first flushes this process's
buffer (``before_sweep``); another replica's buffered uses reach the database within its flush interval (at most
one second, ``Settings.usage_flush_interval``). So a key whose last *written* use is ``days`` old but that was used
within the last second on another replica can still be revoked: it had been unused for ``days`` days up to that
second. If the flush fails the pass is skipped, so a replica that cannot write its usage never sweeps; but the
others do not see its buffered uses either (``VibeXPUsageNotWritten`` alerts on that state).

A key is revoked at most ``interval`` seconds after it crosses the policy; a pass that fails (the database is
away) is logged and retried at the next interval, as is one PostgreSQL chose as a deadlock victim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.db import Database, writing
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.notices import Notice, note
from vibexp.core.tasks import PeriodicTask
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import User

__all__ = [
    "EXPIRY_ACTOR",
    "POLICY_ACTOR",
    "ActiveKey",
    "AutoRevoked",
    "Expired",
    "KeyPolicySweep",
    "active_keys",
    "record_expired_keys",
    "revoke_unused_keys",
]

log = logging.getLogger(__name__)

#: Who the audit trail says revoked a key for the tenant's policy.
POLICY_ACTOR = Actor.system("key policy")
#: Who the audit trail says recorded a key's expiry.
EXPIRY_ACTOR = Actor.system("key expiry")


@dataclass(frozen=True, slots=True)
class AutoRevoked:
    """A key this sweep revoked (and no other: the conditional update returned it to this sweep only)."""

    key_id: str
    tenant_id: str
    name: str
    last_used_at: datetime | None
    days: int


@dataclass(frozen=True, slots=True)
class Expired:
    """A key whose expiry this sweep recorded (and no other)."""

    key_id: str
    tenant_id: str
    name: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """An active key as the metrics label it: tenant name, key id, the key's name (user text: the metrics escape and
    cut it), its expiry if it has one still ahead, and its owner's e-mail ("" for a service key). Never the key, its
    prefix or its hash."""

    tenant: str
    key_id: str
    name: str
    expires_at: datetime | None
    owner: str = ""


async def revoke_unused_keys(session: AsyncSession, *, now: datetime | None = None) -> list[AutoRevoked]:
    """Revoke every active key unused for its tenant's ``revoke_unused_after_days`` and audit each; flushes only
    (the caller commits, and the verifiers learn of the keys then)."""
    now = now or utcnow()
    policies = (
        await session.execute(
            select(Tenant.id, Tenant.revoke_unused_after_days)
            .where(Tenant.revoke_unused_after_days.is_not(None))
            .order_by(Tenant.id)  # every replica locks the tenants' keys in the same order: no deadlock between them
        )
    ).all()
    revoked: list[AutoRevoked] = []
    for tenant_id, days in policies:
        if days is None:  # excluded by the query; the column's type does not know it
            continue
        cutoff = now - timedelta(days=days)
        unused = or_(
            ApiKey.last_used_at < cutoff,
            and_(ApiKey.last_used_at.is_(None), ApiKey.created_at < cutoff),
        )
        rows = await session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.status == KeyStatus.active.value, unused)
            .values(status=KeyStatus.revoked.value, revoked_at=now, updated_at=now)
            .returning(ApiKey.id, ApiKey.name, ApiKey.last_used_at),
            execution_options={"synchronize_session": False},
        )
        for key_id, name, last_used_at in rows.all():
            revoked.append(AutoRevoked(key_id, tenant_id, name, last_used_at, days))
    for key in revoked:
        note(session, Notice.KEY_CHANGED, key.key_id)
        await audit.record(
            session,
            tenant_id=key.tenant_id,
            action="key.auto_revoked",
            actor=POLICY_ACTOR,
            target=Target("key", id=key.key_id, name=key.name),
            details={
                "reason": "unused",
                "days": key.days,
                "last_used_at": key.last_used_at.isoformat() if key.last_used_at is not None else None,
            },
        )
    return revoked


async def record_expired_keys(session: AsyncSession, *, now: datetime | None = None) -> list[Expired]:
    """Audit ``key.expired`` once for every key (not revoked) whose ``expires_at`` has passed; flushes only."""
    now = now or utcnow()
    rows = await session.execute(
        update(ApiKey)
        .where(
            ApiKey.expires_at <= now,
            ApiKey.expiry_recorded_at.is_(None),
            ApiKey.status != KeyStatus.revoked.value,
        )
        .values(expiry_recorded_at=now)
        .returning(ApiKey.id, ApiKey.tenant_id, ApiKey.name, ApiKey.expires_at),
        execution_options={"synchronize_session": False},
    )
    expired = [
        Expired(key_id, tenant_id, name, expires_at)
        for key_id, tenant_id, name, expires_at in rows.all()
        if expires_at is not None  # always (the condition); the column's type does not know it
    ]
    for key in expired:
        await audit.record(
            session,
            tenant_id=key.tenant_id,
            action="key.expired",
            actor=EXPIRY_ACTOR,
            target=Target("key", id=key.key_id, name=key.name),
            details={"expires_at": key.expires_at.isoformat()},
        )
    return expired


async def active_keys(session: AsyncSession, *, now: datetime | None = None) -> list[ActiveKey]:
    """Active keys not yet expired (``expires_at`` kept only when still ahead), ordered by tenant name and key id."""
    now = now or utcnow()
    rows = await session.execute(
        select(Tenant.name, ApiKey.id, ApiKey.name, ApiKey.expires_at, User.email)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .outerjoin(User, User.id == ApiKey.owner_user_id)
        .where(ApiKey.status == KeyStatus.active.value, or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
        .order_by(Tenant.name, ApiKey.id)
    )
    return [
        ActiveKey(tenant, key_id, name, expires_at, owner or "")
        for tenant, key_id, name, expires_at, owner in rows.all()
    ]


class KeyPolicySweep:
    """The background task that runs :meth:`sweep` at start and then every ``interval`` seconds.

    ``before_sweep`` runs first (the runtime passes the usage recorder's flush, so this process's recent uses are in
    ``last_used_at``); ``on_active_keys`` receives each sweep's :func:`active_keys`.
    """

    def __init__(
        self,
        database: Database,
        *,
        interval: float = 60.0,
        before_sweep: Callable[[], Awaitable[object]] | None = None,
        on_active_keys: Callable[[Sequence[ActiveKey]], None] | None = None,
    ) -> None:
        self._database = database
        self._before_sweep = before_sweep
        self._on_active_keys = on_active_keys
        self._lock = asyncio.Lock()
        self._loop = PeriodicTask(
            "vibexp-key-policy",
            self.sweep,
            interval=interval,
            logger=log,
            what="key policy sweep",
            consequence=f"retried in {interval:g} s",
            run_first=True,
        )

    @property
    def running(self) -> bool:
        return self._loop.running

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> list[AutoRevoked]:
        """One pass: record expiries and revoke unused keys (one transaction), then report the active keys'
        expiries. Returns the keys this pass revoked."""
        async with self._lock:
            if self._before_sweep is not None:
                await self._before_sweep()
            async with writing(self._database.engine), self._database.session_factory() as session:
                await record_expired_keys(session)  # first: an expired key that is also unused gets both events
                revoked = await revoke_unused_keys(session)
                await session.commit()
            for key in revoked:
                log.info(
                    "key %s of tenant %s revoked: unused for %d days (key policy)", key.key_id, key.tenant_id, key.days
                )
            if self._on_active_keys is not None:
                async with self._database.session_factory() as session:
                    self._on_active_keys(await active_keys(session))
            return revoked
