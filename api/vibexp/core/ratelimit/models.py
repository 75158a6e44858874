from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base

__all__ = ["RateWindow"]


class RateWindow(Base):
    """Requests granted to a tenant in one fixed UTC hour, shared by every process through the database."""

    __tablename__ = "rate_windows"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: Epoch seconds of the window's start (a multiple of 3600).
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    #: Scratch column: how many requests the last grant handed out (read back with RETURNING in the same statement).
    last_grant: Mapped[int] = mapped_column(Integer, default=0)
