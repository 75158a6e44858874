"""Answers to the questions an MCP server asks a handshake-era client, relayed between replicas through the database.

A handshake-era client (protocol 2025-06-18 / 2025-03-26) answers a server's ``elicitation/create``, sent on the
SSE response of its ``tools/call``, with a new POST; behind a load balancer that POST may land on any replica,
while the call that asked is waiting on one. The waiting replica opens a ``RelayedAnswer`` row named by the request
id it minted (random, unguessable), bound to the key and the session that were asked, with an expiry; whichever
replica receives the answer fills the row in (once, and only for that key and session, before the expiry); the
waiting replica polls the row and deletes it when it is done, however that happens. Expired rows are pruned as new
questions are opened, and a key may have only ``MAX_WAITING_PER_KEY`` questions open at once: the table stays small.

Below every domain (it imports only the database base): what is asked and what an answer means is the MCP adapter's.
"""

from __future__ import annotations

import enum
import time

from sqlalchemy import BigInteger, String, Text, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base

__all__ = [
    "MAX_WAITING_PER_KEY",
    "Recorded",
    "RelayedAnswer",
    "close_question",
    "open_question",
    "read_answer",
    "record_answer",
]

#: Questions one key may have waiting for an answer at once (a further call is refused before anything is asked).
MAX_WAITING_PER_KEY = 8


class RelayedAnswer(Base):
    __tablename__ = "mcp_answers"

    #: The JSON-RPC request id the server minted for its question.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The key (or OAuth grant) that was asked: only it may answer.
    key_id: Mapped[str] = mapped_column(String(36), index=True)
    #: The session (the random nonce inside its sealed id) that was asked: only it may answer.
    session_nonce: Mapped[str] = mapped_column(String(43))
    #: Epoch milliseconds after which no answer is taken.
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    #: The answer as the adapter understood it (a small JSON document), once given.
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)


class Recorded(enum.Enum):
    recorded = "recorded"
    #: No question waits under this id for this key and session (never asked, another key's, already closed).
    unknown = "unknown"
    already_answered = "already_answered"
    expired = "expired"


def _now_ms() -> int:
    return int(time.time() * 1000)


async def open_question(
    session: AsyncSession, *, question_id: str, key_id: str, session_nonce: str, seconds: float
) -> bool:
    """Open a question that may be answered for ``seconds``; ``False`` (nothing opened) when the key already has
    ``MAX_WAITING_PER_KEY`` waiting. Prunes expired questions as it goes."""
    now = _now_ms()
    await session.execute(delete(RelayedAnswer).where(RelayedAnswer.expires_at < now))
    waiting = await session.scalar(select(func.count()).where(RelayedAnswer.key_id == key_id))
    if (waiting or 0) >= MAX_WAITING_PER_KEY:
        return False
    session.add(
        RelayedAnswer(id=question_id, key_id=key_id, session_nonce=session_nonce, expires_at=now + int(seconds * 1000))
    )
    await session.flush()
    return True


async def record_answer(
    session: AsyncSession, *, question_id: str, key_id: str, session_nonce: str, answer: str
) -> Recorded:
    """Fill in the answer of a waiting question, once, for the key and session it was asked of, before it expires."""
    now = _now_ms()
    done = await session.execute(
        update(RelayedAnswer)
        .where(
            RelayedAnswer.id == question_id,
            RelayedAnswer.key_id == key_id,
            RelayedAnswer.session_nonce == session_nonce,
            RelayedAnswer.answer.is_(None),
            RelayedAnswer.expires_at >= now,
        )
        .values(answer=answer)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) == 1:
        return Recorded.recorded
    row = (
        await session.execute(
            select(RelayedAnswer.answer, RelayedAnswer.expires_at).where(
                RelayedAnswer.id == question_id,
                RelayedAnswer.key_id == key_id,
                RelayedAnswer.session_nonce == session_nonce,
            )
        )
    ).one_or_none()
    if row is None:
        return Recorded.unknown
    if row[0] is not None:
        return Recorded.already_answered
    return Recorded.expired


async def read_answer(session: AsyncSession, *, question_id: str) -> str | None:
    """The answer given so far, if any."""
    return await session.scalar(select(RelayedAnswer.answer).where(RelayedAnswer.id == question_id))


async def close_question(session: AsyncSession, *, question_id: str) -> None:
    """Forget the question: a later answer is unknown."""
    await session.execute(delete(RelayedAnswer).where(RelayedAnswer.id == question_id))
