"""Fault suite: `tsn extract` SIGKILLed mid-video at seeded random points, then rerun.

After each kill: nothing half-written counts as finished (a finished folder holds the full
frame set), the rerun skips the finished videos without touching them (same inode and
mtime), and the final output is byte-identical to an uninterrupted extraction.
The whole process group is killed (the spawn pool's workers too), as a lost machine would be.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
VIDEOS, FRAMES = 8, 24


def _make_videos(src: Path) -> None:
    rng = np.random.default_rng(5)
    for v in range(VIDEOS):
        cls = f"Class{v % 2}"
        (src / cls).mkdir(parents=True, exist_ok=True)
        path = src / cls / f"v_{cls}_g{v:02d}_c01.avi"
        base = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), np.uint8), (9, 9), 0)
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
        for t in range(FRAMES):
            vw.write(np.ascontiguousarray(base[20:260, 2 * t:2 * t + 320]))
        vw.release()


def _cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tsn.cli", "extract", "--src", str(src), "--out", str(out),
            "--flow", "dis", "--width", "0", "--workers", "1"]


def _finished(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.endswith(".partial")) \
        if out.is_dir() else []


def _snapshot(dirs: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(f): (f.stat().st_ino, f.stat().st_mtime_ns) for d in dirs for f in d.iterdir()}


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jpg"))}


def test_sigkill_mid_video_then_rerun(tmp_path):
    src = tmp_path / "src"
    _make_videos(src)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    done = subprocess.run(_cmd(src, ref), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    want = _tree(ref)
    assert len(want) == VIDEOS * (FRAMES - 1) * 3

    rng = random.Random(1127)
    out = tmp_path / "out"
    kills = 0
    for _ in range(3):
        before = _finished(out)
        if len(before) >= VIDEOS - 1:
            break
        snap = _snapshot(before)
        goal = min(len(before) + rng.randint(0, 2), VIDEOS - 1)
        proc = subprocess.Popen(_cmd(src, out), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        # wait until `goal` videos are done and the next one is half-written (mid-video)
        while not (len(_finished(out)) >= goal and list(out.glob("*.partial/img_00003.jpg"))):
            assert proc.poll() is None, "extraction ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        finished = _finished(out)
        assert len(finished) < VIDEOS, "everything finished before the kill: nothing tested"
        for d in finished:  # a folder without .partial is complete
            assert len(list(d.iterdir())) == (FRAMES - 1) * 3, d
        assert _snapshot(before) == snap, "a finished video was redone"
    assert kills >= 2
    before = _finished(out)
    snap = _snapshot(before)
    done = subprocess.run(_cmd(src, out), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipped {len(before)} (already done)" in done.stdout
    assert {k: v for k, v in _snapshot(before).items() if k in snap} == snap
    assert not list(out.glob("*.partial"))
    assert _tree(out) == want
