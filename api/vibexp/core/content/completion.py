"""Completion by prefix: prompt names, artifact projects, and the slugs of one project, of one tenant.

What MCP ``completion/complete`` answers (``vibexp.api.mcp.completions``), through the use cases, which check the
caller's read scope first (``usecases.prompts.complete_names``, ``usecases.artifacts.complete_projects`` /
``complete_slugs``). At most ``limit`` values in order, and whether there are more.

Each query is one walk of an index that exists already: ``uq (tenant_id, name)`` for prompts and
``uq (tenant_id, project, slug)`` for artifacts, bounded on both sides by the prefix (``prefix <= value <
prefix + U+10FFFF``; the index scan starts at the prefix and stops after ``limit + 1`` rows or at the bound), and
filtered by ``LIKE 'prefix%'`` for exactness. Projects are distinct values of a column that repeats once per
artifact, so they are read with a loose index scan (a recursive query that jumps from one project to the next
through the index): ``limit + 1`` index probes, however many artifacts each project holds. The bounds assume a
code-point collation (SQLite's ``BINARY``; PostgreSQL ``C`` / ``C.UTF-8``, what the chart's database and the test
cluster use); under a linguistic collation the index may not serve the range (the answer stays exact).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from vibexp.core.content.models import Artifact, Prompt

__all__ = ["MAX_PREFIX", "complete_names", "complete_projects", "complete_slugs"]

#: Longest prefix worth a query: no name, project or slug is longer (``PathSegment`` and prompt names).
MAX_PREFIX = 200
_TOP = "\U0010ffff"


def _prefixed(column: InstrumentedAttribute[str], prefix: str) -> list[ColumnElement[bool]]:
    bounds = [column.startswith(prefix, autoescape=True)]
    if prefix:
        bounds += [column >= prefix, column < prefix + _TOP]
    return bounds


async def complete_names(session: AsyncSession, *, tenant_id: str, prefix: str, limit: int) -> tuple[list[str], bool]:
    rows = await session.scalars(
        select(Prompt.name)
        .where(Prompt.tenant_id == tenant_id, *_prefixed(Prompt.name, prefix))
        .order_by(Prompt.name)
        .limit(limit + 1)
    )
    return _page(list(rows), limit)


async def complete_slugs(
    session: AsyncSession, *, tenant_id: str, project: str, prefix: str, limit: int
) -> tuple[list[str], bool]:
    rows = await session.scalars(
        select(Artifact.slug)
        .where(Artifact.tenant_id == tenant_id, Artifact.project == project, *_prefixed(Artifact.slug, prefix))
        .order_by(Artifact.slug)
        .limit(limit + 1)
    )
    return _page(list(rows), limit)


_PROJECTS = text(
    """
WITH RECURSIVE projects(project, n) AS (
    SELECT (SELECT min(project) FROM artifacts WHERE tenant_id = :tenant AND project >= :low AND project < :high), 1
    UNION ALL
    SELECT (SELECT min(project) FROM artifacts WHERE tenant_id = :tenant AND project > projects.project
            AND project < :high), n + 1
    FROM projects WHERE projects.project IS NOT NULL AND n <= :limit
)
SELECT project FROM projects WHERE project IS NOT NULL
"""
)


async def complete_projects(
    session: AsyncSession, *, tenant_id: str, prefix: str, limit: int
) -> tuple[list[str], bool]:
    rows = await session.scalars(_PROJECTS, {"tenant": tenant_id, "low": prefix, "high": prefix + _TOP, "limit": limit})
    return _page([project for project in rows if project.startswith(prefix)], limit)


def _page(values: list[str], limit: int) -> tuple[list[str], bool]:
    return values[:limit], len(values) > limit
