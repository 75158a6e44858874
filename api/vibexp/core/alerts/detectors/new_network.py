"""**new_network**: the IPv4 /24 or IPv6 /48 of each event's client address, per key. One SELECT reads the known
networks of the batch's keys, one multi-row upsert (``INSERT ... ON CONFLICT DO UPDATE``) records the batch's
networks with their newest ``last_seen_at``. A network the key has not used in ``new_network_days`` days is an alert;
a key's first network ever is not (nor is a key with no parseable client address). Never held back as a lasting
kind: it is raised once per network, by nature."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.detectors.base import Batch, Clock, Detector, Finding
from vibexp.core.alerts.models import AlertKind, KeyNetwork

__all__ = ["NewNetwork", "network_of"]


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


class NewNetwork(Detector):
    kind = AlertKind.new_network

    def __init__(self, clock: Clock) -> None:
        pass

    async def in_transaction(self, session: AsyncSession, batch: Batch) -> list[Finding]:
        seen: dict[tuple[str, str], _Seen] = {}
        for event in batch.events:
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
        days = batch.limits.new_network_days
        lookback = timedelta(days=days)
        findings = []
        for key_id in sorted(key_ids):
            history = known.get(key_id, {})
            ordered = sorted(per_key[key_id], key=lambda item: item[1].first_at)
            for index, (network, entry) in enumerate(ordered):
                last = history.get(network)
                if last is not None and last >= entry.first_at - lookback:
                    continue
                if not history and index == 0:
                    continue  # the key's first network is no alert
                details = {
                    "network": network,
                    "client_ip": entry.client_ip,
                    "last_seen_at": last.isoformat() if last is not None else None,
                    "lookback_days": days,
                }
                findings.append(Finding(entry.tenant_id, key_id, self.kind, entry.first_at, details))
        await _record_networks(session, seen)
        return findings


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
