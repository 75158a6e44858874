"""The authorization server's HTTP endpoints (README "Connect with OAuth"), on the OAuth use cases.

- ``/.well-known/oauth-protected-resource/mcp/v1/connect`` (RFC 9728) and
  ``/.well-known/oauth-authorization-server/oauth`` (RFC 8414); the root well-known paths and those of
  ``/mcp/v1/common`` are not routes (404): a client with a configured key must not switch to OAuth.
- ``/oauth/register`` (RFC 7591): ``VIBEXP_OAUTH_REGISTER_LIMIT`` attempts per client address and clock hour, counted
  in the database like the accounts' hourly limit (``vibexp.core.ratelimit.limiter``), so the replicas together
  admit no more; past it 429 ``too_many_requests`` with ``Retry-After``.
- ``/oauth/register`` (RFC 7591), ``/oauth/token`` (RFC 6749 with PKCE, refresh rotation), ``/oauth/revoke``
  (RFC 7009): RFC JSON errors ``{"error", "error_description"}``, ``Cache-Control: no-store``.
- ``/oauth/authorize``: the client and its redirect URI are checked before anything else, and a bad one gets a page
  for the person, never a redirect; every later problem is redirected to the client with ``error``, ``state`` and
  ``iss`` (RFC 9207). The person signs in to the dashboard if needed, then consents on a dashboard page (CSRF
  checked like every dashboard form).
- A ``client_id`` that is an http(s) URL is a Client ID Metadata Document (``vibexp.core.oauth.client_documents``):
  fetched, checked and cached; a refusal is the error page at ``/oauth/authorize`` and ``invalid_client`` at
  ``/oauth/token``. ``VIBEXP_OAUTH_CLIENT_DOMAINS`` closes ``/oauth/register`` (403) and drops it from the metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from starlette.responses import JSONResponse, Response

from vibexp.api.dashboard.deps import CsrfChecked, SignInRequired, Viewer, browser_session, current_viewer
from vibexp.api.dashboard.errors import DashboardRoute, error_page
from vibexp.api.dashboard.rendering import SECURITY_HEADERS, redirect, render
from vibexp.api.deps import SessionDep
from vibexp.api.middleware.client_address import client_address
from vibexp.api.oauth import urls
from vibexp.api.settings import ApiSettings
from vibexp.core.access import ALL_SCOPES, Caller, Scope, resource_scopes
from vibexp.core.db import session_scope
from vibexp.core.oauth import usecases as oauth
from vibexp.core.oauth.client_documents import ClientDocumentError, ClientDocuments, is_document_url
from vibexp.core.oauth.errors import OAuthError
from vibexp.core.oauth.models import ClientKind, OAuthClient
from vibexp.core.oauth.schemas import ClientRegistration, IssuedTokens
from vibexp.core.ratelimit.failures import FailureThrottle
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.core.runtime import Runtime

__all__ = ["install_oauth"]

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SCOPE_NAMES = [scope.value for scope in ALL_SCOPES]
#: Longest value accepted for ``state``, ``scope``, ``code_challenge`` (a S256 challenge is 43 characters).
_MAX_STATE = 2048
_MAX_CHALLENGE = 128
#: Addresses the registration throttle remembers per process (their counts are in the database).
REGISTER_TRACKED = 10_000


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.runtime.settings
    return settings


def _base(request: Request) -> str:
    return urls.public_base(request.scope, _settings(request))


def _documents(request: Request) -> ClientDocuments:
    documents: ClientDocuments = request.app.state.oauth_client_documents
    return documents


async def _find_client(request: Request, db: SessionDep, client_id: str, *, store: bool) -> OAuthClient | None:
    """``oauth.find_client``; a metadata document not in the cache is a request this server makes for anyone who
    asks, so each client address may cause only so many (the registration throttle's limit, counted apart)."""
    documents = _documents(request)
    if is_document_url(client_id) and not documents.cached(client_id):
        throttle: FailureThrottle = request.app.state.oauth_fetch_throttle
        address = client_address(request.scope) or "unknown"
        if throttle.retry_after(address):
            raise ClientDocumentError(
                "Too many new applications from this address: VibeXP will fetch no more metadata documents for it "
                "for a few minutes."
            )
        throttle.failed(address)
    return await oauth.find_client(db, client_id, documents, store=store)


def registration_subject(address: str) -> str:
    """What the registration throttle counts an address under in ``rate_windows`` (36 characters, like a tenant
    id; a digest, so the table holds no address)."""
    return "dcr:" + hashlib.sha256(address.encode()).hexdigest()[:32]


def _oauth_error(exc: OAuthError) -> JSONResponse:
    status = 401 if exc.error == "invalid_client" else exc.status
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status, headers=_NO_STORE)


# -- metadata -------------------------------------------------------------------------------------------------------
router = APIRouter(include_in_schema=False)


