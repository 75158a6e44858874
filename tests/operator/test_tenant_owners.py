"""``VibeXPTenant.spec.owners`` end to end (issue #28, item 7): real kube-apiserver, a real ``vibexp operator``
and, for the keys, a real ``vibexp serve``, on SQLite and PostgreSQL.

* an e-mail of an existing user makes them owner (joining, or promoted); an e-mail no user has is Pending and
  becomes owner once the user exists (the periodic sync);
* an owner the operator made and the spec no longer lists is demoted to admin, never removed; the account's last
  owner is kept (LastOwnerKept) until another owner exists; an owner the operator did not make is left alone;
* the CRD refuses what is not an e-mail (422), and too many;
* keys minted from ApiKey CRs are service keys (no owner).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opkit import MERGE, Operator, unique, wait_until
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.servers import LiveServer
from vibexp.core.access import Caller, Role
from vibexp.core.audit.models import AuditEvent
from vibexp.core.tenants import usecases as accounts
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import usecases as users
from vibexp.core.users.models import Membership, User

pytestmark = [pytest.mark.kube]

PASSWORD = "correct horse battery"


# -- helpers ------------------------------------------------------------------------------------------------------
@pytest.fixture
def tenant_names(operator: Operator) -> Iterator[list[str]]:
    """The test's VibeXPTenants, deleted while its operator still runs (they are cluster-scoped: one left behind
    would be reconciled by every later test's operator)."""
    names: list[str] = []
    yield names
    for name in names:
        operator.admin.delete(operator.tenants(name))
    for name in names:
        wait_until(lambda n=name: operator.get(operator.tenants(n)) is None, f"VibeXPTenant {name} deleted", 60)


def email(who: str) -> str:
    """An address of this test's own: users are global, and both databases' runs share nothing else."""
    return f"{who}-{secrets.token_hex(4)}@example.com"


def add_user(op: Operator, address: str, *, tenant: str | None = None, role: Role = Role.owner) -> str:
    """A person, member of ``tenant`` (a fresh home account of their own when None), as ``vibexp user create``."""

    async def work(session: AsyncSession) -> str:
        if tenant is None:
            account = await accounts.create_account(session, data=TenantCreate(name=unique("home")))
        else:
            account = await accounts.account_named(session, name=tenant)
        user = await users.add_person(
            session, caller=Caller.cli(account.id), email=address, password=PASSWORD, role=role
        )
        return user.id

    return op.in_database(work)


def roles_in(op: Operator, tenant: str) -> dict[str, str]:
    """e-mail -> role of every member of the tenant, read from the database."""

    async def work(session: AsyncSession) -> dict[str, str]:
        account = await accounts.account_named(session, name=tenant)
        rows = await session.execute(
            select(User.email, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == account.id)
        )
        return {address: role for address, role in rows}

    return op.in_database(work)


def member_audit(op: Operator, tenant: str) -> list[tuple[str, str | None, str, str | None]]:
    """(action, target e-mail, actor type, actor id) of the tenant's member.* audit events, oldest first."""

    async def work(session: AsyncSession) -> list[tuple[str, str | None, str, str | None]]:
        account = await accounts.account_named(session, name=tenant)
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == account.id, AuditEvent.action.like("member.%"))
            .order_by(AuditEvent.id)
        )
        return [(e.action, e.target_name, e.actor_type, e.actor_id) for e in rows]

    return op.in_database(work)


def owners_status(op: Operator, name: str) -> dict[str, tuple[str, bool]]:
    status = (op.get(op.tenants(name)) or {}).get("status") or {}
    return {o["email"]: (o["state"], bool(o.get("managed"))) for o in status.get("owners") or []}


def owners_condition(op: Operator, name: str) -> dict[str, Any] | None:
    conditions = ((op.get(op.tenants(name)) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "OwnersReconciled"), None)


def wait_owners(op: Operator, name: str, expected: dict[str, tuple[str, bool]], reason: str) -> dict[str, Any]:
    """Wait until status.owners is ``expected`` and OwnersReconciled has ``reason``; answer the condition."""

    def check() -> dict[str, Any] | None:
        condition = owners_condition(op, name)
        if owners_status(op, name) == expected and condition is not None and condition["reason"] == reason:
            return condition
        return None

    try:
        found: dict[str, Any] = wait_until(check, f"VibeXPTenant {name} owners {expected} ({reason})", 30)
    except AssertionError as exc:
        now = (owners_status(op, name), owners_condition(op, name))
        raise AssertionError(f"{exc}; now: {now}\n{op.log()}") from exc
    return found


