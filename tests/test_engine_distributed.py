"""Data-parallel training on CPU (gloo): 2 processes x iter_size 1 == 1 process x iter_size 2.

Why the comparison is of learnable parameters only: the unfrozen first BN keeps per-rank running
statistics (the Caffe fork has no SyncBN, spec 4.5), so rank 0's running mean/var saw one
batch per iteration where the single process saw two; the GRADIENTS are identical because each
sub-batch (or rank) normalises with its own batch statistics in both set-ups.
Why clipping is off: Caffe clips the summed gradient on one process but the rank-averaged one
on several (spec 4.6 steps 1-4), so with clipping active the two runs differ by design.
Why dropout is 0: masks come from per-rank random streams.
"""

from __future__ import annotations

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

from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.engine.train import build_model, train

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
base_lr = 0.05
lr_policy = "step"
stepsize = 2
max_iter = {max_iter}
batch_per_process = 4
effective_batch = 8
clip_gradients = 0.0
"""


def _config(tmp_path: Path, max_iter: int = 3, delay: float = 0.0) -> Path:
    path = tmp_path / f"dist_{max_iter}_{delay}.toml"
    path.write_text(CONFIG.format(max_iter=max_iter, delay=delay))
    return path


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
    """One process, iter_size 2 (derived from effective batch 8 / batch 4 / world 1)."""
    tmp = tmp_path_factory.mktemp("single")
    train(load_experiment(_config(tmp)), run_dir=tmp / "run")
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


def _assert_params_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) == 10  # conv1, bn1, conv2, bn2, fc: weight + bias
    torch.manual_seed(4)  # the runs' seed: rebuild the initial weights
    init = build_model(load_experiment(None, ["model.arch=tiny", "model.num_classes=4",
                                              "data.dataset=clips"]))[0].state_dict()
    assert not torch.equal(a["conv1.weight"], init["conv1.weight"]), "nothing was trained"
    for key in a:
        err = (a[key] - b[key]).abs().max().item()
        assert err <= 1e-6, f"{key}: 2 ranks vs iter_size 2 differ by {err:.3g}"


def test_mpirun_two_ranks_equal_one_process_with_iter_size_2(tmp_path, single):
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin (spec/environment.md 5)")
    run = tmp_path / "run"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
           sys.executable, "-m", "tsn.cli", "train", str(_config(tmp_path)), "--run-dir", str(run)]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    record = (run / "run.json").read_text()
    assert '"world_size": 2' in record and '"iter_size": 1' in record
    assert '"launcher": "mpirun"' in record
    _assert_params_equal(_params(run), _params(single))


@pytest.mark.slow  # the mpirun test shows the equality; the dead-rank test uses the torchrun path
def test_torchrun_two_ranks_equal_one_process_with_iter_size_2(tmp_path, single):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), "-m", "tsn.cli", "train", str(_config(tmp_path)),
           "--run-dir", str(run)]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"launcher": "torchrun"' in (run / "run.json").read_text()
    _assert_params_equal(_params(run), _params(single))


def test_a_dead_rank_makes_the_other_exit_with_an_error(tmp_path):
    run = tmp_path / "run"
    cfg = _config(tmp_path, max_iter=200, delay=0.02)
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
