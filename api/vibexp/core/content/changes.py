"""The content change feed: every process learns, within a second, which prompts, artifacts, keys and OAuth grants
changed.

A prompt or artifact is written by many hands (REST, the dashboard, MCP tools, an import, the operator, another
replica), and the MCP listen streams (``vibexp.api.mcp.live``) must hear of each change wherever it was made. This
feed polls the database like the key verifier does (``vibexp.core.keys.verifier``), for the same reasons: it works
the same on SQLite and PostgreSQL, needs no extra connection per process, and loses nothing when a connection drops.
Each poll reads:

* prompts and artifacts whose ``updated_at`` is recent (creates and edits: both set it);
* the audit trail (``audit_events.at``, indexed) for what leaves no row behind: ``prompt.deleted``,
  ``artifact.deleted`` (every delete is audited in its own transaction, ``ContentService.delete``), and the moved or
  removed ``production`` label that changes what ``prompts/get`` serves; ``key.deleted`` for keys;
* API keys whose ``updated_at`` is recent (scopes, status, expiry, and their owner's role: a role change or a
  removal bumps the person's keys, ``vibexp.core.members.service``), so a listener can re-check what its key may
  read. The owner's role comes in the same query (joined), as the key verifier reads it: no query per change;
* OAuth grants whose ``updated_at`` is recent (revocation, a new token pair, ``confirm_destructive``: each bumps it,
  ``vibexp.core.oauth.service``), with the person's role now (joined), so a stream opened with a grant's access
  token ends when the grant is revoked, its person leaves, or the token is replaced;
* accounts whose ``updated_at`` is recent, with whether they are suspended (a suspended account's keys are refused,
  so its listeners stop). An account's rows are never deleted by VibeXP (a deleted ``VibeXPTenant`` suspends it);
  a row deleted by hand takes its keys and its audit trail with it (cascade) and leaves nothing this feed can see.

The audit trail is the tombstone: no new table, no migration. Each poll re-reads from ``POLL_OVERLAP`` before the
previous one began (commits landing out of timestamp order, replicas' clocks apart), and a change already delivered
(same object, same version or same audit row) is not delivered again.

The feed costs nothing while nobody listens: a poll with no subscriber only moves the watermark. Subscribers are
synchronous callables run on the event loop; one that raises is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core import access
from vibexp.core.access import Scope
from vibexp.core.audit.models import AuditEvent
from vibexp.core.clock import utcnow
from vibexp.core.content.models import Artifact, Prompt
from vibexp.core.keys.models import ApiKey
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.tasks import PeriodicTask
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import Membership

__all__ = [
    "ACCOUNT_ACTIVE",
    "ACCOUNT_SUSPENDED",
    "GRANT_ACTIVE",
    "GRANT_REVOKED",
    "POLL_OVERLAP",
    "Change",
    "ChangeFeed",
    "ChangeKind",
    "Subscriber",
]

log = logging.getLogger(__name__)

#: How far back each poll re-reads (as the key verifier's poll does).
POLL_OVERLAP = timedelta(seconds=5)
#: An account change's ``status``.
ACCOUNT_SUSPENDED = "suspended"
ACCOUNT_ACTIVE = "active"
#: A grant change's ``status``.
GRANT_ACTIVE = "active"
GRANT_REVOKED = "revoked"


class ChangeKind(StrEnum):
    prompt = "prompt"
    artifact = "artifact"
    key = "key"
    grant = "grant"
    account = "account"


@dataclass(frozen=True, slots=True)
class Change:
    """One change: what kind of object, whose (``tenant_id``), which (``object_id``), and how it is named: a
    prompt's name, an artifact's ``project/slug`` (as the audit trail names it), a key's and an account's nothing
    (an account change's ``object_id`` is the account's id, its ``status`` ``suspended`` or ``active``). A key change
    carries the key's ``scopes``, ``status`` and ``expires_at`` as stored, its owner (``owner_user_id``, ``None``
    for a service key) and the owner's ``role`` in the account now (``None`` when the owner is no longer a member);
    ``deleted`` when the object is gone. A grant change likewise: its scopes, ``status`` (``active`` or
    ``revoked``), its person and their role, and its current access token's expiry as ``expires_at``."""

    kind: ChangeKind
    tenant_id: str
    object_id: str
    name: str = ""
    deleted: bool = False
    scopes: tuple[str, ...] = ()
    status: str = ""
    owner_user_id: str | None = None
    role: str | None = None
    expires_at: datetime | None = None

    @property
    def orphaned(self) -> bool:
        """A personal key whose owner left the account: the verifier refuses it as revoked (removal revokes it)."""
        return self.owner_user_id is not None and self.role is None

    @property
    def granted(self) -> frozenset[Scope]:
        """A key change's effective scopes, as the key verifier computes them: the key's own within its owner's role
        ceiling (a service key's are unbounded); nothing for an orphaned key."""
        if self.orphaned:
            return frozenset()
        # A grant's scopes, as the token verifier computes them: within the person's key ceiling.
        within = access.key_ceiling if self.kind is ChangeKind.grant else access.ceiling
        return access.expand(list(self.scopes)) & within(self.role)


