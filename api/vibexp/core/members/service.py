"""Members of an account, their roles, and invitations to join.

Every change to a membership first locks the account's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write
lock does the same), so concurrent role changes and removals in one account take turns: "at least one owner" is
checked on the memberships as the previous change left them. Minting a personal key locks its owner's membership
row (``lock_member``): a removal racing a mint either runs first (the mint finds no membership and is refused) or
waits for the mint to commit and then revokes the new key with the others. No key survives its owner's removal.

A role change or a removal bumps ``updated_at`` of the person's keys in the same transaction (and notes
``KEY_CHANGED``): the key verifiers cache each key with its owner's role ceiling, and they already poll keys'
``updated_at`` every 0.25 s, so the change reaches every replica as fast as a revocation does.

A removal also revokes every connected app (OAuth grant) of the person in the account, in the same transaction: the
token verifiers poll grants' ``updated_at`` the same way, so their tokens stop working on every replica within 1 s.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, Role
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from vibexp.core.ids import is_id
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.members.models import Invitation
from vibexp.core.notices import Notice, note
from vibexp.core.oauth import service as oauth
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import Membership, User
from vibexp.core.users.service import join, lock_member

__all__ = [
    "INVITATION_PREFIX",
    "MemberRow",
    "NewInvitation",
    "Removal",
    "change_role",
    "create_invitation",
    "ensure_owner",
    "find_invitation",
    "get_member",
    "hash_token",
    "invitation_by_token",
    "list_invitations",
    "list_members",
    "lock_account",
    "remove_member",
    "revoke_invitation",
    "use_invitation",
]

#: An invitation token: this prefix and 64 hex characters (not ``vib_``: it is no API key, and scanners tell them
#: apart).
INVITATION_PREFIX = "vibinv_"


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: str
    email: str
    role: str
    joined_at: datetime
    last_seen_at: datetime | None
    key_count: int


@dataclass(frozen=True, slots=True)
class Removal:
    """What a member's removal revoked with them: their personal keys' and their grants' (connected apps') ids."""

    revoked_keys: list[str]
    revoked_grants: list[str]


@dataclass(frozen=True, slots=True)
class NewInvitation:
    """A fresh invitation and its token, which exists nowhere else."""

    record: Invitation
    token: str

    def __repr__(self) -> str:  # never let the token reach a log through a repr
        return f"NewInvitation(id={self.record.id!r})"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def lock_account(session: AsyncSession, *, tenant_id: str) -> None:
    """Take the account's row lock: membership changes in one account take turns. ``FOR NO KEY UPDATE``, which a
    row inserted meanwhile (a key, an audit event: their foreign keys take ``FOR KEY SHARE`` on the account) does
    not wait for, so a mint holding its owner's membership lock never deadlocks with a removal."""
    await session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


async def get_member(session: AsyncSession, *, tenant_id: str, user_id: str) -> tuple[Membership, User]:
    row = (
        (
            await session.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
            )
        ).one_or_none()
        if is_id(user_id)
        else None
    )
    if row is None:
        raise NotFound("member not found")
    return row[0], row[1]


