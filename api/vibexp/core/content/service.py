"""Prompts, artifacts and memories: one generic store per kind, always scoped to a tenant.

An object of another tenant is indistinguishable from a missing one (``NotFound``). Updates take an optional
expected version (from ``If-Match``) and fail with ``PreconditionFailed`` when the object moved on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from pydantic import BaseModel
from sqlalchemy import ARRAY, Select, String, Table, any_, bindparam, cast, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from vibexp.core.access import Actor
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.content import search
from vibexp.core.content.models import Artifact, Memory, Prompt
from vibexp.core.content.versions import MAX_VERSION, record_version
from vibexp.core.errors import AlreadyExists, InvalidInput, NotFound, PreconditionFailed
from vibexp.core.hotread import RowReader
from vibexp.core.hotwrite import RowInserter
from vibexp.core.ids import new_id
from vibexp.core.pagination import (
    DEFAULT_PAGE_SIZE,
    Page,
    decode_cursor,
    decode_ranked_cursor,
    encode_cursor,
    encode_ranked_cursor,
)
from vibexp.core.redaction import mask_keys
from vibexp.core.text import check_storable

__all__ = ["ContentStore", "artifacts", "memories", "prompts"]

ModelT = TypeVar("ModelT", Prompt, Artifact, Memory)

#: A search is planned for its own words, every time (for the rest of its transaction). PostgreSQL caches a
#: statement's plan per connection and, after five runs, may switch to one generic plan for every value, chosen by
#: the average estimated cost: with common words in the mix the generic plan looks cheap, but it intersects the
#: search index with the tenant's whole (tenant_id) index, so every search then reads as many index entries as the
#: tenant has rows (measured at 100,000 rows: 2.6 ms instead of 0.4 for a rare word, 22 instead of 8 for a common
#: one). Planning a search costs ~0.1 ms; this setting, one more round trip.
_PLAN_FOR_THE_WORDS = text("SET LOCAL plan_cache_mode = force_custom_plan")


def _storable(value: str) -> bool:
    try:
        check_storable(value)
    except ValueError:
        return False
    return True


def _describe(obj: Prompt | Artifact | Memory) -> str:
    """How the audit trail names a content object: a prompt's name, an artifact's path, a memory's first words."""
    if isinstance(obj, Prompt):
        return obj.name
    if isinstance(obj, Artifact):
        return f"{obj.project}/{obj.slug}"
    return mask_keys(obj.content)[:80]  # masked before it is cut: a cut key would escape the audit's own masking


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scored(obj: ModelT, score: float) -> ModelT:
    obj.score = float(score)
    return obj


