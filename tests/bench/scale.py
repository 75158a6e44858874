"""Scale benchmark (issue #15): lists, search and export of a tenant with 100,000 memories, each as a ratio to listing
a tenant with 10 rows in the same database. Target: <= 3x for the list page and for search (hit and miss); the
export reads every row (O(n)), so it has no target and is also shown in rows per second.

Per database (SQLite in a temporary file, PostgreSQL in a fresh database) it seeds both tenants
(tests/helpers/scale_data.py), then calls the content service in-process — ``memories.list`` in its own session and
transaction, as a REST or MCP request does, without the HTTP layer (which costs the same for either tenant and would
only dilute the ratio) — alternating the measurements round by round and taking the median of each.

``python tests/bench/scale.py`` runs it alone; ``make bench`` runs it after the HTTP benchmark. To add a measurement
add an entry to ``measurements()``: a name and a coroutine function of a session factory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url  # noqa: E402
from helpers.scale_data import COMMON_WORD, MISS_WORD, RARE_WORD, ScaleTenants, seed_scale  # noqa: E402
from vibexp.core.access import Actor  # noqa: E402
from vibexp.core.content.service import memories  # noqa: E402
from vibexp.core.content.transfer import export_lines  # noqa: E402
from vibexp.core.db import create_engine, create_session_factory, session_scope  # noqa: E402

__all__ = ["Measurement", "measurements", "run", "run_backend"]

TARGET = 3.0
EXPORT_ROUNDS = 3
Factory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Measurement:
    run: Callable[[Factory], Awaitable[int]]  # returns the number of items, checked against ``expect``
    expect: int | None = None
    target: float | None = TARGET  # None: shown, not judged
    rounds: int | None = None  # an O(n) measurement runs in only the first ``rounds`` rounds (None: every round)
    per_row: bool = False  # also print the rate in rows (items) per second


def _lister(tenant_id: str, **list_args: str) -> Callable[[Factory], Awaitable[int]]:
    async def run(factory: Factory) -> int:
        async with session_scope(factory) as session:
            page = await memories.list(session, tenant_id=tenant_id, limit=50, **list_args)  # type: ignore[arg-type]
        return len(page.items)

    return run


def _exporter(tenant_id: str) -> Callable[[Factory], Awaitable[int]]:
    async def run(factory: Factory) -> int:
        # The generator GET /api/v1/export streams, consumed fully (the HTTP layer only writes its lines out).
        return sum([1 async for _ in export_lines(factory, tenant_id=tenant_id, actor=Actor.cli())])

    return run


def measurements(tenants: ScaleTenants) -> dict[str, Measurement]:
    """What is timed for the 100,000-row tenant, by name (the baseline is listing the 10-row tenant)."""
    big = tenants.big_id
    return {
        "list first page": Measurement(_lister(big), expect=50),
        f"search hit ({tenants.big_rows // 1000} rows match)": Measurement(_lister(big, q=RARE_WORD), expect=50),
        "search miss": Measurement(_lister(big, q=MISS_WORD), expect=0),
        # Ranking must score every matching row: a word in ~6% of 100,000 rows costs accordingly. Shown for honesty.
        "search common word (~6% match)": Measurement(_lister(big, q=COMMON_WORD), expect=50, target=None),
        # O(n) by nature: no target, shown with its rate. Fewer rounds: one export reads the whole tenant.
        "export (all rows)": Measurement(
            _exporter(big), expect=tenants.big_rows, target=None, rounds=EXPORT_ROUNDS, per_row=True
        ),
    }


async def _time(run: Callable[[Factory], Awaitable[int]], factory: Factory) -> tuple[float, int]:
    started = time.perf_counter()
    count = await run(factory)
    return time.perf_counter() - started, count


async def run_backend(name: str, url: str, *, rounds: int) -> bool:
    started = time.monotonic()
    tenants = await seed_scale(url)
    seeded = time.monotonic() - started
    engine = create_engine(url)
    factory = create_session_factory(engine)
    chosen = {"list 10-row tenant (baseline)": Measurement(_lister(tenants.small_id), expect=10, target=None)}
    chosen |= measurements(tenants)
    samples: dict[str, list[float]] = {label: [] for label in chosen}
    try:
        for label, m in chosen.items():  # warm-up, and each answer checked once
            _, count = await _time(m.run, factory)
            if m.expect is not None and count != m.expect:
                raise RuntimeError(f"{name} {label}: {count} items, expected {m.expect}")
        for round_ in range(rounds):  # alternating, so a slow spell of the machine hits every measurement alike
            for label, m in chosen.items():
                if m.rounds is None or round_ < m.rounds:
                    samples[label].append((await _time(m.run, factory))[0])
    finally:
        await engine.dispose()
    medians = {label: statistics.median(values) for label, values in samples.items()}
    base = medians["list 10-row tenant (baseline)"]
    print(f"\n{name}: {tenants.big_rows:,} memories in one tenant, {tenants.small_rows} in another", end="")
    print(f" (seeded in {seeded:.0f} s)")
    print(f"  {'measurement (100,000-row tenant)':<40}{'median ms':>10}{'ratio':>9}")
    ok = True
    for label, m in chosen.items():
        ratio = medians[label] / base
        verdict = "" if m.target is None else f"  (target <= {m.target:.0f}x) {'ok' if ratio <= m.target else 'MISSED'}"
        if m.per_row and m.expect:
            verdict += f"  ({m.expect / medians[label]:,.0f} rows/s, median of {len(samples[label])})"
        print(f"  {label:<40}{medians[label] * 1000:>10.2f}{ratio:>8.2f}x{verdict}")
        ok = ok and (m.target is None or ratio <= m.target)
    return ok


def run(*, backend: str = "both", rounds: int = 30) -> bool:
    print(
        f"\nScale: memories.list and export_lines in-process, median of {rounds} alternating rounds (export: the first"
        f" {EXPORT_ROUNDS}); ratio to listing the 10-row tenant"
    )
    ok = True
    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            ok = asyncio.run(run_backend("SQLite", sqlite_url(Path(tmp), "scale.db"), rounds=rounds)) and ok
    if backend in ("postgres", "both"):
        url = asyncio.run(create_postgres_database("vibexp_scale"))
        try:
            ok = asyncio.run(run_backend("PostgreSQL", url, rounds=rounds)) and ok
        finally:
            asyncio.run(drop_postgres_database(url))
    print(f"\nscale: {'all targets met' if ok else 'some targets MISSED'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    run(backend=args.backend, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
