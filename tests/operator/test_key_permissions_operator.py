"""Key permissions through Kubernetes: ApiKey.spec.scopes / allowedCidrs and VibeXPTenant.spec.keyPolicy are
checked by the real kube-apiserver at `kubectl apply` time, and the operator carries them to the key and tenant
rows (and the running API enforces them)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opkit import MERGE, KubeEnv, Operator, kubectl, unique, wait_until
from sqlalchemy import select

from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.tenants.models import Tenant
from vibexp.operator.models import ApiKeySpec, SpecError, TenantSpec
from vibexp.operator.plan import CurrentKey, KeyState, Refresh, SecretView, TenantRecord, TenantView, plan

pytestmark = [pytest.mark.kube]


# -- the spec as the operator reads it, and the decision (pure) ---------------------------------------------------
def parsed(**spec: Any) -> ApiKeySpec:
    meta = {"name": "app", "namespace": "team-a", "uid": "u-1", "generation": 1}
    return ApiKeySpec.from_body({"metadata": meta, "spec": {"tenant": "acme", **spec}})


def test_omitted_permissions_are_full_access_from_anywhere() -> None:
    assert (parsed().scopes, parsed().allowed_cidrs) == (("*",), ())
    both = parsed(scopes=["read", "keys:write"], allowedCidrs=["2001:DB8::/32", "10.0.0.0/8"])
    # In the key row's form: the order given, networks canonical (what the comparison with the row needs).
    assert (both.scopes, both.allowed_cidrs) == (("read", "keys:write"), ("2001:db8::/32", "10.0.0.0/8"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"scopes": ["prompts:delete"]}, "spec.scopes: unknown scope 'prompts:delete'"),
        ({"scopes": []}, "spec.scopes: must list at least one scope"),
        (
            {"allowedCidrs": ["10.0.0.1/8"]},
            "spec.allowedCidrs: '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?",
        ),
    ],
)
def test_a_spec_an_older_crd_let_through_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match="^" + re.escape(message)):
        parsed(**spec)


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
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
    scopes=("read",),
    allowed_cidrs=("10.0.0.0/8",),
)
TENANT = TenantView(
    spec=TenantSpec(name="acme", allowed_namespaces=frozenset({"team-a"}), suspended=False, deleting=False),
    record=TenantRecord(id="t-1", name="acme", suspended=False),
)
SECRET = SecretView(owned=True, holds_key=True, trigger="", metadata_current=True)


@pytest.mark.parametrize(
    ("spec", "current", "changed"),
    [
        (parsed(scopes=["read"], allowedCidrs=["10.0.0.0/8"]), KEY, False),
        (parsed(scopes=["read"], allowedCidrs=["10.0.0.0/8", "::1/128"]), KEY, True),
        (parsed(scopes=["read", "keys:write"], allowedCidrs=["10.0.0.0/8"]), KEY, True),
        (parsed(allowedCidrs=["10.0.0.0/8"]), KEY, True),  # omitted scopes are "*"
        (parsed(), dataclasses.replace(KEY, scopes=("*",), allowed_cidrs=()), False),
    ],
)
def test_a_permissions_change_is_applied_in_place(spec: ApiKeySpec, current: CurrentKey, changed: bool) -> None:
    """Never a rotation: the Secret keeps its key, the key's row follows the spec."""
    assert plan(spec, current, TENANT, SECRET, NOW) == Refresh(
        rename=False, repair_metadata=False, resume=False, permissions=changed
    )


# -- admission: the CRDs refuse bad values with a readable message ---------------------------------------------------
def apikey_manifest(name: str, spec: dict[str, Any]) -> str:
    body = {"apiVersion": "vibexp.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": name, "namespace": "default"}}
    return json.dumps({**body, "spec": {"tenant": "nobody", **spec}})


def tenant_manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "vibexp.io/v1alpha1", "kind": "VibeXPTenant", "metadata": {"name": name}, "spec": spec}
    )


