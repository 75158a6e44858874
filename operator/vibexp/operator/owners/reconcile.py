"""``VibeXPTenant.spec.owners`` applied: read the members, plan (:mod:`.plan`), make owners and demote through
the member use cases in one unit of work (the audit trail names the operator), then post the events.

Called by the tenant's change handlers and its periodic sync (which is what notices a Pending e-mail's user once
they exist, and retries a demotion kept back by the last-owner rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vibexp.core.access import Caller, Role
from vibexp.core.errors import Conflict
from vibexp.core.members import usecases as members
from vibexp.operator.events import post_event
from vibexp.operator.owners.plan import (
    Member,
    OwnersReport,
    Step,
    Tried,
    entries_of,
    plan_owners,
    settle,
    wanted_owners,
)
from vibexp.operator.runtime import OperatorRuntime

__all__ = ["reconcile_owners"]


async def reconcile_owners(rt: OperatorRuntime, body: Mapping[str, Any], caller: Caller) -> OwnersReport:
    """Bring the account's owners in line with spec.owners; ``caller`` is the operator acting for this tenant.

    Call it holding ``rt.lock(uid)`` until its report is in the status: which owners the operator made is read from
    ``status.owners``, so a change handler and the sync timer must not both work from the same old status."""
    wanted = wanted_owners(body.get("spec") or {})
    previous = entries_of(body.get("status"))
    if not wanted and not any(entry.managed for entry in previous.values()):
        return OwnersReport()  # nothing listed, nothing of ours to undo: not even a query
    # The handler's body may predate the last status patch (a timer's body follows the watch, a little behind).
    fresh = await rt.kube.read_tenant(str(body["metadata"]["name"]))
    if fresh is not None:
        previous = entries_of(fresh.get("status"))
    tried: list[Tried] = []
    async with rt.unit_of_work() as session:
        found = {
            row.email: Member(row.user_id, Role(row.role)) for row in await members.list_members(session, caller=caller)
        }
        plan = plan_owners(wanted, previous, found)
        for email in plan.make_owner:
            ensured = await members.ensure_owner(session, caller=caller, email=email)
            previous_role = ensured.previous if ensured is not None else None
            tried.append(Tried(email, Step.make_owner, done=ensured is not None, previous=previous_role))
        # Demotions after the promotions: handing ownership over (spec.owners [a] -> [b]) works in one pass.
        for email in plan.demote:
            try:
                await members.change_role(session, caller=caller, user_id=found[email].user_id, role=Role.admin)
            except Conflict as exc:
                if exc.code != "last_owner":
                    raise
                tried.append(Tried(email, Step.demote, done=False, previous=Role.owner))
            else:
                tried.append(Tried(email, Step.demote, done=True, previous=Role.owner))
    report = settle(plan, tried, previous)
    for event in report.events:  # after the commit: an event never announces a change that rolled back
        post_event(body, warning=event.warning, reason=event.reason, message=event.message)
    return report
