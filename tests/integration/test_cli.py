"""The `vibexp` command as a user runs it: a subprocess against the test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from helpers.servers import LiveServer

KEY_LINE = re.compile(r"^vib_[0-9a-f]{64}\n$")


def vibexp(database_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIBEXP_DATABASE_URL": database_url, "VIBEXP_AUTO_MIGRATE": "false"}
    return subprocess.run(
        [sys.executable, "-m", "vibexp.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def tenant(database_url: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = vibexp(database_url, "tenant", "create", name, "--tier", "pro")
    assert result.returncode == 0, result.stderr
    assert "10000 requests/hour" in result.stdout
    return name


def test_key_create_prints_the_key_alone_on_stdout(database_url: str, tenant: str) -> None:
    result = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "Work Laptop - Cursor")
    assert result.returncode == 0, result.stderr
    assert KEY_LINE.match(result.stdout)
    key = result.stdout.strip()
    assert key not in result.stderr and "shown only once" in result.stderr
    listing = vibexp(database_url, "key", "list", "--tenant", tenant)
    assert "Work Laptop - Cursor" in listing.stdout and key[:12] in listing.stdout
    assert key not in listing.stdout  # only the display prefix is ever shown again


def test_revoke_and_rotate_take_effect_on_a_running_server(database_url: str, tenant: str, tmp_path: Path) -> None:
    key = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "ci").stdout.strip()
    other = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "rotate me").stdout.strip()
    listing = vibexp(database_url, "key", "list", "--tenant", tenant).stdout.splitlines()[1:]
    ids = {line.split("\t")[6]: line.split("\t")[0] for line in listing}
    with LiveServer(database_url).start(tmp_path) as server:
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{server.url}/api/v1/prompts", headers=auth).status_code == 200
        revoked = vibexp(database_url, "key", "revoke", ids["ci"])
        assert revoked.returncode == 0 and revoked.stdout == ""
        # Another process revoked it: the server's cache learns within a second.
        for _ in range(50):
            response = httpx.get(f"{server.url}/api/v1/prompts", headers=auth)
            if response.status_code == 401:
                break
            time.sleep(0.05)
        assert response.status_code == 401
        rotated = vibexp(database_url, "key", "rotate", ids["rotate me"])
        assert rotated.returncode == 0 and KEY_LINE.match(rotated.stdout)
        new_auth = {"Authorization": f"Bearer {rotated.stdout.strip()}"}
        assert httpx.get(f"{server.url}/api/v1/prompts", headers=new_auth).status_code == 200
        old_auth = {"Authorization": f"Bearer {other}"}
        for _ in range(50):
            if httpx.get(f"{server.url}/api/v1/prompts", headers=old_auth).status_code == 401:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the rotated-out key still works")


def test_errors_go_to_stderr_with_a_non_zero_exit(database_url: str, tenant: str) -> None:
    missing = vibexp(database_url, "key", "create", "--tenant", "no-such-tenant", "--name", "x")
    assert missing.returncode == 2 and missing.stdout == "" and "no tenant named" in missing.stderr
    duplicate = vibexp(database_url, "tenant", "create", tenant)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    enterprise = vibexp(database_url, "tenant", "create", f"{tenant}-ent", "--tier", "enterprise")
    assert enterprise.returncode == 2 and "--rate-limit" in enterprise.stderr
    bad_name = vibexp(database_url, "tenant", "create", "Not A DNS Name")
    assert bad_name.returncode == 2 and bad_name.stderr.startswith("error: NAME: ")  # the argument, as --help names it
    unknown_key = vibexp(database_url, "key", "revoke", str(uuid.uuid4()))
    assert unknown_key.returncode == 2 and "no API key with id" in unknown_key.stderr


def test_user_create_reads_the_password_from_stdin(database_url: str, tenant: str) -> None:
    created = vibexp(
        database_url,
        "user",
        "create",
        "--tenant",
        tenant,
        "--email",
        f"{tenant}@example.com",
        stdin="correct horse 1\n",
    )
    assert created.returncode == 0, created.stderr
    assert "correct horse" not in created.stdout + created.stderr
    short = vibexp(
        database_url, "user", "create", "--tenant", tenant, "--email", f"x{tenant}@example.com", stdin="short\n"
    )
    assert short.returncode == 2 and "at least" in short.stderr


def test_enterprise_tenant_with_a_custom_limit_and_suspension(database_url: str, tenant: str) -> None:
    name = f"{tenant}-big"
    created = vibexp(database_url, "tenant", "create", name, "--tier", "enterprise", "--rate-limit", "50000")
    assert created.returncode == 0 and "50000 requests/hour" in created.stdout
    suspended = vibexp(database_url, "tenant", "update", name, "--suspend")
    assert suspended.returncode == 0 and "suspended" in suspended.stdout
    listing = vibexp(database_url, "tenant", "list")
    assert any(line.startswith(f"{name}\tenterprise\t50000\tsuspended") for line in listing.stdout.splitlines())
