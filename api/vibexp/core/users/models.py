from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id

__all__ = ["Membership", "User"]


class User(Base):
    """A person who signs in to the dashboard. Passwords are argon2id hashes; they never authenticate API calls.

    A user may be a member of several accounts (``Membership``); ``tenant_id`` is their home account, the one the
    dashboard opens first (the account they were created in), as long as they are still a member of it.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Membership(Base):
    """A user's place in an account: their role (``vibexp.core.access.Role``).

    ``updated_at`` changes with the role; a role change or a removal also bumps the ``updated_at`` of the person's
    keys in the same transaction, which is what every replica's key verifier polls (the role ceiling is cached with
    each key)."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_user_id", "user_id"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the person was last seen in this account: signed in to the dashboard (their home account) or used one of
    #: their personal keys (written by the usage flush, ``vibexp.core.usage.recorder``); never on the request path.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
