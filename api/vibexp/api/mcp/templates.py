"""``{{variable}}`` placeholders in stored prompts: which arguments a prompt takes, and filling them in.

A placeholder is ``{{name}}`` (spaces inside the braces allowed) where ``name`` is a letter or ``_`` followed by
letters, digits or ``_``. Every placeholder is a required MCP prompt argument, listed once, in order of first
appearance. Rendering is one pass: a value that itself contains ``{{x}}`` is inserted literally, never expanded,
so an argument cannot pull in another argument's text or smuggle in new placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vibexp.core.errors import InvalidInput

__all__ = ["MissingArguments", "placeholders", "render"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class MissingArguments(InvalidInput):
    """A prompt was rendered without a value for one or more of its placeholders."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"missing required argument(s): {', '.join(missing)}")
        self.missing = missing


def placeholders(content: str) -> list[str]:
    """The distinct placeholder names in ``content``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(content):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(content: str, arguments: Mapping[str, str] | None) -> str:
    """``content`` with each placeholder replaced by its argument; ``MissingArguments`` if any is absent.

    Arguments that match no placeholder are ignored (clients may send every argument they know of).
    """
    values = dict(arguments or {})
    missing = [name for name in placeholders(content) if name not in values]
    if missing:
        raise MissingArguments(missing)
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), content)
