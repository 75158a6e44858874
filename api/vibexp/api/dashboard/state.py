"""The dashboard's per-app state (kept on ``app.state.dashboard``): the cookie signer, the sign-in attempt buckets
(in the database, shared by every replica) and the sealer for one-time key flashes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from vibexp.api.dashboard.first_run import FirstRunSetup
from vibexp.api.dashboard.sessions import SessionSigner
from vibexp.api.settings import ApiSettings
from vibexp.core.secret_box import Sealer
from vibexp.core.users.attempts import SignInAttempts, SignInLimits

__all__ = ["DashboardState", "dashboard_state"]


@dataclass
class DashboardState:
    signer: SessionSigner
    attempts: SignInAttempts
    sealer: Sealer
    setup: FirstRunSetup = field(default_factory=FirstRunSetup)

    @classmethod
    def from_settings(cls, settings: ApiSettings, *, engine: AsyncEngine) -> DashboardState:
        limits = SignInLimits(
            per_email=settings.sign_in_per_email, per_ip=settings.sign_in_per_ip, window=settings.sign_in_window
        )
        return cls(
            signer=SessionSigner(settings.secret_key, secure=settings.secure_cookies),
            attempts=SignInAttempts(engine, limits),
            sealer=Sealer(settings.secret_key),
        )


def dashboard_state(request: Request) -> DashboardState:
    state = request.app.state.dashboard
    assert isinstance(state, DashboardState)
    return state
