"""Ids sort by creation within a process, also within one millisecond (``vibexp.core.ids``)."""

from __future__ import annotations

import uuid

import pytest

from vibexp.core import ids
from vibexp.core.ids import is_id, new_id


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process that has issued no id yet (the frozen clocks below are earlier than ids made before)."""
    monkeypatch.setattr(ids, "_last", (0, 0))


def test_ids_issued_in_one_millisecond_are_increasing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_123_456_789)  # a frozen clock
    issued = [new_id() for _ in range(2_000)]
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    assert all(is_id(value) and uuid.UUID(value).version == 7 for value in issued)
    assert {uuid.UUID(value).int >> 80 for value in issued} == {1_765_000_000_123}


def test_a_clock_stepping_back_does_not_reorder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_500_000_000)
    later = new_id()
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_100_000_000)  # 400 ms earlier
    assert new_id() > later


def test_exhausted_random_bits_move_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_000_000_000)
    monkeypatch.setattr(ids, "_last", (1_765_000_000_000, (1 << 74) - 1))
    value = uuid.UUID(new_id())
    assert value.int >> 80 == 1_765_000_000_001 and value.version == 7
