"""Immutable prompt versions and the labels that point at them.

Every prompt write (create, update; from REST, MCP or the dashboard, all through ``service.prompts``) appends the
prompt as it now is to ``prompt_versions`` in the same transaction: ``record_version`` is the prompts store's
after-write hook. The prompt row keeps the latest content, and its ``version`` stays the ETag, equal to the newest
version number. Labels (``production``, ``staging``, …) are movable names for one version each; rolling back is
moving ``production`` to an older version. ``PRODUCTION`` is what MCP ``prompts/get`` serves when it exists.

A version or label of another tenant's prompt is indistinguishable from a missing one (``NotFound``): every read
goes through the prompt row, scoped to the tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.content.models import Prompt
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page, decode_cursor, encode_cursor

__all__ = [
    "LABEL_PATTERN",
    "MAX_VERSION",
    "PRODUCTION",
    "LabelMove",
    "PromptLabel",
    "PromptVersion",
    "VersionedPrompt",
    "check_label",
    "check_version",
    "delete_label",
    "get_version",
    "labels_by_version",
    "list_versions",
    "production_versions",
    "record_version",
    "resolve",
    "serving_version",
    "set_label",
]

#: A label is a slug: lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters
#: (it appears in URLs and query strings unescaped).
LABEL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_LABEL = re.compile(LABEL_PATTERN)
PRODUCTION = "production"
#: The highest version number: the columns are 32-bit integers (PostgreSQL ``integer``). Every number a client
#: sends is checked against it (``version_schemas.VersionNumber`` at the edges, ``check_version`` here), so a larger
#: one is a 422 naming the field, never a database error.
MAX_VERSION = 2**31 - 1


class PromptVersion(Base):
    """The prompt's fields as they were written at ``version``; never changed, removed only with the prompt."""

    __tablename__ = "prompt_versions"

    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000), default="")
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptLabel(Base):
    """``label`` of a prompt names one of its versions (the composite key refuses a version that does not exist)."""

    __tablename__ = "prompt_labels"
    __table_args__ = (
        ForeignKeyConstraint(
            ["prompt_id", "version"],
            ["prompt_versions.prompt_id", "prompt_versions.version"],
            ondelete="CASCADE",
        ),
    )

    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True, slots=True)
class VersionedPrompt:
    """A prompt as it was at one version: the live row (id, created_at, latest version) and that version."""

    prompt: Prompt
    entry: PromptVersion
    labels: list[str]

    def as_dict(self) -> dict[str, object]:
        """The prompt's JSON fields with the version's content; ``updated_at`` is when that version was written."""
        return {
            "id": self.prompt.id,
            "name": self.entry.name,
            "description": self.entry.description,
            "content": self.entry.content,
            "tags": self.entry.tags,
            "version": self.entry.version,
            "created_at": self.prompt.created_at,
            "updated_at": self.entry.created_at,
            "latest_version": self.prompt.version,
            "labels": self.labels,
        }


async def record_version(session: AsyncSession, prompt: Prompt) -> None:
    """The prompts store's after-write hook: append the row as just written (same transaction, so a rolled-back
    write leaves no version). A Core insert: nothing is added to the session's identity map."""
    await session.execute(
        insert(PromptVersion).values(
            prompt_id=prompt.id,
            version=prompt.version,
            tenant_id=prompt.tenant_id,
            name=prompt.name,
            description=prompt.description,
            content=prompt.content,
            tags=list(prompt.tags),
            created_at=prompt.updated_at,
        )
    )


def check_version(version: int, *, field: str = "version") -> int:
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"{field} must be an integer from 1 to {MAX_VERSION}")
    return version


def check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise InvalidInput(f"label {label[:80]!r} is not a slug (lowercase letters, digits, '-'; up to 63)")
    return label


async def _prompt(session: AsyncSession, *, tenant_id: str, prompt_id: str | None, name: str | None) -> Prompt:
    query = select(Prompt).where(Prompt.tenant_id == tenant_id)
    query = query.where(Prompt.id == prompt_id) if prompt_id is not None else query.where(Prompt.name == name)
    found = await session.scalar(query)
    if found is None:
        raise NotFound("prompt not found")
    return found


async def labels_by_version(session: AsyncSession, *, prompt_id: str) -> dict[int, list[str]]:
    rows = await session.execute(
        select(PromptLabel.version, PromptLabel.label)
        .where(PromptLabel.prompt_id == prompt_id)
        .order_by(PromptLabel.label)
    )
    found: dict[int, list[str]] = {}
    for version, label in rows:
        found.setdefault(version, []).append(label)
    return found


