"""The six unusual-activity detectors, run by the usage recorder's flush on each batch (never per request).

Each flush (every 0.5 s) hands the batch's usage events and refused attempts to ``AlertDetector.detect``, which
opens one session and, in one transaction:

* **new_network**: the IPv4 /24 or IPv6 /48 of each event's client address, per key. One SELECT reads the known
  networks of the batch's keys, one multi-row upsert (``INSERT ... ON CONFLICT DO UPDATE``) records the batch's
  networks with their newest ``last_seen_at``. A network the key has not used in ``new_network_days`` days is an
  alert; a key's first network ever is not (nor is a key with no parseable client address).
* **request_spike**: requests per minute per key, counted in this process's memory from the events (one counter per
  key and minute, an hour kept). An alert when the current minute's count exceeds
  ``max(spike_per_minute, spike_factor * the average per minute over the previous 60 minutes)``. Per process: with
  N replicas behind a balancer each sees about 1/N of a key's traffic, so the effective thresholds are N times
  higher; a restarted process starts with no history (the floor ``spike_per_minute`` applies). No query.
* **failed_auth**: typo'd keys (a checksum failure) whose display prefix (``vib_`` + 8 hex) is a live key's prefix
  count as attempts against that key; one SELECT per flush resolves the batch's prefixes. ``failed_auth_threshold``
  attempts within ``failed_auth_window`` seconds (counted in this process's memory) is an alert. Display prefixes
  are public (dashboard, audit trail, ``vibexp scan``, access logs), so anyone can raise this kind at will: it can
  never auto-revoke (``vibexp.core.alerts.models.AUTO_REVOCABLE``), and at most ``failed_auth_per_hour`` of them
  open per key per hour (counted in the database: every replica's alerts, acknowledged ones included) and per
  source address per hour (counted in this process's memory), however often they are acknowledged. A finding past
  either bound opens nothing (an open alert still counts the repeat), so it queues no webhook either.
* **retired_key_used**: the verifier reports the id of the revoked or expired key it refused (also from its
  negative cache); each such refusal is an alert. No query.
* **disallowed_address**: the valid key itself from an address outside its ``allowed_cidrs``; each such refusal is
  an alert (it proves that whoever sent it holds the key, so it may auto-revoke). No query.
* **after_hours**: a request outside its tenant's ``working_hours`` (``vibexp.core.alerts.working_hours``), in
  the tenant's zone. The batch's tenants' settings are read by one SELECT at most every ``HOURS_TTL`` seconds.

Alerts go to an ``AlertSink`` (the alert service's ``raise_alert``: it dedupes in the database, one open alert per
key and kind, and writes the audit event, the webhook delivery and any auto-revoke in the same transaction). So
that a lasting condition (a key used all night, a spike, a client retrying its revoked key) does not cost a write per
flush, this process does not hand the same key and one of those kinds to the sink again for ``repeat_after`` seconds.
``new_network`` (once per network, by nature) and ``failed_auth`` (a fresh run of attempts each time, bounded per
hour as above) always go.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import case, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.hours import WorkingHours
from vibexp.core.alerts.hours import parse as parse_working_hours
from vibexp.core.alerts.models import Alert, AlertKind, AlertStatus, KeyNetwork
from vibexp.core.alerts.service import raise_alert
from vibexp.core.clock import utcnow
from vibexp.core.db import Database, writing
from vibexp.core.errors import InvalidInput
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.tenants.models import Tenant
from vibexp.core.traffic import DISALLOWED_ADDRESS, RETIRED_REASONS, TYPO, Refusal, UsageEvent

__all__ = ["AlertDetector", "AlertSink", "DefaultAlertSink", "DetectorLimits", "Finding", "network_of"]

log = logging.getLogger(__name__)

#: How long a tenant's working hours are trusted before they are read again (seconds): a change applies this late.
HOURS_TTL = 10.0
#: How often per-key in-memory state that can no longer matter is dropped (seconds).
SWEEP_INTERVAL = 600.0
_SPIKE_HISTORY_MINUTES = 60
#: The kinds whose condition lasts from one flush to the next (see ``repeat_after``).
LASTING_KINDS = frozenset(
    {AlertKind.request_spike, AlertKind.after_hours, AlertKind.retired_key_used, AlertKind.disallowed_address}
)
#: The span ``failed_auth_per_hour`` counts over (seconds).
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class DetectorLimits:
    """The thresholds, from the ``VIBEXP_ALERT_*`` settings."""

    new_network_days: int = 30
    spike_per_minute: int = 600
    spike_factor: float = 10.0
    failed_auth_threshold: int = 5
    failed_auth_window: float = 300.0
    #: ``failed_auth`` alerts that may open per key, and per source address, in an hour.
    failed_auth_per_hour: int = 3
    #: Seconds before this process hands the sink the same key and lasting kind again (``LASTING_KINDS``).
    repeat_after: float = 60.0

    @classmethod
    def from_settings(cls, settings: object) -> DetectorLimits:
        # Read with getattr and the same defaults: the settings fields are declared in vibexp.core.config.Settings
        # by the alert service's change; until both are merged the defaults apply.
        defaults = cls()
        return cls(
            new_network_days=int(getattr(settings, "alert_new_network_days", defaults.new_network_days)),
            spike_per_minute=int(getattr(settings, "alert_spike_per_minute", defaults.spike_per_minute)),
            spike_factor=float(getattr(settings, "alert_spike_factor", defaults.spike_factor)),
            failed_auth_threshold=int(getattr(settings, "alert_failed_auth_threshold", defaults.failed_auth_threshold)),
            failed_auth_window=float(getattr(settings, "alert_failed_auth_window", defaults.failed_auth_window)),
            failed_auth_per_hour=int(getattr(settings, "alert_failed_auth_per_hour", defaults.failed_auth_per_hour)),
        )


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
    ) -> object:
        log.warning("alert %s: key %s of tenant %s %s", kind.value, key_id, tenant_id, details)
        return await raise_alert(session, tenant_id=tenant_id, key_id=key_id, kind=kind, details=details, at=at)


@dataclass(slots=True)
class Finding:
    tenant_id: str
    key_id: str
    kind: AlertKind
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=8192)  # a flush sees the same few addresses over and over: parse each once
def network_of(client_ip: str | None) -> str | None:
    """The IPv4 /24 or IPv6 /48 of an address (an IPv4-mapped IPv6 address counts as IPv4); None if unparseable."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass(slots=True)
