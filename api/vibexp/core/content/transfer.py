"""Export and import of a tenant's content as JSON Lines (README.md "Export and import").

One JSON object a line, ``"type"`` first, then the object's own fields; never this server's ids or timestamps (a
prompt's version numbers and their ``created_at`` are its history, so they are kept), so a file moves between
tenants and servers::

    {"type": "prompt", "name": "review", "description": "", "content": "...", "tags": ["code"], "versions": [...],
     "labels": {"production": 1}}
    {"type": "artifact", "project": "web", "slug": "plan", "title": "Plan", "content": "...", ...}
    {"type": "memory", "content": "Prefers tabs", "tags": ["style"], "project": null}

Idempotency uses natural keys, not ids: a prompt is its ``name``, an artifact its ``(project, slug)``, a memory its
``(project, content)`` (compared by a SHA-256 of both, so the import never scans memory texts in SQL). A line whose
key exists and whose fields are equal is ``unchanged``; one whose fields differ ``updated`` (the file wins); else
``created``. So importing the same file twice adds nothing. Consequence for memories: two memories of one tenant
with the same text in the same project are one memory to an import (the second line is ``unchanged``).

Import is all or nothing: every line is parsed and validated first, with no transaction open, and the first bad line
raises ``InvalidInput`` naming its line number; then one short transaction applies them all (an error rolls all of it
back). So a large file does not hold SQLite's one write lock while it is read, and other tenants keep writing. (A
report of failed lines was the other choice; it leaves a half-imported tenant that a second, fixed import must then
reconcile.) Concurrent imports of one file, or a retried one, add each memory once: a memory an import creates
carries its key as ``import_key``, unique per tenant in the database, and the insert skips a key already there.

The reference MCP memory server's ``memory.jsonl`` (modelcontextprotocol/servers ``src/memory``) is read too, in
the same file or alone: an ``entity`` line's observations each become a memory ``"<name>: <observation>"`` (the
name keeps the text meaningful on its own, and keeps equal observations of two entities apart) tagged with the
entity's name and ``entityType``; a ``relation`` line becomes a memory ``"<from> <relationType> <to>"`` tagged
``relation``, ``from`` and ``to``. Tags longer than 64 characters are cut to 64; empty ones are dropped.

Export streams: ``export_lines`` reads one keyset page at a time, each in a short session of its own, so neither the
tenant nor a long transaction is held while a slow client reads.

Prompt lines carry the prompt's history, ``"versions": [...]`` oldest first and ``"labels": {...}``, written and
applied by the hooks of ``LINE_TYPES["prompt"]`` (``vibexp.core.content.prompt_history``, which documents how a
history merges into a prompt that exists). ``LINE_TYPES`` is the per-type table: a type's ``export_extra`` adds
fields to a page of lines (a few queries per page, not one per object), its ``import_extra`` applies them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.access import Actor
from vibexp.core.audit import service as audit
from vibexp.core.clock import utcnow
from vibexp.core.content import schemas
from vibexp.core.content.models import Memory
from vibexp.core.content.prompt_history import HistoryFields, export_history, import_history
from vibexp.core.content.service import ContentStore, artifacts, memories, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.ids import new_id

__all__ = [
    "CONTENT_TYPE",
    "LINE_TYPES",
    "ImportCounts",
    "LineType",
    "export_lines",
    "import_lines",
    "import_lines_in",
    "memory_key",
    "parse_lines",
]

Outcome = Literal["created", "updated", "unchanged"]
#: The media type of an export (one JSON document a line).
CONTENT_TYPE = "application/x-ndjson"
EXPORT_PAGE = 500
MAX_TAG = 64


# -- line models: the import side of the format (a line is validated exactly like the create schema) --------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently lost content


class PromptLine(schemas.PromptCreate, HistoryFields, _Strict):
    """A prompt and, optionally, its ``versions`` and ``labels`` (``vibexp.core.content.prompt_history``)."""

    type: Literal["prompt"]


class ArtifactLine(schemas.ArtifactCreate, _Strict):
    type: Literal["artifact"]


class MemoryLine(schemas.MemoryCreate, _Strict):
    type: Literal["memory"]


class _Reference(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)  # its format may grow; we read what we know


class EntityLine(_Reference):
    type: Literal["entity"]
    name: str = Field(min_length=1)
    entity_type: str = Field(default="", alias="entityType")
    observations: list[str] = []


class RelationLine(_Reference):
    type: Literal["relation"]
    from_: str = Field(min_length=1, alias="from")
    to: str = Field(min_length=1)
    relation_type: str = Field(min_length=1, alias="relationType")


#: Export a page of objects' extra fields (one dict per object, merged into its line).
ExportExtra = Callable[[AsyncSession, Sequence[Any]], Awaitable[list[dict[str, Any]]]]
#: Import a line whose extra fields need more than the store's create/update: given the session, the tenant id,
#: the object the line's natural key found (or None) and the line, apply it all and say what happened; None when
#: the line has no extra fields (the plain create or update then applies).
ImportExtra = Callable[
    [AsyncSession, str, Any, BaseModel], Awaitable[Literal["created", "updated", "unchanged"] | None]
]


@dataclass(frozen=True, slots=True)
class LineType:
    """How one content kind becomes a line and back."""

    store: ContentStore[Any]
    line_model: type[BaseModel]
    create_model: type[BaseModel]
    update_model: type[BaseModel]
    key: tuple[str, ...]  # the natural key (fields of the line and of the model)
    fields: tuple[str, ...]  # exported, in this order, after "type"
    export_extra: ExportExtra | None = None
    import_extra: ImportExtra | None = None


LINE_TYPES: dict[str, LineType] = {
    "prompt": LineType(
        store=prompts,
        line_model=PromptLine,
        create_model=schemas.PromptCreate,
        update_model=schemas.PromptUpdate,
        key=("name",),
        fields=("name", "description", "content", "tags"),
        export_extra=export_history,
        import_extra=import_history,
    ),
    "artifact": LineType(
        store=artifacts,
        line_model=ArtifactLine,
        create_model=schemas.ArtifactCreate,
        update_model=schemas.ArtifactUpdate,
        key=("project", "slug"),
        fields=("project", "slug", "title", "description", "content_type", "content", "tags"),
    ),
    "memory": LineType(
        store=memories,
        line_model=MemoryLine,
        create_model=schemas.MemoryCreate,
        update_model=schemas.MemoryUpdate,
        key=("project", "content"),
        fields=("project", "content", "tags"),
    ),
}
_REFERENCE_TYPES: dict[str, type[BaseModel]] = {"entity": EntityLine, "relation": RelationLine}


def _dumps(value: dict[str, Any]) -> str:
    # ensure_ascii=False keeps the file readable; a raw U+2028 stays inside its line (we split on "\n" only).
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


# -- export -------------------------------------------------------------------------------------------------------
async def export_lines(
    factory: async_sessionmaker[AsyncSession], *, tenant_id: str, actor: Actor, page_size: int = EXPORT_PAGE
) -> AsyncIterator[str]:
    """The tenant's prompts, artifacts and memories, each a line ending in ``"\\n"``, in id order per type.

    One keyset page at a time, each read in its own short transaction: memory stays one page whatever the tenant's
    size. An empty tenant yields nothing. ``content.exported`` is recorded (its own short write) before the first
    page is read.
    """
    async with session_scope(factory, write=True) as session:
        await audit.record(session, tenant_id=tenant_id, action="content.exported", actor=actor)
    for type_name, line_type in LINE_TYPES.items():
        cursor: str | None = None
        while True:
            async with session_scope(factory) as session:
                page = await line_type.store.list(session, tenant_id=tenant_id, limit=page_size, cursor=cursor)
                extras = (
                    await line_type.export_extra(session, page.items)
                    if line_type.export_extra
                    else [{} for _ in page.items]
                )
                lines = [
                    _dumps({"type": type_name, **{f: getattr(obj, f) for f in line_type.fields}, **extra}) + "\n"
                    for obj, extra in zip(page.items, extras, strict=True)
                ]
            for line in lines:
                yield line
            if page.next_cursor is None:
                break
            cursor = page.next_cursor


# -- import -------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Per line type (prompt, artifact, memory): the same three counts.
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, type_name: str, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        counts = self.by_type.setdefault(type_name, {"created": 0, "updated": 0, "unchanged": 0})
        counts[outcome] += 1

    def move(self, type_name: str, source: Outcome, target: Outcome) -> None:
        """One line's outcome turned out otherwise (a memory a concurrent import created first)."""
        setattr(self, source, getattr(self, source) - 1)
        setattr(self, target, getattr(self, target) + 1)
        self.by_type[type_name][source] -= 1
        self.by_type[type_name][target] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "by_type": self.by_type}


