"""Signed-out dashboard sessions, in the database so that sign-out ends a session on every replica.

Sessions are signed cookies (no session table); signing out records the session id here until the session would
have expired anyway. Only dashboard requests of a signed-in user check it, and those read the user and tenant from
the database already, so the API's hot path never does.
"""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base

__all__ = ["RevokedSession", "is_session_revoked", "revoke_session"]


class RevokedSession(Base):
    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Epoch seconds after which the session is invalid anyway (the row can go).
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


async def revoke_session(session: AsyncSession, *, sid: str, expires_at: int) -> None:
    now = int(time.time())
    await session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))  # prune as we go
    if await session.get(RevokedSession, sid[:64]) is None:
        session.add(RevokedSession(sid=sid[:64], expires_at=expires_at))
    await session.flush()


async def is_session_revoked(session: AsyncSession, *, sid: str) -> bool:
    return await session.scalar(select(RevokedSession.sid).where(RevokedSession.sid == sid[:64])) is not None
