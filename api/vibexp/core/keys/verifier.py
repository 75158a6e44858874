"""Key verification with an in-process cache that every process keeps in step within a second.

A verified key is cached by its SHA-256 for ``key_cache_ttl`` seconds, so the request path costs one hash and one
dict lookup. Changes reach the cache two ways:

* in the process that made them, at commit (``vibexp.core.notices``): revocation is immediate there;
* in every other process, by polling ``updated_at`` of keys and tenants every ``poll_interval`` seconds (0.25 s by
  default). Polling works the same on SQLite and PostgreSQL and loses nothing when a connection drops, unlike
  LISTEN/NOTIFY; it costs two indexed queries per interval per process. Each poll re-reads rows from 5 s before
  the previous poll began, so commits landing out of timestamp order, or replicas' clocks up to 5 s apart, are
  not missed; an entry is evicted only when the row's version differs from the cached one.

Unknown and revoked keys are remembered for ``NEGATIVE_TTL`` seconds in a bounded negative cache (a key that does
not exist cannot start to exist under the same 256-bit value, and revocation is final), so a client repeating a
bad key costs a hash and a dict lookup, not a database query. Expired keys are refused from the cached entry.
A well-formed key whose checksum fails (``tokens.has_valid_checksum``) is refused as a typo without a database
query unless its digest is one of a key made before checksums existed (``legacy_format``). Those digests are read
once, on the first checksum failure, and kept up to date by the poll (a replica still running the previous release
may insert more); no new key is ever legacy, so the set only grows by such inserts. Typo'd keys are not put in the
negative cache: refusing them costs a CRC-32, and a flood of them must not push real refusals out.

For the alert detectors, a refusal of a revoked or expired key carries the key's id and tenant
(``InvalidApiKey.key_id``/``tenant_id``, remembered with the negative cache entry, so no query either), and a typo
carries the key's display prefix (``typo_prefix``); the auth middleware appends them to the usage recorder's
refusal buffer.

A personal key's effective scopes are its own within its owner's role ceiling (``access.ceiling``), computed when
the key is cached: the membership is read in the same query as the key (an outer join), so the ceiling costs
nothing per request. A role change or a removal bumps the ``updated_at`` of the person's keys in its own transaction
(``vibexp.core.members.service``), so the same poll and the same notice carry it to every process. A personal key
whose owner is no longer a member is refused as revoked (removal revokes it anyway, in the same transaction).

Suspended keys are never cached either way: suspension is reversible (the operator resumes a key when its tenant's
policy allows it again), so each attempt reads the database.
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

from vibexp.core import access, cidrs, notices
from vibexp.core.access import Actor, ActorType, Caller, CredentialKind, Scope
from vibexp.core.clock import utcnow
from vibexp.core.errors import AccountSuspended, AuthFailure, InvalidApiKey
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.tokens import (
    KEY_PREFIX,
    KEY_TOKEN_LENGTH,
    display_prefix,
    has_valid_checksum,
    hash_key,
    parse_authorization,
)
from vibexp.core.notices import Notice
from vibexp.core.tasks import PeriodicTask
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import Membership, User

__all__ = ["KeyVerifier", "Principal"]

log = logging.getLogger(__name__)

#: ``Bearer vib_`` + 64 lowercase hex digits, exactly what parse_authorization accepts with no complaint.
_WELL_FORMED = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] " + re.escape(KEY_PREFIX) + f"[0-9a-f]{{{KEY_TOKEN_LENGTH}}}")

#: How far back each poll re-reads, to tolerate out-of-order commits and clock skew between replicas.
POLL_OVERLAP = timedelta(seconds=5)
#: How long an unknown or revoked key is refused from memory, and how many such keys are remembered at most.
NEGATIVE_TTL = 10.0
NEGATIVE_MAX = 10_000
#: The 401 message for a key whose checksum fails: it was mistyped or truncated and re-padded, never issued.
TYPO_MESSAGE = (
    "Unknown API key: it has a typo (its last 8 characters are not its checksum); check for copy-paste errors"
)


#: A Principal's audit name until the verifier composes the key's own (every Principal it caches has one).
_UNNAMED_KEY = Actor(ActorType.api_key)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key (by id and prefix, never the secret) and its tenant.

    ``scopes`` and ``allowed_cidrs`` are the key's as stored (what a minted key is compared with); ``granted`` and
    ``networks`` are the same compiled once, when the key is cached, so each request's checks are in memory.
    """

    key_id: str
    key_prefix: str
    key_name: str
    tenant_id: str
    tenant_name: str
    tier: str
    hourly_limit: int
    suspended: bool
    expires_at: datetime | None
    scopes: tuple[str, ...] = (access.FULL_ACCESS,)
    granted: frozenset[Scope] = frozenset(access.ALL_SCOPES)
    allowed_cidrs: tuple[str, ...] = ()
    networks: cidrs.Networks = ()
    #: Destructive MCP tools ask the person first (``ApiKey.confirm_destructive``), cached with the key.
    confirm_destructive: bool = False
    #: Who the audit trail names for this key (its id, name and prefix), composed once, when the key is cached.
    acting_as: Actor = _UNNAMED_KEY
    #: A personal key's owner (user id) and their role in the account when the key was cached; ``None``: a service
    #: key. ``granted`` is already within the role's ceiling.
    owner_user_id: str | None = None
    role: str | None = None
    #: What was presented: an API key, or an OAuth access token (``vibexp.core.oauth.verifier``, whose principal
    #: carries the grant's id as ``key_id``).
    credential: CredentialKind = CredentialKind.api_key

    def caller(self, *, client_ip: str | None, user_agent: str | None) -> Caller:
        """The ``Caller`` of one request made with this key: only the address and the user agent are new."""
        return Caller(
            self.tenant_id,
            self.credential,
            self.granted,
            self.acting_as,
            self.key_id,
            self.owner_user_id,
            self.role,
            client_ip,
            user_agent,
            self.allowed_cidrs,
            self.expires_at,
        )


