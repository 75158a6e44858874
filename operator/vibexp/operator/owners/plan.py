"""What ``VibeXPTenant.spec.owners`` asks of the account's memberships, decided without any I/O.

The rules (documented in the README's Kubernetes section):

* Each e-mail in ``spec.owners`` becomes an **owner**: a member is promoted, a user who is not a member joins as
  owner. An e-mail no VibeXP user has yet is **Pending**: the operator mints no password and no invitation link (a
  controller that parks an owner's credential somewhere makes whoever reads it the owner); the membership is made
  by the first reconcile (the periodic sync included) after a user with that e-mail exists — as a binding to a
  subject that does not exist yet takes effect in Kubernetes once it does.
* The operator manages only the owners the spec brought in (``managed`` in ``status.owners``): a person who was an
  owner before being listed is never touched by the operator. A managed owner removed from ``spec.owners`` is
  demoted to **admin**, never removed from the account; if that would leave the account without an owner, they stay
  owner (``LastOwnerKept``, a Warning event and the ``OwnersReconciled`` condition say so) and the demotion is
  retried until another owner exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vibexp.core.access import Role
from vibexp.operator.status import ReadyState

__all__ = [
    "CONDITION",
    "Event",
    "Member",
    "OwnerEntry",
    "OwnerPlan",
    "OwnerState",
    "OwnersReport",
    "Step",
    "Tried",
    "entries_of",
    "plan_owners",
    "settle",
    "wanted_owners",
]

#: The tenant condition that says how spec.owners stands.
CONDITION = "OwnersReconciled"


class OwnerState(StrEnum):
    owner = "Owner"
    pending = "Pending"
    last_owner_kept = "LastOwnerKept"


@dataclass(frozen=True, slots=True)
class OwnerEntry:
    """One item of ``status.owners``: an e-mail, where it stands, and whether the operator made them owner."""

    email: str
    state: OwnerState
    managed: bool

    def as_status(self) -> dict[str, Any]:
        return {"email": self.email, "state": self.state.value, "managed": self.managed}


@dataclass(frozen=True, slots=True)
class Member:
    """A member of the account, as the database says now."""

    user_id: str
    role: Role


class Step(StrEnum):
    make_owner = "make_owner"
    demote = "demote"


@dataclass(frozen=True, slots=True)
class OwnerPlan:
    #: Listed e-mails that are not owners of the account now: join or promote (a user may not exist).
    make_owner: tuple[str, ...]
    #: Managed owners no longer listed: to admin (refused for the last owner).
    demote: tuple[str, ...]
    #: Listed e-mails that are owners already: their status entries.
    settled: tuple[OwnerEntry, ...]
    #: The listed e-mails in the spec's order (status follows it).
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tried:
    """What a step gave. ``make_owner``: ``done`` False when no user has the e-mail; ``previous`` the role they
    had (None: they joined). ``demote``: ``done`` False when they are the account's last owner."""

    email: str
    step: Step
    done: bool
    previous: Role | None = None


@dataclass(frozen=True, slots=True)
class Event:
    warning: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class OwnersReport:
    entries: tuple[OwnerEntry, ...] = ()
    events: tuple[Event, ...] = ()
    #: The OwnersReconciled condition; None: nothing to say (no spec.owners, nothing managed), the condition goes.
    condition: ReadyState | None = None

    def status(self) -> list[dict[str, Any]] | None:
        return [entry.as_status() for entry in self.entries] or None


