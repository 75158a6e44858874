"""``VibeXPTenant.spec.alerts`` (#16): the webhook URL, its signing secret read from a Secret, auto-revocation and
working hours reach the tenant record; a missing Secret is reported on the tenant and retried.

Real kube-apiserver and a real ``vibexp operator`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opkit import MERGE, Operator, unique, wait_until
from sqlalchemy import select

from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.secret_box import default_box
from vibexp.core.tenants.models import Tenant

pytestmark = [pytest.mark.kube]

SECRET = "whsec-operator-test-value"


def _opened(row: Any) -> str | None:
    """The tenant's webhook secret, decrypted with the server key (it is stored encrypted)."""
    return default_box().open(row.alert_webhook_secret) if row.alert_webhook_secret else None


def tenant_row(op: Operator, name: str) -> Tenant | None:
    async def query() -> Tenant | None:
        engine = create_engine(op.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return await session.scalar(select(Tenant).where(Tenant.name == name))
        finally:
            await engine.dispose()

    return asyncio.run(query())


def tenant_audit(op: Operator, tenant_id: str) -> list[dict[str, Any]]:
    async def query() -> list[dict[str, Any]]:
        engine = create_engine(op.database_url)
        try:
            async with create_session_factory(engine)() as session:
                rows = await session.scalars(
                    select(AuditEvent).where(AuditEvent.target_id == tenant_id, AuditEvent.action == "tenant.updated")
                )
                return [e.details for e in rows]
        finally:
            await engine.dispose()

    return asyncio.run(query())


def tenant_ready(op: Operator, name: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = op.ready(op.get(op.tenants(name)))
        matches = cond and (cond["status"], cond["reason"]) == (status, reason) and message in cond["message"]
        return cond if matches else None

    try:
        found: dict[str, Any] = wait_until(check, f"VibeXPTenant {name} Ready={status} {reason}", 30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; now: {op.ready(op.get(op.tenants(name)))}\n{op.log()}") from exc
    return found


def create_secret(op: Operator, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    resp = op.admin.post(op.secrets(), json={"metadata": {"name": name}, "data": encoded})
    assert resp.status_code == 201, resp.text


@pytest.fixture
def tenant_names(operator: Operator) -> Iterator[list[str]]:
    """The test's VibeXPTenants, deleted while its operator still runs: tenants are cluster-scoped, and one left
    behind (say, waiting for a webhook Secret) would be reconciled by every later test's operator."""
    names: list[str] = []
    yield names
    for name in names:
        operator.admin.delete(operator.tenants(name))
    for name in names:
        wait_until(lambda n=name: operator.get(operator.tenants(n)) is None, f"VibeXPTenant {name} deleted", 60)


def test_spec_alerts_reach_the_tenant_and_a_missing_secret_is_reported(
    operator: Operator, tenant_names: list[str]
) -> None:
    op = operator
    op.extra_env["VIBEXP_OPERATOR_NAMESPACE"] = op.ns  # the Secret is looked up here when the ref names none
    op.start()
    name = unique("alerts")
    tenant_names.append(name)
    alerts = {
        "webhookUrl": "https://hooks.example.com/vibexp",
        "webhookSecretRef": {"name": "vibexp-webhook", "key": "secret"},
        "autoRevokeOn": ["key_leaked", "new_network"],
        "workingHours": "Mon-Fri 08:00-19:00 Europe/Berlin",
    }
    op.create_tenant(name, tier="pro", alerts=alerts)

    # No Secret yet: the tenant is made (its keys work) but not Ready, and says what it waits for.
    tenant_ready(op, name, "False", "WebhookSecretMissing", f"Secret {op.ns}/vibexp-webhook not found")
    row = tenant_row(op, name)
    assert row is not None and row.tier == "pro" and row.alert_webhook_secret is None

    # The Secret appears (with the wrong key first): retried until it holds the key.
    create_secret(op, "vibexp-webhook", {"other": "x"})
    tenant_ready(op, name, "False", "WebhookSecretMissing", "has no key 'secret'")
    resp = op.admin.patch(
        op.secrets("vibexp-webhook"),
        json={"data": {"secret": base64.b64encode(SECRET.encode()).decode()}},
        headers=MERGE,
    )
    assert resp.status_code == 200, resp.text
    tenant_ready(op, name, "True", "Reconciled")
    row = tenant_row(op, name)
    assert row is not None
    assert row.alert_webhook_url == "https://hooks.example.com/vibexp"
    assert row.alert_webhook_secret is not None and SECRET not in row.alert_webhook_secret  # encrypted at rest
    assert default_box().open(row.alert_webhook_secret) == SECRET
    assert sorted(row.auto_revoke_on) == ["key_leaked", "new_network"]
    assert row.working_hours == "Mon-Fri 08:00-19:00 Europe/Berlin"
    audit = tenant_audit(op, row.id)
    assert audit and SECRET not in json.dumps(audit)  # the change is audited, the secret is not
    assert any(d["changes"].get("alert_webhook_secret") == "changed" for d in audit)

    # The Secret is rotated: the periodic sync follows it, no edit of the VibeXPTenant needed.
    rotated = "whsec-rotated-value"
    resp = op.admin.patch(
        op.secrets("vibexp-webhook"),
        json={"data": {"secret": base64.b64encode(rotated.encode()).decode()}},
        headers=MERGE,
    )
    assert resp.status_code == 200, resp.text
    wait_until(lambda: (r := tenant_row(op, name)) is not None and _opened(r) == rotated, "secret rotated")

    # A spec change follows; dropping a field clears it (a merge patch's null removes webhookUrl).
    changed = {"webhookUrl": None, "autoRevokeOn": [], "workingHours": "Mon-Sun 00:00-23:59 UTC"}
    resp = op.admin.patch(op.tenants(name), json={"spec": {"alerts": changed}}, headers=MERGE)
    assert resp.status_code == 200, resp.text

    def updated() -> Tenant | None:
        found = tenant_row(op, name)
        return found if found is not None and found.working_hours == "Mon-Sun 00:00-23:59 UTC" else None

    row = wait_until(updated, "working hours updated")
    assert row.alert_webhook_url is None and row.auto_revoke_on == [] and _opened(row) == rotated


def test_a_secret_ref_outside_the_tenants_namespaces_is_refused(operator: Operator, tenant_names: list[str]) -> None:
    op = operator
    op.extra_env["VIBEXP_OPERATOR_NAMESPACE"] = op.ns
    op.start()
    name = unique("alerts")
    tenant_names.append(name)
    ref = {"name": "vibexp-webhook", "key": "secret", "namespace": "kube-system"}
    op.create_tenant(name, alerts={"webhookUrl": "https://hooks.example.com/x", "webhookSecretRef": ref})
    tenant_ready(op, name, "False", "InvalidSpec", "'kube-system' is neither the operator's namespace")
