"""`make run`'s check before it starts anything: is HOST:PORT free? If not, one line naming a free port to use.

Usage: python hack/port_free.py HOST PORT (exit 0 free, 1 in use, with the message on stderr).
"""

from __future__ import annotations

import socket
import sys


def is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    if is_free(host, port):
        return 0
    free = next((p for p in range(port + 1, min(port + 100, 65536)) if is_free(host, p)), None)
    hint = f"run `make run PORT={free}`" if free else "pass a free port as `make run PORT=...`"
    print(
        f"make run: port {port} on {host} is in use (another `make run`?): stop that server, or {hint}", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
