"""**request_spike**: requests per minute per key, counted in this process's memory from the events (one counter per
key and minute, an hour kept). An alert when the current minute's count exceeds
``max(spike_per_minute, spike_factor * the average per minute over the previous 60 minutes)``. Per process: with N
replicas behind a balancer each sees about 1/N of a key's traffic, so the effective thresholds are N times higher; a
restarted process starts with no history (the floor ``spike_per_minute`` applies). No query."""

from __future__ import annotations

import time
from datetime import datetime

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, DetectorLimits, Finding
from vibexp.core.alerts.models import AlertKind

__all__ = ["RequestSpike"]

_HISTORY_MINUTES = 60


class RequestSpike(Detector):
    kind = AlertKind.request_spike
    lasting = True

    def __init__(self, clock: Clock) -> None:
        #: key id -> minute number (epoch minutes) -> requests seen by this process.
        self._minutes: dict[str, dict[int, int]] = {}

    def in_memory(self, batch: Batch) -> list[Finding]:
        touched: dict[str, tuple[str, int, datetime]] = {}
        kinds: dict[str, CredentialKind] = {}
        for event in batch.events:
            minute = int(event.at.timestamp() // 60)
            counts = self._minutes.setdefault(event.key_id, {})
            counts[minute] = counts.get(minute, 0) + 1
            kinds[event.key_id] = event.credential
            previous = touched.get(event.key_id)
            if previous is None or minute >= previous[1]:
                touched[event.key_id] = (event.tenant_id, minute, event.at)
        limits = batch.limits
        findings = []
        for key_id, (tenant_id, minute, at) in touched.items():
            counts = self._minutes[key_id]
            for old in [m for m in counts if m < minute - _HISTORY_MINUTES]:
                del counts[old]
            current = counts.get(minute, 0)
            average = sum(c for m, c in counts.items() if m < minute) / _HISTORY_MINUTES
            threshold = max(float(limits.spike_per_minute), limits.spike_factor * average)
            if current > threshold:
                details = {
                    "requests_per_minute": current,
                    "average_per_minute": round(average, 2),
                    "threshold": round(threshold, 2),
                }
                findings.append(Finding(tenant_id, key_id, self.kind, at, details, credential=kinds[key_id]))
        return findings

    def sweep(self, now: float, limits: DetectorLimits) -> None:
        """Forget keys idle for over an hour: their counters could no longer matter."""
        oldest_minute = int(time.time() // 60) - _HISTORY_MINUTES - 1
        for key_id in [k for k, counts in self._minutes.items() if not counts or max(counts) < oldest_minute]:
            del self._minutes[key_id]
