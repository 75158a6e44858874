"""A prompt's versions and labels in export/import lines: the prompt entry's hooks of ``transfer.LINE_TYPES``.

An exported prompt line carries its whole history, oldest first, and its labels::

    {"type": "prompt", "name": "review", "description": "", "content": "v3", "tags": [],
     "versions": [{"version": 1, "name": "review", "description": "", "content": "v1", "tags": [],
                   "created_at": "2026-12-01T09:00:00+00:00"}, ...],
     "labels": {"production": 2}}

The line's own fields are the prompt as it is now; ``versions`` is how it got there. In a version, ``name``
defaults to the line's name, ``description`` / ``tags`` to empty and ``created_at`` to the time of the import;
numbers must increase (gaps are fine: a prompt created before versions were stored starts at its old version).
Each label must point at a version of the line.

Import, least surprising and idempotent: history is merged, never replaced or deleted.

* A version of the file is already there when the prompt has a version with the same fields (name, description,
  content, tags): the one with the same number if it matches, else the lowest-numbered match after the version
  matched before it. A version that is not there is appended as number ``max(its number, newest + 1)``: a new
  prompt gets exactly the file's numbers; a prompt whose history differs keeps its own versions and gets the
  file's after them, renumbered.
* Then the line's own fields, as for every type, win: if they differ from the newest version, one more version is
  written with them. So the prompt's ``version`` (its ETag) is always its newest version, and its fields that
  version's.
* Labels of the file point at the (possibly renumbered) versions their versions matched or became; the file wins
  over a label of the same name, and labels the file does not name are kept.

So importing the same file twice matches every version the second time and changes nothing; a round trip into
another tenant reproduces numbers, timestamps and labels. A line without ``versions`` imports as before this
module: created as version 1, or updated as one more version.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from vibexp.core.clock import utcnow
from vibexp.core.content.models import Prompt
from vibexp.core.content.schemas import Description, PromptCreate, PromptName, Tags, Text
from vibexp.core.content.version_schemas import LabelName, VersionNumber
from vibexp.core.content.versions import MAX_VERSION, PromptLabel, PromptVersion
from vibexp.core.errors import AlreadyExists, InvalidInput

__all__ = ["HistoryFields", "VersionLine", "export_history", "import_history"]

Outcome = Literal["created", "updated", "unchanged"]
#: (name, description, content, tags): what makes two versions the same version.
_Fields = tuple[str, str, str, tuple[str, ...]]


def _in_utc(value: datetime) -> datetime:
    """The time in UTC; one that falls outside years 1 to 9999 there (``0001-01-01T00:00:00+05:00``) is refused."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("falls outside the years 1 to 9999 once converted to UTC") from None


#: A version's ``created_at``: with a time zone, stored in UTC.
UTCTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class VersionLine(BaseModel):
    """One entry of a prompt line's ``versions``, validated like a prompt write."""

    model_config = ConfigDict(extra="forbid")

    version: VersionNumber
    name: PromptName | None = None  # None: the line's name
    content: Text
    description: Description = ""
    tags: Tags = []
    created_at: UTCTime | None = None  # None: the time of the import


class HistoryFields(BaseModel):
    """The optional history fields of a prompt line and their checks (a bad one is the line's 422)."""

    versions: list[VersionLine] | None = Field(default=None, min_length=1)
    labels: dict[LabelName, VersionNumber] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HistoryFields:
        numbers = [v.version for v in self.versions or []]
        for before, after in pairwise(numbers):
            if after <= before:
                raise ValueError(f"versions must be oldest first with increasing numbers ({after} after {before})")
        for label, version in (self.labels or {}).items():
            if version not in numbers:
                raise ValueError(f"labels: {label!r} points at version {version}, which is not in versions")
        return self


async def export_history(session: AsyncSession, page: Sequence[Prompt]) -> list[dict[str, Any]]:
    """``{"versions": [...], "labels": {...}}`` for each prompt of an export page: two queries per page."""
    ids = [prompt.id for prompt in page]
    if not ids:
        return []
    history: dict[str, list[dict[str, Any]]] = {prompt_id: [] for prompt_id in ids}
    labels: dict[str, dict[str, int]] = {prompt_id: {} for prompt_id in ids}
    v = PromptVersion
    rows = await session.execute(
        select(v.prompt_id, v.version, v.name, v.description, v.content, v.tags, v.created_at)
        .where(v.prompt_id.in_(ids))
        .order_by(v.prompt_id, v.version)
    )
    for prompt_id, version, name, description, content, tags, created_at in rows:
        history[prompt_id].append(
            {
                "version": version,
                "name": name,
                "description": description,
                "content": content,
                "tags": tags,
                "created_at": created_at.isoformat(),
            }
        )
    label_rows = await session.execute(
        select(PromptLabel.prompt_id, PromptLabel.label, PromptLabel.version)
        .where(PromptLabel.prompt_id.in_(ids))
        .order_by(PromptLabel.prompt_id, PromptLabel.label)
    )
    for prompt_id, label, version in label_rows:
        labels[prompt_id][label] = version
    return [{"versions": history[prompt.id], "labels": labels[prompt.id]} for prompt in page]


