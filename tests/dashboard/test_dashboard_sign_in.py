"""Sign-in, sessions and cookies, sign-out, throttling, and that passwords never work as API credentials."""

from __future__ import annotations

import base64

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, csrf_token, sign_in
from vibexp.api.app import create_app
from vibexp.api.dashboard.state import DashboardState
from vibexp.api.settings import ApiSettings
from vibexp.core.db import session_scope
from vibexp.core.users.attempts import SignInLimits
from vibexp.core.users.models import User


async def test_signed_out_visitor_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    response = await client.get("/settings/api-keys")
    assert response.headers["location"] == "/login?next=/settings/api-keys"
    page = await client.get("/login")
    assert page.status_code == 200
    posted = await client.post("/settings/api-keys", data={"name": "x", "csrf_token": csrf_of(page.text)})
    assert posted.status_code == 303 and posted.headers["location"] == "/login"  # a form target is no page to return to
    assert 'name="csrf_token"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_sign_in_sets_a_protected_session_cookie(client: httpx.AsyncClient, person: Person) -> None:
    response = await sign_in(client, person)
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("vibexp_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP unless VIBEXP_SECURE_COOKIES
    overview = await client.get("/")
    assert overview.status_code == 200
    assert person.email in overview.text
    assert "Tier" in overview.text


async def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(
    client: httpx.AsyncClient, person: Person
) -> None:
    token = await csrf_token(client, "/login?next=/usage")
    form = {"email": person.email, "password": person.password, "csrf_token": token}
    response = await client.post("/login", data={**form, "next": "/usage"})
    assert response.headers["location"] == "/usage"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        token = await csrf_token(client)
        response = await client.post("/login", data={**form, "csrf_token": token, "next": evil})
        assert response.headers["location"] == "/", evil


async def test_wrong_password_is_refused_without_a_session(client: httpx.AsyncClient, person: Person) -> None:
    token = await csrf_token(client)
    for email, password in ((person.email, "wrong-password!"), ("nobody@example.com", person.password)):
        response = await client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        assert response.status_code == 401
        assert "Wrong e-mail or password." in response.text
    assert (await client.get("/")).status_code == 303
    empty = await client.post("/login", data={"email": "", "password": "", "csrf_token": token})
    assert empty.status_code == 422
    assert "Enter your e-mail and password." in empty.text


async def test_sign_in_without_the_csrf_token_is_refused(client: httpx.AsyncClient, person: Person) -> None:
    await csrf_token(client)
    response = await client.post("/login", data={"email": person.email, "password": person.password})
    assert response.status_code == 403
    assert "nothing was changed" in response.text
    assert (await client.get("/")).status_code == 303


async def test_failed_sign_ins_are_throttled_per_email(client: httpx.AsyncClient, person: Person) -> None:
    token = await csrf_token(client)
    for _ in range(5):
        bad = await client.post("/login", data={"email": person.email, "password": "guess-guess", "csrf_token": token})
        assert bad.status_code == 401
    # Now even the right password is not checked until the window moves on.
    right = {"email": person.email.upper(), "password": person.password, "csrf_token": token}
    response = await client.post("/login", data=right)
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 900
    assert "Too many failed sign-ins" in response.text
    assert (await client.get("/")).status_code == 303


@pytest.mark.fresh_app  # changes its app's sign-in limits
async def test_failed_sign_ins_are_throttled_per_client_ip(
    app: FastAPI, client: httpx.AsyncClient, person: Person
) -> None:
    # The real throttle with a smaller per-IP budget (default 20), so the test does not hash 20 wrong passwords.
    app.state.dashboard.attempts.limits = SignInLimits(per_ip=4)
    token = await csrf_token(client)
    for i in range(4):  # spraying many accounts from one address
        bad = {"email": f"user{i}@example.com", "password": "guess-guess", "csrf_token": token}
        assert (await client.post("/login", data=bad)).status_code == 401
    right = {"email": person.email, "password": person.password, "csrf_token": token}
    assert (await client.post("/login", data=right)).status_code == 429


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    copied = dict(client.cookies)
    page = await client.get("/")
    response = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?signed_out=1"
    assert 'vibexp_session=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert (await client.get("/")).status_code == 303
    client.cookies.clear()
    client.cookies.update(copied)
    assert (await client.get("/")).status_code == 303  # the signed-out session is refused, not just forgotten


async def test_sign_out_needs_the_csrf_token(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    assert (await client.post("/logout")).status_code == 403
    assert (await client.get("/")).status_code == 200  # still signed in


async def test_a_tampered_cookie_is_ignored(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    value = client.cookies["vibexp_session"]
    body, tag = value.split(".")
    forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==").replace(b'"uid":"', b'"uid":"x')).decode()
    client.cookies.set("vibexp_session", f"{forged.rstrip('=')}.{tag}")
    assert (await client.get("/")).status_code == 303
    client.cookies.set("vibexp_session", "garbage")
    assert (await client.get("/")).status_code == 303


async def test_secure_cookies_behind_https(settings: ApiSettings, person: Person) -> None:
    app: FastAPI = create_app(settings.model_copy(update={"secure_cookies": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as https:
            response = await sign_in(https, person)
            cookie = response.headers["set-cookie"]
            assert cookie.startswith("__Host-vibexp_session=")
            assert "Secure" in cookie and "HttpOnly" in cookie
            assert (await https.get("/")).status_code == 200
        assert isinstance(app.state.dashboard, DashboardState)


async def test_the_password_never_authenticates_the_api(client: httpx.AsyncClient, person: Person) -> None:
    basic = base64.b64encode(f"{person.email}:{person.password}".encode()).decode()
    attempts = [
        {"Authorization": f"Bearer {person.password}"},
        {"Authorization": f"Basic {basic}"},
        {},
    ]
    await sign_in(client, person)  # a dashboard session cookie is no API credential either
    for headers in attempts:
        for path in ("/api/v1/prompts", "/mcp/v1/common"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"]["code"] == "invalid_api_key"


async def test_a_new_password_ends_existing_sessions(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    assert (await client.get("/")).status_code == 200
    async with session_scope(session_factory) as session:
        user = await session.scalar(select(User).where(User.email == person.email))
        assert user is not None
        user.password_hash = PasswordHasher().hash("a-brand-new-password")
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
