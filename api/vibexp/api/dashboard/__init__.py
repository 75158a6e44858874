"""The web dashboard: sign in, Settings → API Keys, usage, and the account's prompts, artifacts and memories.

Server-rendered pages (Jinja2) on the core services, served by the same FastAPI app as the API; every asset comes
from this package's ``static/`` folder (no CDN). Sessions are signed cookies (see ``sessions``); every POST checks
a CSRF token (see ``deps``); sign-in attempts are reserved in the database before a password is checked
(``vibexp.core.users.attempts``). Passwords only open dashboard sessions: ``/api/v1`` and ``/mcp`` accept API keys
and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from vibexp.api.dashboard.errors import install_error_pages
from vibexp.api.dashboard.first_run import setup_lifespan
from vibexp.api.dashboard.routes import router
from vibexp.api.dashboard.state import DashboardState
from vibexp.api.settings import ApiSettings

__all__ = ["STATIC_DIR", "install_dashboard"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


def install_dashboard(app: FastAPI, settings: ApiSettings) -> None:
    """Add the dashboard's pages at ``/`` and its assets at ``/static``."""
    app.state.dashboard = state = DashboardState.from_settings(settings, engine=app.state.runtime.engine)
    app.state.lifespan_hooks.append(
        setup_lifespan(
            state.setup,
            app.state.runtime.session_factory,
            base_url=settings.public_url,
            enabled=settings.first_run_setup,
        )
    )
    app.include_router(router)
    install_error_pages(app)  # after the API's handlers: a signed-in 404/405 is a page, the rest stays JSON
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
