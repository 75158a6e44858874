"""REST routers, one module per resource; each is a thin layer over a ``vibexp.core`` service.

Every router carries its full path prefix (``/api/v1/...``) itself rather than being nested under an ``/api/v1``
router: the matched route's ``path`` is then the whole template, which usage logs and metrics label requests with.
"""

__all__ = ["API_PREFIX"]

API_PREFIX = "/api/v1"