@router.get(urls.PRM_PATH)
async def protected_resource(request: Request) -> JSONResponse:
    return JSONResponse(urls.protected_resource_metadata(_base(request), _SCOPE_NAMES))


@router.get(urls.AS_METADATA_PATH)
async def authorization_server(request: Request) -> JSONResponse:
    registration = oauth.registration_open(_documents(request))
    return JSONResponse(urls.authorization_server_metadata(_base(request), _SCOPE_NAMES, registration=registration))


# -- registration, token, revocation --------------------------------------------------------------------------------
@router.post("/oauth/register")
async def register(request: Request) -> JSONResponse:
    """The throttle first, then the unit of work: the limiter takes this process's SQLite writer turn of its own,
    which a request's write unit (``SessionDep``) would already hold."""
    if not oauth.registration_open(_documents(request)):
        closed = "registration is closed: this server accepts only client metadata documents (client_id URLs)"
        return _oauth_error(OAuthError("invalid_client_metadata", closed, status=403))
    # Every attempt counts, refused or not, on every replica together (the hourly limiter's table: zero overshoot).
    limiter: RateLimiter = request.app.state.oauth_register_limiter
    address = client_address(request.scope) or "unknown"
    decision = await limiter.hit(tenant_id=registration_subject(address), limit=_settings(request).oauth_register_limit)
    if not decision.allowed:
        message = (
            f"too many registrations from this address: at most {decision.limit} an hour; "
            f"retry in {decision.retry_after} s"
        )
        refused = _oauth_error(OAuthError("too_many_requests", message, status=429))
        refused.headers["Retry-After"] = str(decision.retry_after)
        return refused
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _oauth_error(OAuthError("invalid_client_metadata", "the body must be a JSON object"))
    try:
        registration = ClientRegistration.parse(body)
    except OAuthError as exc:
        return _oauth_error(exc)
    runtime: Runtime = request.app.state.runtime
    async with session_scope(runtime.session_factory, write=True) as db:
        client = await oauth.register(db, registration)
    answer = {
        "client_id": client.id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    return JSONResponse(answer, 201, headers=_NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    """The form's single-valued text fields; a repeated parameter is ``invalid_request`` (RFC 6749 3.1)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    form = await request.form()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise OAuthError("invalid_request", f"{name} must be text")
        if name in fields:
            raise OAuthError("invalid_request", f"{name} is given more than once")
        fields[name] = value
    return fields


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    if len(value) > 4096:
        raise OAuthError("invalid_request", f"{name} is too long")
    return value


def _token_answer(tokens: IssuedTokens) -> JSONResponse:
    body = {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
        "scope": " ".join(tokens.scopes),
    }
    return JSONResponse(body, headers=_NO_STORE)


@router.post("/oauth/token")
async def token(request: Request, db: SessionDep) -> JSONResponse:
    try:
        fields = await _form(request)
        grant_type = _required(fields, "grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
        client_id = _required(fields, "client_id")
        try:
            known = await _find_client(request, db, client_id, store=True)
        except ClientDocumentError as exc:
            raise OAuthError("invalid_client", exc.message) from None
        if known is None:
            raise OAuthError("invalid_client", "unknown client_id")
        resource = fields.get("resource")
        if resource is not None and resource != urls.resource_url(_base(request)):
            raise OAuthError("invalid_target", f"resource must be {urls.resource_url(_base(request))}")
        if grant_type == "authorization_code":
            outcome = await oauth.exchange_code(
                db,
                code=_required(fields, "code"),
                code_verifier=_required(fields, "code_verifier"),
                client_id=client_id,
                redirect_uri=_required(fields, "redirect_uri"),
                resource=resource,
            )
        else:
            outcome = await oauth.refresh(db, refresh_token=_required(fields, "refresh_token"), client_id=client_id)
    except OAuthError as exc:
        return _oauth_error(exc)
    if isinstance(outcome, OAuthError):  # refused after revoking something: the unit of work commits that
        return _oauth_error(outcome)
    return _token_answer(outcome)


@router.post("/oauth/revoke")
async def revoke(request: Request, db: SessionDep) -> Response:
    try:
        fields = await _form(request)
        value = _required(fields, "token")
    except OAuthError as exc:
        return _oauth_error(exc)
    await oauth.revoke(db, token=value, client_id=fields.get("client_id") or None)
    return Response(status_code=200, headers=_NO_STORE)


# -- authorization --------------------------------------------------------------------------------------------------
pages = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class _Request:
    """An authorization request whose client and redirect URI are known good (errors may go to the client now)."""

    client: OAuthClient
    redirect_uri: str
    state: str | None
    response_type: str
    code_challenge: str
    code_challenge_method: str
    resource: str
    scope: str


class _PageError(Exception):
    """A problem to show the person, never to redirect (the client or its redirect URI is not trusted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _trusted(request: Request, db: SessionDep, params: dict[str, str]) -> _Request:
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if not client_id:
        raise _PageError("The application did not say who it is (no client_id).")
    try:
        # Stored when the person answers (a write); the page before that only reads.
        client = await _find_client(request, db, client_id, store=request.method == "POST")
    except ClientDocumentError as exc:
        raise _PageError(exc.message) from None
    if client is None:
        raise _PageError("The application is not registered with this VibeXP server (unknown client_id).")
    if not redirect_uri:
        raise _PageError("The application did not say where to return (no redirect_uri).")
    if not oauth.redirect_allowed(client, redirect_uri):
        raise _PageError(
            "The application asked to return to an address it did not register, so VibeXP will not send you there."
        )
    return _Request(
        client=client,
        redirect_uri=redirect_uri,
        state=params.get("state"),
        response_type=params.get("response_type", ""),
        code_challenge=params.get("code_challenge", ""),
        code_challenge_method=params.get("code_challenge_method", ""),
        resource=params.get("resource", ""),
        scope=params.get("scope", ""),
    )


def _redirect_to_client(request: Request, auth: _Request, **params: str) -> Response:
    values = dict(params)
    if auth.state is not None:
        values["state"] = auth.state
    values["iss"] = urls.issuer(_base(request))
    separator = "&" if urlsplit(auth.redirect_uri).query else "?"
    return redirect(request, auth.redirect_uri + separator + urlencode(values))


def _client_error(auth: _Request, base: str) -> OAuthError | None:
    """What the client got wrong, sent back to it (RFC 6749 4.1.2.1), or ``None``."""
    if auth.response_type != "code":
        return OAuthError("unsupported_response_type", "response_type must be code")
    if not auth.code_challenge:
        return OAuthError("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
    if auth.code_challenge_method != "S256":
        return OAuthError("invalid_request", "code_challenge_method must be S256 (plain is not accepted)")
    if len(auth.code_challenge) < 43 or len(auth.code_challenge) > _MAX_CHALLENGE:
        return OAuthError("invalid_request", "code_challenge must be a S256 challenge (43 characters)")
    if auth.state is not None and len(auth.state) > _MAX_STATE:
        return OAuthError("invalid_request", "state is too long")
    if auth.resource != urls.resource_url(base):
        return OAuthError("invalid_target", f"resource must be {urls.resource_url(base)}")
    unknown = [name for name in auth.scope.split() if name not in _SCOPE_NAMES and name not in ("read", "*")]
    if unknown:
        return OAuthError("invalid_scope", f"unknown scope {unknown[0][:64]!r}")
    return None


#: The consent page's "Ask me before deleting or replacing anything" starts ticked: an application acting for a
#: person should not delete or overwrite their work unasked unless they chose so (GitHub's and Stripe's consent
#: screens likewise start from the cautious choice). It costs nothing with read-only permissions, and a client that
#: cannot ask merely does not see the destructive tools; the person unticks it, or turns it off later.
CONFIRM_BY_DEFAULT = True


def _consent_page(
    request: Request,
    viewer: Viewer,
    auth: _Request,
    *,
    error: str | None = None,
    confirm_destructive: bool = CONFIRM_BY_DEFAULT,
) -> Response:
    offered = set(oauth.allowed_scopes(viewer.caller))
    asked = set(Scope(s) for s in auth.scope.split() if s in _SCOPE_NAMES)
    if "read" in auth.scope.split() or "*" in auth.scope.split():
        asked |= {s for s in ALL_SCOPES if s.is_read}
    preselected = {s for s in offered if s.is_read and (not asked or s in asked)}
    rows = [
        (resource, read if read in offered else None, write if write in offered else None)
        for resource, read, write in resource_scopes()
        if read in offered or (write is not None and write in offered)
    ]
    context: dict[str, Any] = {
        "client": auth.client,
        "unverified": auth.client.kind == ClientKind.registered.value,
        # A metadata-document client proved its host by serving the document there: shown as "from <host>".
        "verified_host": (
            urlsplit(auth.client.id).hostname if auth.client.kind == ClientKind.metadata_document.value else None
        ),
        "redirect_host": urlsplit(auth.redirect_uri).netloc,
        "rows": rows,
        "checked": preselected,
        "auth": auth,
        "error": error,
        "confirm_destructive": confirm_destructive,
    }
    response = render(request, "oauth/consent.html", context, status=422 if error else 200)
    # The form's answer redirects to the client: the page's form-action must allow that origin too (Chromium
    # checks redirects after a form submission against it).
    target = urlsplit(auth.redirect_uri)
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}"
    )
    response.headers["Content-Security-Policy"] = policy
    return response


def _sign_in_first(request: Request) -> Response:
    back = request.url.path + ("?" + request.url.query if request.url.query else "")
    return redirect(request, "/login?next=" + quote(back, safe=""))


async def _checked(request: Request, db: SessionDep, params: dict[str, str]) -> tuple[_Request, Viewer] | Response:
    """The authorization request checked in order, for the page and for the person's answer alike: an untrusted
    client or redirect is an error page (never a redirect), any later problem goes back to the client, and a person
    not signed in goes to the sign-in first. The answer to send instead, if any."""
    try:
        auth = await _trusted(request, db, params)
    except _PageError as exc:
        return error_page(request, 400, "Cannot connect this application", exc.message)
    problem = _client_error(auth, _base(request))
    if problem is not None:
        return _redirect_to_client(request, auth, error=problem.error, error_description=problem.description)
    try:
        viewer = await current_viewer(request, browser_session(request), db)
    except SignInRequired:
        return _sign_in_first(request)
    return auth, viewer


@pages.get("/oauth/authorize")
async def authorize(request: Request, db: SessionDep) -> Response:
    checked = await _checked(request, db, dict(request.query_params.items()))
    if isinstance(checked, Response):
        return checked
    auth, viewer = checked
    return _consent_page(request, viewer, auth)


@pages.post("/oauth/authorize", dependencies=[CsrfChecked])
async def decide(
    request: Request,
    db: SessionDep,
    decision: Annotated[str, Form(max_length=16)] = "",
    scope: Annotated[list[str] | None, Form(max_length=len(_SCOPE_NAMES))] = None,
    client_id: Annotated[str, Form(max_length=2048)] = "",
    redirect_uri: Annotated[str, Form(max_length=2048)] = "",
    state: Annotated[str | None, Form(max_length=_MAX_STATE)] = None,
    code_challenge: Annotated[str, Form(max_length=_MAX_CHALLENGE)] = "",
    code_challenge_method: Annotated[str, Form(max_length=16)] = "",
    resource: Annotated[str, Form(max_length=2048)] = "",
    requested_scope: Annotated[str, Form(max_length=2048)] = "",
    account: Annotated[str, Form(max_length=36)] = "",
    confirm_destructive: Annotated[bool, Form()] = False,
) -> Response:
    """The person's answer on the consent page: everything is checked again (the form is the person's browser's,
    not ours), then ``allow`` redirects with a code, ``deny`` with ``access_denied``."""
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": requested_scope}
    params |= {"code_challenge": code_challenge, "code_challenge_method": code_challenge_method, "resource": resource}
    if state is not None:
        params["state"] = state
    checked = await _checked(request, db, params)
    if isinstance(checked, Response):
        return checked
    auth, viewer = checked
    if decision == "deny":
        return _redirect_to_client(
            request, auth, error="access_denied", error_description="The person declined to connect the application"
        )
    if decision != "allow":
        return error_page(request, 400, "Cannot connect this application", "Choose Allow or Deny.")
    caller = viewer.caller
    if account and account != viewer.tenant.id:  # the picker: the person's role in that account bounds the grant
        chosen = next((found for found in viewer.accounts if found.tenant_id == account), None)
        if chosen is None:
            return error_page(request, 403, "Not allowed", "You are not a member of that account.")
        caller = Caller.signed_in(
            tenant_id=chosen.tenant_id,
            user_id=viewer.user.id,
            name=viewer.user.email,
            role=chosen.role,
            client_ip=caller.client_ip,
            user_agent=caller.user_agent,
        )
    try:
        code = await oauth.consent(
            db,
            caller=caller,
            client=auth.client,
            scopes=scope or [],
            redirect_uri=auth.redirect_uri,
            code_challenge=auth.code_challenge,
            resource=auth.resource,
            confirm_destructive=confirm_destructive,
        )
    except OAuthError as exc:
        return _consent_page(request, viewer, auth, error=exc.description, confirm_destructive=confirm_destructive)
    return _redirect_to_client(request, auth, code=code)


def install_oauth(app: FastAPI, settings: ApiSettings) -> None:
    """The authorization server's routes, the per-address throttle of its one credential-less write (counted in
    the database, across replicas), and this process's client metadata document cache."""
    runtime: Runtime = app.state.runtime
    app.state.oauth_register_limiter = RateLimiter(runtime.engine, max_tracked=REGISTER_TRACKED)
    app.state.oauth_fetch_throttle = FailureThrottle(
        limit=settings.oauth_register_limit, window=settings.oauth_register_window
    )
    app.state.oauth_client_documents = ClientDocuments(
        own_urls=[settings.public_url, *settings.server_urls, *settings.replica_urls],
        allow_private=settings.oauth_allow_private_client_ids,
        allow_http=settings.oauth_allow_http_client_ids,
        domains=settings.oauth_client_domains,
    )
    app.include_router(router)
    app.include_router(pages)
