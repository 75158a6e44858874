"""What every command module shares and that costs nothing to import: messages go to stderr (stdout carries only
a command's result, such as a new key or an export), and the one failure that is not the user's (exit 1)."""

from __future__ import annotations

import sys

__all__ = ["STDIN_ARGUMENT", "DatabaseUnreachable", "err"]

#: An option value that means "read it from stdin" (secrets kept out of the shell history and the process list).
STDIN_ARGUMENT = "-"


def err(message: str) -> None:
    print(message, file=sys.stderr)


class DatabaseUnreachable(Exception):
    """The configured database cannot be reached or opened (exit 1: not the command's fault, it may work later)."""
