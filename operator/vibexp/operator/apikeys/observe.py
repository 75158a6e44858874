"""What a reconcile reads before it decides: the keys this ApiKey minted (found by their ``external_ref``, whatever
the status says), the tenant, and the Secret, turned into the planner's views (:mod:`vibexp.operator.plan`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client import V1Secret
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.errors import NotFound
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.tenants import usecases as accounts
from vibexp.operator.models import ApiKeySpec, TenantSpec
from vibexp.operator.plan import CurrentKey, KeyState, SecretView, TenantRecord, TenantView
from vibexp.operator.resources import external_ref
from vibexp.operator.secrets import SecretMetadata, holds_key, is_owned_by, metadata_current, secret_trigger

__all__ = ["current_key", "latest_key", "secret_metadata", "secret_view", "tenant_view", "unrevoked"]


async def latest_key(session: AsyncSession, uid: str, start: int = 0) -> tuple[int, ApiKey | None]:
    """The newest key minted for this ApiKey and its rotation number; (0, None) when none exists."""
    n = max(0, start)
    current = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
    while current is None and n > 0:  # the status ran ahead of the database (never expected, but be safe)
        n -= 1
        current = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
    if current is None:
        return n, None
    while True:
        newer = await keys.by_external_ref(session, external_ref=external_ref(uid, n + 1))
        if newer is None:
            return n, current
        n, current = n + 1, newer


async def unrevoked(session: AsyncSession, uid: str, upto: int) -> list[ApiKey]:
    """Every key this ApiKey minted that is not revoked yet (the current one and any in a grace period)."""
    found = []
    for n in range(upto + 1):
        key = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
        if key is not None and key.status != KeyStatus.revoked.value:
            found.append(key)
    return found


def current_key(record: ApiKey | None, slot: int) -> CurrentKey | None:
    if record is None:
        return None
    return CurrentKey(
        id=record.id,
        prefix=record.prefix,
        slot=slot,
        tenant_id=record.tenant_id,
        state=KeyState(record.status),
        created_at=record.created_at,
        expires_at=record.expires_at,
        name=record.name,
        description=record.description,
        scopes=tuple(record.scopes),
        allowed_cidrs=tuple(record.allowed_cidrs),
        confirm_destructive=record.confirm_destructive,
    )


def secret_view(spec: ApiKeySpec, secret: V1Secret | None, record: ApiKey | None, slot: int) -> SecretView | None:
    if secret is None:
        return None
    trigger = secret_trigger(secret)
    current = record is not None and holds_key(secret, record.key_hash)
    want = secret_metadata(spec, record, slot) if record is not None else None
    return SecretView(
        owned=is_owned_by(secret, spec.uid),
        holds_key=current,
        trigger=trigger,
        metadata_current=want is not None and metadata_current(secret, want, trigger=trigger),
    )


def secret_metadata(spec: ApiKeySpec, record: ApiKey, slot: int) -> SecretMetadata:
    """The labels and annotations the Secret of this key (rotation ``slot``) carries."""
    return SecretMetadata(spec, key_id=record.id, prefix=record.prefix, rotation=slot)


async def tenant_view(session: AsyncSession, name: str, cr: Mapping[str, Any] | None) -> TenantView:
    try:
        record = await accounts.account_named(session, name=name)
    except NotFound:
        found = None
    else:
        found = TenantRecord(id=record.id, name=record.name, suspended=record.suspended)
    return TenantView(spec=TenantSpec.from_body(cr) if cr is not None else None, record=found)
