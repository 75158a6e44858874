"""A recording stand-in for the alert detector's sink (``vibexp.core.alerts.service.raise_alert``): each test sees
exactly what would have been raised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors import AlertDetector
from vibexp.core.alerts.models import AlertKind


@dataclass
class Raised:
    tenant_id: str
    key_id: str
    kind: AlertKind
    details: dict[str, Any]
    at: datetime | None
    credential: CredentialKind = CredentialKind.api_key


class RecordingSink:
    """Stands in for ``vibexp.core.alerts.service.raise_alert``: remembers every call."""

    def __init__(self) -> None:
        self.calls: list[Raised] = []

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
        assert isinstance(session, AsyncSession) and session.in_transaction()
        self.calls.append(Raised(tenant_id, key_id, kind, details, at, credential))
        return None

    def of(self, key_id: str, kind: AlertKind) -> list[Raised]:
        return [call for call in self.calls if call.key_id == key_id and call.kind == kind]


def detector_of(app: FastAPI) -> AlertDetector:
    detector = app.state.runtime.usage.detector
    assert isinstance(detector, AlertDetector)
    return detector
