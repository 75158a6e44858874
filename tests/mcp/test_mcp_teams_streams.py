"""A listen stream's view of its key, in process (``vibexp.api.mcp.live._Stream``): its effective scopes follow the
owner's role as a key change reports it (``Change.granted``: the key's scopes within the role's ceiling, as the key
verifier computes them), the process's verifier forgets the key before the client is told, and the stream ends when
the owner leaves, the account is suspended, or the key expires. tests/mcp/test_mcp_teams.py runs the same over real
HTTP against two processes."""

from __future__ import annotations

from datetime import datetime, timedelta

from mcp.shared.subscriptions import PromptsListChanged, ToolsListChanged
from mcp_types import SubscriptionFilter

from vibexp.api.mcp.live import _Stream
from vibexp.core.access import ceiling, expand
from vibexp.core.clock import utcnow
from vibexp.core.content.changes import ACCOUNT_ACTIVE, ACCOUNT_SUSPENDED, Change, ChangeKind

TENANT, KEY, OWNER = "t1", "k1", "u1"
HONORED = SubscriptionFilter(tools_list_changed=True, prompts_list_changed=True)


def _key(
    role: str | None,
    *,
    owner: str | None = OWNER,
    scopes: tuple[str, ...] = ("*",),
    expires_at: datetime | None = None,
) -> Change:
    return Change(
        ChangeKind.key,
        TENANT,
        KEY,
        scopes=scopes,
        status="active",
        owner_user_id=owner,
        role=role,
        expires_at=expires_at,
    )


class _Forgets:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def _stream(granted: frozenset[str], forget: _Forgets | None = None, expires_at: datetime | None = None) -> _Stream:
    return _Stream(TENANT, KEY, granted, HONORED, expires_at, forget_key=forget)


def test_a_key_change_reports_the_scopes_within_the_owners_role() -> None:
    assert _key("admin").granted == expand(["*"])
    assert _key("viewer").granted == expand(["*"]) & ceiling("viewer")
    assert _key("member", scopes=("memories:write",)).granted == {"memories:write", "memories:read"}
    assert _key("viewer", scopes=("memories:write",)).granted == {"memories:read"}
    assert _key(None, owner=None, scopes=("keys:write",)).granted == expand(["keys:write"])  # a service key
    orphaned = _key(None)  # the owner is no longer a member
    assert orphaned.orphaned and orphaned.granted == frozenset()


def test_a_demotion_tells_the_stream_after_the_verifier_forgets_the_key() -> None:
    forget = _Forgets()
    stream = _stream(expand(["*"]), forget)
    stream.hear(_key("viewer"))
    assert list(stream.pending) == [ToolsListChanged()] and forget.calls == 1
    assert stream.granted == expand(["*"]) & ceiling("viewer")
    stream.pending.clear()
    stream.hear(_key("viewer"))  # the same view again (another bump): nothing to say
    assert not stream.pending and forget.calls == 1
    stream.hear(Change(ChangeKind.prompt, TENANT, "p", "p"))  # a viewer still reads prompts
    assert list(stream.pending) == [PromptsListChanged()]
    stream.pending.clear()
    stream.hear(_key("owner"))
    assert list(stream.pending) == [ToolsListChanged()] and forget.calls == 2 and not stream.ended


def test_a_stream_ends_when_its_owner_leaves_or_its_account_is_suspended() -> None:
    leaving = _stream(expand(["*"]))
    leaving.hear(_key(None))
    assert leaving.ended and not leaving.pending

    suspended = _stream(expand(["*"]))
    suspended.hear(Change(ChangeKind.account, "another tenant", "another tenant", status=ACCOUNT_SUSPENDED))
    suspended.hear(Change(ChangeKind.account, TENANT, TENANT, status=ACCOUNT_ACTIVE))
    assert not suspended.ended
    suspended.hear(Change(ChangeKind.account, TENANT, TENANT, status=ACCOUNT_SUSPENDED))
    assert suspended.ended and not suspended.pending


def test_a_streams_wait_is_bounded_by_its_keys_expiry() -> None:
    assert _stream(expand(["*"])).seconds_left(600.0) == 600.0
    stream = _stream(expand(["*"]), expires_at=utcnow() + timedelta(seconds=5))
    assert 4.0 < stream.seconds_left(600.0) <= 5.0
    assert stream.seconds_left(2.0) == 2.0  # the idle close comes first
    later = utcnow() + timedelta(seconds=60)
    stream.hear(_key("admin", expires_at=later))  # the key's expiry moved: the wait is re-timed
    assert stream.expires_at == later and stream.wake.is_set() and not stream.pending
    stream.hear(_key("admin", expires_at=utcnow() - timedelta(seconds=1)))
    assert stream.seconds_left(600.0) < 0
