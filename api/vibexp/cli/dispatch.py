"""Runs the command the parser chose and turns every refusal into one ``error:`` line and its exit code (imported
by :func:`vibexp.cli.main` once the arguments are parsed: it loads the settings, pydantic and the core)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import ValidationError

from vibexp.api.settings import ApiSettings, get_api_settings
from vibexp.cli.common import DatabaseUnreachable, err
from vibexp.core.config import Settings
from vibexp.core.errors import VibeXPError

__all__ = ["FIELD_OPTIONS", "run_command"]

#: The option (or argument) of each command that sets a schema field, so a refused value names what the user typed.
#: Fields not listed are named ``--field-name``.
FIELD_OPTIONS = {
    "name": "NAME",
    "rate_limit_per_hour": "--rate-limit",
    "suspended": "--suspend/--unsuspend",
    "password": "the password",
}


def _validation_messages(exc: ValidationError) -> list[str]:
    """One line per problem, naming the environment variable (settings) or the option (CLI input) at fault."""
    lines = []
    settings_error = exc.title in (Settings.__name__, ApiSettings.__name__)
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        if field and settings_error:
            field = f"VIBEXP_{field.upper()}"
        elif field:
            top = str(error["loc"][0])
            field = FIELD_OPTIONS.get(top, "--" + top.replace("_", "-"))
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"error: {field}: {message}" if field else f"error: {message}")
    return lines


def run_command(args: argparse.Namespace) -> int:
    """``args.func(args, settings)``: 0 done, 2 a user error, 1 a database that cannot be reached."""
    try:
        # The API server's settings include every shared one: each command refuses a bad VIBEXP_ variable alike.
        settings = get_api_settings()
        func: Callable[[argparse.Namespace, Settings], int] = args.func
        return func(args, settings)
    except VibeXPError as exc:  # refused by the domain: an unknown name, a name taken, a value out of policy
        err(f"error: {exc.message}")
        return 2
    except DatabaseUnreachable as exc:
        err(f"error: {exc}")
        return 1
    except ValidationError as exc:  # settings from the environment, CLI input
        for line in _validation_messages(exc):
            err(line)
        return 2
    except ValueError as exc:  # other refused CLI input
        err(f"error: {exc}")
        return 2
