"""What a key may do: its scopes, how they expand, and the one check every use case makes.

The names are the product contract (DESIGN.md "Key permissions and policy")::

    prompts:read   prompts:write   artifacts:read   artifacts:write   memories:read   memories:write
    keys:read      keys:write      account:read     audit:read    alerts:write
    read           every ``:read`` scope
    *              full access (a key made before scopes existed, or one made without ``scopes``)

``<resource>:write`` includes ``<resource>:read``. Alerts are read with ``audit:read`` (DESIGN.md: an alert is what
the audit trail records as ``alert.raised``), and acknowledging one is the only write on that resource, so the
audit resource's write scope is ``alerts:write`` (which includes ``audit:read``): a read-only key cannot silence the
alert its own theft raised. A key stores the names it was given (what its JSON shows); the
verifier expands them once, when it caches the key, into the set of concrete scopes it holds (``expand``), so the
check on each request is one ``frozenset`` membership test (``require``).

The caller of a use case is anything with a ``tenant_id`` and the ``granted`` set (``Scoped``): the verifier's
``Principal`` for an API key; ``FullAccess`` for a signed-in person, the CLI and the operator, who act for the
whole account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import AfterValidator, Field

from vibexp.core.errors import InsufficientScope

__all__ = [
    "ALL_SCOPES",
    "FULL_ACCESS",
    "READ_ONLY",
    "SCOPE_NAMES",
    "FullAccess",
    "ScopeList",
    "Scoped",
    "expand",
    "first_missing",
    "normalise",
    "require",
    "resource_scopes",
]

#: The resources a scope names, in the order the dashboard and the docs list them.
RESOURCES = ("prompts", "artifacts", "memories", "keys", "account", "audit & alerts")
#: Each resource's concrete scopes, read first (account is read-only: nothing writes it through a key; audit's one
#: write is acknowledging an alert, ``alerts:write``).
_CONCRETE: dict[str, tuple[str, ...]] = {
    "prompts": ("prompts:read", "prompts:write"),
    "artifacts": ("artifacts:read", "artifacts:write"),
    "memories": ("memories:read", "memories:write"),
    "keys": ("keys:read", "keys:write"),
    "account": ("account:read",),
    "audit & alerts": ("audit:read", "alerts:write"),
}
#: Every concrete scope, in documentation order.
ALL_SCOPES: tuple[str, ...] = tuple(scope for resource in RESOURCES for scope in _CONCRETE[resource])
FULL_ACCESS = "*"
READ_ONLY = "read"
#: Every name a key may carry: the concrete scopes and the two shorthands.
SCOPE_NAMES: tuple[str, ...] = (*ALL_SCOPES, READ_ONLY, FULL_ACCESS)

_READS = frozenset(scope for scope in ALL_SCOPES if scope.endswith(":read"))
_EXPANSION: dict[str, frozenset[str]] = {
    FULL_ACCESS: frozenset(ALL_SCOPES),
    READ_ONLY: _READS,
    **{scope: frozenset({scope}) for scope in _READS},
    # A write includes its resource's read.
    **{write: frozenset({write, read}) for read, *writes in _CONCRETE.values() for write in writes},
}


def resource_scopes() -> tuple[tuple[str, str, str | None], ...]:
    """Each resource, its read scope and its write scope (``None`` where nothing writes it): the dashboard's grid."""
    return tuple(
        (resource, _CONCRETE[resource][0], next(iter(_CONCRETE[resource][1:]), None)) for resource in RESOURCES
    )


def expand(names: Iterable[str]) -> frozenset[str]:
    """The concrete scopes these names grant (``*`` all, ``read`` every read, a write its read too)."""
    granted: frozenset[str] = frozenset()
    for name in names:
        granted |= _EXPANSION[name]
    return granted


def first_missing(granted: frozenset[str], wanted: Iterable[str]) -> str | None:
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


class Scoped(Protocol):
    """A caller of a use case: the account it acts in and the concrete scopes it holds."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def granted(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class FullAccess:
    """A caller who acts for the whole account: a signed-in person, the CLI, the operator."""

    tenant_id: str
    granted: frozenset[str] = frozenset(ALL_SCOPES)


def require(caller: Scoped, scope: str) -> None:
    """Refuse with ``InsufficientScope`` unless ``caller`` holds ``scope`` (a concrete scope name)."""
    if scope not in caller.granted:
        raise InsufficientScope(scope)
