"""The authorization server's rules, below the use cases: clients, codes, grants and their tokens.

- A redirect URI matches a client's registered one exactly; a loopback one (``http://127.0.0.1``, ``[::1]`` or
  ``localhost``) matches on any port (RFC 8252 section 7.3), nothing else of it may differ.
- A code is single use, lives ``CODE_TTL``, and is bound to its client, redirect URI, PKCE challenge and resource.
  A code presented a second time revokes its grant (RFC 6749 section 4.1.2: the tokens it issued may be a thief's).
- Each refresh replaces both tokens; presenting the refresh token it replaced revokes the grant.
- Every change that affects authentication bumps ``updated_at`` (the verifier's poll) and notes ``GRANT_CHANGED``
  (this process's verifier, at commit).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Row, Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core import access, notices
from vibexp.core.access import Actor
from vibexp.core.audit.service import Target, record
from vibexp.core.clock import utcnow
from vibexp.core.notices import Notice
from vibexp.core.oauth.client_documents import ClientDocument
from vibexp.core.oauth.errors import OAuthError
from vibexp.core.oauth.models import ClientKind, OAuthClient, OAuthCode, OAuthGrant
from vibexp.core.oauth.schemas import IssuedTokens, is_loopback_redirect
from vibexp.core.oauth.tokens import (
    hash_secret,
    new_access_token,
    new_code,
    new_refresh_token,
    pkce_matches,
)
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page, decode_cursor, encode_cursor
from vibexp.core.users.models import Membership, User

__all__ = [
    "ACCESS_TTL",
    "CODE_TTL",
    "GrantView",
    "exchange_code",
    "get_client",
    "get_grant",
    "grant_ids_of",
    "grant_name",
    "issue_code",
    "list_grants",
    "redirect_allowed",
    "refresh",
    "register_client",
    "revoke_grant",
    "revoke_leaked",
    "revoke_person_grants",
    "revoke_token",
    "set_confirm_destructive",
    "store_document_client",
]

log = logging.getLogger(__name__)

CODE_TTL = timedelta(seconds=60)
ACCESS_TTL = timedelta(hours=1)


def _without_port(uri: str) -> tuple[str, str, str, str, str]:
    parts = urlsplit(uri)
    return parts.scheme, parts.hostname or "", parts.path, parts.query, parts.fragment


def redirect_allowed(client: OAuthClient, redirect_uri: str) -> bool:
    """Exact match with one of the client's redirect URIs; loopback ones match on any port."""
    if redirect_uri in client.redirect_uris:
        return True
    if not is_loopback_redirect(redirect_uri):
        return False
    try:
        wanted = _without_port(redirect_uri)
        return any(is_loopback_redirect(known) and _without_port(known) == wanted for known in client.redirect_uris)
    except ValueError:  # a port that is not a number
        return False


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    if not client_id or len(client_id) > 2048:
        return None
    return await session.get(OAuthClient, client_id)


async def store_document_client(session: AsyncSession, document: ClientDocument, *, store: bool) -> OAuthClient:
    """The client a metadata document describes: its row created or refreshed from the document when ``store``
    (a write unit of work), else an unsaved copy (a read: the authorization page before consent)."""
    redirect_uris = list(document.redirect_uris)
    if not store:
        return OAuthClient(
            id=document.client_id,
            name=document.name,
            redirect_uris=redirect_uris,
            kind=ClientKind.metadata_document.value,
        )
    client = await session.get(OAuthClient, document.client_id)
    if client is None:
        client = OAuthClient(
            id=document.client_id,
            name=document.name,
            redirect_uris=redirect_uris,
            kind=ClientKind.metadata_document.value,
        )
        if session.get_bind().dialect.name != "postgresql":  # SQLite: this process's writers take turns
            session.add(client)
            await session.flush()
            log.info("OAuth client metadata document stored: %s (%s)", client.id, client.name)
            return client
        try:
            # Another replica may store the same client at the same moment: its row wins, this one is dropped.
            async with session.begin_nested():
                session.add(client)
        except IntegrityError:
            found = await session.get(OAuthClient, document.client_id, populate_existing=True)
            if found is None:
                raise
            client = found
        else:
            log.info("OAuth client metadata document stored: %s (%s)", client.id, client.name)
            return client
    if client.name != document.name or client.redirect_uris != redirect_uris:
        client.name = document.name
        client.redirect_uris = redirect_uris
    await session.flush()
    return client


