"""`vibexp scan`: keys in files, trees and git history, only prefixes printed, CI exit codes (1 found, 0 none,
2 bad input), binary files and .git skipped, --revoke, and the vibexp-scan hook run by the real pre-commit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.teams import make_grant, make_person
from vibexp.core.access import Role
from vibexp.core.audit.models import AuditEvent
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.scan import SECRET_KINDS, ScanError, scan_git, scan_paths
from vibexp.core.keys.tokens import KEY_PREFIX, generate_key
from vibexp.core.oauth.models import OAuthCode, OAuthGrant
from vibexp.core.oauth.tokens import (
    ACCESS_PREFIX,
    CODE_PREFIX,
    REFRESH_PREFIX,
    hash_secret,
    new_access_token,
    new_code,
    new_refresh_token,
)

ROOT = Path(__file__).resolve().parents[2]


def _vibexp(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vibexp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_finds_keys_in_files_and_trees_printing_only_prefixes(tmp_path: Path) -> None:
    key, other = generate_key(), generate_key()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.py").write_text(f"x = 1\nAPI_KEY = '{key}'\n")
    (tmp_path / "notes.md").write_text(f"token: {other} and again {other}\n")
    (tmp_path / "clean.txt").write_text("vib_ followed by nothing; vib_" + "a" * 63 + "\n")
    # Not keys: glued to more identifier characters.
    (tmp_path / "glued.txt").write_text(f"x{key}\n{key}ab\n")
    result = _vibexp("scan", ".", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"notes.md:1: {other[:12]}…",
        f"notes.md:1: {other[:12]}…",
        f"src/config.py:2: {key[:12]}…",
    ]
    assert key[12:] not in result.stdout + result.stderr and other[12:] not in result.stdout + result.stderr
    assert "Finding" in repr(scan_paths([tmp_path / "src"])[0]) and key not in repr(scan_paths([tmp_path / "src"]))


def test_nothing_found_exits_0_and_skips_binary_files_and_dot_git(tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\0\0" + key.encode() + b"\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "COMMIT_EDITMSG").write_text(key)
    (tmp_path / "ok.txt").write_text("nothing here\n")
    assert scan_paths([tmp_path]) == []
    result = _vibexp("scan", str(tmp_path), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "missing.txt"], "no such file or directory: missing.txt"),
        (["scan", "/proc/self/mem"], "cannot read /proc/self/mem"),  # read fails (EIO) even for root
        (["scan", "--git", "."], "not a git repository"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = _vibexp(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, (result.returncode, result.stderr)
    assert result.stdout == ""


def test_git_finds_a_key_removed_from_the_tree_but_still_in_history(tmp_path: Path) -> None:
    repo, key = tmp_path / "repo", generate_key()
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "settings.env").write_text(f"A=1\nVIBEXP_KEY={key}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "oops")
    (repo / "settings.env").write_text("A=1\n")
    _git(repo, "commit", "-qam", "remove the key")
    assert scan_paths([repo]) == []
    [finding] = scan_git(repo)
    assert finding.location.endswith(":settings.env") and finding.line == 2 and finding.key == key
    result = _vibexp("scan", "--git", str(repo), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout.endswith(f":settings.env:2: {key[:12]}…\n"), result
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert scan_git(empty) == []
    with pytest.raises(ScanError, match="not a git repository"):
        scan_git(tmp_path / "nowhere")


async def test_revoke_revokes_the_active_keys_found(
    tmp_path: Path, database_url: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The account is made from outside any app (``db_factory``), and the CLI runs in a thread: an in-process app's
    background writer paused mid-unit by a blocking call would hold SQLite's write lock over the CLI's busy wait."""
    account = await make_account(db_factory)
    (tmp_path / "leak.txt").write_text(f"{account.key}\n{generate_key()}\n")
    env = {"VIBEXP_DATABASE_URL": database_url}
    result = await asyncio.to_thread(_vibexp, "scan", "--revoke", "leak.txt", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert f"revoked 1 active key(s): {account.key[:12]}..." in result.stderr
    assert account.key not in result.stdout + result.stderr
    async with db_factory() as session:
        record = await session.get(ApiKey, account.key_id)
        assert record is not None and record.status == KeyStatus.revoked.value


def test_pre_commit_hook_refuses_a_commit_with_a_key(tmp_path: Path) -> None:
    """The real pre-commit runs the hook as `.pre-commit-hooks.yaml` defines it (as a `repo: local` hook with the
    installed `vibexp` on PATH, so no network is needed to build a hook environment)."""
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "vibexp-scan" and hook["entry"] == "vibexp scan"
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    local = {**hook, "language": "system"}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}))
    (repo / "app.py").write_text("print('hello')\n")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    pre_commit = str(Path(sys.executable).parent / "pre-commit")

    def run() -> subprocess.CompletedProcess[str]:
        _git(repo, "add", "-A")
        return subprocess.run(
            [pre_commit, "run"], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    clean = run()
    assert clean.returncode == 0 and "Passed" in clean.stdout, clean.stdout + clean.stderr
    key = generate_key()
    (repo / "app.py").write_text(f"KEY = '{key}'\n")
    dirty = run()
    assert dirty.returncode == 1 and f"app.py:1: {key[:12]}…" in dirty.stdout, dirty.stdout + dirty.stderr
    assert key not in dirty.stdout + dirty.stderr


async def test_report_to_sends_the_keys_found_to_the_server_which_revokes_them(
    database_url: str, tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    """A CI job with no database access: ``--report-to`` posts the findings to ``POST /api/v1/leaked-keys``."""
    import asyncio

    from helpers.servers import LiveServer

    repo, logs = tmp_path / "repo", tmp_path / "logs"
    repo.mkdir(), logs.mkdir()
    (repo / "leak.env").write_text(f"VIBEXP_KEY={account.key}\n")
    with LiveServer(database_url).start(logs) as server:
        result = await asyncio.to_thread(_vibexp, "scan", ".", "--report-to", server.url, cwd=repo)
        assert result.returncode == 1, result.stderr  # still a find: CI fails the job
        assert "reported 1 key(s)" in result.stderr and account.key not in result.stdout + result.stderr
        async with session_factory() as session:
            key = await session.get(ApiKey, account.key_id)
            assert key is not None and key.status == KeyStatus.revoked.value

        for bad in ("ftp://x", "not a url"):
            refused = await asyncio.to_thread(_vibexp, "scan", ".", "--report-to", bad, cwd=repo)
            assert refused.returncode == 2 and refused.stderr.startswith("error: --report-to"), refused.stderr
    gone = await asyncio.to_thread(_vibexp, "scan", ".", "--report-to", server.url, cwd=repo)  # server stopped
    assert gone.returncode == 2 and "cannot reach" in gone.stderr, gone.stderr


# -- issue 26 "Also weak": UTF-16, messages, checksums, escapes, a count when nothing is found ------------------------
NOT_A_KEY = "vib_" + "0123456789abcdef" * 4  # key-shaped, but its last 8 characters are not its checksum


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_finds_keys_in_utf16_and_utf32_text(tmp_path: Path, encoding: str) -> None:
    key = generate_key()
    (tmp_path / "secrets.ps1").write_bytes(f"# config\r\n$env:VIBEXP_KEY = '{key}'\r\n".encode(encoding))
    [finding] = scan_paths([tmp_path])
    assert (finding.line, finding.key) == (2, key)


def test_git_finds_keys_in_utf16_blobs_and_in_commit_and_tag_messages(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    in_file, in_commit, in_tag = generate_key(), generate_key(), generate_key()
    (repo / "env.ps1").write_bytes(f"x = 1\n$KEY = '{in_file}'\n".encode("utf-16"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"configure\n\nthe key is {in_commit}\n")
    _git(repo, "tag", "-a", "v1", "-m", f"release\n{in_tag}")
    (repo / "env.ps1").write_text("removed\n")
    _git(repo, "commit", "-qam", "remove the key")
    found = {f.key: f for f in scan_git(repo)}
    assert set(found) == {in_file, in_commit, in_tag}
    assert found[in_file].location.endswith(":env.ps1") and found[in_file].line == 2
    assert found[in_commit].location.startswith("commit ") and found[in_commit].line == 3
    assert found[in_tag].location == "tag v1 message" and found[in_tag].line == 2
    result = _vibexp("scan", "--git", str(repo), cwd=tmp_path)
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 3, result


def test_a_key_shaped_string_whose_checksum_fails_is_left_out_unless_asked(tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "fixtures.py").write_text(f"FAKE = '{NOT_A_KEY}'\nREAL = '{key}'\n")
    assert [f.key for f in scan_paths([tmp_path])] == [key]
    assert [f.key for f in scan_paths([tmp_path], include_unchecked=True)] == [NOT_A_KEY, key]
    (tmp_path / "fixtures.py").write_text(f"FAKE = '{NOT_A_KEY}'\n")
    quiet = _vibexp("scan", ".", cwd=tmp_path)
    assert (quiet.returncode, quiet.stdout) == (0, ""), quiet
    assert "left out 1 key-shaped string(s) whose checksum fails" in quiet.stderr and "--legacy" in quiet.stderr
    legacy = _vibexp("scan", "--legacy", ".", cwd=tmp_path)
    assert legacy.returncode == 1
    assert legacy.stdout == f"fixtures.py:1: {NOT_A_KEY[:12]}… (no valid checksum: a key made before checksums?)\n"


def test_file_names_are_printed_with_escapes_never_raw_control_characters(tmp_path: Path) -> None:
    key = generate_key()
    name = "\x1b[2J\x1b]0;owned\x07evil\u202etxt.env"
    (tmp_path / name).write_text(f"KEY={key}\n")
    result = _vibexp("scan", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert result.stdout == f"\\x1b[2J\\x1b]0;owned\\x07evil\\u202etxt.env:1: {key[:12]}…\n"


def test_nothing_found_says_how_much_was_read(tmp_path: Path) -> None:
    for n in range(3):
        (tmp_path / f"f{n}.txt").write_text("clean\n")
    result = _vibexp("scan", ".", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "no VibeXP API key or OAuth token found: read 3 file(s)\n"
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("clean\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    history = _vibexp("scan", "--git", str(repo), cwd=tmp_path)
    assert history.returncode == 0
    assert (
        history.stderr
        == "no VibeXP API key or OAuth token found: read 1 file(s) in 1 commit(s) and 1 commit or tag message(s)\n"
    )


# -- OAuth tokens (issue 29): vibo_ access, vibr_ refresh, vibc_ codes ------------------------------------------------
def test_finds_oauth_tokens_printing_only_prefixes_and_kinds(tmp_path: Path) -> None:
    access, refresh, code = new_access_token(), new_refresh_token(), new_code()
    (tmp_path / "claude.json").write_text(f'{{"access_token": "{access}",\n "refresh_token": "{refresh}"}}\n')
    (tmp_path / "callback.log").write_text(f"GET /callback?code={code}&state=x\n")
    (tmp_path / "not.txt").write_text(f"vibo_{'a' * 63}\nx{access}\nvibx_{'a' * 64}\n")  # short, glued, no such prefix
    result = _vibexp("scan", ".", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"callback.log:1: {code[:13]}… (OAuth authorization code)",
        f"claude.json:1: {access[:13]}… (OAuth access token)",
        f"claude.json:2: {refresh[:13]}… (OAuth refresh token)",
    ]
    for secret in (access, refresh, code):
        assert secret[13:] not in result.stdout + result.stderr
    assert access not in repr(scan_paths([tmp_path]))
    assert set(SECRET_KINDS) == {KEY_PREFIX, ACCESS_PREFIX, REFRESH_PREFIX, CODE_PREFIX}  # the spellings agree


def test_git_finds_an_oauth_token_removed_from_the_tree(tmp_path: Path) -> None:
    token = new_refresh_token()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "tokens.json").write_text(f'{{"refresh_token": "{token}"}}\n')
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "oops")
    (repo / "tokens.json").write_text("{}\n")
    _git(repo, "commit", "-qam", "fix")
    [finding] = scan_git(repo)
    assert finding.kind == "OAuth refresh token" and finding.key == token and finding.location.endswith(":tokens.json")


async def test_revoke_revokes_the_connected_apps_of_the_tokens_found(
    tmp_path: Path, database_url: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A leaked access token, refresh token or still-unused code revokes its grant (``oauth.revoked``, ``reason:
    leaked``); an unknown token changes nothing; the tokens are never printed."""
    account = await make_account(db_factory)
    person = await make_person(db_factory, tenant_id=account.tenant.id, role=Role.member)
    by_access = await make_grant(db_factory, tenant_id=account.tenant.id, person=person, scopes=["prompts:read"])
    by_refresh = await make_grant(db_factory, tenant_id=account.tenant.id, person=person, scopes=["prompts:read"])
    untouched = await make_grant(db_factory, tenant_id=account.tenant.id, person=person, scopes=["prompts:read"])
    (tmp_path / "leak.txt").write_text(
        f"{by_access.access_token}\n{by_refresh.refresh_token}\n{by_access.spare_code}\n{new_access_token()}\n"
    )
    env = {"VIBEXP_DATABASE_URL": database_url}
    result = await asyncio.to_thread(_vibexp, "scan", "--revoke", "leak.txt", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "revoked 3 connected app(s) (OAuth grants)" in result.stderr, result.stderr
    assert "active key(s)" not in result.stderr  # no key was found
    for secret in (by_access.access_token, by_refresh.refresh_token, by_access.spare_code):
        assert secret not in result.stdout + result.stderr
    async with db_factory() as session:
        spare = await session.get(OAuthCode, hash_secret(by_access.spare_code))
        assert spare is not None
        revoked = {by_access.grant_id, by_refresh.grant_id, spare.grant_id}
        for grant_id in [*revoked, untouched.grant_id]:
            grant = await session.get(OAuthGrant, grant_id)
            assert grant is not None
            assert (grant.revoked_reason, grant.access_hash is None) == (
                ("leaked", True) if grant_id in revoked else (None, False)
            )
        events = list(
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == account.tenant.id, AuditEvent.action == "oauth.revoked"
                )
            )
        )
    assert sorted(e.target_id or "" for e in events) == sorted(revoked)
    assert {e.details["reason"] for e in events} == {"leaked"} and {e.details["source"] for e in events} == {
        "vibexp scan"
    }
    again = await asyncio.to_thread(_vibexp, "scan", "--revoke", "leak.txt", cwd=tmp_path, env=env)
    assert "revoked 0 connected app(s) (OAuth grants): none was active" in again.stderr, again.stderr