def memory_key(project: str | None, content: str) -> bytes:
    """The identity of a memory across tenants and servers: a digest of its project and text."""
    return hashlib.sha256(json.dumps([project, content], ensure_ascii=False).encode()).digest()


#: A parsed line: its number in the file, its type and its validated model (a reference line is several memories).
Parsed = tuple[int, str, BaseModel]
#: Rows a publishing ``INSERT`` writes at once (bounded by SQLite's and PostgreSQL's bind-parameter limits).
PUBLISH_CHUNK = 500


def parse_lines(lines: Iterable[bytes | str]) -> list[Parsed]:
    """Every line parsed and validated, without the database: the first bad line raises ``InvalidInput`` naming it.

    Run before any transaction is opened, so a bad file costs no lock and a good one's write transaction holds
    only the writes (``import_lines``).
    """
    parsed: list[Parsed] = []
    for number, raw in enumerate(lines, start=1):
        parsed.extend((number, type_name, model) for type_name, model in _parse(number, raw))
    return parsed


def _parse(number: int, raw: bytes | str) -> list[tuple[str, BaseModel]]:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidInput(f"line {number}: not UTF-8 text") from None
    if not text.strip():
        return []  # blank lines (a trailing newline, a hand-edited file) carry nothing
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:  # arrays or objects nested about a thousand deep: the decoder's stack ends
        raise InvalidInput(f"line {number}: not JSON this server reads (nested too deeply)") from None
    except ValueError:  # the only other: an integer longer than Python converts (sys.get_int_max_str_digits)
        limit = sys.get_int_max_str_digits()
        raise InvalidInput(f"line {number}: not JSON this server reads (an integer of over {limit} digits)") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"line {number}: not a JSON object")
    given = value.get("type")
    type_name = given if isinstance(given, str) else ""
    line_type = LINE_TYPES.get(type_name)
    reference = _REFERENCE_TYPES.get(type_name)
    if line_type is None and reference is None:
        known = ", ".join(f'"{t}"' for t in (*LINE_TYPES, *_REFERENCE_TYPES))
        raise InvalidInput(f"line {number}: unknown type {json.dumps(given)[:80]} (expected one of {known})")
    try:
        if line_type is not None:
            return [(type_name, line_type.line_model.model_validate(value))]
        assert reference is not None
        return [("memory", memory) for memory in _from_reference(reference.model_validate(value))]
    except ValidationError as exc:
        raise InvalidInput(f"line {number}: {_first_problem(exc)}") from None


