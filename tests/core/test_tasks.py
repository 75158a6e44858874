"""The background-task abstraction (vibexp.core.tasks): the loop, its failure log, its stop, and the ordered list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from helpers.databases import sqlite_url
from vibexp.core.alerts.sender import WebhookSender
from vibexp.core.config import Settings
from vibexp.core.content.changes import ChangeFeed
from vibexp.core.keys.policy import KeyPolicySweep
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.oauth.purge import OAuthPurge
from vibexp.core.oauth.verifier import GrantVerifier
from vibexp.core.runtime import Runtime
from vibexp.core.tasks import PeriodicTask, TaskList
from vibexp.core.usage.recorder import UsageRecorder
from vibexp.core.wal import WalCheckpointer

LOGGER = "vibexp.test.tasks"
NAME = "vibexp-test-task"


def task(
    step: Callable[[], Awaitable[object]],
    *,
    interval: float = 0.01,
    run_first: bool = False,
    consequence: str | Callable[[], str] = "retried",
    on_failure: Callable[[], None] | None = None,
    final: Callable[[], Awaitable[object]] | None = None,
) -> PeriodicTask:
    return PeriodicTask(
        NAME,
        step,
        interval=interval,
        logger=logging.getLogger(LOGGER),
        what="test step",
        consequence=consequence,
        run_first=run_first,
        on_failure=on_failure,
        final=final,
    )


def alive() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == NAME and not t.done()]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


class Counter:
    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(f"connection refused ({self.calls})")


async def test_start_runs_the_step_every_interval_and_stop_ends_the_task() -> None:
    step = Counter()
    periodic = task(step)
    assert not periodic.running and alive() == []
    await periodic.start()
    assert periodic.running and len(alive()) == 1
    await until(lambda: step.calls >= 3)
    await periodic.stop()
    assert not periodic.running and alive() == []
    calls = step.calls
    await asyncio.sleep(0.05)
    assert step.calls == calls  # nothing runs after stop


async def test_run_once_runs_one_step_and_says_whether_it_succeeded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    step = Counter(failures=1)
    periodic = task(step)
    assert await periodic.run_once() is False
    assert await periodic.run_once() is True
    assert step.calls == 2 and not periodic.running
    assert [r.getMessage() for r in caplog.records] == [
        "test step failed; retried",
        "test step recovered after 1 failed attempts",
    ]


async def test_a_failing_step_is_logged_once_and_the_loop_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    step = Counter(failures=5)
    cleared: list[int] = []
    periodic = task(
        step,
        consequence=lambda: f"{step.calls} calls so far",  # read when the failure is logged
        on_failure=lambda: cleared.append(step.calls),
    )
    await periodic.start()
    try:
        await until(lambda: step.calls >= 7)
        assert periodic.running
    finally:
        await periodic.stop()
    assert cleared == [1, 2, 3, 4, 5]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "test step failed; 1 calls so far"),
        ("INFO", "test step recovered after 5 failed attempts"),
    ]
    assert records[0].exc_info is not None and "connection refused (1)" in str(records[0].exc_info[1])


async def test_sleep_first_waits_an_interval_and_run_first_does_not() -> None:
    sleeper, runner = Counter(), Counter()
    tasks = [task(sleeper, interval=30), task(runner, interval=30, run_first=True)]
    for periodic in tasks:
        await periodic.start()
    try:
        await until(lambda: runner.calls == 1)
        await asyncio.sleep(0.05)
        assert (sleeper.calls, runner.calls) == (0, 1)  # and the runner's next step is 30 s away
    finally:
        for periodic in tasks:
            await periodic.stop()


async def test_the_pause_is_between_steps_so_a_slow_step_is_never_overlapped() -> None:
    running = most = 0
    done = 0

    async def slow() -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        done += 1

    periodic = task(slow, interval=0.001)
    await periodic.start()
    try:
        await until(lambda: done >= 3)
    finally:
        await periodic.stop()
    assert most == 1


async def test_stop_during_a_step_cancels_it_waits_for_it_then_runs_final() -> None:
    events: list[str] = []
    inside = asyncio.Event()

    async def step() -> None:
        inside.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # the step's own clean-up takes a moment: stop waits for it
            events.append("step cleaned up")
            raise

    async def final() -> None:
        events.append("final")

    periodic = task(step, run_first=True, final=final)
    await periodic.start()
    await inside.wait()
    await periodic.stop()
    assert events == ["step cleaned up", "final"]
    assert not periodic.running and alive() == []


async def test_stop_without_start_runs_final_only_and_twice_is_harmless() -> None:
    step, final = Counter(), Counter()
    periodic = task(step, final=final)
    await periodic.stop()
    await periodic.stop()
    assert (step.calls, final.calls) == (0, 2)
    assert alive() == []


async def test_a_failing_final_is_raised_by_stop() -> None:
    async def final() -> None:
        raise OSError("database away")

    periodic = task(Counter(), final=final)
    await periodic.start()
    with pytest.raises(OSError, match="database away"):
        await periodic.stop()
    assert alive() == []


async def test_start_while_running_keeps_the_one_task_and_a_stopped_task_starts_again() -> None:
    step = Counter()
    periodic = task(step)
    await periodic.start()
    await periodic.start()
    assert len(alive()) == 1
    await periodic.stop()
    await periodic.start()
    try:
        calls = step.calls
        await until(lambda: step.calls > calls)
        assert len(alive()) == 1
    finally:
        await periodic.stop()


async def test_cancelling_the_caller_of_stop_is_not_swallowed() -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    async def step() -> None:
        inside.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()  # a clean-up that takes its time
            raise

    periodic = task(step, run_first=True)
    await periodic.start()
    await inside.wait()
    stopper = asyncio.create_task(periodic.stop())
    await asyncio.sleep(0.01)
    assert not stopper.done()  # stop waits for the step's clean-up
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    release.set()
    await until(lambda: alive() == [])


async def test_a_loop_that_died_is_reported_by_stop() -> None:
    def broken() -> None:
        raise RuntimeError("on_failure broke")

    periodic = task(Counter(failures=1), run_first=True, on_failure=broken)
    await periodic.start()
    await until(lambda: not periodic.running)
    with pytest.raises(RuntimeError, match="on_failure broke"):
        await periodic.stop()


@pytest.mark.parametrize("interval", [0, -1])
def test_a_non_positive_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        task(Counter(), interval=interval)


class Member:
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False, fail_stop: bool = False) -> None:
        self.name, self.log, self.fail_start, self.fail_stop = name, log, fail_start, fail_stop

    async def start(self) -> None:
        if self.fail_start:
            raise OSError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise OSError(f"{self.name} cannot stop")


async def test_a_task_list_starts_in_order_and_stops_in_reverse() -> None:
    log: list[str] = []
    tasks = TaskList([Member("a", log), Member("b", log), Member("c", log)])
    await tasks.start()
    await tasks.stop()
    await tasks.stop()  # stopping again stops nothing twice
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_a_task_list_stops_every_member_when_one_stop_fails() -> None:
    log: list[str] = []
    tasks = TaskList([Member("a", log), Member("b", log, fail_stop=True), Member("c", log)])
    await tasks.start()
    with pytest.raises(OSError, match="b cannot stop"):
        await tasks.stop()
    assert log[3:] == ["stop c", "stop b", "stop a"]


async def test_a_task_list_whose_member_fails_to_start_stops_the_started_ones() -> None:
    log: list[str] = []
    tasks = TaskList([Member("a", log), Member("b", log), Member("c", log, fail_start=True), Member("d", log)])
    with pytest.raises(OSError, match="c cannot start"):
        await tasks.start()
    assert log == ["start a", "start b", "stop b", "stop a"]
    await tasks.stop()
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_a_task_list_never_started_stops_nothing() -> None:
    log: list[str] = []
    await TaskList([Member("a", log)]).stop()
    assert log == []


async def test_the_runtime_starts_the_key_poll_first_and_stops_the_usage_recorder_after_its_users(
    tmp_path: Path,
) -> None:
    """The WAL checkpointer outlives every writer; the verifier everything that revokes keys; the sweep (which
    flushes usage) and the webhook sender stop before the recorder's last flush."""
    runtime = Runtime.create(Settings(database_url=sqlite_url(tmp_path), auto_migrate=False))
    try:
        members = (
            runtime.checkpoints,
            runtime.verifier,
            runtime.grants,
            runtime.usage,
            runtime.webhooks,
            runtime.key_policy,
            runtime.oauth_purge,
            runtime.content_changes,
        )
        assert runtime.tasks.members == members
        kinds = [
            WalCheckpointer,
            KeyVerifier,
            GrantVerifier,
            UsageRecorder,
            WebhookSender,
            KeyPolicySweep,
            OAuthPurge,
            ChangeFeed,
        ]
        assert [type(m) for m in runtime.tasks.members] == kinds
    finally:
        await runtime.database.dispose()
