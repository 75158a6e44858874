"""Showing a new key once, across reloads, back/forward and replicas: POST → redirect → GET, consumed on first GET.

Creating (or rotating) a key in the dashboard answers with a redirect to ``/settings/api-keys/created/<id>``; that
GET shows the key and is the only one that can. The pieces:

* a ``KeyFlash`` row (no secret in it: id, the browser session that may see it, the key's id, what was rotated,
  an expiry) that the first GET deletes atomically (``DELETE … RETURNING``), so a reload, a back/forward, or a
  copied URL finds nothing and shows nothing;
* the plaintext key itself, sealed (encrypted and authenticated with a key derived from ``VIBEXP_SECRET_KEY``) in a
  short-lived cookie scoped to that one URL, so the database never holds it, even for a moment, and any replica
  can open it.

Sealing is ``vibexp.core.secret_box.Sealer`` (HMAC-SHA256 in counter mode as the keystream plus an HMAC-SHA256
tag, encrypt-then-MAC), with the flash id as the nonce: standard-library only, and each flash id seals exactly one key.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base

__all__ = ["FLASH_LIFETIME", "KeyFlash", "OpenedFlash", "consume_flash", "create_flash"]

#: Seconds between the POST and the GET that may show the key.
FLASH_LIFETIME = 300


class KeyFlash(Base):
    __tablename__ = "key_flashes"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    #: The dashboard session id that may open it.
    owner: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(36))
    #: Set for a rotation: the key that was replaced and the grace period chosen.
    rotated_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    grace_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


@dataclass(frozen=True, slots=True)
class OpenedFlash:
    key_id: str
    rotated_id: str | None
    grace_seconds: int | None


async def create_flash(
    session: AsyncSession,
    *,
    owner: str,
    key_id: str,
    rotated_id: str | None = None,
    grace_seconds: int | None = None,
) -> str:
    """A new flash for ``owner``'s next GET; its id (also the nonce to seal the key with)."""
    now = int(time.time())
    await session.execute(delete(KeyFlash).where(KeyFlash.expires_at < now))  # prune as we go
    flash = KeyFlash(
        id=secrets.token_urlsafe(32),
        owner=owner[:64],
        key_id=key_id,
        rotated_id=rotated_id,
        grace_seconds=grace_seconds,
        expires_at=now + FLASH_LIFETIME,
    )
    session.add(flash)
    await session.flush()
    return flash.id


async def consume_flash(session: AsyncSession, *, flash_id: str, owner: str) -> OpenedFlash | None:
    """Take the flash (once): None when it was already shown, expired, or belongs to another session."""
    row = (
        await session.execute(
            delete(KeyFlash)
            .where(KeyFlash.id == flash_id[:43], KeyFlash.owner == owner[:64], KeyFlash.expires_at >= int(time.time()))
            .returning(KeyFlash.key_id, KeyFlash.rotated_id, KeyFlash.grace_seconds)
        )
    ).one_or_none()
    if row is None:
        return None
    return OpenedFlash(key_id=row[0], rotated_id=row[1], grace_seconds=row[2])
