"""After-commit notices: tell listeners in this process what a transaction changed, once it has committed.

Services only flush, so they cannot know when their change becomes visible; they note it on the session instead
(``note(session, Notice.KEY_CHANGED, key.id)``), and the one ``after_commit`` hook here hands each listener of a
notice the values noted under it (in the order noted, repeats kept) once the outermost transaction commits. A
rollback drops the notes; a savepoint's release or rollback neither delivers nor drops them (they wait for the
transaction around it). Other processes learn of the same changes their own way (the key verifier polls
``updated_at``, see ``vibexp.core.keys.verifier``).

It sits beside the database, below every domain, so a lower domain can note what an upper one listens for: the
tenants note ``TENANT_CHANGED`` for the key verifier without importing the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

__all__ = ["Listener", "Notice", "listen", "note", "noted", "unlisten"]


class Notice(StrEnum):
    #: A key's state changed (``vibexp.core.keys.service``, ``.policy``); the value is its id.
    KEY_CHANGED = "key_changed"
    #: A tenant's settings changed (``vibexp.core.tenants.service``); the value is its id.
    TENANT_CHANGED = "tenant_changed"
    #: An alert was opened, not repeated (``vibexp.core.alerts.service``); the value is its kind.
    ALERT_OPENED = "alert_opened"
    #: An OAuth grant's tokens or state changed (``vibexp.core.oauth.service``); the value is its id.
    GRANT_CHANGED = "grant_changed"
    #: A person's role in an account changed, or they left it (``vibexp.core.members.service``); the value is the
    #: user's id.
    MEMBER_CHANGED = "member_changed"


Listener = Callable[[list[str]], None]
_listeners: dict[Notice, list[Listener]] = {notice: [] for notice in Notice}
_PENDING = "vibexp_notices"


def note(session: AsyncSession, notice: Notice, value: str) -> None:
    """Deliver ``value`` to the listeners of ``notice`` once this session's transaction commits."""
    session.sync_session.info.setdefault(_PENDING, {}).setdefault(notice, []).append(value)


def noted(session: AsyncSession, notice: Notice) -> list[str]:
    """What this session's transaction has noted under ``notice`` so far (delivered at its commit)."""
    pending: dict[Notice, list[str]] = session.sync_session.info.get(_PENDING, {})
    return list(pending.get(notice, ()))


def listen(notice: Notice, listener: Listener) -> None:
    """Call ``listener(values)`` after each commit that noted ``notice`` (this process only); once per listener."""
    if listener not in _listeners[notice]:
        _listeners[notice].append(listener)


def unlisten(notice: Notice, listener: Listener) -> None:
    if listener in _listeners[notice]:
        _listeners[notice].remove(listener)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: nothing is committed yet
        return
    pending: dict[Notice, list[str]] = session.info.pop(_PENDING, {})
    for notice, values in pending.items():
        for listener in list(_listeners[notice]):
            listener(values)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    if session.in_nested_transaction():  # a savepoint rolled back: the transaction around it goes on
        return
    session.info.pop(_PENDING, None)
