"""The `vibexp` command imports what a command needs when it runs: `--version`, `--help` and a refused argument
load no framework, ORM or validation library, and `scan` (no database) loads no web server, MCP SDK or migrations.
Each case runs in a fresh interpreter, as the console script does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("fastapi", "starlette", "uvicorn", "mcp", "alembic", "sqlalchemy", "kopf", "kubernetes_asyncio", "httpx")
PROBE = """
import json, sys
from vibexp.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def loaded(cwd: Path, *args: str) -> tuple[object, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("key", "create", "--help"), ("tenant", "frobnicate")])
def test_parsing_alone_loads_nothing_heavy(args: tuple[str, ...], tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, *args)
    assert code in (0, 2)
    assert not modules & {*HEAVY, "pydantic", "pydantic_settings"}, sorted(modules & {*HEAVY, "pydantic"})


def test_scan_without_a_database_loads_no_server_or_migrations(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to see\n")
    code, modules = loaded(tmp_path, "scan", str(tmp_path))
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
