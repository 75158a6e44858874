"""An in-process app with its lifespan running, for the suite's ``app`` fixtures and the tests that need their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

__all__ = ["running"]


@asynccontextmanager
async def running(application: FastAPI, *, timeout: float = 60.0) -> AsyncIterator[FastAPI]:
    """``application`` with its lifespan entered (runtime started, MCP session manager running) until the block ends.

    The lifespan runs in a task of its own: it holds anyio task groups (the MCP session manager) that must be exited
    by the task that entered them, and a fixture's set-up and teardown may run in different tasks.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    waiting = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait({task, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiting.cancel()
        if task in done:
            task.result()  # start-up failed: raise its error here
        task.cancel()
        raise TimeoutError(f"the app did not start within {timeout} s")
    try:
        yield application
    finally:
        stop.set()
        await task
