"""The expiry a rotation gives the new key by default, as the service applies it and the dashboard's form shows it:
the old key's, under the account's maximum key lifetime from now (one rule, ``keys.service.within_lifetime``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vibexp.core.keys.service import within_lifetime

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires_at", "max_days", "expected"),
    [
        (None, None, None),  # no maximum: a key that never expires is rotated into one that never expires
        (NOW + timedelta(days=400), None, NOW + timedelta(days=400)),
        (None, 90, NOW + timedelta(days=90)),  # "never" under a maximum becomes the maximum
        (NOW + timedelta(days=400), 90, NOW + timedelta(days=90)),  # later than the maximum: capped
        (NOW + timedelta(days=10), 90, NOW + timedelta(days=10)),  # sooner: kept
    ],
)
def test_default_expiry_is_the_old_one_under_the_maximum(
    expires_at: datetime | None, max_days: int | None, expected: datetime | None
) -> None:
    assert within_lifetime(expires_at, max_days, NOW) == expected
