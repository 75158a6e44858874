"""The account's action log as the usage page reads it: filtered by credential (an API key's or an OAuth grant's id),
tool and outcome, a cursor page at a time, and counted by outcome over a window; ``owner`` keeps the actions of one
person's keys and grants (a user id) or of the service keys (``keys.service.SERVICE_KEYS``), as the key list reads
it. Only actions: an MCP client's protocol set-up (``vibexp.core.usage.actions``) is recorded but neither listed nor
counted here. (Failed authentications never reach the log: ``vibexp.core.alerts.overview`` counts them from the
alerts they raised.)"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.errors import InvalidInput
from vibexp.core.keys.service import key_ids_of
from vibexp.core.oauth.models import OAuthClient, OAuthGrant
from vibexp.core.oauth.service import grant_ids_of, grant_name
from vibexp.core.pagination import Page, decode_cursor, encode_cursor
from vibexp.core.usage.actions import shown
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.outcomes import OUTCOMES, Outcome
from vibexp.core.usage.tool_type import ToolType
from vibexp.core.users.models import User

__all__ = ["GrantName", "grant_names", "list_actions", "of_credential", "outcome_counts", "owned_by"]


def of_credential(credential_id: str) -> ColumnElement[bool]:
    """The actions of one credential: the API key or the OAuth grant of that id (ids are unique across both)."""
    return or_(KeyAction.key_id == credential_id, KeyAction.grant_id == credential_id)


def owned_by(tenant_id: str, owner: str) -> ColumnElement[bool]:
    """The actions of ``owner``'s credentials: a user's personal keys and OAuth grants, or the service keys."""
    return or_(
        KeyAction.key_id.in_(key_ids_of(tenant_id, owner)), KeyAction.grant_id.in_(grant_ids_of(tenant_id, owner))
    )


class GrantName(NamedTuple):
    """How the pages name a grant: "<client> (OAuth)" and its person's e-mail."""

    name: str
    email: str


async def grant_names(
    session: AsyncSession, *, tenant_id: str, grant_ids: Iterable[str | None]
) -> dict[str, GrantName]:
    """The account's grants among ``grant_ids`` (``None``s skipped), each named (``GrantName``); one query, none
    when there is no id. Keys are named by the key list the pages have anyway."""
    wanted = {grant_id for grant_id in grant_ids if grant_id is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(OAuthGrant.id, OAuthClient.name, User.email)
        .join(OAuthClient, OAuthClient.id == OAuthGrant.client_id)
        .join(User, User.id == OAuthGrant.user_id)
        .where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.id.in_(wanted))
    )
    return {grant_id: GrantName(grant_name(client), email) for grant_id, client, email in rows}


def _status_in(outcome: Outcome) -> Any:
    return or_(*(and_(KeyAction.status >= low, KeyAction.status < high) for low, high in OUTCOMES[outcome].ranges))


async def list_actions(
    session: AsyncSession,
    *,
    tenant_id: str,
    key_id: str | None = None,
    tool_type: str | None = None,
    outcome: Outcome | None = None,
    owner: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[KeyAction]:
    """Newest first; ``tool_type`` must be a ``ToolType`` (else ``InvalidInput``); the cursor is the last row's id."""
    query = select(KeyAction).where(KeyAction.tenant_id == tenant_id, shown())
    if key_id is not None:
        query = query.where(of_credential(key_id))
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    if tool_type is not None:
        try:
            tool = ToolType(tool_type)
        except ValueError:
            raise InvalidInput(f"unknown tool {tool_type!r}; one of: {', '.join(ToolType)}") from None
        query = query.where(KeyAction.tool_type == tool.value)
    if outcome is not None:
        query = query.where(_status_in(outcome))
    if cursor:
        last = decode_cursor(cursor)
        if not last.isdigit():
            raise InvalidInput("invalid cursor: pass the next_cursor value of the previous page")
        query = query.where(KeyAction.id < int(last))
    rows = list(await session.scalars(query.order_by(KeyAction.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(str(rows[limit - 1].id)) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def outcome_counts(
    session: AsyncSession, *, tenant_id: str, since: datetime, key_id: str | None = None, owner: str | None = None
) -> dict[Outcome, int]:
    """Actions since ``since`` per outcome, every outcome present (zeros included); one query."""
    where: Sequence[Any] = [KeyAction.tenant_id == tenant_id, KeyAction.at >= since, shown()]
    if key_id is not None:
        where = [*where, of_credential(key_id)]
    if owner is not None:
        where = [*where, owned_by(tenant_id, owner)]
    sums = [func.coalesce(func.sum(case((_status_in(outcome), 1), else_=0)), 0) for outcome in Outcome]
    row = (await session.execute(select(*sums).where(*where))).one()
    return {outcome: int(value or 0) for outcome, value in zip(Outcome, row, strict=True)}
