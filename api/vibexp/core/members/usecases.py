"""Members, roles and invitations as every adapter calls them (REST ``/members``, the CLI, the dashboard).

``members:read`` lists members and invitations, ``members:write`` changes them; only admins' and owners' role
ceilings hold those scopes, so a member's or viewer's session or key never reaches these. On top of the scope each
use case checks the caller's role (``Caller.role``; ``None`` for a service key, the CLI and the operator): nobody
grants a role above their own, changes their own role, or touches an owner unless they are one; a service key
stands as an admin, the CLI and the operator as an owner. Accepting an invitation needs no Caller: the link is the
credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, CredentialKind, Role, Scope, requires
from vibexp.core.config import get_settings
from vibexp.core.errors import AuthenticationFailed, Conflict, InsufficientScope, NotFound
from vibexp.core.members import service
from vibexp.core.members.models import Invitation
from vibexp.core.members.service import MemberRow, NewInvitation, Removal
from vibexp.core.users import service as users
from vibexp.core.users.models import Membership, User

__all__ = [
    "MemberRow",
    "NewInvitation",
    "OwnerEnsured",
    "Removal",
    "accept_invitation",
    "change_role",
    "ensure_owner",
    "invite",
    "joined_through",
    "list_invitations",
    "list_members",
    "member",
    "member_by_email",
    "remove",
    "revoke_invitation",
]


def _rank(caller: Caller) -> int:
    """How high the caller stands: a person's role; a service key as an admin (it remembers no maker, so it never
    touches owners: an admin could otherwise make a service key and crown themselves through it); the CLI and the
    operator, holders of the database's credentials, as an owner."""
    if caller.role is not None:
        return Role(caller.role).rank
    return Role.admin.rank if caller.credential is CredentialKind.api_key else Role.owner.rank


def _not_above(caller: Caller, role: Role, what: str) -> None:
    """Nobody grants or touches a role above their own (``_rank``)."""
    if role.rank > _rank(caller):
        who = caller.role or ("service key" if caller.credential is CredentialKind.api_key else "caller")
        raise InsufficientScope(Scope.members_write, f"A {who} cannot {what} {role.value}")


@requires(Scope.members_read)
async def list_members(session: AsyncSession, *, caller: Caller) -> list[MemberRow]:
    return await service.list_members(session, tenant_id=caller.tenant_id)


@requires(Scope.members_read)
async def member(session: AsyncSession, *, caller: Caller, user_id: str) -> MemberRow:
    """One member, as the list shows them (``NotFound`` otherwise)."""
    for row in await service.list_members(session, tenant_id=caller.tenant_id, user_id=user_id):
        return row
    raise NotFound("member not found")


@requires(Scope.members_read)
async def member_by_email(session: AsyncSession, *, caller: Caller, email: str) -> User:
    """The member with this e-mail (``NotFound`` otherwise): the CLI addresses members by e-mail."""
    user = await users.find_user(session, email=email)
    if user is None:
        raise NotFound("member not found")
    await service.get_member(session, tenant_id=caller.tenant_id, user_id=user.id)
    return user


@requires(Scope.members_write)
async def change_role(session: AsyncSession, *, caller: Caller, user_id: str, role: Role) -> tuple[Membership, User]:
    if caller.person is not None and caller.person == user_id:
        raise InsufficientScope(Scope.members_write, "Nobody can change their own role: ask another admin or owner")
    membership, _ = await service.get_member(session, tenant_id=caller.tenant_id, user_id=user_id)
    _not_above(caller, Role(membership.role), "change the role of an")
    _not_above(caller, role, "make someone")
    return await service.change_role(
        session, tenant_id=caller.tenant_id, user_id=user_id, role=role, actor=caller.actor
    )


@dataclass(frozen=True, slots=True)
class OwnerEnsured:
    """What :func:`ensure_owner` did: ``previous`` is the role the person had (``None``: they joined)."""

    user: User
    previous: Role | None

    @property
    def changed(self) -> bool:
        return self.previous is not Role.owner


