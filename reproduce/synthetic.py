"""The synthetic dataset for `make demo` and the smoke runs: generate, then extract frames.

Generates the UCF101-format videos and split files (tsn.data.synth, what `tsn synth` runs) and
extracts dense_flow-layout frames and flow with `tsn extract` (the flow area's command-line
interface) once; a `READY` marker records the sizes, so a finished dataset is reused and an
interrupted one is regenerated.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from reproduce.profiles import Profile
from tsn import report
from tsn.cli import main as tsn
from tsn.data.synth import SynthConfig, generate

log = logging.getLogger(__name__)


def ensure_synthetic(base: Path, profile: Profile) -> Path:
    """Make `base/ucfTrainTestlist` and `base/frames` for the profile's sizes unless there."""
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
    generate(SynthConfig(str(base), train_per_class=want["train_per_class"],
                         test_per_class=want["test_per_class"], num_frames=want["frames"]))
    args = ["extract", "--src", str(base / "UCF-101"), "--out", str(base / "frames"),
            "--flow", profile.flow, "--workers", "2"]
    if tsn(args) != 0:
        raise RuntimeError(f"`tsn {' '.join(args)}` failed while building {base}")
    report.atomic_write_bytes(marker, json.dumps(want).encode())
    return base
