"""Which Host and Origin values the MCP transport accepts, from the settings."""

from __future__ import annotations

from vibexp.api.mcp.mount import transport_security
from vibexp.api.settings import ApiSettings


def test_localhost_on_any_port_by_default() -> None:
    security = transport_security(ApiSettings(environment="test"))
    assert security.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"} <= set(security.allowed_hosts)
    assert {"http://127.0.0.1:*", "http://localhost:*", "https://localhost:*"} <= set(security.allowed_origins)
    assert not any("example" in value for value in security.allowed_hosts + security.allowed_origins)


def test_configured_hosts_and_origins_are_added() -> None:
    settings = ApiSettings(
        environment="test",
        mcp_allowed_hosts="vibexp.vibexp.svc:8000, api.example.com",  # type: ignore[arg-type]  # as from the env
        mcp_allowed_origins=["https://app.example.com"],
    )
    security = transport_security(settings)
    assert security.enable_dns_rebinding_protection
    assert {"vibexp.vibexp.svc:8000", "api.example.com", "localhost:*"} <= set(security.allowed_hosts)
    assert "https://app.example.com" in security.allowed_origins


def test_a_star_host_turns_the_check_off() -> None:
    assert not transport_security(
        ApiSettings(environment="test", mcp_allowed_hosts=["*"])
    ).enable_dns_rebinding_protection