async def register_client(session: AsyncSession, *, name: str, redirect_uris: list[str]) -> OAuthClient:
    """A public client registered by RFC 7591 (validated by ``schemas.ClientRegistration``)."""
    client = OAuthClient(
        id="vibexp-client-" + secrets.token_hex(16),
        name=name,
        redirect_uris=list(redirect_uris),
        kind=ClientKind.registered.value,
    )
    session.add(client)
    await session.flush()
    log.info("OAuth client registered: %s (%s)", client.id, client.name)
    return client


def _changed(session: AsyncSession, grant: OAuthGrant, now: datetime) -> None:
    grant.updated_at = now
    notices.note(session, Notice.GRANT_CHANGED, grant.id)


async def issue_code(
    session: AsyncSession,
    *,
    tenant_id: str,
    user_id: str,
    client: OAuthClient,
    scopes: list[str],
    redirect_uri: str,
    code_challenge: str,
    resource: str,
    actor: Actor,
    confirm_destructive: bool = False,
) -> str:
    """The person allowed ``client`` ``scopes`` (``confirm_destructive``: its destructive MCP tools ask them first):
    a new grant (no tokens yet) and its authorization code."""
    now = utcnow()
    first = (
        await session.scalar(
            select(OAuthGrant.id).where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.client_id == client.id).limit(1)
        )
        is None
    )
    grant = OAuthGrant(
        tenant_id=tenant_id,
        user_id=user_id,
        client_id=client.id,
        scopes=scopes,
        confirm_destructive=confirm_destructive,
        created_at=now,
        updated_at=now,
    )
    session.add(grant)
    await session.flush()
    code = new_code()
    session.add(
        OAuthCode(
            code_hash=hash_secret(code),
            grant_id=grant.id,
            client_id=client.id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            resource=resource,
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    )
    client_target = Target("oauth_client", client.id, client.name)
    if first:  # the account's trail learns of a client the first time one of its people lets it in
        details = {"kind": client.kind, "redirect_uris": list(client.redirect_uris)}
        await record(
            session,
            tenant_id=tenant_id,
            action="oauth.client_registered",
            actor=actor,
            target=client_target,
            details=details,
        )
    granted: dict[str, object] = {
        "client_id": client.id,
        "client_name": client.name,
        "client_kind": client.kind,
        "scopes": scopes,
        "confirm_destructive": confirm_destructive,
    }
    await record(
        session,
        tenant_id=tenant_id,
        action="oauth.granted",
        actor=actor,
        target=Target("oauth_grant", grant.id, client.name),
        details=granted,
    )
    await session.flush()
    return code


async def _still_a_member(session: AsyncSession, grant: OAuthGrant, actor: Actor) -> str:
    """The grant's person's role now; a person no longer in the account gets nothing, and the grant goes."""
    role = await session.scalar(
        select(Membership.role).where(Membership.tenant_id == grant.tenant_id, Membership.user_id == grant.user_id)
    )
    if role is None:
        await revoke_grant(session, grant, reason="member_removed", actor=actor)
        raise OAuthError(
            "invalid_grant", "The person who granted access is no longer a member of the account", keep_changes=True
        )
    return str(role)


def _issue(session: AsyncSession, grant: OAuthGrant, now: datetime, role: str) -> IssuedTokens:
    access_token, refresh_token = new_access_token(), new_refresh_token()
    grant.access_hash = hash_secret(access_token)
    grant.access_expires_at = now + ACCESS_TTL
    grant.refresh_hash = hash_secret(refresh_token)
    _changed(session, grant, now)
    # The scopes the tokens act with today: what was granted, within the person's role (checked again per request).
    within = access.ceiling(role)
    scopes = tuple(name for name in grant.scopes if name in within)
    return IssuedTokens(access_token, refresh_token, int(ACCESS_TTL.total_seconds()), scopes, grant.id)


def grant_name(client_name: str) -> str:
    """How a grant is named where a key's name would be (the action log, alerts, the audit trail): its client's."""
    return f"{client_name} (OAuth)"


async def revoke_grant(
    session: AsyncSession,
    grant: OAuthGrant,
    *,
    reason: str,
    actor: Actor,
    details: dict[str, object] | None = None,
) -> None:
    """Revoke the grant (audited ``oauth.revoked`` with ``reason`` and ``details``); a revoked one is left as is."""
    if grant.revoked_at is not None:
        return
    now = utcnow()
    grant.revoked_at = now
    grant.revoked_reason = reason
    grant.access_hash = grant.refresh_hash = None
    _changed(session, grant, now)
    client = await session.get(OAuthClient, grant.client_id)
    await record(
        session,
        tenant_id=grant.tenant_id,
        action="oauth.revoked",
        actor=actor,
        target=Target("oauth_grant", grant.id, client.name if client else grant.client_id),
        details={**(details or {}), "reason": reason, "client_id": grant.client_id},
    )
    await session.flush()


async def set_confirm_destructive(session: AsyncSession, grant: OAuthGrant, *, confirm: bool, actor: Actor) -> bool:
    """Turn the grant's ``confirm_destructive`` on or off (audited ``oauth.updated`` with the previous value; every
    verifier re-reads the grant, as on a revocation); whether anything changed (nothing is recorded when not)."""
    if grant.confirm_destructive == confirm:
        return False
    previous = grant.confirm_destructive
    grant.confirm_destructive = confirm
    _changed(session, grant, utcnow())
    client = await session.get(OAuthClient, grant.client_id)
    await record(
        session,
        tenant_id=grant.tenant_id,
        action="oauth.updated",
        actor=actor,
        target=Target("oauth_grant", grant.id, client.name if client else grant.client_id),
        details={"confirm_destructive": confirm, "previous": {"confirm_destructive": previous}},
    )
    await session.flush()
    return True


async def revoke_leaked(
    session: AsyncSession, *, plaintexts: Iterable[str], actor: Actor, details: dict[str, object] | None = None
) -> list[OAuthGrant]:
    """Revoke the live grant of each leaked access or refresh token, and of each authorization code that could
    still be exchanged (unused, unexpired), among ``plaintexts`` (anything else is ignored); each audited
    ``oauth.revoked`` with ``reason: leaked`` and ``details`` (where it was found, blanks left out). The grants
    revoked, each once."""
    digests = {hash_secret(text) for text in plaintexts}
    if not digests:
        return []
    now = utcnow()
    by_code = select(OAuthCode.grant_id).where(
        OAuthCode.code_hash.in_(digests), OAuthCode.used_at.is_(None), OAuthCode.expires_at > now
    )
    grants = await session.scalars(
        select(OAuthGrant)
        .where(
            OAuthGrant.revoked_at.is_(None),
            OAuthGrant.access_hash.in_(digests) | OAuthGrant.refresh_hash.in_(digests) | OAuthGrant.id.in_(by_code),
        )
        .order_by(OAuthGrant.id)
        .with_for_update()
    )
    where = {name: value for name, value in (details or {}).items() if value is not None}
    revoked = []
    for grant in list(grants):
        await revoke_grant(session, grant, reason="leaked", actor=actor, details=where)
        revoked.append(grant)
    return revoked


_BAD_CODE = "The authorization code is invalid, expired or already used"


async def exchange_code(
    session: AsyncSession,
    *,
    code: str,
    code_verifier: str,
    client_id: str,
    redirect_uri: str,
    resource: str | None,
    actor: Actor,
) -> IssuedTokens:
    """``authorization_code`` grant (RFC 6749 4.1.3 with PKCE): each mismatch is ``invalid_grant`` and issues
    nothing; a code used before revokes the grant it made (its tokens may be in a thief's hands)."""
    now = utcnow()
    row = await session.get(OAuthCode, hash_secret(code), with_for_update=True)
    if row is None:
        raise OAuthError("invalid_grant", _BAD_CODE)
    grant = await session.get(OAuthGrant, row.grant_id, with_for_update=True)
    if grant is None or grant.revoked_at is not None:
        raise OAuthError("invalid_grant", _BAD_CODE)
    if row.used_at is not None:
        await revoke_grant(session, grant, reason="code_reused", actor=actor)
        raise OAuthError(
            "invalid_grant", "The authorization code was already used: the grant it made is revoked", keep_changes=True
        )
    if row.expires_at <= now:
        raise OAuthError("invalid_grant", "The authorization code has expired: start the authorization again")
    if row.client_id != client_id:
        raise OAuthError("invalid_grant", "The authorization code was issued to another client")
    if row.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the one the authorization request used")
    if resource is not None and resource != row.resource:
        raise OAuthError("invalid_target", "resource differs from the one the authorization request named")
    if not pkce_matches(code_verifier, row.code_challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE S256)")
    row.used_at = now
    tokens = _issue(session, grant, now, await _still_a_member(session, grant, actor))
    await session.flush()
    return tokens


async def refresh(session: AsyncSession, *, refresh_token: str, client_id: str, actor: Actor) -> IssuedTokens:
    """``refresh_token`` grant with rotation; the token this grant's current one replaced revokes the grant."""
    now = utcnow()
    digest = hash_secret(refresh_token)
    grant = await session.scalar(select(OAuthGrant).where(OAuthGrant.refresh_hash == digest).with_for_update())
    if grant is None:
        reused = await session.scalar(
            select(OAuthGrant).where(OAuthGrant.previous_refresh_hash == digest).with_for_update()
        )
        if reused is not None and reused.revoked_at is None and reused.client_id == client_id:
            await revoke_grant(session, reused, reason="refresh_reused", actor=actor)
            raise OAuthError(
                "invalid_grant", "This refresh token was already used: the grant is revoked", keep_changes=True
            )
        raise OAuthError("invalid_grant", "The refresh token is invalid, revoked or already used")
    if grant.client_id != client_id:
        raise OAuthError("invalid_grant", "The refresh token was issued to another client")
    role = await _still_a_member(session, grant, actor)
    grant.previous_refresh_hash = digest
    tokens = _issue(session, grant, now, role)
    await session.flush()
    return tokens


async def revoke_token(session: AsyncSession, *, token: str, client_id: str | None, actor: Actor) -> None:
    """RFC 7009: an access or refresh token revokes its grant; an unknown token (or another client's) is no
    error and changes nothing."""
    digest = hash_secret(token)
    grant = await session.scalar(
        select(OAuthGrant).where((OAuthGrant.access_hash == digest) | (OAuthGrant.refresh_hash == digest))
    )
    if grant is None or (client_id is not None and grant.client_id != client_id):
        return
    await revoke_grant(session, grant, reason="client", actor=actor)


# -- grants as credentials (REST /api/v1/oauth/grants, Settings → Connected apps, offboarding) ---------------------
@dataclass(frozen=True, slots=True)
class GrantView:
    """A grant with its client and its person's e-mail, as the lists show it."""

    grant: OAuthGrant
    client: OAuthClient
    owner_email: str

    @property
    def redirect_host(self) -> str:
        """The host the client's (first) redirect URI points at: what a person recognises a client by."""
        for uri in self.client.redirect_uris:
            host = urlsplit(uri).hostname
            if host:
                return host
        return ""


def _views(rows: Sequence[Row[OAuthGrant, OAuthClient, str]]) -> list[GrantView]:
    return [GrantView(grant, client, email) for grant, client, email in rows]


def _with_client_and_owner() -> Select[OAuthGrant, OAuthClient, str]:
    return (
        select(OAuthGrant, OAuthClient, User.email)
        .join(OAuthClient, OAuthClient.id == OAuthGrant.client_id)
        .join(User, User.id == OAuthGrant.user_id)
    )


async def list_grants(
    session: AsyncSession,
    *,
    tenant_id: str,
    user_id: str | None = None,
    active: bool | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[GrantView]:
    """The account's grants (``user_id``: one person's), newest first; ``active`` True: not revoked, False: revoked.
    Ids are time-ordered, so the cursor is the last id."""
    query = _with_client_and_owner().where(OAuthGrant.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(OAuthGrant.user_id == user_id)
    if active is True:
        query = query.where(OAuthGrant.revoked_at.is_(None))
    elif active is False:
        query = query.where(OAuthGrant.revoked_at.is_not(None))
    if cursor:
        query = query.where(OAuthGrant.id < decode_cursor(cursor))
    rows = _views(list(await session.execute(query.order_by(OAuthGrant.id.desc()).limit(limit + 1))))
    next_cursor = encode_cursor(rows[limit - 1].grant.id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def get_grant(session: AsyncSession, *, tenant_id: str, grant_id: str, lock: bool = False) -> GrantView | None:
    """One grant of the account (``lock``: its row locked for a change), or ``None``."""
    query = _with_client_and_owner().where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.id == grant_id)
    if lock:
        query = query.with_for_update(of=OAuthGrant)
    rows = _views(list(await session.execute(query)))
    return rows[0] if rows else None


async def revoke_person_grants(
    session: AsyncSession, *, tenant_id: str, user_id: str, reason: str, actor: Actor
) -> list[str]:
    """Revoke every live grant of one person in one account (each audited ``oauth.revoked`` with ``reason``), in
    the caller's transaction; the ids revoked."""
    grants = await session.scalars(
        select(OAuthGrant)
        .where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.user_id == user_id, OAuthGrant.revoked_at.is_(None))
        .order_by(OAuthGrant.id)
        .with_for_update()
    )
    revoked: list[str] = []
    for grant in list(grants):
        await revoke_grant(session, grant, reason=reason, actor=actor)
        revoked.append(grant.id)
    return revoked


def grant_ids_of(tenant_id: str, owner: str) -> Select[str]:
    """The ids of the tenant's grants of ``owner`` (a user id; ``keys.service.SERVICE_KEYS``, keys of no person,
    matches none: a grant is always a person's), revoked ones included: what the action log and the alerts filter
    by beside ``keys.service.key_ids_of``."""
    return select(OAuthGrant.id).where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.user_id == owner)
