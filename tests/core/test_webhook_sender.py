"""The webhook sender against a real HTTP receiver on loopback, on SQLite and PostgreSQL (#16).

Alerts are made directly (the Alert model and ``enqueue_delivery``); the sender is driven with ``run_once`` so each
attempt is explicit, and retry delays are shortened (0 s where a test retries at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.receiver import REPLAY_WINDOW, Answer, Receiver, verify
from helpers.servers import free_port
from vibexp.core.alerts.models import Alert, AlertKind, DeliveryState, WebhookDelivery
from vibexp.core.alerts.sender import NO_RESPONSE, WebhookSender, points_at_self, sign
from vibexp.core.alerts.webhooks import enqueue_delivery
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.secret_box import SecretBox
from vibexp.core.tenants.models import Tenant

SECRET = "whsec-" + "s3cr3t" * 4
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
DOCS_SNIPPET = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    # Nothing this test queued stays due for the next test's sender (they share the database).
    async with engine.begin() as conn:
        await conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.state == DeliveryState.pending.value)
            .values(state=DeliveryState.failed.value)
        )
    await engine.dispose()


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


async def queue_alert(
    factory: async_sessionmaker[AsyncSession], *, url: str, secret: str | None = SECRET, alerts: int = 1
) -> list[str]:
    """A tenant with a webhook, a key, and ``alerts`` alerts on it (one per kind), each queued; the delivery ids."""
    account = await make_account(factory)
    ids = []
    async with session_scope(factory) as session:
        tenant = await session.get_one(Tenant, account.tenant.id)
        tenant.alert_webhook_url = url
        tenant.alert_webhook_secret = secret
        for kind in list(AlertKind)[:alerts]:
            alert = Alert(
                tenant_id=tenant.id, key_id=account.key_id, kind=kind.value, details={"network": "203.0.113.0/24"}
            )
            session.add(alert)
            await session.flush()
            delivery = await enqueue_delivery(session, tenant=tenant, alert=alert)
            assert delivery is not None
            ids.append(delivery.id)
    return ids


async def delivery(factory: async_sessionmaker[AsyncSession], delivery_id: str) -> WebhookDelivery:
    async with factory() as session:
        return await session.get_one(WebhookDelivery, delivery_id)


def sender(
    engine: AsyncEngine,
    *,
    timeout: float = 2.0,
    retry_delays: tuple[float, ...] = (0.0,),
    max_attempts: int = 6,
    own_urls: tuple[str, ...] = ("http://127.0.0.1:1",),
    poll_interval: float = 1.0,
    batch: int = 20,
    allow_private: bool = True,  # the receiver listens on loopback
) -> WebhookSender:
    return WebhookSender(
        engine,
        timeout=timeout,
        retry_delays=retry_delays,
        max_attempts=max_attempts,
        own_urls=own_urls,
        poll_interval=poll_interval,
        batch=batch,
        allow_private=allow_private,
    )


@pytest.fixture
async def started() -> AsyncIterator[list[WebhookSender]]:
    """Senders a test appends here (after ``start()``) are stopped at its end."""
    running: list[WebhookSender] = []
    yield running
    for item in running:
        await item.stop()


async def start(started: list[WebhookSender], item: WebhookSender) -> WebhookSender:
    await item.start()
    started.append(item)
    return item


async def test_delivery_is_signed_with_the_tenant_secret(
    engine: AsyncEngine,
    factory: async_sessionmaker[AsyncSession],
    started: list[WebhookSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver(Answer(204)) as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        caplog.clear()  # setting the secret up is logged by the driver at DEBUG; the sender must not log it
        worker = await start(started, sender(engine))
        assert await worker.run_once() >= 1
    [got] = receiver.received
    row = await delivery(factory, delivery_id)
    assert got.body == row.payload.encode()  # the stored body, byte for byte
    # t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<delivery id>.<body>">: the time and the delivery id are signed too.
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", got.headers["x-vibexp-signature"])
    assert match is not None, got.headers["x-vibexp-signature"]
    timestamp = int(match.group(1))
    assert abs(time.time() - timestamp) < 30
    signed = f"{timestamp}.{delivery_id}.".encode() + got.body
    assert match.group(2) == hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert got.headers["x-vibexp-signature"] == sign(
        SECRET, timestamp=timestamp, delivery_id=delivery_id, body=got.body
    )
    assert verify(SECRET, got) and not verify("another secret " * 2, got)
    # A replay later than the window, or under another delivery's id, or of another body, does not verify.
    assert not verify(SECRET, got, now=timestamp + REPLAY_WINDOW + 1)
    assert not verify(SECRET, replace(got, headers={**got.headers, "x-vibexp-delivery": "another-delivery"}))
    assert not verify(SECRET, replace(got, body=got.body + b" "))
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-vibexp-delivery"] == delivery_id
    assert got.headers["x-vibexp-attempt"] == "1"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    body = json.loads(got.body)
    assert body["kind"] == "new_network" and body["details"] == {"network": "203.0.113.0/24"}
    assert {"key_id", "at", "id", "tenant"} <= body.keys()
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 1, 204, None)
    assert row.next_attempt_at is None and row.last_attempt_at is not None
    assert SECRET not in caplog.text
    # The receiver's check that docs/webhooks.md shows, run as written, accepts it (and only it).
    namespace: dict[str, Any] = {}
    snippet = DOCS_SNIPPET.search(DOCS.read_text())
    assert snippet is not None, "docs/webhooks.md lost its verification example"
    exec(snippet.group(1), namespace)
    verified = namespace["verified"]
    header = got.headers["x-vibexp-signature"]
    assert verified(SECRET, got.body, header, delivery_id)
    assert not verified(SECRET, got.body + b" ", header, delivery_id)
    assert not verified(SECRET, got.body, header, "another-delivery")
    old = (
        f"t={timestamp - 301},v1="
        + hmac.new(SECRET.encode(), f"{timestamp - 301}.{delivery_id}.".encode() + got.body, hashlib.sha256).hexdigest()
    )
    assert not verified(SECRET, got.body, old, delivery_id)  # correctly signed, but outside the replay window


async def test_a_sealed_secret_signs_and_a_secret_sealed_under_another_key_fails(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    """The secret is stored encrypted with the server key: the sender opens it to sign; under another server key
    it cannot, and the attempt fails without a request (and without the secret in the log)."""
    with Receiver() as receiver:
        [good] = await queue_alert(factory, url=receiver.url(), secret=SecretBox("k" * 40).seal(SECRET))
        [bad] = await queue_alert(factory, url=receiver.url(), secret=SecretBox("j" * 40).seal(SECRET))
        worker = WebhookSender(engine, retry_delays=(30.0,), allow_private=True, secret_key="k" * 40)
        await (await start(started, worker)).run_once()
    [got] = receiver.received
    assert got.headers["x-vibexp-delivery"] == good and verify(SECRET, got)
    row = await delivery(factory, bad)
    assert (row.state, row.last_status) == ("pending", None)
    assert row.last_error is not None and "cannot be decrypted" in row.last_error


async def test_no_secret_means_no_signature_header(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver() as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url(), secret=None)
        await (await start(started, sender(engine))).run_once()
    [got] = receiver.received
    assert "x-vibexp-signature" not in got.headers
    assert (await delivery(factory, delivery_id)).state == "delivered"


async def test_a_500_then_a_200_is_delivered_on_attempt_two(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver(Answer(500), Answer(200)) as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        worker = await start(started, sender(engine))
        await worker.run_once()
        first = await delivery(factory, delivery_id)
        assert (first.state, first.attempts, first.last_status, first.last_error) == ("pending", 1, 500, "HTTP 500")
        await worker.run_once()
    second = await delivery(factory, delivery_id)
    assert (second.state, second.attempts, second.last_status, second.last_error) == ("delivered", 2, 200, None)
    assert [r.headers["x-vibexp-attempt"] for r in receiver.received] == ["1", "2"]
    assert receiver.received[0].body == receiver.received[1].body  # the same signed body on every attempt


async def test_a_timeout_is_retried(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver(Answer(200, delay=1.5), Answer(200)) as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        worker = await start(started, sender(engine, timeout=0.3))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await worker.run_once()
        assert loop.time() - began < 1.2  # the attempt gave up at its timeout, not when the receiver answered
        first = await delivery(factory, delivery_id)
        assert (first.state, first.attempts, first.last_status) == ("pending", 1, None)
        assert first.last_error == NO_RESPONSE
        await worker.run_once()
    second = await delivery(factory, delivery_id)
    assert (second.state, second.attempts, second.last_error) == ("delivered", 2, None)


async def test_a_redirect_is_not_followed_and_is_a_failed_attempt(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver() as elsewhere, Receiver(Answer(302, headers={"Location": elsewhere.url()})) as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        await (await start(started, sender(engine, retry_delays=(30.0,)))).run_once()
    assert len(receiver.received) == 1 and elsewhere.received == []
    row = await delivery(factory, delivery_id)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, 302)
    assert row.last_error == "HTTP 302: redirect not followed"
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(seconds=25)


async def test_a_receiver_that_is_down_is_retried_with_backoff(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    port = free_port()  # nothing listens there
    [delivery_id] = await queue_alert(factory, url=f"http://127.0.0.1:{port}/hook")
    worker = await start(started, sender(engine, retry_delays=(10.0, 30.0)))
    before = utcnow()
    await worker.run_once()
    row = await delivery(factory, delivery_id)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, None)
    assert row.last_error == NO_RESPONSE  # the same words as a timeout: the log tells no port state
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=10) <= row.next_attempt_at <= utcnow() + timedelta(seconds=10)
    await worker.run_once()
    assert (await delivery(factory, delivery_id)).attempts == 1  # not due yet: not attempted again
    # Time passes: the second failure waits the second delay.
    async with engine.begin() as conn:
        await conn.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(next_attempt_at=utcnow())
        )
    before = utcnow()
    await worker.run_once()
    row = await delivery(factory, delivery_id)
    assert row.attempts == 2 and row.next_attempt_at is not None
    assert before + timedelta(seconds=30) <= row.next_attempt_at <= utcnow() + timedelta(seconds=30)


async def test_gives_up_after_max_attempts(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver(Answer(503)) as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        worker = await start(started, sender(engine, max_attempts=3))
        for _ in range(5):
            await worker.run_once()
    assert len(receiver.received) == 3
    row = await delivery(factory, delivery_id)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("failed", 3, 503, "HTTP 503")
    assert row.next_attempt_at is None


async def test_two_workers_never_deliver_one_alert_twice(
    database_url: str, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    other_engine = create_engine(database_url)  # a second process's pool on the same database
    try:
        with Receiver(Answer(200, delay=0.05)) as receiver:
            ids = []
            for _ in range(4):
                ids += await queue_alert(factory, url=receiver.url(), alerts=5)
            one = await start(started, sender(engine, batch=3))
            two = await start(started, sender(other_engine, batch=3))
            for _ in range(10):
                await asyncio.gather(one.run_once(), two.run_once())
        got = [r.headers["x-vibexp-delivery"] for r in receiver.received]
        assert sorted(got) == sorted(ids)  # every one delivered, none twice
        async with factory() as session:
            rows = (await session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))).all()
        assert {(r.state, r.attempts, r.last_error) for r in rows} == {("delivered", 1, None)}
    finally:
        await other_engine.dispose()


async def test_a_url_pointing_at_the_server_itself_fails_without_sending(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver() as server:  # stands in for this server, listening on its own port
        own = f"http://127.0.0.1:{server.port}"
        ids = [
            *(await queue_alert(factory, url=f"http://localhost:{server.port}/api/v1/leaked-keys")),
            *(await queue_alert(factory, url=f"http://[::1]:{server.port}/x")),
            *(await queue_alert(factory, url=f"{own}/hook")),
        ]
        await (await start(started, sender(engine, own_urls=(own,)))).run_once()
    assert server.received == []
    for delivery_id in ids:
        row = await delivery(factory, delivery_id)
        assert (row.state, row.attempts, row.last_status) == ("failed", 1, None)
        assert row.last_error == "URL points at this server; not sent"


@pytest.mark.parametrize(
    "spelling",
    ["127.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.0.0.2", "[::ffff:127.0.0.1]", "localhost", "HOSTNAME"],
)
async def test_every_spelling_of_the_server_is_itself(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender], spelling: str
) -> None:
    """Before: the guard compared one URL string, so these reached the server (issue 26 item 9)."""
    host = socket.gethostname() if spelling == "HOSTNAME" else spelling
    with Receiver() as server:  # stands in for this server, listening on its own port
        [delivery_id] = await queue_alert(factory, url=f"http://{host}:{server.port}/api/v1/leaked-keys")
        await (await start(started, sender(engine, own_urls=(f"http://127.0.0.1:{server.port}",)))).run_once()
    assert server.received == []
    row = await delivery(factory, delivery_id)
    assert (row.state, row.last_error) == ("failed", "URL points at this server; not sent")


async def test_a_replica_is_itself_by_any_name(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    """A replica named in VIBEXP_REPLICA_URLS by one name is refused under another name resolving to it."""
    with Receiver() as replica:
        [delivery_id] = await queue_alert(factory, url=f"http://127.0.0.1:{replica.port}/hook")
        own = ("http://127.0.0.1:1", f"http://localhost:{replica.port}")
        await (await start(started, sender(engine, own_urls=own))).run_once()
    assert replica.received == []
    assert (await delivery(factory, delivery_id)).last_error == "URL points at this server; not sent"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("127.0.0.1", "loopback or private"),
        ("10.1.2.3", "loopback or private"),
        ("172.16.0.1", "loopback or private"),
        ("192.168.1.1", "loopback or private"),
        ("100.64.0.1", "loopback or private"),
        ("[fc00::1]", "loopback or private"),
        ("[::1]", "loopback or private"),
        ("2130706433", "loopback or private"),
    ],
)
async def test_private_and_metadata_addresses_are_refused_without_a_request(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender], host: str, reason: str
) -> None:
    with Receiver() as receiver:
        [delivery_id] = await queue_alert(factory, url=f"http://{host}:{receiver.port}/hook")
        await (await start(started, sender(engine, allow_private=False))).run_once()
    assert receiver.received == []
    row = await delivery(factory, delivery_id)
    assert (row.state, row.attempts, row.last_status) == ("failed", 1, None)
    assert row.last_error is not None and row.last_error.startswith("delivery refused") and reason in row.last_error


async def test_metadata_addresses_stay_refused_with_private_allowed(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    [delivery_id] = await queue_alert(factory, url="http://169.254.169.254/latest/meta-data/")
    await (await start(started, sender(engine, allow_private=True))).run_once()
    row = await delivery(factory, delivery_id)
    assert row.state == "failed" and row.last_error is not None and "link-local" in row.last_error


async def test_the_delivery_log_does_not_tell_open_from_closed_ports(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    """A closed port, a port that accepts and never answers, and a name that does not resolve look alike."""
    closed = free_port()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does), never answers
    try:
        ids = [
            *(await queue_alert(factory, url=f"http://127.0.0.1:{closed}/hook")),
            *(await queue_alert(factory, url=f"http://127.0.0.1:{silent.getsockname()[1]}/hook")),
            *(await queue_alert(factory, url="http://no-such-host.invalid/hook")),
        ]
        await (await start(started, sender(engine, timeout=0.5, retry_delays=(30.0,)))).run_once()
    finally:
        silent.close()
    rows = [await delivery(factory, delivery_id) for delivery_id in ids]
    assert {(row.state, row.last_status, row.last_error) for row in rows} == {("pending", None, NO_RESPONSE)}


async def test_a_url_that_is_not_http_fails_without_sending(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    [delivery_id] = await queue_alert(factory, url="ftp://203.0.113.9/hook")
    await (await start(started, sender(engine))).run_once()
    row = await delivery(factory, delivery_id)
    assert (row.state, row.last_error) == ("failed", "not an http(s) URL; not sent")


async def test_the_background_task_delivers_by_itself(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], started: list[WebhookSender]
) -> None:
    with Receiver() as receiver:
        [delivery_id] = await queue_alert(factory, url=receiver.url())
        await start(started, sender(engine, poll_interval=0.05))
        for _ in range(100):
            if (await delivery(factory, delivery_id)).state == "delivered":
                break
            await asyncio.sleep(0.05)
    assert (await delivery(factory, delivery_id)).state == "delivered"
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("url", "own", "expected"),
    [
        ("http://127.0.0.1:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://127.5.6.7:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://localhost:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://LOCALHOST.:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://0.0.0.0:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://[::1]:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://[::ffff:127.0.0.1]:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://127.1:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://2130706433:8000/hook", ["http://127.0.0.1:8000"], True),
        ("http://0x7f.1:8000/hook", ["http://127.0.0.1:8000"], True),
        ("https://vibexp.example.com/hook", ["https://vibexp.example.com"], True),
        ("https://vibexp.example.com:443/hook", ["https://vibexp.example.com"], True),
        ("http://127.0.0.1:9000/hook", ["http://127.0.0.1:8000"], False),  # another local service
        ("https://hooks.example.com/x", ["http://127.0.0.1:8000"], False),
        ("http://203.0.113.5:8000/hook", ["http://127.0.0.1:8000"], False),
        ("https://vibexp.example.com:8443/hook", ["https://vibexp.example.com"], False),
        ("ftp://127.0.0.1:8000/hook", ["http://127.0.0.1:8000"], False),  # refused as not http(s) instead
    ],
)
async def test_points_at_self(url: str, own: list[str], expected: bool) -> None:
    assert await points_at_self(url, own) is expected


def test_bad_schedules_are_refused() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ValueError, match="retry_delays"):
        WebhookSender(engine, retry_delays=())
    with pytest.raises(ValueError, match="max_attempts"):
        WebhookSender(engine, max_attempts=0)


def test_the_signature_depends_on_the_secret_the_time_the_delivery_and_the_body() -> None:
    body = b'{"kind":"new_network"}'
    base = sign("a", timestamp=1000, delivery_id="d1", body=body)
    assert base.startswith("t=1000,v1=") and len(base) == len("t=1000,v1=") + 64
    others = {
        sign("b", timestamp=1000, delivery_id="d1", body=body),
        sign("a", timestamp=1001, delivery_id="d1", body=body),
        sign("a", timestamp=1000, delivery_id="d2", body=body),
        sign("a", timestamp=1000, delivery_id="d1", body=body + b" "),
    }
    assert base not in others and len({v.split("v1=")[1] for v in others}) == 4
    assert secrets.compare_digest(base, sign("a", timestamp=1000, delivery_id="d1", body=body))


async def test_a_hanging_receiver_never_blocks_requests(
    app: FastAPI,
    client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,  # its teardown retires the abandoned delivery
) -> None:
    """The app's own sender (its Runtime's) is mid-attempt against a receiver that hangs: requests still answer at
    once, and the app stops without waiting for the attempt."""
    with Receiver(Answer(200, delay=4.0)) as receiver:
        [delivery_id] = await queue_alert(session_factory, url=receiver.url())
        account = await make_account(session_factory)
        for _ in range(60):  # the sender polls every second
            if receiver.received:
                break
            await asyncio.sleep(0.05)
        assert receiver.received, "the app's sender did not attempt the delivery"
        loop = asyncio.get_running_loop()
        began = loop.time()
        response = await client.get("/api/v1/prompts", headers=account.headers)
        assert response.status_code == 200 and loop.time() - began < 1.0
        assert receiver.received[0].headers["x-vibexp-delivery"] == delivery_id
