"""The OAuth use cases every adapter calls (today the HTTP one: ``vibexp.api.oauth``).

The token and registration endpoints have no ``Caller``: their clients are public and anonymous until they hold a
token; what proves them is the code, the PKCE verifier or the refresh token. Consent is a person's act: it takes the
signed-in person's ``Caller`` and never grants wider than their role allows a key of theirs (``key_ceiling``).

A refusal that revoked something (a reused code or refresh token, a person who left the account) is returned, not
raised, so the caller's unit of work commits the revocation; every other refusal raises and changes nothing.

A grant is a credential like a personal key (README "Connected apps"): listing grants needs ``keys:read``, revoking
one ``keys:write``, and the keys' rule applies — a member or viewer sees and revokes only their own grants (another
person's is ``NotFound``, never revealed), admins and owners everyone's, with the keys' ``owner=`` filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import ALL_SCOPES, Actor, Caller, CredentialKind, Scope, key_ceiling, requires
from vibexp.core.errors import Conflict, InsufficientScope, NotFound
from vibexp.core.ids import is_id
from vibexp.core.keys.service import SERVICE_KEYS
from vibexp.core.keys.usecases import owner_filter
from vibexp.core.oauth import service
from vibexp.core.oauth.client_documents import ClientDocumentError, ClientDocuments, is_document_url
from vibexp.core.oauth.errors import OAuthError
from vibexp.core.oauth.models import ClientKind, OAuthClient
from vibexp.core.oauth.schemas import ClientRegistration, IssuedTokens
from vibexp.core.oauth.service import GrantView
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page

__all__ = [
    "GrantView",
    "allowed_scopes",
    "consent",
    "exchange_code",
    "find_client",
    "get_grant",
    "list_grants",
    "redirect_allowed",
    "refresh",
    "register",
    "registration_open",
    "revoke",
    "revoke_grant",
    "update_grant",
]

#: Who the audit trail names for what a client does with nothing but its tokens (a reuse, a revocation).
_CLIENT_ACTOR = Actor.system("OAuth client")


async def register(session: AsyncSession, registration: ClientRegistration) -> OAuthClient:
    return await service.register_client(
        session, name=registration.client_name, redirect_uris=list(registration.redirect_uris)
    )


async def find_client(
    session: AsyncSession, client_id: str, documents: ClientDocuments | None = None, *, store: bool = False
) -> OAuthClient | None:
    """The client ``client_id`` names, or ``None`` when nothing does.

    An http(s) URL is a Client ID Metadata Document, fetched (or taken from ``documents``' cache) and checked on
    every call; ``store`` (a write unit of work) keeps its client row current. A refused URL or document, and with
    ``VIBEXP_OAUTH_CLIENT_DOMAINS`` set a registered client, is ``ClientDocumentError``."""
    if documents is not None and is_document_url(client_id):
        document = await documents.get(client_id)
        return await service.store_document_client(session, document, store=store)
    client = await service.get_client(session, client_id)
    if client is not None and client.kind != ClientKind.registered.value:
        return None  # a document client's row is used only through its document, checked again above
    if client is not None and documents is not None and documents.restricted:
        raise ClientDocumentError(
            "This VibeXP server accepts only applications identified by a client metadata document on "
            f"{', '.join(documents.domains)}; registered applications are refused."
        )
    return client


def registration_open(documents: ClientDocuments | None) -> bool:
    """Dynamic Client Registration is closed while ``VIBEXP_OAUTH_CLIENT_DOMAINS`` restricts the clients."""
    return documents is None or not documents.restricted


def redirect_allowed(client: OAuthClient, redirect_uri: str) -> bool:
    return service.redirect_allowed(client, redirect_uri)


def allowed_scopes(caller: Caller) -> tuple[Scope, ...]:
    """The scopes the consent page offers this person, in documentation order: their role's key ceiling."""
    within = key_ceiling(caller.role)
    return tuple(scope for scope in ALL_SCOPES if scope in within)


async def consent(
    session: AsyncSession,
    *,
    caller: Caller,
    client: OAuthClient,
    scopes: Sequence[str],
    redirect_uri: str,
    code_challenge: str,
    resource: str,
    confirm_destructive: bool = False,
) -> str:
    """The signed-in person allowed ``client`` ``scopes`` (``confirm_destructive``: its destructive MCP tools ask
    first): the authorization code (its grant and audit events are added to ``session``). A scope beyond the
    person's role is ``InsufficientScope``."""
    if caller.credential is not CredentialKind.dashboard_session or caller.person is None:
        raise InsufficientScope(Scope.keys_write)  # only a signed-in person consents, never a key or a token
    offered = set(allowed_scopes(caller))
    chosen: list[str] = []
    for name in scopes:
        try:
            scope = Scope(name)
        except ValueError:
            raise OAuthError("invalid_scope", f"unknown scope {name!r}") from None
        if scope not in offered:
            raise InsufficientScope(scope)
        if scope.value not in chosen:
            chosen.append(scope.value)
    if not chosen:
        raise OAuthError("invalid_scope", "choose at least one permission")
    return await service.issue_code(
        session,
        tenant_id=caller.tenant_id,
        user_id=caller.person,
        client=client,
        scopes=chosen,
        redirect_uri=redirect_uri,
        code_challenge=code_challenge,
        resource=resource,
        actor=caller.actor,
        confirm_destructive=confirm_destructive,
    )


def _kept(exc: OAuthError) -> OAuthError:
    if exc.keep_changes:
        return exc
    raise exc


async def exchange_code(
    session: AsyncSession,
    *,
    code: str,
    code_verifier: str,
    client_id: str,
    redirect_uri: str,
    resource: str | None,
) -> IssuedTokens | OAuthError:
    try:
        return await service.exchange_code(
            session,
            code=code,
            code_verifier=code_verifier,
            client_id=client_id,
            redirect_uri=redirect_uri,
            resource=resource,
            actor=_CLIENT_ACTOR,
        )
    except OAuthError as exc:
        return _kept(exc)


async def refresh(session: AsyncSession, *, refresh_token: str, client_id: str) -> IssuedTokens | OAuthError:
    try:
        return await service.refresh(session, refresh_token=refresh_token, client_id=client_id, actor=_CLIENT_ACTOR)
    except OAuthError as exc:
        return _kept(exc)


async def revoke(session: AsyncSession, *, token: str, client_id: str | None) -> None:
    await service.revoke_token(session, token=token, client_id=client_id, actor=_CLIENT_ACTOR)


# -- grants as credentials -----------------------------------------------------------------------------------------
_GRANT_NOT_FOUND = "Connected app (OAuth grant) not found"


@requires(Scope.keys_read)
async def list_grants(
    session: AsyncSession,
    *,
    caller: Caller,
    owner: str | None = None,
    active: bool | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[GrantView]:
    """The account's grants, newest first (a member's or viewer's own); ``owner`` as the keys' ``owner_filter``
    reads it (``service``, keys of no person, matches no grant: every grant is a person's)."""
    user_id = await owner_filter(session, caller=caller, owner=owner)
    if user_id == SERVICE_KEYS:  # a grant always belongs to a person
        return Page(items=[], next_cursor=None)
    return await service.list_grants(
        session, tenant_id=caller.tenant_id, user_id=user_id, active=active, limit=limit, cursor=cursor
    )


async def _visible_grant(session: AsyncSession, caller: Caller, grant_id: str, *, lock: bool = False) -> GrantView:
    """The grant, if the caller may see it: another account's, a malformed id, and (for a member or viewer)
    another person's are all ``NotFound``."""
    view = (
        await service.get_grant(session, tenant_id=caller.tenant_id, grant_id=grant_id, lock=lock)
        if is_id(grant_id)
        else None
    )
    if view is None or (caller.sees_only_own_keys and view.grant.user_id != caller.person):
        raise NotFound(_GRANT_NOT_FOUND)
    return view


@requires(Scope.keys_read)
async def get_grant(session: AsyncSession, *, caller: Caller, grant_id: str) -> GrantView:
    """One grant, as the list shows it (a member's or viewer's own only: another's is ``NotFound``)."""
    return await _visible_grant(session, caller, grant_id)


@requires(Scope.keys_write)
async def revoke_grant(session: AsyncSession, *, caller: Caller, grant_id: str) -> GrantView:
    """Revoke a connected app: its tokens stop working on every replica within the verifier's poll (audited
    ``oauth.revoked``, ``reason: revoked``). A grant revoked already is ``Conflict`` (``grant_revoked``)."""
    view = await _visible_grant(session, caller, grant_id, lock=True)
    if view.grant.revoked_at is not None:
        raise Conflict("This connected app was already revoked", code="grant_revoked")
    await service.revoke_grant(session, view.grant, reason="revoked", actor=caller.actor)
    return view


@requires(Scope.keys_write)
async def update_grant(
    session: AsyncSession, *, caller: Caller, grant_id: str, confirm_destructive: bool | None = None
) -> GrantView:
    """Change a connected app's ``confirm_destructive`` (``None``: unchanged), with revocation's rules: another
    person's grant (for a member or viewer) is ``NotFound``, a revoked one ``Conflict`` (``grant_revoked``). A
    change is audited ``oauth.updated`` and reaches every replica's token cache within the verifier's poll."""
    view = await _visible_grant(session, caller, grant_id, lock=True)
    if view.grant.revoked_at is not None:
        raise Conflict("This connected app was revoked: it cannot be changed", code="grant_revoked")
    if confirm_destructive is not None:
        await service.set_confirm_destructive(session, view.grant, confirm=confirm_destructive, actor=caller.actor)
    return view
