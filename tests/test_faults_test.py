"""Fault suite: `tsn test` SIGKILLed mid-run, rerun: the scores equal an uninterrupted run's.

A tiny model is trained for one iteration on frame folders; `tsn test` (5 x 10 views per
video) is killed as soon as its partial score file holds some videos, killed again on the
rerun, and then run to the end. The final file must equal a run that was never interrupted,
and the videos scored before a kill must not be scored again (the partial file only grows).
Opt-in: `make test-faults` (marker `faults`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import train_tiny_on_frames

from tsn.scores import load_scores

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[1]
VIDEOS = 60


def make_run(tmp: Path) -> tuple[Path, Path]:
    """Frame folders, their list, and a one-iteration tiny run trained on them."""
    run, listing, _ = train_tiny_on_frames(tmp, VIDEOS, 8, (256, 340))
    return run, listing


def command(run: Path, listing: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tsn.cli", "test", str(run), "--list", str(listing),
            "--out", str(out), "--save-every-s", "0", "--device", "cpu", "--frames", "5"]


def scored(partial: Path) -> int:
    try:
        return len(load_scores(partial).video_ids)
    except Exception:  # not written yet (or being replaced right now: atomic, so rare)
        return 0


def test_killed_tsn_test_resumes_to_the_uninterrupted_scores(tmp_path):
    run, listing = make_run(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference.npz"
    subprocess.run(command(run, listing, reference), cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=900)
    out = tmp_path / "killed.npz"
    partial = out.with_name("killed.partial.npz")
    counts = []
    for target in (5, 25):  # kill once the partial file holds at least `target` videos
        proc = subprocess.Popen(command(run, listing, out), cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while scored(partial) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "tsn test finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        counts.append(scored(partial))
        assert not out.exists()
    assert counts[0] >= 5 and counts[1] >= max(25, counts[0])  # the rerun kept the first's
    final = subprocess.run(command(run, listing, out), cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    assert f"{counts[1]} of {VIDEOS} videos already scored" in final.stderr
    got, want = load_scores(out), load_scores(reference)
    assert got.video_ids == want.video_ids and np.array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert not partial.exists()
