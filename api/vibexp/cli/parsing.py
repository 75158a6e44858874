"""Option values of the ``vibexp`` command that need more than ``type=int``: a key's scopes and networks, a
duration (``--expires-in 90d``) and the tenant key policy's day counts.

Each function raises ``ValueError`` naming the option; ``vibexp.cli.main`` prints it as one ``error:`` line and
exits 2. The commands call them before any database work, so a refused command changes nothing. They are not
argparse ``type=`` functions: argparse would print its usage too (more than one line), and a repeated option can
only be checked for duplicates once all of its values are in. The key and tenant modules they check against are
imported by the function that needs them: building the parser (which reads ``DURATION_UNITS``) stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

__all__ = [
    "ANYWHERE",
    "DURATION_UNITS",
    "MAX_DURATION",
    "NONE",
    "duration",
    "key_networks",
    "key_scopes",
    "policy_days",
]

#: ``--allow-cidr any``: no allow-list (what ``key list`` shows for a key usable from anywhere).
ANYWHERE = "any"
#: ``--max-key-lifetime-days none``: clears a policy value, as ``--working-hours none`` clears the hours.
NONE = "none"
#: ``--expires-in``: a whole number and one unit, e.g. ``90d``. No months or years: their length varies, and
#: ``m`` is minutes.
DURATION_UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
#: The longest ``--expires-in``: ten years, the longest maximum lifetime a tenant's policy may set.
MAX_DURATION = timedelta(days=3650)
_DURATION = re.compile(r"([0-9]+)([a-z])")


def _items(values: Sequence[str]) -> list[str]:
    """The values of a repeated option, each of which may also be a comma-separated list (as ``key list`` shows
    them): ``--scope read --scope memories:write`` is ``--scope read,memories:write``."""
    return [item.strip() for value in values for item in value.split(",")]


def key_scopes(values: Sequence[str] | None) -> list[str] | None:
    """``--scope`` (repeatable): known names, no duplicates, none empty; ``None`` when not given."""
    from vibexp.core import access

    if values is None:
        return None
    try:
        return list(access.normalise(_items(values)))
    except ValueError as exc:
        raise ValueError(f"--scope: {exc}") from None


def key_networks(values: Sequence[str] | None) -> list[str] | None:
    """``--allow-cidr`` (repeatable): CIDRs in canonical form, ``[]`` for ``any``; ``None`` when not given."""
    from vibexp.core import cidrs

    if values is None:
        return None
    items = _items(values)
    if ANYWHERE in items:
        if len(items) > 1:
            raise ValueError(f"--allow-cidr: {ANYWHERE} (from anywhere) cannot be combined with a network")
        return []
    try:
        return list(cidrs.normalise(items))
    except ValueError as exc:
        raise ValueError(f"--allow-cidr: {exc}") from None


def duration(text: str, *, option: str = "--expires-in") -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s``: more than zero and at most ``MAX_DURATION``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or match[2] not in DURATION_UNITS:
        raise ValueError(
            f"{option}: {text!r} is not a duration: a whole number and a unit, one of "
            f"{', '.join(DURATION_UNITS)} (such as 90d, 12h or 2w)"
        )
    amount, unit = int(match[1]), DURATION_UNITS[match[2]]
    if amount == 0:
        raise ValueError(f"{option}: {text!r} is no time at all: give a duration of more than zero")
    if amount > MAX_DURATION // unit:  # compared before multiplying: a huge number would overflow timedelta
        raise ValueError(f"{option}: {text!r} is longer than the maximum of {MAX_DURATION.days} days")
    return amount * unit


def policy_days(text: str, *, option: str, field: str) -> int | None:
    """A tenant key policy's day count as ``TenantUpdate.<field>`` bounds it, or ``None`` for ``none``."""
    from pydantic import ValidationError

    from vibexp.core.tenants.schemas import TenantUpdate

    if text.strip().lower() == NONE:
        return None
    try:  # the schema's own bounds, so the command line and REST refuse the same values
        value: int | None = getattr(TenantUpdate.model_validate({field: text}), field)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise ValueError(f"{option}: {text!r}: {message} (a number of days, or {NONE} to clear it)") from None
    return value
