"""Typed dependencies: the request's unit of work and the ``Caller`` (built once, at the REST edge).

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, which costs more than
the work they do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.request_state import request_state
from vibexp.core.access import Caller
from vibexp.core.db import session_scope
from vibexp.core.errors import AuthFailure, InvalidApiKey
from vibexp.core.runtime import Runtime

__all__ = ["CurrentCaller", "RuntimeDep", "SessionDep", "bearer_scheme", "get_runtime"]


class _AuthenticatedBearer(HTTPBearer):
    """The bearer scheme in OpenAPI, and the ``Caller`` of a request that ``ApiKeyAuthMiddleware`` authenticated.

    One dependency does both: as an ``HTTPBearer`` FastAPI documents it as the operation's security; called, it
    builds the Caller from the principal the middleware left in the scope (the header was parsed and the key
    verified there already) and the client address the front door resolved: one dependency per
    request, as before there was a Caller, and about a microsecond of work (``Principal.caller``).
    """

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        state = request_state(request.scope)
        if state is None:  # only if a route were mounted outside the middleware's prefixes
            raise InvalidApiKey("Missing API key", reason=AuthFailure.missing)
        return state.caller()


#: Declares the bearer scheme in OpenAPI; the key itself is checked by ApiKeyAuthMiddleware before routing.
bearer_scheme = _AuthenticatedBearer(
    scheme_name="HTTPBearer", auto_error=False, description="An API key: `Authorization: Bearer vib_...`"
)

#: Who calls: the key's account, scopes and audit actor, from this request's address and user agent.
CurrentCaller = Annotated[Caller, Depends(bearer_scheme)]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


#: Methods that never write: their sessions need not queue behind writers (``vibexp.core.db.writing``).
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The unit of work of one request (``vibexp.core.db.session_scope``): a write unless GET, HEAD or OPTIONS."""
    runtime: Runtime = request.app.state.runtime
    async with session_scope(runtime.session_factory, write=request.method not in _READ_METHODS) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is an error response, not a lost write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