class ContentStore(Generic[ModelT]):
    def __init__(
        self,
        model: type[ModelT],
        *,
        noun: str,
        unique_fields: Sequence[str] = (),
        single_row_create: bool = False,
        after_write: Callable[[AsyncSession, ModelT], Awaitable[None]] | None = None,
        cleared_on_change: tuple[str, frozenset[str]] | None = None,
    ) -> None:
        if single_row_create and after_write is not None:
            raise ValueError("a store with an after-write hook writes more than the row: no single_row_create")
        self.model: type[ModelT] = model
        #: Creating one is a single row and nothing else: adapters may use ``insert`` instead of ``create``.
        self.single_row_create = single_row_create
        #: Called with each created or updated object in the writer's transaction (prompts: record the version).
        self._after_write: Callable[[AsyncSession, ModelT], Awaitable[None]] | None = after_write
        self.noun = noun
        self._unique_fields = unique_fields
        #: (column, fields): an update that sets any of the fields also sets the column to NULL (a memory's
        #: ``import_key`` names the text an import wrote; once the text changes it names nothing).
        self._cleared_on_change = cleared_on_change
        #: Compiled hot reads per engine and key fields (an app has one engine; tests make many: weak keys).
        self._readers: WeakKeyDictionary[AsyncEngine, dict[tuple[str, ...], RowReader]] = WeakKeyDictionary()
        self._inserters: WeakKeyDictionary[AsyncEngine, RowInserter] = WeakKeyDictionary()
        #: The table's column names, in its order (``insert`` gives each a value).
        self._column_keys: tuple[str, ...] = tuple(column.key for column in model.__table__.columns)

    async def create(self, session: AsyncSession, *, tenant_id: str, data: BaseModel) -> ModelT:
        values = data.model_dump()
        await self._ensure_unique(session, tenant_id=tenant_id, values=values)
        obj: ModelT = self.model(tenant_id=tenant_id, version=1, **values)
        session.add(obj)
        await self._flush(session)
        if self._after_write is not None:
            await self._after_write(session, obj)
        return obj

    async def insert(self, engine: AsyncEngine, *, tenant_id: str, data: BaseModel) -> dict[str, Any]:
        """Create an object in one autocommitted statement, without a session (``vibexp.core.hotwrite``), and
        return its columns as ``read`` would. Only for kinds whose create is the single row: a caller that must
        write more in the same transaction uses ``create``. Uniqueness is the database's constraint alone."""
        inserter = self._inserters.get(engine)
        if inserter is None:
            table = self.model.__table__
            assert isinstance(table, Table)  # a declarative model's is
            inserter = self._inserters[engine] = RowInserter(engine, table)
        now = utcnow()
        values = dict.fromkeys(self._column_keys)  # None for the columns no schema carries (a memory's import_key)
        values.update(id=new_id(), tenant_id=tenant_id, version=1, created_at=now, updated_at=now)
        values |= data.model_dump()
        try:
            await inserter.insert(values)
        except IntegrityError:
            if self._unique_fields:  # a unique key taken meanwhile (the id is new)
                raise AlreadyExists(f"that {self.noun} already exists") from None
            raise NotFound("the tenant no longer exists") from None  # the only other constraint: deleted meanwhile
        return values

    async def get(self, session: AsyncSession, *, tenant_id: str, **key: str) -> ModelT:
        if not all(_storable(value) for value in key.values()):  # nothing stored can match it; PG would refuse it
            raise NotFound(f"{self.noun} not found")
        if key.keys() == {"id"}:
            # By primary key: the identity-map lookup skips building and compiling a SELECT on the hottest read.
            found = await session.get(self.model, key["id"])
            if found is None or found.tenant_id != tenant_id:
                raise NotFound(f"{self.noun} not found")
            return found
        query = select(self.model).where(self.model.tenant_id == tenant_id)
        for field, value in key.items():
            query = query.where(getattr(self.model, field) == value)
        obj: ModelT | None = await session.scalar(query)
        if obj is None:
            raise NotFound(f"{self.noun} not found")
        return obj

    async def read(self, engine: AsyncEngine, *, tenant_id: str, **key: str) -> dict[str, Any]:
        """The tenant's object with these key fields (``id=...``, ``name=...``) as a dict of its columns, read
        without a session (``vibexp.core.hotread``): the hottest reads, REST ``GET`` by id and MCP ``get_prompt``.
        Always from the database, never from a cache, so every replica reads every committed write."""
        if not all(_storable(value) for value in key.values()):  # nothing stored can match it; PG would refuse it
            raise NotFound(f"{self.noun} not found")
        fields: tuple[str, ...] = tuple(sorted(key))
        reader = self._readers.setdefault(engine, {}).get(fields)
        if reader is None:
            table = self.model.__table__
            query = select(*table.columns).where(
                table.c.tenant_id == bindparam("tenant_id"), *(table.c[f] == bindparam(f) for f in fields)
            )
            batched = select(*table.columns).where(
                *(table.c[name] == any_(bindparam(name, type_=ARRAY(String()))) for name in ("tenant_id", *fields))
            )
            reader = self._readers[engine][fields] = RowReader(engine, query, batched=batched)
        row = await reader.one(tenant_id=tenant_id, **key)
        if row is None:
            raise NotFound(f"{self.noun} not found")
        return row

    async def list(
        self,
        session: AsyncSession,
        *,
        tenant_id: str,
        q: str | None = None,
        tag: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        filters: dict[str, str] | None = None,
    ) -> Page[ModelT]:
        for name, value in {"q": q, "tag": tag, **(filters or {})}.items():
            if value is not None and not _storable(value):
                raise InvalidInput(f"{name} must not contain NUL (U+0000) or lone surrogates")
        words = search.query_words(q) if q else None
        if words == []:  # a q of only punctuation: nothing can match it (documented in core/content/search.py)
            return Page(items=[], next_cursor=None)
        query = select(self.model).where(self.model.tenant_id == tenant_id)
        for field, value in (filters or {}).items():
            query = query.where(getattr(self.model, field) == value)
        if tag:
            query = query.where(self._has_tag(tag.strip(), dialect=session.get_bind().dialect.name))
        if words:
            return await self._ranked(session, query, words=words, limit=limit, cursor=cursor)
        if cursor:
            query = query.where(self.model.id > decode_cursor(cursor))
        rows = list(await session.scalars(query.order_by(self.model.id).limit(limit + 1)))
        for row in rows:  # the session's identity map may hand back an object an earlier search scored
            row.score = None
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return Page(items=rows[:limit], next_cursor=next_cursor)

    def _has_tag(self, tag: str, *, dialect: str) -> ColumnElement[bool]:
        if dialect == "postgresql":
            # Containment, served by the GIN index on tags::jsonb (migration 0009_content_search): exact element match.
            return cast(self.model.tags, JSONB).contains([tag])
        # Tags are a JSON list; match the element in its serialised text form, encoded by the same json.dumps that
        # wrote it (non-ASCII as \u escapes, quotes escaped), so it matches exactly what PostgreSQL's @> matches.
        element = json.dumps(tag)
        return cast(self.model.tags, String).like(_like_pattern(element), escape="\\")

    async def _ranked(
        self, session: AsyncSession, query: Select[Any], *, words: Sequence[str], limit: int, cursor: str | None
    ) -> Page[ModelT]:
        """Matching rows best first, ties by id; each object's ``score`` set."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            await session.execute(_PLAN_FOR_THE_WORDS)
        rank = search.ranking(self.model.__tablename__, dialect=dialect, words=words)
        ranked = rank.apply(query.add_columns(rank.score.label("score")))
        if cursor:
            score, last_id = decode_ranked_cursor(cursor)
            ranked = ranked.where(rank.after(score, self.model.id, last_id))
        result = await session.execute(ranked.order_by(rank.score.desc(), self.model.id).limit(limit + 1))
        items = [_scored(obj, score) for obj, score in result]
        last = items[limit - 1] if len(items) > limit else None
        next_cursor = encode_ranked_cursor(last.score or 0.0, last.id) if last is not None else None
        return Page(items=items[:limit], next_cursor=next_cursor)

    async def update(
        self, session: AsyncSession, *, obj: ModelT, data: BaseModel, expected_version: int | None = None
    ) -> ModelT:
        """Apply ``data``; with ``expected_version`` only if the stored row still has that version.

        The version check is part of the ``UPDATE`` itself (``WHERE id = ? AND version = ?``), so of concurrent
        writers carrying the same version, in any number of processes, exactly one changes the row: PostgreSQL
        re-checks the predicate after the row lock is released, SQLite serialises writers. Comparing in Python
        after a read would let two of them win.
        """
        if expected_version is not None and expected_version != obj.version:
            raise self._stale(obj.version, expected_version)
        # A null means "leave as is", except for the fields a schema declares clearable (a memory's project).
        clearable: frozenset[str] = getattr(data, "CLEARABLE", frozenset())
        changes = {f: v for f, v in data.model_dump(exclude_unset=True).items() if v is not None or f in clearable}
        if obj.version >= MAX_VERSION:
            raise InvalidInput(f"the {self.noun} has reached the last version number ({MAX_VERSION})")
        if self._cleared_on_change is not None and self._cleared_on_change[1] & changes.keys():
            changes[self._cleared_on_change[0]] = None
        changed_unique = {f: changes[f] for f in self._unique_fields if f in changes and changes[f] != getattr(obj, f)}
        if changed_unique:
            await self._ensure_unique(session, tenant_id=obj.tenant_id, values=changed_unique)
        now = utcnow()
        statement = (
            update(self.model)
            .where(self.model.id == obj.id, self.model.tenant_id == obj.tenant_id)
            .values(**changes, version=self.model.version + 1, updated_at=now)
            .returning(self.model.version)
            .execution_options(synchronize_session=False)
        )
        if expected_version is not None:
            statement = statement.where(self.model.version == expected_version)
        try:
            new_version = await session.scalar(statement)
        except IntegrityError:  # a concurrent write took the unique name meanwhile
            raise AlreadyExists(f"that {self.noun} already exists") from None
        if new_version is None:
            if expected_version is None:  # deleted meanwhile
                raise NotFound(f"{self.noun} not found")
            raise self._stale(None, expected_version)
        for field, value in {**changes, "version": new_version, "updated_at": now}.items():
            set_committed_value(obj, field, value)
        if self._after_write is not None:
            await self._after_write(session, obj)
        return obj

    def _stale(self, current: int | None, expected: int) -> PreconditionFailed:
        at = f"version {current}, " if current is not None else ""
        return PreconditionFailed(f"the {self.noun} changed since you read it ({at}If-Match {expected})")

    async def delete(self, session: AsyncSession, *, obj: ModelT, actor: Actor) -> None:
        """Delete, audited as ``<noun>.deleted`` in the same transaction."""
        await session.delete(obj)
        await audit.record(
            session,
            tenant_id=obj.tenant_id,
            action=f"{self.noun}.deleted",
            actor=actor,
            target=Target(self.noun, id=obj.id, name=_describe(obj)),
        )
        await session.flush()

    async def _ensure_unique(self, session: AsyncSession, *, tenant_id: str, values: dict[str, Any]) -> None:
        if not self._unique_fields or not all(f in values for f in self._unique_fields):
            return
        query = select(self.model.id).where(self.model.tenant_id == tenant_id)
        for field in self._unique_fields:
            query = query.where(getattr(self.model, field) == values[field])
        if await session.scalar(query) is not None:
            described = ", ".join(f"{f}={values[f]!r}" for f in self._unique_fields)
            raise AlreadyExists(f"a {self.noun} with {described} already exists")

    async def _flush(self, session: AsyncSession) -> None:
        try:
            await session.flush()
        except IntegrityError:  # a concurrent insert won the unique race
            raise AlreadyExists(f"that {self.noun} already exists") from None


prompts = ContentStore(
    Prompt,
    noun="prompt",
    unique_fields=("name",),
    after_write=record_version,
)
artifacts = ContentStore(
    Artifact,
    noun="artifact",
    unique_fields=("project", "slug"),
)
memories = ContentStore(
    Memory,
    noun="memory",
    single_row_create=True,
    cleared_on_change=("import_key", frozenset({"content", "project"})),
)
