"""The one first-run setup a database ever allows, claimed in the database itself.

Each ``vibexp serve`` process checks "no user exists yet" before offering its setup link, but two replicas can both
pass that check at once. So the setup also inserts the single row of ``first_run_claims`` (its primary key may only
be 1) in the same transaction that creates the first account and user: a second process's insert waits for the
first transaction and then fails on the key (PostgreSQL: the unique index; SQLite: the write lock, then the key), so
exactly one setup commits. If the winner's transaction rolls back, its claim goes with it and setup stays open.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.errors import AlreadyExists

__all__ = ["FirstRunClaim", "FirstRunDone", "claim_first_run"]

#: The only key the claim row may have.
_THE_CLAIM = 1


class FirstRunClaim(Base):
    """Present once the first-run setup has created the first account (or, migrated, once any user existed)."""

    __tablename__ = "first_run_claims"
    __table_args__ = (CheckConstraint(f"id = {_THE_CLAIM}", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FirstRunDone(AlreadyExists):
    """Another setup (possibly in another server process) has already created the first account."""


async def claim_first_run(session: AsyncSession) -> None:
    """Claim the first-run setup in the caller's transaction, before it creates the first account and user.

    Raises ``FirstRunDone`` when the claim exists (the transaction is then unusable: roll it back). Commit the
    claim together with the account: that commit is what makes the setup the only one.
    """
    try:
        await session.execute(insert(FirstRunClaim).values(id=_THE_CLAIM, claimed_at=utcnow()))
    except IntegrityError:
        raise FirstRunDone("the first-run setup has already been done") from None
