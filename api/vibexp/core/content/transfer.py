"""Export and import of a tenant's content as JSON Lines (DESIGN.md "Content: versions, search, projects, export").

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

Import is all or nothing: every line is applied inside the caller's one transaction and the first bad line raises
``InvalidInput`` naming its line number, so the caller's rollback leaves the tenant as it was. (A report of failed
lines was the other choice; it leaves a half-imported tenant that a second, fixed import must then reconcile.)

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

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.content import schemas
from vibexp.core.content.models import Memory
from vibexp.core.content.prompt_history import HistoryFields, export_history, import_history
from vibexp.core.content.service import ContentStore, artifacts, memories, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import InvalidInput, NotFound

__all__ = [
    "CONTENT_TYPE",
    "LINE_TYPES",
    "ImportCounts",
    "LineType",
    "export_lines",
    "import_lines",
    "memory_key",
]

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
    factory: async_sessionmaker[AsyncSession], *, tenant_id: str, page_size: int = EXPORT_PAGE
) -> AsyncIterator[str]:
    """The tenant's prompts, artifacts and memories, each a line ending in ``"\\n"``, in id order per type.

    One keyset page at a time, each read in its own short transaction: memory stays one page whatever the tenant's
    size. An empty tenant yields nothing.
    """
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

    def add(self, type_name: str, outcome: Literal["created", "updated", "unchanged"]) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        counts = self.by_type.setdefault(type_name, {"created": 0, "updated": 0, "unchanged": 0})
        counts[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "by_type": self.by_type}


def memory_key(project: str | None, content: str) -> bytes:
    """The identity of a memory across tenants and servers: a digest of its project and text."""
    return hashlib.sha256(json.dumps([project, content], ensure_ascii=False).encode()).digest()


class _Importer:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.counts = ImportCounts()
        self._memory_ids: dict[bytes, str] | None = None  # memory_key -> id, loaded at the first memory line

    async def line(self, number: int, raw: bytes | str) -> None:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise InvalidInput(f"line {number}: not UTF-8 text") from None
        if not text.strip():
            return  # blank lines (a trailing newline, a hand-edited file) carry nothing
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"line {number}: not a JSON object")
        given = value.get("type")
        type_name = given if isinstance(given, str) else ""
        line_type = LINE_TYPES.get(type_name)
        reference = _REFERENCE_TYPES.get(type_name)
        if line_type is None and reference is None:
            known = ", ".join(f'"{t}"' for t in (*LINE_TYPES, *_REFERENCE_TYPES))
            raise InvalidInput(f"line {number}: unknown type {json.dumps(given)} (expected one of {known})")
        try:
            if line_type is not None:
                await self._apply(type_name, line_type, line_type.line_model.model_validate(value))
            else:
                assert reference is not None
                for memory in _from_reference(reference.model_validate(value)):
                    await self._apply("memory", LINE_TYPES["memory"], memory)
        except ValidationError as exc:
            raise InvalidInput(f"line {number}: {_first_problem(exc)}") from None

    async def _apply(self, type_name: str, line_type: LineType, line: BaseModel) -> None:
        values = {f: getattr(line, f) for f in line_type.fields}
        existing = await self._find(type_name, line_type, values)
        if line_type.import_extra is not None:
            outcome = await line_type.import_extra(self.session, self.tenant_id, existing, line)
            if outcome is not None:
                self.counts.add(type_name, outcome)
                return
        if existing is None:
            data = line_type.create_model.model_validate(values)
            obj = await line_type.store.create(self.session, tenant_id=self.tenant_id, data=data)
            if type_name == "memory" and self._memory_ids is not None:
                self._memory_ids[memory_key(obj.project, obj.content)] = obj.id
            self.counts.add(type_name, "created")
            return
        changes = {f: v for f, v in values.items() if f not in line_type.key and getattr(existing, f) != v}
        if changes:
            await line_type.store.update(
                self.session, obj=existing, data=line_type.update_model.model_validate(changes)
            )
        self.counts.add(type_name, "updated" if changes else "unchanged")

    async def _find(self, type_name: str, line_type: LineType, values: dict[str, Any]) -> Any:
        if type_name == "memory":
            if self._memory_ids is None:
                self._memory_ids = await _memory_index(self.session, self.tenant_id)
            found = self._memory_ids.get(memory_key(values["project"], values["content"]))
            return None if found is None else await memories.get(self.session, tenant_id=self.tenant_id, id=found)
        try:
            return await line_type.store.get(
                self.session, tenant_id=self.tenant_id, **{f: values[f] for f in line_type.key}
            )
        except NotFound:
            return None


async def _memory_index(session: AsyncSession, tenant_id: str) -> dict[bytes, str]:
    """``memory_key -> id`` of the tenant's memories, read in keyset pages of (id, project, content) only."""
    index: dict[bytes, str] = {}
    last = ""
    while True:
        rows = (
            await session.execute(
                select(Memory.id, Memory.project, Memory.content)
                .where(Memory.tenant_id == tenant_id, Memory.id > last)
                .order_by(Memory.id)
                .limit(EXPORT_PAGE)
            )
        ).all()
        for memory_id, project, content in rows:
            index.setdefault(memory_key(project, content), memory_id)
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


async def import_lines(session: AsyncSession, *, tenant_id: str, lines: Iterable[bytes | str]) -> ImportCounts:
    """Apply every line (numbered from 1) in ``session``; the first bad line raises ``InvalidInput`` naming it.

    The caller owns the transaction and must roll it back on that error (``session_scope`` and the REST session
    dependency do), which is what makes an import all or nothing.
    """
    importer = _Importer(session, tenant_id)
    for number, raw in enumerate(lines, start=1):
        await importer.line(number, raw)
    await session.flush()
    return importer.counts
