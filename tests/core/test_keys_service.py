"""Key records through the core services on a rolled-back transaction: format, hashing, display prefix, the
plaintext nowhere in the database, rotation with and without grace, expiry, idempotent revocation."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.factories import TEST_ACTOR
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.clock import utcnow
from vibexp.core.db import Base
from vibexp.core.errors import InvalidApiKey, InvalidInput, NotFound
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import KeyStatus
from vibexp.core.keys.tokens import parse_authorization, validate_key_format
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate

KEY_RE = re.compile(r"vib_[0-9a-f]{64}")


async def _tenant(session: AsyncSession) -> Tenant:
    return await tenants.create_tenant(session, data=TenantCreate(name=f"t-{secrets.token_hex(5)}"))


async def test_key_format_hash_and_prefix(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="laptop", description="notes")
    assert KEY_RE.fullmatch(new.plaintext)
    assert new.record.key_hash == hashlib.sha256(new.plaintext.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", new.record.key_hash)
    assert new.record.prefix == new.plaintext[:12] == "vib_" + new.plaintext[4:12]
    assert new.record.status == KeyStatus.active.value and new.record.request_count == 0
    assert new.plaintext not in repr(new) and new.plaintext[4:] not in repr(new)


async def test_keys_are_unique_and_random(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    made = [await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name=f"k{i}") for i in range(40)]
    assert len({k.plaintext for k in made}) == 40
    assert len({k.record.key_hash for k in made}) == 40
    # 256 bits from `secrets`: all 16 hex digits turn up across 40 keys.
    assert set("".join(k.plaintext[4:] for k in made)) == set("0123456789abcdef")


async def test_plaintext_is_stored_nowhere(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    created = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="scan me")
    rotated = await keys.rotate_key(session, actor=TEST_ACTOR, key=created.record, grace_period=timedelta(minutes=5))
    secrets_to_find = [created.plaintext, rotated.plaintext]
    bodies = [s[4:] for s in secrets_to_find]
    scanned = 0
    for table in Base.metadata.sorted_tables:
        for row in (await session.execute(select(table))).all():
            for value in row:
                text = str(value)
                scanned += 1
                for secret in bodies:
                    assert secret not in text, f"plaintext key found in {table.name}"
                    assert secret[:32] not in text and secret[32:] not in text, f"half a key in {table.name}"
    assert scanned > 20


async def test_rotate_without_grace_revokes_the_old_key(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    old = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="ci", description="pipeline")
    new = await keys.rotate_key(session, actor=TEST_ACTOR, key=old.record)
    assert old.record.status == KeyStatus.revoked.value and old.record.revoked_at is not None
    assert old.record.replaced_by_id == new.record.id and new.record.rotated_from_id == old.record.id
    assert (new.record.name, new.record.description) == ("ci", "pipeline")
    assert new.record.status == KeyStatus.active.value and new.plaintext != old.plaintext


async def test_rotate_with_grace_sets_the_old_keys_expiry(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    old = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="ci")
    before = utcnow()
    new = await keys.rotate_key(session, actor=TEST_ACTOR, key=old.record, grace_period=timedelta(hours=1))
    assert old.record.status == KeyStatus.active.value and old.record.revoked_at is None
    assert old.record.expires_at is not None
    assert before + timedelta(hours=1) <= old.record.expires_at <= utcnow() + timedelta(hours=1)
    assert new.record.expires_at is None
    # A grace period never extends an expiry that comes sooner.
    soon = await keys.create_key(
        session,
        actor=TEST_ACTOR,
        tenant_id=tenant.id,
        name="s",
        permissions=keys.KeyPermissions(expires_at=utcnow() + timedelta(minutes=1)),
    )
    await keys.rotate_key(session, actor=TEST_ACTOR, key=soon.record, grace_period=timedelta(days=1))
    assert soon.record.expires_at is not None and soon.record.expires_at <= utcnow() + timedelta(minutes=1)


async def test_revoked_key_cannot_be_rotated(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    key = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="x")
    await keys.revoke_key(session, actor=TEST_ACTOR, key=key.record)
    with pytest.raises(InvalidInput):
        await keys.rotate_key(session, actor=TEST_ACTOR, key=key.record)


async def test_expiry_must_be_in_the_future(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    with pytest.raises(InvalidInput):
        await keys.create_key(
            session,
            actor=TEST_ACTOR,
            tenant_id=tenant.id,
            name="x",
            permissions=keys.KeyPermissions(expires_at=utcnow() - timedelta(seconds=1)),
        )
    later = utcnow() + timedelta(days=90)
    key = await keys.create_key(
        session, actor=TEST_ACTOR, tenant_id=tenant.id, name="x", permissions=keys.KeyPermissions(expires_at=later)
    )
    assert key.record.expires_at == later


async def test_revoke_is_idempotent(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    key = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="x")
    first = await keys.revoke_key(session, actor=TEST_ACTOR, key=key.record)
    revoked_at = first.revoked_at
    assert first.status == KeyStatus.revoked.value and revoked_at is not None
    second = await keys.revoke_key(session, actor=TEST_ACTOR, key=key.record)
    assert second.revoked_at == revoked_at and second.status == KeyStatus.revoked.value


async def test_get_key_is_scoped_to_the_tenant(session: AsyncSession) -> None:
    owner, stranger = await _tenant(session), await _tenant(session)
    key = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=owner.id, name="x")
    assert (await keys.get_key(session, key_id=key.record.id, tenant_id=owner.id)).id == key.record.id
    with pytest.raises(NotFound):
        await keys.get_key(session, key_id=key.record.id, tenant_id=stranger.id)
    for bad in ["nope", "", "\x00", key.record.id.upper(), key.record.id + "0"]:
        with pytest.raises(NotFound):
            await keys.get_key(session, key_id=bad, tenant_id=owner.id)


async def test_list_keys_filters_by_status(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    a = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="a")
    b = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="b")
    await keys.revoke_key(session, actor=TEST_ACTOR, key=b.record)
    assert [k.id for k in await keys.list_keys(session, tenant_id=tenant.id)] == [a.record.id, b.record.id]
    assert [k.id for k in await keys.list_keys(session, tenant_id=tenant.id, status=KeyStatus.active)] == [a.record.id]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("  ", "missing"),
        ("Bearer", "empty"),
        ("Basic abc", "wrong_scheme"),
        ("Bearer  vib_" + "a" * 64, "whitespace"),
        ('Bearer "vib_' + "a" * 64 + '"', "quoted"),
        ("Bearer sk_" + "a" * 64, "wrong_prefix"),
        ("Bearer vib_" + "a" * 63, "wrong_length"),
        ("Bearer vib_" + "A" * 64, "not_hex"),
    ],
)
def test_parse_authorization_names_the_problem(header: str | None, reason: str) -> None:
    with pytest.raises(InvalidApiKey) as caught:
        parse_authorization(header)
    assert caught.value.reason == reason


def test_a_well_formed_key_parses() -> None:
    key = "vib_" + "0123456789abcdef" * 4
    assert parse_authorization(f"Bearer {key}") == key
    validate_key_format(key)


async def test_suspend_and_resume(session: AsyncSession) -> None:
    """The operator's policy hold: reversible, visible to other processes (updated_at), never on a revoked key."""
    tenant = await _tenant(session)
    key = (await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="held")).record
    before = key.updated_at
    await keys.suspend_key(session, actor=TEST_ACTOR, key=key)
    assert key.status == KeyStatus.suspended.value and key.updated_at >= before
    await keys.suspend_key(session, actor=TEST_ACTOR, key=key)  # idempotent
    with pytest.raises(InvalidInput, match="suspended key cannot be rotated"):
        await keys.rotate_key(session, actor=TEST_ACTOR, key=key)
    assert [k.id for k in await keys.list_keys(session, tenant_id=tenant.id, status=KeyStatus.suspended)] == [key.id]
    await keys.resume_key(session, actor=TEST_ACTOR, key=key)
    assert key.status == KeyStatus.active.value and key.revoked_at is None
    await keys.revoke_key(session, actor=TEST_ACTOR, key=key)
    with pytest.raises(InvalidInput, match="revoked key cannot be suspended"):
        await keys.suspend_key(session, actor=TEST_ACTOR, key=key)
    with pytest.raises(InvalidInput, match="revoked key cannot be resumed"):
        await keys.resume_key(session, actor=TEST_ACTOR, key=key)
