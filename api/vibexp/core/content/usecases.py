"""Prompts, artifacts and memories as every adapter uses them: find, list, change, with the caller's scope checked.

REST endpoints, MCP tools, MCP prompts and resources, the dashboard and the CLI call these and nothing below them,
so the scope check (``vibexp.core.access.require``) happens once, here, and a new adapter cannot forget it. Reading
needs ``<resource>:read``, any change ``<resource>:write`` (each method is marked ``_reads``/``_writes``, which is
how an MCP tool learns the scope of the use case it calls); the ``Caller`` is built at the adapter's edge and names
the actor the audit trail records.

Objects are addressed by typed finders, not loose keyword arguments, so a prompt's finder cannot be handed to the
artifacts::

    await usecases.prompts.get(session, caller=principal, where=usecases.prompts.by_id(item_id))
    await usecases.artifacts.update(
        session, caller=principal, where=usecases.artifacts.at(project, slug), data=body, expected_version=2
    )

An update takes the version the caller last read (``If-Match`` over REST, ``expected_version`` over MCP) and fails
with ``PreconditionFailed`` when the object moved on (``ContentStore.update``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vibexp.core.access import Caller, Scope, declare_access, require
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.content import completion, schemas, transfer, versions
from vibexp.core.content import service as stores
from vibexp.core.content.models import Artifact, Memory, Prompt
from vibexp.core.content.queries import ListQuery
from vibexp.core.content.service import ContentStore, ModelT
from vibexp.core.content.versions import PromptLabel, PromptVersion, VersionedPrompt
from vibexp.core.db import Database, session_scope
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page

__all__ = [
    "ArtifactCases",
    "ContentCases",
    "MemoryCases",
    "PromptCases",
    "Where",
    "artifacts",
    "export_lines",
    "import_lines",
    "import_lines_in",
    "memories",
    "prompts",
]


_F = TypeVar("_F", bound=Callable[..., Any])


def _reads(fn: _F) -> _F:
    """A use case that needs its kind's read scope (``vibexp.core.access.required_scope`` reads the mark)."""
    return declare_access(fn, "read")


def _writes(fn: _F) -> _F:
    """A use case that needs its kind's write scope."""
    return declare_access(fn, "write")


@dataclass(frozen=True, slots=True)
class Where(Generic[ModelT]):
    """Which one object of a kind: the key fields a typed finder (``by_id``, ``by_name``, ``at``) names."""

    fields: tuple[tuple[str, str], ...]

    def key(self) -> dict[str, str]:
        return dict(self.fields)


