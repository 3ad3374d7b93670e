"""The synthetic dataset for `make demo` and the smoke runs: generate, then extract frames.

Calls `tsn synth` (UCF101-format videos + split files) and `tsn extract` (dense_flow layout
frames and flow) once; a `READY` marker records the sizes, so a finished dataset is reused and
an interrupted one is regenerated.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from reproduce.profiles import Profile
from tsn import report

log = logging.getLogger(__name__)


def ensure_synthetic(base: Path, profile: Profile) -> Path:
    """Make `base/ucfTrainTestlist` and `base/frames` for the profile's sizes unless there."""
    from tsn.cli import main as tsn

    want = {"train_per_class": profile.synth_train_per_class,
            "test_per_class": profile.synth_test_per_class, "frames": profile.synth_frames,
            "flow": profile.flow}
    marker = base / "READY"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        log.info("reusing synthetic dataset %s", base)
        return base
    if base.exists():
        log.info("regenerating %s (sizes differ or it was interrupted)", base)
        shutil.rmtree(base)
    steps = [
        ["synth", "--out", str(base), "--train-per-class", str(want["train_per_class"]),
         "--test-per-class", str(want["test_per_class"]), "--frames", str(want["frames"])],
        ["extract", "--src", str(base / "UCF-101"), "--out", str(base / "frames"),
         "--flow", profile.flow, "--workers", "2"],
    ]
    for args in steps:
        if tsn(args) != 0:
            raise RuntimeError(f"`tsn {' '.join(args)}` failed while building {base}")
    report.atomic_write_bytes(marker, json.dumps(want).encode())
    return base
