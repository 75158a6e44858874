"""Access-token verification for ``/mcp/v1/connect``, from an in-process cache like the key verifier's
(``vibexp.core.keys.verifier``): the request path costs one hash and one dict lookup.

A verified token is cached by its SHA-256 with a ``Principal`` (the grant's id where a key's id goes, the person's
role, the grant's scopes within that role's ceiling). Changes reach the cache two ways:

* in the process that made them, at commit (``Notice.GRANT_CHANGED``, ``TENANT_CHANGED``, and ``MEMBER_CHANGED``
  for a role change or a removal): immediate there;
* in every other process, by a poll every ``poll_interval`` seconds (0.25 s by default) of the cached grants
  themselves, with their person's membership (outer join): a revoked, refreshed or deleted grant, a role change or a
  removal from the account evicts the entry; and of tenants changed since the last poll (suspension, limits). The
  poll reads only the grants this process has cached (in chunks), so it stays cheap however many grants exist.

Unknown tokens are remembered for ``NEGATIVE_TTL`` seconds in a bounded negative cache. An expired token is refused
from its cached entry. Usage is not counted here: the auth middleware records a grant's request as a ``UsageEvent``
like a key's, and the usage recorder's flush writes it (``request_count``, ``last_used_at``, the action log).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core import access, notices
from vibexp.core.access import Actor, ActorType, CredentialKind
from vibexp.core.clock import utcnow
from vibexp.core.errors import AccountSuspended
from vibexp.core.keys.verifier import Principal
from vibexp.core.notices import Notice
from vibexp.core.oauth.errors import InvalidToken
from vibexp.core.oauth.models import OAuthClient, OAuthGrant
from vibexp.core.oauth.service import grant_name
from vibexp.core.oauth.tokens import ACCESS_PREFIX, hash_secret
from vibexp.core.tasks import PeriodicTask
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import Membership, User

__all__ = ["GrantVerifier"]

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] (" + re.escape(ACCESS_PREFIX) + r"[0-9a-f]{64})")
POLL_OVERLAP = timedelta(seconds=5)
NEGATIVE_TTL = 10.0
NEGATIVE_MAX = 10_000
#: Most grants one poll query asks about (a cache larger than this is polled in several queries).
POLL_CHUNK = 500
_MISSING = "Missing access token: this endpoint accepts OAuth access tokens ('Authorization: Bearer vibo_...')"


@dataclass(slots=True)
class _Entry:
    principal: Principal
    expires_at: datetime
    grant_version: datetime
    member_version: datetime
    tenant_version: datetime
    loaded_at: float


def parse_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise InvalidToken(_MISSING, sent=False)
    match = _TOKEN.fullmatch(authorization)
    if match is None:
        if authorization[7:].startswith("vib_"):
            raise InvalidToken(
                "API keys are not accepted here: /mcp/v1/connect takes OAuth access tokens "
                "(use /mcp/v1/common for an API key)"
            )
        raise InvalidToken("Malformed access token: send 'Authorization: Bearer vibo_...'")
    return match.group(1)


class GrantVerifier:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, ttl: float = 60.0, poll_interval: float = 0.25
    ) -> None:
        self._session_factory = session_factory
        self._ttl = ttl
        self._by_hash: dict[str, _Entry] = {}
        self._refused: dict[str, float] = {}
        self._watermark = utcnow()
        self._poll = PeriodicTask(
            "vibexp-grant-poll",
            self.poll_once,
            interval=poll_interval,
            logger=log,
            what="OAuth grant change poll",
            consequence="the access-token cache is cleared until the database answers",
            on_failure=self.clear,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        notices.listen(Notice.GRANT_CHANGED, self._on_grants_committed)
        notices.listen(Notice.TENANT_CHANGED, self._on_tenants_committed)
        notices.listen(Notice.MEMBER_CHANGED, self._on_members_committed)
        self._watermark = utcnow()
        await self._poll.start()

    async def stop(self) -> None:
        notices.unlisten(Notice.GRANT_CHANGED, self._on_grants_committed)
        notices.unlisten(Notice.TENANT_CHANGED, self._on_tenants_committed)
        notices.unlisten(Notice.MEMBER_CHANGED, self._on_members_committed)
        await self._poll.stop()

    # -- verification ------------------------------------------------------------------------------------------
    async def verify(self, authorization: str | None) -> Principal:
        """The grant behind an ``Authorization`` header; raises ``InvalidToken`` or ``AccountSuspended``."""
        token = parse_token(authorization)
        digest = hash_secret(token)
        entry = self._by_hash.get(digest)
        if entry is None or time.monotonic() - entry.loaded_at > self._ttl:
            refused_until = self._refused.get(digest)
            if refused_until is not None:
                if refused_until > time.monotonic():
                    raise InvalidToken("Unknown, expired or revoked access token")
                del self._refused[digest]
            entry = await self._load(digest)
        if entry.expires_at <= utcnow():
            raise InvalidToken("The access token has expired: refresh it")
        if entry.principal.suspended:
            raise AccountSuspended("This account is suspended: check its status in the dashboard")
        return entry.principal

    async def _load(self, digest: str) -> _Entry:
        async with self._session_factory() as session:
            row = (
                await session.execute(
                    select(OAuthGrant, Tenant, Membership, User.email, OAuthClient.name)
                    .join(Tenant, Tenant.id == OAuthGrant.tenant_id)
                    .join(User, User.id == OAuthGrant.user_id)
                    .join(OAuthClient, OAuthClient.id == OAuthGrant.client_id)
                    .outerjoin(
                        Membership,
                        (Membership.tenant_id == OAuthGrant.tenant_id) & (Membership.user_id == OAuthGrant.user_id),
                    )
                    .where(OAuthGrant.access_hash == digest)
                )
            ).one_or_none()
        if row is None or row[0].access_hash is None or not hmac.compare_digest(row[0].access_hash, digest):
            raise self._refuse(digest)
        grant, tenant, membership, email, client_name = row
        if grant.revoked_at is not None or membership is None or grant.access_expires_at is None:
            raise self._refuse(digest)
        role = membership.role
        name = f"{grant_name(client_name)} of {email}"
        entry = _Entry(
            principal=Principal(
                key_id=grant.id,
                key_prefix=ACCESS_PREFIX,
                key_name=client_name,
                tenant_id=tenant.id,
                tenant_name=tenant.name,
                tier=tenant.tier,
                hourly_limit=tenant.hourly_limit,
                suspended=tenant.suspended,
                # The access token's expiry (a listen stream ends then); refusing it is ``verify``'s, from the entry.
                expires_at=grant.access_expires_at,
                scopes=tuple(grant.scopes),
                granted=access.expand(grant.scopes) & access.key_ceiling(role),
                acting_as=Actor(ActorType.user, id=grant.user_id, name=name),
                owner_user_id=grant.user_id,
                role=role,
                credential=CredentialKind.grant,
                confirm_destructive=grant.confirm_destructive,
            ),
            expires_at=grant.access_expires_at,
            grant_version=grant.updated_at,
            member_version=membership.updated_at,
            tenant_version=tenant.updated_at,
            loaded_at=time.monotonic(),
        )
        self._by_hash[digest] = entry
        return entry

    def _refuse(self, digest: str) -> InvalidToken:
        self._by_hash.pop(digest, None)
        while len(self._refused) >= NEGATIVE_MAX:
            self._refused.pop(next(iter(self._refused)))
        self._refused[digest] = time.monotonic() + NEGATIVE_TTL
        return InvalidToken("Unknown, expired or revoked access token")

    # -- invalidation ------------------------------------------------------------------------------------------
    def invalidate(
        self, *, grant_ids: Collection[str] = (), tenant_ids: Collection[str] = (), user_ids: Collection[str] = ()
    ) -> None:
        stale = [
            digest
            for digest, entry in self._by_hash.items()
            if entry.principal.key_id in grant_ids
            or entry.principal.tenant_id in tenant_ids
            or entry.principal.owner_user_id in user_ids
        ]
        for digest in stale:
            self._by_hash.pop(digest, None)

    def clear(self) -> None:
        self._by_hash.clear()

    def _on_grants_committed(self, grant_ids: list[str]) -> None:
        self.invalidate(grant_ids=set(grant_ids))

    def _on_tenants_committed(self, tenant_ids: list[str]) -> None:
        self.invalidate(tenant_ids=set(tenant_ids))

    def _on_members_committed(self, user_ids: list[str]) -> None:
        self.invalidate(user_ids=set(user_ids))

    async def poll_once(self) -> None:
        """Evict entries whose grant, person's membership or tenant changed."""
        started = utcnow()
        since = self._watermark - POLL_OVERLAP
        cached = list({entry.principal.key_id for entry in self._by_hash.values()})
        current: dict[str, tuple[datetime, datetime | None]] = {}
        async with self._session_factory() as session:
            for start in range(0, len(cached), POLL_CHUNK):
                rows = await session.execute(
                    select(OAuthGrant.id, OAuthGrant.updated_at, Membership.updated_at)
                    .outerjoin(
                        Membership,
                        (Membership.tenant_id == OAuthGrant.tenant_id) & (Membership.user_id == OAuthGrant.user_id),
                    )
                    .where(OAuthGrant.id.in_(cached[start : start + POLL_CHUNK]))
                )
                current.update({row[0]: (row[1], row[2]) for row in rows})
            tenants = (
                dict(
                    (
                        await session.execute(select(Tenant.id, Tenant.updated_at).where(Tenant.updated_at >= since))
                    ).all()
                )
                if self._by_hash
                else {}
            )
        stale = []
        for digest, entry in self._by_hash.items():
            now = current.get(entry.principal.key_id)
            if (
                now is None
                or now != (entry.grant_version, entry.member_version)
                or tenants.get(entry.principal.tenant_id, entry.tenant_version) != entry.tenant_version
            ):
                stale.append(digest)
        for digest in stale:
            self._by_hash.pop(digest, None)
        self._watermark = started
