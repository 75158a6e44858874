"""``vibexp tenant update NAME --alert-webhook-url/--alert-webhook-secret/--working-hours/--auto-revoke-on`` as a
user runs it (issue #16): a subprocess against the test database; each bad value is one line on stderr, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

SECRET = "cli-webhook-secret-0123456789"


def vibexp(database_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VIBEXP_DATABASE_URL": database_url,
        "VIBEXP_AUTO_MIGRATE": "false",
        "VIBEXP_PUBLIC_URL": "http://127.0.0.1:8000",
        "VIBEXP_SERVER_URLS": "https://vibexp.example.com",
    }
    return subprocess.run(
        [sys.executable, "-m", "vibexp.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def tenant(database_url: str) -> str:
    name = f"cli-alerts-{uuid.uuid4().hex[:8]}"
    assert vibexp(database_url, "tenant", "create", name).returncode == 0
    return name


def test_alert_settings_are_set_shown_and_cleared(database_url: str, tenant: str) -> None:
    result = vibexp(
        database_url,
        "tenant",
        "update",
        tenant,
        "--alert-webhook-url",
        "http://127.0.0.1:9000/hook",
        "--alert-webhook-secret",
        SECRET,
        "--working-hours",
        "Mon-Fri 08:00-19:00 Europe/Berlin",
        "--auto-revoke-on",
        "key_leaked",
        "--auto-revoke-on",
        "retired_key_used",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == (
        "alerts: webhook http://127.0.0.1:9000/hook, working hours Mon-Fri 08:00-19:00 Europe/Berlin, "
        "auto-revoke on key_leaked, retired_key_used"
    )
    assert SECRET not in result.stdout + result.stderr
    from_stdin = vibexp(database_url, "tenant", "update", tenant, "--alert-webhook-secret", "-", stdin=SECRET[::-1])
    assert from_stdin.returncode == 0, from_stdin.stderr
    cleared = vibexp(
        database_url,
        "tenant",
        "update",
        tenant,
        "--clear-alert-webhook",
        "--working-hours",
        "none",
        "--auto-revoke-on",
        "none",
    )
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.splitlines()[1] == "alerts: webhook none, working hours none, auto-revoke on none"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--working-hours", "Mon-Fri 08:00-19:00"], "expected days, hours and a time zone", id="no-zone"),
        pytest.param(["--working-hours", "Mon-Fry 08:00-19:00 UTC"], "unknown day 'Fry'", id="bad-day"),
        pytest.param(["--working-hours", "Mon-Fri 8-19 UTC"], "bad time '8'", id="bad-time"),
        pytest.param(["--working-hours", "Mon-Fri 08:00-19:00 Mars/Base"], "unknown time zone", id="unknown-zone"),
        pytest.param(
            ["--alert-webhook-url", "ftp://hooks.example.com/x", "--alert-webhook-secret", SECRET],
            "must start with http:// or https://",
            id="not-http",
        ),
        pytest.param(
            ["--alert-webhook-url", "http://localhost:8000/hook", "--alert-webhook-secret", SECRET],
            "points at this server",
            id="the-server-itself",
        ),
        pytest.param(
            ["--alert-webhook-url", "http://2130706433:8000/hook", "--alert-webhook-secret", SECRET],
            "points at this server",
            id="the-server-spelled-as-a-number",
        ),
        pytest.param(
            ["--alert-webhook-url", "https://vibexp.example.com/hook", "--alert-webhook-secret", SECRET],
            "points at this server",
            id="the-server-by-its-public-name",
        ),
        pytest.param(["--alert-webhook-url", "https://hooks.example.com/x"], "needs a webhook secret", id="no-secret"),
        pytest.param(["--alert-webhook-secret", "short"], "16 to 200 characters", id="short-secret"),
        pytest.param(["--auto-revoke-on", "bogus"], "unknown alert kind 'bogus'", id="unknown-kind"),
        pytest.param(["--auto-revoke-on", "failed_auth"], "failed_auth cannot revoke a key", id="failed-auth"),
        pytest.param(["--auto-revoke-on", "none", "--auto-revoke-on", "key_leaked"], "none clears", id="none-and-kind"),
        pytest.param(
            ["--clear-alert-webhook", "--alert-webhook-url", "https://hooks.example.com/x"],
            "cannot be combined",
            id="clear-and-set",
        ),
    ],
)
def test_bad_alert_settings_exit_2_with_one_line(database_url: str, tenant: str, args: list[str], message: str) -> None:
    result = vibexp(database_url, "tenant", "update", tenant, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert SECRET not in result.stderr
    # That nothing changed is checked in tests/core/test_alert_settings.py (each subprocess costs seconds).
