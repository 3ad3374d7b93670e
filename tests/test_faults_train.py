"""Fault suite: training SIGKILLed at seeded random points, resumed each time, ends bit-equal.

One run is killed 5 times at random iterations (plus a random sub-iteration delay, so some
kills land inside a checkpoint write) and resumed with --resume after each kill; the final
model, momentum history and data position must equal an uninterrupted run's exactly.
Opt-in: `make test-faults` (marker `faults`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.train import train

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
MAX_ITER = 20
KILLS = 5

CONFIG = """\
name = "faults"
seed = 23
threads = 1
device = "cpu"
checkpoint_every = 2
keep_checkpoints = 3
display = 1

[model]
arch = "tiny"
num_classes = 4
dropout = 0.5

[data]
dataset = "clips"
synthetic_size = 24
num_workers = 0
synthetic_delay_s = {delay}

[solver]
base_lr = 0.05
lr_policy = "step"
stepsize = 7
max_iter = {max_iter}
batch_per_process = 4
effective_batch = 8
clip_gradients = 2.0
"""


def _config(tmp: Path, delay: float) -> Path:
    path = tmp / f"cfg_{delay}.toml"
    path.write_text(CONFIG.format(max_iter=MAX_ITER, delay=delay))
    return path


def _rows(run: Path) -> int:
    path = run / "metrics.csv"
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


def _last_ckpt(run: Path) -> int:
    done = checkpoint.list_checkpoints(run / "checkpoints")
    return done[-1][0] if done else 0


def test_five_random_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path):
    ref_dir = tmp_path / "reference"
    train(load_experiment(_config(tmp_path, 0.0)), run_dir=ref_dir)
    want = checkpoint.load(checkpoint.latest(ref_dir / "checkpoints"))

    rng = random.Random(20261127)
    cfg = _config(tmp_path, 0.03)  # ~0.2 s per iteration: kills land mid-run
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = []
    for attempt in range(KILLS + 1):
        cmd = [sys.executable, "-m", "tsn.cli", "train", str(cfg), "--run-dir", str(run)]
        if checkpoint.list_checkpoints(run / "checkpoints"):
            cmd.append("--resume")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if attempt == KILLS:  # the last one runs to the end
            _out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            break
        start = _last_ckpt(run)
        target = min(start + rng.randint(1, 4), MAX_ITER - 1)
        extra = rng.uniform(0.0, 0.25)
        deadline = time.monotonic() + 120
        # rows from before the resumed checkpoint are still there: wait for *new* ones
        while _rows(run) < target or (attempt and _rows(run) <= start):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.01)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        proc.stderr.close()
        assert _last_ckpt(run) < MAX_ITER, "the run finished before the kill: nothing tested"
        # a killed run never leaves a torn checkpoint: every listed one loads
        for _it, path in checkpoint.list_checkpoints(run / "checkpoints"):
            checkpoint.load(path)
        kills.append((target, round(extra, 3), _last_ckpt(run)))
    assert len(kills) == KILLS
    got = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert got["iteration"] == want["iteration"] == MAX_ITER
    for key, value in want["model"].items():
        assert torch.equal(value, got["model"][key]), key
    for key, value in want["optimizer"]["history"].items():
        assert torch.equal(value, got["optimizer"]["history"][key]), key
    assert got["data"] == want["data"]
    assert _rows(run) == MAX_ITER  # redone iterations replaced, not duplicated
    # leftover temporary files from kills inside a checkpoint write are not checkpoints
    print("kills (target iteration, extra s, last checkpoint):", kills)
