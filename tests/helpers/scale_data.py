"""A database at the scale of issue #15: one tenant with 100,000 memories next to one with 10, for the EXPLAIN tests
(tests/core/test_content_plans.py) and the scale benchmark (tests/bench/scale.py).

Rows go in through one Core ``INSERT`` executed for many parameter sets in one transaction (SQLAlchemy batches them
into multi-row ``VALUES``), so the FTS5 triggers and the generated tsvector column index them as any write would.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from vibexp.core.content.models import Artifact, Memory, Prompt
from vibexp.core.db import create_engine
from vibexp.core.ids import new_id
from vibexp.core.migrate import upgrade_async
from vibexp.core.tenants.models import Tenant

__all__ = ["COMMON_WORD", "MISS_WORD", "RARE_TAG", "RARE_WORD", "ScaleTenants", "seed_scale"]

#: In every 1,000th memory (100 of 100,000; one of the small tenant's 10).
RARE_WORD = "zebra"
RARE_TAG = "rare"
#: In about 1 memory of 70 (a vocabulary word).
COMMON_WORD = "harbour"
#: In none.
MISS_WORD = "xylophone"
_VOCABULARY = [
    "harbour",
    "deploy",
    "cluster",
    "backup",
    "review",
    "summary",
    "budget",
    "invoice",
    "schedule",
    "meeting",
    "release",
    "rollback",
    "latency",
    "database",
    "migration",
    "customer",
    "feedback",
    "roadmap",
    "incident",
    "postmortem",
    "staging",
    "production",
    "python",
    "rust",
    "golang",
    "kubernetes",
    "docker",
    "terraform",
    "ansible",
    "grafana",
    "prometheus",
    "alert",
    "dashboard",
    "metric",
    "trace",
    "logging",
    "queue",
    "worker",
    "cache",
    "redis",
    "postgres",
    "sqlite",
    "index",
    "query",
    "search",
    "ranking",
    "cursor",
    "page",
    "limit",
    "token",
    "secret",
    "rotation",
    "audit",
    "policy",
    "tenant",
    "account",
    "billing",
    "payment",
    "refund",
    "coupon",
    "discount",
    "shipping",
    "warehouse",
    "inventory",
    "supplier",
    "contract",
    "legal",
    "privacy",
    "security",
    "firewall",
    "network",
    "subnet",
    "router",
    "switch",
    "gateway",
    "proxy",
    "certificate",
    "domain",
    "email",
    "calendar",
    "holiday",
    "vacation",
    "travel",
    "flight",
    "hotel",
    "dinner",
    "lunch",
    "coffee",
    "tea",
    "garden",
    "bicycle",
    "running",
    "swimming",
    "reading",
]


def _other_rows(kind: str, tenant_id: str, count: int, now: datetime) -> list[dict[str, Any]]:
    """Prompts or artifacts: 20 projects, unique names/slugs, the same kind of text as the memories."""
    rows = []
    for memory in _rows(tenant_id, count, now):
        i = int(memory["content"].split(":")[0].removeprefix("Note "))
        common = {k: memory[k] for k in ("id", "tenant_id", "content", "tags", "version", "created_at", "updated_at")}
        if kind == "prompts":
            rows.append(common | {"name": f"prompt-{i}", "description": ""})
        else:
            rows.append(
                common
                | {
                    "project": f"project-{i % 20}",
                    "slug": f"doc-{i}",
                    "title": f"Document {i}",
                    "description": "",
                    "content_type": "text/markdown",
                }
            )
    return rows


@dataclass(frozen=True)
class ScaleTenants:
    big_id: str
    small_id: str
    big_rows: int
    small_rows: int


def _rows(tenant_id: str, count: int, now: datetime) -> list[dict[str, Any]]:
    pick = random.Random(count).choice
    rows = []
    for i in range(count):
        words = [pick(_VOCABULARY) for _ in range(8)]
        rare = i % 1000 == 7 or (count < 1000 and i == 7)
        if rare:
            words.insert(3, RARE_WORD)
        rows.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "content": f"Note {i}: " + " ".join(words),
                "tags": [RARE_TAG] if rare else [f"t{i % 20}"],
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


async def seed_scale(
    url: str, *, big_rows: int = 100_000, small_rows: int = 10, others: int = 0, analyze: bool = True
) -> ScaleTenants:
    """Migrate ``url`` (an empty database), add the two tenants and their memories; VACUUM ANALYZE on PostgreSQL
    (as autovacuum soon would after a bulk load) unless ``analyze`` is false. SQLite is left without statistics, as a
    deployment's database is. ``others``: also that many prompts and artifacts in the big tenant (and 10 each in
    the small one)."""
    await upgrade_async(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    tenants = Tenant.__table__
    big_id, small_id = new_id(), new_id()
    try:
        async with engine.begin() as conn:
            for tenant_id, label in ((big_id, "big"), (small_id, "small")):
                name = f"scale-{label}-{secrets.token_hex(3)}"
                values = {"id": tenant_id, "name": name, "display_name": name, "tier": "free", "suspended": False}
                await conn.execute(tenants.insert(), [values | {"created_at": now, "updated_at": now}])
            # The small tenant's rows are written last, so they sit at the end of the id range: the worst case for
            # a plan that walks the primary key in id order and filters by tenant.
            await conn.execute(Memory.__table__.insert(), _rows(big_id, big_rows, now))
            await conn.execute(Memory.__table__.insert(), _rows(small_id, small_rows, now))
            for model in (Prompt, Artifact) if others else ():
                table = model.__table__
                await conn.execute(table.insert(), _other_rows(table.name, big_id, others, now))
                await conn.execute(table.insert(), _other_rows(table.name, small_id, 10, now))
        if analyze and engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load (PostgreSQL 13+ vacuums on inserts too): statistics for
            # the planner, and the GIN indexes' pending lists merged (until then each search reads them linearly).
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE memories, prompts, artifacts"))
    finally:
        await engine.dispose()
    return ScaleTenants(big_id, small_id, big_rows, small_rows)
