"""Send each request straight to the one top-level route that can take it, instead of asking every route in turn.

FastAPI 0.165's router asks its top-level routes one by one (``route.matches(scope)``), and an included router
answers by asking each of its own routes, under scope bookkeeping of its own: with 14 included routers, a request
for a route near the end (``/healthz``, ``/metrics``) spent ~40% of its CPU there (py-spy, issue 27).

This layer replaces the router's dispatch loop (``app.router.middleware_stack``, inside FastAPI's exception
handling, so every handler and error answer stays the same). One regular expression, compiled once per route list,
has an alternative per top-level route in the router's order (each the union of the paths that route can match,
from Starlette's own ``compile_path``; a mount matches its prefix and anything under it). The first alternative
that matches the path names the first route that can match at all, since no pattern is narrower than its route.
Only that route is asked (``route.matches``) and, while the answer is partial (another method), the later routes
whose own pattern matches; the first full match is handled exactly as the router handles it. Anything else (no
full match, a pattern wider than its route, a ``root_path``, a websocket) goes to the router's own loop, so 404,
405 and slash redirects are still the router's.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRouter, _update_scope, iter_route_contexts
from fastapi.telemetry._api import _route_selected
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RouteShortcut", "install_route_shortcut"]


def install_route_shortcut(router: APIRouter) -> RouteShortcut | None:
    """Put the shortcut in front of ``router``'s own dispatch (its ``middleware_stack``).

    Not for a router with form limits of its own: its loop applies them to the scope first, which this does not.
    """
    if router.form_limits:
        return None
    shortcut = RouteShortcut(router, router.middleware_stack)
    router.middleware_stack = shortcut
    return shortcut


class RouteShortcut:
    def __init__(self, router: APIRouter, fallback: ASGIApp) -> None:
        self.router = router
        #: The router's own dispatch: everything the shortcut does not take for certain.
        self.fallback = fallback
        self._routes: list[BaseRoute] = []
        #: All routes' patterns in one expression (its first match is the first candidate), and each route's own.
        self._regex: re.Pattern[str] | None = None
        self._each: list[re.Pattern[str] | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._full_match(scope) if scope["type"] == "http" and not scope.get("root_path") else None
        if found is None:
            await self.fallback(scope, receive, send)
            return
        # What the router's loop does with its first full match (fastapi.routing.APIRouter.app).
        route, child_scope = found
        if "router" not in scope:
            scope["router"] = self.router
        _update_scope(scope, child_scope)
        _route_selected(scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount))
        await route.handle(scope, receive, send)

    def _full_match(self, scope: Scope) -> tuple[BaseRoute, Scope] | None:
        """The router's first full match, asking only the routes whose patterns match the path; ``None``: unsure."""
        routes = self.router.routes
        if len(routes) != len(self._routes):  # built on first use, rebuilt if routes were added since
            self._routes = list(routes)
            self._each = [_compile([_patterns(route)]) for route in self._routes]
            self._regex = _compile([_patterns(route) for route in self._routes])
        path = scope["path"]
        found = self._regex.match(path) if self._regex is not None else None
        if found is None or found.lastgroup is None:
            return None
        first = int(found.lastgroup[1:])
        for index in range(first, len(self._routes)):
            regex = self._each[index]
            if regex is None or (index > first and regex.match(path) is None):
                continue
            route = self._routes[index]
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.NONE:  # a pattern wider than the route: the router's own loop decides
                return None
        return None  # a partial match only (a wrong method: 405), or none: the router's answer


def _compile(each_route: list[list[str] | None]) -> re.Pattern[str] | None:
    """One alternative per route, in order, named ``r<index>``; a route of unknown shape matches anything."""
    alternatives = []
    for index, patterns in enumerate(each_route):
        if patterns is None:
            alternatives.append(f"(?P<r{index}>.*)")
        elif patterns:
            alternatives.append(f"(?P<r{index}>{'|'.join(patterns)})")
    return re.compile(f"^(?:{'|'.join(alternatives)})$") if alternatives else None


def _patterns(route: Any) -> list[str] | None:
    """Regular expressions (no groups, no anchors) covering every path ``route`` can match; ``None``: unknown."""
    if isinstance(route, Mount):
        return [_mount_pattern(route.path)]
    patterns = []
    for context in iter_route_contexts([route]):
        path = context.path
        if isinstance(context.original_route, Mount):  # its path is the (prefixed) mount point
            patterns.append(_mount_pattern(path or ""))
            continue
        if not isinstance(path, str):
            return None
        regex = compile_path(path)[0].pattern
        patterns.append(_ungrouped(regex.removeprefix("^").removesuffix("$")))
    return patterns


def _mount_pattern(prefix: str) -> str:
    return f"{re.escape(prefix)}(?:/.*)?" if prefix else ".*"


def _ungrouped(pattern: str) -> str:
    """``compile_path``'s named groups made non-capturing, so only the per-route groups name a match."""
    return re.sub(r"\(\?P<[^>]+>", "(?:", pattern)
