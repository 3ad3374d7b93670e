"""Data-parallel training on CPU (gloo): every split of a batch of 16 gives the same weights.

1 process x iter_size 4 == `mpirun -np 2` x iter_size 2 == `mpirun -np 4` x iter_size 1 within
1e-6 after 4 iterations, with gradient clipping active at EVERY iteration (metrics.csv says
clipped=1 on each row, so the test fails if clipping silently stops happening). That holds
because solver.clip_mode "release" (the default) compares the norm of the gradient averaged over
ranks and iter_size with clip_gradients, as the release's 4 GPUs x iter_size 1 did. Caffe's
literal rule (clip_mode "caffe_iter_size": clip the iter_size SUM, docs/engine.md "Gradient
clipping and iter_size") gives another result at iter_size > 1, which is checked too.

Why the comparison is of learnable parameters only: the unfrozen first BN keeps per-rank running
statistics (the Caffe fork has no SyncBN, docs/caffe_release.md#mpi), so rank 0's running mean/var
saw fewer batches per iteration than the single process; the GRADIENTS are identical because each
sub-batch (or rank) normalises with its own batch statistics in every set-up. Why dropout is 0:
masks come from per-rank random streams.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tsn.build import build_model
from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.train import train

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
name = "dist"
seed = 4
threads = 1
device = "cpu"
checkpoint_every = 100
dist_timeout_s = 20.0

[model]
arch = "tiny"
num_classes = 4
dropout = 0.0

[data]
dataset = "clips"
synthetic_size = 32
num_workers = 0
synthetic_delay_s = {delay}

[solver]
base_lr = 0.1
lr_policy = "step"
stepsize = 3
max_iter = {max_iter}
batch_per_process = 4
effective_batch = {batch}
clip_gradients = {clip}
clip_mode = "{clip_mode}"
"""
# The averaged gradient's norm stays within 0.28-0.55 on this problem: 0.1 clips every iteration.
CLIP = 0.1
BATCH = 16  # 1 x iter_size 4, 2 ranks x iter_size 2, 4 ranks x iter_size 1


def _config(tmp_path: Path, max_iter: int = 4, delay: float = 0.0, batch: int = BATCH,
            clip: float = CLIP, clip_mode: str = "release") -> Path:
    path = tmp_path / f"dist_{max_iter}_{delay}_{batch}_{clip}_{clip_mode}.toml"
    path.write_text(CONFIG.format(max_iter=max_iter, delay=delay, batch=batch, clip=clip,
                                  clip_mode=clip_mode))
    return path


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_clipped_every_iteration(run: Path, norm_of: str = "mean") -> None:
    rows = _metrics(run)
    assert [int(r["iter"]) for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert r["clipped"] == "1", f"iteration {r['iter']} was not clipped: {r}"
        assert r["grad_norm_of"] == norm_of and float(r["clip_scale"]) < 1.0
        assert float(r["grad_norm"]) > CLIP


def _params(run: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    return {k: v for k, v in state["model"].items() if "running" not in k}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMIX_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """One process, iter_size 4 (effective batch 16 / batch 4 / world 1), clipped every time."""
    tmp = tmp_path_factory.mktemp("single")
    train(load_experiment(_config(tmp)), run_dir=tmp / "run")
    _assert_clipped_every_iteration(tmp / "run")
    return tmp / "run"


def _torchrun_style(cfg: Path, run: Path, world: int = 2) -> list[subprocess.Popen]:
    """Start `world` ranks with torchrun's environment variables (RANK, WORLD_SIZE, ...)."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {**_clean_env(), "RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = [sys.executable, "-m", "tsn.cli", "train", str(cfg), "--run-dir", str(run)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def _max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over the learnable tensors of two runs."""
    assert a.keys() == b.keys() and len(a) == 10  # conv1, bn1, conv2, bn2, fc: weight + bias
    return max((a[key] - b[key]).abs().max().item() for key in a)


def _assert_params_equal(a: dict, b: dict, what: str = "") -> None:
    assert a.keys() == b.keys() and len(a) == 10  # conv1, bn1, conv2, bn2, fc: weight + bias
    torch.manual_seed(4)  # the runs' seed: rebuild the initial weights
    init = build_model(load_experiment(None, ["model.arch=tiny", "model.num_classes=4",
                                              "data.dataset=clips"]))[0].state_dict()
    w = "backbone.conv1.conv.weight"
    assert not torch.equal(a[w], init[w]), "nothing was trained"
    for key in a:
        err = (a[key] - b[key]).abs().max().item()
        assert err <= 1e-6, f"{key}: {what} vs 1 process x iter_size 4 differ by {err:.3g}"


@pytest.mark.parametrize("ranks", [2, 4])
def test_mpirun_ranks_equal_one_process_with_iter_size_4_with_clipping(tmp_path, single, ranks):
    """2 ranks x iter_size 2 and 4 ranks x iter_size 1 (the release's split) == 1 x 4."""
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin")
    run = tmp_path / "run"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks),
           sys.executable, "-m", "tsn.cli", "train", str(_config(tmp_path)), "--run-dir", str(run)]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["world_size"] == ranks and record["iter_size"] == BATCH // 4 // ranks
    assert record["launcher"] == "mpirun" and record["clip_mode"] == "release"
    _assert_clipped_every_iteration(run)
    # the compared norm is the same quantity in every split: the averaged gradient's
    first = [float(r["grad_norm"]) for r in _metrics(run)]
    assert first == pytest.approx([float(r["grad_norm"]) for r in _metrics(single)], rel=1e-5)
    _assert_params_equal(_params(run), _params(single), f"{ranks} ranks")


