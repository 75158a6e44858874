"""An application's authorization request driven in Chromium, shared by the OAuth browser tests: the request's
parameters, the client's loopback callback (a Playwright route that records where the browser was sent), the
dashboard sign-in on the way to the consent page, and the token exchange of the code that came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from playwright.async_api import BrowserContext, Page, Route, expect

from browser.conftest import DashboardUser
from oauth.flow import REDIRECT, Pkce, query_of

__all__ = ["BrowserAuthorization"]


@dataclass
class BrowserAuthorization:
    """One client's authorization request against ``base``, answered in a browser page."""

    base: str
    client_id: str
    state: str
    scope: str
    pkce: Pkce = field(default_factory=Pkce.new)
    #: Every URL the browser was sent to at the client's redirect URI, in order.
    arrived: list[str] = field(default_factory=list)

    def params(self, **changes: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "state": self.state,
            "code_challenge": self.pkce.challenge,
            "code_challenge_method": "S256",
            "resource": f"{self.base}/mcp/v1/connect",
            "scope": self.scope,
            **changes,
        }

    def url(self, **changes: str) -> str:
        return f"/oauth/authorize?{urlencode(self.params(**changes))}"

    async def open_signed_out(self, context: BrowserContext, user: DashboardUser) -> Page:
        """A new page at the authorization URL, through the dashboard's sign-in form as ``user``; the client's
        callback answers a small "Done" page and records the URL."""
        page = await context.new_page()

        async def client_callback(route: Route) -> None:  # the client's loopback listener
            self.arrived.append(route.request.url)
            await route.fulfill(status=200, content_type="text/html", body="<title>Done</title><p>You can close this.")

        await page.route(f"{REDIRECT}*", client_callback)
        await page.goto(self.url())
        await expect(page.get_by_role("heading", name="Sign in to VibeXP")).to_be_visible()
        await page.get_by_label("E-mail").fill(user.email)
        await page.get_by_label("Password").fill(user.password)
        await page.get_by_role("button", name="Sign in").click()
        return page

    def answer(self) -> dict[str, str]:
        """The query the client's callback received (once)."""
        assert len(self.arrived) == 1, self.arrived
        return query_of(self.arrived[0])

    async def exchange(self, http: httpx.AsyncClient) -> httpx.Response:
        """The token endpoint's answer for the code that came back."""
        return await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": self.answer()["code"],
                "code_verifier": self.pkce.verifier,
                "redirect_uri": REDIRECT,
                "client_id": self.client_id,
                "resource": f"{self.base}/mcp/v1/connect",
            },
        )
