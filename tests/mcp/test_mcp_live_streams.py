"""The listen handler's bounds, in process (``vibexp.api.mcp.live``): a client that never reads costs a bounded
backlog (events coalesce) and loses its stream when a notification waits longer than ``send_timeout``; a client
that vanishes (the handler cancelled) leaves no slot and no feed subscription behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ResourceUpdated
from mcp_types import SubscriptionFilter, SubscriptionsListenRequestParams

from vibexp.api.mcp import live
from vibexp.api.mcp.live import Listeners, _Stream
from vibexp.core.access import CredentialKind, expand
from vibexp.core.content.changes import Change, ChangeKind

TENANT, KEY = "t1", "k1"


def test_a_backlog_of_any_length_is_a_handful_of_events() -> None:
    honored = SubscriptionFilter(
        prompts_list_changed=True, resources_list_changed=True, resource_subscriptions=["artifact://web/a"]
    )
    stream = _Stream(TENANT, KEY, expand(["*"]), honored)
    for n in range(10_000):
        stream.hear(Change(ChangeKind.prompt, TENANT, f"p{n}", f"p{n}"))
        stream.hear(Change(ChangeKind.artifact, TENANT, f"a{n}", "web/a" if n % 2 else f"web/x{n}"))
        stream.hear(Change(ChangeKind.prompt, "another tenant", f"q{n}", f"q{n}"))
    assert list(stream.pending) == [
        PromptsListChanged(),
        ResourcesListChanged(),
        ResourceUpdated(uri="artifact://web/a"),
    ]


class _Feed:
    def __init__(self) -> None:
        self.subscribers: list[Callable[[Change], None]] = []

    def subscribe(self, subscriber: Callable[[Change], None]) -> Callable[[], None]:
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)


class _Session:
    """Takes the acknowledgement, then never takes anything again (a client that stopped reading)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.acknowledged = asyncio.Event()

    async def send_notification(self, notification: Any, related_request_id: Any = None) -> None:
        if self.sent:
            await asyncio.sleep(3600)
        self.sent.append(notification)
        self.acknowledged.set()


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> _Feed:
    fake = _Feed()
    principal = SimpleNamespace(
        key_id=KEY, tenant_id=TENANT, granted=expand(["*"]), expires_at=None, credential=CredentialKind.api_key
    )
    monkeypatch.setattr(live, "principal_of", lambda ctx: principal)
    runtime = SimpleNamespace(content_changes=fake, verifier=SimpleNamespace(invalidate=lambda **_: None))
    monkeypatch.setattr(live, "runtime_of", lambda ctx: runtime)
    return fake


def _ctx(session: _Session) -> Any:
    return SimpleNamespace(protocol_version="2026-07-28", request_id=7, session=session)


PARAMS = SubscriptionsListenRequestParams(notifications=SubscriptionFilter(prompts_list_changed=True))


async def test_a_client_that_never_reads_loses_its_stream_and_its_slot(feed: _Feed) -> None:
    listeners = Listeners(send_timeout=0.3)
    session = _Session()
    task = asyncio.create_task(listeners(_ctx(session), PARAMS))
    await asyncio.wait_for(session.acknowledged.wait(), 5)
    assert listeners.open == 1 and listeners.open_for(KEY) == 1 and len(feed.subscribers) == 1
    feed.subscribers[0](Change(ChangeKind.prompt, TENANT, "p", "p"))
    await asyncio.wait_for(task, 5)  # the notification waited send_timeout, then the stream ended
    assert listeners.open == 0 and listeners.open_for(KEY) == 0 and feed.subscribers == []


async def test_a_vanished_client_leaves_nothing_behind(feed: _Feed) -> None:
    listeners = Listeners()
    sessions = [_Session() for _ in range(5)]
    tasks = [asyncio.create_task(listeners(_ctx(session), PARAMS)) for session in sessions]
    for session in sessions:
        await asyncio.wait_for(session.acknowledged.wait(), 5)
    assert listeners.open == 5 and len(feed.subscribers) == 5
    for task in tasks:  # the SDK cancels the handler when the HTTP client disconnects
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert listeners.open == 0 and listeners.open_for(KEY) == 0 and feed.subscribers == []
