"""What became of a request, from its HTTP status: the usage page's filter and its breakdown by outcome.

One table: each outcome's label and the status ranges it covers (``OUTCOMES``); ``outcome_of`` and the SQL filter
(``vibexp.core.usage.action_log``) both read it, so the page's counts and its filter cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vibexp.core.errors import InvalidInput

__all__ = ["OUTCOMES", "Outcome", "OutcomeInfo", "outcome_of", "parse_outcome"]


class Outcome(StrEnum):
    ok = "ok"
    refused = "refused"  # 401/403: the key lacks the scope, or the account is suspended
    rate_limited = "rate_limited"  # 429
    error = "error"  # every other 4xx (a missing object, bad input) and 5xx


@dataclass(frozen=True, slots=True)
class OutcomeInfo:
    label: str
    #: Half-open ``[low, high)`` status ranges.
    ranges: tuple[tuple[int, int], ...]


OUTCOMES: dict[Outcome, OutcomeInfo] = {
    Outcome.ok: OutcomeInfo("OK", ((100, 400),)),
    Outcome.refused: OutcomeInfo("Refused", ((401, 402), (403, 404))),
    Outcome.rate_limited: OutcomeInfo("Rate limited (429)", ((429, 430),)),
    Outcome.error: OutcomeInfo("Errors", ((400, 401), (402, 403), (404, 429), (430, 600))),
}


def outcome_of(status: int) -> Outcome:
    for outcome, info in OUTCOMES.items():
        if any(low <= status < high for low, high in info.ranges):
            return outcome
    return Outcome.error


def parse_outcome(value: str) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        raise InvalidInput(f"unknown status filter {value!r}; one of: {', '.join(o.value for o in Outcome)}") from None
