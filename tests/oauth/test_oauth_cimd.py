"""OAuth Client ID Metadata Documents, in-process over HTTP (SQLite and PostgreSQL): an https client_id served by a
real TLS server on loopback (a test CA made here, ``helpers.tls``) goes through authorize, consent, token and
``/mcp/v1/connect``; every refused URL or document is an error page at ``/oauth/authorize`` (never a redirect) and
``invalid_client`` at ``/oauth/token``, with nothing stored or issued.

The shared app's ``ClientDocuments`` is replaced per test by one that trusts the test CA and, where the test says
so, allows the loopback server (``VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS``'s effect); the settings' own wiring is
tested in ``test_oauth_cimd_settings.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import csrf_token
from helpers.receiver import Answer, Receiver
from helpers.tls import local_ca
from oauth.flow import REDIRECT, Flow, list_tools, new_flow, query_of
from vibexp.core.oauth import service
from vibexp.core.oauth.client_documents import ClientDocument, ClientDocuments
from vibexp.core.oauth.models import OAuthClient, OAuthGrant

DOCUMENT_PATH = "/oauth/client.json"
MakeDocuments = Callable[..., ClientDocuments]


def document(client_id: str, /, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "client_name": "Example Connector",
        "redirect_uris": [REDIRECT, "https://connector.example/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def served(body: Any, *, status: int = 200, headers: dict[str, str] | None = None, **options: Any) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status=status, headers={"Content-Type": "application/json", **(headers or {})}, body=raw, **options)


@pytest.fixture
def server() -> Iterator[Receiver]:
    with Receiver(tls=local_ca().server_context()) as receiver:
        yield receiver


@pytest.fixture
def use_documents(app: FastAPI) -> Iterator[MakeDocuments]:
    """Install a ``ClientDocuments`` of the test's making in the app (restored afterwards)."""
    original = app.state.oauth_client_documents

    def make(**options: Any) -> ClientDocuments:
        options = {"allow_private": True, "verify": local_ca().client_context(), "timeout": 1.0, **options}
        documents = ClientDocuments(own_urls=["http://127.0.0.1"], **options)
        app.state.oauth_client_documents = documents
        return documents

    yield make
    app.state.oauth_client_documents = original


@pytest.fixture
async def flow(client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]) -> Flow:
    return await new_flow(client, session_factory)


def url_of(server: Receiver, *, host: str = "localhost", path: str = DOCUMENT_PATH) -> str:
    return server.url(path, host=host)


async def _stored(factory: async_sessionmaker[AsyncSession], client_id: str) -> tuple[OAuthClient | None, int]:
    async with factory() as session:
        client = await session.get(OAuthClient, client_id)
        grants = await session.scalar(
            select(func.count()).select_from(OAuthGrant).where(OAuthGrant.client_id == client_id)
        )
        return client, int(grants or 0)


async def _refused_everywhere(
    flow: Flow, factory: async_sessionmaker[AsyncSession], client_id: str, message: str
) -> None:
    """The person sees ``message`` on an error page (no redirect, also when the consent form is posted), the
    client gets ``invalid_client`` at the token endpoint, and nothing is stored or issued."""
    cimd = dataclasses.replace(flow, client_id=client_id)
    page = await cimd.authorize()
    assert page.status_code == 400, page.text
    assert "location" not in page.headers
    assert "Cannot connect this application" in page.text
    assert message in html.unescape(page.text), html.unescape(page.text)
    form = {**cimd.params(), "decision": "allow", "scope": "prompts:read"}
    answer = await cimd.http.post("/oauth/authorize", data={**form, "csrf_token": await csrf_token(cimd.http, "/")})
    assert "location" not in answer.headers, answer.text
    if len(client_id) > 2048:  # the form's own length limit answers first
        assert answer.status_code == 422, answer.text
    else:
        assert answer.status_code == 400 and message in html.unescape(answer.text), answer.text
    token = await cimd.exchange("vibc_not-a-code")
    assert token.status_code == 401, token.text
    assert token.json()["error"] == "invalid_client"
    assert message in token.json()["error_description"]
    assert "access_token" not in token.text
    assert await _stored(factory, client_id) == (None, 0)


