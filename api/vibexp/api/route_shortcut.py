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

**Static paths.** A path without parameters (``/bench/constant``, ``/healthz``, ``/api/v1/memories``) is looked up
in a dict by method and path before any expression: built with the router's own matching (its loop over the
top-level routes, then each included router's ``_match`` down to the route), each entry is the route the router
picks for that method and path, with the included routers it passes through. The request then gets what the
router's two walks would leave in the scope (``router``, the included router and route context in
``scope["fastapi"]``, each router's form limits, ``endpoint``, ``path_params``, ``route``, the telemetry route) from
one match of the route itself, and goes to ``route.handle``. A method the path has no route for (405), a path
only a mount or a route of another kind takes, and anything not in the table go the ways below.

**Direct endpoints.** For the hottest reads, FastAPI's per-request work around the endpoint (the dependency solver,
the ``Request`` object, the exit stack, the inner exception wrapper: ~20% of an authenticated ``GET
/api/v1/prompts/{id}``, py-spy in docs/performance.md) costs more than the endpoint. An endpoint may name a direct
handler (``direct_endpoint``): ``handler(scope, receive, path_params)`` answers the request itself or returns ``None``
to let FastAPI do it (a query string it does not handle, a body that FastAPI must refuse with its own 422); what the
handler read of the body is replayed to FastAPI then. It is used only when the route is certainly the router's
choice: the first of all routes (flattened, in the router's order) whose path pattern matches, with the method among
its own, no dependencies declared on the route or its routers and no dependency overrides. Its errors are raised as
the endpoint's are (the app's exception handlers answer them), and it runs after the same middlewares, so the key,
the limit, the usage event and the scope check in the use case are all still there.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import (
    _FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY,
    _FASTAPI_INCLUDED_ROUTER_KEY,
    _SCOPE_MISSING,
    APIRoute,
    APIRouter,
    _apply_router_form_limits,
    _get_fastapi_scope,
    _IncludedRouter,
    _restore_fastapi_scope_key,
    _update_scope,
    iter_route_contexts,
)
from fastapi.telemetry._api import _route_selected
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DirectHandler", "RouteShortcut", "direct_endpoint", "install_route_shortcut", "read_body"]

#: ``handler(scope, receive, path_params)``: the response, or ``None`` for FastAPI to handle the request as usual.
DirectHandler = Callable[[Scope, Receive, dict[str, Any]], Awaitable[Response | None]]
_DIRECT = "__vibexp_direct__"


