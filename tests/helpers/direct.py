"""Compare the route shortcut's direct endpoints (``vibexp.api.route_shortcut.direct_endpoint``) with FastAPI's own
dispatch of the same routes: count the requests that went through FastAPI's dependency solver, and switch the
direct endpoints off (any dependency override does) to ask FastAPI the same questions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI

__all__ = ["count_solved", "through_fastapi"]


def count_solved(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A list that gets one entry per request FastAPI's dependency solver handles from now on."""
    solved: list[object] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs.get("request"))
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return solved


async def _unused_dependency() -> None:
    """Overridden only to turn the direct endpoints off: no route depends on it."""


@contextmanager
def through_fastapi(app: FastAPI) -> Iterator[None]:
    """Within: every request goes through FastAPI's dispatch (a dependency override turns direct endpoints off)."""
    app.dependency_overrides[_unused_dependency] = _unused_dependency
    try:
        yield
    finally:
        del app.dependency_overrides[_unused_dependency]
