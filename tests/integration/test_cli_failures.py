"""The `vibexp` command fails like a tool (issue 25): run as a user runs it, a subprocess in a folder that is not the
repository, every failure is one `error:` line on stderr with the exit code the README gives (2 a user error,
1 a database that cannot be reached), it never creates a database it was not asked to create, and it never says
an internal name."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from helpers.databases import POSTGRES_URL
from helpers.servers import free_port
from vibexp.cli import build_parser


def run(
    cwd: Path, *args: str, database_url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEXP_")}
    if database_url is not None:
        env["VIBEXP_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "vibexp.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


#: Every command that works on the database, with arguments that would be fine if it existed.
DATABASE_COMMANDS = [
    ("tenant", "list"),
    ("tenant", "create", "acme"),
    ("tenant", "update", "acme", "--tier", "pro"),
    ("key", "list", "--tenant", "acme"),
    ("key", "create", "--tenant", "acme", "--name", "laptop"),
    ("key", "revoke", "0190aaaa-0000-7000-8000-000000000000"),
    ("key", "rotate", "0190aaaa-0000-7000-8000-000000000000"),
    ("export", "--tenant", "acme"),
    ("user", "create", "--tenant", "acme", "--email", "a@example.com"),
]


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_command_run_where_no_sqlite_file_exists_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run(tmp_path, *args, stdin="a long enough password\n")
    assert result.returncode == 2, result
    line = one_error_line(result)
    assert str(tmp_path / "vibexp.db") in line  # where it looked, as an absolute path
    assert "VIBEXP_DATABASE_URL" in line and "vibexp db upgrade" in line  # how to point it elsewhere
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing was created"


def test_a_missing_sqlite_file_named_by_the_environment_is_named_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'elsewhere' / 'team.db'}"
    (tmp_path / "elsewhere").mkdir()
    result = run(tmp_path, "tenant", "list", database_url=url)
    assert result.returncode == 2
    line = one_error_line(result)
    assert str(tmp_path / "elsewhere" / "team.db") in line and url in line
    assert not (tmp_path / "elsewhere" / "team.db").exists()
    # `scan` without --revoke needs no database at all, and a key import refused before any database work.
    scan = run(tmp_path, "scan", str(tmp_path / "elsewhere"), database_url=url)
    assert scan.returncode == 0, scan.stderr
    import_ = run(tmp_path, "import", "--tenant", "acme", "no-such-file.jsonl", database_url=url)
    assert import_.returncode == 2 and "no-such-file.jsonl" in one_error_line(import_)


def test_db_upgrade_creates_the_file_and_then_the_other_commands_use_it(tmp_path: Path) -> None:
    upgraded = run(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "vibexp.db").is_file()
    created = run(tmp_path, "tenant", "create", "acme")
    assert created.returncode == 0, created.stderr
    assert run(tmp_path, "tenant", "list").stdout.splitlines()[1].startswith("acme\t")


@pytest.mark.parametrize(
    "args",
    [("tenant", "list"), ("db", "upgrade"), ("export", "--tenant", "acme"), ("key", "list", "--tenant", "acme")],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_unreachable_postgresql_is_one_error_line_and_exit_1(tmp_path: Path, args: tuple[str, ...]) -> None:
    url = f"postgresql+asyncpg://vibexp:s3cret-password@127.0.0.1:{free_port()}/vibexp"  # nothing listens there
    result = run(tmp_path, *args, database_url=url)
    assert result.returncode == 1, result
    line = one_error_line(result)
    assert "cannot reach the database" in line and "127.0.0.1" in line and "VIBEXP_DATABASE_URL" in line
    assert "s3cret-password" not in line  # the password is never printed
    assert result.stdout == ""  # not even a table header


def test_a_wrong_postgresql_password_is_one_error_line(tmp_path: Path) -> None:
    url = make_url(POSTGRES_URL).set(password="not-the-password").render_as_string(hide_password=False)
    result = run(tmp_path, "tenant", "list", database_url=url)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "password authentication failed" in line and "not-the-password" not in line


# -- user errors on a real database: exit 2 ---------------------------------------------------------------------
@pytest.fixture
def tenant(database_url: str, tmp_path: Path) -> str:
    name = f"fail-{uuid.uuid4().hex[:8]}"
    created = run(tmp_path, "tenant", "create", name, database_url=database_url)
    assert created.returncode == 0, created.stderr
    return name


def test_user_errors_exit_2_with_one_line_naming_the_flag(database_url: str, tenant: str, tmp_path: Path) -> None:
    def refused(*args: str, stdin: str | None = None) -> str:
        result = run(tmp_path, *args, database_url=database_url, stdin=stdin)
        assert result.returncode == 2, result
        assert result.stdout == ""
        return one_error_line(result)

    assert "already exists" in refused("tenant", "create", tenant)
    enterprise = refused("tenant", "create", f"{tenant}-ent", "--tier", "enterprise")
    assert enterprise.startswith("error: --rate-limit:"), enterprise
    assert refused("tenant", "create", f"{tenant}-x", "--rate-limit", "0").startswith("error: --rate-limit:")
    long_name = refused("tenant", "create", f"{tenant}-y", "--display-name", "x" * 300)
    assert long_name.startswith("error: --display-name:"), long_name
    assert "rate_limit_per_hour" not in enterprise and "display_name" not in long_name
    assert "no tenant named" in refused("key", "create", "--tenant", "no-such-tenant", "--name", "x")
    missing_id = str(uuid.uuid4())
    for args in (("key", "revoke", missing_id), ("key", "rotate", missing_id), ("key", "revoke", "not-an-id")):
        message = refused(*args)
        assert args[2] in message and "key list" in message, message
    short = refused("user", "create", "--tenant", tenant, "--email", f"{tenant}@example.com", stdin="short\n")
    assert "at least" in short
    # None of the refused commands created anything.
    listing = run(tmp_path, "tenant", "list", database_url=database_url).stdout
    assert f"{tenant}-ent" not in listing and f"{tenant}-x" not in listing and f"{tenant}-y" not in listing


def test_revoking_a_revoked_key_says_so(database_url: str, tenant: str, tmp_path: Path) -> None:
    made = run(tmp_path, "key", "create", "--tenant", tenant, "--name", "twice", database_url=database_url)
    assert made.returncode == 0, made.stderr
    listing = run(tmp_path, "key", "list", "--tenant", tenant, database_url=database_url).stdout
    key_id = listing.splitlines()[1].split("\t")[0]
    first = run(tmp_path, "key", "revoke", key_id, database_url=database_url)
    assert first.returncode == 0 and first.stderr.startswith("revoked API key"), first.stderr
    second = run(tmp_path, "key", "revoke", key_id, database_url=database_url)
    assert second.returncode == 0, second.stderr
    assert "already revoked at" in second.stderr and "nothing changed" in second.stderr
    assert made.stdout.strip() not in first.stderr + second.stderr


# -- the command line itself -------------------------------------------------------------------------------------
def test_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout == f"vibexp {importlib.metadata.version('vibexp')}\n"


def _parsers(parser: argparse.ArgumentParser, path: str = "vibexp") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_parsers(sub, f"{path} {name}"))
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert len(_parsers(build_parser())) > 15
    assert not missing, f"options without help text: {missing}"


@pytest.mark.parametrize("args", [(), ("key",), ("tenant",), ("db",), ("user",)], ids=lambda a: " ".join(a) or "-")
def test_a_missing_sub_command_names_the_choices_not_an_internal_name(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert not re.search(r"\b\w+_command\b|\bcommand\b(?!s)", result.stderr.splitlines()[-1]), result.stderr
    assert "{" in result.stderr.splitlines()[-1]  # the choices, e.g. {create,list,revoke,rotate}
