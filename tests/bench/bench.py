"""`make bench`: what authentication, rate limiting and usage tracking cost per request.

For SQLite and PostgreSQL, one `vibexp serve` process (one worker, the same settings for both runs) serves
``GET /api/v1/prompts/{id}`` (bearer key, hourly limit, usage log) and ``GET /bench/prompts/{id}`` (the same row, no
auth, no limit, no usage). `wrk` (C, Debian package) drives each for a fixed time on loopback; the script prints
requests/s, p50 and p99 for both and their ratio (target: >= 0.85). It then times the key verifier's cached path
in-process (target: <= 20 us per verification). Figures vary with the machine; run it on an otherwise idle one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url  # noqa: E402
from helpers.factories import make_account  # noqa: E402
from helpers.servers import LiveServer  # noqa: E402
from vibexp.core.content.schemas import PromptCreate  # noqa: E402
from vibexp.core.content.service import prompts  # noqa: E402
from vibexp.core.db import create_engine, create_session_factory, session_scope  # noqa: E402
from vibexp.core.keys.verifier import KeyVerifier  # noqa: E402
from vibexp.core.migrate import upgrade_async  # noqa: E402
from vibexp.core.tenants.models import Tier  # noqa: E402


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def median(results: list[Result]) -> Result:
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


def wrk(url: str, *, seconds: int, connections: int, key: str | None) -> Result:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}", "-H", "User-Agent: vibexp-bench"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, p50, p99)


async def prepare(database_url: str) -> tuple[str, str]:
    """Migrate, then make a tenant whose limit the run cannot reach, a key and one prompt."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    account = await make_account(factory, tier=Tier.enterprise, rate_limit=100_000_000)
    async with session_scope(factory) as session:
        prompt = await prompts.create(
            session,
            tenant_id=account.tenant.id,
            data=PromptCreate(name="bench", content="Summarise {{file}} in three bullet points.", tags=["bench"]),
        )
    await engine.dispose()
    return account.key, prompt.id


async def verifier_micro(database_url: str, key: str, rounds: int = 100_000) -> float:
    """Microseconds per cached verification (parse header, SHA-256, cache lookup, expiry/suspension checks)."""
    engine = create_engine(database_url)
    verifier = KeyVerifier(create_session_factory(engine))
    header = f"Bearer {key}"
    await verifier.verify(header)  # load into the cache
    started = time.perf_counter()
    for _ in range(rounds):
        await verifier.verify(header)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed / rounds * 1e6


def run_backend(
    name: str, database_url: str, *, seconds: int, connections: int, rounds: int, logs: Path
) -> tuple[float, float]:
    key, prompt_id = asyncio.run(prepare(database_url))
    server = LiveServer(database_url, env={"VIBEXP_BENCH_ENDPOINTS": "true", "VIBEXP_LOG_LEVEL": "warning"})
    server.start(logs)
    try:
        bare_url = f"{server.url}/bench/prompts/{prompt_id}"
        auth_url = f"{server.url}/api/v1/prompts/{prompt_id}"
        wrk(bare_url, seconds=2, connections=connections, key=None)  # warm-up: caches, pools, JIT-free but lazy
        wrk(auth_url, seconds=2, connections=connections, key=key)
        bare: list[Result] = []
        auth: list[Result] = []
        for _ in range(rounds):  # alternate, so a slow spell of the machine hits both endpoints alike
            bare.append(wrk(bare_url, seconds=seconds, connections=connections, key=None))
            auth.append(wrk(auth_url, seconds=seconds, connections=connections, key=key))
    finally:
        server.stop()
    mid_bare = median(bare)
    mid_auth = median(auth)
    ratio = mid_auth.rps / mid_bare.rps
    print(f"\n{name}")
    print(f"  {'endpoint':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, r in (("GET /bench/prompts/{id} (bare)", mid_bare), ("GET /api/v1/prompts/{id} (auth)", mid_auth)):
        print(f"  {label:<34}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}")
    print(f"  ratio auth/bare: {ratio:.3f} (target >= 0.85)")
    micro = asyncio.run(verifier_micro(database_url, key))
    print(f"  cached key verification: {micro:.2f} us (target <= 20 us)")
    return ratio, micro


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "8")))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per endpoint; the median is shown")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.rounds} alternating runs each; "
        f"one server worker; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        if args.backend in ("sqlite", "both"):
            run_backend(
                "SQLite",
                sqlite_url(logs, "bench.db"),
                seconds=args.seconds,
                connections=args.connections,
                rounds=args.rounds,
                logs=logs,
            )
        if args.backend in ("postgres", "both"):
            url = asyncio.run(create_postgres_database("vibexp_bench"))
            try:
                run_backend(
                    "PostgreSQL", url, seconds=args.seconds, connections=args.connections, rounds=args.rounds, logs=logs
                )
            finally:
                asyncio.run(drop_postgres_database(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
