"""OAuth 2.1 for MCP: the authorization server (``routes``) and its URLs (``urls``); the token check for
``/mcp/v1/connect`` is the auth middleware's (``vibexp.api.middleware.auth``)."""

from __future__ import annotations

from vibexp.api.oauth.routes import install_oauth

__all__ = ["install_oauth"]
