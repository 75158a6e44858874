"""``vibexp scan``: find API keys and OAuth tokens (``vibo_``, ``vibr_``, ``vibc_``) in files or a git history; exit 1
found, 0 none, 2 bad input (CI reads these). Needs no database unless ``--revoke`` is given, which revokes the keys
and the connected apps (OAuth grants) found."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vibexp.cli.common import err

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vibexp.core.config import Settings

__all__ = ["cmd_scan", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = sub.add_parser(
        "scan", help="find API keys and OAuth tokens in files or a git history (exit 1 found, 0 none, 2 bad input)"
    )
    scan.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    scan.add_argument("--git", action="store_true", help="search every commit of the repositories at PATH")
    scan.add_argument(
        "--legacy",
        action="store_true",
        help="also report key-shaped strings without a valid checksum (keys made before checksums, or not keys)",
    )
    scan.add_argument(
        "--revoke",
        action="store_true",
        help="revoke the active keys, and the connected apps of the OAuth tokens, found (needs the database)",
    )
    scan.add_argument(
        "--report-to",
        metavar="URL",
        help="send the keys and tokens found to this VibeXP server's POST /api/v1/leaked-keys (no database needed)",
    )
    scan.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 when a key is found, 0 when none, 2 when the input cannot be scanned (CI reads these)."""
    from vibexp.core.keys.scan import ScanError, ScanStats, scan_git, scan_paths

    paths = args.paths or ["."]
    stats = ScanStats()
    try:
        if args.git:
            findings = [f for path in paths for f in scan_git(path, include_unchecked=args.legacy, stats=stats)]
        else:
            findings = scan_paths(paths, include_unchecked=args.legacy, stats=stats)
    except ScanError as exc:
        err(f"error: {exc.message}")
        return 2
    for finding in findings:
        print(finding.line_text())
    if stats.unchecked and not args.legacy:
        err(
            f"left out {stats.unchecked} key-shaped string(s) whose checksum fails (typos, hashes, test values; "
            "or keys made before checksums: --legacy reports them too)"
        )
    if not findings:
        err(f"no VibeXP API key or OAuth token found: read {stats.summary()}")
    if findings and args.revoke:
        from vibexp.cli.database import in_session
        from vibexp.core.access import Actor
        from vibexp.core.alerts.leaks import revoke_leaked, revoke_leaked_grants

        keys = [finding.key for finding in findings if finding.is_key]
        tokens = [finding.key for finding in findings if not finding.is_key]

        async def work(session: AsyncSession) -> tuple[list[str], list[str]]:
            where: dict[str, object] = {"source": "vibexp scan"}
            found = await revoke_leaked(session, plaintexts=keys, actor=Actor.cli(), details=where)
            grants = await revoke_leaked_grants(session, plaintexts=tokens, actor=Actor.cli(), details=where)
            return [f"{key.prefix}..." for key in found], [f"{grant.id} ({grant.client_id})" for grant in grants]

        revoked, apps = in_session(settings, work)
        if keys:
            err(f"revoked {len(revoked)} active key(s): {', '.join(revoked) or 'none was active'}")
        if tokens:
            err(f"revoked {len(apps)} connected app(s) (OAuth grants): {', '.join(apps) or 'none was active'}")
    if findings and args.report_to:
        from vibexp.core.keys.report import ReportError, report_findings

        try:
            sent = report_findings(args.report_to, findings, source="vibexp scan")
        except ReportError as exc:
            err(f"error: {exc.message}")
            return 2
        err(f"reported {sent} key(s) to {args.report_to}: the server revokes each active one")
    return 1 if findings else 0
