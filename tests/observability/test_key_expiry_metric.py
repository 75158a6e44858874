"""``vibexp_api_key_expiry_timestamp_seconds`` and ``vibexp_api_key_info`` on a real app's ``/metrics`` (SQLite and
PostgreSQL): every active key with an expiry ahead, and every active key's name (escaped, bounded), as of the latest
key policy sweep; a revoked key's series go with the next sweep."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account
from vibexp.api.metrics import KEY_NAME_LABEL_LENGTH, key_name_label
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.runtime import Runtime
from vibexp.core.users import service as users

METRIC = "vibexp_api_key_expiry_timestamp_seconds"


async def gauge_samples(client: httpx.AsyncClient, name: str, labels: set[str]) -> tuple[str, list[Sample]]:
    """The scrape's text and the samples of the gauge ``name``, each with exactly ``labels``."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples: list[Sample] = []
    for family in text_string_to_metric_families(response.text):
        if family.name == name:
            assert family.type == "gauge"
            for sample in family.samples:
                assert set(sample.labels) == labels
                samples.append(sample)
    return response.text, samples


async def expiries(client: httpx.AsyncClient) -> tuple[str, dict[str, tuple[str, float]]]:
    """The scrape's text and its expiry series by key id: (tenant label, value)."""
    text, samples = await gauge_samples(client, METRIC, {"tenant", "key_id"})
    return text, {s.labels["key_id"]: (s.labels["tenant"], s.value) for s in samples}


async def test_active_keys_with_an_expiry_have_a_series_revoked_and_unexpiring_ones_do_not(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    runtime: Runtime = app.state.runtime
    soon = utcnow() + timedelta(days=3)
    async with session_scope(session_factory) as session:
        expiring = await keys.create_key(
            session,
            actor=TEST_ACTOR,
            tenant_id=account.tenant.id,
            name="expires in 3 days",
            permissions=keys.KeyPermissions(expires_at=soon),
        )
        retired = await keys.create_key(
            session,
            actor=TEST_ACTOR,
            tenant_id=account.tenant.id,
            name="revoked",
            permissions=keys.KeyPermissions(expires_at=soon),
        )
        await keys.revoke_key(session, key=retired.record, actor=TEST_ACTOR)

    await runtime.key_policy.sweep()
    text, found = await expiries(client)

    assert found[expiring.record.id] == (account.tenant.name, soon.timestamp())
    assert retired.record.id not in found
    assert account.key_id not in found  # no expiry, no series
    for new in (expiring, retired):
        assert new.plaintext not in text and new.record.prefix not in text and new.record.key_hash not in text

    # Revoked now: the next sweep drops its series.
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, expiring.record.id)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    await runtime.key_policy.sweep()
    _, after = await expiries(client)
    assert expiring.record.id not in after


# -- vibexp_api_key_info: names for per-key panels ------------------------------------------------------------------
INFO = "vibexp_api_key_info"


async def infos(client: httpx.AsyncClient) -> tuple[str, dict[str, dict[str, str]]]:
    """The scrape's text and its info series' labels by key id (each value must be 1)."""
    text, samples = await gauge_samples(client, INFO, {"key_id", "name", "owner"})
    assert all(s.value == 1 for s in samples)
    return text, {s.labels["key_id"]: s.labels for s in samples}


async def test_every_active_key_has_an_info_series_with_its_name_escaped_and_bounded(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    runtime: Runtime = app.state.runtime
    hostile = 'ci "deploy" \\ key } # ' + "x" * 150  # quotes, a backslash, a brace: and far too long for a label
    async with session_scope(session_factory) as session:
        named = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=account.tenant.id, name=hostile)
        retired = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=account.tenant.id, name="retired")
        await keys.revoke_key(session, key=retired.record, actor=TEST_ACTOR)
        person = await users.create_user(
            session, tenant_id=account.tenant.id, email=f"dev-{account.key_id[:8]}@example.com", password="x" * 12
        )
        personal = await keys.create_key(
            session, actor=TEST_ACTOR, tenant_id=account.tenant.id, name="laptop", owner_user_id=person.id
        )

    await runtime.key_policy.sweep()
    text, found = await infos(client)  # the parser reading it back proves the escaping held

    assert found[account.key_id] == {"key_id": account.key_id, "name": "test key", "owner": ""}  # a service key
    assert found[personal.record.id]["owner"] == person.email  # a personal key names its owner
    label = found[named.record.id]["name"]
    assert len(label) == KEY_NAME_LABEL_LENGTH and label.endswith("\u2026") and hostile.startswith(label[:-1])
    assert retired.record.id not in found  # only active keys
    for new in (named, retired):
        assert new.plaintext not in text and new.record.prefix not in text and new.record.key_hash not in text

    # Revoked now: the next sweep drops its series.
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, named.record.id)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    await runtime.key_policy.sweep()
    _, after = await infos(client)
    assert named.record.id not in after and account.key_id in after


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("laptop", "laptop"),
        ("two\nlines\tand\x00nul", "two lines and\ufffdnul"),
        ("  spaced   out  ", "spaced out"),
        ("é" * 64, "é" * 64),
        ("é" * 65, "é" * 63 + "\u2026"),
    ],
)
def test_key_name_label_replaces_control_characters_and_bounds_the_length(name: str, label: str) -> None:
    assert key_name_label(name) == label
