"""``spec.owners`` decided without I/O: who becomes owner, who is demoted, what status.owners and the
OwnersReconciled condition say, and which events are posted (the whole table runs in milliseconds)."""

from __future__ import annotations

import pytest

from vibexp.core.access import Role
from vibexp.operator.owners.plan import (
    Member,
    OwnerEntry,
    OwnerPlan,
    OwnerState,
    Step,
    Tried,
    entries_of,
    plan_owners,
    settle,
    wanted_owners,
)
from vibexp.operator.status import with_conditions

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"
OWNER, PENDING, KEPT = OwnerState.owner, OwnerState.pending, OwnerState.last_owner_kept


def member(role: Role, user_id: str = "u") -> Member:
    return Member(user_id, role)


def entry(email: str, state: OwnerState = OWNER, managed: bool = True) -> OwnerEntry:
    return OwnerEntry(email, state, managed)


def test_spec_owners_are_lower_cased_and_deduplicated_in_order() -> None:
    spec = {"owners": ["Bob@Example.com", A, " bob@example.com", "ALICE@example.com"]}
    assert wanted_owners(spec) == (B, A)
    assert wanted_owners({}) == wanted_owners({"owners": None}) == ()


def test_status_owners_are_read_back_and_an_unknown_state_is_pending() -> None:
    status = {
        "owners": [
            {"email": "Alice@Example.com", "state": "Owner", "managed": True},
            {"email": B, "state": "Whatever"},
            {"state": "Owner"},  # no e-mail: ignored
        ]
    }
    assert entries_of(status) == {A: entry(A), B: entry(B, PENDING, managed=False)}
    assert entries_of(None) == entries_of({}) == {}


@pytest.mark.parametrize(
    ("wanted", "previous", "members", "expected"),
    [
        # Not a member (or no user at all): the operator tries to make them owner.
        ((A,), {}, {}, OwnerPlan((A,), (), (), (A,))),
        # A member below owner: promoted.
        ((A,), {}, {A: member(Role.viewer)}, OwnerPlan((A,), (), (), (A,))),
        # An owner before the spec named them: nothing to do, and not the operator's to manage.
        ((A,), {}, {A: member(Role.owner)}, OwnerPlan((), (), (entry(A, managed=False),), (A,))),
        # An owner the spec brought in (e.g. Pending, then joined by an invitation as owner): managed.
        ((A,), {A: entry(A, PENDING)}, {A: member(Role.owner)}, OwnerPlan((), (), (entry(A),), (A,))),
        # A managed owner no longer listed: demoted; an unmanaged one is left alone.
        ((), {A: entry(A)}, {A: member(Role.owner)}, OwnerPlan((), (A,), (), ())),
        ((), {A: entry(A, managed=False)}, {A: member(Role.owner)}, OwnerPlan((), (), (), ())),
        # Managed, but already no owner (someone changed it) or gone: nothing to demote.
        ((), {A: entry(A)}, {A: member(Role.member)}, OwnerPlan((), (), (), ())),
        ((), {A: entry(A)}, {}, OwnerPlan((), (), (), ())),
        # A handover: B is made owner and A demoted in the same pass (the promotion runs first).
        ((B,), {A: entry(A)}, {A: member(Role.owner), B: member(Role.admin)}, OwnerPlan((B,), (A,), (), (B,))),
        # A kept last owner listed again: simply an owner, still managed.
        ((A,), {A: entry(A, KEPT)}, {A: member(Role.owner)}, OwnerPlan((), (), (entry(A),), (A,))),
    ],
)
def test_plan(
    wanted: tuple[str, ...], previous: dict[str, OwnerEntry], members: dict[str, Member], expected: OwnerPlan
) -> None:
    assert plan_owners(wanted, previous, members) == expected


def test_made_owners_and_pending_emails_are_reported_once() -> None:
    plan = plan_owners((A, B, C), {}, {C: member(Role.owner)})
    tried = [Tried(A, Step.make_owner, done=True, previous=Role.admin), Tried(B, Step.make_owner, done=False)]
    report = settle(plan, tried, {})
    assert report.entries == (entry(A), entry(B, PENDING), entry(C, managed=False))  # the spec's order
    assert [(e.warning, e.reason) for e in report.events] == [(False, "OwnerPromoted"), (False, "OwnerPending")]
    assert "admin -> owner" in report.events[0].message
    assert report.condition is not None and (report.condition.ready, report.condition.reason) == (
        False,
        "OwnersPending",
    )
    assert B in report.condition.message and A not in report.condition.message
    assert report.status() == [
        {"email": A, "state": "Owner", "managed": True},
        {"email": B, "state": "Pending", "managed": True},
        {"email": C, "state": "Owner", "managed": False},
    ]

    # The next pass: B still has no user; no second OwnerPending event.
    previous = {e.email: e for e in report.entries}
    still = settle(plan_owners((B,), previous, {}), [Tried(B, Step.make_owner, done=False)], previous)
    assert still.events == ()

    # B's user exists now: joined (no previous role), OwnersReconciled turns True.
    joined = settle(plan_owners((B,), previous, {}), [Tried(B, Step.make_owner, done=True)], previous)
    assert [(e.reason, e.message) for e in joined.events] == [
        ("OwnerAdded", f"{B} joined the account as owner (spec.owners)")
    ]
    assert joined.condition is not None and (joined.condition.ready, joined.condition.reason) == (True, "Reconciled")


def test_the_last_owner_is_kept_with_a_warning_once_and_demoted_later() -> None:
    previous = {A: entry(A)}
    plan = plan_owners((), previous, {A: member(Role.owner)})
    kept = settle(plan, [Tried(A, Step.demote, done=False, previous=Role.owner)], previous)
    assert kept.entries == (entry(A, KEPT),)
    assert [(e.warning, e.reason) for e in kept.events] == [(True, "LastOwnerKept")]
    assert kept.condition is not None and (kept.condition.ready, kept.condition.reason) == (False, "LastOwnerKept")

    # Retried by the sync: still the last owner, no new event; then another owner exists: demoted, entry gone.
    previous = {A: entry(A, KEPT)}
    plan = plan_owners((), previous, {A: member(Role.owner)})
    assert plan.demote == (A,)
    assert settle(plan, [Tried(A, Step.demote, done=False, previous=Role.owner)], previous).events == ()
    done = settle(plan, [Tried(A, Step.demote, done=True, previous=Role.owner)], previous)
    assert done.entries == () and done.condition is None and done.status() is None
    assert [(e.warning, e.reason) for e in done.events] == [(False, "OwnerDemoted")]


def test_nothing_asked_nothing_said() -> None:
    report = settle(plan_owners((), {}, {}), [], {})
    assert (report.entries, report.events, report.condition, report.status()) == ((), (), None, None)


def test_with_conditions_replaces_only_the_named_types() -> None:
    ready = {"type": "Ready", "status": "True"}
    owners = {"type": "OwnersReconciled", "status": "False"}
    other = {"type": "Other", "status": "True"}
    status = {"conditions": [ready, other]}
    assert with_conditions(status, {"OwnersReconciled": owners}) == [ready, other, owners]
    new_ready = {"type": "Ready", "status": "False"}
    assert with_conditions({"conditions": [ready, owners]}, {"Ready": new_ready, "OwnersReconciled": None}) == [
        new_ready
    ]
    assert with_conditions(None, {"Ready": ready, "OwnersReconciled": None}) == [ready]
