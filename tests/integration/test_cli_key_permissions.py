"""``vibexp key create/rotate --scope/--allow-cidr/--expires-in``, the permission columns of ``key list`` and
``vibexp tenant update --max-key-lifetime-days/--revoke-unused-after-days`` as a user runs them (issue #14):
subprocesses against the test database, and a real server for what a key so made may do. Each bad value is one
line on stderr, nothing on stdout, exit 2, and no key made or changed."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_cli import KEY_LINE, vibexp

from helpers.api_errors import assert_error
from helpers.servers import LiveServer
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate

#: The clock may move between the command's "now" and the test's: a minute covers a slow subprocess.
SLACK = timedelta(minutes=1)


@pytest.fixture
async def tenant(db_factory: async_sessionmaker[AsyncSession]) -> str:
    """A fresh tenant, made in-process: ``tenant create`` is tested in test_cli.py, and a subprocess costs seconds."""
    name = f"cli-perms-{uuid.uuid4().hex[:8]}"
    async with session_scope(db_factory) as session:
        await tenants.create_tenant(session, data=TenantCreate(name=name, tier=Tier.pro))
    return name


async def _keys(db_factory: async_sessionmaker[AsyncSession], tenant: str) -> list[ApiKey]:
    async with session_scope(db_factory) as session:
        tenant_id = (await tenants.get_tenant_by_name(session, name=tenant)).id
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
        return list(await session.scalars(query))


async def _tenant(db_factory: async_sessionmaker[AsyncSession], name: str) -> Tenant:
    async with session_scope(db_factory) as session:
        return await tenants.get_tenant_by_name(session, name=name)


def _create(database_url: str, tenant: str, name: str, *flags: str) -> str:
    """``key create`` that must succeed: the key, alone on stdout as ever."""
    result = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", name, *flags)
    assert result.returncode == 0, result.stderr
    assert KEY_LINE.match(result.stdout), result.stdout
    key = result.stdout.strip()
    assert key not in result.stderr and "shown only once" in result.stderr
    return key


def _assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr, result.stderr


def _about(moment: datetime | None, expected: datetime) -> bool:
    return moment is not None and expected - SLACK <= moment <= expected + SLACK


async def test_a_read_only_key_reads_but_is_refused_a_write_over_http(
    database_url: str, tenant: str, tmp_path: Path
) -> None:
    read_only = _create(database_url, tenant, "agent", "--scope", "read")
    fenced = _create(database_url, tenant, "office only", "--allow-cidr", "203.0.113.0/24")
    with LiveServer(database_url).start(tmp_path) as server:
        auth = {"Authorization": f"Bearer {read_only}"}
        assert httpx.get(f"{server.url}/api/v1/api-keys", headers=auth).status_code == 200  # keys:read
        refused = httpx.post(f"{server.url}/api/v1/api-keys", json={"name": "more"}, headers=auth)
        assert_error(refused, 403, "insufficient_scope")
        assert refused.headers["www-authenticate"].endswith('error="insufficient_scope", scope="keys:write"')
        # The server sees the test as 127.0.0.1: outside the key's one network.
        outside = httpx.get(f"{server.url}/api/v1/prompts", headers={"Authorization": f"Bearer {fenced}"})
        assert_error(outside, 403, "ip_not_allowed")


async def test_scopes_networks_and_expiry_are_stored_and_listed(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    _create(database_url, tenant, "everything")
    before = utcnow()
    _create(
        database_url,
        tenant,
        "ci",
        "--scope",
        "prompts:read,memories:write",  # a comma-separated list, as `key list` shows it
        "--scope",
        "artifacts:read",
        "--allow-cidr",
        "10.0.0.0/8",
        "--allow-cidr",
        "2001:DB8::/32",  # stored in canonical form
        "--expires-in",
        "90d",
    )
    everything, ci = await _keys(db_factory, tenant)
    assert (everything.scopes, everything.allowed_cidrs, everything.expires_at) == (["*"], [], None)
    assert ci.scopes == ["prompts:read", "memories:write", "artifacts:read"]
    assert ci.allowed_cidrs == ["10.0.0.0/8", "2001:db8::/32"]
    assert _about(ci.expires_at, before + timedelta(days=90)), ci.expires_at
    listing = vibexp(database_url, "key", "list", "--tenant", tenant)
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    # The first seven columns as before (scripts read NAME as $7); the permissions follow, then the owner.
    assert header == "ID\tPREFIX\tSTATUS\tCREATED\tLAST USED\tREQUESTS\tNAME\tSCOPES\tALLOWED FROM\tEXPIRES\tOWNER"
    columns = {row.split("\t")[6]: row.split("\t") for row in rows}
    assert columns["everything"][0] == everything.id
    assert columns["everything"][7:] == ["*", "any", "never", "service"]
    assert columns["ci"][7:9] == ["prompts:read,memories:write,artifacts:read", "10.0.0.0/8,2001:db8::/32"]
    assert datetime.fromisoformat(columns["ci"][9]) == ci.expires_at.replace(microsecond=0)  # type: ignore[union-attr]


async def test_rotate_keeps_the_old_permissions_unless_told_otherwise(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    _create(database_url, tenant, "agent", "--scope", "read", "--allow-cidr", "10.0.0.0/8", "--expires-in", "2w")
    (old,) = await _keys(db_factory, tenant)
    kept = vibexp(database_url, "key", "rotate", old.id)
    assert kept.returncode == 0 and KEY_LINE.match(kept.stdout), kept.stderr
    second = (await _keys(db_factory, tenant))[-1]
    assert (second.scopes, second.allowed_cidrs) == (["read"], ["10.0.0.0/8"])
    assert second.expires_at == old.expires_at  # as over REST: an omitted expiry is the old key's (issue 26)
    before = utcnow()
    changed = vibexp(
        database_url,
        "key",
        "rotate",
        second.id,
        "--scope",
        "prompts:write",
        "--allow-cidr",
        "any",
        "--expires-in",
        "12h",
    )
    assert changed.returncode == 0 and KEY_LINE.match(changed.stdout), changed.stderr
    third = (await _keys(db_factory, tenant))[-1]
    assert (third.scopes, third.allowed_cidrs) == (["prompts:write"], [])
    assert _about(third.expires_at, before + timedelta(hours=12)), third.expires_at


async def test_the_tenant_maximum_lifetime_is_the_default_and_bounds_expires_in(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    policy = vibexp(
        database_url, "tenant", "update", tenant, "--max-key-lifetime-days", "30", "--revoke-unused-after-days", "60"
    )
    assert policy.returncode == 0, policy.stderr
    assert policy.stdout.splitlines()[1] == "key policy: maximum key lifetime 30 days, revoke unused keys after 60 days"
    before = utcnow()
    _create(database_url, tenant, "default expiry")
    (key,) = await _keys(db_factory, tenant)
    assert _about(key.expires_at, before + timedelta(days=30)), key.expires_at

    too_late = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "long", "--expires-in", "31d")
    _assert_one_line_error(too_late, "beyond this account's maximum key lifetime of 30 days")
    rotated_too_late = vibexp(database_url, "key", "rotate", key.id, "--expires-in", "5w")
    _assert_one_line_error(rotated_too_late, "beyond this account's maximum key lifetime of 30 days")
    (unchanged,) = await _keys(db_factory, tenant)  # nothing made, the old key not rotated
    assert (unchanged.id, unchanged.status, unchanged.replaced_by_id) == (key.id, "active", None)


async def test_the_key_policy_is_shown_and_cleared(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert vibexp(database_url, "tenant", "update", tenant, "--revoke-unused-after-days", "3650").returncode == 0
    other_change = vibexp(database_url, "tenant", "update", tenant, "--tier", "pro")
    # A tenant with a policy shows it after any update; one without, only when the update touches it.
    assert other_change.stdout.splitlines()[1:] == [
        "key policy: maximum key lifetime none, revoke unused keys after 3650 days"
    ]
    cleared = vibexp(
        database_url,
        "tenant",
        "update",
        tenant,
        "--max-key-lifetime-days",
        "none",
        "--revoke-unused-after-days",
        "NONE",
    )
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.splitlines()[1:] == ["key policy: maximum key lifetime none, revoke unused keys after none"]
    stored = await _tenant(db_factory, tenant)
    assert (stored.max_key_lifetime_days, stored.revoke_unused_after_days) == (None, None)
    plain = vibexp(database_url, "tenant", "update", tenant, "--tier", "pro")
    assert len(plain.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--scope", "x"], "--scope: unknown scope 'x'; known scopes: prompts:read, ", id="unknown-scope"),
        pytest.param(["--scope", "read", "--scope", "read"], "--scope: scope 'read' is listed twice", id="dup-scope"),
        pytest.param(["--scope", "read,prompts:read,read"], "scope 'read' is listed twice", id="dup-in-a-list"),
        pytest.param(["--scope", ""], "--scope: unknown scope ''", id="empty-scope"),
        pytest.param(
            ["--allow-cidr", "10.0.0.1/8"], "--allow-cidr: '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?"
        ),
        pytest.param(["--allow-cidr", "fe80::1%eth0/64"], "--allow-cidr: 'fe80::1%eth0/64': IPv6 zones", id="zone"),
        pytest.param(["--allow-cidr", "nowhere"], "'nowhere' is not an IPv4 or IPv6 CIDR", id="not-a-cidr"),
        pytest.param(["--allow-cidr", "10.0.0.0/8", "--allow-cidr", "10.0.0.0/8"], "listed twice", id="dup-cidr"),
        pytest.param(["--allow-cidr", "any,10.0.0.0/8"], "cannot be combined with a network", id="any-and-a-network"),
        pytest.param(
            ["--allow-cidr", ",".join(f"10.0.{i}.0/24" for i in range(65))],
            "--allow-cidr: At most 64 networks per key (65 given)",
            id="too-many-cidrs",
        ),
        pytest.param(["--expires-in", "soon"], "--expires-in: 'soon' is not a duration", id="garbage-duration"),
        pytest.param(["--expires-in", "3mo"], "'3mo' is not a duration", id="months"),
        pytest.param(["--expires-in", "0d"], "--expires-in: '0d' is no time at all", id="zero"),
        pytest.param(["--expires-in=-1d"], "'-1d' is not a duration", id="negative"),
        pytest.param(["--expires-in", "3651d"], "longer than the maximum of 3650 days", id="too-long"),
        pytest.param(["--expires-in", "9" * 30 + "w"], "longer than the maximum of 3650 days", id="overflow"),
    ],
)
async def test_bad_key_options_exit_2_with_one_line_and_make_no_key(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession], flags: list[str], message: str
) -> None:
    result = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "refused", *flags)
    _assert_one_line_error(result, message)
    assert await _keys(db_factory, tenant) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--scope", "prompts:admin"], "unknown scope 'prompts:admin'", id="unknown-scope"),
        pytest.param(["--allow-cidr", "10.0.0.1/8"], "did you mean 10.0.0.0/8?", id="host-bits"),
        pytest.param(["--expires-in", "1y"], "'1y' is not a duration", id="garbage-duration"),
    ],
)
async def test_bad_rotate_options_exit_2_and_leave_the_key_alone(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession], flags: list[str], message: str
) -> None:
    _create(database_url, tenant, "agent")
    (key,) = await _keys(db_factory, tenant)
    _assert_one_line_error(vibexp(database_url, "key", "rotate", key.id, *flags), message)
    (unchanged,) = await _keys(db_factory, tenant)
    assert (unchanged.status, unchanged.replaced_by_id) == ("active", None)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--max-key-lifetime-days", "0"], "--max-key-lifetime-days: '0': Input should be greater than"),
        pytest.param(["--max-key-lifetime-days", "-1"], "'-1': Input should be greater than or equal to 1"),
        pytest.param(["--max-key-lifetime-days", "abc"], "'abc': Input should be a valid integer"),
        pytest.param(["--max-key-lifetime-days", "4000"], "'4000': Input should be less than or equal to 3650"),
        pytest.param(["--revoke-unused-after-days", "0"], "--revoke-unused-after-days: '0': Input should be greater"),
        pytest.param(
            ["--revoke-unused-after-days", "4000"], "--revoke-unused-after-days: '4000': Input should be less"
        ),
        pytest.param(
            ["--max-key-lifetime-days", "30", "--revoke-unused-after-days", "never"],
            "--revoke-unused-after-days: 'never'",
            id="one-good-one-bad",
        ),
    ],
)
async def test_bad_key_policy_exits_2_with_one_line_and_changes_nothing(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession], flags: list[str], message: str
) -> None:
    _assert_one_line_error(vibexp(database_url, "tenant", "update", tenant, *flags), message)
    stored = await _tenant(db_factory, tenant)
    assert (stored.max_key_lifetime_days, stored.revoke_unused_after_days) == (None, None)
