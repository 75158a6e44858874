"""HTTP adapter: the REST API, the MCP endpoint and the dashboard, all on top of ``vibexp.core``."""