def test_caffe_iter_size_clip_mode_clips_the_sum_and_changes_the_result(tmp_path, single):
    """The switch is real: at iter_size 4 Caffe's literal rule compares a norm 4x larger (the
    iter_size sum) with the clip, so it clips harder and ends elsewhere."""
    run = tmp_path / "run"
    train(load_experiment(_config(tmp_path, clip_mode="caffe_iter_size")), run_dir=run)
    _assert_clipped_every_iteration(run, norm_of="sum")
    literal, release = _metrics(run)[0], _metrics(single)[0]  # same weights before iteration 0
    assert float(literal["grad_norm"]) == pytest.approx(4 * float(release["grad_norm"]), rel=1e-6)
    assert float(literal["clip_scale"]) == pytest.approx(float(release["clip_scale"]) / 4,
                                                         rel=1e-6)
    assert _max_diff(_params(run), _params(single)) > 1e-3


@pytest.mark.slow  # the mpirun test shows the equality; the dead-rank test uses the torchrun path
def test_torchrun_two_ranks_equal_one_process_with_iter_size_4(tmp_path, single):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), "-m", "tsn.cli", "train", str(_config(tmp_path)),
           "--run-dir", str(run)]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"launcher": "torchrun"' in (run / "run.json").read_text()
    _assert_clipped_every_iteration(run)
    _assert_params_equal(_params(run), _params(single), "torchrun, 2 ranks")


def test_a_dead_rank_makes_the_other_exit_with_an_error(tmp_path):
    run = tmp_path / "run"
    cfg = _config(tmp_path, max_iter=200, delay=0.02, batch=8)
    procs = _torchrun_style(cfg, run)
    metrics = run / "metrics.csv"
    deadline = time.monotonic() + 90
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
        assert all(p.poll() is None for p in procs), procs[0].stderr.read()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    _out, err = procs[0].communicate(timeout=60)  # dist_timeout_s is 20: never a hang
    assert time.monotonic() - killed < 45
    assert procs[0].returncode == 4, err[-2000:]
    assert "another rank probably died" in err
    procs[1].communicate()
