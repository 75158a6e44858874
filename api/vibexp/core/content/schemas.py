"""Schemas for prompts, artifacts and memories: ``FooBase`` (shared fields), ``FooCreate``, ``FooUpdate``
(every field optional: a PUT changes what it names), ``FooRead`` (adds server fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from vibexp.core.text import StorableText

__all__ = [
    "ArtifactCreate",
    "ArtifactRead",
    "ArtifactUpdate",
    "MemoryCreate",
    "MemoryRead",
    "MemoryUpdate",
    "PromptCreate",
    "PromptRead",
    "PromptUpdate",
]

MAX_TEXT = 100_000
MAX_ARTIFACT = 1_000_000


def _no_dot_segments(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


Tag = Annotated[StorableText, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=32, description="Up to 32 tags of up to 64 characters")]
PromptName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", min_length=1, max_length=128),
    Field(description="Unique per account; also the MCP prompt name (letters, digits, '_', '.', '-')"),
]
PathSegment = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", min_length=1, max_length=128),
    AfterValidator(_no_dot_segments),
    Field(description="Lowercase letters, digits, '.', '_', '-'; no '/' and no '..'"),
]
ContentType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$", max_length=127),
    Field(description="MIME type of the content, e.g. text/markdown"),
]
Description = Annotated[StorableText, Field(max_length=2000)]
#: Stored text: no NUL, no lone surrogates (see vibexp.core.text).
Text = Annotated[StorableText, Field(min_length=1, max_length=MAX_TEXT)]
Title = Annotated[StorableText, Field(min_length=1, max_length=300)]
ArtifactContent = Annotated[StorableText, Field(max_length=MAX_ARTIFACT)]


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    version: int = Field(description="Incremented on each update; sent as the ETag")
    created_at: datetime
    updated_at: datetime
    score: float | None = Field(
        default=None, description="Search relevance, higher is better; only in the results of a q= search"
    )


# -- prompts ---------------------------------------------------------------------------------------------------
class PromptBase(BaseModel):
    name: PromptName
    content: Annotated[Text, Field(description="{{variable}} marks an argument")]
    description: Description = ""
    tags: Tags = []


class PromptCreate(PromptBase):
    pass


class PromptUpdate(BaseModel):
    name: PromptName | None = None
    content: Text | None = None
    description: Description | None = None
    tags: Tags | None = None


class PromptRead(PromptBase, _Read):
    pass


# -- artifacts -------------------------------------------------------------------------------------------------
class ArtifactBase(BaseModel):
    title: Title
    content: ArtifactContent
    content_type: ContentType = "text/markdown"
    description: Description = ""
    tags: Tags = []


class ArtifactCreate(ArtifactBase):
    project: PathSegment
    slug: PathSegment


class ArtifactUpdate(BaseModel):
    title: Title | None = None
    content: ArtifactContent | None = None
    content_type: ContentType | None = None
    description: Description | None = None
    tags: Tags | None = None


class ArtifactRead(ArtifactBase, _Read):
    project: str
    slug: str


# -- memories --------------------------------------------------------------------------------------------------
class MemoryBase(BaseModel):
    content: Text
    tags: Tags = []
    #: Validated like an artifact's project; None (the default) is a memory of no project.
    project: PathSegment | None = None


class MemoryCreate(MemoryBase):
    pass


class MemoryUpdate(BaseModel):
    #: Fields whose explicit null is a change (to "none"), not "leave as is" (see ContentStore.update).
    CLEARABLE: ClassVar[frozenset[str]] = frozenset({"project"})

    content: Text | None = None
    tags: Tags | None = None
    project: Annotated[PathSegment | None, Field(description="A project name; null moves it to no project")] = None


class MemoryRead(MemoryBase, _Read):
    # Read back as stored: not re-validated against PathSegment (a row is what a validated write made).
    project: str | None = None
