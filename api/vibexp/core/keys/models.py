from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, false, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id
from vibexp.core.users.models import User

__all__ = ["ApiKey", "KeyStatus", "owner_json"]


def owner_json(user: User | None) -> dict[str, str] | None:
    """A key's ``owner`` as its JSON (and an alert's) shows it: ``{"user_id", "email"}``; ``None``: a service key."""
    return None if user is None else {"user_id": user.id, "email": user.email}


class KeyStatus(StrEnum):
    active = "active"
    #: Refused while a policy forbids it (the operator: its tenant or namespace no longer allows it); reversible.
    suspended = "suspended"
    revoked = "revoked"


class ApiKey(Base):
    """An API key record. Only the SHA-256 of the whole key is stored; the plaintext exists once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=KeyStatus.active.value)
    #: Where the key was made: cli, api, dashboard or operator.
    source: Mapped[str] = mapped_column(String(32), default="api")
    #: Caller-chosen idempotency reference (the operator uses the ApiKey's uid and rotation number), unique.
    external_ref: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Bumped on every change that affects authentication (revocation, expiry), watched by other processes.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When ``key.expired`` was audited for this key (``vibexp.core.keys.policy``): once, after ``expires_at``.
    expiry_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When the key, revoked, was deleted: it leaves every list (REST, dashboard, CLI); its row stays for the usage
    #: and audit history, and it still authenticates as nothing (it is revoked).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotated_from_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    replaced_by_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Usage, written in batches by the usage recorder (never on the request path).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tool_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Made before keys carried a checksum (64 random hex). Rows that predate the column, or that a replica still
    #: running the previous release inserts, get ``true`` from the server default; every key made since is false.
    legacy_format: Mapped[bool] = mapped_column(Boolean, default=False, server_default=true())
    #: What the key may do (``vibexp.core.access``), as given at creation; keys that predate scopes are ``*``.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["*"], server_default=text("'[\"*\"]'"))
    #: Networks the key may be used from (``vibexp.core.cidrs``); empty: anywhere.
    allowed_cidrs: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    #: Destructive MCP tools (``delete_*``, overwriting ``update_*`` / ``save_artifact``) ask the person, by form
    #: elicitation, before they act (``vibexp.api.mcp.confirm``); a client that cannot be asked does not see them.
    confirm_destructive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The person the key belongs to (a personal key: it never acts wider than their role); ``None``: a service key.
    owner_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    #: The owner's user row, loaded with the key (one join), for the key's JSON ``owner``.
    owner_user: Mapped[User | None] = relationship(User, lazy="joined", viewonly=True)

    @property
    def owner(self) -> dict[str, str] | None:
        """``{"user_id", "email"}`` of a personal key's owner; ``None`` for a service key."""
        return owner_json(self.owner_user)
