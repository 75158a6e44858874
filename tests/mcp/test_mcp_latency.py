"""Tool-call latency on loopback: 200 `get_prompt` calls through the SDK client against a live server.

Each call is one HTTP request that passes key verification (cached), the rate limiter (one DB write), the SDK
and one read transaction. The figures go to test-output/mcp-latency-<db>.json; the bounds are loose on purpose
(a shared 2-core machine) and only catch a regression of an order of magnitude.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from mcpkit import connect, ok
from sqlalchemy.engine import make_url

from helpers.factories import Account

CALLS = 200


async def test_get_prompt_latency_on_loopback(
    mcp_url: str, account: Account, database_url: str, artifacts_dir: Path
) -> None:
    async with connect(mcp_url, account.key, mode="legacy") as mcp:
        await ok(mcp, "create_prompt", {"name": "bench", "content": "Explain {{topic}} briefly"})
        await ok(mcp, "get_prompt", {"name": "bench"})  # warm-up
        samples = []
        for _ in range(CALLS):
            started = time.perf_counter()
            result = await ok(mcp, "get_prompt", {"name": "bench", "arguments": {"topic": "MCP"}})
            samples.append((time.perf_counter() - started) * 1000)
            assert result["rendered"] == "Explain MCP briefly"

    samples.sort()
    report = {
        "database": make_url(database_url).get_backend_name(),
        "calls": CALLS,
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(samples[int(CALLS * 0.90) - 1], 2),
        "p99_ms": round(samples[int(CALLS * 0.99) - 1], 2),
        "max_ms": round(samples[-1], 2),
    }
    name = f"mcp-latency-{report['database']}.json"
    (artifacts_dir / name).write_text(json.dumps(report, indent=2) + "\n")
    print(report)
    assert report["median_ms"] < 250, report
