"""The detectors a flush runs (``DETECTORS``: a new detector is one module and one entry there) and
:class:`AlertDetector`, which runs them on each batch in one transaction and hands what they find to the sink."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors.after_hours import AfterHours
from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, DetectorLimits, Finding
from vibexp.core.alerts.detectors.disallowed_address import DisallowedAddress
from vibexp.core.alerts.detectors.failed_auth import FailedAuth
from vibexp.core.alerts.detectors.new_country import NewCountry
from vibexp.core.alerts.detectors.new_network import NewNetwork
from vibexp.core.alerts.detectors.request_spike import RequestSpike
from vibexp.core.alerts.detectors.retired_key_used import RetiredKeyUsed
from vibexp.core.alerts.models import AlertKind
from vibexp.core.alerts.service import raise_alert
from vibexp.core.db import Database, writing
from vibexp.core.traffic import Refusal, UsageEvent

__all__ = ["DETECTORS", "SWEEP_INTERVAL", "AlertDetector", "AlertSink", "DefaultAlertSink"]

log = logging.getLogger("vibexp.core.alerts.detectors")

#: Every detector, in the order a batch's findings go to the sink: those from memory alone first, then those that
#: query. Each is built with this process's clock.
DETECTORS: tuple[Callable[[Clock], Detector], ...] = (
    RequestSpike,
    RetiredKeyUsed,
    DisallowedAddress,
    FailedAuth,
    AfterHours,
    NewNetwork,
    NewCountry,
)
#: How often per-key in-memory state that can no longer matter is dropped (seconds).
SWEEP_INTERVAL = 600.0


class AlertSink(Protocol):
    """Where a detected alert goes: ``vibexp.core.alerts.service.raise_alert`` has this signature."""

    async def __call__(
        self,
        session: AsyncSession,
        /,
        *,
        tenant_id: str,
        key_id: str,
        kind: AlertKind,
        details: dict[str, Any],
        at: datetime | None = None,
        credential: CredentialKind = CredentialKind.api_key,
    ) -> object: ...


class DefaultAlertSink:
    """Logs each alert (kind, key id, details: never a key) and hands it to ``vibexp.core.alerts.service.raise_alert``,
    which dedupes it, records it and queues its webhook delivery in the detection's transaction."""

    async def __call__(
        self,
        session: AsyncSession,
        /,
        *,
        tenant_id: str,
        key_id: str,
        kind: AlertKind,
        details: dict[str, Any],
        at: datetime | None = None,
        credential: CredentialKind = CredentialKind.api_key,
    ) -> object:
        what = "grant" if credential is CredentialKind.grant else "key"
        log.warning("alert %s: %s %s of tenant %s %s", kind.value, what, key_id, tenant_id, details)
        return await raise_alert(
            session, tenant_id=tenant_id, key_id=key_id, kind=kind, details=details, at=at, credential=credential
        )


class AlertDetector:
    def __init__(
        self,
        database: Database,
        *,
        sink: AlertSink,
        limits: DetectorLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self.sink = sink
        self.limits = limits or DetectorLimits()
        self._clock = clock
        self.detectors: tuple[Detector, ...] = tuple(make(clock) for make in DETECTORS)
        #: The kinds whose condition lasts from one flush to the next (see ``DetectorLimits.repeat_after``).
        self.lasting_kinds = frozenset(detector.kind for detector in self.detectors if detector.lasting)
        #: (key id, kind) -> when this process last handed it to the sink.
        self._raised: dict[tuple[str, AlertKind], float] = {}
        self._last_sweep = clock()

    async def detect(self, events: Sequence[UsageEvent], refusals: Sequence[Refusal]) -> None:
        """Find this batch's alerts and hand each to the sink; key networks and countries recorded in the same
        transaction."""
        if not events and not refusals:
            return
        self._sweep()
        batch = Batch(events, refusals, self.limits)
        found = [(detector, finding) for detector in self.detectors for finding in detector.in_memory(batch)]
        raised: list[tuple[str, AlertKind]] = []
        opened: list[tuple[Detector, Finding]] = []
        engine = self._database.engine
        async with writing(engine), self._database.session_factory() as session, session.begin():
            for detector in self.detectors:
                found += [(detector, finding) for finding in await detector.in_transaction(session, batch)]
            now = self._clock()
            for detector, finding in found:
                token = (finding.key_id, finding.kind)
                last = self._raised.get(token) if finding.kind in self.lasting_kinds else None
                if last is not None and now - last < self.limits.repeat_after:
                    continue
                alert = await self.sink(
                    session,
                    tenant_id=finding.tenant_id,
                    key_id=finding.key_id,
                    kind=finding.kind,
                    details=finding.details,
                    at=finding.at,
                    credential=finding.credential,
                )
                raised.append(token)
                if alert is not None:
                    opened.append((detector, finding))
        now = self._clock()
        for token in raised:  # only once committed: a failed batch is raised again next time it is seen
            self._raised[token] = now
        for detector, finding in opened:
            detector.opened(finding, now)

    def _sweep(self) -> None:
        """Forget what can no longer matter: each detector's idle state, and stale raise times."""
        now = self._clock()
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        for detector in self.detectors:
            detector.sweep(now, self.limits)
        for token in [t for t, at in self._raised.items() if now - at > self.limits.repeat_after]:
            del self._raised[token]
