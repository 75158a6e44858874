"""Dashboard users: argon2id password hashes, sign-in checks."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, ActorType, Role
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import AlreadyExists, AuthenticationFailed, InvalidInput
from vibexp.core.users.models import Membership, User

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "any_user_exists",
    "authenticate",
    "create_user",
    "find_user",
    "get_user",
    "join",
    "lock_member",
    "normalize_email",
    "user_actor",
]

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the e-mail is unknown, so a wrong e-mail costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("vibexp-timing-equaliser")


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise InvalidInput(f"not an e-mail address: {email!r}")
    return email


async def create_user(
    session: AsyncSession,
    *,
    tenant_id: str,
    email: str,
    password: str,
    role: Role = Role.owner,
    actor: Actor | None = None,
) -> User:
    """A new user, a member of ``tenant_id`` (their home account) with ``role``; audited ``user.created`` (by
    ``actor``, or the new user themselves when nobody else acts: the first run, an accepted invitation)."""
    email = normalize_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AlreadyExists(f"a user with e-mail {email} already exists")
    user = User(tenant_id=tenant_id, email=email, password_hash=_hasher.hash(password))
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="user.created",
        actor=actor or user_actor(user),
        target=Target("user", id=user.id, name=user.email),
        details={"role": role.value},
    )
    await join(session, tenant_id=tenant_id, user=user, role=role, actor=actor or user_actor(user))
    return user


async def join(session: AsyncSession, *, tenant_id: str, user: User, role: Role, actor: Actor) -> Membership:
    """Make ``user`` a member of the account (``AlreadyExists`` when they are one); audited ``member.joined``."""
    if await session.get(Membership, (tenant_id, user.id)) is not None:
        raise AlreadyExists(f"{user.email} is already a member of this account")
    now = utcnow()
    membership = Membership(tenant_id=tenant_id, user_id=user.id, role=role.value, joined_at=now, updated_at=now)
    session.add(membership)
    await session.flush()
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="member.joined",
        actor=actor,
        target=Target("user", id=user.id, name=user.email),
        details={"role": role.value},
    )
    return membership


async def find_user(session: AsyncSession, *, email: str) -> User | None:
    """The user with this (normalised) e-mail, or ``None``."""
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def any_user_exists(session: AsyncSession) -> bool:
    return await session.scalar(select(User.id).limit(1)) is not None


async def get_user(session: AsyncSession, *, user_id: str) -> User | None:
    """The user a dashboard session names, or None when it no longer exists."""
    return await session.get(User, user_id)


async def authenticate(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> User:
    """The user with this e-mail and password. Both outcomes for an existing user are audited in the caller's
    transaction (``user.signed_in``, ``user.sign_in_failed``): commit it on a failure too. An unknown e-mail has no
    tenant to record it for."""
    email = email.strip().lower()
    # PostgreSQL cannot even compare text holding NUL (the driver raises); no stored address holds one.
    user = await session.scalar(select(User).where(User.email == email)) if "\x00" not in email else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        if user is not None:
            await _audit_sign_in(session, user, "user.sign_in_failed", client_ip=client_ip, user_agent=user_agent)
        raise AuthenticationFailed("wrong e-mail or password") from None
    if user is None:
        raise AuthenticationFailed("wrong e-mail or password")
    await _audit_sign_in(session, user, "user.signed_in", client_ip=client_ip, user_agent=user_agent)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    await session.execute(  # the members list's "last seen", in the account the dashboard opens
        update(Membership)
        .where(Membership.user_id == user.id, Membership.tenant_id == user.tenant_id)
        .values(last_seen_at=user.last_login_at)
    )
    await session.flush()
    return user


def user_actor(user: User, *, client_ip: str | None = None, user_agent: str | None = None) -> Actor:
    """The audit trail's actor for a signed-in dashboard user."""
    return Actor(ActorType.user, id=user.id, name=user.email, client_ip=client_ip, user_agent=user_agent)


async def _audit_sign_in(
    session: AsyncSession, user: User, action: str, *, client_ip: str | None, user_agent: str | None
) -> None:
    actor = user_actor(user, client_ip=client_ip, user_agent=user_agent)
    target = Target("user", id=user.id, name=user.email)
    await audit.record(session, tenant_id=user.tenant_id, action=action, actor=actor, target=target)


async def lock_member(session: AsyncSession, *, tenant_id: str, user_id: str) -> Membership | None:
    """The membership, row-locked until the transaction ends (``None``: not a member). Minting a personal key and
    removing its owner both take it, so they take turns."""
    return await session.scalar(
        select(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