class ContentCases(Generic[ModelT]):
    """The use cases of one kind of content, on its ``ContentStore``, behind ``<resource>:read`` / ``:write``."""

    def __init__(self, store: ContentStore[ModelT], *, resource: str) -> None:
        self.store: ContentStore[ModelT] = store
        self.read_scope = Scope(f"{resource}:read")
        self.write_scope = Scope(f"{resource}:write")

    def check_readable(self, caller: Caller) -> None:
        """Refuse unless ``caller`` may read this kind (a catalogue that lists no rows, e.g. resource templates)."""
        require(caller, self.read_scope)

    @_reads
    async def get(self, session: AsyncSession, *, caller: Caller, where: Where[ModelT]) -> ModelT:
        require(caller, self.read_scope)
        return await self.store.get(session, tenant_id=caller.tenant_id, **where.key())

    @_reads
    async def read(self, engine: AsyncEngine, *, caller: Caller, where: Where[ModelT]) -> dict[str, Any]:
        """The hot read: the row as a dict, without a session (``ContentStore.read``)."""
        require(caller, self.read_scope)
        return await self.store.read(engine, tenant_id=caller.tenant_id, **where.key())

    @_reads
    async def find(self, database: Database, *, caller: Caller, where: Where[ModelT]) -> dict[str, Any]:
        """One object as a dict of its columns, the fastest way this kind allows (here: the hot read). Adapters ask
        for this and never choose between ``read`` and ``get`` themselves."""
        return await self.read(database.engine, caller=caller, where=where)

    @_reads
    async def list(self, session: AsyncSession, *, caller: Caller, query: ListQuery) -> Page[ModelT]:
        require(caller, self.read_scope)
        return await self.store.list(
            session,
            tenant_id=caller.tenant_id,
            q=query.q,
            tag=query.tag,
            limit=query.limit,
            cursor=query.cursor,
            filters=query.filters(),
        )

    @_writes
    async def create(self, session: AsyncSession, *, caller: Caller, data: BaseModel) -> ModelT:
        require(caller, self.write_scope)
        return await self.store.create(session, tenant_id=caller.tenant_id, data=data)

    @_writes
    async def add(self, database: Database, *, caller: Caller, data: BaseModel) -> ModelT | dict[str, Any]:
        """Create one object, the fastest way this kind allows, in a unit of work of its own: one autocommitted
        INSERT where the kind's create is one row (``insert``: a memory), else a write unit (``create``: a prompt
        also writes its first version). Adapters ask for this and never choose between ``create`` and ``insert``
        themselves; the result is the object or its columns, which a read schema validates alike."""
        if self.store.single_row_create:
            return await self.insert(database.engine, caller=caller, data=data)
        async with session_scope(database.session_factory, write=True) as session:
            return await self.create(session, caller=caller, data=data)

    @_writes
    async def insert(self, engine: AsyncEngine, *, caller: Caller, data: BaseModel) -> dict[str, Any]:
        """The hot write of a kind whose create is one row (``ContentStore.insert``)."""
        require(caller, self.write_scope)
        return await self.store.insert(engine, tenant_id=caller.tenant_id, data=data)

    @_writes
    async def update(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        where: Where[ModelT],
        data: BaseModel,
        expected_version: int | None = None,
    ) -> ModelT:
        require(caller, self.write_scope)
        obj = await self.store.get(session, tenant_id=caller.tenant_id, **where.key())
        return await self.store.update(session, obj=obj, data=data, expected_version=expected_version)

    @_writes
    async def delete(self, session: AsyncSession, *, caller: Caller, where: Where[ModelT]) -> None:
        require(caller, self.write_scope)
        obj = await self.store.get(session, tenant_id=caller.tenant_id, **where.key())
        await self.store.delete(session, obj=obj, actor=caller.actor)


