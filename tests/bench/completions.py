"""Completion at scale: prompt names, artifact projects and slugs by prefix with 100,000 prompts and 100,000
artifacts (20 projects) in one tenant, on SQLite and PostgreSQL; the median and worst of 20 calls of each query
(``vibexp.core.content.completion``, through the use cases) and each query's plan.

``.venv/bin/python tests/bench/completions.py`` (~1-2 minutes: most of it is seeding).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url
from helpers.scale_data import seed_scale
from vibexp.core.access import Caller
from vibexp.core.content.usecases import artifacts, prompts
from vibexp.core.db import create_engine, create_session_factory, session_scope

ROWS = 100_000
RUNS = 20


async def _measure(url: str, label: str) -> None:
    tenants = await seed_scale(url, big_rows=100, others=ROWS)
    engine = create_engine(url)
    factory = create_session_factory(engine)
    caller = Caller.cli(tenants.big_id)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    cases = {
        "prompt names 'prompt-9' (hasMore)": lambda s: prompts.complete_names(
            s, caller=caller, prefix="prompt-9", limit=100
        ),
        "prompt names 'zzz' (none)": lambda s: prompts.complete_names(s, caller=caller, prefix="zzz", limit=100),
        "projects '' (all 20)": lambda s: artifacts.complete_projects(s, caller=caller, prefix="", limit=100),
        "projects 'project-1'": lambda s: artifacts.complete_projects(s, caller=caller, prefix="project-1", limit=100),
        "slugs of project-3 'doc-9'": lambda s: artifacts.complete_slugs(
            s, caller=caller, project="project-3", prefix="doc-9", limit=100
        ),
    }
    print(f"\n## {label}: {ROWS:,} prompts and {ROWS:,} artifacts in one tenant\n")
    print("| query | values | median ms | worst ms |\n|---|---:|---:|---:|")
    plans = {}
    for name, call in cases.items():
        times = []
        for _ in range(RUNS):
            statements.clear()
            started = time.perf_counter()
            async with session_scope(factory) as session:
                values, more = await call(session)
            times.append((time.perf_counter() - started) * 1000)
        plans[name] = statements[-1]
        print(f"| {name} | {len(values)}{'+' if more else ''} | {statistics.median(times):.2f} | {max(times):.2f} |")
    for name, (statement, parameters) in plans.items():
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        async with engine.connect() as conn:
            raw = await conn.exec_driver_sql(explain + statement, parameters)
            lines = [" ".join(str(c) for c in row) for row in raw]
        print(f"\n{name}:\n    " + "\n    ".join(lines))
    await engine.dispose()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await _measure(sqlite_url(Path(tmp)), "SQLite")
    url = await create_postgres_database()
    try:
        await _measure(url, "PostgreSQL")
    finally:
        await drop_postgres_database(url)


if __name__ == "__main__":
    asyncio.run(main())
