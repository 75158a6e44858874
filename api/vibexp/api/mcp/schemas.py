"""Structured outputs of the MCP tools (their ``outputSchema``), built on the core content schemas.

Lists return summaries plus ``next_cursor`` (pass it back as ``cursor`` for the next page). Artifact summaries
leave the content out, since one artifact may be a megabyte; ``get_artifact`` returns it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.content.schemas import MemoryRead, PromptRead

__all__ = [
    "ArtifactPage",
    "ArtifactSummary",
    "Deleted",
    "MemoryPage",
    "PromptDetail",
    "PromptPage",
    "PromptSummary",
    "artifact_uri",
]


def artifact_uri(project: str, slug: str) -> str:
    """The MCP resource URI of an artifact (project and slug are URI-safe by their schema)."""
    return f"artifact://{project}/{slug}"


class PromptSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    tags: list[str]
    version: int
    updated_at: datetime
    score: float | None = Field(default=None, description="Search relevance (higher is better); only with `query`")


class PromptPage(BaseModel):
    items: list[PromptSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class PromptDetail(PromptRead):
    arguments: list[str] = Field(description="The {{variable}} placeholders of the content, each a required argument")
    rendered: str | None = Field(
        default=None, description="The content with the given arguments filled in (only when arguments were given)"
    )


class ArtifactSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project: str
    slug: str
    uri: str = Field(description="MCP resource URI: artifact://{project}/{slug}")
    title: str
    description: str
    content_type: str
    tags: list[str]
    version: int
    updated_at: datetime
    score: float | None = Field(default=None, description="Search relevance (higher is better); only with `query`")


class ArtifactPage(BaseModel):
    items: list[ArtifactSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class MemoryPage(BaseModel):
    items: list[MemoryRead]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class Deleted(BaseModel):
    deleted: bool = True
    what: str = Field(description="What was deleted, e.g. prompt 'review' or memory 0192...")