async def list_members(session: AsyncSession, *, tenant_id: str, user_id: str | None = None) -> list[MemberRow]:
    """The account's members (or the one ``user_id``), oldest first, each with the number of their active personal
    keys."""
    key_count = (
        select(ApiKey.owner_user_id, func.count().label("n"))
        .where(ApiKey.tenant_id == tenant_id, ApiKey.status == KeyStatus.active.value, ApiKey.deleted_at.is_(None))
        .group_by(ApiKey.owner_user_id)
        .subquery()
    )
    query = (
        select(Membership, User.email, func.coalesce(key_count.c.n, 0))
        .join(User, User.id == Membership.user_id)
        .outerjoin(key_count, key_count.c.owner_user_id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(Membership.joined_at, Membership.user_id)
    )
    if user_id is not None:
        query = query.where(Membership.user_id == user_id)
    rows = await session.execute(query)
    return [MemberRow(m.user_id, email, m.role, m.joined_at, m.last_seen_at, int(count)) for m, email, count in rows]


async def _owners(session: AsyncSession, tenant_id: str) -> int:
    count = await session.scalar(
        select(func.count()).where(Membership.tenant_id == tenant_id, Membership.role == Role.owner.value)
    )
    return int(count or 0)


async def _touch_keys(session: AsyncSession, *, tenant_id: str, user_id: str) -> None:
    """Bump the person's keys' and live grants' ``updated_at``: every verifier re-reads them (and the owner's role)
    within 0.25 s."""
    now = utcnow()
    ids = list(
        await session.scalars(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.owner_user_id == user_id)
            .values(updated_at=now)
            .returning(ApiKey.id)
            .execution_options(synchronize_session=False)
        )
    )
    for key_id in ids:
        note(session, Notice.KEY_CHANGED, key_id)
    # Their live connected apps too: the change feed follows grants by ``updated_at``, so an open MCP stream of a
    # grant learns its new scopes (``tools/list_changed``) as a key's does.
    grant_ids = list(
        await session.scalars(
            update(OAuthGrant)
            .where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.user_id == user_id, OAuthGrant.revoked_at.is_(None))
            .values(updated_at=now)
            .returning(OAuthGrant.id)
            .execution_options(synchronize_session=False)
        )
    )
    for grant_id in grant_ids:
        note(session, Notice.GRANT_CHANGED, grant_id)
    note(session, Notice.MEMBER_CHANGED, user_id)  # the OAuth token cache drops the person's grants at commit


async def change_role(
    session: AsyncSession, *, tenant_id: str, user_id: str, role: Role, actor: Actor
) -> tuple[Membership, User]:
    """Give a member another role; demoting the last owner is ``Conflict`` (``last_owner``)."""
    await lock_account(session, tenant_id=tenant_id)
    membership, user = await get_member(session, tenant_id=tenant_id, user_id=user_id)
    await session.refresh(membership)
    previous = Role(membership.role)
    if previous is role:
        return membership, user
    if previous is Role.owner and await _owners(session, tenant_id) <= 1:
        raise Conflict("the account's last owner cannot be demoted: make another member owner first", code="last_owner")
    membership.role = role.value
    membership.updated_at = utcnow()
    await _touch_keys(session, tenant_id=tenant_id, user_id=user_id)
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="member.role_changed",
        actor=actor,
        target=Target("user", id=user.id, name=user.email),
        details={"role": role.value, "previous": previous.value},
    )
    await session.flush()
    return membership, user


async def ensure_owner(session: AsyncSession, *, tenant_id: str, user: User, actor: Actor) -> Role | None:
    """Make ``user`` an owner of the account: they join as one (audited ``member.joined``), or their role becomes
    owner (``member.role_changed``), or nothing changes. Answers the role they had (``None``: not a member)."""
    await lock_account(session, tenant_id=tenant_id)
    membership = await session.get(Membership, (tenant_id, user.id), populate_existing=True)
    if membership is None:
        await join(session, tenant_id=tenant_id, user=user, role=Role.owner, actor=actor)
        return None
    previous = Role(membership.role)
    if previous is not Role.owner:
        await change_role(session, tenant_id=tenant_id, user_id=user.id, role=Role.owner, actor=actor)
    return previous


async def remove_member(session: AsyncSession, *, tenant_id: str, user_id: str, actor: Actor) -> Removal:
    """Remove a member and revoke every personal key and every grant (connected app) of theirs in this account, in
    this transaction (each audited ``key.revoked`` / ``oauth.revoked`` with ``reason: member_removed``); service keys
    stay. The last owner cannot be removed (``Conflict``, ``last_owner``). Returns what was revoked."""
    await lock_account(session, tenant_id=tenant_id)
    membership, user = await get_member(session, tenant_id=tenant_id, user_id=user_id)
    locked = await lock_member(session, tenant_id=tenant_id, user_id=user_id)  # waits for a mint in flight
    if locked is None:
        raise NotFound("member not found")
    if locked.role == Role.owner.value and await _owners(session, tenant_id) <= 1:
        raise Conflict("the account's last owner cannot leave: make another member owner first", code="last_owner")
    revoked: list[str] = []
    personal = await session.scalars(
        select(ApiKey).where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.owner_user_id == user_id,
            ApiKey.status != KeyStatus.revoked.value,
        )
    )
    for key in list(personal):
        if await keys.revoke_once(session, key=key, actor=actor, details={"reason": "member_removed"}):
            revoked.append(key.id)
    await _touch_keys(session, tenant_id=tenant_id, user_id=user_id)
    grants = await oauth.revoke_person_grants(
        session, tenant_id=tenant_id, user_id=user_id, reason="member_removed", actor=actor
    )
    await session.delete(locked)
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="member.removed",
        actor=actor,
        target=Target("user", id=user.id, name=user.email),
        details={"role": membership.role, "revoked_keys": revoked, "revoked_grants": grants},
    )
    await session.flush()
    return Removal(revoked_keys=revoked, revoked_grants=grants)


