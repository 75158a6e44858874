"""Tell key verifiers in this process, once a transaction commits, which keys and tenants it changed.

Services only flush, so they cannot know when their change becomes visible; they mark the session instead, and a
single ``after_commit`` hook fans the marks out to every subscribed verifier. Other processes learn of the same
changes by polling ``updated_at`` (see ``vibexp.core.keys.verifier``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

__all__ = ["mark_key_changed", "mark_tenant_changed", "subscribe", "unsubscribe"]

Listener = Callable[[set[str], set[str]], None]
_listeners: list[Listener] = []


def mark_key_changed(session: AsyncSession, key_id: str) -> None:
    session.sync_session.info.setdefault("vibexp_changed_keys", set()).add(key_id)


def mark_tenant_changed(session: AsyncSession, tenant_id: str) -> None:
    session.sync_session.info.setdefault("vibexp_changed_tenants", set()).add(tenant_id)


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    keys: set[str] = session.info.pop("vibexp_changed_keys", set())
    tenants: set[str] = session.info.pop("vibexp_changed_tenants", set())
    if keys or tenants:
        for listener in list(_listeners):
            listener(keys, tenants)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop("vibexp_changed_keys", None)
    session.info.pop("vibexp_changed_tenants", None)
