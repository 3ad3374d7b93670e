"""Interleaved timing shared by the benchmarks: the sides of a comparison take turns.

Timing one side after the other lets a change in machine load (another job starting on a
shared 2-core machine) fall on one side only: tsn.engine.bench, which did that, gave ratios of
1.34 and then 0.79 on two consecutive runs. Here every round runs one block of every side, in
an order rotated by one each round (A, B / B, A / A, B ...), so a load change hits all sides
alike, and every block records the load average before and after it, so a reader can see the
load the numbers were taken under.

    blocks = interleave({"engine": run_engine_block, "bare": run_bare_block}, rounds=5)
    stats = summarise(blocks)  # per side: median / min / max seconds per unit

A side is a function of the round index that runs one block. It returns the seconds it wants
counted (e.g. the engine's own per-iteration timings, leaving set-up out), or None to have the
block's wall time counted, or a dict of its own fields for the block record (its "seconds", if
there, counted as above). `units` is how many items (steps, samples, iterations) a block does.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping

Side = Callable[[int], "float | dict | None"]


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def interleave(sides: Mapping[str, Side], rounds: int, units: Mapping[str, int] | int = 1,
               warmup: bool = True, budget_s: float | None = None,
               on_block: Callable[[dict], None] | None = None) -> list[dict]:
    """Run `rounds` rounds of one block per side, rotating the order; one record per block.

    With `warmup`, every side first runs one untimed block (allocators, caches, kernel choice).
    With `budget_s`, no new round starts once that many seconds have passed (the first always
    runs). `on_block` sees each record as it is made (progress lines).
    Record: round, side, position in the round, units, seconds, seconds_per_unit, load before
    and after (1/5/15 min), and the fields a side returned.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(sides)
    count = {n: units if isinstance(units, int) else units[n] for n in names}
    if warmup:
        for name in names:
            sides[name](-1)
    blocks, started = [], time.perf_counter()
    for r in range(rounds):
        if r and budget_s is not None and time.perf_counter() - started > budget_s:
            break
        order = names[r % len(names):] + names[:r % len(names)]
        for position, name in enumerate(order):
            before = load_average()
            t0 = time.perf_counter()
            reported = sides[name](r)
            wall = time.perf_counter() - t0
            fields = dict(reported) if isinstance(reported, Mapping) else {}
            own = fields.pop("seconds", None) if fields else reported
            seconds = wall if own is None else float(own)
            blocks.append({"round": r, "side": name, "position": position, "units": count[name],
                           "seconds": seconds, "seconds_per_unit": seconds / count[name],
                           "load_before": before, "load_after": load_average(), **fields})
            if on_block is not None:
                on_block(blocks[-1])
    return blocks


def summarise(blocks: list[dict]) -> dict[str, dict]:
    """Per side: median, min and max seconds per unit over its blocks, and the block count."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(b["side"] for b in blocks):
        per_unit = [b["seconds_per_unit"] for b in blocks if b["side"] == name]
        out[name] = {"median_s": statistics.median(per_unit), "min_s": min(per_unit),
                     "max_s": max(per_unit), "blocks": len(per_unit)}
    return out
