"""Sign-in throttling that every replica sees and concurrency cannot bypass: attempts are reserved in the database.

Each bucket (one per e-mail address, one per client address) is a row with a count and the start of its window.
An attempt first *reserves* a slot in both buckets with one atomic ``UPDATE … WHERE attempts < limit RETURNING``
per bucket, committed before the password is checked; when a bucket is full the attempt is refused without
checking anything. So N concurrent attempts on one e-mail, on any number of processes, check at most ``limit``
passwords per window. A failed attempt keeps its reservation (it is the failure count); a successful one clears
the e-mail's bucket and gives back its slot in the address bucket (successes are not failures).

The window starts at a bucket's first attempt and lasts ``window`` seconds; a bucket whose window is over starts
again at 1. E-mail addresses are stored as SHA-256 (the bucket needs no readable address).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from sqlalchemy import Float, Integer, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base

__all__ = ["SignInAttempts", "SignInBucket", "SignInLimits"]


class SignInBucket(Base):
    __tablename__ = "sign_in_buckets"

    #: ``email:<sha256 of the address>`` or ``ip:<client address>``.
    bucket: Mapped[str] = mapped_column(String(120), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Epoch seconds at which this bucket's window began.
    window_start: Mapped[float] = mapped_column(Float, default=0.0)


@dataclass(frozen=True, slots=True)
class SignInLimits:
    per_email: int = 5
    per_ip: int = 20
    window: float = 900.0


class _Full(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


def email_bucket(email: str) -> str:
    return "email:" + hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()


def ip_bucket(ip: str) -> str:
    return "ip:" + ip[:100]


class SignInAttempts:
    def __init__(self, engine: AsyncEngine, limits: SignInLimits) -> None:
        self._engine = engine
        self.limits = limits
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def reserve(self, *, email: str, ip: str, now: float | None = None) -> int:
        """Reserve an attempt in both buckets; 0 when reserved, else the seconds until one is free."""
        now = time.time() if now is None else now
        try:
            async with self._engine.begin() as conn:  # both or neither; committed before any password is checked
                await self._take(conn, email_bucket(email), self.limits.per_email, now)
                await self._take(conn, ip_bucket(ip), self.limits.per_ip, now)
        except _Full as full:
            return full.retry_after
        return 0

    @staticmethod
    async def succeeded(session: AsyncSession, *, email: str, ip: str) -> None:
        """In the sign-in's own unit of work (on SQLite a second connection would wait for its write lock)."""
        await session.execute(delete(SignInBucket).where(SignInBucket.bucket == email_bucket(email)))
        await session.execute(
            update(SignInBucket)
            .where(SignInBucket.bucket == ip_bucket(ip), SignInBucket.attempts > 0)
            .values(attempts=SignInBucket.attempts - 1)
        )

    async def _take(self, conn: AsyncConnection, bucket: str, limit: int, now: float) -> None:
        await conn.execute(
            self._insert(SignInBucket).values(bucket=bucket, attempts=0, window_start=now).on_conflict_do_nothing()
        )
        expired = SignInBucket.window_start <= now - self.limits.window
        taken = await conn.scalar(
            update(SignInBucket)
            .where(SignInBucket.bucket == bucket, (SignInBucket.attempts < limit) | expired)
            .values(
                attempts=case((expired, 1), else_=SignInBucket.attempts + 1),
                window_start=case((expired, now), else_=SignInBucket.window_start),
            )
            .returning(SignInBucket.attempts)
        )
        if taken is None:
            started = await conn.scalar(select(SignInBucket.window_start).where(SignInBucket.bucket == bucket))
            raise _Full(max(1, math.ceil(float(started or now) + self.limits.window - now)))
