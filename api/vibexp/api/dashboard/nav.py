"""The dashboard's navigation as data: the main areas, the Settings pages, and the one-line notices a redirect can
ask the next page to show (``?notice=<code>``: only these fixed texts, so nothing from the address is echoed).

The base template draws the navigation from ``SECTIONS`` and ``SETTINGS_PAGES``; the account switcher sends the
person back to the same kind of page (``section_of``) in the account they chose: an object's own page belongs to one
account, so the list it is in, not the object, is where they land — or the overview, when their role in the new
account cannot open that page.
"""

from __future__ import annotations

from typing import NamedTuple

from vibexp.core.access import Scope

__all__ = ["NOTICES", "SECTIONS", "SETTINGS_PAGES", "Page", "notice_text", "section_of"]


class Page(NamedTuple):
    """A navigation entry. ``needs``: the scope the page cannot open without (a role whose ceiling lacks it gets
    the 403 page, so the switcher lands such a person on the overview instead); ``listed_only_with``: the scope
    without which the entry is not even shown."""

    href: str
    label: str
    needs: Scope | None = None
    listed_only_with: Scope | None = None


#: The main navigation. "Settings" opens its first page, API Keys.
SECTIONS: tuple[Page, ...] = (
    Page("/", "Overview"),
    Page("/usage", "Usage", needs=Scope.keys_read),
    Page("/alerts", "Alerts", needs=Scope.audit_read, listed_only_with=Scope.audit_read),
    Page("/prompts", "Prompts", needs=Scope.prompts_read),
    Page("/artifacts", "Artifacts", needs=Scope.artifacts_read),
    Page("/memories", "Memories", needs=Scope.memories_read),
    Page("/settings/api-keys", "Settings", needs=Scope.keys_read),
)
#: Settings' own navigation, shown on every /settings/… page.
SETTINGS_PAGES: tuple[Page, ...] = (
    Page("/settings/api-keys", "API Keys", needs=Scope.keys_read),
    Page("/settings/account", "Account"),
    Page("/settings/members", "Members", needs=Scope.members_read),
    Page("/settings/connected-apps", "Connected apps", needs=Scope.keys_read),
    Page("/settings/alerts", "Alerts settings", needs=Scope.alerts_write, listed_only_with=Scope.alerts_write),
    Page("/settings/audit-log", "Audit log", needs=Scope.audit_read, listed_only_with=Scope.audit_read),
    Page("/settings/export", "Export"),
)

#: ``?notice=`` codes and their text; ``{account}`` and ``{role}`` are the account the page shows and the role there.
NOTICES: dict[str, str] = {
    "switched": "You are now working in {account}, as {role}.",
    "joined": "You joined {account}, as {role}.",
    "account-left": (
        "You are no longer a member of the account you were working in. This is {account}, another of your "
        "accounts, where you are {role}."
    ),
}


def section_of(path: str, granted: frozenset[Scope]) -> str:
    """The navigation entry ``path`` belongs to (the longest matching one), if ``granted`` opens it; else the
    overview."""
    best = Page("/", "Overview")
    for page in SECTIONS + SETTINGS_PAGES:
        if (
            page.href != "/"
            and (path == page.href or path.startswith(page.href + "/"))
            and len(page.href) > len(best.href)
        ):
            best = page
    return best.href if best.needs is None or best.needs in granted else "/"


def notice_text(code: str | None, *, account: str, role: str) -> str | None:
    """The notice a ``?notice=`` code names, about the account the page shows; ``None`` for no or an unknown code."""
    template = NOTICES.get(code or "")
    return template.format(account=account, role=role) if template else None
