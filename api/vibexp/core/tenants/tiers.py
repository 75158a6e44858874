"""The account tiers and their default hourly limits: plain values, importable without the ORM (the ``vibexp``
command's parser offers them as ``--tier`` choices without loading SQLAlchemy)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TIER_LIMITS", "Tier"]


class Tier(StrEnum):
    free = "free"
    pro = "pro"
    enterprise = "enterprise"


#: Requests per hour for each tier; enterprise has no default and needs an explicit limit.
TIER_LIMITS: dict[Tier, int | None] = {Tier.free: 1_000, Tier.pro: 10_000, Tier.enterprise: None}
