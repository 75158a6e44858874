"""`make bench`: how close the authenticated hot path comes to the framework's own ceiling, on SQLite and PostgreSQL.

For each database one `vibexp serve` process (one worker) serves, in the same run:

* ``GET /bench/constant`` — a bare FastAPI endpoint returning constant JSON (no auth, no database): the ceiling;
* ``GET /api/v1/prompts/{id}`` — bearer key, hourly limit, usage log, metrics, one row read;
* ``POST /api/v1/memories`` — the same, plus one insert;
* ``POST /mcp/v1/common`` — a stateless JSON-RPC ``tools/call get_prompt``.

`wrk` (C, Debian package) drives each for a fixed time on loopback, the endpoints alternating round by round so a
slow spell of the (shared) machine hits all of them alike; the median run of each is shown. Beside req/s it prints
p50/p99 and the server's CPU time per request (utime+stime of the server process tree from /proc over the run, less
its idle background rate, divided by the requests wrk completed), which is steadier than req/s on a busy machine.
Targets (ratios in the same run): REST GET >= 0.30x of the ceiling, POST >= 0.15x, MCP >= 0.50x of the REST GET.
Then the same GET with ``--workers 2`` (Prometheus multiprocess mode) against one worker, and the key verifier's
cached path in-process (target <= 5 us, CPU time). Last, tests/bench/scale.py: list and search at 100,000 memories
as a ratio to a 10-row tenant (target <= 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
TARGETS = {"get": 0.30, "post": 0.15, "mcp": 0.50}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU time per request


@dataclass
class Endpoint:
    label: str
    url: str
    key: str | None = None
    script: Path | None = None  # a wrk Lua script (method, body, headers)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def median(results: list[Result]) -> Result:
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's worker processes with ``--workers``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def idle_cpu_rate(server_pid: int, seconds: float = 2.0) -> float:
    """CPU seconds per second the server spends with no requests (key-change poll, usage flusher): subtracted from
    each run, so a slow run on a busy machine is not charged the background work of its longer wall time."""
    pids = process_tree(server_pid)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


def wrk(endpoint: Endpoint, *, seconds: int, connections: int, server_pid: int, idle_rate: float = 0.0) -> Result:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if endpoint.key:
        cmd += ["-H", f"Authorization: Bearer {endpoint.key}", "-H", "User-Agent: vibexp-bench"]
    if endpoint.script:
        cmd += ["-s", str(endpoint.script)]
    pids = process_tree(server_pid)
    cpu_before = cpu_seconds(pids)
    out = subprocess.run([*cmd, endpoint.url], capture_output=True, text=True, check=True).stdout
    cpu = max(0.0, cpu_seconds(pids) - cpu_before - idle_rate * seconds)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {endpoint.label}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, p50, p99, cpu / max(requests, 1) * 1e6)


def lua_script(directory: Path, name: str, *, body: dict[str, object], headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def endpoints(base: str, key: str, prompt_id: str, scripts: Path) -> dict[str, Endpoint]:
    memory = lua_script(
        scripts,
        "memory",
        body={"content": "The user prefers short answers.", "tags": ["bench"]},
        headers={"Content-Type": "application/json"},
    )
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "get_prompt", "arguments": {"name": "bench"}},
    }
    mcp = lua_script(scripts, "mcp", body=call, headers=MCP_HEADERS)
    return {
        "bare": Endpoint("GET /bench/constant (bare)", f"{base}/bench/constant"),
        "get": Endpoint("GET /api/v1/prompts/{id}", f"{base}/api/v1/prompts/{prompt_id}", key),
        "post": Endpoint("POST /api/v1/memories", f"{base}/api/v1/memories", key, memory),
        "mcp": Endpoint("MCP tools/call get_prompt", f"{base}/mcp/v1/common", key, mcp),
    }


def check_answers(base: str, key: str, prompt_id: str) -> None:
    """One request each, checked, so the run measures working endpoints (wrk counts only status codes)."""
    auth = {"Authorization": f"Bearer {key}"}
    got = httpx.get(f"{base}/api/v1/prompts/{prompt_id}", headers=auth)
    assert got.status_code == 200 and got.json()["name"] == "bench", got.text
    assert got.headers["x-ratelimit-limit"], got.headers
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "get_prompt", "arguments": {"name": "bench"}},
    }
    mcp = httpx.post(f"{base}/mcp/v1/common", headers=auth | MCP_HEADERS, json=call)
    assert mcp.status_code == 200 and "three bullet points" in mcp.text and '"isError":false' in mcp.text, mcp.text


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
    started = time.process_time()  # CPU time: what a busy machine's other processes take is not counted
    for _ in range(rounds):
        await verifier.verify(header)
    elapsed = time.process_time() - started
    await engine.dispose()
    return elapsed / rounds * 1e6


@dataclass
class Run:
    args: argparse.Namespace
    logs: Path

    def serve(self, database_url: str, workers: int) -> LiveServer:
        env = {"VIBEXP_BENCH_ENDPOINTS": "true", "VIBEXP_LOG_LEVEL": "warning"}
        metrics_dir = Path(tempfile.mkdtemp(dir=self.logs, prefix="prom-"))
        if workers > 1:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = LiveServer(database_url, env=env, serve_args=("--workers", str(workers)))
        server.start(self.logs, timeout=300)  # a busy 2-core machine can take minutes to import two workers
        # start() returns once one worker answers; the CPU of a worker still importing must not count as serving.
        # Each worker's start-up sets a `max` gauge, which creates its gauge_max_<pid>.db file.
        deadline = time.monotonic() + 300
        while workers > 1 and len(list(metrics_dir.glob("gauge_max_*.db"))) < workers:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"not all {workers} workers started:\n{server.log()}")
            time.sleep(0.2)
        return server

    def measure(self, server: LiveServer, chosen: list[Endpoint]) -> list[Result]:
        """Warm each endpoint up, then alternate them for ``rounds`` runs; the median run of each."""
        opts: dict[str, Any] = {"connections": self.args.connections, "server_pid": server.pid}
        for endpoint in chosen:
            wrk(endpoint, seconds=1, **opts)
        opts["idle_rate"] = idle_cpu_rate(server.pid)
        runs: list[list[Result]] = [[] for _ in chosen]
        for _ in range(self.args.rounds):
            for endpoint, results in zip(chosen, runs, strict=True):
                results.append(wrk(endpoint, seconds=self.args.seconds, **opts))
        return [median(results) for results in runs]


def table(rows: list[tuple[str, Result]]) -> None:
    print(f"  {'endpoint':<32}{'req/s':>9}{'CPU us/req':>12}{'p50 ms':>9}{'p99 ms':>9}")
    for label, r in rows:
        print(f"  {label:<32}{r.rps:>9.0f}{r.cpu_us:>12.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}")


def verdict(name: str, value: float, target: float) -> str:
    return f"  {name:<40}{value:>6.3f}x  (target >= {target:.2f}x) {'ok' if value >= target else 'MISSED'}"


def run_backend(name: str, database_url: str, run: Run) -> bool:
    key, prompt_id = asyncio.run(prepare(database_url))
    ok = True
    with run.serve(database_url, workers=1) as server:
        check_answers(server.url, key, prompt_id)
        eps = endpoints(server.url, key, prompt_id, run.logs)
        results = dict(zip(eps, run.measure(server, list(eps.values())), strict=True))
    print(f"\n{name} (one worker)")
    table([(eps[k].label, results[k]) for k in eps])
    bare, get = results["bare"], results["get"]
    checks = [
        ("REST GET / bare", get.rps / bare.rps, TARGETS["get"]),
        ("POST /memories / bare", results["post"].rps / bare.rps, TARGETS["post"]),
        ("MCP tools/call / REST GET", results["mcp"].rps / get.rps, TARGETS["mcp"]),
    ]
    for label, value, target in checks:
        print(verdict(label, value, target))
        ok = ok and value >= target
    print(f"  (MCP tools/call / bare: {results['mcp'].rps / bare.rps:.3f}x)")

    if run.args.workers > 1:
        with run.serve(database_url, workers=run.args.workers) as server:
            eps = endpoints(server.url, key, prompt_id, run.logs)
            pair = [eps["bare"], eps["get"]]
            multi = dict(zip(("bare", "get"), run.measure(server, pair), strict=True))
        print(f"  --workers {run.args.workers} (Prometheus multiprocess mode)")
        table([(eps[k].label, multi[k]) for k in ("bare", "get")])
        for k in ("bare", "get"):
            print(f"  scaling 1 -> {run.args.workers} workers, {eps[k].label}: {multi[k].rps / results[k].rps:.2f}x")
    micro = asyncio.run(verifier_micro(database_url, key))
    print(f"  cached key verification: {micro:.2f} us (target <= 5 us) {'ok' if micro <= 5 else 'MISSED'}")
    return ok and micro <= 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "4")))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per endpoint; the median is shown")
    parser.add_argument("--workers", type=int, default=2, help="also measure this many workers (1: skip)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.rounds} alternating runs each; "
        f"{os.cpu_count()} CPUs; figures are the server's, wrk runs on the same machine"
    )
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(args, Path(tmp))
        if args.backend in ("sqlite", "both"):
            ok = run_backend("SQLite", sqlite_url(run.logs, "bench.db"), run) and ok
        if args.backend in ("postgres", "both"):
            url = asyncio.run(create_postgres_database("vibexp_bench"))
            try:
                ok = run_backend("PostgreSQL", url, run) and ok
            finally:
                asyncio.run(drop_postgres_database(url))
    print(f"\n{'all targets met' if ok else 'some targets MISSED'} ({time.monotonic() - started:.0f} s)")
    # Then lists and search at 100,000 rows against a 10-row tenant, in-process (scale.py, beside this file).
    from scale import run as scale_run

    scale_run(backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