class _Seen:
    tenant_id: str
    first_at: datetime
    last_at: datetime
    client_ip: str | None


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
        #: key id -> minute number (epoch minutes) -> requests seen by this process.
        self._minutes: dict[str, dict[int, int]] = {}
        #: key id -> recent failed attempts (time, client address, reason), the newest ``threshold`` at most.
        self._attempts: dict[str, deque[tuple[datetime, str | None, str]]] = {}
        #: (key id, kind) -> when this process last handed it to the sink.
        self._raised: dict[tuple[str, AlertKind], float] = {}
        #: source address -> when (this process's clock) each failed_auth alert it took part in opened, past hour.
        self._failed_auth_sources: dict[str, deque[float]] = {}
        #: key id -> when this process last logged that it held back a failed_auth alert on the key.
        self._held_back_logged: dict[str, float] = {}
        #: tenant id -> (when read, its parsed working hours or None).
        self._hours: dict[str, tuple[float, WorkingHours | None]] = {}
        self._last_sweep = clock()

    async def detect(self, events: Sequence[UsageEvent], refusals: Sequence[Refusal]) -> None:
        """Find this batch's alerts and hand each to the sink; key networks recorded in the same transaction."""
        if not events and not refusals:
            return
        self._sweep()
        findings = [*self._spikes(events), *self._retired(refusals), *self._disallowed(refusals)]
        raised: list[tuple[str, AlertKind]] = []
        opened_sources: list[str] = []
        engine = self._database.engine
        async with writing(engine), self._database.session_factory() as session, session.begin():
            findings += await self._bounded(session, await self._failed_auth(session, refusals))
            findings += await self._after_hours(session, events)
            findings += await self._new_networks(session, events)
            now = self._clock()
            for finding in findings:
                token = (finding.key_id, finding.kind)
                last = self._raised.get(token) if finding.kind in LASTING_KINDS else None
                if last is not None and now - last < self.limits.repeat_after:
                    continue
                opened = await self.sink(
                    session,
                    tenant_id=finding.tenant_id,
                    key_id=finding.key_id,
                    kind=finding.kind,
                    details=finding.details,
                    at=finding.at,
                )
                raised.append(token)
                if finding.kind is AlertKind.failed_auth and opened is not None:
                    opened_sources.extend(finding.details.get("client_ips") or ())
        now = self._clock()
        for token in raised:  # only once committed: a failed batch is raised again next time it is seen
            self._raised[token] = now
        for source in opened_sources:
            self._failed_auth_sources.setdefault(source, deque()).append(now)

    # -- request_spike ------------------------------------------------------------------------------------------
    def _spikes(self, events: Iterable[UsageEvent]) -> list[Finding]:
        touched: dict[str, tuple[str, int, datetime]] = {}
        for event in events:
            minute = int(event.at.timestamp() // 60)
            counts = self._minutes.setdefault(event.key_id, {})
            counts[minute] = counts.get(minute, 0) + 1
            previous = touched.get(event.key_id)
            if previous is None or minute >= previous[1]:
                touched[event.key_id] = (event.tenant_id, minute, event.at)
        findings = []
        for key_id, (tenant_id, minute, at) in touched.items():
            counts = self._minutes[key_id]
            for old in [m for m in counts if m < minute - _SPIKE_HISTORY_MINUTES]:
                del counts[old]
            current = counts.get(minute, 0)
            average = sum(c for m, c in counts.items() if m < minute) / _SPIKE_HISTORY_MINUTES
            threshold = max(float(self.limits.spike_per_minute), self.limits.spike_factor * average)
            if current > threshold:
                details = {
                    "requests_per_minute": current,
                    "average_per_minute": round(average, 2),
                    "threshold": round(threshold, 2),
                }
                findings.append(Finding(tenant_id, key_id, AlertKind.request_spike, at, details))
        return findings

    # -- retired_key_used ---------------------------------------------------------------------------------------
    @staticmethod
    def _retired(refusals: Iterable[Refusal]) -> list[Finding]:
        found: dict[str, Finding] = {}
        for refusal in refusals:
            if refusal.reason not in RETIRED_REASONS or refusal.key_id is None or refusal.tenant_id is None:
                continue
            finding = found.get(refusal.key_id)
            if finding is None:
                details = {"reason": refusal.reason, "client_ip": refusal.client_ip, "attempts": 0}
                finding = found[refusal.key_id] = Finding(
                    refusal.tenant_id, refusal.key_id, AlertKind.retired_key_used, refusal.at, details
                )
            finding.details["attempts"] += 1
        return list(found.values())

    # -- disallowed_address -------------------------------------------------------------------------------------
    @staticmethod
    def _disallowed(refusals: Iterable[Refusal]) -> list[Finding]:
        found: dict[str, Finding] = {}
        for refusal in refusals:
            if refusal.reason != DISALLOWED_ADDRESS or refusal.key_id is None or refusal.tenant_id is None:
                continue
            finding = found.get(refusal.key_id)
            if finding is None:
                details: dict[str, Any] = {"client_ips": [], "attempts": 0}
                finding = found[refusal.key_id] = Finding(
                    refusal.tenant_id, refusal.key_id, AlertKind.disallowed_address, refusal.at, details
                )
            finding.details["attempts"] += 1
            if refusal.client_ip and refusal.client_ip not in finding.details["client_ips"]:
                finding.details["client_ips"].append(refusal.client_ip)
        return list(found.values())

    # -- failed_auth --------------------------------------------------------------------------------------------
    async def _failed_auth(self, session: AsyncSession, refusals: Sequence[Refusal]) -> list[Finding]:
        typos = [r for r in refusals if r.reason == TYPO and r.key_prefix]
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
        threshold, window = self.limits.failed_auth_threshold, timedelta(seconds=self.limits.failed_auth_window)
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
                    "window_seconds": self.limits.failed_auth_window,
                    "reasons": sorted({reason for _, _, reason in recent}),
                    "client_ips": sorted({ip for _, ip, _ in recent if ip}),
                }
                findings.append(Finding(tenant_id, key_id, AlertKind.failed_auth, newest, details))
                recent.clear()  # the next alert needs a fresh run of attempts
        return findings

    async def _bounded(self, session: AsyncSession, findings: list[Finding]) -> list[Finding]:
        """The ``failed_auth`` findings that may go to the sink: those that would only count a repeat of an open
        alert, and those within ``failed_auth_per_hour`` alerts opened on the key (any replica, from the database)
        and from each of their source addresses (this process) in the past hour."""
        if not findings:
            return []
        limit, now = self.limits.failed_auth_per_hour, self._clock()
        since = utcnow() - timedelta(seconds=_HOUR)
        rows = await session.execute(
            select(Alert.key_id, Alert.status, Alert.first_seen_at).where(
                Alert.key_id.in_({finding.key_id for finding in findings}),
                Alert.kind == AlertKind.failed_auth.value,
                or_(Alert.status == AlertStatus.open.value, Alert.first_seen_at >= since),
            )
        )
        open_keys: set[str] = set()
        opened: dict[str, int] = {}
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
                    self._held_back(finding, busy, now)
                    continue
            kept.append(finding)
        return kept

    def _source_count(self, source: str, now: float) -> int:
        times = self._failed_auth_sources.get(source)
        while times and now - times[0] > _HOUR:
            times.popleft()
        return len(times) if times else 0

    def _held_back(self, finding: Finding, busy: list[str], now: float) -> None:
        last = self._held_back_logged.get(finding.key_id)
        if last is not None and now - last < _HOUR:
            return
        self._held_back_logged[finding.key_id] = now
        log.info(
            "failed_auth on key %s of tenant %s not raised: %d such alerts an hour at most per key and per source "
            "address (sources at the limit: %s); further ones this hour are not logged",
            finding.key_id,
            finding.tenant_id,
            self.limits.failed_auth_per_hour,
            ", ".join(busy) or "none",
        )

    # -- after_hours --------------------------------------------------------------------------------------------
    async def _after_hours(self, session: AsyncSession, events: Sequence[UsageEvent]) -> list[Finding]:
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
            findings[event.key_id] = Finding(event.tenant_id, event.key_id, AlertKind.after_hours, event.at, details)
        return list(findings.values())

    # -- new_network --------------------------------------------------------------------------------------------
    async def _new_networks(self, session: AsyncSession, events: Sequence[UsageEvent]) -> list[Finding]:
        seen: dict[tuple[str, str], _Seen] = {}
        for event in events:
            network = network_of(event.client_ip)
            if network is None:
                continue
            entry = seen.get((event.key_id, network))
            if entry is None:
                seen[(event.key_id, network)] = _Seen(event.tenant_id, event.at, event.at, event.client_ip)
            else:
                entry.first_at = min(entry.first_at, event.at)
                entry.last_at = max(entry.last_at, event.at)
        if not seen:
            return []
        per_key: dict[str, list[tuple[str, _Seen]]] = {}
        for (key_id, network), entry in seen.items():
            per_key.setdefault(key_id, []).append((network, entry))
        key_ids = set(per_key)
        known: dict[str, dict[str, datetime]] = {}
        rows = await session.execute(
            select(KeyNetwork.key_id, KeyNetwork.network, KeyNetwork.last_seen_at).where(KeyNetwork.key_id.in_(key_ids))
        )
        for key_id, network, last_seen_at in rows:
            known.setdefault(key_id, {})[network] = last_seen_at
        lookback = timedelta(days=self.limits.new_network_days)
        findings = []
        for key_id in sorted(key_ids):
            history = known.get(key_id, {})
            batch = sorted(per_key[key_id], key=lambda item: item[1].first_at)
            for index, (network, entry) in enumerate(batch):
                last = history.get(network)
                if last is not None and last >= entry.first_at - lookback:
                    continue
                if not history and index == 0:
                    continue  # the key's first network is no alert
                details = {
                    "network": network,
                    "client_ip": entry.client_ip,
                    "last_seen_at": last.isoformat() if last is not None else None,
                    "lookback_days": self.limits.new_network_days,
                }
                findings.append(Finding(entry.tenant_id, key_id, AlertKind.new_network, entry.first_at, details))
        await self._record_networks(session, seen)
        return findings

    @staticmethod
    async def _record_networks(session: AsyncSession, seen: dict[tuple[str, str], _Seen]) -> None:
        """One upsert for the batch; rows in key order so concurrent processes on PostgreSQL lock them alike."""
        rows = [
            {"key_id": key_id, "network": network, "first_seen_at": entry.first_at, "last_seen_at": entry.last_at}
            for (key_id, network), entry in sorted(seen.items())
        ]
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(KeyNetwork).values(rows)
        newer = statement.excluded.last_seen_at > KeyNetwork.last_seen_at
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[KeyNetwork.key_id, KeyNetwork.network],
                set_={"last_seen_at": case((newer, statement.excluded.last_seen_at), else_=KeyNetwork.last_seen_at)},
            )
        )

    # -- memory -------------------------------------------------------------------------------------------------
    def _sweep(self) -> None:
        """Forget keys idle for over an hour (their counters could no longer matter) and stale raise times."""
        now = self._clock()
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        oldest_minute = int(time.time() // 60) - _SPIKE_HISTORY_MINUTES - 1
        for key_id in [k for k, counts in self._minutes.items() if not counts or max(counts) < oldest_minute]:
            del self._minutes[key_id]
        horizon = timedelta(seconds=self.limits.failed_auth_window)
        cutoff = utcnow() - horizon
        for key_id in [k for k, recent in self._attempts.items() if not recent or recent[-1][0] < cutoff]:
            del self._attempts[key_id]
        for token in [t for t, at in self._raised.items() if now - at > self.limits.repeat_after]:
            del self._raised[token]
        for source in [s for s, times in self._failed_auth_sources.items() if not self._source_count(s, now)]:
            del self._failed_auth_sources[source]
        for key_id in [k for k, at in self._held_back_logged.items() if now - at > _HOUR]:
            del self._held_back_logged[key_id]
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