Subscriber = Callable[[Change], None]

#: Audit actions that change a prompt or artifact without leaving a row whose ``updated_at`` moved.
_AUDITED = {
    "prompt.deleted": (ChangeKind.prompt, True),
    "prompt.label_moved": (ChangeKind.prompt, False),
    "prompt.label_removed": (ChangeKind.prompt, False),
    "artifact.deleted": (ChangeKind.artifact, True),
    "key.deleted": (ChangeKind.key, True),
}


class ChangeFeed:
    """Polls for content and key changes every ``interval`` seconds while anyone subscribes (module docstring)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], *, interval: float = 0.25) -> None:
        self._session_factory = session_factory
        self._subscribers: dict[object, Subscriber] = {}
        self._watermark = utcnow()
        #: Changes stamped before the first of the current subscribers joined are not delivered.
        self._floor = self._watermark
        #: What was delivered, with the time it is known by: forgotten once older than the re-read window.
        self._seen: dict[tuple[str, ...], datetime] = {}
        self._poll = PeriodicTask(
            "vibexp-content-changes",
            self.poll_once,
            interval=interval,
            logger=log,
            what="content change poll",
            consequence="MCP listeners hear of changes once the database answers",
        )

    async def start(self) -> None:
        self._watermark = utcnow()
        await self._poll.start()

    async def stop(self) -> None:
        await self._poll.stop()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(change)`` for each change from now on; returns an idempotent unsubscribe."""
        if not self._subscribers:  # the first listener: nothing before now is news (not even in the re-read window)
            self._watermark = self._floor = utcnow()
            self._seen.clear()
        token = object()
        self._subscribers[token] = subscriber

        def unsubscribe() -> None:
            self._subscribers.pop(token, None)

        return unsubscribe

    async def poll_once(self) -> list[Change]:
        """Read what changed since the last poll, hand each new change to every subscriber, and return them."""
        started = utcnow()
        if not self._subscribers:
            self._watermark = started
            return []
        since = self._watermark - POLL_OVERLAP
        found: list[tuple[tuple[str, ...], datetime, Change]] = []
        async with self._session_factory() as session:
            prompts = await session.execute(
                select(Prompt.id, Prompt.tenant_id, Prompt.name, Prompt.updated_at).where(Prompt.updated_at >= since)
            )
            for object_id, tenant_id, name, at in prompts:
                found.append(
                    (("p", object_id, at.isoformat()), at, Change(ChangeKind.prompt, tenant_id, object_id, name))
                )
            artifacts = await session.execute(
                select(Artifact.id, Artifact.tenant_id, Artifact.project, Artifact.slug, Artifact.updated_at).where(
                    Artifact.updated_at >= since
                )
            )
            for object_id, tenant_id, project, slug, at in artifacts:
                change = Change(ChangeKind.artifact, tenant_id, object_id, f"{project}/{slug}")
                found.append((("a", object_id, at.isoformat()), at, change))
            keys = await session.execute(
                select(
                    ApiKey.id,
                    ApiKey.tenant_id,
                    ApiKey.scopes,
                    ApiKey.status,
                    ApiKey.expires_at,
                    ApiKey.owner_user_id,
                    Membership.role,
                    ApiKey.updated_at,
                )
                .outerjoin(
                    Membership,
                    (Membership.tenant_id == ApiKey.tenant_id) & (Membership.user_id == ApiKey.owner_user_id),
                )
                .where(ApiKey.updated_at >= since)
            )
            for object_id, tenant_id, scopes, status, expires_at, owner, role, at in keys:
                change = Change(
                    ChangeKind.key,
                    tenant_id,
                    object_id,
                    scopes=tuple(scopes),
                    status=status,
                    owner_user_id=owner,
                    role=role,
                    expires_at=expires_at,
                )
                found.append((("k", object_id, at.isoformat()), at, change))
            grants = await session.execute(
                select(
                    OAuthGrant.id,
                    OAuthGrant.tenant_id,
                    OAuthGrant.scopes,
                    OAuthGrant.revoked_at,
                    OAuthGrant.access_expires_at,
                    OAuthGrant.user_id,
                    Membership.role,
                    OAuthGrant.updated_at,
                )
                .outerjoin(
                    Membership,
                    (Membership.tenant_id == OAuthGrant.tenant_id) & (Membership.user_id == OAuthGrant.user_id),
                )
                .where(OAuthGrant.updated_at >= since)
            )
            for object_id, tenant_id, scopes, revoked_at, expires_at, owner, role, at in grants:
                change = Change(
                    ChangeKind.grant,
                    tenant_id,
                    object_id,
                    scopes=tuple(scopes),
                    status=GRANT_ACTIVE if revoked_at is None else GRANT_REVOKED,
                    owner_user_id=owner,
                    role=role,
                    expires_at=expires_at,
                )
                found.append((("g", object_id, at.isoformat()), at, change))
            accounts = await session.execute(
                select(Tenant.id, Tenant.suspended, Tenant.updated_at).where(Tenant.updated_at >= since)
            )
            for tenant_id, suspended, at in accounts:
                status = ACCOUNT_SUSPENDED if suspended else ACCOUNT_ACTIVE
                change = Change(ChangeKind.account, tenant_id, tenant_id, status=status)
                found.append((("t", tenant_id, at.isoformat()), at, change))
            audited = await session.execute(
                select(
                    AuditEvent.id,
                    AuditEvent.tenant_id,
                    AuditEvent.action,
                    AuditEvent.target_id,
                    AuditEvent.target_name,
                    AuditEvent.at,
                ).where(AuditEvent.at >= since, AuditEvent.action.in_(_AUDITED))
            )
            for event_id, tenant_id, action, target_id, target_name, at in audited:
                kind, deleted = _AUDITED[action]
                change = Change(kind, tenant_id, target_id or "", target_name, deleted=deleted)
                found.append((("e", event_id), at, change))
        self._seen = {key: at for key, at in self._seen.items() if at >= since}
        fresh: list[Change] = []
        for key, at, change in sorted(found, key=lambda item: item[1]):
            if key in self._seen or at < self._floor:
                continue
            self._seen[key] = at
            fresh.append(change)
        for change in fresh:
            for subscriber in list(self._subscribers.values()):
                try:
                    subscriber(change)
                except Exception:  # one bad subscriber must not starve the others
                    log.exception("content change subscriber raised; continuing")
        self._watermark = started
        return fresh
