"""``vibexp export`` and ``vibexp import``: a tenant's prompts, artifacts and memories as JSON Lines."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vibexp.cli.common import err

if TYPE_CHECKING:
    from vibexp.core.config import Settings

__all__ = ["cmd_export", "cmd_import", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser("export", help="write a tenant's prompts, artifacts and memories to stdout as JSON Lines")
    export.add_argument("--tenant", required=True, metavar="NAME", help="the tenant to export")
    export.set_defaults(func=cmd_export)
    import_ = sub.add_parser("import", help="import a JSON Lines file (an export, or memory.jsonl); all or nothing")
    import_.add_argument("--tenant", required=True, metavar="NAME", help="the tenant to import into")
    import_.add_argument("file", metavar="FILE", help="a JSON Lines file: a `vibexp export`, or an MCP memory.jsonl")
    import_.set_defaults(func=cmd_import)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the tenant's content to stdout as JSON Lines, one keyset page at a time."""
    from vibexp.cli.database import run_database_work, tenant_id
    from vibexp.core.access import Caller
    from vibexp.core.content.usecases import export_lines
    from vibexp.core.db import Database

    async def run() -> None:
        database = Database.from_settings(settings)
        try:
            tenant = await tenant_id(database, args.tenant)
            lines = export_lines(database.session_factory, caller=Caller.cli(tenant))
            async for line in lines:
                sys.stdout.write(line)
        finally:
            await database.dispose()

    run_database_work(settings, run)
    sys.stdout.flush()
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a JSONL file to the tenant in one transaction: all of it, or (at the first bad line) none of it."""
    from vibexp.cli.database import run_database_work, tenant_id
    from vibexp.core.access import Caller
    from vibexp.core.content.usecases import import_lines
    from vibexp.core.db import Database
    from vibexp.core.errors import InvalidInput

    with contextlib.ExitStack() as stack:
        try:  # bytes: a line that is not UTF-8 is reported by its number
            lines = stack.enter_context(Path(args.file).open("rb"))
        except OSError as exc:
            raise ValueError(f"{args.file}: {exc.strerror or exc}") from None

        async def run() -> dict[str, Any]:
            database = Database.from_settings(settings)
            try:
                tenant = await tenant_id(database, args.tenant)
                counts = await import_lines(database.session_factory, caller=Caller.cli(tenant), lines=lines)
                return counts.as_dict()
            finally:
                await database.dispose()

        try:
            counts = run_database_work(settings, run)
        except InvalidInput as exc:  # a bad line: nothing was imported
            raise ValueError(f"{args.file}: {exc.message}; nothing imported") from None
    err(
        f"imported into {args.tenant}: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged"
    )
    return 0