async def test_metadata_document_client_connects_end_to_end(
    flow: Flow,
    server: Receiver,
    use_documents: MakeDocuments,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    documents = use_documents()
    client_id = url_of(server)
    server.script(served(document(client_id), headers={"Cache-Control": "max-age=3600"}))
    cimd = dataclasses.replace(flow, client_id=client_id)

    page = await cimd.authorize()
    assert page.status_code == 200, page.text
    assert "Example Connector" in page.text
    assert 'data-testid="client-host"' in page.text and "<strong>localhost</strong>" in page.text
    assert 'data-testid="unverified"' not in page.text
    assert await _stored(session_factory, client_id) == (None, 0)  # the page only reads: stored at consent

    tokens = await cimd.tokens()
    listed = await list_tools(cimd.http, tokens["access_token"])
    assert listed.status_code == 200, listed.text
    assert listed.json()["result"]["tools"]

    stored, grants = await _stored(session_factory, client_id)
    assert stored is not None and grants == 1
    assert (stored.kind, stored.name) == ("metadata_document", "Example Connector")
    assert stored.redirect_uris == [REDIRECT, "https://connector.example/callback"]

    # Four requests named the client (two pages, the form, the token); the document was fetched once, over TLS,
    # with the URL's host name in Host (the connection went to the address the destination check resolved).
    assert len(server.received) == 1
    assert server.received[0].path == DOCUMENT_PATH
    assert server.received[0].headers["host"] == f"localhost:{server.port}"
    assert len(documents) == 1

    refreshed = await cimd.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text


async def test_a_changed_document_updates_the_stored_client(
    flow: Flow, server: Receiver, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    documents = use_documents()
    client_id = url_of(server)
    server.script(served(document(client_id)))
    cimd = dataclasses.replace(flow, client_id=client_id)
    await cimd.tokens()
    server.script(served(document(client_id, client_name="Renamed Connector", redirect_uris=[REDIRECT])))
    documents.forget(client_id)  # as when its max-age ran out
    assert (await cimd.tokens())["access_token"]
    stored, grants = await _stored(session_factory, client_id)
    assert stored is not None and stored.name == "Renamed Connector" and stored.redirect_uris == [REDIRECT]
    assert grants == 2


async def test_a_redirect_uri_the_document_does_not_list_is_an_error_page(
    flow: Flow, server: Receiver, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    use_documents()
    client_id = url_of(server)
    server.script(served(document(client_id, redirect_uris=["https://connector.example/callback"])))
    cimd = dataclasses.replace(flow, client_id=client_id)
    for redirect_uri in (REDIRECT, "https://connector.example/callback/other", "https://attacker.example/cb"):
        page = await cimd.authorize(redirect_uri=redirect_uri)
        assert page.status_code == 400 and "location" not in page.headers
        assert "did not register" in page.text
    assert await _stored(session_factory, client_id) == (None, 0)


BAD_DOCUMENTS: dict[str, tuple[Callable[[str], Answer], str]] = {
    "another client_id": (
        lambda url: served(document(url + "?other=1")),
        "names another client_id than the URL it was fetched from",
    ),
    "client_id missing": (lambda url: served(document(url, client_id=None)), "names another client_id"),
    "invalid JSON": (lambda url: served(b'{"client_id": '), "is not valid JSON"),
    "not an object": (lambda url: served([document(url)]), "is not a JSON object"),
    "a redirect": (
        lambda url: served(b"", status=302, headers={"Location": url + "2"}),
        "HTTP 302 (a redirect): redirects are not followed",
    ),
    "not found": (lambda url: served(b"{}", status=404), "answered HTTP 404"),
    "huge, declared": (
        lambda url: served(document(url, padding="x" * 100_000)),
        "is larger than 5 KiB",
    ),
    "huge, streamed without a length": (
        lambda url: served(document(url, padding="x" * 100_000), length=False),
        "is larger than 5 KiB",
    ),
    "compressed": (
        lambda url: served(document(url), headers={"Content-Encoding": "gzip"}),
        "must not be compressed",
    ),
    "just over 5 KiB": (lambda url: served(document(url, padding="x" * 5 * 1024)), "is larger than 5 KiB"),
    "private key material": (
        lambda url: served(document(url, jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]})),
        "must not contain private key material",
    ),
    "a client secret": (lambda url: served(document(url, client_secret="s3cret")), "must not contain a client secret"),
    "a confidential client": (
        lambda url: served(document(url, token_endpoint_auth_method="client_secret_basic")),
        'token_endpoint_auth_method must be "none"',
    ),
    "no redirect_uris": (lambda url: served(document(url, redirect_uris=[])), "redirect_uris must be a non-empty list"),
    "an http redirect_uri off loopback": (
        lambda url: served(document(url, redirect_uris=["http://connector.example/cb"])),
        "a redirect URI must use https",
    ),
    "an implicit-flow client": (
        lambda url: served(document(url, response_types=["token"])),
        'response_types may only list "code"',
    ),
    "slow": (lambda url: served(document(url), delay=2.5), "did not arrive within 1 s"),
}


@pytest.mark.parametrize("case", list(BAD_DOCUMENTS))
async def test_a_bad_document_is_refused_everywhere(
    case: str,
    flow: Flow,
    server: Receiver,
    use_documents: MakeDocuments,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    use_documents()
    client_id = url_of(server)
    answer, message = BAD_DOCUMENTS[case]
    server.script(answer(client_id))
    await _refused_everywhere(flow, session_factory, client_id, message)
    assert server.received, "the document was fetched (the refusal is about its answer)"


async def test_a_failed_fetch_is_not_cached(
    flow: Flow, server: Receiver, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    use_documents()
    client_id = url_of(server)
    server.script(served(b"{}", status=503), served(document(client_id)))
    cimd = dataclasses.replace(flow, client_id=client_id)
    assert (await cimd.authorize()).status_code == 400
    assert (await cimd.authorize()).status_code == 200


BAD_URLS: dict[str, tuple[str, str]] = {
    "no path": ("https://localhost:{port}/", "must have a path"),
    "a fragment": ("https://localhost:{port}/oauth/client.json#x", "must not have a fragment"),
    "user information": ("https://user:pw@localhost:{port}/oauth/client.json", "must not carry user information"),
    "a dot segment": ("https://localhost:{port}/oauth/../client.json", "must not have . or .. path segments"),
    "upper-case scheme": ("HTTPS://localhost:{port}/oauth/client.json", "scheme must be written in lower case"),
    "too long": ("https://localhost:{port}/" + "a" * 2100, "longer than 2048 characters"),
}


@pytest.mark.parametrize("case", list(BAD_URLS))
async def test_a_bad_client_id_url_is_refused_before_any_request(
    case: str,
    flow: Flow,
    server: Receiver,
    use_documents: MakeDocuments,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    use_documents()
    template, message = BAD_URLS[case]
    client_id = template.format(port=server.port)
    server.script(served(document(client_id)))
    await _refused_everywhere(flow, session_factory, client_id, message)
    assert server.received == []


async def test_an_http_client_id_needs_the_development_allowance(
    flow: Flow, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    with Receiver() as plain:  # a plain-HTTP document server
        client_id = url_of(plain)
        plain.script(served(document(client_id)))
        use_documents()
        await _refused_everywhere(flow, session_factory, client_id, "must use https")
        assert plain.received == []

        use_documents(allow_http=True)  # VIBEXP_OAUTH_ALLOW_HTTP_CLIENT_IDS
        page = await dataclasses.replace(flow, client_id=client_id).authorize()
        assert page.status_code == 200, page.text
        assert len(plain.received) == 1


@pytest.mark.parametrize(
    ("host", "allow_private", "message"),
    [
        ("127.0.0.1", False, "loopback or private address (allowed only with VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS)"),
        ("localhost", False, "loopback or private address (allowed only with VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS)"),
        ("2130706433", False, "loopback or private address"),  # 127.0.0.1 spelled as a number
        ("10.1.2.3", False, "loopback or private address"),
        ("192.168.0.10", False, "loopback or private address"),
        ("169.254.169.254", False, "link-local, multicast or reserved address"),
        ("169.254.169.254", True, "link-local, multicast or reserved address"),  # metadata: never, allowance or not
        ("[fe80::1]", True, "link-local, multicast or reserved address"),
    ],
)
async def test_private_and_metadata_addresses_are_never_fetched(
    host: str,
    allow_private: bool,
    message: str,
    flow: Flow,
    server: Receiver,
    use_documents: MakeDocuments,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    use_documents(allow_private=allow_private)
    client_id = url_of(server, host=host)
    server.script(served(document(client_id)))
    await _refused_everywhere(flow, session_factory, client_id, message)
    assert server.received == []


async def test_this_server_itself_is_never_fetched(
    flow: Flow, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    use_documents()  # even with the private allowance: own_urls names http://127.0.0.1
    await _refused_everywhere(
        flow, session_factory, "https://127.0.0.1:80/oauth/client.json", "URL points at this server"
    )


async def test_client_domains_accept_only_their_hosts(
    flow: Flow, server: Receiver, use_documents: MakeDocuments, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    use_documents(domains=["example.com", "claude.ai"])  # VIBEXP_OAUTH_CLIENT_DOMAINS
    client_id = url_of(server)
    server.script(served(document(client_id)))
    await _refused_everywhere(
        flow, session_factory, client_id, "accepts applications only from example.com, claude.ai; localhost is not one"
    )
    assert server.received == []
    # The flow's registered client (Dynamic Client Registration) is refused too while the domains are set.
    page = await flow.authorize()
    assert page.status_code == 400 and "registered applications are refused" in html.unescape(page.text)
    token = await flow.exchange("vibc_not-a-code")
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"

    use_documents(domains=["localhost"])
    page = await dataclasses.replace(flow, client_id=client_id).authorize()
    assert page.status_code == 200, page.text


async def test_an_ordinary_error_after_the_client_is_trusted_is_redirected(
    flow: Flow, server: Receiver, use_documents: MakeDocuments
) -> None:
    """Once the document vouches for the redirect URI, the client's own mistakes go back to it (RFC 6749 4.1.2.1)."""
    use_documents()
    client_id = url_of(server)
    server.script(served(document(client_id)))
    answer = await dataclasses.replace(flow, client_id=client_id).authorize(code_challenge_method="plain")
    assert answer.status_code in (302, 303)
    assert query_of(answer.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("cache_control", "kept"),
    [
        ("max-age=3600", 3600.0),
        ("public, max-age=600", 600.0),
        ("max-age=10", 300.0),  # below the floor: 5 minutes
        ("max-age=99999999", 86400.0),  # above the ceiling: 24 hours
        ("no-store", 300.0),
        (None, 300.0),
        ("max-age=soon", 300.0),
    ],
)
async def test_the_cache_keeps_a_document_for_its_bounded_max_age(
    cache_control: str | None, kept: float, server: Receiver
) -> None:
    now = [1000.0]
    documents = ClientDocuments(
        allow_private=True, verify=local_ca().client_context(), timeout=1.0, clock=lambda: now[0]
    )
    client_id = url_of(server)
    server.script(served(document(client_id), headers={"Cache-Control": cache_control} if cache_control else None))
    await documents.get(client_id)
    now[0] += kept - 1
    await documents.get(client_id)
    assert len(server.received) == 1
    now[0] += 2
    await documents.get(client_id)
    assert len(server.received) == 2


async def test_the_cache_holds_the_most_recently_used_documents_only(server: Receiver) -> None:
    documents = ClientDocuments(allow_private=True, verify=local_ca().client_context(), timeout=1.0, capacity=2)
    first, second, third = (url_of(server, path=f"/c{n}.json") for n in (1, 2, 3))
    for client_id in (first, second):
        server.script(served(document(client_id)))
        await documents.get(client_id)
    server.script(served(document(first)))
    await documents.get(first)  # a cache hit: first is now the most recent
    assert server.received == []
    server.script(served(document(third)))
    await documents.get(third)  # evicts second, the least recently used
    assert len(documents) == 2
    server.script(served(document(second)))
    await documents.get(second)
    assert len(server.received) == 1  # second was fetched again
    server.script(served(document(third)))
    await documents.get(third)
    assert server.received == []  # third stayed


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_replicas_storing_the_same_client_at_once_both_succeed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL only: a replica that finds no row, then meets the one another replica committed meanwhile, uses
    that row (its own insert is rolled back to a savepoint) instead of failing the person's consent. (SQLite: one
    process's writers take turns, ``vibexp.core.db.writing``, so two never insert at once.)"""
    client_id = "https://race.example/oauth/client.json"
    doc = ClientDocument(client_id=client_id, name="Racer", redirect_uris=(REDIRECT,), host="race.example")
    async with session_factory() as first, session_factory() as second:
        await first.execute(select(1))  # both transactions have begun
        await second.execute(select(1))
        second.add(OAuthClient(id=client_id, name="Racer", redirect_uris=[REDIRECT], kind="metadata_document"))
        await second.flush()  # inserted, not committed: the first's insert will wait on it
        storing = asyncio.create_task(service.store_document_client(first, doc, store=True))
        await asyncio.sleep(0.3)
        assert not storing.done()  # blocked on the second's uncommitted row
        await second.commit()
        client = await asyncio.wait_for(storing, 5)
        assert client.id == client_id and client.name == "Racer"
        await first.commit()
    stored, _ = await _stored(session_factory, client_id)
    assert stored is not None and stored.redirect_uris == [REDIRECT]
