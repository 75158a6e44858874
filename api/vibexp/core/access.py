"""Who is calling the core, and what they may do: the scopes, the audit trail's actor and the ``Caller``.

Every adapter (REST, MCP, the dashboard, the CLI, the operator) builds one ``Caller`` at its edge and hands it to the
use cases (``vibexp.core.*.usecases``), which check the scope they need with ``require`` and record ``caller.actor``
in the audit trail. Nothing below the use cases knows which adapter called.

The scope names are the product contract (README.md "Key permissions and policy")::

    prompts:read   prompts:write   artifacts:read   artifacts:write   memories:read   memories:write
    keys:read      keys:write      account:read     audit:read    alerts:write    members:read   members:write
    read           every ``:read`` scope
    *              full access (a key made before scopes existed, or one made without ``scopes``)

``<resource>:write`` includes ``<resource>:read``. Alerts are read with ``audit:read`` (README.md "Alerts": an alert
is what the audit trail records as ``alert.raised``), and acknowledging one is the only write on that resource, so the
audit resource's write scope is ``alerts:write`` (which includes ``audit:read``): a read-only key cannot silence the
alert its own theft raised. A key stores the names it was given (what its JSON shows); the verifier expands them
once, when it caches the key, into the set of concrete ``Scope`` values it holds (``expand``), so the check on each
request is one ``frozenset`` membership test (``require``).

Adding a scope: a member of ``Scope`` and its place in ``_CONCRETE`` (the CRD's enum is tied to ``SCOPE_NAMES`` by a
test); the use case that needs it names it in ``requires``.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, ParamSpec, TypeVar

from pydantic import AfterValidator, Field

from vibexp.core.errors import InsufficientScope

__all__ = [
    "ALL_SCOPES",
    "FULL_ACCESS",
    "READ_ONLY",
    "ROLE_NAMES",
    "SCOPE_NAMES",
    "Actor",
    "ActorType",
    "Caller",
    "CredentialKind",
    "Role",
    "Scope",
    "ScopeList",
    "ceiling",
    "declare_access",
    "expand",
    "first_missing",
    "key_ceiling",
    "normalise",
    "require",
    "required_scope",
    "requires",
    "resource_scopes",
]


class Scope(StrEnum):
    """A concrete scope: what one use case needs (a key's shorthands ``read`` and ``*`` expand to these)."""

    prompts_read = "prompts:read"
    prompts_write = "prompts:write"
    artifacts_read = "artifacts:read"
    artifacts_write = "artifacts:write"
    memories_read = "memories:read"
    memories_write = "memories:write"
    keys_read = "keys:read"
    keys_write = "keys:write"
    account_read = "account:read"
    audit_read = "audit:read"
    alerts_write = "alerts:write"
    members_read = "members:read"
    members_write = "members:write"

    @property
    def is_read(self) -> bool:
        return self.value.endswith(":read")


#: The resources a scope names, in the order the dashboard and the docs list them.
RESOURCES = ("prompts", "artifacts", "memories", "keys", "account", "audit & alerts", "members")
#: Each resource's concrete scopes, read first (account is read-only: nothing writes it through a key; audit's one
#: write is acknowledging an alert, ``alerts:write``).
_CONCRETE: dict[str, tuple[Scope, ...]] = {
    "prompts": (Scope.prompts_read, Scope.prompts_write),
    "artifacts": (Scope.artifacts_read, Scope.artifacts_write),
    "memories": (Scope.memories_read, Scope.memories_write),
    "keys": (Scope.keys_read, Scope.keys_write),
    "account": (Scope.account_read,),
    "audit & alerts": (Scope.audit_read, Scope.alerts_write),
    "members": (Scope.members_read, Scope.members_write),
}
#: Every concrete scope, in documentation order.
ALL_SCOPES: tuple[Scope, ...] = tuple(scope for resource in RESOURCES for scope in _CONCRETE[resource])
FULL_ACCESS = "*"
READ_ONLY = "read"
#: Every name a key may carry: the concrete scopes and the two shorthands.
SCOPE_NAMES: tuple[str, ...] = (*(scope.value for scope in ALL_SCOPES), READ_ONLY, FULL_ACCESS)

_ALL = frozenset(ALL_SCOPES)
_READS = frozenset(scope for scope in ALL_SCOPES if scope.is_read)
_EXPANSION: dict[str, frozenset[Scope]] = {
    FULL_ACCESS: _ALL,
    READ_ONLY: _READS,
    **{scope.value: frozenset({scope}) for scope in _READS},
    # A write includes its resource's read.
    **{write.value: frozenset({write, read}) for read, *writes in _CONCRETE.values() for write in writes},
}


def resource_scopes() -> tuple[tuple[str, Scope, Scope | None], ...]:
    """Each resource, its read scope and its write scope (``None`` where nothing writes it): the dashboard's grid."""
    return tuple(
        (resource, _CONCRETE[resource][0], next(iter(_CONCRETE[resource][1:]), None)) for resource in RESOURCES
    )


def expand(names: Iterable[str]) -> frozenset[Scope]:
    """The concrete scopes these names grant (``*`` all, ``read`` every read, a write its read too)."""
    granted: frozenset[Scope] = frozenset()
    for name in names:
        granted |= _EXPANSION[name]
    return granted


def first_missing(granted: frozenset[Scope], wanted: Iterable[str]) -> Scope | None:
    """The first scope ``wanted`` names (expanded) that ``granted`` lacks, or ``None`` when it is no wider."""
    for scope in ALL_SCOPES:
        if scope in expand(wanted) and scope not in granted:
            return scope
    return None


def normalise(names: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of scope names as a request gives them: known names, no duplicates, at least one.

    Raises ``ValueError`` (pydantic turns it into a 422; the CLI into a one-line error) naming the problem.
    """
    if not names:
        raise ValueError("must list at least one scope (omit the field for the caller's own scopes)")
    seen: set[str] = set()
    for name in names:
        if name not in _EXPANSION:
            raise ValueError(f"unknown scope {name!r}; known scopes: {', '.join(SCOPE_NAMES)}")
        if name in seen:
            raise ValueError(f"scope {name!r} is listed twice")
        seen.add(name)
    return tuple(names)


def _validated(names: list[str]) -> list[str]:
    return list(normalise(names))


#: A request's ``scopes``: known names, no duplicates, not empty.
ScopeList = Annotated[
    list[Annotated[str, Field(max_length=32)]],
    Field(max_length=len(SCOPE_NAMES), examples=[["read"], ["memories:write", "prompts:read"]]),
    AfterValidator(_validated),
]


# -- roles ------------------------------------------------------------------------------------------------------
class Role(StrEnum):
    """A person's role in an account (README.md "Teams"), highest first."""

    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"

    @property
    def rank(self) -> int:
        """Higher is more: an invitation or a role change never goes above the actor's own."""
        return _RANK[self]

    @property
    def manages_everyone(self) -> bool:
        """Admins and owners see and manage every key and member; members and viewers only their own keys."""
        return self.rank >= _RANK[Role.admin]


_RANK = {Role.viewer: 0, Role.member: 1, Role.admin: 2, Role.owner: 3}
#: Every role name, highest first.
ROLE_NAMES: tuple[str, ...] = tuple(role.value for role in Role)
_CONTENT = frozenset(scope for resource in ("prompts", "artifacts", "memories") for scope in _CONCRETE[resource])
#: A member's ceiling: all content, their own keys (the key use cases narrow ``keys:*`` to them), the account.
_MEMBER_CEILING = _CONTENT | {Scope.keys_read, Scope.keys_write, Scope.account_read}
_CEILINGS: dict[Role, frozenset[Scope]] = {
    Role.owner: _ALL,
    Role.admin: _ALL,
    Role.member: _MEMBER_CEILING,
    # The reads of a member's ceiling (content, the account), and their own keys: a viewer makes and revokes their
    # own keys, read-only ones (``key_ceiling``).
    Role.viewer: frozenset(scope for scope in _MEMBER_CEILING if scope.is_read) | {Scope.keys_write},
}
_KEY_CEILINGS = {**_CEILINGS, Role.viewer: frozenset(scope for scope in _MEMBER_CEILING if scope.is_read)}


def ceiling(role: Role | str | None) -> frozenset[Scope]:
    """The most a person with ``role`` (or their key) may do; ``None`` (a service key, the CLI) is unbounded."""
    return _ALL if role is None else _CEILINGS[Role(role)]


def key_ceiling(role: Role | str | None) -> frozenset[Scope]:
    """The widest key a person with ``role`` may hold: their ceiling, but a viewer's keys are read-only."""
    return _ALL if role is None else _KEY_CEILINGS[Role(role)]


# -- who acted ----------------------------------------------------------------------------------------------------
class ActorType(StrEnum):
    user = "user"
    api_key = "api_key"
    cli = "cli"
    operator = "operator"
    system = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, and from where (the client address and user agent, when the action came over HTTP): what the
    audit trail records (``vibexp.core.audit.service.record``)."""

    type: ActorType
    id: str | None = None
    name: str = ""
    client_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The ``vibexp`` command, named after the operating-system user who ran it."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            user = "unknown"
        return cls(ActorType.cli, id=user, name=f"vibexp CLI ({user})")

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(ActorType.system, name=name)


# -- the caller ---------------------------------------------------------------------------------------------------
class CredentialKind(StrEnum):
    """What the caller proved itself with."""

    api_key = "api_key"
    grant = "grant"  # an OAuth access token (``vibexp.core.oauth``), acting for the person who granted it
    dashboard_session = "dashboard_session"
    cli = "cli"
    operator = "operator"


class Caller(NamedTuple):
    """Who calls a use case, built once at the adapter's edge.

    ``tenant_id`` is the account acted in; ``credential`` and ``credential_id`` what was presented (a key's id;
    ``None`` where there is no stored credential); ``granted`` the concrete scopes it holds; ``acting_as`` who the
    audit trail names (``actor`` adds the request's address and user agent); ``person`` the person acting
    (the signed-in user, or a personal key's owner; ``None`` for a service key, the CLI and the operator) and
    ``role`` their role in the account (``None`` where no person acts); ``client_ip`` and ``user_agent`` where an
    HTTP request came from; ``allowed_cidrs`` and ``expires_at`` the bounds of a key's own credential (what a key
    it mints may not exceed).

    An API key's Caller is built on every request (``Principal.caller``) from parts the verifier cached with the
    key, so it is a ``NamedTuple``: immutable and about four times cheaper to build than a frozen dataclass, whose
    ``__init__`` sets each field through ``object.__setattr__``. The ``Actor`` is only built when something is
    audited.
    """

    tenant_id: str
    credential: CredentialKind
    granted: frozenset[Scope]
    acting_as: Actor
    credential_id: str | None = None
    person: str | None = None
    role: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    allowed_cidrs: tuple[str, ...] = ()
    expires_at: datetime | None = None

    @property
    def actor(self) -> Actor:
        """What the audit trail records for this caller's changes: who, from which address and user agent."""
        who = self.acting_as
        if self.client_ip is None and self.user_agent is None:
            return who
        return Actor(who.type, who.id, who.name, self.client_ip, self.user_agent)

    @property
    def acts_for_account(self) -> bool:
        """A person, the CLI or the operator: not bounded by a credential of its own (a key minted or rotated by
        an API key may not be wider than that key: ``allowed_cidrs``, ``expires_at`` and ``granted``)."""
        return self.credential is not CredentialKind.api_key and self.credential is not CredentialKind.grant

    @classmethod
    def signed_in(
        cls,
        *,
        tenant_id: str,
        user_id: str,
        name: str,
        client_ip: str | None,
        user_agent: str | None,
        role: Role | str,
    ) -> Caller:
        """A person signed in to the dashboard: what their role in the account allows (``ceiling``)."""
        who = Actor(ActorType.user, id=user_id, name=name)
        return cls(
            tenant_id,
            CredentialKind.dashboard_session,
            ceiling(role),
            who,
            person=user_id,
            role=Role(role),
            client_ip=client_ip,
            user_agent=user_agent,
        )

    @property
    def sees_only_own_keys(self) -> bool:
        """A member or viewer (signed in, or through their personal key): their own keys only."""
        return self.role is not None and not Role(self.role).manages_everyone

    @classmethod
    def cli(cls, tenant_id: str) -> Caller:
        """The ``vibexp`` command, run by someone with the database's credentials: the whole account."""
        return cls(tenant_id, CredentialKind.cli, _ALL, Actor.cli())

    @classmethod
    def operator(cls, tenant_id: str, *, actor: Actor) -> Caller:
        """The Kubernetes operator, acting for the object it reconciles (``actor``): the whole account."""
        return cls(tenant_id, CredentialKind.operator, _ALL, actor)


def require(caller: Caller, scope: Scope) -> None:
    """Refuse with ``InsufficientScope`` unless ``caller`` holds ``scope``."""
    if scope not in caller.granted:
        raise InsufficientScope(scope)


_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Any])
_SCOPE_ATTRIBUTE = "__vibexp_scope__"


def requires(scope: Scope) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """Declare the scope a use case needs: its ``caller`` keyword is checked before it runs, and an adapter reads
    the scope with ``required_scope`` (the MCP tool registry shows a key only the tools whose use case it may
    call), so no adapter writes a scope name a second time."""

    def declare(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(fn)
        async def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            caller = kwargs["caller"]
            if not isinstance(caller, Caller):
                raise TypeError(f"{fn.__qualname__} is called with caller=Caller")
            if scope not in caller.granted:
                raise InsufficientScope(scope)
            return await fn(*args, **kwargs)

        setattr(checked, _SCOPE_ATTRIBUTE, scope)
        return checked

    return declare


def declare_access(fn: _F, kind: str) -> _F:
    """Mark a method of a use-case class whose scope depends on the instance (a content kind's ``read_scope`` or
    ``write_scope``): ``kind`` is ``"read"`` or ``"write"``; the method checks the scope itself."""
    setattr(fn, _SCOPE_ATTRIBUTE, kind)
    return fn


def required_scope(use_case: Any) -> Scope:
    """The scope a use case needs: declared with ``requires``, or, for a content kind's method marked with
    ``declare_access``, its kind's read or write scope."""
    declared = getattr(use_case, _SCOPE_ATTRIBUTE, None)
    if isinstance(declared, Scope):
        return declared
    if declared in ("read", "write"):
        scope = getattr(getattr(use_case, "__self__", None), f"{declared}_scope", None)
        if isinstance(scope, Scope):
            return scope
    raise TypeError(f"{use_case!r} declares no scope")
