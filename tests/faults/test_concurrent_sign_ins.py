"""Concurrent sign-ins on two replicas: the attempt is reserved in the database before any password is checked.

Two apps (two replicas: their own runtime, cookie signer and deny-list) share one database. 15 concurrent wrong
passwords for one e-mail, spread over both, may check at most the configured number of passwords (5): each check
is an argon2 verification, counted here. Signing out on one replica ends the session on the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dashboard.pages import csrf_of, csrf_token, make_person, sign_in
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.users import service as users

pytestmark = pytest.mark.slow

ATTEMPTS = 15


@asynccontextmanager
async def _replica(database_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(ApiSettings(database_url=database_url, environment="test", auto_migrate=False))
    async with app.router.lifespan_context(app):
        yield app


def _browser(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts argon2 verifications (the real ones still run)."""
    calls: list[int] = []
    real = users._hasher

    class Counting:
        def verify(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return real.verify(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(users, "_hasher", Counting())
    return calls


async def test_concurrent_wrong_passwords_check_at_most_the_budget(database_url: str, verifications: list[int]) -> None:
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(_replica(database_url)) for _ in range(2)]
        person = await make_person(replicas[0].state.runtime.session_factory)
        browsers = [
            await stack.enter_async_context(_browser(replicas[i % 2], f"192.0.2.{i + 1}")) for i in range(ATTEMPTS)
        ]
        tokens = [await csrf_token(browser) for browser in browsers]
        verifications.clear()
        gate = asyncio.Event()

        async def attempt(i: int) -> int:
            await gate.wait()
            data = {"email": person.email, "password": f"wrong-{i}", "csrf_token": tokens[i]}
            return (await browsers[i].post("/login", data=data)).status_code

        tasks = [asyncio.create_task(attempt(i)) for i in range(ATTEMPTS)]
        await asyncio.sleep(0.05)
        gate.set()
        statuses = await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        print(f"concurrent sign-ins: {statuses.count(401)} x 401, {statuses.count(429)} x 429, "
              f"{len(verifications)} argon2 verifications")  # fmt: skip
        assert statuses.count(401) == 5 and statuses.count(429) == ATTEMPTS - 5, statuses
        assert len(verifications) <= 5
        # The right password is refused too until the window moves on, on either replica.
        for browser in browsers[:2]:
            right = {"email": person.email, "password": person.password, "csrf_token": await csrf_token(browser)}
            assert (await browser.post("/login", data=right)).status_code == 429


async def test_sign_out_on_one_replica_ends_the_session_on_the_other(database_url: str) -> None:
    async with AsyncExitStack() as stack:
        first, second = [await stack.enter_async_context(_replica(database_url)) for _ in range(2)]
        person = await make_person(first.state.runtime.session_factory)
        on_first = await stack.enter_async_context(_browser(first, "192.0.2.100"))
        on_second = await stack.enter_async_context(_browser(second, "192.0.2.100"))
        await sign_in(on_first, person)
        on_second.cookies.update(dict(on_first.cookies))  # a load balancer sends the same browser elsewhere
        assert (await on_second.get("/settings/api-keys")).status_code == 200
        page = await on_first.get("/")
        assert (await on_first.post("/logout", data={"csrf_token": csrf_of(page.text)})).status_code == 303
        refused = await on_second.get("/settings/api-keys")  # the copied cookie, on the replica that did not sign out
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
