"""``vibexp db upgrade``: apply the migrations (alembic is imported when the command runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vibexp.cli.common import err

if TYPE_CHECKING:
    from vibexp.core.config import Settings

__all__ = ["cmd_db_upgrade", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument(
        "revision",
        nargs="?",
        default="head",
        help="the migration to reach (default head: the newest); creates the embedded SQLite file if it does not exist",
    )
    db_upgrade.set_defaults(func=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import database_errors
    from vibexp.core.migrate import upgrade

    with database_errors(settings):
        upgrade(settings.database_url, args.revision)
    err(f"database at revision {args.revision}")
    return 0
