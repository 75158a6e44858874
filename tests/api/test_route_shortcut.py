"""The route shortcut (``vibexp.api.route_shortcut``) takes a request only when it picks the router's own route.

For every route of the app (each method, parameters filled in) and a few paths no route or only a mount matches,
the route the shortcut would handle must be the one FastAPI's router loop picks (its first full match); where the
shortcut is unsure it must hand over to that loop. The hot paths must actually take the shortcut.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Match

from vibexp.api.app import create_app
from vibexp.api.route_shortcut import RouteShortcut
from vibexp.api.settings import ApiSettings

EXTRA_PATHS = ["/nope", "/api/v1/prompts/", "/api/v1/nope", "/static/app.css", "/docs/assets/x.js", "/mcp/v1/common"]
HOT = [
    ("GET", "/healthz"),
    ("GET", "/bench/constant"),
    ("GET", "/api/v1/prompts/p1"),
    ("POST", "/api/v1/memories"),
    ("POST", "/mcp/v1/common"),
    ("GET", "/metrics"),
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def _router_choice(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """What ``APIRouter.app`` handles: its first top-level route that matches fully."""
    for route in routes:
        if route.matches(_scope(method, path))[0] is Match.FULL:
            return route
    return None


def _shortcut_choice(shortcut: RouteShortcut, method: str, path: str) -> BaseRoute | None:
    found = shortcut._full_match(_scope(method, path))
    return found[0] if found is not None else None


@pytest.fixture(scope="module")
def shortcut(tmp_path_factory: pytest.TempPathFactory) -> RouteShortcut:
    db = Path(tmp_path_factory.mktemp("shortcut")) / "unused.db"
    settings = ApiSettings(database_url=f"sqlite+aiosqlite:///{db}", environment="test", bench_endpoints=True)
    stack = create_app(settings).router.middleware_stack
    assert isinstance(stack, RouteShortcut)
    return stack


def test_the_shortcut_picks_the_routers_own_route_or_defers(shortcut: RouteShortcut) -> None:
    routes = list(shortcut.router.routes)
    paths = {
        re.sub(r"\{[^}]*\}", "x1", path)
        for context in iter_route_contexts(routes)
        if isinstance(path := context.path_format, str)
    } | set(EXTRA_PATHS)
    taken = 0
    for path in sorted(paths):
        for method in METHODS:
            chosen = _shortcut_choice(shortcut, method, path)
            if chosen is not None:
                taken += 1
                assert chosen is _router_choice(routes, method, path), (method, path)
    assert taken > len(paths)  # most routes go the short way (each path has at least one method)


@pytest.mark.parametrize(("method", "path"), HOT)
def test_hot_paths_take_the_shortcut(shortcut: RouteShortcut, method: str, path: str) -> None:
    chosen = _shortcut_choice(shortcut, method, path)
    assert chosen is not None
    assert chosen is _router_choice(list(shortcut.router.routes), method, path)


def test_a_path_no_route_matches_goes_to_the_router(shortcut: RouteShortcut) -> None:
    assert _shortcut_choice(shortcut, "GET", "/nope") is None
    assert _shortcut_choice(shortcut, "PATCH", "/healthz") is None  # the router's 405
    assert _shortcut_choice(shortcut, "GET", "/api/v1/prompts/") is None  # the router's slash redirect


def _routers_endpoint_route(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """The route whose endpoint FastAPI's router runs: its first full match, and inside an included router that
    router's own first full match (``_IncludedRouter._match``), down to the route itself."""
    chosen = _router_choice(routes, method, path)
    while chosen is not None and hasattr(chosen, "_match"):
        match, _, chosen, _ = chosen._match(_scope(method, path))
        if match is not Match.FULL:
            return None
    return chosen


def test_direct_endpoints_answer_only_for_the_routers_own_route(shortcut: RouteShortcut) -> None:
    """A direct handler (``direct_endpoint``) is used only where the router would run that very endpoint: for
    every route's path with every method, including a path shared by routes of other methods."""
    routes = list(shortcut.router.routes)
    paths = {
        re.sub(r"\{[^}]*\}", "x1", path)
        for context in iter_route_contexts(routes)
        if isinstance(path := context.path_format, str)
    } | set(EXTRA_PATHS)
    taken = []
    for path in sorted(paths):
        for method in METHODS:
            direct = shortcut._direct_choice(_scope(method, path))
            if direct is not None:
                taken.append((method, path))
                assert direct.route is _routers_endpoint_route(routes, method, path), (method, path)
    assert ("GET", "/api/v1/prompts/x1") in taken  # the hot read is direct; PUT and DELETE on its path are not
    assert ("PUT", "/api/v1/prompts/x1") not in taken and ("DELETE", "/api/v1/prompts/x1") not in taken


def _handled(app: Any, method: str, path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...] | None:
    """Run ``app`` (a router dispatch) on a request; what reached ``APIRoute.handle``: the route and what the
    dispatch left in the scope for it (``None``: no FastAPI route was run)."""
    seen: list[tuple[Any, ...]] = []

    async def recorded(route: APIRoute, scope: dict[str, Any], receive: Any, send: Any) -> None:
        keys = ("router", "route", "endpoint", "path_params", "app_root_path")
        seen.append((route, {k: scope.get(k) for k in keys}, dict(scope.get("fastapi", {}))))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(APIRoute, "handle", recorded)
        asyncio.run(app(_scope(method, path), receive, send))
    assert len(seen) <= 1
    return seen[0] if seen else None


def test_static_paths_leave_the_scope_the_router_leaves(
    shortcut: RouteShortcut, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every path without parameters and every method: a (method, path) in the static table runs the route the
    router's own dispatch runs, with the same scope (router, route, endpoint, path parameters, FastAPI's included
    router and route context); a pair not in it (a 405, a mount's path) is the router's own business."""
    routes = list(shortcut.router.routes)
    shortcut._refresh()
    paths = {
        path
        for context in iter_route_contexts(routes)
        if isinstance(path := context.path_format, str) and "{" not in path
    } | set(EXTRA_PATHS)
    in_table = 0
    for path in sorted(paths):
        for method in [*METHODS, "HEAD", "OPTIONS"]:
            if (method, path) not in shortcut._static:
                continue
            routers = _handled(shortcut.fallback, method, path, monkeypatch)
            in_table += 1
            assert routers is not None, (method, path)
            assert _handled(shortcut, method, path, monkeypatch) == routers, (method, path)
    assert in_table > len(paths) // 2
    for method, path in [("GET", "/bench/constant"), ("GET", "/healthz"), ("POST", "/api/v1/memories")]:
        assert (method, path) in shortcut._static
    for method, path in [("PATCH", "/healthz"), ("GET", "/mcp/v1/common"), ("GET", "/nope")]:
        assert (method, path) not in shortcut._static  # a 405, a mount, nothing: the router answers
