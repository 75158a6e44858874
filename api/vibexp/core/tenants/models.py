from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id
from vibexp.core.tenants.tiers import TIER_LIMITS, Tier

__all__ = ["TIER_LIMITS", "Tenant", "Tier"]


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    tier: Mapped[str] = mapped_column(String(16), default=Tier.free.value)
    #: Custom hourly limit; overrides the tier's default (required for enterprise).
    rate_limit_per_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Bumped on every change that affects authentication, so other processes can refresh their caches.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Alerts (vibexp.core.alerts): where they are POSTed, the HMAC secret that signs them, the working hours that
    # ``after_hours`` is measured against (``Mon-Fri 08:00-19:00 Europe/Berlin``) and the kinds that revoke the key.
    alert_webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    #: Encrypted with the server key (``vibexp.core.secret_box``): ``enc:v1:<nonce>:<sealed>``.
    alert_webhook_secret: Mapped[str | None] = mapped_column(String(500), nullable=True)
    working_hours: Mapped[str | None] = mapped_column(String(100), nullable=True)
    auto_revoke_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Key policy: a key made without an expiry expires after ``max_key_lifetime_days`` (and none may expire later);
    # a key unused for ``revoke_unused_after_days`` is revoked by the server (``vibexp.core.keys.policy``).
    max_key_lifetime_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoke_unused_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @property
    def hourly_limit(self) -> int:
        if self.rate_limit_per_hour is not None:
            return self.rate_limit_per_hour
        default = TIER_LIMITS[Tier(self.tier)]
        if default is None:  # enterprise without a custom limit: refused at creation, kept safe here
            raise ValueError(f"tenant {self.name!r} has tier {self.tier} but no rate limit")
        return default