@dataclass(slots=True)
class _PlannedMemory:
    """A memory of the file as the import will leave it: new (``stored_id`` None) or one already stored."""

    project: str | None
    content: str
    tags: list[str]
    stored_id: str | None = None
    stored_tags: list[str] | None = None


class _Importer:
    """Applies parsed lines in one transaction. Prompts and artifacts are applied line by line (they are few and
    may carry history); memories, the bulk of a large file, are planned line by line and published at the end in
    ``PUBLISH_CHUNK``-row inserts that skip a memory a concurrent import inserted first (``ON CONFLICT DO
    NOTHING`` on ``(tenant_id, import_key)``, migration 0015_import_idempotence)."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.counts = ImportCounts()
        #: memory_key -> (id, tags) of the tenant's stored memories, loaded at the first memory line
        self._stored: dict[bytes, tuple[str, list[str]]] | None = None
        self._memories: dict[bytes, _PlannedMemory] = {}  # in the file's order

    async def apply(self, parsed: Sequence[Parsed]) -> ImportCounts:
        for number, type_name, line in parsed:
            try:
                if type_name == "memory":
                    await self._memory(line)
                else:
                    await self._apply(type_name, LINE_TYPES[type_name], line)
            except InvalidInput as exc:  # a line valid alone that the stored content refuses (version numbers)
                raise InvalidInput(f"line {number}: {exc.message}") from None
        await self._publish_memories()
        await self.session.flush()
        return self.counts

    async def _apply(self, type_name: str, line_type: LineType, line: BaseModel) -> None:
        values = {f: getattr(line, f) for f in line_type.fields}
        try:
            existing = await line_type.store.get(
                self.session, tenant_id=self.tenant_id, **{f: values[f] for f in line_type.key}
            )
        except NotFound:
            existing = None
        if line_type.import_extra is not None:
            outcome = await line_type.import_extra(self.session, self.tenant_id, existing, line)
            if outcome is not None:
                self.counts.add(type_name, outcome)
                return
        if existing is None:
            data = line_type.create_model.model_validate(values)
            await line_type.store.create(self.session, tenant_id=self.tenant_id, data=data)
            self.counts.add(type_name, "created")
            return
        changes = {f: v for f, v in values.items() if f not in line_type.key and getattr(existing, f) != v}
        if changes:
            await line_type.store.update(
                self.session, obj=existing, data=line_type.update_model.model_validate(changes)
            )
        self.counts.add(type_name, "updated" if changes else "unchanged")

    async def _memory(self, line: BaseModel) -> None:
        assert isinstance(line, MemoryLine)
        key = memory_key(line.project, line.content)
        tags = list(line.tags)
        planned = self._memories.get(key)
        if planned is None:
            if self._stored is None:
                self._stored = await _memory_index(self.session, self.tenant_id)
            stored = self._stored.get(key)
            if stored is None:
                self._memories[key] = _PlannedMemory(line.project, line.content, tags)
                self.counts.add("memory", "created")
                return
            planned = self._memories[key] = _PlannedMemory(
                line.project, line.content, stored[1], stored_id=stored[0], stored_tags=stored[1]
            )
        self.counts.add("memory", "updated" if planned.tags != tags else "unchanged")
        planned.tags = tags  # the file wins; a later line of the same memory wins over an earlier one

    async def _publish_memories(self) -> None:
        now = utcnow()
        new = [(key, m) for key, m in self._memories.items() if m.stored_id is None]
        table = Memory.__table__
        assert isinstance(table, Table)  # a declarative model's is
        dialect = self.session.get_bind().dialect.name
        insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
        # One statement compiled once, run as an executemany (SQLAlchemy's "insertmanyvalues" batches the rows): a
        # multi-VALUES statement per chunk spends seconds compiling thousands of bind parameters.
        statement = insert.on_conflict_do_nothing(index_elements=[table.c.tenant_id, table.c.import_key]).returning(
            table.c.import_key
        )
        for start in range(0, len(new), PUBLISH_CHUNK):
            chunk = new[start : start + PUBLISH_CHUNK]
            rows = [
                {
                    "id": new_id(),
                    "tenant_id": self.tenant_id,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "project": memory.project,
                    "content": memory.content,
                    "tags": memory.tags,
                    "import_key": key.hex(),
                }
                for key, memory in chunk
            ]
            inserted = set((await self.session.execute(statement, rows)).scalars())
            lost = [(key, memory) for key, memory in chunk if key.hex() not in inserted]
            if lost:  # a concurrent import (or a retry of this one) inserted these first: there, not created
                await self._found_instead(lost)
        for memory in self._memories.values():
            if memory.stored_id is not None and memory.stored_tags != memory.tags:
                await self.session.execute(
                    update(Memory)
                    .where(Memory.id == memory.stored_id, Memory.tenant_id == self.tenant_id)
                    .values(tags=memory.tags, version=Memory.version + 1, updated_at=now)
                    .execution_options(synchronize_session=False)
                )

    async def _found_instead(self, lost: list[tuple[bytes, _PlannedMemory]]) -> None:
        found = await self.session.execute(
            select(Memory.import_key, Memory.id, Memory.tags).where(
                Memory.tenant_id == self.tenant_id, Memory.import_key.in_([key.hex() for key, _ in lost])
            )
        )
        by_key = {import_key: (memory_id, list(tags)) for import_key, memory_id, tags in found}
        for key, memory in lost:
            self.counts.move("memory", "created", "unchanged")
            memory.stored_id, memory.stored_tags = by_key[key.hex()]


async def _memory_index(session: AsyncSession, tenant_id: str) -> dict[bytes, tuple[str, list[str]]]:
    """``memory_key -> (id, tags)`` of the tenant's memories, read in keyset pages (no content scan in SQL)."""
    index: dict[bytes, tuple[str, list[str]]] = {}
    last = ""
    while True:
        rows = (
            await session.execute(
                select(Memory.id, Memory.project, Memory.content, Memory.tags)
                .where(Memory.tenant_id == tenant_id, Memory.id > last)
                .order_by(Memory.id)
                .limit(EXPORT_PAGE)
            )
        ).all()
        for memory_id, project, content, tags in rows:
            index.setdefault(memory_key(project, content), (memory_id, list(tags)))
        if len(rows) < EXPORT_PAGE:
            return index
        last = rows[-1][0]


