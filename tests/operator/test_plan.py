"""The pure reconcile decision, case by case (no cluster, no database: the whole table runs in milliseconds)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vibexp.operator.models import ApiKeySpec, RotationSpec, SpecError, TenantSpec
from vibexp.operator.plan import (
    Blocked,
    Change,
    CurrentKey,
    Decision,
    KeyState,
    Mint,
    Phase,
    Refresh,
    Replace,
    Revoke,
    SecretView,
    TenantRecord,
    TenantView,
    plan,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC = ApiKeySpec.from_body(
    {"metadata": {"name": "app", "namespace": "team-a", "uid": "u-1", "generation": 1}, "spec": {"tenant": "acme"}}
)
KEY = CurrentKey(
    id="k-1",
    prefix="vib_12345678",
    slot=0,
    tenant_id="t-1",
    state=KeyState.active,
    created_at=NOW - timedelta(days=10),
    expires_at=None,
    name="team-a/app",
    description="",
)
TENANT = TenantView(
    spec=TenantSpec(name="acme", allowed_namespaces=frozenset({"team-a"}), suspended=False, deleting=False),
    record=TenantRecord(id="t-1", name="acme", suspended=False),
)
SECRET = SecretView(owned=True, holds_key=True, trigger="", metadata_current=True)


def spec(**changes: Any) -> ApiKeySpec:
    return dataclasses.replace(SPEC, **changes)


def key(**changes: Any) -> CurrentKey:
    return dataclasses.replace(KEY, **changes)


def tenant_cr(**changes: Any) -> TenantView:
    assert TENANT.spec is not None
    return dataclasses.replace(TENANT, spec=dataclasses.replace(TENANT.spec, **changes))


def secret(**changes: Any) -> SecretView:
    return dataclasses.replace(SECRET, **changes)


NO_TENANT = TenantView(spec=None, record=TENANT.record)
RECORD_SUSPENDED = dataclasses.replace(TENANT, record=TenantRecord(id="t-1", name="acme", suspended=True))
NOT_IN_DB = dataclasses.replace(TENANT, record=None)
OTHER_TENANT = dataclasses.replace(TENANT, record=TenantRecord(id="t-2", name="acme", suspended=False))
ROTATING = RotationSpec(trigger="2026-12-01", every_days=None, grace=timedelta(minutes=2))

SUSPENDED = key(state=KeyState.suspended)

# (case, spec, current key, tenant, secret, expected decision)
CASES: list[tuple[str, ApiKeySpec, CurrentKey | None, TenantView, SecretView | None, Decision]] = [
    ("revoked in the spec", spec(revoked=True), KEY, TENANT, SECRET, Revoke()),
    ("revoked before any key", spec(revoked=True), None, NO_TENANT, None, Revoke()),
    ("first key", SPEC, None, TENANT, None, Mint(tenant_id="t-1", expires_at=None)),
    (
        "first key, expiry kept",
        spec(expires_at=NOW + timedelta(1)),
        None,
        TENANT,
        None,
        Mint("t-1", NOW + timedelta(1)),
    ),
    (
        "first key, wildcard namespace",
        SPEC,
        None,
        tenant_cr(allowed_namespaces=frozenset({"*"})),
        None,
        Mint("t-1", None),
    ),
    ("first key into an empty Secret we own", SPEC, None, TENANT, secret(holds_key=False), Mint("t-1", None)),
    ("nothing to do", SPEC, KEY, TENANT, SECRET, Refresh(rename=False, repair_metadata=False, resume=False)),
    (
        "renamed",
        spec(display_name="Laptop"),
        KEY,
        TENANT,
        SECRET,
        Refresh(rename=True, repair_metadata=False, resume=False),
    ),
    ("new description", spec(description="x"), KEY, TENANT, SECRET, Refresh(True, False, False)),
    ("Secret lost its labels", SPEC, KEY, TENANT, secret(metadata_current=False), Refresh(False, True, False)),
    (
        "trigger annotation removed: repair, no rotation",
        spec(rotation=ROTATING),
        KEY,
        TENANT,
        secret(trigger=None, metadata_current=False),
        Refresh(False, True, False),
    ),
    (
        "trigger satisfied",
        spec(rotation=ROTATING),
        KEY,
        TENANT,
        secret(trigger="2026-12-01"),
        Refresh(False, False, False),
    ),
    ("policy allows a suspended key again", SPEC, SUSPENDED, TENANT, SECRET, Refresh(False, False, resume=True)),
]


@pytest.mark.parametrize(
    ("case", "spec_", "current", "tenant", "secret_", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_table(
    case: str,
    spec_: ApiKeySpec,
    current: CurrentKey | None,
    tenant: TenantView,
    secret_: SecretView | None,
    expected: Any,
) -> None:
    assert plan(spec_, current, tenant, secret_, NOW) == expected


# (case, spec, current key, tenant, secret, reason, phase, suspend)
BLOCKED: list[tuple[str, ApiKeySpec, CurrentKey | None, TenantView, SecretView | None, str, Phase, bool]] = [
    ("no tenant, nothing minted", SPEC, None, NO_TENANT, None, "TenantNotFound", Phase.pending, False),
    ("tenant deleted: existing key suspended", SPEC, KEY, NO_TENANT, SECRET, "TenantNotFound", Phase.suspended, True),
    ("tenant being deleted", SPEC, KEY, tenant_cr(deleting=True), SECRET, "TenantNotFound", Phase.suspended, True),
    (
        "namespace not allowed, nothing minted",
        SPEC,
        None,
        tenant_cr(allowed_namespaces=frozenset({"b"})),
        None,
        "NamespaceNotAllowed",
        Phase.pending,
        False,
    ),
    (
        "namespace removed: key suspended",
        SPEC,
        KEY,
        tenant_cr(allowed_namespaces=frozenset()),
        SECRET,
        "NamespaceNotAllowed",
        Phase.suspended,
        True,
    ),
    (
        "spec.tenant points at a tenant that forbids it",
        spec(tenant="other"),
        KEY,
        tenant_cr(allowed_namespaces=frozenset({"b"})),
        SECRET,
        "NamespaceNotAllowed",
        Phase.suspended,
        True,
    ),
    (
        "tenant suspended in its spec",
        SPEC,
        KEY,
        tenant_cr(suspended=True),
        SECRET,
        "TenantSuspended",
        Phase.suspended,
        True,
    ),
    ("tenant suspended in the database", SPEC, KEY, RECORD_SUSPENDED, SECRET, "TenantSuspended", Phase.suspended, True),
    ("suspended key stays suspended", SPEC, SUSPENDED, NO_TENANT, SECRET, "TenantNotFound", Phase.suspended, True),
    ("tenant not in the database yet: transient", SPEC, KEY, NOT_IN_DB, SECRET, "TenantNotReady", Phase.active, False),
    (
        "tenant not in the database yet, nothing minted",
        SPEC,
        None,
        NOT_IN_DB,
        None,
        "TenantNotReady",
        Phase.pending,
        False,
    ),
    ("foreign Secret", SPEC, None, TENANT, secret(owned=False), "SecretConflict", Phase.pending, False),
    ("foreign Secret, key kept", SPEC, KEY, TENANT, secret(owned=False), "SecretConflict", Phase.active, False),
    ("revoked elsewhere", SPEC, key(state=KeyState.revoked), TENANT, SECRET, "RevokedElsewhere", Phase.revoked, False),
    ("expired", SPEC, key(expires_at=NOW - timedelta(seconds=1)), TENANT, SECRET, "Expired", Phase.expired, False),
    (
        "expiresAt in the past, nothing minted",
        spec(expires_at=NOW - timedelta(1)),
        None,
        TENANT,
        None,
        "Expired",
        Phase.expired,
        False,
    ),
    ("expired beats policy", SPEC, key(expires_at=NOW), NO_TENANT, SECRET, "Expired", Phase.expired, False),
]


@pytest.mark.parametrize(
    ("case", "spec_", "current", "tenant", "secret_", "reason", "phase", "suspend"),
    BLOCKED,
    ids=[c[0] for c in BLOCKED],
)
def test_plan_blocked(
    case: str,
    spec_: ApiKeySpec,
    current: CurrentKey | None,
    tenant: TenantView,
    secret_: SecretView | None,
    reason: str,
    phase: Phase,
    suspend: bool,
) -> None:
    decision = plan(spec_, current, tenant, secret_, NOW)
    assert isinstance(decision, Blocked)
    assert (decision.state.ready, decision.state.reason, decision.phase, decision.suspend) == (
        False,
        reason,
        phase,
        suspend,
    )
    assert decision.state.message
    if suspend:
        assert "suspended until the policy allows it again" in decision.state.message


# (case, spec, current key, tenant, secret, change, grace, new tenant, resume)
REPLACED: list[
    tuple[str, ApiKeySpec, CurrentKey, TenantView, SecretView | None, Change, timedelta, str | None, bool]
] = [
    ("Secret deleted", SPEC, KEY, TENANT, None, Change.secret_missing, timedelta(0), None, False),
    (
        "Secret holds another value",
        SPEC,
        KEY,
        TENANT,
        secret(holds_key=False),
        Change.secret_mismatch,
        timedelta(0),
        None,
        False,
    ),
    (
        "rotation requested",
        spec(rotation=ROTATING),
        KEY,
        TENANT,
        SECRET,
        Change.rotation_requested,
        timedelta(minutes=2),
        None,
        False,
    ),
    (
        "scheduled rotation due",
        spec(rotation=RotationSpec(every_days=10)),
        KEY,
        TENANT,
        SECRET,
        Change.rotation_scheduled,
        timedelta(0),
        None,
        False,
    ),
    ("moved to another tenant", SPEC, KEY, OTHER_TENANT, SECRET, Change.tenant_changed, timedelta(0), "t-2", False),
    (
        "suspended key moved to an allowing tenant",
        SPEC,
        SUSPENDED,
        OTHER_TENANT,
        SECRET,
        Change.tenant_changed,
        timedelta(0),
        "t-2",
        False,
    ),
    (
        "Secret deleted while suspended, now allowed",
        SPEC,
        SUSPENDED,
        TENANT,
        None,
        Change.secret_missing,
        timedelta(0),
        None,
        True,
    ),
    ("tenant change wins over drift", SPEC, KEY, OTHER_TENANT, None, Change.tenant_changed, timedelta(0), "t-2", False),
]


@pytest.mark.parametrize(
    ("case", "spec_", "current", "tenant", "secret_", "change", "grace", "new_tenant", "resume"),
    REPLACED,
    ids=[c[0] for c in REPLACED],
)
def test_plan_replace(
    case: str,
    spec_: ApiKeySpec,
    current: CurrentKey,
    tenant: TenantView,
    secret_: SecretView | None,
    change: Change,
    grace: timedelta,
    new_tenant: str | None,
    resume: bool,
) -> None:
    decision = plan(spec_, current, tenant, secret_, NOW)
    assert isinstance(decision, Replace)
    assert (decision.slot, decision.change, decision.grace, decision.new_tenant_id, decision.resume) == (
        current.slot + 1,
        change,
        grace,
        new_tenant,
        resume,
    )
    assert decision.message


def test_scheduled_rotation_is_one_rule() -> None:
    every = RotationSpec(every_days=10)
    created = NOW - timedelta(days=10)
    assert every.next_at(created) == NOW and every.due(created_at=created, now=NOW)
    assert not every.due(created_at=created + timedelta(seconds=1), now=NOW)
    assert RotationSpec().next_at(created) is None and not RotationSpec().due(created_at=created, now=NOW)
    not_yet = plan(spec(rotation=RotationSpec(every_days=11)), KEY, TENANT, SECRET, NOW)
    assert not_yet == Refresh(rename=False, repair_metadata=False, resume=False)


def test_events_of_changes() -> None:
    assert Change.secret_mismatch.event_reason == Change.secret_missing.event_reason == "SecretDrift"
    assert Change.rotation_scheduled.event_reason == "Rotated" and Change.tenant_changed.event_reason == "TenantChanged"
    assert not Change.secret_missing.expected and Change.rotation_requested.expected


def test_specs_parse_once_with_defaults() -> None:
    body = {
        "metadata": {"name": "svc", "namespace": "ns", "uid": "u", "generation": 3, "deletionTimestamp": "x"},
        "spec": {
            "tenant": "acme",
            "secretName": "creds",
            "expiresAt": "2027-01-01T00:00:00Z",
            "rotation": {"trigger": "t", "everyDays": 90, "gracePeriodSeconds": 60},
            "secretTemplate": {"labels": {"team": "a"}},
        },
        "status": {"rotation": {"count": 2}},
    }
    parsed = ApiKeySpec.from_body(body)
    assert (parsed.display_name, parsed.secret_name, parsed.generation, parsed.rotation_count) == (
        "ns/svc",
        "creds",
        3,
        2,
    )
    assert parsed.expires_at == datetime(2027, 1, 1, tzinfo=UTC) and parsed.deleting
    assert parsed.rotation == RotationSpec(trigger="t", every_days=90, grace=timedelta(seconds=60))
    assert dict(parsed.template.labels) == {"team": "a"} and dict(parsed.template.annotations) == {}
    with pytest.raises(TypeError):
        parsed.template.labels["x"] = "y"  # type: ignore[index]
    with pytest.raises(SpecError, match=r"spec\.expiresAt"):
        ApiKeySpec.from_body({**body, "spec": {"tenant": "a", "expiresAt": "tomorrow"}})
    tenant = TenantSpec.from_body({"metadata": {"name": "acme"}, "spec": {"allowedNamespaces": ["*"]}})
    assert tenant.allows("anything") and not tenant.suspended
    assert not TenantSpec.from_body({"metadata": {"name": "acme"}}).allows("ns")
