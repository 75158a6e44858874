"""Typed dependencies: the request's database session (committed in one place) and the authenticated caller.

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, which costs more than
the work they do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.request_state import request_state
from vibexp.core.audit.service import Actor, ActorType
from vibexp.core.db import writing
from vibexp.core.errors import AuthFailure, InvalidApiKey
from vibexp.core.keys.verifier import Principal
from vibexp.core.runtime import Runtime

__all__ = ["CurrentActor", "CurrentPrincipal", "RuntimeDep", "SessionDep", "bearer_scheme", "get_runtime", "key_actor"]


class _AuthenticatedBearer(HTTPBearer):
    """The bearer scheme in OpenAPI, and the caller that ``ApiKeyAuthMiddleware`` authenticated before routing.

    One dependency does both: as an ``HTTPBearer`` FastAPI documents it as the operation's security; called, it
    only reads the principal the middleware left in the scope (the header was parsed and the key verified there
    already, so parsing it again would be wasted work on every request).
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        state = request_state(request.scope)
        if state is None or state.principal is None:  # only if a route were mounted outside the middleware's prefixes
            raise InvalidApiKey("Missing API key", reason=AuthFailure.missing)
        return state.principal


#: Declares the bearer scheme in OpenAPI; the key itself is checked by ApiKeyAuthMiddleware before routing.
bearer_scheme = _AuthenticatedBearer(
    scheme_name="HTTPBearer", auto_error=False, description="An API key: `Authorization: Bearer vib_...`"
)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


#: Methods that never write: their sessions need not queue behind writers (``vibexp.core.db.writing``).
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The unit of work of one request: the only place REST requests commit or roll back."""
    runtime: Runtime = request.app.state.runtime
    turn = nullcontext() if request.method in _READ_METHODS else writing(runtime.engine)
    async with turn, runtime.session_factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is an error response, not a lost write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


CurrentPrincipal = Annotated[Principal, Depends(bearer_scheme)]


def key_actor(principal: Principal, *, client_ip: str | None, user_agent: str | None) -> Actor:
    """The audit trail's actor for a request made with an API key (REST and MCP)."""
    return Actor(
        ActorType.api_key,
        id=principal.key_id,
        name=f"{principal.key_name} ({principal.key_prefix}…)",
        client_ip=client_ip,
        user_agent=user_agent,
    )


async def get_actor(request: Request, principal: CurrentPrincipal) -> Actor:
    state = request_state(request.scope)
    client_ip = state.client_ip if state is not None else None
    return key_actor(principal, client_ip=client_ip, user_agent=request.headers.get("user-agent"))


#: The caller as the audit trail names it: the key, the client address and the user agent.
CurrentActor = Annotated[Actor, Depends(get_actor)]
