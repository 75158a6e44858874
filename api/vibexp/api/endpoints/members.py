"""The account's members, their roles, and invitations (``members:read`` / ``members:write``, checked in
``vibexp.core.members.usecases`` with the caller's role). Accepting an invitation needs no key: the token is the
credential, and the route is throttled per client address like the leak report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from vibexp.api.deps import CurrentCaller, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES, error_response
from vibexp.api.middleware.client_address import client_address
from vibexp.api.schemas import PageRead
from vibexp.core.config import get_settings
from vibexp.core.members import usecases
from vibexp.core.members.schemas import (
    INVITATION_ACCEPT_PATH,
    InvitationAccept,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    MemberRead,
    RoleUpdate,
    invitation_link,
)
from vibexp.core.ratelimit.failures import FailureThrottle

__all__ = ["accept_throttle", "members_router"]

#: Acceptance attempts per client address and minute (a wrong password for an existing user costs one).
ACCEPTS_PER_MINUTE = 10

members_router = APIRouter(prefix=f"{API_PREFIX}/members", tags=["members"], responses=ERROR_RESPONSES)


@members_router.get("", response_model=PageRead[MemberRead], summary="List the account's members and their roles")
async def list_members(session: SessionDep, caller: CurrentCaller) -> Any:
    return {"items": await usecases.list_members(session, caller=caller), "next_cursor": None}


@members_router.get(
    "/invitations", response_model=PageRead[InvitationRead], summary="List pending invitations (not yet accepted)"
)
async def list_invitations(session: SessionDep, caller: CurrentCaller) -> Any:
    return {"items": await usecases.list_invitations(session, caller=caller), "next_cursor": None}


@members_router.post(
    "/invitations",
    response_model=InvitationCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Invite someone (the link is in this response only)",
)
async def invite(body: InvitationCreate, session: SessionDep, caller: CurrentCaller) -> Any:
    new = await usecases.invite(session, caller=caller, email=body.email, role=body.role)
    read = InvitationRead.model_validate(new.record).model_dump()
    return InvitationCreated(**read, token=new.token, link=invitation_link(get_settings().public_url, new.token))


def accept_throttle(request: Request) -> FailureThrottle:
    """The per-address budget of invitation acceptances, shared by REST and the dashboard's /join."""
    throttle = getattr(request.app.state, "invitation_accept_throttle", None)
    if not isinstance(throttle, FailureThrottle):
        throttle = FailureThrottle(limit=ACCEPTS_PER_MINUTE, window=60.0)
        request.app.state.invitation_accept_throttle = throttle
    return throttle


@members_router.post(
    INVITATION_ACCEPT_PATH.removeprefix(f"{API_PREFIX}/members"),
    response_model=InvitationAccepted,
    summary="Accept an invitation (no API key): sign in with the invited e-mail's password, or create the user",
)
async def accept_invitation(body: InvitationAccept, request: Request, session: SessionDep) -> Any:
    address = client_address(request.scope) or "unknown"
    throttle = accept_throttle(request)
    wait = throttle.retry_after(address)
    if wait:
        message = f"Too many invitation attempts from this address; retry in {wait} s"
        return error_response(429, "rate_limited", message, headers={"Retry-After": str(wait)})
    throttle.failed(address)
    user, membership, created = await usecases.accept_invitation(
        session,
        token=body.token,
        password=body.password,
        client_ip=address,
        user_agent=request.headers.get("user-agent"),
    )
    return InvitationAccepted(
        user_id=user.id, email=user.email, tenant_id=membership.tenant_id, role=membership.role, created=created
    )


@members_router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a pending invitation (its link stops working)",
)
async def revoke_invitation(invitation_id: str, session: SessionDep, caller: CurrentCaller) -> Response:
    await usecases.revoke_invitation(session, caller=caller, invitation_id=invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@members_router.patch("/{user_id}", response_model=MemberRead, summary="Change a member's role")
async def change_role(user_id: str, body: RoleUpdate, session: SessionDep, caller: CurrentCaller) -> Any:
    await usecases.change_role(session, caller=caller, user_id=user_id, role=body.role)
    return await usecases.member(session, caller=caller, user_id=user_id)


@members_router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member: every personal key and connected app (OAuth grant) of theirs is revoked at once; "
    "service keys stay",
)
async def remove_member(user_id: str, session: SessionDep, caller: CurrentCaller) -> Response:
    await usecases.remove(session, caller=caller, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
