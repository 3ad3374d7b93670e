"""Shared test helper: random frame folders, their list and a one-iteration tiny run on them.

Not a test module (no `test_` prefix); test files import it by name, as pytest puts tests/ on
sys.path (rootdir-less test files, the default import mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def train_tiny_on_frames(tmp: Path, videos: int, frames: int,
                         size: tuple[int, int]) -> tuple[Path, Path, list[str]]:
    """Write `videos` folders of `frames` random JPEGs of `size` (h, w) under tmp/frames, their
    list (labels alternate 0/1) at tmp/test.txt, and train a 2-class tiny run for one iteration
    at tmp/run. Returns (run folder, list file, the list's lines)."""
    import cv2

    from tsn.cli import main as tsn_main

    rng = np.random.default_rng(0)
    lines = []
    for v in range(videos):
        folder = tmp / "frames" / f"v_{v:03d}"
        folder.mkdir(parents=True)
        for t in range(1, frames + 1):
            cv2.imwrite(str(folder / f"img_{t:05d}.jpg"),
                        rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        lines.append(f"{folder} {frames} {v % 2}")
    listing = tmp / "test.txt"
    listing.write_text("\n".join(lines) + "\n")
    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps({"name": "t", "model": {"arch": "tiny", "num_classes": 2},
                               "data": {"dataset": "synth", "num_workers": 0,
                                        "train_list": str(listing)},
                               "solver": {"preset": "custom", "max_iter": 1,
                                          "batch_per_process": 2, "effective_batch": 2}}))
    run = tmp / "run"
    assert tsn_main(["train", str(cfg), "--run-dir", str(run)]) == 0
    return run, listing, lines
