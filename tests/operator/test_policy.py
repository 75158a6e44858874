"""What the status says is what the key does: policy on existing keys, drift, specs the Secret refuses.

Real kube-apiserver, real `vibexp operator` and `vibexp serve` on SQLite and PostgreSQL (issue #18 items 1, 2, 4, 6).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from opkit import Operator, call_api, unique, wait_status, wait_until

from helpers.servers import LiveServer

pytestmark = [pytest.mark.kube]

MERGE = {"Content-Type": "application/merge-patch+json"}


def patch_tenant(op: Operator, name: str, spec: dict[str, Any]) -> None:
    resp = op.admin.patch(op.tenants(name), json={"spec": spec}, headers=MERGE)
    assert resp.status_code == 200, resp.text


def wait_phase(op: Operator, name: str, phase: str, reason: str, ready: str = "False") -> dict[str, Any]:
    obj = op.wait_condition(name, ready, reason)
    obj = wait_until(lambda: (o := op.apikey(name))["status"].get("phase") == phase and o, f"{name} phase {phase}")
    return obj  # type: ignore[no-any-return]


def refused_within(url: str, key: str, status: int, seconds: float) -> float:
    """The key is refused with ``status`` within ``seconds`` of the operator reporting the change."""
    started = time.monotonic()
    wait_status(url, key, status, timeout=seconds)
    return time.monotonic() - started


def test_policy_changes_suspend_and_resume_the_existing_key(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("policy")
    op.create_tenant(tenant)
    obj = op.create_apikey("app", tenant)
    op.wait_ready("app")
    key = op.secret_key("app")
    assert key is not None and call_api(api.url, key) == 200
    key_id = op.apikey("app")["status"]["keyId"]

    # 1. The namespace is no longer allowed: the key stops working; the status says so; the Secret stays.
    patch_tenant(op, tenant, {"allowedNamespaces": ["somewhere-else"]})
    suspended = wait_phase(op, "app", "Suspended", "NamespaceNotAllowed")
    assert refused_within(api.url, key, 401, 1.5) <= 1.5
    assert "suspended until the policy allows it again" in op.ready(suspended)["message"]  # type: ignore[index]
    assert [r.status for r in op.keys_of(obj["metadata"]["uid"])] == ["suspended"]
    assert op.secret_key("app") == key
    op.wait_event("app", "NamespaceNotAllowed", "Warning")
    resp = httpx.get(f"{api.url}/api/v1/prompts", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert resp.json()["error"]["code"] == "invalid_api_key" and "suspended" in resp.json()["error"]["message"]

    # Allowed again: the same key works again, same record, same Secret.
    patch_tenant(op, tenant, {"allowedNamespaces": ["*"]})
    active = wait_phase(op, "app", "Active", "KeyReady", ready="True")
    assert active["status"]["keyId"] == key_id
    wait_status(api.url, key, 200, timeout=5)
    op.wait_event("app", "KeyResumed", "Normal")

    # 2. The tenant is suspended: 403 account_suspended, and the phase is not Active.
    patch_tenant(op, tenant, {"suspended": True})
    wait_phase(op, "app", "Suspended", "TenantSuspended")
    wait_status(api.url, key, 403, timeout=5)
    patch_tenant(op, tenant, {"suspended": False})
    wait_phase(op, "app", "Active", "KeyReady", ready="True")
    wait_status(api.url, key, 200, timeout=5)

    # 3. spec.tenant points at a tenant that does not exist: the old tenant's key is suspended, nothing minted.
    missing = unique("missing")
    op.patch_apikey("app", {"tenant": missing})
    wait_phase(op, "app", "Suspended", "TenantNotFound")
    wait_status(api.url, key, 401, timeout=5)
    # ... and back to the tenant that allows it.
    op.patch_apikey("app", {"tenant": tenant})
    wait_phase(op, "app", "Active", "KeyReady", ready="True")
    wait_status(api.url, key, 200, timeout=5)

    # 4. The tenant is deleted: the account is suspended and the key with it; re-creating the tenant resumes both.
    assert op.admin.delete(op.tenants(tenant)).status_code == 200
    wait_phase(op, "app", "Suspended", "TenantNotFound")
    wait_status(api.url, key, 403, timeout=10)
    # The operator's finalizer runs before the object goes; re-creating a name still being deleted is a 409.
    wait_until(lambda: op.get(op.tenants(tenant)) is None, "VibeXPTenant gone")
    op.create_tenant(tenant)
    wait_phase(op, "app", "Active", "KeyReady", ready="True")
    wait_status(api.url, key, 200, timeout=10)
    assert [r.id for r in op.keys_of(obj["metadata"]["uid"])] == [key_id]  # never re-minted


def test_key_minted_elsewhere_is_suspended_when_moved_to_a_forbidding_tenant(
    operator: Operator, api: LiveServer
) -> None:
    op = operator.start()
    home, closed = unique("home"), unique("closed")
    op.create_tenant(home)
    op.create_tenant(closed, allowedNamespaces=["other"])
    op.create_apikey("mover", home)
    op.wait_ready("mover")
    key = op.secret_key("mover")
    assert key is not None and call_api(api.url, key) == 200
    op.patch_apikey("mover", {"tenant": closed})
    wait_phase(op, "mover", "Suspended", "NamespaceNotAllowed")
    wait_status(api.url, key, 401, timeout=5)


def strip_metadata(op: Operator, name: str, *, labels: bool = True, annotations: bool = True) -> None:
    meta: dict[str, Any] = {}
    if labels:
        meta["labels"] = None
    if annotations:
        meta["annotations"] = None
    resp = op.admin.patch(op.secrets(name), json={"metadata": meta}, headers=MERGE)
    assert resp.status_code == 200, resp.text


def test_drift_is_always_seen(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("drift")
    op.create_tenant(tenant)
    spec = {"rotation": {"trigger": "first"}, "secretTemplate": {"labels": {"team": "a"}, "annotations": {"o": "me"}}}
    obj = op.create_apikey("app", tenant, **spec)
    op.wait_ready("app")
    key = op.secret_key("app")
    assert key is not None

    def metadata() -> tuple[dict[str, str], dict[str, str]]:
        secret = op.get(op.secrets("app")) or {}
        meta = secret.get("metadata") or {}
        return meta.get("labels") or {}, meta.get("annotations") or {}

    wanted_labels, wanted_annotations = metadata()
    assert wanted_labels["team"] == "a" and wanted_annotations["vibexp.io/rotation-trigger"] == "first"

    # Labels and annotations removed (so the label-filtered Secret watch no longer sees it): the sync puts them back.
    strip_metadata(op, "app")
    wait_until(lambda: metadata() == (wanted_labels, wanted_annotations), "labels and annotations restored", 15)
    assert op.secret_key("app") == key

    # Removing only the rotation-trigger annotation does not rotate: it is put back, the key stays.
    resp = op.admin.patch(
        op.secrets("app"), json={"metadata": {"annotations": {"vibexp.io/rotation-trigger": None}}}, headers=MERGE
    )
    assert resp.status_code == 200
    wait_until(lambda: metadata()[1].get("vibexp.io/rotation-trigger") == "first", "trigger annotation restored", 15)
    time.sleep(2.5)  # more sync rounds
    assert op.secret_key("app") == key and len(op.keys_of(obj["metadata"]["uid"])) == 1

    # Stripped and then deleted before any repair: the sync still finds it gone and re-creates it (with rotation).
    strip_metadata(op, "app")
    assert op.admin.delete(op.secrets("app")).status_code == 200
    new_key = wait_until(lambda: (k := op.secret_key("app")) and k != key and k, "Secret re-created", 15)
    wait_status(api.url, key, 401)
    assert call_api(api.url, new_key) == 200
    ready = op.wait_ready("app")
    assert ready["status"]["rotation"]["count"] == 1 and metadata()[0]["team"] == "a"

    # Never Ready=True without its Secret: while it is gone, the next sync replaces it before it says Ready again.
    for _ in range(3):
        obj_now = op.apikey("app")
        if (op.ready(obj_now) or {}).get("status") == "True":
            assert op.get(op.secrets("app")) is not None
        time.sleep(0.3)


def test_a_secret_the_apiserver_refuses_ends_in_a_condition(operator: Operator, api: LiveServer) -> None:
    """The CRD's key rule bounds a key at 317 characters (253 + "/" + 63) but not its prefix alone: a 254-character
    prefix passes the schema, and the apiserver refuses it in the Secret."""
    op = operator.start()
    tenant = unique("refused")
    op.create_tenant(tenant)
    bad_key = ".".join(["a" * 60, "b" * 60, "c" * 60, "d" * 60, "e" * 10]) + "/n"
    assert len(bad_key.split("/")[0]) == 254
    obj = op.create_apikey("odd", tenant, secretTemplate={"annotations": {bad_key: "x"}})
    cond = op.ready(op.wait_condition("odd", "False", "InvalidSecret"))
    assert cond is not None and "odd" in cond["message"] and "metadata.annotations" in cond["message"]
    op.wait_event("odd", "InvalidSecret", "Warning")
    assert op.apikey("odd")["status"]["phase"] == "Pending"
    assert op.keys_of(obj["metadata"]["uid"]) == []  # the key's transaction was rolled back
    assert op.get(op.secrets("odd")) is None
    # Fixing the spec mints the key.
    resp = op.admin.patch(
        op.apikeys("odd"),
        json={"spec": {"secretTemplate": {"annotations": {bad_key: None, "example.com/notes": "x"}}}},
        headers=MERGE,
    )
    assert resp.status_code == 200, resp.text
    op.wait_ready("odd")
    key = op.secret_key("odd")
    assert key is not None and call_api(api.url, key) == 200
