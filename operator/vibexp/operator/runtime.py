"""What the handlers share, created by the start-up handler and kept in Kopf's ``memo`` (no module globals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vibexp.core.db import session_scope
from vibexp.core.failure_log import FailureLog
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.operator.kube import KubeClient
from vibexp.operator.metrics import OperatorMetrics
from vibexp.operator.retry import Backoff
from vibexp.operator.settings import OperatorConfig

__all__ = ["OperatorRuntime", "runtime_of"]


@dataclass
class OperatorRuntime:
    config: OperatorConfig
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    kube: KubeClient
    metrics: OperatorMetrics
    #: Namespaces served, or None for the whole cluster.
    namespaces: list[str] | None
    #: One retry schedule per object (see ``vibexp.operator.retry``) and one log of failing attempts.
    backoff: Backoff
    failures: FailureLog
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """The core's write unit of work (``session_scope(write=True)``). On SQLite, one at a time in this process:
        a transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT, no busy wait) when another
        connection committed in between, so concurrent reconciles would mostly fail and retry; queueing them on the
        writer turn is far faster."""
        async with session_scope(self.session_factory, write=True) as session:
            yield session

    def lock(self, uid: str) -> asyncio.Lock:
        """One lock per object: the change handlers, the sync timer and Secret events never interleave on it."""
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self.backoff.succeeded(uid)


def runtime_of(memo: Any) -> OperatorRuntime:
    runtime = getattr(memo, "runtime", None)
    if not isinstance(runtime, OperatorRuntime):
        raise RuntimeError("the operator's start-up handler has not run")
    return runtime
