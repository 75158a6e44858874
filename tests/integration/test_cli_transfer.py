"""`vibexp export` / `vibexp import` as a user runs them: subprocesses against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_cli import vibexp

LINES = [
    {"type": "prompt", "name": "review", "description": "", "content": "Review {{file}}", "tags": ["code"]},
    {
        "type": "artifact",
        "project": "web",
        "slug": "plan",
        "title": "Plan",
        "description": "",
        "content_type": "text/markdown",
        "content": "# Plan",
        "tags": [],
    },
    {"type": "memory", "project": "web", "content": "Prefers tabs", "tags": ["style"]},
    {"type": "memory", "project": None, "content": "Grüße", "tags": []},
]


def _new_tenant(database_url: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert vibexp(database_url, "tenant", "create", name).returncode == 0
    return name


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in LINES), encoding="utf-8")
    return path


def _sorted(text: str) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in text.splitlines() if line)


def _sorted_without_history(text: str) -> list[str]:
    """The lines with a prompt's history taken out: a prompt imported without one has just version 1, itself."""
    lines = [json.loads(line) for line in text.splitlines() if line]
    for line in lines:
        if line["type"] == "prompt":
            (only,) = line.pop("versions")
            assert (only["version"], only["content"], line.pop("labels")) == (1, line["content"], {}), line
    return sorted(json.dumps(line, sort_keys=True) for line in lines)


def test_import_export_round_trip_and_import_twice(database_url: str, export_file: Path) -> None:
    first, second = _new_tenant(database_url), _new_tenant(database_url)
    empty = vibexp(database_url, "export", "--tenant", first)
    assert empty.returncode == 0 and empty.stdout == ""

    imported = vibexp(database_url, "import", "--tenant", first, str(export_file))
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr.strip() == f"imported into {first}: 4 created, 0 updated, 0 unchanged"
    again = vibexp(database_url, "import", "--tenant", first, str(export_file))
    assert again.stderr.strip() == f"imported into {first}: 0 created, 0 updated, 4 unchanged"

    exported = vibexp(database_url, "export", "--tenant", first)
    assert exported.returncode == 0 and exported.stderr == ""
    assert _sorted_without_history(exported.stdout) == _sorted(export_file.read_text(encoding="utf-8"))

    out = export_file.parent / "first.jsonl"
    out.write_text(exported.stdout, encoding="utf-8")
    assert vibexp(database_url, "import", "--tenant", second, str(out)).returncode == 0
    assert _sorted(vibexp(database_url, "export", "--tenant", second).stdout) == _sorted(exported.stdout)


def test_bad_input_is_one_line_on_stderr_and_exit_2(database_url: str, export_file: Path, tmp_path: Path) -> None:
    tenant = _new_tenant(database_url)
    cases = [
        (["import", "--tenant", tenant, str(tmp_path / "missing.jsonl")], "missing.jsonl: No such file"),
        (["import", "--tenant", tenant, str(tmp_path)], "Is a directory"),
        (["import", "--tenant", "no-such-tenant", str(export_file)], "no tenant named 'no-such-tenant'"),
        (["export", "--tenant", "no-such-tenant"], "no tenant named 'no-such-tenant'"),
    ]
    bad = tmp_path / "bad.jsonl"
    lines = export_file.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([lines[0], lines[1], "{not json", lines[2]]) + "\n", encoding="utf-8")
    cases.append((["import", "--tenant", tenant, str(bad)], "line 3: not JSON"))
    for args, message in cases:
        result = vibexp(database_url, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == "", args
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
        assert message in result.stderr, (message, result.stderr)
    # The bad file's two good lines before line 3 were not kept.
    assert vibexp(database_url, "export", "--tenant", tenant).stdout == ""


def test_lines_out_of_range_are_exit_2_naming_the_line(database_url: str, export_file: Path, tmp_path: Path) -> None:
    """Issue 26: a line nested a thousand deep or holding a 5,000-digit integer, a version number past the column, a
    ``created_at`` before year 1 in UTC: one line on stderr naming the line, nothing imported (was a traceback)."""
    tenant = _new_tenant(database_url)
    first = export_file.read_text(encoding="utf-8").splitlines()[0]
    prompt = {"type": "prompt", "name": "p", "content": "c"}
    bad_lines = {
        "nested too deeply": "[" * 1000 + "]" * 1000,
        "digits": '{"type": "memory", "content": "x", "n": ' + "9" * 5000 + "}",
        "version": json.dumps({**prompt, "versions": [{"version": 2**31, "content": "c"}]}),
        "created_at": json.dumps(
            {**prompt, "versions": [{"version": 1, "content": "c", "created_at": "0001-01-01T00:00:00+05:00"}]}
        ),
    }
    for expected, line in bad_lines.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(f"{first}\n{line}\n", encoding="utf-8")
        result = vibexp(database_url, "import", "--tenant", tenant, str(bad))
        assert result.returncode == 2, (expected, result.stderr[-2000:])
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr[-2000:]
        assert "line 2: " in result.stderr and expected in result.stderr, result.stderr
    assert vibexp(database_url, "export", "--tenant", tenant).stdout == ""


def test_on_a_fresh_sqlite_file_that_the_commands_migrate_first(tmp_path: Path, export_file: Path) -> None:
    # As in the README: no VIBEXP_AUTO_MIGRATE, an embedded SQLite file `db upgrade` created, then used by each command.
    env = {**os.environ, "VIBEXP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"}
    env.pop("VIBEXP_AUTO_MIGRATE", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "vibexp.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert run("db", "upgrade").returncode == 0  # only `db upgrade` (and `serve`) create the file
    assert run("tenant", "create", "fresh").returncode == 0
    imported = run("import", "--tenant", "fresh", str(export_file))
    assert imported.returncode == 0, imported.stderr
    exported = run("export", "--tenant", "fresh")
    assert exported.returncode == 0, exported.stderr
    assert _sorted_without_history(exported.stdout) == _sorted(export_file.read_text(encoding="utf-8"))