def _tags(*values: str) -> list[str]:
    tags: list[str] = []
    for value in values:
        tag = value.strip()[:MAX_TAG].strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _from_reference(line: BaseModel) -> list[MemoryLine]:
    """The memories that an entity or relation line of the reference memory server's file stands for."""
    if isinstance(line, EntityLine):
        tags = _tags(line.name, line.entity_type)
        return [
            MemoryLine(type="memory", content=f"{line.name}: {observation}", tags=tags)
            for observation in line.observations
            if observation.strip()
        ]
    assert isinstance(line, RelationLine)
    content = f"{line.from_} {line.relation_type} {line.to}"
    return [MemoryLine(type="memory", content=content, tags=_tags("relation", line.from_, line.to))]


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


async def import_lines(
    factory: async_sessionmaker[AsyncSession], *, tenant_id: str, actor: Actor, lines: Iterable[bytes | str]
) -> ImportCounts:
    """Import a file all or nothing; the first bad line raises ``InvalidInput`` naming it and nothing is kept.

    Two steps, so a large file does not hold the database's write lock (SQLite has one per file) while it is read:

    1. ``parse_lines``: every line parsed and validated, in a worker thread, with no transaction open;
    2. one short write transaction (this process's writers' turn, ``db.writing``) applies the parsed lines,
       memories in bulk (``_Importer``), and records ``content.imported`` with the counts. An error rolls all of
       it back.
    """
    parsed = await asyncio.to_thread(parse_lines, lines)
    async with session_scope(factory, write=True) as session:
        return await _apply_parsed(session, tenant_id=tenant_id, actor=actor, parsed=parsed)


async def import_lines_in(
    session: AsyncSession, *, tenant_id: str, actor: Actor, lines: Iterable[bytes | str]
) -> ImportCounts:
    """``import_lines`` in the caller's transaction, for a caller that already holds one (and, on SQLite, this
    process's writers' turn: the dashboard's request session). The caller must roll back on ``InvalidInput``."""
    parsed = await asyncio.to_thread(parse_lines, lines)
    return await _apply_parsed(session, tenant_id=tenant_id, actor=actor, parsed=parsed)


async def _apply_parsed(session: AsyncSession, *, tenant_id: str, actor: Actor, parsed: list[Parsed]) -> ImportCounts:
    counts = await _Importer(session, tenant_id).apply(parsed)
    await audit.record(session, tenant_id=tenant_id, action="content.imported", actor=actor, details=counts.as_dict())
    return counts
