"""The engine on CUDA, unchanged (opt-in: pytest -m gpu on a machine with a GPU)."""

from __future__ import annotations

import pytest
import torch

from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.train import train

pytestmark = pytest.mark.gpu

BASE = [
    "model.arch=tiny", "model.num_classes=4", "data.dataset=clips", "data.num_workers=0",
    "data.synthetic_size=32", "solver.batch_per_process=4", "solver.effective_batch=8",
    "solver.base_lr=0.05", "solver.stepsize=5", "seed=2", "checkpoint_every=3",
    "test.val_list=clips", "test.interval=3",
]


def _final(run):
    return checkpoint.load(checkpoint.latest(run / "checkpoints"))["model"]


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.fail("the gpu tests need a CUDA device (run them with -m gpu on a GPU machine)")


def test_cuda_resume_gives_identical_weights(tmp_path):
    """Deterministic mode on CUDA: 6 + resumed 6 iterations == 12 straight (dropout 0.5)."""
    full = load_experiment(None, [*BASE, "device=cuda", "solver.max_iter=12", "model.dropout=0.5"])
    half = load_experiment(None, [*BASE, "device=cuda", "solver.max_iter=6", "model.dropout=0.5"])
    train(full, run_dir=tmp_path / "full")
    train(half, run_dir=tmp_path / "split")
    train(full, resume=True, run_dir=tmp_path / "split")
    a, b = _final(tmp_path / "full"), _final(tmp_path / "split")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    val = [(tmp_path / r / "val_metrics.csv").read_text().splitlines() for r in ("full", "split")]
    assert [v.split(",")[:5] for v in val[0]] == [v.split(",")[:5] for v in val[1]]
    assert len(val[0]) == 1 + 5  # before 0, 3, 6, 9 and after 12


def test_cuda_and_cpu_train_to_the_same_weights(tmp_path):
    """Same data, init and update on both devices (no dropout): float rounding apart."""
    runs = {}
    for device in ("cpu", "cuda"):
        exp = load_experiment(None, [*BASE, f"device={device}", "solver.max_iter=4",
                                     "model.dropout=0", "solver.clip_gradients=1.0"])
        train(exp, run_dir=tmp_path / device)
        runs[device] = _final(tmp_path / device)
    for key, value in runs["cpu"].items():
        err = (value - runs["cuda"][key]).abs().max().item()
        assert err < 1e-4, f"{key}: cpu vs cuda differ by {err:.3g}"