def tenant_events(op: Operator, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the events on a VibeXPTenant (cluster-scoped: Kopf posts them in the operator's
    current namespace, so every namespace is searched)."""
    resp = op.admin.get(
        "/api/v1/events",
        params={"fieldSelector": f"involvedObject.name={name},involvedObject.kind=VibeXPTenant"},
    )
    assert resp.status_code == 200, resp.text
    return [(e["type"], e["reason"], e["message"]) for e in resp.json()["items"]]


def wait_event(op: Operator, name: str, reason: str, type_: str) -> str:
    def check() -> str | None:
        return next((m for t, r, m in tenant_events(op, name) if (t, r) == (type_, reason)), None)

    found: str = wait_until(check, f"{type_} event {reason} on {name}", 20)
    return found


def set_owners(op: Operator, name: str, owners: list[str]) -> None:
    resp = op.admin.patch(op.tenants(name), json={"spec": {"owners": owners}}, headers=MERGE)
    assert resp.status_code == 200, resp.text


# -- spec.owners ------------------------------------------------------------------------------------------------------
def test_listed_users_become_owners_and_an_unknown_email_waits_for_its_user(
    operator: Operator, tenant_names: list[str]
) -> None:
    op = operator.start()
    name = unique("owners")
    tenant_names.append(name)
    outsider, pending = email("outsider"), email("pending")
    add_user(op, outsider)  # a user of another account
    op.create_tenant(name, owners=[outsider.upper(), pending])

    # The existing user joins as owner; the unknown e-mail is Pending; nothing else was invented for it.
    condition = wait_owners(op, name, {outsider: ("Owner", True), pending: ("Pending", True)}, "OwnersPending")
    assert condition["status"] == "False" and pending in condition["message"] and outsider not in condition["message"]
    assert roles_in(op, name) == {outsider: "owner"}
    assert member_audit(op, name) == [("member.joined", outsider, "operator", name)]
    assert wait_event(op, name, "OwnerAdded", "Normal") == f"{outsider} joined the account as owner (spec.owners)"
    assert pending in wait_event(op, name, "OwnerPending", "Normal")
    ready = op.ready(op.get(op.tenants(name)))  # Ready is kept next to OwnersReconciled: pending owners are no fault
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "Reconciled")

    # Someone the tenant made a viewer and then lists is promoted.
    viewer = email("viewer")
    add_user(op, viewer, tenant=name, role=Role.viewer)
    set_owners(op, name, [outsider, pending, viewer])
    wait_owners(
        op,
        name,
        {outsider: ("Owner", True), pending: ("Pending", True), viewer: ("Owner", True)},
        "OwnersPending",
    )
    assert wait_event(op, name, "OwnerPromoted", "Normal") == f"{viewer}: viewer -> owner (spec.owners)"

    # The pending person gets a user (in their own account): the periodic sync makes them owner, no spec edit.
    add_user(op, pending)
    condition = wait_owners(
        op,
        name,
        {outsider: ("Owner", True), pending: ("Owner", True), viewer: ("Owner", True)},
        "Reconciled",
    )
    assert condition["status"] == "True"
    assert roles_in(op, name) == {outsider: "owner", pending: "owner", viewer: "owner"}
    actions = [(a, target, actor) for a, target, actor, _ in member_audit(op, name)]
    assert actions == [
        ("member.joined", outsider, "operator"),
        ("member.joined", viewer, "cli"),
        ("member.role_changed", viewer, "operator"),
        ("member.joined", pending, "operator"),
    ]


def test_a_removed_owner_is_demoted_but_never_the_last_one(operator: Operator, tenant_names: list[str]) -> None:
    op = operator.start()
    name = unique("handover")
    tenant_names.append(name)
    alice, bob, carol = email("alice"), email("bob"), email("carol")
    for person in (alice, bob):
        add_user(op, person)
    op.create_tenant(name, owners=[alice])
    wait_owners(op, name, {alice: ("Owner", True)}, "Reconciled")

    # Alice leaves the list, but she is the only owner: she stays, and the tenant says why.
    set_owners(op, name, [])
    condition = wait_owners(op, name, {alice: ("LastOwnerKept", True)}, "LastOwnerKept")
    assert condition["status"] == "False" and alice in condition["message"]
    assert "account would have no owner left" in wait_event(op, name, "LastOwnerKept", "Warning")
    assert roles_in(op, name) == {alice: "owner"}

    # Handing over: Bob is listed; he is made owner and Alice demoted to admin in the same pass (not removed).
    set_owners(op, name, [bob])
    wait_owners(op, name, {bob: ("Owner", True)}, "Reconciled")
    assert roles_in(op, name) == {alice: "admin", bob: "owner"}
    assert wait_event(op, name, "OwnerDemoted", "Normal") == f"{alice}: owner -> admin (no longer in spec.owners)"

    # Carol was an owner before being listed: the operator did not make her, so dropping her changes nothing.
    add_user(op, carol, tenant=name, role=Role.owner)
    set_owners(op, name, [bob, carol])
    wait_owners(op, name, {bob: ("Owner", True), carol: ("Owner", False)}, "Reconciled")
    set_owners(op, name, [bob])
    wait_owners(op, name, {bob: ("Owner", True)}, "Reconciled")
    assert roles_in(op, name) == {alice: "admin", bob: "owner", carol: "owner"}

    # Nothing listed any more: Bob is demoted now (Carol remains an owner), the condition and status.owners go.
    set_owners(op, name, [])

    def settled() -> bool:
        obj = op.get(op.tenants(name)) or {}
        return "owners" not in (obj.get("status") or {}) and owners_condition(op, name) is None

    wait_until(settled, "status.owners and OwnersReconciled removed")
    assert roles_in(op, name) == {alice: "admin", bob: "admin", carol: "owner"}
    by_operator = [(action, target) for action, target, actor, _ in member_audit(op, name) if actor == "operator"]
    assert by_operator == [
        ("member.joined", alice),
        ("member.joined", bob),
        ("member.role_changed", alice),
        ("member.role_changed", bob),
    ]


# -- the CRD refuses bad lists ------------------------------------------------------------------------------------
@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(
    ("owners", "message"),
    [
        (["not-an-email"], 'spec.owners[0]: Invalid value: "not-an-email"'),
        (["a@b.io", "two@at@x.io"], "spec.owners[1]: Invalid value"),
        (["a b@x.io"], "spec.owners[0]: Invalid value"),
        (["a@localhost"], "spec.owners[0]: Invalid value"),
        (["a@x.io", "a@x.io"], 'spec.owners[1]: Duplicate value: "a@x.io"'),
        ([f"p{i}@x.io" for i in range(51)], "spec.owners: Too many: 51"),
        ([f"{'a' * 250}@x.io"], "spec.owners[0]: Too long"),
    ],
)
def test_the_crd_refuses_what_is_not_a_list_of_emails(
    kube_admin: httpx.Client, owners: list[str], message: str
) -> None:
    body = {
        "apiVersion": "vibexp.io/v1alpha1",
        "kind": "VibeXPTenant",
        "metadata": {"name": unique("bad")},
        "spec": {"owners": owners},
    }
    resp = kube_admin.post(Operator.tenants(), json=body)
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["message"]


# -- ApiKey CRs make service keys -----------------------------------------------------------------------------
def test_keys_from_apikey_crs_are_service_keys(operator: Operator, api: LiveServer, tenant_names: list[str]) -> None:
    op = operator.start()
    name = unique("svc")
    tenant_names.append(name)
    lead = email("lead")
    add_user(op, lead)
    op.create_tenant(name, owners=[lead])  # the account has a person; the CR's key still belongs to nobody
    op.create_apikey("ci", name)
    obj = op.wait_ready("ci")
    key = op.secret_key("ci")
    assert key is not None
    [record] = op.keys_of(obj["metadata"]["uid"])
    assert record.owner_user_id is None

    headers = {"Authorization": f"Bearer {key}"}
    one = httpx.get(f"{api.url}/api/v1/api-keys/{record.id}", headers=headers, timeout=10)
    assert one.status_code == 200, one.text
    assert one.json()["owner"] is None
    service = httpx.get(f"{api.url}/api/v1/api-keys", params={"owner": "service"}, headers=headers, timeout=10)
    assert service.status_code == 200, service.text
    assert record.id in [k["id"] for k in service.json()["items"]]
    theirs = httpx.get(f"{api.url}/api/v1/api-keys", params={"owner": lead}, headers=headers, timeout=10)
    assert theirs.status_code == 200, theirs.text
    assert record.id not in [k["id"] for k in theirs.json()["items"]]
