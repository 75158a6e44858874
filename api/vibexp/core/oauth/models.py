"""OAuth 2.1 for MCP: clients, authorization codes and grants (README "Connect with OAuth").

Every secret (authorization code, access token, refresh token) exists once, in the answer that carries it; only its
SHA-256 is stored.

One table holds a grant and its current token pair, rather than a separate tokens table: a grant has exactly one
live access token and one live refresh token at a time (each refresh replaces both), so revocation is one row's
update, refresh-token reuse detection needs only the previous refresh hash beside the current one, and the token
verifier's change poll reads one row per grant with no join. The price: an access token dies when its grant is
refreshed, which only the client that refreshed (and holds the new one) could notice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id

__all__ = ["ClientKind", "OAuthClient", "OAuthCode", "OAuthGrant"]


class ClientKind(StrEnum):
    #: ``client_id`` is an https URL whose document names the client and its redirect URIs (CIMD; later round).
    metadata_document = "metadata_document"
    #: Registered through ``/oauth/register`` (RFC 7591): anyone may register, so its name is "unverified".
    registered = "registered"


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    #: The ``client_id``: the metadata document's URL, or a generated id for a registered client.
    id: Mapped[str] = mapped_column(String(2048), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OAuthGrant(Base):
    """What a person allowed one client to do in one account, and the grant's current token pair."""

    __tablename__ = "oauth_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    #: Concrete scope names (``vibexp.core.access.Scope`` values) the person ticked.
    scopes: Mapped[list[str]] = mapped_column(JSON)
    #: Destructive MCP tools ask the person first (as ``ApiKey.confirm_destructive``): ticked on the consent page,
    #: changed in Settings → Connected apps or ``PATCH /api/v1/oauth/grants/{id}``.
    confirm_destructive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Bumped on every change that affects authentication (tokens issued, revocation, ``confirm_destructive``), watched
    #: by other processes (the token verifier's poll, the MCP change feed).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Why it was revoked (``client``, ``code_reused``, ``refresh_reused``, ...).
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    access_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    #: The refresh token the current one replaced: presented again, it proves a copy exists, and the grant goes.
    previous_refresh_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    # Usage, written in batches by the token verifier (never on the request path).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)


class OAuthCode(Base):
    """An authorization code: single use, about a minute, bound to its client, redirect URI, PKCE challenge and
    resource."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(2048))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