@requires(Scope.members_write)
async def ensure_owner(session: AsyncSession, *, caller: Caller, email: str) -> OwnerEnsured | None:
    """Make the user with this e-mail an owner of the account (joining it, or promoted), or leave an owner as they
    are; ``None`` when no user has this e-mail. Only an owner-ranked caller makes owners (a person who is an owner,
    the CLI, the operator: a person who passes is an owner already, so nobody changes their own role here)."""
    _not_above(caller, Role.owner, "make someone")
    user = await users.find_user(session, email=users.normalize_email(email))
    if user is None:
        return None
    previous = await service.ensure_owner(session, tenant_id=caller.tenant_id, user=user, actor=caller.actor)
    return OwnerEnsured(user, previous)


@requires(Scope.members_write)
async def remove(session: AsyncSession, *, caller: Caller, user_id: str) -> Removal:
    """Remove a member (or leave, for oneself); their personal keys and connected apps (OAuth grants) are revoked in
    the same transaction."""
    membership, _ = await service.get_member(session, tenant_id=caller.tenant_id, user_id=user_id)
    _not_above(caller, Role(membership.role), "remove an")
    return await service.remove_member(session, tenant_id=caller.tenant_id, user_id=user_id, actor=caller.actor)


@requires(Scope.members_write)
async def invite(session: AsyncSession, *, caller: Caller, email: str, role: Role) -> NewInvitation:
    """An invitation link (shown once) to join with ``role``, never above the inviter's own."""
    _not_above(caller, role, "invite an")
    return await service.create_invitation(
        session,
        tenant_id=caller.tenant_id,
        email=users.normalize_email(email),
        role=role,
        ttl=timedelta(days=get_settings().invitation_ttl_days),
        invited_by=caller.person,
        actor=caller.actor,
    )


@requires(Scope.members_read)
async def list_invitations(session: AsyncSession, *, caller: Caller) -> list[Invitation]:
    return await service.list_invitations(session, tenant_id=caller.tenant_id)


@requires(Scope.members_write)
async def revoke_invitation(session: AsyncSession, *, caller: Caller, invitation_id: str) -> Invitation:
    return await service.revoke_invitation(
        session, tenant_id=caller.tenant_id, invitation_id=invitation_id, actor=caller.actor
    )


async def accept_invitation(
    session: AsyncSession,
    *,
    token: str,
    password: str,
    signed_in_user_id: str | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[User, Membership, bool]:
    """Join the account an invitation names. The invited e-mail's user signs in with ``password``, or is created
    with it; a browser already signed in as somebody else (``signed_in_user_id``) is refused (``Conflict``,
    ``wrong_user``). The link is spent in the same transaction. Answers the user, the membership and whether the
    user was created."""
    invitation = await service.find_invitation(session, token=token)
    user = await users.find_user(session, email=invitation.email)
    if signed_in_user_id is not None and (user is None or user.id != signed_in_user_id):
        raise Conflict(
            f"this invitation is for {invitation.email}: sign out first, then open the link again", code="wrong_user"
        )
    role = Role(invitation.role)
    created = user is None
    if user is None:
        user = await users.create_user(
            session, tenant_id=invitation.tenant_id, email=invitation.email, password=password, role=role
        )
    else:
        try:
            user = await users.authenticate(
                session, email=invitation.email, password=password, client_ip=client_ip, user_agent=user_agent
            )
        except AuthenticationFailed:
            raise AuthenticationFailed(f"wrong password for {invitation.email}") from None
        await users.join(session, tenant_id=invitation.tenant_id, user=user, role=role, actor=users.user_actor(user))
    await service.use_invitation(session, invitation=invitation, user=user)
    membership, _ = await service.get_member(session, tenant_id=invitation.tenant_id, user_id=user.id)
    return user, membership, created


async def joined_through(session: AsyncSession, *, token: str, user_id: str) -> str | None:
    """The account an invitation link already made ``user_id`` a member of — they accepted it and still belong —
    or ``None``. For the dashboard's ``/join``: the same person sending the used link again (a second press of the
    button, a resubmitted form) is taken there, not shown an error. Needs no Caller: the link is the credential."""
    invitation = await service.invitation_by_token(session, token=token)
    if invitation is None or invitation.accepted_by != user_id:
        return None
    if await session.get(Membership, (invitation.tenant_id, user_id)) is None:
        return None
    return invitation.tenant_id
