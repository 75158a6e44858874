"""Plain ASGI middleware: body size limit, and API key authentication with rate limiting and usage tracking."""
