"""What every detector shares: the thresholds, a finding, the batch a flush hands over, and the small
:class:`Detector` protocol each detector implements (one class per module of this package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.models import AlertKind
from vibexp.core.traffic import Refusal, UsageEvent

__all__ = ["Batch", "Clock", "Detector", "DetectorLimits", "Finding"]

#: This process's monotonic clock, in seconds (``time.monotonic``; a test passes its own).
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class DetectorLimits:
    """The thresholds, from the ``VIBEXP_ALERT_*`` settings."""

    new_network_days: int = 30
    new_country_days: int = 30
    spike_per_minute: int = 600
    spike_factor: float = 10.0
    failed_auth_threshold: int = 5
    failed_auth_window: float = 300.0
    #: ``failed_auth`` alerts that may open per key, and per source address, in an hour.
    failed_auth_per_hour: int = 3
    #: Seconds before this process hands the sink the same key and lasting kind again (``Detector.lasting``).
    repeat_after: float = 60.0

    @classmethod
    def from_settings(cls, settings: object) -> DetectorLimits:
        # Read with getattr and the same defaults: the settings fields are declared in vibexp.core.config.Settings
        # by the alert service's change; until both are merged the defaults apply.
        defaults = cls()
        return cls(
            new_network_days=int(getattr(settings, "alert_new_network_days", defaults.new_network_days)),
            new_country_days=int(getattr(settings, "alert_new_country_days", defaults.new_country_days)),
            spike_per_minute=int(getattr(settings, "alert_spike_per_minute", defaults.spike_per_minute)),
            spike_factor=float(getattr(settings, "alert_spike_factor", defaults.spike_factor)),
            failed_auth_threshold=int(getattr(settings, "alert_failed_auth_threshold", defaults.failed_auth_threshold)),
            failed_auth_window=float(getattr(settings, "alert_failed_auth_window", defaults.failed_auth_window)),
            failed_auth_per_hour=int(getattr(settings, "alert_failed_auth_per_hour", defaults.failed_auth_per_hour)),
        )


@dataclass(slots=True)
class Finding:
    tenant_id: str
    #: The credential's id: an API key's, or an OAuth grant's (``credential``), as ``UsageEvent.key_id``.
    key_id: str
    kind: AlertKind
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    credential: CredentialKind = CredentialKind.api_key


@dataclass(frozen=True, slots=True)
class Batch:
    """One flush's usage events and refused attempts, and the thresholds in force for it."""

    events: Sequence[UsageEvent]
    refusals: Sequence[Refusal]
    limits: DetectorLimits


class Detector(Protocol):
    """One kind of unusual activity. A detector is built with this process's clock (``cls(clock)``) and keeps what
    it needs to remember between batches in memory; the methods it does not need keep these defaults.

    Per batch, :class:`~vibexp.core.alerts.detectors.runner.AlertDetector` calls every detector's
    :meth:`in_memory` (before the transaction opens: what this process saw alone, no query) and then every
    detector's :meth:`in_transaction` (the queries, in the detection's one transaction), in the order of
    ``DETECTORS``.
    """

    #: The alert kind this detector raises.
    kind: ClassVar[AlertKind]
    #: Whether the condition lasts from one flush to the next (a key used all night, a spike, a client retrying
    #: its revoked key): the same key is not handed to the sink again for ``repeat_after`` seconds.
    lasting: ClassVar[bool] = False

    def in_memory(self, batch: Batch) -> list[Finding]:
        """This batch's findings from this process's memory alone (no query)."""
        return []

    async def in_transaction(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        """This batch's findings that need the database, read (and written) in the detection's transaction."""
        return []

    def opened(self, finding: Finding, now: float) -> None:
        """The sink opened (or counted) an alert for one of this detector's findings, and the transaction
        committed (``now``: this process's clock)."""

    def sweep(self, now: float, limits: DetectorLimits) -> None:
        """Forget what can no longer matter (called at most every ``SWEEP_INTERVAL`` seconds)."""
