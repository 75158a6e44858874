"""The relay of a handshake-era client's answer between replicas (``vibexp.core.relayed_answers``, migration
0024_mcp_answers) on SQLite and PostgreSQL: one answer per question, only from the key and session asked, only in
time; a bounded number of waiting questions per key; expired ones pruned."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core import relayed_answers
from vibexp.core.db import session_scope
from vibexp.core.relayed_answers import MAX_WAITING_PER_KEY, Recorded, RelayedAnswer


def _key() -> str:
    return secrets.token_hex(18)


async def _open(factory: async_sessionmaker[AsyncSession], key_id: str, seconds: float = 60.0) -> str | None:
    question_id = "q-" + secrets.token_urlsafe(24)
    async with session_scope(factory, write=True) as session:
        opened = await relayed_answers.open_question(
            session, question_id=question_id, key_id=key_id, session_nonce="nonce", seconds=seconds
        )
    return question_id if opened else None


async def _record(
    factory: async_sessionmaker[AsyncSession], question_id: str, key_id: str, nonce: str = "nonce"
) -> Recorded:
    async with session_scope(factory, write=True) as session:
        return await relayed_answers.record_answer(
            session, question_id=question_id, key_id=key_id, session_nonce=nonce, answer='{"action": "accept"}'
        )


async def _read(factory: async_sessionmaker[AsyncSession], question_id: str) -> str | None:
    async with session_scope(factory) as session:
        return await relayed_answers.read_answer(session, question_id=question_id)


async def test_one_answer_from_the_key_and_session_that_were_asked(
    db_factory: async_sessionmaker[AsyncSession],
) -> None:
    key_id = _key()
    question_id = await _open(db_factory, key_id)
    assert question_id is not None
    assert await _record(db_factory, question_id, _key()) is Recorded.unknown  # another key
    assert await _record(db_factory, question_id, key_id, nonce="other") is Recorded.unknown  # another session
    assert await _record(db_factory, "q-never-asked", key_id) is Recorded.unknown
    assert await _read(db_factory, question_id) is None
    assert await _record(db_factory, question_id, key_id) is Recorded.recorded
    assert await _read(db_factory, question_id) == '{"action": "accept"}'
    assert await _record(db_factory, question_id, key_id) is Recorded.already_answered
    async with session_scope(db_factory, write=True) as session:
        await relayed_answers.close_question(session, question_id=question_id)
    assert await _record(db_factory, question_id, key_id) is Recorded.unknown


async def test_a_late_answer_is_refused_and_expired_questions_are_pruned(
    db_factory: async_sessionmaker[AsyncSession],
) -> None:
    key_id = _key()
    late = await _open(db_factory, key_id, seconds=-1)  # already past its time
    assert late is not None
    assert await _record(db_factory, late, key_id) is Recorded.expired
    assert await _read(db_factory, late) is None
    assert await _open(db_factory, key_id) is not None  # opening prunes what expired
    async with session_scope(db_factory) as session:
        left = await session.scalar(select(func.count()).where(RelayedAnswer.id == late))
    assert left == 0


async def test_a_key_has_a_bounded_number_of_questions_waiting(
    db_factory: async_sessionmaker[AsyncSession],
) -> None:
    key_id = _key()
    opened = [await _open(db_factory, key_id) for _ in range(MAX_WAITING_PER_KEY)]
    assert None not in opened
    assert await _open(db_factory, key_id) is None
    assert await _open(db_factory, _key()) is not None  # other keys are not held back
    async with session_scope(db_factory, write=True) as session:
        await relayed_answers.close_question(session, question_id=str(opened[0]))
    assert await _open(db_factory, key_id) is not None
