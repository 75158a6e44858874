"""First-run setup: the one-time link from the server log creates the first account and user (``first_run``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from vibexp.api.dashboard.deps import BrowserSession, CsrfChecked
from vibexp.api.dashboard.errors import DashboardRoute, error_page
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.core.errors import AlreadyExists, InvalidInput
from vibexp.core.tenants.models import Tier
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import usecases as users
from vibexp.core.users.first_run import FirstRunDone, claim_first_run

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)

DONE = (
    "Another server process finished the first-run setup a moment ago, so the first account exists now and nothing "
    "was created from this form. Sign in with that account, or ask the person who set it up to add you."
)
INVALID = (
    "This setup link is not valid (any more). It works once, and only while no account exists; if an account "
    "exists, sign in. Otherwise restart the server and use the new link it prints."
)


@router.get("/setup")
async def setup_page(request: Request, db: SessionDep, session: BrowserSession, token: str | None = None) -> Response:
    setup = dashboard_state(request).setup
    if not await setup.needed(db) or not setup.accepts(token):
        return error_page(request, 404, "Setup link not valid", INVALID)
    return render(request, "setup.html", {"token": token, "values": {}, "error": None})


@router.post("/setup", dependencies=[CsrfChecked])
async def setup_submit(
    request: Request,
    db: SessionDep,
    token: Annotated[str, Form(max_length=200)] = "",
    account: Annotated[str, Form(max_length=63)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_again: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    state = dashboard_state(request)
    setup = state.setup
    values = {"account": account, "email": email}
    async with setup.lock:  # two submissions in this process: the first one wins
        if not await setup.needed(db) or not setup.accepts(token):
            return error_page(request, 404, "Setup link not valid", INVALID)
        if password != password_again:
            context = {"token": token, "values": values, "error": "The two passwords differ."}
            return render(request, "setup.html", context, status=422)
        try:
            data = TenantCreate(name=account.strip().lower(), tier=Tier.pro)  # a bad name claims nothing
            # Claimed in the account's own transaction: one setup per database, whichever replica serves it.
            await claim_first_run(db)
            user = await users.set_up_first_account(db, account=data, email=email, password=password)
            await db.commit()  # before the token dies: a failed commit leaves the link usable
        except FirstRunDone:
            await db.rollback()
            setup.consume()  # setup is over everywhere: this process's link dies too
            return error_page(request, 409, "Setup is already done", DONE)
        except ValidationError:
            await db.rollback()
            message = "Account name: lowercase letters, digits and '-', starting and ending with a letter or digit."
            return render(request, "setup.html", {"token": token, "values": values, "error": message}, status=422)
        except (InvalidInput, AlreadyExists) as exc:
            await db.rollback()
            return render(request, "setup.html", {"token": token, "values": values, "error": exc.message}, status=422)
        setup.consume()
    new = SessionData.for_user(user_id=user.id, fingerprint=password_fingerprint(user.password_hash))
    response = redirect(request, "/")
    state.signer.set_cookie(response, new)
    return response