class _History:
    """A prompt's versions as the import merges into them: by number, and the numbers of each set of fields in
    ascending order (so finding "the lowest match after n" is a bisection, not a scan, for long histories)."""

    def __init__(self, stored: dict[int, _Fields]) -> None:
        self.by_number = stored
        self._by_fields: dict[_Fields, list[int]] = {}
        for number in sorted(stored):
            self._by_fields.setdefault(stored[number], []).append(number)

    def match(self, number: int, fields: _Fields, *, after: int) -> int | None:
        if number > after and self.by_number.get(number) == fields:
            return number
        numbers = self._by_fields.get(fields, [])
        index = bisect_right(numbers, after)
        return numbers[index] if index < len(numbers) else None

    def append(self, number: int, fields: _Fields) -> None:
        """Add a version numbered above every one there (so each list stays in order)."""
        self.by_number[number] = fields
        self._by_fields.setdefault(fields, []).append(number)


async def import_history(
    session: AsyncSession, tenant_id: str, existing: Prompt | None, line: BaseModel
) -> Outcome | None:
    """Apply a prompt line that has ``versions`` (see the module docstring); None for a line without them, which
    the caller imports as a plain create or update."""
    assert isinstance(line, PromptCreate) and isinstance(line, HistoryFields)
    if line.versions is None:  # labels without versions were refused by the line's validator
        return None
    current: _Fields = (line.name, line.description, line.content, tuple(line.tags))
    now = utcnow()
    history = _History(await _stored_versions(session, existing))
    newest = max([*history.by_number, existing.version if existing is not None else 0])
    mapping: dict[int, int] = {}  # the file's version number -> the prompt's
    added: list[dict[str, Any]] = []
    previous = 0
    for entry in line.versions:
        fields: _Fields = (entry.name or line.name, entry.description, entry.content, tuple(entry.tags))
        found = history.match(entry.version, fields, after=previous)
        if found is None:
            found = newest = max(entry.version, newest + 1)
            history.append(found, fields)
            added.append(_version_row(found, fields, entry.created_at or now))
        mapping[entry.version] = previous = found
    if history.by_number.get(newest) != current:  # the line's own fields are the prompt now: one more version
        newest += 1
        history.append(newest, current)
        added.append(_version_row(newest, current, now))
    if newest > MAX_VERSION:  # appended after a history that already ends at the last number
        raise InvalidInput(f"versions: the prompt's history would pass the last version number ({MAX_VERSION})")

    if existing is None:
        prompt = Prompt(
            tenant_id=tenant_id,
            **_columns(current),
            version=newest,
            created_at=added[0]["created_at"],
            updated_at=added[-1]["created_at"],
        )
        session.add(prompt)
        try:
            await session.flush()
        except IntegrityError:  # a concurrent write took the name meanwhile
            raise AlreadyExists(f"a prompt named {line.name!r} was just created by another request") from None
    else:
        prompt = existing
        if added:
            await _move_prompt(session, prompt, current, newest, now)
    if added:
        await session.execute(
            insert(PromptVersion), [{"prompt_id": prompt.id, "tenant_id": tenant_id, **row} for row in added]
        )
    labels = {label: mapping[number] for label, number in (line.labels or {}).items()}
    labels_changed = await _apply_labels(session, prompt.id, labels)
    if existing is None:
        return "created"
    return "updated" if added or labels_changed else "unchanged"


async def _stored_versions(session: AsyncSession, prompt: Prompt | None) -> dict[int, _Fields]:
    if prompt is None:
        return {}
    v = PromptVersion
    rows = await session.execute(
        select(v.version, v.name, v.description, v.content, v.tags).where(v.prompt_id == prompt.id)
    )
    return {number: (name, description, content, tuple(tags)) for number, name, description, content, tags in rows}


def _columns(fields: _Fields) -> dict[str, Any]:
    name, description, content, tags = fields
    return {"name": name, "description": description, "content": content, "tags": list(tags)}


def _version_row(number: int, fields: _Fields, created_at: datetime) -> dict[str, Any]:
    return {"version": number, **_columns(fields), "created_at": created_at}


async def _move_prompt(session: AsyncSession, prompt: Prompt, fields: _Fields, version: int, now: datetime) -> None:
    """Point the prompt row at its new newest version, unless a concurrent write moved it since it was read."""
    moved = await session.scalar(
        update(Prompt)
        .where(Prompt.id == prompt.id, Prompt.version == prompt.version)
        .values(**_columns(fields), version=version, updated_at=now)
        .returning(Prompt.version)
        .execution_options(synchronize_session=False)
    )
    if moved is None:
        raise AlreadyExists(f"prompt {prompt.name!r} changed during the import; import again")
    for key, value in {**_columns(fields), "version": version, "updated_at": now}.items():
        set_committed_value(prompt, key, value)


async def _apply_labels(session: AsyncSession, prompt_id: str, wanted: dict[str, int]) -> bool:
    """Create or move the file's labels (the file wins); keep the others. True if any changed."""
    if not wanted:
        return False
    rows = await session.execute(
        select(PromptLabel.label, PromptLabel.version).where(PromptLabel.prompt_id == prompt_id)
    )
    have: dict[str, int] = {label: version for label, version in rows}
    now = utcnow()
    changed = False
    for label, version in wanted.items():
        if have.get(label) == version:
            continue
        if label in have:
            await session.execute(
                update(PromptLabel)
                .where(PromptLabel.prompt_id == prompt_id, PromptLabel.label == label)
                .values(version=version, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        else:
            await session.execute(
                insert(PromptLabel).values(prompt_id=prompt_id, label=label, version=version, updated_at=now)
            )
        changed = True
    return changed
