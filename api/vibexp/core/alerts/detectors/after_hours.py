"""**after_hours**: a request outside its tenant's ``working_hours`` (``vibexp.core.alerts.hours``), in the tenant's
zone. The batch's tenants' settings are read by one SELECT at most every ``HOURS_TTL`` seconds."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, DetectorLimits, Finding
from vibexp.core.alerts.hours import WorkingHours
from vibexp.core.alerts.hours import parse as parse_working_hours
from vibexp.core.alerts.models import AlertKind
from vibexp.core.errors import InvalidInput
from vibexp.core.tenants.models import Tenant

__all__ = ["HOURS_TTL", "AfterHours"]

log = logging.getLogger(__name__)

#: How long a tenant's working hours are trusted before they are read again (seconds): a change applies this late.
HOURS_TTL = 10.0


class AfterHours(Detector):
    kind = AlertKind.after_hours
    lasting = True

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: tenant id -> (when read, its parsed working hours or None).
        self._hours: dict[str, tuple[float, WorkingHours | None]] = {}

    async def in_transaction(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        events = batch.events
        if not events:
            return []
        now = self._clock()
        tenants = {event.tenant_id for event in events}
        stale = [t for t in tenants if t not in self._hours or now - self._hours[t][0] > HOURS_TTL]
        if stale:
            rows = await session.execute(select(Tenant.id, Tenant.working_hours).where(Tenant.id.in_(stale)))
            loaded = {tenant_id: text for tenant_id, text in rows}
            for tenant_id in stale:
                self._hours[tenant_id] = (now, _parse(tenant_id, loaded.get(tenant_id)))
        findings: dict[str, Finding] = {}
        for event in events:
            hours = self._hours[event.tenant_id][1]
            if hours is None or event.key_id in findings or hours.within(event.at):
                continue
            details = {
                "local_time": event.at.astimezone(hours.zone).isoformat(timespec="minutes"),
                "working_hours": hours.text,
                "client_ip": event.client_ip,
            }
            findings[event.key_id] = Finding(
                event.tenant_id, event.key_id, self.kind, event.at, details, credential=event.credential
            )
        return list(findings.values())

    def sweep(self, now: float, limits: DetectorLimits) -> None:
        for tenant_id in [t for t, (at, _) in self._hours.items() if now - at > HOURS_TTL]:
            del self._hours[tenant_id]


def _parse(tenant_id: str, text: str | None) -> WorkingHours | None:
    if not text:
        return None
    try:
        return parse_working_hours(text)
    except (ValueError, InvalidInput) as exc:  # validated when set; a stored value that does not parse turns the
        # check off for the tenant, loudly
        log.warning("tenant %s has working hours that do not parse (%s): after_hours is off for it", tenant_id, exc)
        return None
