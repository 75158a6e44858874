"""The release artifact as a user installs it (DESIGN "Production install"): the wheel, its runtime dependencies only
(no dev extra) at the versions uv.lock pins, in a fresh virtualenv, run from a folder that is not the repository.

The rest of the suite always runs with the dev extra installed and from the repository root, so a runtime import
that only a dev or test package satisfies (``httpx`` in ``core/alerts/sender.py`` once) or a file read relative to
the checkout passes there and breaks every install. These tests see it:

* every third-party import under ``api/vibexp`` and ``operator/vibexp`` (read from the sources' syntax trees) is
  provided by a distribution of the locked runtime dependency closure, never one the dev extra alone brings;
* the wheel, installed into a fresh virtualenv with uv from uv's cache (no network beyond PyPI through that cache),
  imports every one of its modules, and its ``vibexp`` command runs ``db upgrade``, ``tenant create``,
  ``key create``, ``serve`` (``/readyz``, a REST read and MCP ``initialize`` + ``tools/list`` with the key) and
  ``operator --help``, on SQLite (the default ``./vibexp.db`` of the working folder) and PostgreSQL.

Where the time goes (a shared 2-core machine): the wheel and the virtualenv are built once per session (about
2 s for the wheel, 3-10 s for the install, from uv's cache); each ``serve`` takes 3-10 s to become ready.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.databases import create_postgres_database, drop_postgres_database
from helpers.servers import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (REPO / "api" / "vibexp", REPO / "operator" / "vibexp")
UV = Path(sys.executable).parent / "uv"
#: Packages of the dev extra that must never reach a user's install.
DEV_ONLY = ("pytest", "ruff", "mypy", "import-linter", "playwright", "schemathesis", "hatchling", "pre-commit")
JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
READY_TIMEOUT = 120.0


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked_runtime() -> dict[str, str]:
    """``{distribution: version}`` of what uv.lock installs without any extra: the runtime closure."""
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    pins = {}
    for line in exported.splitlines():
        requirement = line.split(";")[0].strip()
        if requirement and not requirement.startswith("#"):
            name, _, version = requirement.partition("==")
            pins[_normalise(name)] = version
    return pins


def _third_party_imports() -> dict[str, set[str]]:
    """``{top-level module: {source files importing it}}`` for every absolute import outside the standard library."""
    found: dict[str, set[str]] = {}
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "vibexp":
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_runtime_import_comes_from_a_runtime_dependency() -> None:
    """An import is provided by a distribution uv.lock installs without the dev extra (declared in
    ``[project.dependencies]`` or required by one of them), never by a dev-only package."""
    runtime = _locked_runtime()
    declared = {
        _normalise(re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0])
        for spec in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert declared <= set(runtime), f"declared but not locked: {sorted(declared - set(runtime))}"
    providers = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"fastapi", "sqlalchemy", "kopf", "mcp"} <= set(imports), "the source walk found the imports"
    problems = []
    for module, files in sorted(imports.items()):
        distributions = {_normalise(d) for d in providers.get(module, [])}
        if not distributions:
            problems.append(f"{module}: no installed distribution provides it ({sorted(files)})")
        elif not distributions & set(runtime):
            problems.append(
                f"{module} (from {sorted(distributions)}) is not a runtime dependency, only a dev one: imported by "
                f"{sorted(files)}"
            )
    assert not problems, "\n".join(problems)


# -- the installed wheel -----------------------------------------------------------------------------------------
def _clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no VIBEXP_ settings, no Python or uv settings of the test run, the
    virtualenv's bin first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIBEXP_", "PYTHON", "UV_", "VIRTUAL_ENV", "PROMETHEUS_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return {**env, **extra}


@pytest.fixture(scope="session")
def release_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed with its locked runtime dependencies into a fresh virtualenv."""
    work = tmp_path_factory.mktemp("release")
    dist = work / "dist"
    subprocess.run(  # hatchling from the dev extra, as the Dockerfile test builds it
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("vibexp-*.whl")
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in _locked_runtime().items()))
    venv = work / "venv"
    uv_env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_PROJECT", "VIRTUAL_ENV"))}
    subprocess.run(
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
        env=uv_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The wheel's own metadata decides what is installed (its runtime dependencies, no extra), uv.lock's pins
    # decide the versions. No --offline: a cold cache may fetch the locked files from PyPI, nothing else.
    installed = subprocess.run(
        [str(UV), "pip", "install", "--python", str(venv / "bin" / "python"), "-c", str(constraints), str(wheel)],
        env=uv_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def test_the_wheel_installs_the_locked_runtime_dependencies_and_nothing_of_the_dev_extra(release_venv: Path) -> None:
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", str(release_venv / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    installed = {_normalise(p["name"]): p["version"] for p in json.loads(listed)}
    runtime = _locked_runtime()
    for name, version in installed.items():
        if name != "vibexp":
            assert runtime.get(name) == version, f"{name} {version} is not the locked runtime pin {runtime.get(name)}"
    for dev_only in DEV_ONLY:
        assert dev_only not in installed, f"{dev_only} (dev extra only) was installed"
    assert {"vibexp", "fastapi", "mcp", "kopf", "sqlalchemy", "asyncpg", "aiosqlite"} <= set(installed)


def test_every_module_of_the_installed_package_imports(release_venv: Path, tmp_path: Path) -> None:
    """Importing each module of the installed ``vibexp`` (not the checkout's) finds every dependency it needs."""
    script = """
import importlib, pkgutil, sys, vibexp
assert "site-packages" in vibexp.__path__[0], vibexp.__path__
failed = []
names = [m.name for m in pkgutil.walk_packages(vibexp.__path__, "vibexp.") if ".migrations.versions." not in m.name]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
sys.exit("\\n".join(failed) if failed else 0)
"""
    proc = subprocess.run(
        [str(release_venv / "bin" / "python"), "-c", script],
        cwd=tmp_path,
        env=_clean_env(release_venv),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 50, proc.stdout  # the walk really found the package's modules


def _vibexp(venv: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "vibexp"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(params=["sqlite", "postgres"])
def release_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment naming the database: none for SQLite (the default ``./vibexp.db`` of the working folder), a
    fresh, unmigrated PostgreSQL database otherwise."""
    if request.param == "sqlite":
        yield {}
        return
    url = asyncio.run(create_postgres_database("vibexp_release"))
    try:
        yield {"VIBEXP_DATABASE_URL": url}
    finally:
        asyncio.run(drop_postgres_database(url))


def test_the_installed_command_migrates_serves_rest_and_mcp_and_runs_the_operator(
    release_venv: Path, release_database: dict[str, str], tmp_path: Path
) -> None:
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    env = _clean_env(release_venv, **release_database)

    version = _vibexp(release_venv, cwd, env, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"vibexp {importlib.metadata.version('vibexp')}"
    upgraded = _vibexp(release_venv, cwd, env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    if not release_database:
        assert (cwd / "vibexp.db").is_file(), "the default SQLite file lives in the working folder"
    created = _vibexp(release_venv, cwd, env, "tenant", "create", "release", "--tier", "pro")
    assert created.returncode == 0, created.stderr
    made = _vibexp(release_venv, cwd, env, "key", "create", "--tenant", "release", "--name", "release check")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    auth = {"Authorization": f"Bearer {key}"}

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(release_venv / "bin" / "vibexp"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, log.read_text(errors="replace")[-5000:]

        with httpx.Client(base_url=url, timeout=30) as client:
            created_prompt = client.post(
                "/api/v1/prompts", headers=auth, json={"name": "release-check", "content": "Hello {{who}}"}
            )
            assert created_prompt.status_code == 201, created_prompt.text
            listed = client.get("/api/v1/prompts", headers=auth)
            assert listed.status_code == 200 and [p["name"] for p in listed.json()["items"]] == ["release-check"]

            initialize = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "release-check", "version": "1"},
                },
            }
            hello = client.post("/mcp/v1/common", headers={**auth, **JSONRPC_HEADERS}, json=initialize)
            assert hello.status_code == 200, hello.text
            assert hello.json()["result"]["serverInfo"]["name"], hello.text
            tools = client.post(
                "/mcp/v1/common",
                headers={**auth, **JSONRPC_HEADERS, "MCP-Protocol-Version": "2025-06-18"},
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
            )
            assert tools.status_code == 200, tools.text
            assert "get_prompt" in {tool["name"] for tool in tools.json()["result"]["tools"]}
            refused = client.get("/api/v1/prompts", headers={"Authorization": "Bearer vib_" + "0" * 64})
            assert refused.status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]
    assert key not in text

    operator = _vibexp(release_venv, cwd, env, "operator", "--help")
    assert operator.returncode == 0, operator.stderr
    assert "--namespace" in operator.stdout
