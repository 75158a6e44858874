"""Where the account switcher lands (``nav.section_of``) and the notices a redirect may ask for (no server)."""

from __future__ import annotations

from vibexp.api.dashboard.nav import NOTICES, notice_text, section_of
from vibexp.core.access import Role, ceiling


def test_the_same_kind_of_page_if_the_role_opens_it() -> None:
    owner, viewer = ceiling(Role.owner), ceiling(Role.viewer)
    assert section_of("/prompts/0190-abc", viewer) == "/prompts"
    assert section_of("/prompts", viewer) == "/prompts"
    assert section_of("/artifacts/docs/readme", viewer) == "/artifacts"
    assert section_of("/settings/api-keys/k1/revoke", viewer) == "/settings/api-keys"
    assert section_of("/settings/members", owner) == "/settings/members"
    assert section_of("/settings/alerts", owner) == "/settings/alerts"
    for path in ("/settings/members", "/settings/alerts", "/settings/audit-log", "/alerts"):
        assert section_of(path, viewer) == "/", path  # the 403 page there: the overview instead
    for path in ("/", "/no-such-page", "/promptsx", "//evil.example", ""):
        assert section_of(path, owner) == "/", path


def test_notices_are_fixed_texts() -> None:
    # Plain text: the template escapes it (the account's name is the only variable part).
    assert notice_text("switched", account="<b>x</b>", role="viewer") == "You are now working in <b>x</b>, as viewer."
    assert notice_text("nope", account="a", role="owner") is None and notice_text(None, account="a", role="o") is None
    assert set(NOTICES) == {"switched", "joined", "account-left"}


def test_a_member_is_not_shown_pages_their_role_cannot_open() -> None:
    """Alerts and the audit log need audit:read: a member's or viewer's navigation does not list them (they would
    get the 403 page); admins and owners see them."""
    from vibexp.api.dashboard.nav import SECTIONS, SETTINGS_PAGES
    from vibexp.core.access import Role, ceiling

    def listed(role: Role) -> set[str]:
        granted = ceiling(role)
        pages = SECTIONS + SETTINGS_PAGES
        return {p.href for p in pages if p.listed_only_with is None or p.listed_only_with in granted}

    for role in (Role.member, Role.viewer):
        assert not {"/alerts", "/settings/audit-log", "/settings/alerts"} & listed(role)
        assert {"/usage", "/prompts", "/settings/api-keys"} <= listed(role)
    for role in (Role.admin, Role.owner):
        assert {"/alerts", "/settings/audit-log", "/settings/alerts"} <= listed(role)
