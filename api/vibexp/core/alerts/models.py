"""Alerts, their webhook deliveries, and the networks and countries each credential was used from (for
``new_network`` and ``new_country``).

An alert's credential is an API key (``key_id``) or an OAuth grant (``grant_id``): exactly one of them (a CHECK), each
a foreign key. One open alert per credential and kind: partial unique indexes on (key_id, kind) and (grant_id, kind)
WHERE status = 'open' make the database the arbiter when several processes notice the same thing at once; until the
alert is acknowledged, a repeat only bumps its ``count`` and ``last_seen_at``.

The places a credential was used from are two tables per kind of place, one per kind of credential (``key_networks``
and ``grant_networks``, ``key_countries`` and ``grant_countries``), rather than one table with two nullable columns:
each keeps a plain primary key (credential, place) with a real foreign key, the detector's upsert conflicts on that
primary key, and the key tables did not have to be rebuilt.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vibexp.core.access import CredentialKind
from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.geo import COUNTRY_LENGTH
from vibexp.core.ids import new_id
from vibexp.core.keys.models import ApiKey, owner_json
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.usage.models import ONE_CREDENTIAL
from vibexp.core.users.models import User

__all__ = [
    "AUTO_REVOCABLE",
    "Alert",
    "AlertKind",
    "AlertStatus",
    "DeliveryState",
    "GrantCountry",
    "GrantNetwork",
    "KeyCountry",
    "KeyNetwork",
    "WebhookDelivery",
]


class AlertKind(StrEnum):
    """The five kinds README.md "Alerts" lists, a leak report (``POST /api/v1/leaked-keys``) as a sixth,
    ``disallowed_address`` (the key itself, valid, from outside its ``allowed_cidrs``), split from ``failed_auth`` so
    that the evidence that proves possession of the key can revoke it while prefix typos cannot
    (``AUTO_REVOCABLE``), and ``new_country`` (a registered country the key has not used lately)."""

    new_network = "new_network"
    request_spike = "request_spike"
    failed_auth = "failed_auth"
    retired_key_used = "retired_key_used"
    disallowed_address = "disallowed_address"
    after_hours = "after_hours"
    key_leaked = "key_leaked"
    new_country = "new_country"


#: The kinds ``auto_revoke_on`` may name: every kind but ``failed_auth``. A ``failed_auth`` alert is raised by
#: malformed keys that merely share a key's display prefix (``vib_`` + 8 hex), which the dashboard, the audit trail,
#: ``vibexp scan`` and access logs show: anyone could raise it without the key, so it must never revoke one.
#: The others are raised by the key itself (used, retired, from a disallowed address, reported whole) or by its
#: own traffic.
AUTO_REVOCABLE = tuple(kind for kind in AlertKind if kind is not AlertKind.failed_auth)


class AlertStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"


class DeliveryState(StrEnum):
    pending = "pending"  # waiting for its (next) attempt
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # out of attempts, or refused for good (bad URL)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_id_id", "tenant_id", "id"),
        # The failed_auth bound: the alerts a key opened of one kind in the past hour (vibexp.core.alerts.detectors).
        Index("ix_alerts_key_id_kind_first_seen_at", "key_id", "kind", "first_seen_at"),
        Index(
            "uq_alerts_open_key_kind",
            "key_id",
            "kind",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index(
            "uq_alerts_open_grant_kind",
            "grant_id",
            "kind",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        CheckConstraint(ONE_CREDENTIAL, name="one_credential"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: The API key the alert is about, or None when it is about an OAuth grant (``grant_id``).
    key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True)
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.open.value)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: How many times it was noticed while open (the first included).
    count: Mapped[int] = mapped_column(Integer, default=1)
    #: What was seen: the network, the request rate, the address, the local time ... never a plaintext key.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The person the alert's key belongs to (``ApiKey.owner_user_id``), loaded with the alert (one outer join
    #: through ``api_keys``, so a page of alerts is one query); ``None`` for a service key (and a grant's alert).
    owner_user: Mapped[User | None] = relationship(
        User,
        secondary=ApiKey.__table__,
        primaryjoin=lambda: Alert.key_id == ApiKey.id,
        secondaryjoin=lambda: ApiKey.owner_user_id == User.id,
        uselist=False,
        lazy="joined",
        viewonly=True,
    )
    #: The person whose OAuth grant the alert is about (``OAuthGrant.user_id``), loaded the same way.
    grant_user: Mapped[User | None] = relationship(
        User,
        secondary=OAuthGrant.__table__,
        primaryjoin=lambda: Alert.grant_id == OAuthGrant.id,
        secondaryjoin=lambda: OAuthGrant.user_id == User.id,
        uselist=False,
        lazy="joined",
        viewonly=True,
    )

    @property
    def owner(self) -> dict[str, str] | None:
        """``{"user_id", "email"}`` of the person the alert's credential belongs to (as the key's JSON ``owner``):
        the key's owner, the grant's person; ``None`` for a service key."""
        return owner_json(self.grant_user if self.grant_id is not None else self.owner_user)

    @property
    def credential(self) -> dict[str, str]:
        """Which credential the alert is about: ``{"kind": "api_key" | "grant", "id": ...}``."""
        if self.grant_id is not None:
            return {"kind": CredentialKind.grant.value, "id": self.grant_id}
        return {"kind": CredentialKind.api_key.value, "id": self.key_id or ""}


class WebhookDelivery(Base):
    """One alert's delivery to the tenant's webhook: its attempts so far and the last outcome (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_tenant_id_id", "tenant_id", "id"),
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: The exact JSON body sent (and signed) on every attempt.
    payload: Mapped[str] = mapped_column(String(20000))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyNetwork(Base):
    """A network (IPv4 /24, IPv6 /48) a key was used from, and when last: ``new_network`` looks back 30 days."""

    __tablename__ = "key_networks"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyCountry(Base):
    """A registered country (ISO 3166-1 alpha-2) a key was used from, and when last: ``new_country`` looks back 30
    days."""

    __tablename__ = "key_countries"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    country: Mapped[str] = mapped_column(String(COUNTRY_LENGTH), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GrantNetwork(Base):
    """A network an OAuth grant was used from, and when last (``KeyNetwork``'s twin for grants)."""

    __tablename__ = "grant_networks"

    grant_id: Mapped[str] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"), primary_key=True)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GrantCountry(Base):
    """A registered country an OAuth grant was used from, and when last (``KeyCountry``'s twin for grants)."""

    __tablename__ = "grant_countries"

    grant_id: Mapped[str] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"), primary_key=True)
    country: Mapped[str] = mapped_column(String(COUNTRY_LENGTH), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
