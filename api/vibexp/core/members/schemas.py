from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.access import Role

__all__ = [
    "INVITATION_ACCEPT_PATH",
    "InvitationAccept",
    "InvitationAccepted",
    "InvitationCreate",
    "InvitationCreated",
    "InvitationRead",
    "MemberRead",
    "RoleUpdate",
    "invitation_link",
]

#: Where an invitation is accepted over REST: no API key (the invitee has none yet); the token is the credential.
INVITATION_ACCEPT_PATH = "/api/v1/members/invitations/accept"
#: The dashboard page an invitation link opens; the token travels in the fragment, which no server or access log
#: ever sees.
JOIN_PAGE = "/join"


def invitation_link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{JOIN_PAGE}#{token}"


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    email: str
    role: Role
    joined_at: datetime
    last_seen_at: datetime | None
    key_count: int = Field(description="The member's active personal keys")


class RoleUpdate(BaseModel):
    role: Role = Field(description="owner, admin, member or viewer")


class InvitationCreate(BaseModel):
    email: str = Field(min_length=3, max_length=254, description="Who is invited")
    role: Role = Field(description="Their role once they join: at most the inviter's own")


class InvitationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    role: Role
    invited_by_name: str = Field(description="Who invited (as the audit trail names them)")
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationRead):
    token: str = Field(description="The invitation's secret: shown only in this response (only its hash is kept)")
    link: str = Field(description="The link to send; it carries the token. Shown only in this response")


class InvitationAccept(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="The token from the invitation link")
    password: str = Field(
        min_length=1,
        max_length=1000,
        description="The invited e-mail's password: an existing user's own, or a new user's (at least 10 characters)",
    )


class InvitationAccepted(BaseModel):
    user_id: str
    email: str
    tenant_id: str
    role: Role
    created: bool = Field(description="Whether the user was created by this acceptance")
