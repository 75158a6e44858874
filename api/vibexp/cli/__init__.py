"""The ``vibexp`` command: serve, operator, database, tenants, keys, users and members.

``vibexp key create`` writes the key alone on stdout (one line) so it can be captured by a script; every other
message goes to stderr. Option values beyond plain numbers (scopes, CIDRs, durations, policy days) are parsed by
``vibexp.cli.parsing``; a refused value is one ``error:`` line and exit 2, as a refused argument is.

Exit codes: 0 done; 2 a user error (a refused argument or value, an unknown tenant or key id, a name already taken,
a missing SQLite file); 1 the database cannot be reached (a server down or a wrong address: the same command may
work later) and, for ``scan``, a key found. Every failure is one ``error:`` line on stderr, never a traceback.
Only ``db upgrade`` and ``serve`` create the embedded SQLite file: any other command run where it does not exist
says where it looked and how to point it elsewhere, instead of creating an empty database there.

One module per command group (:data:`GROUPS`, in the order ``--help`` lists them) registers its sub-commands and
holds their functions. Building the parser imports no framework, ORM or validation library: ``vibexp --version``,
``--help`` and a refused argument answer at once, and a command imports what it needs when it runs
(``vibexp.cli.dispatch``, ``vibexp.cli.database`` and the core).
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Sequence

from vibexp.cli import db, key, member, operator, scan, serve, tenant, transfer, user
from vibexp.cli.serve import KEEP_ALIVE_SECONDS

__all__ = ["GROUPS", "KEEP_ALIVE_SECONDS", "build_parser", "main"]

#: The command groups, each a module with ``register(sub)``: a new group is one module and one entry here.
GROUPS = (serve, operator, db, tenant, key, scan, transfer, user, member)


def _version() -> str:
    """The installed distribution's version (the wheel's, or the editable install's)."""
    try:
        return importlib.metadata.version("vibexp")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vibexp", description="VibeXP: prompts, artifacts and memories over REST/MCP")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    _name_sub_commands(parser)
    return parser


def _name_sub_commands(parser: argparse.ArgumentParser) -> None:
    """Show a missing sub-command as the choices (``{create,list,...}``), not as its internal ``dest`` name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = "{" + ",".join(action.choices) + "}"
            for sub_parser in action.choices.values():
                _name_sub_commands(sub_parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vibexp.cli.dispatch import run_command  # settings, pydantic and the core: only once a command runs

    return run_command(args)
