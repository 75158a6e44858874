"""Scopes and allow-lists as the core sees them: names and their expansion, strict CIDR parsing, the trusted-proxy
reading of X-Forwarded-For, and the no-escalation rule on mint and rotate (with the tenant's maximum lifetime)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.factories import TEST_ACTOR
from vibexp.core import (
    access,
    cidrs,
    models,  # noqa: F401 - registers every table on Base.metadata
)
from vibexp.core.client_address import ClientAddressResolver
from vibexp.core.clock import utcnow
from vibexp.core.errors import InsufficientScope, InvalidInput
from vibexp.core.keys import service as keys
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate


def test_write_includes_read_and_the_shorthands_expand() -> None:
    assert access.expand(["prompts:write"]) == {"prompts:write", "prompts:read"}
    assert access.expand(["read"]) == {s for s in access.ALL_SCOPES if s.endswith(":read")}
    assert access.expand(["*"]) == set(access.ALL_SCOPES)
    assert access.first_missing(access.expand(["read"]), ["memories:write"]) == "memories:write"
    assert access.first_missing(access.expand(["keys:write", "memories:read"]), ["*"]) == "prompts:read"
    assert access.first_missing(access.expand(["*"]), ["read", "keys:write"]) is None


@pytest.mark.parametrize(
    ("names", "problem"),
    [([], "at least one"), (["prompts:admin"], "unknown scope"), (["read", "read"], "twice")],
)
def test_bad_scope_lists_are_refused(names: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        access.normalise(names)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.1/8", "host bits set: did you mean 10.0.0.0/8"),
        ("fe80::1%eth0/128", "zones"),
        ("not-a-network", "not an IPv4 or IPv6 CIDR"),
        ("10.0.0.0/33", "not an IPv4 or IPv6 CIDR"),
    ],
)
def test_bad_cidrs_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        cidrs.normalise([text])


def test_an_allow_list_holds_at_most_64_networks() -> None:
    networks = [f"10.0.{i}.0/24" for i in range(65)]
    assert len(cidrs.normalise(networks[:64])) == 64
    with pytest.raises(ValueError, match=r"At most 64 networks per key \(65 given\)"):
        cidrs.normalise(networks)


def test_cidrs_match_ipv4_ipv6_and_mapped_addresses() -> None:
    assert cidrs.normalise(["203.0.113.7", "2001:db8::/32"]) == ("203.0.113.7/32", "2001:db8::/32")
    networks = cidrs.compile_networks(["203.0.113.0/24", "2001:db8::/32"])
    assert cidrs.client_allowed(networks, "203.0.113.9")
    assert cidrs.client_allowed(networks, "::ffff:203.0.113.9")  # a dual-stack socket's view of an IPv4 client
    assert cidrs.client_allowed(networks, "2001:db8::1")
    assert not cidrs.client_allowed(networks, "198.51.100.1")
    assert not cidrs.client_allowed(networks, None)
    assert cidrs.client_allowed((), "198.51.100.1")  # no list: anywhere
    assert cidrs.uncovered(["10.0.0.0/8"], ["10.1.0.0/16"]) is None
    assert cidrs.uncovered(["10.0.0.0/8"], ["192.168.0.0/16"]) == "192.168.0.0/16"
    assert cidrs.uncovered(["10.0.0.0/8"], []) == "any address"


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"])
    # From the Ingress (trusted): the address it appended, skipping trusted hops from the right.
    assert resolver.resolve("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"
    # A client forging the header in front of a trusted proxy: the proxy's own append is what counts.
    assert resolver.resolve("10.1.2.3", "1.2.3.4, 198.51.100.7") == "198.51.100.7"
    # From an untrusted peer the header changes nothing.
    assert resolver.resolve("198.51.100.7", "10.0.0.1") == "198.51.100.7"
    assert ClientAddressResolver().resolve("10.1.2.3", "198.51.100.7") == "10.1.2.3"


@dataclass(frozen=True)
class _Issuer:
    granted: frozenset[str]
    allowed_cidrs: tuple[str, ...] = ()
    expires_at: datetime | None = None


async def _tenant(session: AsyncSession, *, max_days: int | None = None) -> Tenant:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"perm-{utcnow().timestamp():.0f}"))
    tenant.max_key_lifetime_days = max_days
    await session.flush()
    return tenant


async def test_a_key_cannot_mint_a_wider_key(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    narrow = _Issuer(granted=access.expand(["keys:write", "memories:read"]))
    with pytest.raises(InsufficientScope) as refused:
        await keys.create_key(
            session,
            tenant_id=tenant.id,
            name="wider",
            actor=TEST_ACTOR,
            permissions=keys.KeyPermissions(scopes=["*"]),
            issuer=narrow,
        )
    assert refused.value.scope == "prompts:read"
    # Scopes omitted: the issuer's own (expanded, in documentation order).
    same = await keys.create_key(session, tenant_id=tenant.id, name="same", actor=TEST_ACTOR, issuer=narrow)
    assert same.record.scopes == ["memories:read", "keys:read", "keys:write"]
    # No wider networks, no later expiry than the issuer's.
    soon = utcnow() + timedelta(days=1)
    fenced = _Issuer(granted=access.expand(["*"]), allowed_cidrs=("10.0.0.0/8",), expires_at=soon)
    inherited = await keys.create_key(session, tenant_id=tenant.id, name="i", actor=TEST_ACTOR, issuer=fenced)
    assert inherited.record.allowed_cidrs == ["10.0.0.0/8"] and inherited.record.expires_at == soon
    for wider in (
        keys.KeyPermissions(allowed_cidrs=[]),
        keys.KeyPermissions(allowed_cidrs=["192.168.0.0/16"]),
        keys.KeyPermissions(expires_at=soon + timedelta(hours=1)),
    ):
        with pytest.raises(InsufficientScope):
            await keys.create_key(
                session, tenant_id=tenant.id, name="w", actor=TEST_ACTOR, permissions=wider, issuer=fenced
            )


async def test_rotating_into_wider_scopes_is_refused(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    full = await keys.create_key(session, tenant_id=tenant.id, name="full", actor=TEST_ACTOR)
    assert full.record.scopes == ["*"]
    narrow = _Issuer(granted=access.expand(["keys:write", "read"]))
    with pytest.raises(InsufficientScope):  # the rotated key would keep "*"
        await keys.rotate_key(session, key=full.record, actor=TEST_ACTOR, issuer=narrow)
    rotated = await keys.rotate_key(
        session, key=full.record, actor=TEST_ACTOR, issuer=narrow, permissions=keys.KeyPermissions(scopes=["read"])
    )
    assert rotated.record.scopes == ["read"]


async def test_the_tenants_maximum_lifetime_applies(session: AsyncSession) -> None:
    tenant = await _tenant(session, max_days=30)
    new = await keys.create_key(session, tenant_id=tenant.id, name="default", actor=TEST_ACTOR)
    assert new.record.expires_at is not None
    assert abs(new.record.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    with pytest.raises(InvalidInput, match="maximum key lifetime of 30 days"):
        await keys.create_key(
            session,
            tenant_id=tenant.id,
            name="too long",
            actor=TEST_ACTOR,
            permissions=keys.KeyPermissions(expires_at=utcnow() + timedelta(days=31)),
        )


def test_an_ipv4_mapped_cidr_is_stored_and_matched_as_ipv4() -> None:
    """``::ffff:a.b.c.d/n`` (n >= 96) is the IPv4 network ``a.b.c.d/(n-96)``: the verifier sees IPv4 clients (also
    those a dual-stack socket reports as ``::ffff:a.b.c.d``) as IPv4, so a mapped network kept as IPv6 never
    matched anyone."""
    assert cidrs.normalise(["::ffff:127.0.0.1/128", "::ffff:10.0.0.0/104"]) == ("127.0.0.1/32", "10.0.0.0/8")
    assert cidrs.normalise(["::ffff:203.0.113.7"]) == ("203.0.113.7/32",)
    with pytest.raises(ValueError, match="listed twice"):
        cidrs.normalise(["127.0.0.1/32", "::ffff:127.0.0.1/128"])
    # A stored list that predates normalising (written as IPv6) matches too, from both kinds of socket.
    stored = cidrs.compile_networks(["::ffff:127.0.0.1/128"])
    assert cidrs.client_allowed(stored, "127.0.0.1")
    assert cidrs.client_allowed(stored, "::ffff:127.0.0.1")
    assert not cidrs.client_allowed(stored, "127.0.0.2")
    # An IPv6 network that holds the mapped range still holds a client a dual-stack socket reports that way.
    assert cidrs.client_allowed(cidrs.compile_networks(["::/0"]), "::ffff:198.51.100.1")
    assert cidrs.uncovered(["127.0.0.0/8"], list(cidrs.normalise(["::ffff:127.0.0.1/128"]))) is None
