"""What ``new_network`` and ``new_country`` share: a *place* of each event's client address (its /24 or /48, its
registered country), remembered per credential in a table of (credential, place, first seen, last seen): one table
for API keys (``key_networks``, ``key_countries``) and its twin for OAuth grants (``grant_networks``,
``grant_countries``).

Per batch and kind of credential used in it, one SELECT reads the known places of the batch's credentials and one
multi-row upsert (``INSERT ... ON CONFLICT DO UPDATE``) records the batch's places with their newest
``last_seen_at``. A place the credential has not used in the lookback (days) is an alert; a credential's first place
ever is not (nor is an event whose address has no place). Never held back as a lasting kind: it is raised once per
place, by nature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, DetectorLimits, Finding

__all__ = ["NewPlace"]

#: Each kind of credential's column in its places table.
_OWNER_COLUMN = {CredentialKind.api_key: "key_id", CredentialKind.grant: "grant_id"}


@dataclass(slots=True)
class _Seen:
    tenant_id: str
    first_at: datetime
    last_at: datetime
    client_ip: str | None


class NewPlace(Detector):
    """A subclass names its ``kind``, its tables (``models``: per kind of credential, ``KeyNetwork`` and
    ``GrantNetwork``, say; ``column``: the tables' place column, also the place's name in an alert's details), how an
    address maps to a place (``place_of``) and its lookback in days."""

    models: ClassVar[dict[CredentialKind, Any]]
    column: ClassVar[str]

    def __init__(self, clock: Clock) -> None:
        pass

    @staticmethod
    def place_of(client_ip: str | None) -> str | None:
        raise NotImplementedError

    def lookback_days(self, limits: DetectorLimits) -> int:
        raise NotImplementedError

    async def in_transaction(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        seen: dict[CredentialKind, dict[tuple[str, str], _Seen]] = {}
        for event in batch.events:
            place = self.place_of(event.client_ip)
            if place is None:
                continue
            of_kind = seen.setdefault(event.credential, {})
            entry = of_kind.get((event.key_id, place))
            if entry is None:
                of_kind[(event.key_id, place)] = _Seen(event.tenant_id, event.at, event.at, event.client_ip)
            else:
                entry.first_at = min(entry.first_at, event.at)
                entry.last_at = max(entry.last_at, event.at)
        findings = []
        for credential in sorted(seen):  # one order for every process: keys' rows, then grants'
            findings += await self._of_kind(session, batch, credential, seen[credential])
        return findings

    async def _of_kind(
        self, session: AsyncSession, batch: Batch, credential: CredentialKind, seen: dict[tuple[str, str], _Seen]
    ) -> list[Finding]:
        per_credential: dict[str, list[tuple[str, _Seen]]] = {}
        for (credential_id, place), entry in seen.items():
            per_credential.setdefault(credential_id, []).append((place, entry))
        ids = set(per_credential)
        known: dict[str, dict[str, datetime]] = {}
        model = self.models[credential]
        owner = getattr(model, _OWNER_COLUMN[credential])
        rows = await session.execute(
            select(owner, getattr(model, self.column), model.last_seen_at).where(owner.in_(ids))
        )
        for credential_id, place, last_seen_at in rows:
            known.setdefault(credential_id, {})[place] = last_seen_at
        days = self.lookback_days(batch.limits)
        lookback = timedelta(days=days)
        findings = []
        for credential_id in sorted(ids):
            history = known.get(credential_id, {})
            ordered = sorted(per_credential[credential_id], key=lambda item: item[1].first_at)
            for index, (place, entry) in enumerate(ordered):
                last = history.get(place)
                if last is not None and last >= entry.first_at - lookback:
                    continue
                if not history and index == 0:
                    continue  # the credential's first place is no alert
                details: dict[str, Any] = {
                    self.column: place,
                    "client_ip": entry.client_ip,
                    "last_seen_at": last.isoformat() if last is not None else None,
                    "lookback_days": days,
                }
                findings.append(
                    Finding(entry.tenant_id, credential_id, self.kind, entry.first_at, details, credential=credential)
                )
        await self._record(session, credential, seen)
        return findings

    async def _record(
        self, session: AsyncSession, credential: CredentialKind, seen: dict[tuple[str, str], _Seen]
    ) -> None:
        """One upsert for the batch's credentials of one kind; rows in credential order so concurrent processes on
        PostgreSQL lock them alike."""
        model = self.models[credential]
        owner = _OWNER_COLUMN[credential]
        rows = [
            {owner: credential_id, self.column: place, "first_seen_at": entry.first_at, "last_seen_at": entry.last_at}
            for (credential_id, place), entry in sorted(seen.items())
        ]
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(model).values(rows)
        newer = statement.excluded.last_seen_at > model.last_seen_at
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[getattr(model, owner), getattr(model, self.column)],
                set_={"last_seen_at": case((newer, statement.excluded.last_seen_at), else_=model.last_seen_at)},
            )
        )
