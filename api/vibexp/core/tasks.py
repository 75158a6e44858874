"""Background tasks: one periodic loop for every process-wide job, and the ordered list a runtime starts and stops.

:class:`PeriodicTask` runs an async ``step`` every ``interval`` seconds in its own asyncio task, either first and
then after each pause (``run_first=True``: the key policy sweep) or after the first pause (the usage flush, the
webhook poll, the key change poll). The pause is between runs (a fixed delay, not a fixed rate): a slow run is
never overlapped by the next one. A step that raises is logged through a :class:`~vibexp.core.failure_log.FailureLog`
(the first failure with its traceback, then a line a minute, then one line at recovery) and the loop carries on
at the next interval; ``on_failure`` runs first, inside the ``except`` block (the verifier clears its cache there).

:meth:`PeriodicTask.stop` cancels the loop, even in the middle of a step (the step's own ``finally`` and ``except
BaseException`` blocks run: the usage flush puts an interrupted batch back), waits until the task has ended, and
then awaits ``final`` when one is given (the usage recorder's last flush: a graceful shutdown loses no usage).
``final`` runs on every ``stop``, started or not, and its failure is the caller's to see. Stopping a task that was
never started, or stopping twice, is harmless; starting a running task does nothing.

:class:`TaskList` starts its members in order and stops them in reverse (what started later may use what started
earlier: the key policy sweep flushes the usage recorder). Every member that started is stopped even when another
one's ``stop`` raises; a ``start`` that raises stops those already started before the error propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Protocol

from vibexp.core.failure_log import FailureLog

__all__ = ["Background", "PeriodicTask", "TaskList"]


class Background(Protocol):
    """Something a runtime starts with the process and stops with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class PeriodicTask:
    """``step`` every ``interval`` seconds in an asyncio task called ``name``; failures go to ``logger`` as ``what``
    failing, followed by ``consequence`` (a string, or a callable read at the moment of failure)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        *,
        interval: float,
        logger: logging.Logger,
        what: str,
        consequence: str | Callable[[], str],
        run_first: bool = False,
        on_failure: Callable[[], None] | None = None,
        final: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {interval!r}")
        self.name = name
        self.interval = interval
        self.run_first = run_first
        self._step = step
        self._consequence = consequence
        self._on_failure = on_failure
        self._final = final
        self._failures = FailureLog(logger, what)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Not ``await task``: its CancelledError could not be told from one cancelling this stop(), which must
            # propagate. asyncio.wait returns when the task has ended, however it ended, and raises only our own.
            await asyncio.wait([task])
            failure = None if task.cancelled() else task.exception()
            if failure is not None:  # the loop itself died (an ``on_failure`` that raised): not silently
                raise failure
        if self._final is not None:
            await self._final()

    async def run_once(self) -> bool:
        """One step, its failure logged (not raised); whether it succeeded. Cancellation propagates."""
        try:
            await self._step()
        except Exception:
            if self._on_failure is not None:
                self._on_failure()
            consequence = self._consequence if isinstance(self._consequence, str) else self._consequence()
            self._failures.failed(consequence)
            return False
        self._failures.succeeded()
        return True

    async def _loop(self) -> None:
        if self.run_first:
            await self.run_once()
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()


class TaskList:
    """Background members started in order and stopped in reverse."""

    def __init__(self, members: Sequence[Background]) -> None:
        self.members: tuple[Background, ...] = tuple(members)
        self._started = AsyncExitStack()

    async def start(self) -> None:
        try:
            for member in self.members:
                await member.start()
                self._started.push_async_callback(member.stop)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop what started, last first; each one is stopped even if another's stop raised (the last error
        propagates, the earlier ones chained to it)."""
        started, self._started = self._started, AsyncExitStack()
        await started.aclose()
