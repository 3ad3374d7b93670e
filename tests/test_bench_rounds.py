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


def test_a_side_may_return_its_own_fields_and_a_budget_stops_new_rounds():
    import time

    seen = []

    def slow(r):
        time.sleep(0.05)
        return {"seconds": 0.5, "pairs": 4}

    blocks = interleave({"a": slow, "b": lambda r: {"pairs": 2}}, rounds=5, units=2,
                        warmup=False, budget_s=0.01, on_block=seen.append)
    assert [b["round"] for b in blocks] == [0, 0]  # the first round always runs, no second
    assert blocks[0]["seconds"] == 0.5 and blocks[0]["pairs"] == 4  # own seconds, own fields
    assert 0 < blocks[1]["seconds"] < 0.05 and blocks[1]["pairs"] == 2  # wall time counted
    assert seen == blocks
