"""`make bench`: VibeXP against the real ceilings — plain FastAPI and a plain MCP SDK server — on SQLite and PostgreSQL.

In the same run, alternating round by round so a slow spell of the (shared) machine hits every rung alike, `wrk -t1
-c16` drives, each against its own server process with one uvicorn worker and its access log on:

* **plain FastAPI** (tests/bench/plain.py, uvicorn defaults): one route, constant JSON — the framework's ceiling;
* **plain MCP** (tests/bench/plain.py): ``MCPServer``, stateless JSON, one constant tool, no auth, no database;
* VibeXP's rungs through its full stack: ``GET /bench/constant`` (no key, no database: the middleware and routing
  cost), ``GET /healthz``, an authenticated ``GET /api/v1/prompts/{id}`` (key, hourly limit, usage log, metrics, one
  row), ``POST /api/v1/memories`` (the same plus an insert), MCP ``tools/call get_prompt`` (the fast path) with the
  key on ``/mcp/v1/common``, and the same call on ``/mcp/v1/connect`` with an OAuth access token (a grant minted by
  ``prepare`` through the OAuth use cases, as the consent page and the token endpoint do; no browser).

Each rung: req/s, p50/p99 and the server's CPU µs per request (utime+stime of its process tree from /proc over the
run, less its idle background rate, over the requests wrk completed; steadier than req/s on a busy machine). The
median of ``--runs`` runs is shown. Ratios are to plain FastAPI (MCP: to plain MCP), by req/s and by CPU per request
(plain's µs / the rung's µs). Targets (issue 27): no-key constant >= 0.85x, authenticated GET >= 0.35x, POST memory
>= 0.25x, MCP tools/call >= 1.0x of plain MCP (with a key, and with an OAuth access token); 1 -> 2 workers
>= 1.6x (the GET, two servers side by side, alternating); cached key verification <= 2 µs (CPU time, in-process,
the median of several batches). Last, tests/bench/scale.py: list and search at
100,000 memories as a ratio to a 10-row tenant (target <= 3x).

``python tests/bench/bench.py --quick`` (SQLite, one run of 2 s, no workers or scale rows) takes ~1 minute;
``make bench`` (both databases, --runs 3) ~12 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import socket
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
from helpers.servers import REPO, LiveServer, free_port  # noqa: E402
from helpers.teams import make_person  # noqa: E402
from oauth.flow import REDIRECT, Pkce  # noqa: E402
from vibexp.core.access import Caller, Role  # noqa: E402
from vibexp.core.content.schemas import PromptCreate  # noqa: E402
from vibexp.core.content.service import prompts  # noqa: E402
from vibexp.core.db import create_engine, create_session_factory, session_scope  # noqa: E402
from vibexp.core.keys.verifier import KeyVerifier  # noqa: E402
from vibexp.core.migrate import upgrade_async  # noqa: E402
from vibexp.core.oauth import usecases as oauth  # noqa: E402
from vibexp.core.oauth.errors import OAuthError  # noqa: E402
from vibexp.core.oauth.schemas import ClientRegistration  # noqa: E402
from vibexp.core.tenants.models import Tier  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
#: Ratio targets (issue 27): each rung's req/s over its plain process's (MCP: plain MCP; the rest: plain FastAPI).
TARGETS = {"constant": 0.85, "get": 0.35, "post": 0.25, "mcp": 1.0, "mcp_oauth": 1.0}
SCALING_TARGET = 1.6
VERIFY_TARGET_US = 2.0
BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU time per request
    wrk_us: float = 0.0  # the load generator's CPU time per request
    db_us: float = 0.0  # the database server's processes' CPU time per request (PostgreSQL; SQLite is in-process)


@dataclass
class Endpoint:
    label: str
    url: str
    key: str | None = None
    script: Path | None = None  # a wrk Lua script (method, body, headers)
    server_pid: int = 0  # whose CPU is measured
    idle_rate: float = 0.0  # that server's CPU seconds per second with no requests


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def median(results: list[Result]) -> Result:
    """Each figure's median over the runs (req/s, latencies and CPU separately; the lower middle for an even count)."""

    def mid(values: list[float]) -> float:
        return sorted(values)[(len(values) - 1) // 2]

    return Result(
        mid([r.rps for r in results]),
        mid([r.p50_ms for r in results]),
        mid([r.p99_ms for r in results]),
        mid([r.cpu_us for r in results]),
        mid([r.wrk_us for r in results]),
        mid([r.db_us for r in results]),
    )


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


def database_processes() -> list[int]:
    """The PostgreSQL server's processes on this machine (postmaster and backends), whose CPU a request also costs."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def idle_cpu_rate(server_pid: int, seconds: float = 2.0) -> float:
    """CPU seconds per second the server spends with no requests (key-change poll, usage flusher): subtracted from
    each run, so a slow run on a busy machine is not charged the background work of its longer wall time."""
    pids = process_tree(server_pid)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


def wrk(endpoint: Endpoint, *, seconds: int, connections: int) -> Result:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if endpoint.key:
        cmd += ["-H", f"Authorization: Bearer {endpoint.key}", "-H", "User-Agent: vibexp-bench"]
    if endpoint.script:
        cmd += ["-s", str(endpoint.script)]
    pids, db_pids = process_tree(endpoint.server_pid), database_processes()
    cpu_before, db_before, wrk_before = cpu_seconds(pids), cpu_seconds(db_pids), children_cpu_seconds()
    out = subprocess.run([*cmd, endpoint.url], capture_output=True, text=True, check=True).stdout
    cpu = max(0.0, cpu_seconds(pids) - cpu_before - endpoint.idle_rate * seconds)
    wrk_cpu = children_cpu_seconds() - wrk_before
    db_cpu = cpu_seconds(db_pids) - db_before  # backends started during the run are not counted (none: pooled)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {endpoint.label}:\n{out}")
    rps = float(_found(r"Requests/sec:\s+([\d.]+)", out))
    requests = int(_found(r"(\d+) requests in", out))
    per_request = 1e6 / max(requests, 1)
    return Result(
        rps,
        _ms(_found(r"\s50%\s+(\S+)", out)),
        _ms(_found(r"\s99%\s+(\S+)", out)),
        cpu * per_request,
        wrk_cpu * per_request,
        db_cpu * per_request,
    )


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in wrk's output:\n{text}")
    return match.group(1)


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
MCP_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "get_prompt", "arguments": {"name": "bench"}},
}


class PlainServer:
    """One of tests/bench/plain.py's apps under ``uvicorn`` with its defaults (one worker, access log on)."""

    def __init__(self, app: str, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"plain-{app}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    f"plain:{app}",
                    "--app-dir",
                    str(BENCH_DIR),
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the port accepts connections (a GET on the MCP path would open an event stream)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"plain server exited: {self.log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"plain server did not start: {self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Plain:
    fastapi: PlainServer
    mcp: PlainServer


def plain_endpoints(plain: Plain, scripts: Path) -> dict[str, Endpoint]:
    call = lua_script(scripts, "plain-mcp", body=MCP_CALL, headers=MCP_HEADERS)
    return {
        "plain": Endpoint(
            "plain FastAPI, constant JSON", f"{plain.fastapi.url}/constant", server_pid=plain.fastapi.pid
        ),
        "plain_mcp": Endpoint(
            "plain MCP SDK, tools/call", f"{plain.mcp.url}/mcp", script=call, server_pid=plain.mcp.pid
        ),
    }


@dataclass(frozen=True)
class Prepared:
    key: str  # an API key of the bench account
    prompt_id: str  # its prompt "bench"
    access_token: str  # an OAuth access token of the account's owner (prompts:read), for /mcp/v1/connect


def vibexp_endpoints(base: str, pid: int, ready: Prepared, scripts: Path) -> dict[str, Endpoint]:
    key, prompt_id = ready.key, ready.prompt_id
    memory = lua_script(
        scripts,
        "memory",
        body={"content": "The user prefers short answers.", "tags": ["bench"]},
        headers={"Content-Type": "application/json"},
    )
    mcp = lua_script(scripts, "mcp", body=MCP_CALL, headers=MCP_HEADERS)
    return {
        "constant": Endpoint("VibeXP GET /bench/constant (no key)", f"{base}/bench/constant", server_pid=pid),
        "healthz": Endpoint("VibeXP GET /healthz", f"{base}/healthz", server_pid=pid),
        "get": Endpoint("VibeXP GET /api/v1/prompts/{id}", f"{base}/api/v1/prompts/{prompt_id}", key, server_pid=pid),
        "post": Endpoint("VibeXP POST /api/v1/memories", f"{base}/api/v1/memories", key, memory, server_pid=pid),
        "mcp": Endpoint("VibeXP MCP tools/call get_prompt", f"{base}/mcp/v1/common", key, mcp, server_pid=pid),
        "mcp_oauth": Endpoint(
            "VibeXP MCP tools/call over /mcp/v1/connect (OAuth access token)",
            f"{base}/mcp/v1/connect",
            ready.access_token,
            mcp,
            server_pid=pid,
        ),
    }


def check_answers(plain: Plain, base: str, ready: Prepared) -> None:
    """One request each, checked, so the run measures working endpoints (wrk counts only status codes)."""
    key, prompt_id = ready.key, ready.prompt_id
    assert httpx.get(f"{plain.fastapi.url}/constant").json()["status"] == "ok"
    answer = httpx.post(f"{plain.mcp.url}/mcp", headers=MCP_HEADERS, json=MCP_CALL)
    assert answer.status_code == 200 and "three bullet points" in answer.text, answer.text
    auth = {"Authorization": f"Bearer {key}"}
    got = httpx.get(f"{base}/api/v1/prompts/{prompt_id}", headers=auth)
    assert got.status_code == 200 and got.json()["name"] == "bench", got.text
    assert got.headers["x-ratelimit-limit"], got.headers
    mcp = httpx.post(f"{base}/mcp/v1/common", headers=auth | MCP_HEADERS, json=MCP_CALL)
    assert mcp.status_code == 200 and "three bullet points" in mcp.text and '"isError":false' in mcp.text, mcp.text
    bearer = {"Authorization": f"Bearer {ready.access_token}"}
    connect = httpx.post(f"{base}/mcp/v1/connect", headers=bearer | MCP_HEADERS, json=MCP_CALL)
    assert connect.status_code == 200 and "three bullet points" in connect.text, connect.text
    assert '"isError":false' in connect.text, connect.text
    # The token is the grant's, on its path only: the key's path refuses it.
    refused = httpx.post(f"{base}/mcp/v1/common", headers=bearer | MCP_HEADERS, json=MCP_CALL)
    assert refused.status_code == 401, refused.text


async def prepare(database_url: str) -> Prepared:
    """Migrate, then make a tenant whose limit the run cannot reach, a key, one prompt and an OAuth access token."""
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
    try:
        token = await access_token(factory, account.tenant.id)
    finally:
        await engine.dispose()
    return Prepared(account.key, prompt.id, token)


async def access_token(factory: Any, tenant_id: str) -> str:
    """An owner of the account connects a client as the consent page and the token endpoint would: the client
    registers (RFC 7591), the person consents to ``prompts:read``, the code is exchanged with its PKCE verifier."""
    person = await make_person(factory, tenant_id=tenant_id, role=Role.owner)
    pkce = Pkce.new()
    async with session_scope(factory, write=True) as session:
        client = await oauth.register(session, ClientRegistration(client_name="bench", redirect_uris=(REDIRECT,)))
        caller = Caller.signed_in(
            tenant_id=tenant_id,
            user_id=person.user_id,
            name=person.email,
            client_ip="127.0.0.1",
            user_agent="vibexp-bench",
            role=Role.owner,
        )
        code = await oauth.consent(
            session,
            caller=caller,
            client=client,
            scopes=["prompts:read"],
            redirect_uri=REDIRECT,
            code_challenge=pkce.challenge,
            resource="http://127.0.0.1/mcp/v1/connect",
        )
    async with session_scope(factory, write=True) as session:
        issued = await oauth.exchange_code(
            session,
            code=code,
            code_verifier=pkce.verifier,
            client_id=client.id,
            redirect_uri=REDIRECT,
            resource=None,
        )
    if isinstance(issued, OAuthError):
        raise RuntimeError(f"the code exchange was refused: {issued}")
    return issued.access_token


async def verifier_micro(database_url: str, key: str, rounds: int = 20_000, batches: int = 7) -> float:
    """Microseconds per cached verification (parse header, SHA-256, cache lookup, expiry/suspension checks): the
    median of ``batches`` batches, so a batch that shared its core with another process's burst does not decide."""
    engine = create_engine(database_url)
    verifier = KeyVerifier(create_session_factory(engine))
    header = f"Bearer {key}"
    await verifier.verify(header)  # load into the cache
    each = []
    for _ in range(batches):
        started = time.process_time()  # CPU time: what a busy machine's other processes take is not counted
        for _ in range(rounds):
            await verifier.verify(header)
        each.append((time.process_time() - started) / rounds * 1e6)
    await engine.dispose()
    return sorted(each)[batches // 2]


@dataclass
class Run:
    args: argparse.Namespace
    logs: Path

    def serve(self, database_url: str, workers: int) -> LiveServer:
        # Log level info: VibeXP's access log is on, as the plain processes' is (uvicorn's default).
        env = {"VIBEXP_BENCH_ENDPOINTS": "true", "VIBEXP_LOG_LEVEL": "info"}
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

    def measure(self, chosen: dict[str, Endpoint]) -> dict[str, Result]:
        """Warm each endpoint up, note each server's idle CPU, then alternate them run by run; each one's medians."""
        opts: dict[str, Any] = {"connections": self.args.connections}
        for endpoint in chosen.values():
            wrk(endpoint, seconds=1, **opts)
        idle = {pid: idle_cpu_rate(pid) for pid in {e.server_pid for e in chosen.values()}}
        for endpoint in chosen.values():
            endpoint.idle_rate = idle[endpoint.server_pid]
        runs: dict[str, list[Result]] = {name: [] for name in chosen}
        for _ in range(self.args.runs):
            for name, endpoint in chosen.items():
                runs[name].append(wrk(endpoint, seconds=self.args.seconds, **opts))
        return {name: median(results) for name, results in runs.items()}


#: Which plain process each rung is stated against, and its target (None: diagnosis only).
BASES = {
    "plain": ("plain", None),
    "plain_mcp": ("plain_mcp", None),
    "constant": ("plain", TARGETS["constant"]),
    "healthz": ("plain", None),
    "get": ("plain", TARGETS["get"]),
    "post": ("plain", TARGETS["post"]),
    "mcp": ("plain_mcp", TARGETS["mcp"]),
    "mcp_oauth": ("plain_mcp", TARGETS["mcp_oauth"]),
}


def markdown_table(title: str, labels: dict[str, str], results: dict[str, Result]) -> tuple[list[str], bool]:
    """The README's table: one row per rung, ratios by req/s and by CPU µs/request to its plain process."""
    lines = [
        f"**{title}**",
        "",
        "| rung | req/s | p50 ms | p99 ms | CPU µs/req | x plain (req/s) | x plain (CPU) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ok = True
    for name, result in results.items():
        base_name, target = BASES[name]
        base = results[base_name]
        by_rps, by_cpu = result.rps / base.rps, base.cpu_us / max(result.cpu_us, 1e-9)
        verdict = ""
        if target is not None:
            met = by_rps >= target
            ok = ok and met
            verdict = f">= {target:.2f}x {'ok' if met else '**missed**'}"
        against = " (vs plain MCP)" if base_name == "plain_mcp" and name != base_name else ""
        lines.append(
            f"| {labels[name]}{against} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | "
            f"{result.cpu_us:,.0f} | {by_rps:.2f} | {by_cpu:.2f} | {verdict} |"
        )
    return lines, ok


def scaling_profile(one: Result, multi: Result, workers: int) -> str:
    """Where a request's CPU goes with one worker and with ``workers``, and what the machine's cores allow.

    With one worker the server is bound by one core (X µs per request); the database's processes (Y) and wrk (W) run
    on the others. With more workers every core is shared by all three, so on C cores the factor cannot exceed
    C·X / (X + Y + W): the cheaper the server's own request, the larger the share the database and the load
    generator take, and the lower that ceiling."""
    cores = os.cpu_count() or 1
    total = one.cpu_us + one.db_us + one.wrk_us
    ceiling = min(float(workers), cores * one.cpu_us / max(total, 1e-9))
    return (
        f"  CPU µs/request — one worker: server {one.cpu_us:,.0f}, database {one.db_us:,.0f}, wrk {one.wrk_us:,.0f}; "
        f"{workers} workers: server {multi.cpu_us:,.0f}, database {multi.db_us:,.0f}, wrk {multi.wrk_us:,.0f}. "
        f"Ceiling on {cores} cores: {cores} x {one.cpu_us:,.0f} / {total:,.0f} = {ceiling:.2f}x"
    )


def run_backend(name: str, database_url: str, run: Run, plain: Plain) -> bool:
    ready = asyncio.run(prepare(database_url))
    key = ready.key
    with run.serve(database_url, workers=1) as server:
        check_answers(plain, server.url, ready)
        eps = plain_endpoints(plain, run.logs) | vibexp_endpoints(server.url, server.pid, ready, run.logs)
        results = run.measure(eps)
        lines, ok = markdown_table(f"{name}, one worker each", {k: e.label for k, e in eps.items()}, results)
        print("\n" + "\n".join(lines))
        if run.args.workers > 1:
            with run.serve(database_url, workers=run.args.workers) as multi:
                pair = {
                    "one": eps["get"],
                    "multi": Endpoint(
                        eps["get"].label, eps["get"].url.replace(server.url, multi.url), key, server_pid=multi.pid
                    ),
                }
                scaled = run.measure(pair)
            factor = scaled["multi"].rps / scaled["one"].rps
            met = factor >= SCALING_TARGET
            ok = ok and met
            print(
                f"\n{name}: authenticated GET, 1 -> {run.args.workers} workers (Prometheus multiprocess mode): "
                f"{scaled['one'].rps:,.0f} -> {scaled['multi'].rps:,.0f} req/s = {factor:.2f}x "
                f"(target >= {SCALING_TARGET}x) {'ok' if met else 'MISSED'}"
            )
            print(scaling_profile(scaled["one"], scaled["multi"], run.args.workers))
    micro = asyncio.run(verifier_micro(database_url, key))
    met = micro <= VERIFY_TARGET_US
    print(
        f"{name}: cached key verification {micro:.2f} µs CPU "
        f"(target <= {VERIFY_TARGET_US} µs) {'ok' if met else 'MISSED'}"
    )
    return ok and met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "4")))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per rung; the median is shown")
    parser.add_argument("--workers", type=int, default=2, help="also measure this many workers (1: skip)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--no-scale", action="store_true", help="skip the 100,000-row rows (tests/bench/scale.py)")
    parser.add_argument("--quick", action="store_true", help="SQLite, one 2 s run each, no workers or scale rows")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.runs, args.workers, args.backend, args.no_scale = 2, 1, 1, "sqlite", True
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.runs} alternating run(s) each; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); wrk runs on the same machine"
    )
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(args, Path(tmp))
        plain = Plain(PlainServer("fastapi_app", run.logs), PlainServer("mcp_app", run.logs))
        try:
            plain.fastapi.wait_ready()
            plain.mcp.wait_ready()
            if args.backend in ("sqlite", "both"):
                ok = run_backend("SQLite", sqlite_url(run.logs, "bench.db"), run, plain) and ok
            if args.backend in ("postgres", "both"):
                url = asyncio.run(create_postgres_database("vibexp_bench"))
                try:
                    ok = run_backend("PostgreSQL", url, run, plain) and ok
                finally:
                    asyncio.run(drop_postgres_database(url))
        finally:
            plain.fastapi.stop()
            plain.mcp.stop()
    print(f"\n{'all targets met' if ok else 'some targets MISSED'} ({time.monotonic() - started:.0f} s)")
    if not args.no_scale:
        # Then lists and search at 100,000 rows against a 10-row tenant, in-process (scale.py, beside this file).
        from scale import run as scale_run

        scale_run(backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
