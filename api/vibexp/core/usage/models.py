from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base, UTCDateTime
from vibexp.core.geo import COUNTRY_LENGTH
from vibexp.core.traffic import ACTION_LENGTH, CLIENT_IP_LENGTH, METHOD_LENGTH, ROUTE_LENGTH, TOOL_TYPE_LENGTH

__all__ = ["ONE_CREDENTIAL", "KeyAction"]

#: A usage or alert row names exactly one credential: an API key or an OAuth grant (the CHECK of both tables).
ONE_CREDENTIAL = "(key_id IS NULL) <> (grant_id IS NULL)"


class KeyAction(Base):
    """One authenticated operation: the action log behind the usage dashboard (kept for a retention period).

    A row is a ``vibexp.core.traffic.UsageEvent`` stored; the texts' lengths are declared there, once. Its
    credential is an API key (``key_id``) or an OAuth grant (``grant_id``): exactly one of the two (the CHECK
    ``ck_key_actions_one_credential``), each a foreign key, so a key's or a grant's history goes with it."""

    __tablename__ = "key_actions"
    __table_args__ = (CheckConstraint(ONE_CREDENTIAL, name="one_credential"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True, nullable=True)
    grant_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True, nullable=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    #: Route template (``/api/v1/prompts/{id}``) or MCP method, never a raw path with ids or secrets.
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH))
    #: What was done: ``GET /api/v1/prompts/{id}`` or an MCP tool name such as ``save_memory``.
    action: Mapped[str] = mapped_column(String(ACTION_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    tool_type: Mapped[str] = mapped_column(String(TOOL_TYPE_LENGTH))
    client_ip: Mapped[str | None] = mapped_column(String(CLIENT_IP_LENGTH), nullable=True)
    #: The client address's registered country (ISO 3166-1 alpha-2, ``vibexp.core.geo``), looked up in the flush;
    #: None for private, loopback and unregistered addresses.
    country: Mapped[str | None] = mapped_column(String(COUNTRY_LENGTH), nullable=True)

    @property
    def credential_id(self) -> str:
        """The key's or the grant's id."""
        return self.key_id or self.grant_id or ""
