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
from vibexp.core.db import writing
from vibexp.core.errors import InvalidApiKey
from vibexp.core.keys.verifier import Principal
from vibexp.core.runtime import Runtime

__all__ = ["CurrentPrincipal", "RuntimeDep", "SessionDep", "bearer_scheme", "get_runtime"]


class _AuthenticatedBearer(HTTPBearer):
    """The bearer scheme in OpenAPI, and the caller that ``ApiKeyAuthMiddleware`` authenticated before routing.

    One dependency does both: as an ``HTTPBearer`` FastAPI documents it as the operation's security; called, it
    only reads the principal the middleware left in the scope (the header was parsed and the key verified there
    already, so parsing it again would be wasted work on every request).
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        state = request_state(request.scope)
        if state is None or state.principal is None:  # only if a route were mounted outside the middleware's prefixes
            raise InvalidApiKey("Missing API key", reason="missing")
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
