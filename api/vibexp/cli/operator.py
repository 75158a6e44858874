"""``vibexp operator``: the Kubernetes operator (Kopf and its client are imported when the command runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vibexp.core.config import Settings

__all__ = ["cmd_operator", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = sub.add_parser("operator", help="run the Kubernetes operator")
    operator.add_argument("--namespace", "-n", action="append", default=[], help="watch only this namespace")
    operator.set_defaults(func=cmd_operator)


def cmd_operator(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import require_database
    from vibexp.operator.main import run_operator

    require_database(settings)

    return run_operator(namespaces=args.namespace, all_namespaces=not args.namespace, settings=settings)
