"""The operator end to end: real kube-apiserver, real `vibexp operator` and `vibexp serve` processes, SQLite and
PostgreSQL. Each test has its own namespace and operator; keys are used against the running API."""

from __future__ import annotations

import base64
import signal
import time

import httpx
import pytest
from opkit import Operator, call_api, unique, wait_status, wait_until

from helpers.servers import LiveServer
from helpers.windows import inside_one_hour_window_blocking

pytestmark = [pytest.mark.kube]


def test_create_use_update_revoke(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("acme")
    op.create_tenant(tenant, tier="pro")
    op.create_apikey("laptop", tenant, displayName="Work Laptop - Cursor", description="daily driver")
    obj = op.wait_ready("laptop")
    status = obj["status"]
    assert status["phase"] == "Active" and status["secretName"] == "laptop"
    assert status["prefix"].startswith("vib_") and len(status["prefix"]) == 12
    ready = op.ready(obj)
    assert ready is not None and ready["reason"] == "KeyReady" and ready["observedGeneration"] == 1

    # The Secret: owned by the ApiKey, labelled, the key under data key apiKey.
    secret = op.get(op.secrets("laptop"))
    assert secret is not None
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vibexp-operator"
    owner = secret["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ApiKey" and owner["uid"] == obj["metadata"]["uid"] and owner["controller"] is True
    key = base64.b64decode(secret["data"]["apiKey"]).decode()
    assert key.startswith(status["prefix"]) and len(key) == 68
    assert call_api(api.url, key) == 200

    # Only the hash is stored; one record, made by the operator.
    records = op.keys_of(obj["metadata"]["uid"])
    assert [(r.id, r.source, r.name, r.description) for r in records] == [
        (status["keyId"], "operator", "Work Laptop - Cursor", "daily driver")
    ]
    assert key not in {records[0].key_hash} and len(records[0].key_hash) == 64
    op.wait_event("laptop", "KeyCreated", "Normal")

    # Name and description changes reach the record, without a new key.
    op.patch_apikey("laptop", {"displayName": "Home Laptop", "description": "evenings"})
    wait_until(
        lambda: [(r.name, r.description) for r in op.keys_of(obj["metadata"]["uid"])] == [("Home Laptop", "evenings")],
        "record renamed",
    )
    assert op.secret_key("laptop") == key

    # Revoke through the CR: refused at once, Secret gone, status says so.
    op.patch_apikey("laptop", {"revoked": True})
    wait_status(api.url, key, 401)
    revoked = op.wait_condition("laptop", "False", "Revoked")
    assert revoked["status"]["phase"] == "Revoked"
    wait_until(lambda: op.get(op.secrets("laptop")) is None, "Secret deleted")
    assert all(r.status == "revoked" for r in op.keys_of(obj["metadata"]["uid"]))
    op.wait_event("laptop", "Revoked")
    # The audit trail names the operator and the object it reconciled. (Polling with the revoked key may also have
    # raised a retired_key_used alert by now, audited as the system's: not the operator's doing.)
    where = f"{op.ns}/laptop"
    trail = op.audit_of(status["keyId"])
    assert [entry for entry in trail if entry[0].startswith("key.")] == [
        ("key.created", "operator", where),
        ("key.revoked", "operator", where),
    ]
    assert all(entry == ("alert.raised", "system", None) for entry in trail if not entry[0].startswith("key."))


def test_delete_revokes_key_and_removes_secret(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("del")
    op.create_tenant(tenant)
    op.create_apikey("ci", tenant, secretName="ci-credentials")
    obj = op.wait_ready("ci")
    assert obj["metadata"]["finalizers"] == ["vibexp.io/revoke-key"]
    key = op.secret_key("ci-credentials")
    assert key is not None and call_api(api.url, key) == 200

    assert op.admin.delete(op.apikeys("ci")).status_code == 200
    wait_until(lambda: op.get(op.apikeys("ci")) is None, "ApiKey gone")
    assert op.get(op.secrets("ci-credentials")) is None
    wait_status(api.url, key, 401)
    assert [r.status for r in op.keys_of(obj["metadata"]["uid"])] == ["revoked"]


def test_restart_midway_never_mints_twice(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("restart")
    op.create_tenant(tenant)
    names = [f"k{i}" for i in range(8)]
    for name in names:
        op.create_apikey(name, tenant)
    time.sleep(0.3)  # some keys minted, some not: kill it in the middle of the work
    op.stop(signal.SIGKILL)
    op.start()
    objs = [op.wait_ready(name, timeout=60) for name in names]
    first_ids = {}
    for obj in objs:
        records = op.keys_of(obj["metadata"]["uid"])
        assert len(records) == 1, f"{obj['metadata']['name']}: {len(records)} keys for one ApiKey"
        assert records[0].id == obj["status"]["keyId"]
        key = op.secret_key(obj["metadata"]["name"])
        assert key is not None and call_api(api.url, key) == 200
        first_ids[obj["metadata"]["name"]] = records[0].id

    # A graceful restart once everything is Ready changes nothing either.
    op.stop()
    op.start()
    time.sleep(3)  # resume handlers and a few sync rounds
    for obj in objs:
        assert [r.id for r in op.keys_of(obj["metadata"]["uid"])] == [first_ids[obj["metadata"]["name"]]]
        assert op.apikey(obj["metadata"]["name"])["status"]["keyId"] == first_ids[obj["metadata"]["name"]]


def test_secret_deleted_or_edited_rotates(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("drift")
    op.create_tenant(tenant)
    op.create_apikey("app", tenant)
    obj = op.wait_ready("app")
    old_key = op.secret_key("app")
    assert old_key is not None

    # Deleted: a new key in a new Secret, the old key refused, a Warning event.
    assert op.admin.delete(op.secrets("app")).status_code == 200
    new_key = wait_until(lambda: (k := op.secret_key("app")) and k != old_key and k, "Secret re-created")
    wait_status(api.url, old_key, 401)
    assert call_api(api.url, new_key) == 200
    op.wait_event("app", "SecretDrift", "Warning")
    wait_until(lambda: op.apikey("app")["status"]["rotation"]["count"] == 1, "status shows the rotation")
    assert op.ready(op.apikey("app"))["status"] == "True"  # type: ignore[index]

    # Edited: someone pastes another value into the Secret.
    patch = {"data": {"apiKey": base64.b64encode(b"vib_" + b"0" * 64).decode()}}
    resp = op.admin.patch(op.secrets("app"), json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status_code == 200
    newest = wait_until(
        lambda: (k := op.secret_key("app")) and k not in (new_key, "vib_" + "0" * 64) and k, "Secret repaired"
    )
    wait_status(api.url, new_key, 401)
    assert call_api(api.url, newest) == 200
    records = op.keys_of(obj["metadata"]["uid"])
    assert [r.status for r in records] == ["revoked", "revoked", "active"]


def test_namespace_tenant_policy(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    # A tenant that allows another namespace only.
    closed = unique("closed")
    op.create_tenant(closed, allowedNamespaces=["somewhere-else"])
    forbidden = op.create_apikey("forbidden", closed)
    cond = op.ready(op.wait_condition("forbidden", "False", "NamespaceNotAllowed"))
    assert cond is not None and op.ns in cond["message"]
    op.wait_event("forbidden", "NamespaceNotAllowed", "Warning")
    assert op.keys_of(forbidden["metadata"]["uid"]) == []
    assert op.get(op.secrets("forbidden")) is None

    # A missing tenant; once it is created (allowing "*"), the waiting key is minted.
    later = unique("later")
    waiting = op.create_apikey("waiting", later)
    op.wait_condition("waiting", "False", "TenantNotFound")
    assert op.keys_of(waiting["metadata"]["uid"]) == []
    op.create_tenant(later, allowedNamespaces=["*"])
    op.wait_ready("waiting")
    key = op.secret_key("waiting")
    assert key is not None and call_api(api.url, key) == 200

    # A suspended tenant mints nothing.
    frozen = unique("frozen")
    op.create_tenant(frozen, suspended=True)
    cold = op.create_apikey("cold", frozen)
    op.wait_condition("cold", "False", "TenantSuspended")
    assert op.keys_of(cold["metadata"]["uid"]) == []

    # Allowing the namespace later makes the first key ready too.
    resp = op.admin.patch(
        op.tenants(closed),
        json={"spec": {"allowedNamespaces": [op.ns]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status_code == 200
    op.wait_ready("forbidden")


def test_revoked_elsewhere_and_usage_sync(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("usage")
    op.create_tenant(tenant)
    op.create_apikey("tool", tenant)
    obj = op.wait_ready("tool")
    key = op.secret_key("tool")
    assert key is not None
    for _ in range(3):
        assert call_api(api.url, key) == 200
    synced = wait_until(
        lambda: (o := op.apikey("tool"))["status"].get("requestCount") == 3 and o, "request count in status", 15
    )
    assert synced["status"]["lastUsedAt"]

    # Quiet: nothing changes, so the sync patches nothing (no hot loop).
    version = op.apikey("tool")["metadata"]["resourceVersion"]
    time.sleep(3.5)  # more than three sync intervals
    assert op.apikey("tool")["metadata"]["resourceVersion"] == version

    # Revoked with the CLI: the status follows.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vibexp.cli", "key", "revoke", obj["status"]["keyId"]],
        env={"VIBEXP_DATABASE_URL": op.database_url, "VIBEXP_AUTO_MIGRATE": "false", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    revoked = op.wait_condition("tool", "False", "RevokedElsewhere", timeout=15)
    assert revoked["status"]["phase"] == "Revoked"
    op.wait_event("tool", "RevokedElsewhere", "Warning")
    wait_status(api.url, key, 401)


def test_rotation_on_request_with_grace_period(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("rotate")
    op.create_tenant(tenant)
    op.create_apikey("svc", tenant, rotation={"trigger": "initial", "everyDays": 90, "gracePeriodSeconds": 120})
    obj = op.wait_ready("svc")
    assert obj["status"]["rotation"]["count"] == 0 and obj["status"]["rotation"]["nextRotationAt"]
    old_key = op.secret_key("svc")
    assert old_key is not None

    op.patch_apikey("svc", {"rotation": {"trigger": "2026-11-26"}})
    new_key = wait_until(lambda: (k := op.secret_key("svc")) and k != old_key and k, "rotated Secret")
    assert call_api(api.url, new_key) == 200
    assert call_api(api.url, old_key) == 200  # still inside the grace period
    op.wait_event("svc", "Rotated", "Normal")
    status = wait_until(lambda: (o := op.apikey("svc"))["status"]["rotation"]["count"] == 1 and o, "status")["status"]
    assert status["rotation"]["previousKeyId"] == obj["status"]["keyId"]
    records = op.keys_of(obj["metadata"]["uid"])
    assert len(records) == 2 and records[0].expires_at is not None

    # The same request again is not a new request.
    time.sleep(2.5)
    assert len(op.keys_of(obj["metadata"]["uid"])) == 2


def test_tenant_change_moves_the_key(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    first, second = unique("first"), unique("second")
    op.create_tenant(first)
    op.create_tenant(second)
    op.create_apikey("mover", first)
    obj = op.wait_ready("mover")
    old_key = op.secret_key("mover")
    assert old_key is not None
    op.patch_apikey("mover", {"tenant": second})
    new_key = wait_until(lambda: (k := op.secret_key("mover")) and k != old_key and k, "new key for new tenant")
    wait_status(api.url, old_key, 401)
    assert call_api(api.url, new_key) == 200
    records = op.keys_of(obj["metadata"]["uid"])
    assert len(records) == 2 and records[0].tenant_id != records[1].tenant_id
    op.wait_event("mover", "TenantChanged")


def test_never_overwrites_a_foreign_secret(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("foreign")
    op.create_tenant(tenant)
    mine = {"metadata": {"name": "taken"}, "stringData": {"apiKey": "not-yours"}}
    assert op.admin.post(op.secrets(), json=mine).status_code == 201
    obj = op.create_apikey("wants-taken", tenant, secretName="taken")
    cond = op.ready(op.wait_condition("wants-taken", "False", "SecretConflict"))
    assert cond is not None and "taken" in cond["message"]
    op.wait_event("wants-taken", "SecretConflict", "Warning")
    assert op.secret_key("taken") == "not-yours"
    assert op.keys_of(obj["metadata"]["uid"]) == []


def test_tenant_status_metrics_and_healthz(operator: Operator, api: LiveServer) -> None:
    inside_one_hour_window_blocking(60)  # requestsThisHour is read back after the request
    op = operator.start()
    tenant = unique("counts")
    op.create_tenant(tenant, tier="enterprise", rateLimitPerHour=5000)
    op.create_apikey("one", tenant)
    op.create_apikey("two", tenant)
    op.wait_ready("one")
    op.wait_ready("two")
    key = op.secret_key("one")
    assert key is not None and call_api(api.url, key) == 200

    def counted() -> dict[str, object] | None:
        obj = op.get(op.tenants(tenant)) or {}
        status = obj.get("status") or {}
        return status if status.get("activeKeys") == 2 and (status.get("requestsThisHour") or 0) >= 1 else None

    status = wait_until(counted, "tenant counters", 15)
    assert status["hourlyLimit"] == 5000 and status["tenantId"]

    health = httpx.get(f"http://127.0.0.1:{op.health_port}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["database"] == "ok"
    metrics = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).text
    assert 'vibexp_operator_reconciles_total{handler="reconcile",resource="apikey",result="success"}' in metrics
    assert "vibexp_operator_reconcile_duration_seconds_bucket" in metrics
    assert "vibexp_operator_reconcile_errors_total" in metrics
    assert key not in metrics


def test_deleted_tenant_suspends_account(operator: Operator, api: LiveServer) -> None:
    op = operator.start()
    tenant = unique("gone")
    op.create_tenant(tenant)
    op.create_apikey("k", tenant)
    op.wait_ready("k")
    key = op.secret_key("k")
    assert key is not None and call_api(api.url, key) == 200
    assert op.admin.delete(op.tenants(tenant)).status_code == 200
    wait_until(lambda: op.get(op.tenants(tenant)) is None, "VibeXPTenant gone")
    wait_status(api.url, key, 403)
    op.wait_condition("k", "False", "TenantNotFound", timeout=15)