# -- invitations --------------------------------------------------------------------------------------------------
async def create_invitation(
    session: AsyncSession,
    *,
    tenant_id: str,
    email: str,
    role: Role,
    ttl: timedelta,
    invited_by: str | None,
    actor: Actor,
) -> NewInvitation:
    """A new invitation (``AlreadyExists`` when the address is a member already); its token only in the answer."""
    member = await session.scalar(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(User.email == email, Membership.tenant_id == tenant_id)
    )
    if member is not None:
        raise AlreadyExists(f"{email} is already a member of this account")
    token = INVITATION_PREFIX + secrets.token_hex(32)
    now = utcnow()
    invitation = Invitation(
        tenant_id=tenant_id,
        email=email,
        role=role.value,
        token_hash=hash_token(token),
        invited_by=invited_by,
        invited_by_name=actor.name[:300],
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invitation)
    await session.flush()
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="member.invited",
        actor=actor,
        target=Target("invitation", id=invitation.id, name=email),
        details={"role": role.value, "expires_at": invitation.expires_at.isoformat()},
    )
    return NewInvitation(invitation, token)


async def list_invitations(session: AsyncSession, *, tenant_id: str) -> list[Invitation]:
    """The account's pending invitations (not accepted, revoked or expired), newest first."""
    return list(
        await session.scalars(
            select(Invitation)
            .where(
                Invitation.tenant_id == tenant_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc(), Invitation.id)
        )
    )


async def revoke_invitation(session: AsyncSession, *, tenant_id: str, invitation_id: str, actor: Actor) -> Invitation:
    invitation = await session.get(Invitation, invitation_id) if is_id(invitation_id) else None
    if invitation is None or invitation.tenant_id != tenant_id:
        raise NotFound("invitation not found")
    if invitation.accepted_at is not None:
        raise Conflict("the invitation was accepted already: remove the member instead", code="invitation_used")
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        await audit.record(
            session,
            tenant_id=tenant_id,
            action="invitation.revoked",
            actor=actor,
            target=Target("invitation", id=invitation.id, name=invitation.email),
        )
        await session.flush()
    return invitation


async def invitation_by_token(session: AsyncSession, *, token: str) -> Invitation | None:
    """The invitation behind a link whatever its state (used, revoked, expired), unlocked; ``None`` when unknown."""
    return await session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))


async def find_invitation(session: AsyncSession, *, token: str) -> Invitation:
    """The pending invitation behind a link, locked; every other case is ``InvalidInput`` with code
    ``invalid_invitation`` and a message saying which (unknown, used, revoked, expired)."""
    if not token.startswith(INVITATION_PREFIX) or len(token) != len(INVITATION_PREFIX) + 64:
        raise _invalid("this invitation link is not valid: check that it was copied whole")
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == hash_token(token)).with_for_update()
    )
    if invitation is None:
        raise _invalid("this invitation link is not valid: check that it was copied whole")
    if invitation.accepted_at is not None:
        raise _invalid("this invitation link was used already: each link works once")
    if invitation.revoked_at is not None:
        raise _invalid("this invitation was revoked: ask for a new one")
    if invitation.expires_at <= utcnow():
        raise _invalid("this invitation link has expired: ask for a new one")
    return invitation


def _invalid(message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.code = "invalid_invitation"
    return error


async def use_invitation(session: AsyncSession, *, invitation: Invitation, user: User) -> None:
    """Mark the invitation used by ``user`` (single use: a second acceptance racing this one finds it used)."""
    used = (
        await session.execute(
            update(Invitation)
            .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None))
            .values(accepted_at=utcnow(), accepted_by=user.id)
            .returning(Invitation.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if used is None:
        raise _invalid("this invitation link was used already: each link works once")