class PromptCases(ContentCases[Prompt]):
    """Prompts, by id (REST) or by name (MCP), with their versions and labels."""

    @staticmethod
    def by_id(prompt_id: str) -> Where[Prompt]:
        return Where((("id", prompt_id),))

    @staticmethod
    def by_name(name: str) -> Where[Prompt]:
        return Where((("name", name),))

    @_reads
    async def resolve(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        where: Where[Prompt],
        label: str | None = None,
        version: int | None = None,
    ) -> VersionedPrompt:
        """The prompt at ``version``, or at the version ``label`` points at (not both), or the latest."""
        require(caller, self.read_scope)
        if label is not None and version is not None:
            raise InvalidInput("pass either label or version, not both")
        key = where.key()
        return await versions.resolve(
            session,
            tenant_id=caller.tenant_id,
            prompt_id=key.get("id"),
            name=key.get("name"),
            label=label,
            version=version,
        )

    @_reads
    async def find(  # a prompt is also found at a label or a version
        self,
        database: Database,
        *,
        caller: Caller,
        where: Where[Prompt],
        label: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """The prompt's JSON fields: the latest through the session-less hot read (``vibexp.core.hotread``), or, at
        a ``label`` or ``version``, that version's (with ``latest_version`` and ``labels``) in a read unit of work."""
        if label is None and version is None:
            return await self.read(database.engine, caller=caller, where=where)
        async with session_scope(database.session_factory) as session:
            found = await self.resolve(session, caller=caller, where=where, label=label, version=version)
        return found.as_dict()

    @_reads
    async def list_versions(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        prompt_id: str,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> tuple[Page[PromptVersion], dict[int, list[str]]]:
        require(caller, self.read_scope)
        return await versions.list_versions(
            session, tenant_id=caller.tenant_id, prompt_id=prompt_id, limit=limit, cursor=cursor
        )

    @_reads
    async def get_version(
        self, session: AsyncSession, *, caller: Caller, prompt_id: str, number: int
    ) -> VersionedPrompt:
        require(caller, self.read_scope)
        return await versions.get_version(session, tenant_id=caller.tenant_id, prompt_id=prompt_id, version=number)

    @_reads
    async def complete_names(
        self, session: AsyncSession, *, caller: Caller, prefix: str, limit: int
    ) -> tuple[list[str], bool]:
        """Prompt names starting with ``prefix``, in order, at most ``limit``, and whether there are more."""
        require(caller, self.read_scope)
        return await completion.complete_names(session, tenant_id=caller.tenant_id, prefix=prefix, limit=limit)

    @_reads
    async def serving(self, session: AsyncSession, *, caller: Caller, name: str) -> PromptVersion:
        """What MCP ``prompts/get`` serves: the ``production`` version, else the latest."""
        require(caller, self.read_scope)
        return await versions.serving_version(session, tenant_id=caller.tenant_id, name=name)

    @_reads
    async def catalogue(
        self, session: AsyncSession, *, caller: Caller, limit: int, cursor: str | None
    ) -> tuple[Page[Prompt], dict[str, PromptVersion]]:
        """A page of prompts and the ``production`` version of those that have one (MCP ``prompts/list``)."""
        page = await self.list(session, caller=caller, query=ListQuery(limit=limit, cursor=cursor))
        served = await versions.production_versions(session, prompt_ids=[p.id for p in page.items])
        return page, served

    @_reads
    async def production_numbers(
        self, session: AsyncSession, *, caller: Caller, prompt_ids: list[str]
    ) -> dict[str, int]:
        """The ``production`` version number of each of these prompts of the account that has one (one query)."""
        require(caller, self.read_scope)
        served = await versions.production_versions(session, prompt_ids=prompt_ids)
        return {pid: entry.version for pid, entry in served.items() if entry.tenant_id == caller.tenant_id}

    @_writes
    async def set_label(
        self, session: AsyncSession, *, caller: Caller, prompt_id: str, label: str, version: int
    ) -> PromptLabel:
        """Create or move a label (idempotent: repeating it, or racing it, succeeds); a move is audited as
        ``prompt.label_moved`` with the versions it pointed from and to (from None: a new label)."""
        require(caller, self.write_scope)
        move = await versions.set_label(
            session, tenant_id=caller.tenant_id, prompt_id=prompt_id, label=label, version=version
        )
        if move.changed:
            await audit.record(
                session,
                tenant_id=caller.tenant_id,
                action="prompt.label_moved",
                actor=caller.actor,
                target=Target("prompt", id=move.prompt.id, name=move.prompt.name),
                details={"label": label, "from_version": move.previous, "to_version": move.label.version},
            )
        return move.label

    @_writes
    async def delete_label(self, session: AsyncSession, *, caller: Caller, prompt_id: str, label: str) -> None:
        require(caller, self.write_scope)
        prompt, removed = await versions.delete_label(
            session, tenant_id=caller.tenant_id, prompt_id=prompt_id, label=label
        )
        await audit.record(
            session,
            tenant_id=caller.tenant_id,
            action="prompt.label_removed",
            actor=caller.actor,
            target=Target("prompt", id=prompt.id, name=prompt.name),
            details={"label": label, "from_version": removed},
        )


class ArtifactCases(ContentCases[Artifact]):
    """Artifacts, addressed by project and slug."""

    @staticmethod
    def at(project: str, slug: str) -> Where[Artifact]:
        return Where((("project", project), ("slug", slug)))

    @_reads
    async def complete_projects(
        self, session: AsyncSession, *, caller: Caller, prefix: str, limit: int
    ) -> tuple[list[str], bool]:
        """Artifact projects starting with ``prefix``, in order, at most ``limit``, and whether there are more."""
        require(caller, self.read_scope)
        return await completion.complete_projects(session, tenant_id=caller.tenant_id, prefix=prefix, limit=limit)

    @_reads
    async def complete_slugs(
        self, session: AsyncSession, *, caller: Caller, project: str, prefix: str, limit: int
    ) -> tuple[list[str], bool]:
        """Slugs in ``project`` starting with ``prefix``, in order, at most ``limit``, and whether there are more."""
        require(caller, self.read_scope)
        return await completion.complete_slugs(
            session, tenant_id=caller.tenant_id, project=project, prefix=prefix, limit=limit
        )

    @_writes
    async def save(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        project: str,
        slug: str,
        content: str,
        title: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        expected_version: int | None = None,
    ) -> Artifact:
        """Create or replace the artifact at ``project``/``slug``: a new one gets ``title`` (default: the slug);
        for an existing one only the fields given change. ``expected_version`` on a missing artifact is
        ``NotFound`` (the version the caller read is gone), never a silent create."""
        require(caller, self.write_scope)
        try:
            existing = await self.store.get(session, tenant_id=caller.tenant_id, project=project, slug=slug)
        except NotFound:
            if expected_version is not None:
                raise
            create = schemas.ArtifactCreate(
                project=project,
                slug=slug,
                title=title or slug,
                content=content,
                content_type=content_type or "text/markdown",
                description=description or "",
                tags=tags or [],
            )
            return await self.store.create(session, tenant_id=caller.tenant_id, data=create)
        changes = _given(title=title, content=content, content_type=content_type, description=description, tags=tags)
        update = schemas.ArtifactUpdate(**changes)
        return await self.store.update(session, obj=existing, data=update, expected_version=expected_version)


class MemoryCases(ContentCases[Memory]):
    """Memories, by id."""

    @staticmethod
    def by_id(memory_id: str) -> Where[Memory]:
        return Where((("id", memory_id),))


def _given(**fields: Any) -> dict[str, Any]:
    """The fields a caller passed (an MCP tool's optional arguments default to None: not given, no change)."""
    return {name: value for name, value in fields.items() if value is not None}


prompts = PromptCases(stores.prompts, resource="prompts")
artifacts = ArtifactCases(stores.artifacts, resource="artifacts")
memories = MemoryCases(stores.memories, resource="memories")
_ALL: tuple[ContentCases[Any], ...] = (prompts, artifacts, memories)


def export_lines(factory: async_sessionmaker[AsyncSession], *, caller: Caller) -> AsyncIterator[str]:
    """The caller's whole content as JSON Lines: needs every content ``:read`` scope, checked now, before the
    first line (an adapter streams the lines after it has answered with a status). Audited as
    ``content.exported`` when the first page is read (an export cut short was still an export)."""
    for cases in _ALL:
        require(caller, cases.read_scope)
    return transfer.export_lines(factory, tenant_id=caller.tenant_id, actor=caller.actor)


async def import_lines(
    factory: async_sessionmaker[AsyncSession], *, caller: Caller, lines: Iterable[bytes | str]
) -> transfer.ImportCounts:
    """Apply a JSON Lines file all or nothing: needs every content ``:write`` scope. The file is parsed before any
    transaction and published in one short one (``transfer.import_lines``); audited as ``content.imported``."""
    for cases in _ALL:
        require(caller, cases.write_scope)
    return await transfer.import_lines(factory, tenant_id=caller.tenant_id, actor=caller.actor, lines=lines)


async def import_lines_in(
    session: AsyncSession, *, caller: Caller, lines: Iterable[bytes | str]
) -> transfer.ImportCounts:
    """``import_lines`` in the caller's own transaction (the dashboard's request session, which already holds this
    process's SQLite writers' turn: taking it again would wait for itself). Roll back on ``InvalidInput``."""
    for cases in _ALL:
        require(caller, cases.write_scope)
    return await transfer.import_lines_in(session, tenant_id=caller.tenant_id, actor=caller.actor, lines=lines)