def _key_name(key: ApiKey, owner: User | None) -> str:
    """The audit trail's name for a key: its name and prefix, and its owner's e-mail for a personal key."""
    if owner is None:
        return f"{key.name} ({key.prefix}…)"
    return f"{key.name} ({key.prefix}…) of {owner.email}"


@dataclass(slots=True)
class _Entry:
    principal: Principal
    key_hash: str
    key_version: datetime
    tenant_version: datetime
    loaded_at: float


class KeyVerifier:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 60.0,
        poll_interval: float = 0.25,
    ) -> None:
        self._session_factory = session_factory
        self._ttl = ttl
        self._by_hash: dict[str, _Entry] = {}
        self._refused: dict[str, tuple[float, InvalidApiKey]] = {}  # digest -> (monotonic deadline, the refusal)
        self._poll = PeriodicTask(
            "vibexp-key-poll",
            self.poll_once,
            interval=poll_interval,
            logger=log,
            what="key change poll",
            consequence="the key cache is cleared until the database answers",
            on_failure=self._poll_failed,
        )
        self._watermark = utcnow()
        #: Digests of keys made before checksums; None until first needed (and again after a failed poll).
        self._legacy: set[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        notices.listen(Notice.KEY_CHANGED, self._on_keys_committed)
        notices.listen(Notice.TENANT_CHANGED, self._on_tenants_committed)
        self._watermark = utcnow()
        await self._poll.start()

    async def stop(self) -> None:
        notices.unlisten(Notice.KEY_CHANGED, self._on_keys_committed)
        notices.unlisten(Notice.TENANT_CHANGED, self._on_tenants_committed)
        await self._poll.stop()

    # -- verification ------------------------------------------------------------------------------------------
    async def verify(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header value; raises InvalidApiKey or AccountSuspended."""
        # A well-formed header (the common case) is recognised by one precompiled match; anything else goes through
        # parse_authorization, which names the problem.
        if authorization is not None and _WELL_FORMED.fullmatch(authorization):
            key = authorization[7:]
        else:
            key = parse_authorization(authorization)
        digest = hash_key(key)
        entry = self._by_hash.get(digest)
        if entry is None or time.monotonic() - entry.loaded_at > self._ttl:
            refused = self._refused.get(digest)
            if refused is not None:
                if refused[0] > time.monotonic():
                    known = refused[1]
                    raise InvalidApiKey(
                        known.message, reason=known.reason, key_id=known.key_id, tenant_id=known.tenant_id
                    )
                del self._refused[digest]
            if not has_valid_checksum(key) and not await self._is_legacy(digest):
                raise InvalidApiKey(TYPO_MESSAGE, reason=AuthFailure.unknown, typo_prefix=display_prefix(key))
            entry = await self._load(digest)
        elif not hmac.compare_digest(entry.key_hash, digest):  # defensive: the dict matched on the same digest
            raise InvalidApiKey("Unknown API key", reason=AuthFailure.unknown)
        return self._check(entry.principal)

    @staticmethod
    def _check(principal: Principal) -> Principal:
        if principal.expires_at is not None and principal.expires_at <= utcnow():
            raise InvalidApiKey(
                "This API key has expired: create a new key",
                reason=AuthFailure.expired,
                key_id=principal.key_id,
                tenant_id=principal.tenant_id,
            )
        if principal.suspended:
            raise AccountSuspended("This account is suspended: check its status in the dashboard")
        return principal

    async def _is_legacy(self, digest: str) -> bool:
        if self._legacy is None:
            async with self._session_factory() as session:
                hashes = await session.scalars(select(ApiKey.key_hash).where(ApiKey.legacy_format.is_(True)))
                self._legacy = set(hashes)
        return digest in self._legacy

    async def _load(self, digest: str) -> _Entry:
        async with self._session_factory() as session:
            row = (
                await session.execute(
                    select(ApiKey, Tenant, Membership.role)
                    .join(Tenant, Tenant.id == ApiKey.tenant_id)
                    .outerjoin(
                        Membership,
                        (Membership.tenant_id == ApiKey.tenant_id) & (Membership.user_id == ApiKey.owner_user_id),
                    )
                    .where(ApiKey.key_hash == digest)
                )
            ).one_or_none()
        if row is None or not hmac.compare_digest(row[0].key_hash, digest):
            raise self._refuse(
                digest, "Unknown API key: check for copy-paste errors or create a new key", AuthFailure.unknown
            )
        key, tenant, role = row
        # A personal key whose owner left the account: removal revokes it in the same transaction; never trust it.
        if key.status == KeyStatus.revoked.value or (key.owner_user_id is not None and role is None):
            raise self._refuse(
                digest,
                "This API key has been revoked: create a new key",
                AuthFailure.revoked,
                key_id=key.id,
                tenant_id=key.tenant_id,
            )
        # A suspended key of a suspended account answers as the account (403 account_suspended, from _check).
        if key.status == KeyStatus.suspended.value and not tenant.suspended:
            self._by_hash.pop(digest, None)
            raise InvalidApiKey(
                "This API key is suspended: its tenant's policy does not allow it now", reason=AuthFailure.suspended
            )
        entry = _Entry(
            principal=Principal(
                key_id=key.id,
                key_prefix=key.prefix,
                key_name=key.name,
                tenant_id=tenant.id,
                tenant_name=tenant.name,
                tier=tenant.tier,
                hourly_limit=tenant.hourly_limit,
                suspended=tenant.suspended,
                expires_at=key.expires_at,
                scopes=tuple(key.scopes),
                granted=access.expand(key.scopes) & access.ceiling(role),
                allowed_cidrs=tuple(key.allowed_cidrs),
                networks=cidrs.compile_networks(key.allowed_cidrs),
                confirm_destructive=key.confirm_destructive,
                acting_as=Actor(ActorType.api_key, id=key.id, name=_key_name(key, key.owner_user)),
                owner_user_id=key.owner_user_id,
                role=role,
            ),
            key_hash=digest,
            key_version=key.updated_at,
            tenant_version=tenant.updated_at,
            loaded_at=time.monotonic(),
        )
        self._by_hash[digest] = entry
        return entry

    def _refuse(
        self, digest: str, message: str, reason: AuthFailure, *, key_id: str | None = None, tenant_id: str | None = None
    ) -> InvalidApiKey:
        """Remember a refusal for ``NEGATIVE_TTL`` seconds (oldest forgotten first beyond ``NEGATIVE_MAX``), with
        the key's id when it exists, so a revoked key presented again is reported as that key without a query."""
        self._by_hash.pop(digest, None)
        refusal = InvalidApiKey(message, reason=reason, key_id=key_id, tenant_id=tenant_id)
        while len(self._refused) >= NEGATIVE_MAX:
            self._refused.pop(next(iter(self._refused)))
        self._refused[digest] = (time.monotonic() + NEGATIVE_TTL, refusal)
        return refusal

    # -- invalidation ------------------------------------------------------------------------------------------
    def invalidate(self, *, key_ids: Collection[str] = (), tenant_ids: Collection[str] = ()) -> None:
        if not key_ids and not tenant_ids:
            return
        stale = [
            digest
            for digest, entry in self._by_hash.items()
            if entry.principal.key_id in key_ids or entry.principal.tenant_id in tenant_ids
        ]
        for digest in stale:
            self._by_hash.pop(digest, None)

    def clear(self) -> None:
        self._by_hash.clear()

    def _on_keys_committed(self, key_ids: list[str]) -> None:
        self.invalidate(key_ids=set(key_ids))

    def _on_tenants_committed(self, tenant_ids: list[str]) -> None:
        self.invalidate(tenant_ids=set(tenant_ids))

    async def poll_once(self) -> None:
        """Evict cache entries whose key or tenant changed in the database since the last poll."""
        started = utcnow()
        since = self._watermark - POLL_OVERLAP
        async with self._session_factory() as session:
            keys = (
                await session.execute(
                    select(ApiKey.id, ApiKey.updated_at, ApiKey.key_hash, ApiKey.legacy_format).where(
                        ApiKey.updated_at >= since
                    )
                )
            ).all()
            tenants = (
                await session.execute(select(Tenant.id, Tenant.updated_at).where(Tenant.updated_at >= since))
            ).all()
        key_versions = {row[0]: row[1] for row in keys}
        if self._legacy is not None:
            self._legacy.update(row[2] for row in keys if row[3])
        tenant_versions = {row[0]: row[1] for row in tenants}
        stale = [
            digest
            for digest, entry in self._by_hash.items()
            if key_versions.get(entry.principal.key_id, entry.key_version) != entry.key_version
            or tenant_versions.get(entry.principal.tenant_id, entry.tenant_version) != entry.tenant_version
        ]
        for digest in stale:
            self._by_hash.pop(digest, None)
        # Our own clock, not the newest row's: a replica whose clock runs ahead must not push changes out of view.
        self._watermark = started

    def _poll_failed(self) -> None:
        # The database is unreachable: we cannot learn of revocations, so stop trusting the cache.
        self.clear()
        self._legacy = None  # re-read in full once the database answers: inserts may have been missed