def refused(env: KubeEnv, manifest: str) -> str:
    proc = kubectl(env, "apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0, f"accepted: {manifest}"
    return proc.stderr


def accepted(env: KubeEnv, manifest: str) -> None:
    proc = kubectl(env, "apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"scopes": ["prompts:delete"]}, 'spec.scopes[0]: Unsupported value: "prompts:delete"'),
        ({"scopes": ["read", "read"]}, 'spec.scopes[1]: Duplicate value: "read"'),
        ({"scopes": []}, "spec.scopes: Invalid value: 0: spec.scopes in body should have at least 1 items"),
        ({"scopes": "read"}, "spec.scopes: Invalid value"),
        (
            {"allowedCidrs": ["10.0.0.1/8"]},
            'spec.allowedCidrs[0]: Invalid value: "10.0.0.1/8": must be a CIDR such as 10.0.0.0/8 with no host bits',
        ),
        (
            {"allowedCidrs": ["192.168.0.0/24", "2001:db8::1/32"]},
            'spec.allowedCidrs[1]: Invalid value: "2001:db8::1/32"',
        ),
        ({"allowedCidrs": ["fe80::1%eth0/64"]}, "spec.allowedCidrs[0]: Invalid value"),
        ({"allowedCidrs": ["not-a-network"]}, "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
        ({"allowedCidrs": ["10.0.0.0"]}, "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
        ({"allowedCidrs": ["10.0.0.0/33"]}, "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
        ({"allowedCidrs": ["10.0.0.0/8", "10.0.0.0/8"]}, 'spec.allowedCidrs[1]: Duplicate value: "10.0.0.0/8"'),
        ({"allowedCidrs": ["x" * 65]}, "spec.allowedCidrs[0]: Too long"),
        ({"allowedCidrs": [f"10.{i}.0.0/16" for i in range(65)]}, "spec.allowedCidrs: Too many: 65"),
    ],
)
def test_apikey_permissions_are_checked_at_apply(kube_env: KubeEnv, spec: dict[str, Any], message: str) -> None:
    assert message in refused(kube_env, apikey_manifest(unique("bad"), spec))


@pytest.mark.usefixtures("crds")
def test_the_zone_message_is_the_cidr_one(kube_env: KubeEnv) -> None:
    """An IPv6 zone is not a CIDR (isCIDR refuses it): the user reads the CIDR message, not a CEL error."""
    error = refused(kube_env, apikey_manifest(unique("zone"), {"allowedCidrs": ["fe80::%eth0/64"]}))
    assert "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32" in error and "no IPv6 zone" in error


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(
    "spec",
    [
        {"scopes": ["*"]},
        {"scopes": ["read"]},
        {"scopes": ["prompts:write", "memories:read", "keys:read", "keys:write", "account:read", "audit:read"]},
        {"scopes": ["artifacts:read", "artifacts:write", "memories:write", "prompts:read"]},
        {"allowedCidrs": ["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7/32"]},
        {"allowedCidrs": ["2001:db8::/32", "2001:DB8:0:1::/64", "::/0", "fe80::/10"]},
        {"allowedCidrs": [], "scopes": ["read"]},
    ],
)
def test_valid_permissions_are_accepted(kube_env: KubeEnv, spec: dict[str, Any]) -> None:
    accepted(kube_env, apikey_manifest(unique("good"), spec))


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"maxLifetimeDays": 0}, "spec.keyPolicy.maxLifetimeDays: Invalid value: 0"),
        ({"maxLifetimeDays": 3651}, "spec.keyPolicy.maxLifetimeDays: Invalid value: 3651"),
        ({"revokeUnusedAfterDays": 0}, "spec.keyPolicy.revokeUnusedAfterDays: Invalid value: 0"),
        ({"revokeUnusedAfterDays": 3651}, "spec.keyPolicy.revokeUnusedAfterDays: Invalid value: 3651"),
        ({"maxLifetimeDays": "90d"}, "spec.keyPolicy.maxLifetimeDays: Invalid value"),
    ],
)
def test_key_policy_bounds(kube_env: KubeEnv, policy: dict[str, Any], message: str) -> None:
    assert message in refused(kube_env, tenant_manifest(unique("bad"), {"keyPolicy": policy}))


@pytest.mark.usefixtures("crds")
def test_key_policy_limits_are_accepted(kube_env: KubeEnv) -> None:
    accepted(
        kube_env, tenant_manifest(unique("pol"), {"keyPolicy": {"maxLifetimeDays": 1, "revokeUnusedAfterDays": 3650}})
    )
    accepted(kube_env, tenant_manifest(unique("pol"), {"keyPolicy": {"maxLifetimeDays": 3650}}))
    accepted(kube_env, tenant_manifest(unique("pol"), {"keyPolicy": {}}))


