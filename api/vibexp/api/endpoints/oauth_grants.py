"""Connected apps over REST: ``GET /api/v1/oauth/grants`` (newest first), ``GET /api/v1/oauth/grants/{id}/usage``
(as a key's usage), ``PATCH /api/v1/oauth/grants/{id}`` (``confirm_destructive``) and
``DELETE /api/v1/oauth/grants/{id}``.

A grant is a credential like a personal key: ``keys:read`` lists, ``keys:write`` changes and revokes, checked in
``vibexp.core.oauth.usecases``; a member or viewer sees and revokes only their own (another's is 404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from vibexp.api.deps import CurrentCaller, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.endpoints.keys import OWNER_FILTER
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.schemas import PageRead
from vibexp.core.oauth import usecases as oauth
from vibexp.core.oauth.usecases import GrantView
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, PageCursor, PageSize
from vibexp.core.usage import usecases as usage
from vibexp.core.usage.schemas import GrantUsageRead

__all__ = ["GrantRead", "GrantUpdate", "oauth_grants_router"]

oauth_grants_router = APIRouter(prefix=f"{API_PREFIX}/oauth/grants", tags=["oauth"], responses=ERROR_RESPONSES)


_CONFIRM = (
    "Destructive MCP tools (delete_*, overwriting writes) ask the person first, by form elicitation; a client that "
    "cannot ask does not see them"
)


class GrantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm_destructive: bool | None = Field(default=None, description=_CONFIRM + ". Omitted: unchanged")


class GrantClientRead(BaseModel):
    client_id: str
    name: str = Field(description="The name the client gave itself (for a registered client: unverified)")
    kind: str = Field(description="metadata_document (client_id is its https URL) or registered (RFC 7591)")
    redirect_host: str = Field(description="The host the client's redirect URI points at")


class GrantOwnerRead(BaseModel):
    user_id: str
    email: str


class GrantRead(BaseModel):
    id: str
    client: GrantClientRead
    owner: GrantOwnerRead = Field(description="The person who allowed the app: it acts within their role")
    scopes: list[str]
    confirm_destructive: bool = Field(description=_CONFIRM)
    created_at: datetime
    last_used_at: datetime | None
    request_count: int
    revoked_at: datetime | None
    revoked_reason: str | None = Field(
        description="Why it was revoked: revoked (by a person), member_removed, client (RFC 7009), code_reused, "
        "refresh_reused"
    )

    @classmethod
    def of(cls, view: GrantView) -> GrantRead:
        grant, client = view.grant, view.client
        return cls(
            id=grant.id,
            client=GrantClientRead(
                client_id=client.id, name=client.name, kind=client.kind, redirect_host=view.redirect_host
            ),
            owner=GrantOwnerRead(user_id=grant.user_id, email=view.owner_email),
            scopes=list(grant.scopes),
            confirm_destructive=grant.confirm_destructive,
            created_at=grant.created_at,
            last_used_at=grant.last_used_at,
            request_count=grant.request_count,
            revoked_at=grant.revoked_at,
            revoked_reason=grant.revoked_reason,
        )


_ACTIVE = {"active": True, "revoked": False, "all": None}


@oauth_grants_router.get(
    "",
    response_model=PageRead[GrantRead],
    summary="List connected apps (OAuth grants), newest first",
    description="Needs `keys:read`. A member's or viewer's answer is their own grants; admins and owners see "
    "everyone's (narrow with `owner`).",
)
async def list_grants(
    session: SessionDep,
    caller: CurrentCaller,
    owner: Annotated[str | None, Query(max_length=254, description=OWNER_FILTER)] = None,
    status_filter: Annotated[
        Literal["active", "revoked", "all"], Query(alias="status", description="active, revoked or all")
    ] = "all",
    limit: Annotated[PageSize, Query(description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[PageCursor | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    page = await oauth.list_grants(
        session, caller=caller, owner=owner, active=_ACTIVE[status_filter], limit=limit, cursor=cursor
    )
    return {"items": [GrantRead.of(view) for view in page.items], "next_cursor": page.next_cursor}


@oauth_grants_router.get(
    "/{grant_id}/usage",
    response_model=GrantUsageRead,
    summary="Usage of a connected app (OAuth grant)",
    description="Needs `keys:read`. As an API key's usage: requests, clients (tool types), countries and the most "
    "recent actions (MCP tool calls and reads). Another person's grant (for a member or viewer), another account's, "
    "and an id that is no grant's are 404.",
)
async def get_grant_usage(
    session: SessionDep,
    caller: CurrentCaller,
    grant_id: Annotated[str, Path(max_length=36)],
    limit: Annotated[int, Query(ge=1, le=500, description="How many recent actions")] = 50,
) -> Any:
    return await usage.of_grant(session, caller=caller, grant_id=grant_id, limit=limit)


@oauth_grants_router.patch(
    "/{grant_id}",
    response_model=GrantRead,
    summary="Change a connected app's confirm_destructive",
    description="Needs `keys:write`. Only the fields sent change. Turning `confirm_destructive` on or off is audited "
    "(`oauth.updated`) and applies on every replica within a second. Another person's grant (for a member or "
    "viewer), another account's, and an id that is no grant's are 404.",
    responses={409: ERROR_RESPONSES[404] | {"description": "The grant was revoked (code grant_revoked)"}},
)
async def update_grant(
    session: SessionDep, caller: CurrentCaller, body: GrantUpdate, grant_id: Annotated[str, Path(max_length=36)]
) -> Any:
    view = await oauth.update_grant(
        session, caller=caller, grant_id=grant_id, confirm_destructive=body.confirm_destructive
    )
    return GrantRead.of(view)


@oauth_grants_router.delete(
    "/{grant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a connected app: its tokens are refused on every replica within a second",
    description="Needs `keys:write`. Audited `oauth.revoked` (`reason: revoked`). Another person's grant (for a "
    "member or viewer), another account's, and an id that is no grant's are 404.",
    responses={409: ERROR_RESPONSES[404] | {"description": "The grant was already revoked (code grant_revoked)"}},
)
async def revoke_grant(
    session: SessionDep, caller: CurrentCaller, grant_id: Annotated[str, Path(max_length=36)]
) -> Response:
    await oauth.revoke_grant(session, caller=caller, grant_id=grant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
