"""The MCP adapter: VibeXP's prompts, artifacts and memories over MCP streamable HTTP at ``/mcp/v1/common``.

``mount.py`` wires it into the FastAPI app, ``server.py`` builds the server (prompts and resources), ``tools.py``
the tools, ``context.py`` reads the caller from the request, ``errors.py`` maps domain errors to MCP errors and
``templates.py`` handles ``{{variable}}`` prompt arguments. Keys, limits and usage are the auth middleware's job.
"""

from vibexp.api.mcp.mount import mount_mcp

__all__ = ["mount_mcp"]
