"""Schemas of prompt versions and labels (REST bodies and answers, MCP outputs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from vibexp.core.content.schemas import PromptRead
from vibexp.core.content.versions import LABEL_PATTERN, MAX_VERSION

__all__ = ["LabelName", "LabelSet", "PromptAtVersion", "PromptLabelRead", "PromptVersionRead", "VersionNumber"]

#: A prompt version number as every adapter takes it (REST ``?version=``, ``/versions/{n}``, a label's body, an
#: import line, MCP ``get_prompt``): declared once, bounded by the column (``versions.MAX_VERSION``), so a number
#: out of range is a 422 naming the field, never a database error.
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]

LabelName = Annotated[
    str,
    StringConstraints(pattern=LABEL_PATTERN, min_length=1, max_length=63),
    Field(description="A slug: lowercase letters, digits and '-', e.g. production"),
]


class PromptVersionRead(BaseModel):
    """One immutable version of a prompt and the labels pointing at it now."""

    model_config = ConfigDict(from_attributes=True)

    prompt_id: str
    version: int
    name: str
    description: str
    content: str
    tags: list[str]
    created_at: datetime = Field(description="When this version was written")
    labels: list[str] = []


class PromptAtVersion(PromptRead):
    """A prompt served at one version (``?version=`` / ``?label=``): its JSON with that version's fields."""

    latest_version: int = Field(description="The prompt's current version (its ETag for updates)")
    labels: list[str] = Field(default=[], description="Labels pointing at this version")


class LabelSet(BaseModel):
    version: VersionNumber = Field(description="The version the label points at")


class PromptLabelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prompt_id: str
    label: str
    version: int
    updated_at: datetime
