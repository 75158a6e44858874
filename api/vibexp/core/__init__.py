"""VibeXP domain core: tenants, API keys, rate limits, usage and content.

Nothing in this package imports FastAPI, Starlette, MCP or Kopf: the HTTP/MCP adapter (`vibexp.api`), the
operator (`vibexp.operator`) and the CLI all call the same services defined here.
"""
