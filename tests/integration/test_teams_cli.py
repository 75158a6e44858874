"""Teams with the `vibexp` command, against a running server: invite a colleague (the link alone on stdout), they
accept over REST, a personal key for them (`key create --owner`), a role change and a removal the server follows
within a second, and the refusals as one `error:` line with exit 2 (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from helpers.servers import LiveServer
from integration.test_cli import KEY_LINE, vibexp
from vibexp.cli.member import ROLES
from vibexp.core.access import ROLE_NAMES

PASSWORD = "correct horse battery\n"


def test_the_clis_roles_are_the_cores() -> None:
    assert ROLES == ROLE_NAMES


def _until(url: str, headers: dict[str, str], status: int) -> httpx.Response:
    deadline = time.monotonic() + 1.5
    while True:
        response = httpx.get(url, headers=headers)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def test_invite_key_demote_and_remove_a_colleague(database_url: str, tmp_path: Path) -> None:
    tenant = f"team-{uuid.uuid4().hex[:8]}"
    assert vibexp(database_url, "tenant", "create", tenant).returncode == 0
    owner = f"owner@{tenant}.example.com"
    colleague = f"Colleague@{tenant}.example.com"
    made = vibexp(database_url, "user", "create", "--tenant", tenant, "--email", owner, stdin=PASSWORD)
    assert made.returncode == 0 and "(owner)" in made.stderr, made.stderr
    invited = vibexp(database_url, "member", "invite", "--tenant", tenant, "--email", colleague, "--role", "member")
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip()
    assert invited.stdout.count("\n") == 1 and "#vibinv_" in link
    token = link.split("#", 1)[1]
    assert token not in invited.stderr
    with LiveServer(database_url).start(tmp_path) as server:
        accepted = httpx.post(
            f"{server.url}/api/v1/members/invitations/accept", json={"token": token, "password": PASSWORD.strip()}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["email"] == colleague.lower() and accepted.json()["role"] == "member"
        again = vibexp(database_url, "member", "invite", "--tenant", tenant, "--email", colleague, "--role", "viewer")
        assert again.returncode == 2 and "already a member" in again.stderr
        key = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "Claude Code", "--owner", colleague)
        assert key.returncode == 0 and KEY_LINE.match(key.stdout), key.stderr
        assert f"owned by {colleague}" in key.stderr
        auth = {"Authorization": f"Bearer {key.stdout.strip()}"}
        memories = f"{server.url}/api/v1/memories"
        assert httpx.post(memories, json={"content": "ship on Fridays"}, headers=auth).status_code == 201
        listing = vibexp(database_url, "member", "list", "--tenant", tenant)
        rows = {line.split("\t")[1]: line.split("\t") for line in listing.stdout.splitlines()[1:]}
        assert rows[colleague.lower()][2] == "member" and rows[colleague.lower()][5] == "1"
        assert rows[owner][2] == "owner"
        keys = vibexp(database_url, "key", "list", "--tenant", tenant).stdout.splitlines()[1:]
        assert [line.split("\t")[10] for line in keys] == [colleague.lower()]
        # A demotion: the running server narrows the key within a second.
        demoted = vibexp(database_url, "member", "role", "--tenant", tenant, "--email", colleague, "viewer")
        assert demoted.returncode == 0 and "now viewer" in demoted.stderr
        for _ in range(40):
            if httpx.post(memories, json={"content": "x"}, headers=auth).status_code == 403:
                break
            time.sleep(0.025)
        else:
            raise AssertionError("the demoted member's key still writes after 1 s")
        assert httpx.get(memories, headers=auth).status_code == 200
        # The last owner stays; unknown people and roles are refused.
        last = vibexp(database_url, "member", "role", "--tenant", tenant, "--email", owner, "admin")
        assert last.returncode == 2 and "last owner" in last.stderr
        assert vibexp(database_url, "member", "role", "--tenant", tenant, "--email", owner, "boss").returncode == 2
        nobody = vibexp(database_url, "member", "remove", "--tenant", tenant, "--email", f"nobody@{tenant}.io")
        assert nobody.returncode == 2 and nobody.stderr.startswith("error:")
        stranger = vibexp(
            database_url, "key", "create", "--tenant", tenant, "--name", "x", "--owner", f"nobody@{tenant}.io"
        )
        assert stranger.returncode == 2 and stranger.stdout == ""
        # Removal: their key is refused on the running server within a second.
        removed = vibexp(database_url, "member", "remove", "--tenant", tenant, "--email", colleague)
        assert removed.returncode == 0 and "revoked 1 personal key" in removed.stderr, removed.stderr
        assert _until(memories, auth, 401).status_code == 401