async def list_versions(
    session: AsyncSession,
    *,
    tenant_id: str,
    prompt_id: str,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[Page[PromptVersion], dict[int, list[str]]]:
    """The prompt's versions, newest first, and the labels on each (cursor: the last version number seen)."""
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=prompt_id, name=None)
    query = select(PromptVersion).where(PromptVersion.prompt_id == prompt.id)
    if cursor:
        before = decode_cursor(cursor)
        if not before.isdigit():
            raise InvalidInput("invalid cursor: pass the next_cursor value of the previous page")
        query = query.where(PromptVersion.version < int(before))
    rows = list(await session.scalars(query.order_by(PromptVersion.version.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(str(rows[limit - 1].version)) if len(rows) > limit else None
    page = Page(items=rows[:limit], next_cursor=next_cursor)
    return page, await labels_by_version(session, prompt_id=prompt.id)


async def _entry(session: AsyncSession, prompt: Prompt, version: int) -> PromptVersion:
    entry = await session.get(PromptVersion, (prompt.id, version))
    if entry is None:
        raise NotFound(f"prompt has no version {version} (the latest is {prompt.version})")
    return entry


async def get_version(session: AsyncSession, *, tenant_id: str, prompt_id: str, version: int) -> VersionedPrompt:
    check_version(version)
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=prompt_id, name=None)
    entry = await _entry(session, prompt, version)
    labels = (await labels_by_version(session, prompt_id=prompt.id)).get(version, [])
    return VersionedPrompt(prompt=prompt, entry=entry, labels=labels)


async def resolve(
    session: AsyncSession,
    *,
    tenant_id: str,
    prompt_id: str | None = None,
    name: str | None = None,
    label: str | None = None,
    version: int | None = None,
) -> VersionedPrompt:
    """The prompt (by id or name) at ``version`` or at the version ``label`` points at; at most one of the two,
    neither: the latest. An unknown label or version is ``NotFound``."""
    if label is not None and version is not None:
        raise InvalidInput("pass either label or version, not both")
    if version is not None:
        check_version(version)
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=prompt_id, name=name)
    if label is not None:
        pointed = await session.scalar(
            select(PromptLabel.version).where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == label)
        )
        if pointed is None:
            raise NotFound(f"prompt has no label {label[:80]!r}")
        version = pointed
    entry = await _entry(session, prompt, prompt.version if version is None else version)
    labels = (await labels_by_version(session, prompt_id=prompt.id)).get(entry.version, [])
    return VersionedPrompt(prompt=prompt, entry=entry, labels=labels)


async def serving_version(session: AsyncSession, *, tenant_id: str, name: str) -> PromptVersion:
    """What MCP ``prompts/get`` serves: the version labelled ``production`` if there is one, else the latest."""
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=None, name=name)
    pointed = await session.scalar(
        select(PromptLabel.version).where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == PRODUCTION)
    )
    return await _entry(session, prompt, prompt.version if pointed is None else pointed)


async def production_versions(session: AsyncSession, *, prompt_ids: list[str]) -> dict[str, PromptVersion]:
    """The ``production`` version of each of these prompts that has one (one query for a page of prompts), so
    MCP ``prompts/list`` describes the arguments of what ``prompts/get`` serves."""
    if not prompt_ids:
        return {}
    rows = await session.scalars(
        select(PromptVersion)
        .join(
            PromptLabel,
            (PromptLabel.prompt_id == PromptVersion.prompt_id) & (PromptLabel.version == PromptVersion.version),
        )
        .where(PromptLabel.label == PRODUCTION, PromptLabel.prompt_id.in_(prompt_ids))
    )
    return {entry.prompt_id: entry for entry in rows}


@dataclass(frozen=True, slots=True)
class LabelMove:
    """A label after ``set_label``, the prompt it belongs to, and the version it pointed at before (None: new)."""

    prompt: Prompt
    label: PromptLabel
    previous: int | None

    @property
    def changed(self) -> bool:
        return self.previous != self.label.version


async def set_label(session: AsyncSession, *, tenant_id: str, prompt_id: str, label: str, version: int) -> LabelMove:
    """Create ``label`` or move it to ``version``. A version the prompt does not have is ``InvalidInput`` (422):
    the prompt exists, the body names something that does not.

    A ``PUT`` is idempotent, so concurrent ones all succeed and the last to commit wins: the write is one upsert
    (``INSERT … ON CONFLICT (prompt_id, label) DO UPDATE``), never an insert that a concurrent one can beat. The
    label's row is read first ``FOR UPDATE`` (PostgreSQL; SQLite has one writer), so ``previous`` is exact.
    """
    check_label(label)
    check_version(version)
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=prompt_id, name=None)
    if await session.get(PromptVersion, (prompt.id, version)) is None:
        raise InvalidInput(f"prompt has no version {version} (the latest is {prompt.version})")
    previous = await session.scalar(
        select(PromptLabel.version)
        .where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == label)
        .with_for_update()
    )
    now = utcnow()
    dialect = session.get_bind().dialect.name
    upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(PromptLabel).values(
        prompt_id=prompt.id, label=label, version=version, updated_at=now
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[PromptLabel.prompt_id, PromptLabel.label],
        set_={"version": upsert.excluded.version, "updated_at": upsert.excluded.updated_at},
    )
    await session.execute(upsert)
    stored = await session.get(PromptLabel, (prompt.id, label), populate_existing=True)
    assert stored is not None  # just written in this transaction
    return LabelMove(prompt=prompt, label=stored, previous=previous)


async def delete_label(session: AsyncSession, *, tenant_id: str, prompt_id: str, label: str) -> tuple[Prompt, int]:
    """Remove ``label``; the prompt and the version the label pointed at."""
    check_label(label)
    prompt = await _prompt(session, tenant_id=tenant_id, prompt_id=prompt_id, name=None)
    removed = await session.scalar(
        delete(PromptLabel)
        .where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == label)
        .returning(PromptLabel.version)
        .execution_options(synchronize_session=False)
    )
    if removed is None:
        raise NotFound(f"prompt has no label {label!r}")
    return prompt, removed