def direct_endpoint(endpoint: Callable[..., Any], handler: DirectHandler) -> None:
    """Let ``handler`` answer ``endpoint``'s requests without FastAPI's dependency solver (see the module's doc)."""
    setattr(endpoint, _DIRECT, handler)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or ``None`` if the client went away first (the body limit is enforced outside)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Replay:
    """``receive`` for a handler that may decline: it keeps what the handler read, to give it to FastAPI first."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.read: list[Message] = []

    async def recording(self) -> Message:
        message = await self._receive()
        self.read.append(message)
        return message

    async def replaying(self) -> Message:
        if self.read:
            return self.read.pop(0)
        return await self._receive()


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
        #: Every route context flattened, in order (one alternative each), and the direct handlers among them.
        self._flat: re.Pattern[str] | None = None
        self._contexts: list[_Context] = []
        self._any_direct = False
        #: What a request must have for any direct handler to be its route's: a method among theirs and a path
        #: starting with one of their literal prefixes (the rest, ``/healthz`` or ``/mcp/...``, skip the table).
        self._direct_methods: frozenset[str] = frozenset()
        self._direct_prefixes: tuple[str, ...] = ()
        #: ``(method, path)`` of a path without parameters → the route the router picks, and how it gets there.
        self._static: dict[tuple[str, str], _Static] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = scope["type"] == "http" and not scope.get("root_path")
        if plain:
            self._refresh()
            if (
                self._any_direct
                and scope["method"] in self._direct_methods
                and scope["path"].startswith(self._direct_prefixes)
            ):
                declined = await self._answer_directly(scope, receive, send)
                if declined is None:
                    return
                receive = declined
            static = self._static.get((scope["method"], scope["path"]))
            if static is not None and await self._handle_static(static, scope, receive, send):
                return
        found = self._full_match(scope) if plain else None
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

    async def _handle_static(self, static: _Static, scope: Scope, receive: Receive, send: Send) -> bool:
        """Handle the request as the router's loop and its included routers would (see the module's doc); ``False``
        (nothing changed) if the route itself does not match fully after all."""
        leaf, context = static.route, static.context
        if context is None:  # a top-level route: the router's loop asks it directly
            match, child_scope = leaf.matches(scope)
        else:  # an included router's ``_match`` asks the route with its context in the scope
            fastapi_scope = _get_fastapi_scope(scope)
            previous = fastapi_scope.get(_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY, _SCOPE_MISSING)
            fastapi_scope[_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY] = context
            try:
                match, child_scope = leaf.matches(scope)
            finally:
                _restore_fastapi_scope_key(scope, _FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY, previous)
        if match is not Match.FULL:
            return False
        if "router" not in scope:
            scope["router"] = self.router
        if context is None:
            _update_scope(scope, child_scope)
            _route_selected(scope=scope, path=getattr(leaf, "path_format", None), mount=False)
            await leaf.handle(scope, receive, send)
            return True
        # The router's loop selects the top-level included router, which hands over to each nested one in turn.
        _route_selected(scope=scope, path=getattr(static.top, "path_format", None), mount=False)
        for included in static.chain:
            _apply_router_form_limits(scope, included.include_context.form_limits)
            fastapi_scope[_FASTAPI_INCLUDED_ROUTER_KEY] = included
        # What the innermost one's ``_handle_selected`` does with its full match.
        _update_scope(scope, child_scope)
        _route_selected(
            scope=scope,
            path=getattr(context.starlette_route, "path_format", None) or context.path_format,
            mount=False,
        )
        fastapi_scope[_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY] = context
        scope["route"] = leaf
        await leaf.handle(scope, receive, send)
        return True

    async def _answer_directly(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """``None`` once a direct handler answered (see the module's doc); else nothing was sent, and the
        ``receive`` FastAPI must read the request from (what the handler read first, replayed)."""
        direct = self._direct_choice(scope)
        if direct is None or getattr(direct.overrides, "dependency_overrides", None):
            return receive
        matched = direct.regex.match(scope["path"])
        if matched is None:
            return receive
        params = {name: direct.convertors[name].convert(value) for name, value in matched.groupdict().items()}
        path_params = {**scope.get("path_params", {}), **params}
        # What FastAPI's dispatch leaves in the scope for the layers around it (fastapi.routing._handle_selected);
        # the router's own dispatch sets it again if the handler declines.
        if "router" not in scope:
            scope["router"] = self.router
        scope["endpoint"], scope["route"], scope["path_params"] = direct.route.endpoint, direct.route, path_params
        _route_selected(scope=scope, path=direct.path_format, mount=False)
        replay = _Replay(receive)
        response = await direct.handler(scope, replay.recording, path_params)
        if response is None:
            return replay.replaying if replay.read else receive
        await response(scope, receive, send)
        return None

    def _direct_choice(self, scope: Scope) -> _Direct | None:
        """The direct handler of the route the router would pick (its first context whose path matches with the
        method among its own), or ``None``: that route has none, or the router's own loop must decide."""
        path = scope["path"]
        found = self._flat.match(path) if self._flat is not None else None
        if found is None or found.lastgroup is None:
            return None
        contexts = self._contexts
        for index in range(int(found.lastgroup[1:]), len(contexts)):
            context = contexts[index]
            if context.regex.match(path) is None:
                continue
            if context.methods is None:
                return None
            if scope["method"] in context.methods:
                return context.direct
        return None

    def _refresh(self) -> None:
        routes = self.router.routes
        if len(routes) != len(self._routes):  # built on first use, rebuilt if routes were added since
            self._routes = list(routes)
            self._each = [_compile([_patterns(route)]) for route in self._routes]
            self._regex = _compile([_patterns(route) for route in self._routes])
            self._flat, self._contexts = _direct_table(self._routes)
            self._static = _static_table(self.router, self._routes)
            directs = [context for context in self._contexts if context.direct is not None]
            self._any_direct = bool(directs)
            self._direct_methods = frozenset(method for context in directs for method in context.methods or ())
            self._direct_prefixes = tuple(
                {context.direct.path_format.split("{", 1)[0] for context in directs if context.direct is not None}
            )

    def _full_match(self, scope: Scope) -> tuple[BaseRoute, Scope] | None:
        """The router's first full match, asking only the routes whose patterns match the path; ``None``: unsure."""
        self._refresh()
        routes = self._routes
        path = scope["path"]
        found = self._regex.match(path) if self._regex is not None else None
        if found is None or found.lastgroup is None:
            return None
        first = int(found.lastgroup[1:])
        for index in range(first, len(routes)):
            regex = self._each[index]
            if regex is None or (index > first and regex.match(path) is None):
                continue
            route = routes[index]
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.NONE:  # a pattern wider than the route: the router's own loop decides
                return None
        return None  # a partial match only (a wrong method: 405), or none: the router's answer


@dataclass(frozen=True, slots=True)
class _Direct:
    route: APIRoute  # what FastAPI puts in scope["route"]
    regex: re.Pattern[str]  # the full path (router prefixes included), with its parameters' groups
    convertors: dict[str, Any]
    path_format: str
    overrides: Any  # the dependency overrides provider (the app): a test's overrides turn the shortcut off
    handler: DirectHandler


@dataclass(frozen=True, slots=True)
class _Context:
    """One route context as the direct dispatch sees it: its path pattern and methods (``None``: a mount, a
    route of unknown shape or without methods: the router's own loop decides), and its direct handler if any."""

    regex: re.Pattern[str]
    methods: frozenset[str] | None
    direct: _Direct | None


@dataclass(frozen=True, slots=True)
class _Static:
    """The router's choice for one method and path without parameters: the top-level route its loop selects, the
    included routers from there down (outermost first), the route itself and its route context (``None``: the
    route is the top-level one)."""

    top: BaseRoute
    chain: tuple[_IncludedRouter, ...]
    route: APIRoute
    context: Any


def _static_table(router: APIRouter, routes: list[BaseRoute]) -> dict[tuple[str, str], _Static]:
    """Every path without parameters, with every method some route has, resolved by the router's own matching:
    only the pairs whose route is an ``APIRoute`` the router would run (full match) are kept."""
    contexts = list(iter_route_contexts(routes))
    paths = {c.path for c in contexts if isinstance(c.path, str) and c.path and "{" not in c.path}
    methods = {method for c in contexts for method in (c.methods or ())}
    table: dict[tuple[str, str], _Static] = {}
    for path in paths:
        for method in methods:
            static = _routers_choice(routes, method, path)
            if static is not None:
                table[(method, path)] = static
    return table


def _routers_choice(routes: list[BaseRoute], method: str, path: str) -> _Static | None:
    """What ``APIRouter.app`` and ``_IncludedRouter._handle_selected`` run for ``method`` and ``path``."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    for top in routes:
        if top.matches(scope)[0] is Match.FULL:
            break
    else:
        return None
    if isinstance(top, APIRoute):
        return _Static(top, (), top, None)
    chain: list[_IncludedRouter] = []
    route: Any = top
    while isinstance(route, _IncludedRouter):
        chain.append(route)
        match, _, route, context = route._match(scope)
        if match is not Match.FULL:
            return None
    if not isinstance(route, APIRoute) or context is None or context.original_route is not route:
        return None
    return _Static(top, tuple(chain), route, context)


def _direct_table(routes: list[BaseRoute]) -> tuple[re.Pattern[str] | None, list[_Context]]:
    """One alternative per route context, flattened in the router's order (``c<index>``), and the contexts.

    A route with declared dependencies (its own or its routers') never has a direct handler.
    """
    alternatives: list[str] = []
    contexts: list[_Context] = []
    for context in iter_route_contexts(routes):
        path = context.path
        if isinstance(context.original_route, Mount) or not isinstance(path, str):
            pattern = _mount_pattern(path or "") if isinstance(context.original_route, Mount) else ".*"
            contexts.append(_Context(re.compile(f"^(?:{pattern})$"), None, None))
        else:
            regex, path_format, convertors = compile_path(path)
            pattern = _ungrouped(regex.pattern.removeprefix("^").removesuffix("$"))
            route, handler = context.original_route, getattr(context.endpoint, _DIRECT, None)
            direct = None
            if isinstance(route, APIRoute) and handler is not None and not getattr(context, "dependencies", None):
                overrides = getattr(context, "dependency_overrides_provider", None)
                direct = _Direct(route, regex, convertors, path_format, overrides, handler)
            methods = frozenset(context.methods) if context.methods else None
            contexts.append(_Context(regex, methods, direct))
        alternatives.append(f"(?P<c{len(alternatives)}>{pattern})")
    flat = re.compile(f"^(?:{'|'.join(alternatives)})$") if alternatives else None
    return flat, contexts


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