def wanted_owners(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """spec.owners, lower-cased (e-mails are compared case-insensitively, as sign-in does), first occurrence kept."""
    seen: dict[str, None] = {}
    for email in spec.get("owners") or ():
        seen.setdefault(str(email).strip().lower(), None)
    return tuple(seen)


def entries_of(status: Mapping[str, Any] | None) -> dict[str, OwnerEntry]:
    """status.owners as the last reconcile left it (unknown states are read as Pending)."""
    found: dict[str, OwnerEntry] = {}
    for item in (status or {}).get("owners") or ():
        email = str(item.get("email") or "").lower()
        if not email:
            continue
        try:
            state = OwnerState(item.get("state"))
        except ValueError:
            state = OwnerState.pending
        found[email] = OwnerEntry(email, state, bool(item.get("managed")))
    return found


def plan_owners(wanted: Sequence[str], previous: Mapping[str, OwnerEntry], members: Mapping[str, Member]) -> OwnerPlan:
    """Who to make owner, whom to demote, and the entries of those already right."""
    make: list[str] = []
    settled: list[OwnerEntry] = []
    for email in wanted:
        member = members.get(email)
        if member is not None and member.role is Role.owner:
            before = previous.get(email)
            # An owner before the spec named them stays unmanaged; one the spec brought in stays managed.
            managed = before is not None and before.managed
            settled.append(OwnerEntry(email, OwnerState.owner, managed))
        else:
            make.append(email)
    listed = set(wanted)
    demote = [
        email
        for email, before in previous.items()
        if email not in listed
        and before.managed
        and (member := members.get(email)) is not None
        and member.role is Role.owner
    ]
    return OwnerPlan(tuple(make), tuple(demote), tuple(settled), tuple(wanted))


def settle(plan: OwnerPlan, tried: Sequence[Tried], previous: Mapping[str, OwnerEntry]) -> OwnersReport:
    """The status entries, the events and the condition once the steps ran."""
    by_email = {entry.email: entry for entry in plan.settled}
    events: list[Event] = []
    kept: list[OwnerEntry] = []
    for step in tried:
        before = previous.get(step.email)
        if step.step is Step.make_owner:
            if step.done:
                by_email[step.email] = OwnerEntry(step.email, OwnerState.owner, True)
                events.append(_made_owner(step))
            else:
                by_email[step.email] = OwnerEntry(step.email, OwnerState.pending, True)
                if before is None or before.state is not OwnerState.pending:
                    events.append(
                        Event(
                            False,
                            "OwnerPending",
                            f"{step.email}: no VibeXP user has this e-mail yet; they become owner once one does",
                        )
                    )
        elif step.done:
            events.append(Event(False, "OwnerDemoted", f"{step.email}: owner -> admin (no longer in spec.owners)"))
        else:
            kept.append(OwnerEntry(step.email, OwnerState.last_owner_kept, True))
            if before is None or before.state is not OwnerState.last_owner_kept:
                events.append(
                    Event(
                        True,
                        "LastOwnerKept",
                        f"{step.email} stays owner although removed from spec.owners: the account would have no "
                        "owner left; make another member owner first",
                    )
                )
    entries = tuple(by_email[email] for email in plan.order if email in by_email) + tuple(kept)
    return OwnersReport(entries, tuple(events), _condition(entries))


def _made_owner(step: Tried) -> Event:
    if step.previous is None:
        return Event(False, "OwnerAdded", f"{step.email} joined the account as owner (spec.owners)")
    return Event(False, "OwnerPromoted", f"{step.email}: {step.previous.value} -> owner (spec.owners)")


def _condition(entries: Sequence[OwnerEntry]) -> ReadyState | None:
    if not entries:
        return None
    kept = [e.email for e in entries if e.state is OwnerState.last_owner_kept]
    pending = [e.email for e in entries if e.state is OwnerState.pending]
    parts: list[str] = []
    if kept:
        parts.append(f"kept as owner although removed from spec.owners (the account's last owner): {', '.join(kept)}")
    if pending:
        parts.append(
            f"no VibeXP user yet: {', '.join(pending)} (each becomes owner once a user with that e-mail exists, "
            "e.g. `vibexp user create` or an invitation)"
        )
    if kept:
        return ReadyState(False, "LastOwnerKept", "; ".join(parts)[:1000])
    if pending:
        return ReadyState(False, "OwnersPending", "; ".join(parts)[:1000])
    owners = sum(1 for e in entries if e.state is OwnerState.owner)
    return ReadyState(True, "Reconciled", f"{owners} owner(s) from spec.owners")
