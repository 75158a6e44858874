"""``/docs``: Swagger UI served from this server (air-gapped installs work), under a strict security policy.

FastAPI's built-in page loads Swagger UI from a CDN and starts it with an inline script. Here the assets come from
the ``fastapi-offline`` package, which ships Swagger UI 5's release files (5.x reads OpenAPI 3.1, which FastAPI
writes; the ``swagger-ui-bundle`` package stops at 4.15, which does not), under ``/docs/assets``; the start-up code
is a file of ours (``/docs/init.js``), and every response carries a Content-Security-Policy that allows this origin
only, plus ``X-Content-Type-Options``, ``X-Frame-Options`` / ``frame-ancestors`` and ``Referrer-Policy``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DOCS_SECURITY_HEADERS", "install_docs"]

DOCS_SECURITY_HEADERS = {
    # Swagger UI sets style attributes and shows SVG icons as data: URLs; scripts and connections stay same-origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} — API docs</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

# validatorUrl null: the UI would otherwise send the document to validator.swagger.io for a badge.
_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


class _WithHeaders:
    """Adds the docs' security headers to every response of the wrapped app (the static assets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in DOCS_SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, with_headers)


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` (create the app with ``docs_url=None, redoc_url=None``)."""
    page = _PAGE.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(page, headers=DOCS_SECURITY_HEADERS)

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return Response(_INIT, media_type="text/javascript", headers=DOCS_SECURITY_HEADERS)

    assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))
    app.mount("/docs/assets", _WithHeaders(assets), name="docs-assets")
