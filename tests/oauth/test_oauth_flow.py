"""The authorization code flow in-process over HTTP (SQLite and PostgreSQL): register, sign in, consent, exchange,
call /mcp/v1/connect, refresh with rotation, revoke; and every refusal the issue lists, each an RFC 6749/6750 error
with nothing issued."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from oauth.flow import REDIRECT, Flow, consent_form, new_flow, post_form, query_of, register
from vibexp.core.access import Role
from vibexp.core.audit.models import AuditEvent
from vibexp.core.oauth.models import OAuthGrant

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _tools(http: httpx.AsyncClient, path: str, token: str) -> httpx.Response:
    return await http.post(path, json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})


def _oauth_error(answer: httpx.Response, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "access_token" not in answer.text


@pytest.fixture
async def flow(client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]) -> Flow:
    return await new_flow(client, session_factory)


async def test_code_to_tokens_to_mcp_to_refresh(flow: Flow, session_factory: async_sessionmaker[AsyncSession]) -> None:
    page = await flow.authorize()
    assert page.status_code == 200
    assert "Test tool" in page.text and 'data-testid="unverified"' in page.text
    assert "127.0.0.1:33418" in page.text
    assert "form-action 'self' http://127.0.0.1:33418" in page.headers["content-security-policy"]

    answer = await flow.consent()
    assert answer.status_code == 303
    back = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(REDIRECT + "?")
    assert back["state"] == flow.state and back["iss"] == "http://127.0.0.1/oauth"
    assert back["code"].startswith("vibc_")

    issued = await flow.exchange(back["code"])
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    tokens = issued.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["access_token"].startswith("vibo_") and tokens["refresh_token"].startswith("vibr_")
    # Read-only preselected: a member's reads (content and the account), nothing that writes.
    assert set(tokens["scope"].split()) == {
        "prompts:read",
        "artifacts:read",
        "memories:read",
        "keys:read",
        "account:read",
    }

    listed = await _tools(flow.http, "/mcp/v1/connect", tokens["access_token"])
    assert listed.status_code == 200, listed.text
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert "list_prompts" in names and "create_prompt" not in names
    assert "x-ratelimit-limit" in listed.headers

    renewed = await flow.refresh(tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["refresh_token"] != tokens["refresh_token"] and fresh["access_token"] != tokens["access_token"]
    assert (await _tools(flow.http, "/mcp/v1/connect", fresh["access_token"])).status_code == 200
    assert (await _tools(flow.http, "/mcp/v1/connect", tokens["access_token"])).status_code == 401  # replaced

    async with session_factory() as db:
        actions = list(await db.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == flow.tenant_id)))
        grant = await db.scalar(select(OAuthGrant).where(OAuthGrant.tenant_id == flow.tenant_id))
    assert "oauth.client_registered" in actions and "oauth.granted" in actions
    assert grant is not None and grant.user_id == flow.person.user_id
    # Only hashes at rest.
    assert grant.access_hash != fresh["access_token"] and len(grant.access_hash or "") == 64


async def test_write_scopes_when_ticked(flow: Flow) -> None:
    tokens = await flow.tokens(scopes=["prompts:write"])
    assert tokens["scope"] == "prompts:write"
    listed = await _tools(flow.http, "/mcp/v1/connect", tokens["access_token"])
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert {"create_prompt", "list_prompts"} <= names and "list_memories" not in names


async def test_deny_redirects_access_denied_with_state_and_iss(flow: Flow) -> None:
    answer = await flow.consent(decision="deny")
    assert answer.status_code == 303
    back = query_of(answer.headers["location"])
    assert back == {
        "error": "access_denied",
        "error_description": back["error_description"],
        "state": flow.state,
        "iss": "http://127.0.0.1/oauth",
    }


# -- the authorization endpoint's refusals --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # no PKCE
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"resource": "http://127.0.0.1/mcp/v1/common"}, "invalid_target"),
        ({"resource": None}, "invalid_target"),
        ({"scope": "everything"}, "invalid_scope"),
    ],
)
async def test_bad_requests_go_back_to_the_client_with_the_error(
    flow: Flow, changes: dict[str, str | None], error: str
) -> None:
    answer = await flow.authorize(**changes)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith(REDIRECT + "?")
    back = query_of(answer.headers["location"])
    assert back["error"] == error and back["state"] == flow.state and back["iss"] == "http://127.0.0.1/oauth"
    assert "code" not in back


@pytest.mark.parametrize(
    "changes",
    [
        {"redirect_uri": "https://attacker.example/callback"},
        {"redirect_uri": "http://127.0.0.1:33418/other"},
        {"redirect_uri": "http://127.0.0.2.attacker.example/callback"},
        {"redirect_uri": None},
        {"client_id": "vibexp-client-unknown"},
        {"client_id": None},
    ],
)
async def test_an_untrusted_client_or_redirect_is_never_redirected_to(
    flow: Flow, changes: dict[str, str | None]
) -> None:
    answer = await flow.authorize(**changes, code_challenge=None)  # even with another problem on top
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert 'data-testid="error-page"' in answer.text


async def test_a_loopback_redirect_matches_on_any_port(flow: Flow) -> None:
    answer = await flow.authorize(redirect_uri="http://127.0.0.1:50123/callback")
    assert answer.status_code == 200, answer.text


async def test_not_signed_in_goes_to_sign_in_and_back(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    flow = await new_flow(client, session_factory, signed_in=False)
    answer = await flow.authorize()
    assert answer.status_code == 303
    target = answer.headers["location"]
    assert target.startswith("/login?next=%2Foauth%2Fauthorize%3F")
    login = await client.get(target)
    back = consent_form(login.text)
    nxt = dict(back)["next"]
    assert nxt.startswith("/oauth/authorize?") and "code_challenge=" in nxt
    signed = await client.post(
        "/login", data={"email": flow.person.email, "password": "correct horse battery", **dict(back)}
    )
    assert signed.status_code == 303 and signed.headers["location"] == nxt
    assert (await client.get(nxt)).status_code == 200


async def test_consent_without_csrf_is_refused(flow: Flow) -> None:
    page = await flow.authorize()
    form = [(name, value) for name, value in consent_form(page.text) if name != "csrf_token"]
    answer = await post_form(flow.http, "/oauth/authorize", [*form, ("decision", "allow")])
    assert answer.status_code == 403
    assert "location" not in answer.headers
    forged = [*form, ("csrf_token", "forged"), ("decision", "allow")]
    assert (await post_form(flow.http, "/oauth/authorize", forged)).status_code == 403


async def test_a_scope_beyond_the_role_is_refused(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    flow = await new_flow(client, session_factory, role=Role.viewer)
    page = await flow.authorize()
    assert 'value="prompts:write"' not in page.text  # a viewer is offered reads only
    answer = await flow.consent(scopes=["prompts:write"])
    assert answer.status_code == 403
    assert "location" not in answer.headers


# -- the token endpoint's refusals ----------------------------------------------------------------------------------
async def test_wrong_verifier_is_invalid_grant_and_the_code_still_works_once(flow: Flow) -> None:
    code = await flow.code()
    _oauth_error(await flow.exchange(code, code_verifier="x" * 50), 400, "invalid_grant")
    _oauth_error(await flow.exchange(code, code_verifier=None), 400, "invalid_request")
    assert (await flow.exchange(code)).status_code == 200


async def test_reused_code_is_refused_and_revokes_the_grant(flow: Flow) -> None:
    code = await flow.code()
    first = await flow.exchange(code)
    assert first.status_code == 200
    _oauth_error(await flow.exchange(code), 400, "invalid_grant")
    # The tokens the code issued are gone with the grant.
    assert (await _tools(flow.http, "/mcp/v1/connect", first.json()["access_token"])).status_code == 401
    _oauth_error(await flow.refresh(first.json()["refresh_token"]), 400, "invalid_grant")


async def test_mismatched_exchange_parameters_are_refused(flow: Flow) -> None:
    code = await flow.code()
    _oauth_error(await flow.exchange(code, redirect_uri="http://127.0.0.1:1/callback"), 400, "invalid_grant")
    _oauth_error(await flow.exchange(code, resource="http://127.0.0.1/mcp/v1/common"), 400, "invalid_target")
    other = await register(flow.http)
    _oauth_error(await flow.exchange(code, client_id=other), 400, "invalid_grant")
    _oauth_error(await flow.exchange(code, client_id="nobody"), 401, "invalid_client")
    _oauth_error(await flow.exchange(code, grant_type="password"), 400, "unsupported_grant_type")
    _oauth_error(await flow.exchange("vibc_" + "0" * 64), 400, "invalid_grant")
    assert (await flow.exchange(code)).status_code == 200  # none of those used the code up


async def test_expired_code_is_invalid_grant(flow: Flow, session_factory: async_sessionmaker[AsyncSession]) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from vibexp.core.clock import utcnow
    from vibexp.core.db import session_scope
    from vibexp.core.oauth.models import OAuthCode
    from vibexp.core.oauth.tokens import hash_secret

    code = await flow.code()
    async with session_scope(session_factory, write=True) as db:
        await db.execute(
            update(OAuthCode)
            .where(OAuthCode.code_hash == hash_secret(code))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    _oauth_error(await flow.exchange(code), 400, "invalid_grant")


async def test_reusing_a_rotated_refresh_token_revokes_the_grant(flow: Flow) -> None:
    tokens = await flow.tokens()
    renewed = (await flow.refresh(tokens["refresh_token"])).json()
    _oauth_error(await flow.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    # The whole grant went: the newest pair too.
    assert (await _tools(flow.http, "/mcp/v1/connect", renewed["access_token"])).status_code == 401
    _oauth_error(await flow.refresh(renewed["refresh_token"]), 400, "invalid_grant")


async def test_token_requests_must_be_forms(flow: Flow) -> None:
    answer = await flow.http.post("/oauth/token", json={"grant_type": "authorization_code"})
    _oauth_error(answer, 400, "invalid_request")
    _oauth_error(await flow.http.post("/oauth/token", data={"client_id": flow.client_id}), 400, "invalid_request")


async def test_revoke_always_answers_200_and_revokes(flow: Flow) -> None:
    tokens = await flow.tokens()
    assert (await flow.http.post("/oauth/revoke", data={"token": "vibo_" + "1" * 64})).status_code == 200
    assert (await flow.http.post("/oauth/revoke", data={"token": tokens["refresh_token"]})).status_code == 200
    assert (await _tools(flow.http, "/mcp/v1/connect", tokens["access_token"])).status_code == 401
    assert (await flow.http.post("/oauth/revoke", data={"token": tokens["refresh_token"]})).status_code == 200


# -- where tokens and keys work -------------------------------------------------------------------------------------
async def test_a_token_works_on_connect_only_and_a_key_on_connect_never(flow: Flow) -> None:
    tokens = await flow.tokens()
    access = tokens["access_token"]
    for path in ("/mcp/v1/common", "/api/v1/prompts"):
        answer = await flow.http.post(
            path, json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {access}"}
        )
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "invalid_api_key"
        assert "resource_metadata" not in answer.headers["www-authenticate"]  # key paths advertise no OAuth
    refused = await _tools(flow.http, "/mcp/v1/connect", flow.person.key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert refused.headers["www-authenticate"] == (
        'Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp/v1/connect", '
        'error="invalid_token"'
    )
    # The same key on /mcp/v1/common still works.
    assert (await _tools(flow.http, "/mcp/v1/common", flow.person.key)).status_code == 200


async def test_no_token_on_connect_points_at_the_metadata(client: httpx.AsyncClient) -> None:
    answer = await client.post("/mcp/v1/connect", json=INITIALIZE, headers=MCP_HEADERS)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        'Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp/v1/connect"'
    )
    assert answer.json()["error"]["code"] == "invalid_token"
