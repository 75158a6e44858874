"""``vibexp user create``: a dashboard user (the password from a prompt, or one line of stdin)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from vibexp.cli.common import err
from vibexp.cli.member import ROLES
from vibexp.core.errors import VibeXPError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vibexp.core.config import Settings

__all__ = ["cmd_user_create", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="dashboard users").add_subparsers(dest="user_command", required=True)
    u_create = user.add_parser("create", help="create a user (password from a prompt, or stdin)")
    u_create.add_argument("--tenant", required=True, metavar="NAME", help="the tenant the user signs in to")
    u_create.add_argument("--email", required=True, help="the user's e-mail address (their sign-in name)")
    u_create.add_argument(
        "--role", default="owner", choices=ROLES, help="their role in the tenant (default owner, as before roles)"
    )
    u_create.set_defaults(func=cmd_user_create)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise VibeXPError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller, Role
    from vibexp.core.tenants import usecases as accounts
    from vibexp.core.users import usecases as users

    password = _read_password()

    async def work(session: AsyncSession) -> str:
        tenant = await accounts.account_named(session, name=args.tenant)
        caller = Caller.cli(tenant.id)
        user = await users.add_person(session, caller=caller, email=args.email, password=password, role=Role(args.role))
        return f"created user {user.email} in tenant {tenant.name} ({args.role})"

    err(in_session(settings, work))
    return 0
