"""Response envelopes shared by the REST endpoints."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

__all__ = ["AccountRead", "Health", "PageRead"]

T = TypeVar("T")


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page")


class Health(BaseModel):
    status: str


class AccountRead(BaseModel):
    tenant: str
    display_name: str
    tier: str
    hourly_limit: int
    used_this_hour: int
    suspended: bool
