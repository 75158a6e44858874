"""REST routers, one module per resource; each is a thin layer over a ``vibexp.core`` service."""
