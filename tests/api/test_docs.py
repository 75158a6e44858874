"""``/docs`` works air-gapped: Swagger UI's files come from this server, and the page refers to no other host."""

from __future__ import annotations

import re

import httpx

REFERENCE = re.compile(r'(?:src|href)="([^"]+)"')


async def test_docs_load_only_from_this_server_with_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "//" not in page.text.replace("<!doctype", "")
    references = REFERENCE.findall(page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in references and "/docs/assets/swagger-ui.css" in references
    init = await client.get("/docs/init.js")
    assert "http" not in init.text and "validatorUrl: null" in init.text and '"/openapi.json"' in init.text
    for response in [page, init] + [await client.get(ref) for ref in references]:
        assert response.status_code == 200, response.url
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "javascript" in (await client.get("/docs/assets/swagger-ui-bundle.js")).headers["content-type"]
    # FastAPI's CDN pages are gone.
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 200
