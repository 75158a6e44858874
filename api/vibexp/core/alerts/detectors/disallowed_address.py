"""**disallowed_address**: the valid key itself from an address outside its ``allowed_cidrs``; each such refusal is
an alert (it proves that whoever sent it holds the key, so it may auto-revoke). No query."""

from __future__ import annotations

from typing import Any

from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, Finding
from vibexp.core.alerts.models import AlertKind
from vibexp.core.traffic import DISALLOWED_ADDRESS

__all__ = ["DisallowedAddress"]


class DisallowedAddress(Detector):
    kind = AlertKind.disallowed_address
    lasting = True

    def __init__(self, clock: Clock) -> None:
        pass

    def in_memory(self, batch: Batch) -> list[Finding]:
        found: dict[str, Finding] = {}
        for refusal in batch.refusals:
            if refusal.reason != DISALLOWED_ADDRESS or refusal.key_id is None or refusal.tenant_id is None:
                continue
            finding = found.get(refusal.key_id)
            if finding is None:
                details: dict[str, Any] = {"client_ips": [], "attempts": 0}
                finding = found[refusal.key_id] = Finding(
                    refusal.tenant_id, refusal.key_id, self.kind, refusal.at, details
                )
            finding.details["attempts"] += 1
            if refusal.client_ip and refusal.client_ip not in finding.details["client_ips"]:
                finding.details["client_ips"].append(refusal.client_ip)
        return list(found.values())
