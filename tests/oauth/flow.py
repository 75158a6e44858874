"""Helpers for the OAuth tests: a PKCE pair, a registered client, a person signed in to the dashboard, the consent
form answered with their session, and the token exchange; each step over HTTP, as a client and a browser do it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import csrf_of
from helpers.factories import make_account
from helpers.teams import PASSWORD, Person, make_person
from vibexp.core.access import Role

__all__ = [
    "LOCAL_BASE",
    "REDIRECT",
    "Connect",
    "Flow",
    "Pkce",
    "consent_form",
    "list_tools",
    "new_flow",
    "person_flow",
    "post_form",
    "query_of",
    "sign_in",
]

#: The in-process app's address in the OAuth tests: a Host the MCP transport's DNS-rebinding check allows.
LOCAL_BASE = "http://127.0.0.1"
#: A native client's loopback redirect, as the MCP SDK and Claude Code register it.
REDIRECT = "http://127.0.0.1:33418/callback"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def query_of(url: str) -> dict[str, str]:
    """A redirect's query parameters (each once)."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    page = await http.get("/login")
    answer = await http.post("/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text


@dataclass
class Flow:
    """One client, one person and one authorization request's parameters over one HTTP client (its cookies are the
    person's browser)."""

    http: httpx.AsyncClient
    base: str
    person: Person
    tenant_id: str
    client_id: str
    pkce: Pkce = field(default_factory=Pkce.new)
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redirect_uri: str = REDIRECT

    @property
    def resource(self) -> str:
        return self.base + "/mcp/v1/connect"

    def params(self, **changes: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.pkce.challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
        }
        params.update(changes)
        return {name: value for name, value in params.items() if value is not None}

    async def authorize(self, **changes: str | None) -> httpx.Response:
        return await self.http.get("/oauth/authorize", params=self.params(**changes))

    async def consent(
        self, *, scopes: list[str] | None = None, decision: str = "allow", confirm_destructive: bool = False
    ) -> httpx.Response:
        """Open the consent page signed in and answer it (its preselected scopes unless ``scopes``; "Ask me before
        deleting or replacing anything" as ``confirm_destructive`` says, whatever the page preselects)."""
        page = await self.authorize()
        assert page.status_code == 200, page.text
        form = consent_form(page.text)
        if scopes is not None:
            form = [(name, value) for name, value in form if name != "scope"] + [("scope", s) for s in scopes]
        if confirm_destructive:
            form.append(("confirm_destructive", "true"))
        return await post_form(self.http, "/oauth/authorize", [*form, ("decision", decision)])

    async def code(self, *, scopes: list[str] | None = None, confirm_destructive: bool = False) -> str:
        answer = await self.consent(scopes=scopes, confirm_destructive=confirm_destructive)
        assert answer.status_code == 303, answer.text
        query = query_of(answer.headers["location"])
        assert query["state"] == self.state
        return query["code"]

    async def exchange(self, code: str, **changes: str | None) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": self.pkce.verifier,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "resource": self.resource,
        }
        form.update(changes)
        return await self.http.post("/oauth/token", data={k: v for k, v in form.items() if v is not None})

    async def tokens(self, *, scopes: list[str] | None = None, confirm_destructive: bool = False) -> dict[str, str]:
        answer = await self.exchange(await self.code(scopes=scopes, confirm_destructive=confirm_destructive))
        assert answer.status_code == 200, answer.text
        body: dict[str, str] = answer.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id}
        return await self.http.post("/oauth/token", data=form)


async def list_tools(http: httpx.AsyncClient, token: str, path: str = "/mcp/v1/connect") -> httpx.Response:
    """MCP ``tools/list`` with ``token`` as the bearer."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    return await http.post(path, json=body, headers=headers)


async def post_form(http: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    """A form with repeated fields (the scope boxes), as a browser encodes it."""
    body = urlencode(pairs)
    return await http.post(path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})


def consent_form(html: str) -> list[tuple[str, str]]:
    """The consent form's hidden fields and its checked scope boxes, as the browser would send them (not the
    "Ask me before deleting" box: ``Flow.consent`` adds that as its caller says)."""
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    checked = re.findall(r'<input type="checkbox" name="scope" value="([^"]+)"[^>]* checked>', html)
    unescaped = [
        (name, value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")) for name, value in fields
    ]
    return [*unescaped, *(("scope", value) for value in checked)]


async def register(http: httpx.AsyncClient, redirect_uris: list[str] | None = None, name: str = "Test tool") -> str:
    answer = await http.post(
        "/oauth/register", json={"client_name": name, "redirect_uris": redirect_uris or [REDIRECT]}
    )
    assert answer.status_code == 201, answer.text
    client_id: str = answer.json()["client_id"]
    return client_id


async def new_flow(
    http: httpx.AsyncClient,
    factory: async_sessionmaker[AsyncSession],
    *,
    base: str = LOCAL_BASE,
    role: Role = Role.member,
    signed_in: bool = True,
) -> Flow:
    """A fresh account with a person of ``role`` (signed in on ``http``) and a newly registered client."""
    account = await make_account(factory)
    return await person_flow(http, factory, tenant_id=account.tenant.id, base=base, role=role, signed_in=signed_in)


async def person_flow(
    http: httpx.AsyncClient,
    factory: async_sessionmaker[AsyncSession],
    *,
    tenant_id: str,
    base: str = LOCAL_BASE,
    role: Role = Role.member,
    signed_in: bool = True,
    client_id: str | None = None,
) -> Flow:
    """A new person of ``role`` in the account ``tenant_id`` (signed in on ``http``: their browser) and a client,
    ``client_id`` or one registered now."""
    person = await make_person(factory, tenant_id=tenant_id, role=role)
    if signed_in:
        await sign_in(http, person.email)
    return Flow(http, base, person, tenant_id, client_id or await register(http))


#: The ``oauth_person`` fixture (``helpers/fixtures.py``): ``oauth_person(role, client_id=None)`` is a new person of
#: ``role`` in the test's account, signed in on a browser of their own (``Flow.http``), and a client (``client_id``,
#: or one registered now).
Connect = Callable[..., Awaitable[Flow]]
