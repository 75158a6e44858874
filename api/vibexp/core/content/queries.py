"""The one list query of prompts, artifacts and memories, shared by REST query parameters and MCP tool arguments.

REST reads it from the query string (``Annotated[ListQuery, Query()]``: ``?q=&tag=&limit=&cursor=``, plus
``?project=`` for artifacts and memories); an MCP list tool builds it from its arguments. Either way the same
limits hold and ``vibexp.core.content.usecases`` runs it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.content.search import MAX_QUERY_CHARS
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, PageCursor, PageSize
from vibexp.core.text import NUL_FREE_PATTERN

__all__ = ["ListQuery", "ProjectListQuery"]

SEARCH_DESCRIPTION = (
    "Ranked full-text search: objects containing every word (letters and digits; punctuation and operators "
    "such as NEAR, OR, -, * only separate words), any word form, best first with a score"
)


class ListQuery(BaseModel):
    """A page of a tenant's objects: optionally searched (``q``) or filtered by ``tag``."""

    model_config = ConfigDict(frozen=True)

    q: Annotated[str | None, Field(max_length=MAX_QUERY_CHARS, pattern=NUL_FREE_PATTERN)] = Field(
        default=None, description=SEARCH_DESCRIPTION
    )
    tag: Annotated[str | None, Field(max_length=64, pattern=NUL_FREE_PATTERN)] = Field(
        default=None, description="Only objects with this tag"
    )
    limit: PageSize = Field(default=DEFAULT_PAGE_SIZE, description="Page size")
    cursor: PageCursor | None = Field(default=None, description="next_cursor of the previous page")

    def filters(self) -> dict[str, str] | None:
        """The store's column filters this query names (none for prompts)."""
        return None


class ProjectListQuery(ListQuery):
    """Artifacts and memories also filter by ``project``."""

    project: Annotated[str | None, Field(max_length=128, pattern=NUL_FREE_PATTERN)] = Field(
        default=None, description="Only this project"
    )

    def filters(self) -> dict[str, str] | None:
        return {"project": self.project} if self.project else None
