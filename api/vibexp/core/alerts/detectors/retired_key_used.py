"""**retired_key_used**: the verifier reports the id of the revoked or expired key it refused (also from its negative
cache); each such refusal is an alert. No query."""

from __future__ import annotations

from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, Finding
from vibexp.core.alerts.models import AlertKind
from vibexp.core.traffic import RETIRED_REASONS

__all__ = ["RetiredKeyUsed"]


class RetiredKeyUsed(Detector):
    kind = AlertKind.retired_key_used
    lasting = True

    def __init__(self, clock: Clock) -> None:
        pass

    def in_memory(self, batch: Batch) -> list[Finding]:
        found: dict[str, Finding] = {}
        for refusal in batch.refusals:
            if refusal.reason not in RETIRED_REASONS or refusal.key_id is None or refusal.tenant_id is None:
                continue
            finding = found.get(refusal.key_id)
            if finding is None:
                details = {"reason": str(refusal.reason), "client_ip": refusal.client_ip, "attempts": 0}
                finding = found[refusal.key_id] = Finding(
                    refusal.tenant_id, refusal.key_id, self.kind, refusal.at, details
                )
            finding.details["attempts"] += 1
        return list(found.values())
