"""``vibexp member invite|list|role|remove``: an account's people and their roles, as the CLI (acting for the
whole account, like an owner) manages them. ``member invite`` prints the invitation link alone on stdout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vibexp.cli.common import err

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vibexp.core.config import Settings
    from vibexp.core.members.usecases import MemberRow, NewInvitation

__all__ = ["ROLES", "register"]

#: The roles, highest first (``vibexp.core.access.ROLE_NAMES``; a test ties the two: the parser imports no core).
ROLES = ("owner", "admin", "member", "viewer")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    member = sub.add_parser("member", help="an account's members and their roles").add_subparsers(
        dest="member_command", required=True
    )
    invite = member.add_parser("invite", help="invite someone (the link, valid 7 days, alone on stdout)")
    invite.add_argument("--tenant", required=True, metavar="NAME", help="the account to join")
    invite.add_argument("--email", required=True, help="who is invited")
    invite.add_argument("--role", required=True, choices=ROLES, help="their role once they join")
    invite.set_defaults(func=cmd_member_invite)
    listing = member.add_parser("list", help="list an account's members")
    listing.add_argument("--tenant", required=True, metavar="NAME", help="the account")
    listing.set_defaults(func=cmd_member_list)
    role = member.add_parser("role", help="change a member's role")
    role.add_argument("--tenant", required=True, metavar="NAME", help="the account")
    role.add_argument("--email", required=True, help="the member's e-mail")
    role.add_argument("role", metavar="ROLE", choices=ROLES, help="the new role: " + ", ".join(ROLES))
    role.set_defaults(func=cmd_member_role)
    remove = member.add_parser(
        "remove", help="remove a member (their personal keys and connected apps are revoked at once)"
    )
    remove.add_argument("--tenant", required=True, metavar="NAME", help="the account")
    remove.add_argument("--email", required=True, help="the member's e-mail")
    remove.set_defaults(func=cmd_member_remove)


def cmd_member_invite(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller, Role
    from vibexp.core.members import usecases as members
    from vibexp.core.members.schemas import invitation_link
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> NewInvitation:
        tenant = await accounts.account_named(session, name=args.tenant)
        return await members.invite(session, caller=Caller.cli(tenant.id), email=args.email, role=Role(args.role))

    new = in_session(settings, work)
    err(f"invited {new.record.email} to {args.tenant} as {new.record.role}; the link works once, until")
    err(f"{new.record.expires_at.isoformat(timespec='seconds')}. Send it now: it is shown only once.")
    print(invitation_link(settings.public_url, new.token))
    return 0


def cmd_member_list(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.members import usecases as members
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> list[MemberRow]:
        tenant = await accounts.account_named(session, name=args.tenant)
        return await members.list_members(session, caller=Caller.cli(tenant.id))

    rows = in_session(settings, work)
    print("USER_ID\tEMAIL\tROLE\tJOINED\tLAST_SEEN\tKEYS")
    for row in rows:
        seen = row.last_seen_at.isoformat(timespec="seconds") if row.last_seen_at else "never"
        print(
            f"{row.user_id}\t{row.email}\t{row.role}\t{row.joined_at.isoformat(timespec='seconds')}\t{seen}\t{row.key_count}"
        )
    return 0


def cmd_member_role(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller, Role
    from vibexp.core.members import usecases as members
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> str:
        tenant = await accounts.account_named(session, name=args.tenant)
        caller = Caller.cli(tenant.id)
        user = await members.member_by_email(session, caller=caller, email=args.email)
        await members.change_role(session, caller=caller, user_id=user.id, role=Role(args.role))
        return f"{user.email} is now {args.role} in {tenant.name}"

    err(in_session(settings, work))
    return 0


def cmd_member_remove(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.members import usecases as members
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> str:
        tenant = await accounts.account_named(session, name=args.tenant)
        caller = Caller.cli(tenant.id)
        user = await members.member_by_email(session, caller=caller, email=args.email)
        removal = await members.remove(session, caller=caller, user_id=user.id)
        keys, apps = len(removal.revoked_keys), len(removal.revoked_grants)
        return f"removed {user.email} from {tenant.name}; revoked {keys} personal key(s) and {apps} connected app(s)"

    err(in_session(settings, work))
    return 0