# -- the operator carries the spec to the key and tenant rows; the API enforces it --------------------------------
def _post_key(api: LiveServer, key: str) -> httpx.Response:
    """A keys:write call (minting a key) made with ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{api.url}/api/v1/api-keys", json={"name": "child"}, headers=headers, timeout=10)


def _error_code(response: httpx.Response) -> str | None:
    try:
        code: str | None = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code


def _answers(api: LiveServer, key: str, status: int, code: str | None = None) -> bool:
    response = _post_key(api, key)
    return response.status_code == status and (code is None or _error_code(response) == code)


def test_scopes_and_cidrs_reach_the_key_and_follow_the_spec(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("perm")
    op.create_tenant(tenant)
    op.create_apikey("scoped", tenant, scopes=["read"], allowedCidrs=["10.0.0.0/8"])
    obj = op.wait_ready("scoped")
    uid, key_id = obj["metadata"]["uid"], obj["status"]["keyId"]
    [record] = op.keys_of(uid)
    assert (record.scopes, record.allowed_cidrs) == (["read"], ["10.0.0.0/8"])
    key = op.secret_key("scoped")
    assert key is not None
    # The test talks to the API from 127.0.0.1: outside the key's networks.
    refused = _post_key(api, key)
    assert (refused.status_code, _error_code(refused)) == (403, "ip_not_allowed"), refused.text

    # Networks changed in the spec: the same key, same Secret, now usable from here; still read-only.
    op.patch_apikey("scoped", {"allowedCidrs": ["127.0.0.0/8", "::1/128"]})
    wait_until(lambda: _answers(api, key, 403, "insufficient_scope"), "read-only key refused keys:write")
    assert httpx.get(f"{api.url}/api/v1/account", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    # Scopes widened in the spec: the key may now mint, in place.
    op.patch_apikey("scoped", {"scopes": ["keys:write", "prompts:read"]})
    wait_until(lambda: _answers(api, key, 201), "key allowed keys:write")
    [record] = op.keys_of(uid)
    assert record.id == key_id and op.secret_key("scoped") == key
    assert (record.scopes, record.allowed_cidrs) == (["keys:write", "prompts:read"], ["127.0.0.0/8", "::1/128"])
    op.wait_event("scoped", "PermissionsChanged", "Normal")
    # (The refused use from 127.0.0.1 may also have raised a disallowed_address alert by now: key events only.)
    actions = [action for action, _, _ in op.audit_of(key_id) if action.startswith("key.")]
    assert actions == ["key.created", "key.permissions_changed", "key.permissions_changed"]

    # Both removed from the spec: the defaults, full access from anywhere.
    op.patch_apikey("scoped", {"scopes": None, "allowedCidrs": None})
    wait_until(lambda: [(r.scopes, r.allowed_cidrs) for r in op.keys_of(uid)] == [(["*"], [])], "defaults restored")

    # A rotation keeps the spec's permissions on the new key.
    op.patch_apikey("scoped", {"scopes": ["memories:read"], "rotation": {"trigger": "now"}})
    wait_until(lambda: len(op.keys_of(uid)) == 2, "rotated")
    new = op.keys_of(uid)[-1]
    assert (new.scopes, new.allowed_cidrs) == (["memories:read"], [])
    assert op.wait_ready("scoped")["status"]["keyId"] == new.id


def tenant_row(op: Operator, name: str) -> Tenant | None:
    async def query() -> Tenant | None:
        engine = create_engine(op.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return await session.scalar(select(Tenant).where(Tenant.name == name))
        finally:
            await engine.dispose()

    return asyncio.run(query())


def _policy(op: Operator, name: str) -> tuple[int | None, int | None] | None:
    row = tenant_row(op, name)
    return None if row is None else (row.max_key_lifetime_days, row.revoke_unused_after_days)


def test_key_policy_reaches_the_tenant_and_its_keys(operator: Operator) -> None:
    op = operator.start()
    name = unique("policy")
    op.create_tenant(name, keyPolicy={"maxLifetimeDays": 90, "revokeUnusedAfterDays": 30})
    try:
        wait_until(lambda: _policy(op, name) == (90, 30), "key policy applied")
        # A key minted for the tenant without an expiry expires by the policy.
        op.create_apikey("bounded", name)
        expires = op.wait_ready("bounded")["status"]["expiresAt"]
        assert expires and abs(_time(expires) - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
        # One asking for a later expiry is refused, said on the object, and minted once the policy allows it.
        later = (datetime.now(UTC) + timedelta(days=200)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        op.create_apikey("long-lived", name, expiresAt=later)
        refused = op.ready(op.wait_condition("long-lived", "False", "KeyRefused"))
        assert refused is not None and "maximum key lifetime of 90 days" in refused["message"], refused
        assert op.get(op.secrets("long-lived")) is None

        patch = {"spec": {"keyPolicy": {"maxLifetimeDays": 365, "revokeUnusedAfterDays": None}}}
        resp = op.admin.patch(op.tenants(name), json=patch, headers=MERGE)
        assert resp.status_code == 200, resp.text
        wait_until(lambda: _policy(op, name) == (365, None), "one field removed")
        assert _time(op.wait_ready("long-lived")["status"]["expiresAt"]) == _time(later)

        resp = op.admin.patch(op.tenants(name), json={"spec": {"keyPolicy": None}}, headers=MERGE)
        assert resp.status_code == 200, resp.text
        wait_until(lambda: _policy(op, name) == (None, None), "policy removed")
    finally:
        for key in ("bounded", "long-lived"):
            op.admin.delete(op.apikeys(key))
        for key in ("bounded", "long-lived"):
            wait_until(lambda k=key: op.get(op.apikeys(k)) is None, f"ApiKey {key} deleted", 60)
        op.admin.delete(op.tenants(name))
        wait_until(lambda: op.get(op.tenants(name)) is None, "VibeXPTenant deleted", 60)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
