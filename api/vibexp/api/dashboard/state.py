"""The dashboard's per-app state: the cookie signer and the sign-in throttle (kept on ``app.state.dashboard``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from vibexp.api.dashboard.sessions import SessionSigner
from vibexp.api.dashboard.throttle import SignInThrottle
from vibexp.api.settings import ApiSettings

__all__ = ["DashboardState", "dashboard_state"]


@dataclass
class DashboardState:
    signer: SessionSigner
    throttle: SignInThrottle = field(default_factory=SignInThrottle)

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> DashboardState:
        return cls(signer=SessionSigner(settings.secret_key, secure=settings.secure_cookies))


def dashboard_state(request: Request) -> DashboardState:
    state = request.app.state.dashboard
    assert isinstance(state, DashboardState)
    return state
