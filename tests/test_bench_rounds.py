"""bench.rounds: the sides of a comparison take turns, and every block records its load."""

from __future__ import annotations

import pytest

from bench.rounds import interleave, summarise


def test_sides_take_turns_in_a_rotating_order_and_record_the_load():
    calls = []
    sides = {name: (lambda r, n=name: calls.append((n, r))) for name in ("a", "b", "c")}
    blocks = interleave(sides, rounds=3, units=4)
    assert calls[:3] == [("a", -1), ("b", -1), ("c", -1)]  # untimed warm-up
    assert [b["side"] for b in blocks] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(b["load_before"]) == 3 and len(b["load_after"]) == 3 for b in blocks)
    assert all(b["seconds_per_unit"] == b["seconds"] / 4 for b in blocks)


def test_a_side_may_report_its_own_seconds():
    blocks = interleave({"engine": lambda r: 2.0, "bare": lambda r: 1.0}, rounds=2, units=2,
                        warmup=False)
    stats = summarise(blocks)
    assert stats["engine"]["median_s"] == 1.0 and stats["bare"]["median_s"] == 0.5
    assert stats["engine"]["blocks"] == 2
    with pytest.raises(ValueError, match="rounds"):
        interleave({"a": lambda r: None}, rounds=0)
