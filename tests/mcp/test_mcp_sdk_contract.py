"""What VibeXP relies on inside the MCP SDK (pinned to 2.3.x in pyproject.toml), checked directly so an SDK upgrade
that changes it fails here, by name, rather than somewhere in the behaviour tests.

* ``MCPServer._lowlevel_server``: the one private attribute we use (there is no public accessor). Through it the
  catalogue handlers are registered with the public ``Server.add_request_handler``, replacing the SDK's
  fixed-registry ones for the same methods and with the same params models.
* ``MCPServer.call_tool`` is what a ``tools/call`` reaches (our override rewrites validation errors).
* The lifespan given to ``MCPServer`` is what handlers and tools find as ``lifespan_context``.
* ``MCPServer(subscriptions=False)`` serves no ``subscriptions/listen``, and the low-level server then derives
  ``listChanged``/``subscribe`` false at every protocol revision (VibeXP delivers no change notifications).
* ``Server.middleware`` starts with the SDK's ``OpenTelemetryMiddleware`` (``mcp.server._otel``), which VibeXP drops
  when no tracer provider is installed.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace

from vibexp.api.mcp.live import Listeners
from vibexp.api.mcp.server import CATALOGUE_HANDLERS, VibeXPMCPServer, lowlevel_server
from vibexp.api.settings import ApiSettings
from vibexp.core.runtime import Runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    built = Runtime.create(ApiSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/contract.db", environment="test"))
    yield built
    await built.database.dispose()


def test_mcpserver_keeps_its_lowlevel_server_where_we_read_it() -> None:
    plain = MCPServer(name="contract")
    assert isinstance(plain._lowlevel_server, Server)
    assert lowlevel_server(plain) is plain._lowlevel_server


def test_our_handlers_replace_the_sdks_with_the_same_params_models(runtime: Runtime) -> None:
    sdk = lowlevel_server(MCPServer(name="contract"))
    ours = lowlevel_server(VibeXPMCPServer(runtime))
    for method, params_type, handler in CATALOGUE_HANDLERS:
        sdk_entry, our_entry = sdk.get_request_handler(method), ours.get_request_handler(method)
        assert sdk_entry is not None, f"the SDK no longer serves {method}"
        assert our_entry is not None and our_entry.handler is handler, method
        assert our_entry.params_type is params_type is sdk_entry.params_type, method
        assert list(inspect.signature(handler).parameters) == ["ctx", "params"], method


def test_the_catalogue_is_still_advertised(runtime: Runtime) -> None:
    capabilities = lowlevel_server(VibeXPMCPServer(runtime)).get_capabilities()
    assert capabilities.prompts is not None and capabilities.resources is not None and capabilities.tools is not None


def test_change_notifications_are_promised_exactly_at_the_revisions_that_get_them(runtime: Runtime) -> None:
    """Our listen handler replaces the SDK's (``subscriptions=False`` + ``add_request_handler``): 2026-07-28 derives
    ``listChanged``/``subscribe`` true from it being served; ``initialize`` (no NotificationOptions, no
    ``resources/subscribe``) says false."""
    inner = lowlevel_server(VibeXPMCPServer(runtime))
    entry = inner.get_request_handler("subscriptions/listen")
    assert entry is not None and isinstance(entry.handler, Listeners)
    assert inner.get_request_handler("resources/subscribe") is None
    handshake = [inner.create_initialization_options().capabilities]  # what initialize answers
    handshake += [inner.get_capabilities(protocol_version=version) for version in HANDSHAKE_PROTOCOL_VERSIONS]
    modern = [inner.get_capabilities(protocol_version=version) for version in MODERN_PROTOCOL_VERSIONS]
    for capabilities, promised in [(c, False) for c in handshake] + [(c, True) for c in modern]:
        assert capabilities.prompts is not None and capabilities.prompts.list_changed is promised
        assert capabilities.tools is not None and capabilities.tools.list_changed is promised
        assert capabilities.resources is not None
        assert capabilities.resources.list_changed is promised and capabilities.resources.subscribe is promised


def test_tools_call_reaches_the_public_call_tool() -> None:
    """The SDK's tools/call handler calls ``self.call_tool`` (what VibeXPMCPServer overrides)."""
    source = inspect.getsource(MCPServer._handle_call_tool)
    assert "self.call_tool(" in source
    assert "call_tool" in VibeXPMCPServer.__dict__


async def test_the_lifespan_yields_the_runtime(runtime: Runtime) -> None:
    server = VibeXPMCPServer(runtime)
    async with server._lowlevel_server.lifespan(server._lowlevel_server) as context:
        assert context is runtime


def test_the_sdks_tracing_middleware_is_dropped_only_without_a_tracer_provider(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK installs ``OpenTelemetryMiddleware`` by default (a no-op span per message without a tracer
    provider): VibeXP drops it then, and keeps it once a provider is installed."""
    assert any(type(m) is OpenTelemetryMiddleware for m in lowlevel_server(MCPServer(name="contract")).middleware)
    assert not any(type(m) is OpenTelemetryMiddleware for m in lowlevel_server(VibeXPMCPServer(runtime)).middleware)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    kept = lowlevel_server(VibeXPMCPServer(runtime)).middleware
    assert [type(m) for m in kept].count(OpenTelemetryMiddleware) == 1
