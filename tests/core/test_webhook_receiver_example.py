"""The receiver the README's alerts example starts first (docs/examples/webhook_receiver.py), run as a user runs it:
it accepts what VibeXP signs, refuses what it did not sign or signed too long ago, and drops a replayed delivery."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.servers import free_port
from vibexp.core.alerts.sender import sign

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"
SECRET = "a-secret-the-reader-keeps-0123456789"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    out = tmp_path / "receiver.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(port)],
            env={"VIBEXP_WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "the example receiver did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/vibexp-alerts", out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(url: str, body: bytes, *, delivery: str, signature: str) -> int:
    headers = {"Content-Type": "application/json", "X-VibeXP-Delivery": delivery, "X-VibeXP-Signature": signature}
    return httpx.post(url, content=body, headers=headers, timeout=10).status_code


def test_the_example_receiver_accepts_only_fresh_signed_deliveries_once(receiver: tuple[str, Path]) -> None:
    url, out = receiver
    body = json.dumps(
        {"id": "a1", "kind": "new_network", "key_id": "k1", "tenant": "acme", "at": "now", "details": {"n": 1}}
    ).encode()
    now = int(time.time())
    good = sign(SECRET, timestamp=now, delivery_id="d1", body=body)
    assert _post(url, body, delivery="d1", signature=good) == 204
    assert _post(url, body, delivery="d1", signature=good) == 204  # a retry: acknowledged, not printed again
    assert _post(url, body, delivery="d2", signature=good) == 401  # signed for another delivery
    assert _post(url, body + b" ", delivery="d1", signature=good) == 401  # the body changed
    stale = sign(SECRET, timestamp=now - 301, delivery_id="d3", body=body)
    assert _post(url, body, delivery="d3", signature=stale) == 401  # outside the replay window
    wrong = sign("another-secret-0123456789", timestamp=now, delivery_id="d4", body=body)
    assert _post(url, body, delivery="d4", signature=wrong) == 401
    lines = out.read_text().splitlines()
    assert [line for line in lines if line.startswith("alert ")] == ["alert new_network key=k1 at=now details={'n': 1}"]
    assert sum(line.startswith("refused:") for line in lines) == 4


def test_the_example_receiver_refuses_to_start_without_a_secret() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert b"VIBEXP_WEBHOOK_SECRET" in done.stderr
