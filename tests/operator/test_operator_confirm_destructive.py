"""``ApiKey.spec.confirmDestructive`` through Kubernetes: the real kube-apiserver checks its type at apply time, the
operator carries it to the key row at creation, follows a change in place (same key, same Secret, an event and an
audit entry) and keeps it across a rotation."""

from __future__ import annotations

import dataclasses

import pytest
from opkit import KubeEnv, Operator, unique, wait_until
from test_crd_lists import spec_schema
from test_key_permissions_operator import KEY, NOW, SECRET, TENANT, accepted, apikey_manifest, parsed, refused

from vibexp.operator.models import ApiKeySpec
from vibexp.operator.plan import Refresh, plan

pytestmark = [pytest.mark.kube]


def test_omitted_is_false_and_a_change_is_applied_in_place() -> None:
    assert parsed().confirm_destructive is False
    asking = parsed(scopes=["read"], allowedCidrs=["10.0.0.0/8"], confirmDestructive=True)
    assert asking.confirm_destructive is True
    changed = Refresh(rename=False, repair_metadata=False, resume=False, permissions=True)
    assert plan(asking, KEY, TENANT, SECRET, NOW) == changed
    same = dataclasses.replace(KEY, confirm_destructive=True)
    assert plan(asking, same, TENANT, SECRET, NOW) == dataclasses.replace(changed, permissions=False)


def test_the_crd_and_the_spec_reader_agree() -> None:
    """Every ApiKeySpec field has a CRD property (tied both ways for this one)."""
    schema = spec_schema("vibexp.io_apikeys.yaml")
    assert schema["confirmDestructive"]["type"] == "boolean"
    assert "confirm_destructive" in {f.name for f in dataclasses.fields(ApiKeySpec)}


@pytest.mark.usefixtures("crds")
def test_the_apiserver_checks_the_type(kube_env: KubeEnv) -> None:
    assert "spec.confirmDestructive" in refused(kube_env, apikey_manifest(unique("bad"), {"confirmDestructive": "yes"}))
    accepted(kube_env, apikey_manifest(unique("good"), {"confirmDestructive": True}))


def test_confirm_destructive_reaches_the_key_and_follows_the_spec(operator: Operator) -> None:
    op = operator.start()
    tenant = unique("confirm")
    op.create_tenant(tenant)
    op.create_apikey("asking", tenant, confirmDestructive=True)
    obj = op.wait_ready("asking")
    uid, key_id = obj["metadata"]["uid"], obj["status"]["keyId"]
    [record] = op.keys_of(uid)
    assert record.confirm_destructive is True
    key = op.secret_key("asking")

    op.patch_apikey("asking", {"confirmDestructive": False})
    wait_until(lambda: [r.confirm_destructive for r in op.keys_of(uid)] == [False], "turned off in place")
    [record] = op.keys_of(uid)
    assert record.id == key_id and op.secret_key("asking") == key
    op.wait_event("asking", "PermissionsChanged", "Normal")
    actions = [action for action, _, _ in op.audit_of(key_id) if action.startswith("key.")]
    assert actions == ["key.created", "key.permissions_changed"]

    op.patch_apikey("asking", {"confirmDestructive": True, "rotation": {"trigger": "now"}})
    wait_until(lambda: len(op.keys_of(uid)) == 2, "rotated")
    assert op.keys_of(uid)[-1].confirm_destructive is True
