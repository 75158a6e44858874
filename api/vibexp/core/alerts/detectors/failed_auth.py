"""**failed_auth**: typo'd keys (a checksum failure) whose display prefix (``vib_`` + 8 hex) is a live key's prefix
count as attempts against that key; one SELECT per flush resolves the batch's prefixes. ``failed_auth_threshold``
attempts within ``failed_auth_window`` seconds (counted in this process's memory) is an alert.

Display prefixes are public (dashboard, audit trail, ``vibexp scan``, access logs), so anyone can raise this kind at
will: it can never auto-revoke (``vibexp.core.alerts.models.AUTO_REVOCABLE``), and at most ``failed_auth_per_hour``
of them open per key per hour (counted in the database: every replica's alerts, acknowledged ones included) and per
source address per hour (counted in this process's memory), however often they are acknowledged. A finding past
either bound opens nothing (an open alert still counts the repeat), so it queues no webhook either. It is never held
back as a lasting kind: each alert is a fresh run of attempts, bounded per hour as above."""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, DetectorLimits, Finding
from vibexp.core.alerts.models import Alert, AlertKind, AlertStatus
from vibexp.core.clock import utcnow
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.traffic import TYPO, Refusal

__all__ = ["FailedAuth"]

log = logging.getLogger(__name__)

#: The span ``failed_auth_per_hour`` counts over (seconds).
_HOUR = 3600.0


class FailedAuth(Detector):
    kind = AlertKind.failed_auth

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: key id -> recent failed attempts (time, client address, reason), the newest ``threshold`` at most.
        self._attempts: dict[str, deque[tuple[datetime, str | None, str]]] = {}
        #: source address -> when (this process's clock) each failed_auth alert it took part in opened, past hour.
        self._sources: dict[str, deque[float]] = {}
        #: key id -> when this process last logged that it held back a failed_auth alert on the key.
        self._held_back_logged: dict[str, float] = {}

    async def in_transaction(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        return await self._bounded(session, batch.limits, await self._runs(session, batch))

    def opened(self, finding: Finding, now: float) -> None:
        for source in finding.details.get("client_ips") or ():
            self._sources.setdefault(source, deque()).append(now)

    async def _runs(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        """A finding for each key with ``failed_auth_threshold`` attempts within the window (the run then starts
        afresh)."""
        typos = [r for r in batch.refusals if r.reason == TYPO and r.key_prefix]
        attempts: list[tuple[str, str, Refusal]] = []
        if typos:
            owners: dict[str, list[tuple[str, str]]] = {}
            rows = await session.execute(
                select(ApiKey.id, ApiKey.tenant_id, ApiKey.prefix).where(
                    ApiKey.prefix.in_({r.key_prefix for r in typos}), ApiKey.status != KeyStatus.revoked.value
                )
            )
            for key_id, tenant_id, prefix in rows:
                owners.setdefault(prefix, []).append((key_id, tenant_id))
            for refusal in typos:
                for key_id, tenant_id in owners.get(refusal.key_prefix or "", ()):
                    attempts.append((key_id, tenant_id, refusal))
        if not attempts:
            return []
        limits = batch.limits
        threshold, window = limits.failed_auth_threshold, timedelta(seconds=limits.failed_auth_window)
        touched: dict[str, str] = {}
        for key_id, tenant_id, refusal in attempts:
            recent = self._attempts.get(key_id)
            if recent is None or recent.maxlen != threshold:
                recent = self._attempts[key_id] = deque(recent or (), maxlen=threshold)
            recent.append((refusal.at, refusal.client_ip, refusal.reason))
            touched[key_id] = tenant_id
        findings = []
        for key_id, tenant_id in touched.items():
            recent = self._attempts[key_id]
            newest = max(at for at, _, _ in recent)
            if len(recent) >= threshold and min(at for at, _, _ in recent) >= newest - window:
                details = {
                    "attempts": len(recent),
                    "window_seconds": limits.failed_auth_window,
                    "reasons": sorted({reason for _, _, reason in recent}),
                    "client_ips": sorted({ip for _, ip, _ in recent if ip}),
                }
                findings.append(Finding(tenant_id, key_id, self.kind, newest, details))
                recent.clear()  # the next alert needs a fresh run of attempts
        return findings

    async def _bounded(self, session: AsyncSession, limits: DetectorLimits, findings: list[Finding]) -> list[Finding]:
        """The findings that may go to the sink: those that would only count a repeat of an open alert, and those
        within ``failed_auth_per_hour`` alerts opened on the key (any replica, from the database) and from each of
        their source addresses (this process) in the past hour."""
        if not findings:
            return []
        limit, now = limits.failed_auth_per_hour, self._clock()
        since = utcnow() - timedelta(seconds=_HOUR)
        rows = await session.execute(
            select(Alert.key_id, Alert.status, Alert.first_seen_at).where(
                Alert.key_id.in_({finding.key_id for finding in findings}),
                Alert.kind == self.kind.value,
                or_(Alert.status == AlertStatus.open.value, Alert.first_seen_at >= since),
            )
        )
        open_keys: set[str | None] = set()
        opened: dict[str | None, int] = {}
        for key_id, status, first_seen_at in rows:
            if status == AlertStatus.open.value:
                open_keys.add(key_id)
            if first_seen_at >= since:
                opened[key_id] = opened.get(key_id, 0) + 1
        kept = []
        for finding in findings:
            if finding.key_id not in open_keys:
                busy = [ip for ip in finding.details.get("client_ips") or () if self._source_count(ip, now) >= limit]
                if opened.get(finding.key_id, 0) >= limit or busy:
                    self._held_back(finding, limit, busy, now)
                    continue
            kept.append(finding)
        return kept

    def _source_count(self, source: str, now: float) -> int:
        times = self._sources.get(source)
        while times and now - times[0] > _HOUR:
            times.popleft()
        return len(times) if times else 0

    def _held_back(self, finding: Finding, limit: int, busy: list[str], now: float) -> None:
        last = self._held_back_logged.get(finding.key_id)
        if last is not None and now - last < _HOUR:
            return
        self._held_back_logged[finding.key_id] = now
        log.info(
            "failed_auth on key %s of tenant %s not raised: %d such alerts an hour at most per key and per source "
            "address (sources at the limit: %s); further ones this hour are not logged",
            finding.key_id,
            finding.tenant_id,
            limit,
            ", ".join(busy) or "none",
        )

    def sweep(self, now: float, limits: DetectorLimits) -> None:
        cutoff = utcnow() - timedelta(seconds=limits.failed_auth_window)
        for key_id in [k for k, recent in self._attempts.items() if not recent or recent[-1][0] < cutoff]:
            del self._attempts[key_id]
        for source in [s for s in self._sources if not self._source_count(s, now)]:
            del self._sources[source]
        for key_id in [k for k, at in self._held_back_logged.items() if now - at > _HOUR]:
            del self._held_back_logged[key_id]
