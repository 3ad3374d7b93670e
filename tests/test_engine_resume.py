"""Checkpoints and --resume: a SIGKILLed run, resumed, ends with the uninterrupted run's weights.

CPU, deterministic mode (torch.use_deterministic_algorithms, 1 thread). The smoke model has
dropout 0.5 and a batch-statistics BN and the data crosses epoch boundaries, so model,
momentum, RNG and data-order state must all be restored for the weights to match exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tsn.cli import main as tsn_main
from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.train import NonFiniteLossError, ResumeError, train

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
name = "resume"
seed = 11
threads = 1
device = "cpu"
checkpoint_every = 2
keep_checkpoints = 10
display = 1

[model]
arch = "tiny"
num_classes = 4
dropout = 0.5

[data]
dataset = "clips"
synthetic_size = 32
num_workers = 0
synthetic_delay_s = {delay}

[test]
val_list = "clips"
interval = 4
batch_size = 8

[solver]
base_lr = 0.05
lr_policy = "step"
stepsize = 5
max_iter = {max_iter}
batch_per_process = 4
effective_batch = 8
clip_gradients = 2.0
"""


def _write_config(tmp_path: Path, max_iter: int = 12, delay: float = 0.0) -> Path:
    path = tmp_path / f"cfg_{max_iter}_{delay}.toml"
    path.write_text(CONFIG.format(max_iter=max_iter, delay=delay))
    return path


def _final(run: Path) -> dict:
    return checkpoint.load(checkpoint.latest(run / "checkpoints"))


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["optimizer"]["history"].items():
        assert torch.equal(value, b["optimizer"]["history"][key]), key
    assert a["data"] == b["data"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted 12-iteration run (in-process)."""
    tmp = tmp_path_factory.mktemp("reference")
    train(load_experiment(_write_config(tmp)), run_dir=tmp / "run")
    return tmp / "run"


def test_sigkill_then_resume_ends_with_identical_weights(tmp_path, reference):
    # simulated decode time makes an iteration ~0.2 s so the kill lands mid-run
    cfg = _write_config(tmp_path, delay=0.025)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tsn.cli", "train", str(cfg), "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    target = run / "checkpoints" / "iter_0000004.pt"
    deadline = time.monotonic() + 90
    while not target.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never wrote its iteration-4 checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()
    done = [it for it, _ in checkpoint.list_checkpoints(run / "checkpoints")]
    assert 12 not in done, "the run finished before it was killed: the test proved nothing"

    code = tsn_main(["train", str(cfg), "--run-dir", str(run), "--resume"])
    assert code == 0
    _assert_same_state(_final(run), _final(reference))
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 12  # redone iterations replaced, not duplicated
    want = (reference / "metrics.csv").read_text().splitlines()
    # every column but the two timings is identical to the uninterrupted run's
    assert [r.split(",")[:8] for r in rows] == [r.split(",")[:8] for r in want]
    # validation before iterations 0, 4, 8 and after 12, none twice, same numbers
    val = [r.split(",")[:5] for r in (run / "val_metrics.csv").read_text().splitlines()]
    val_want = (reference / "val_metrics.csv").read_text().splitlines()
    assert val == [r.split(",")[:5] for r in val_want]
    assert [r[0] for r in val[1:]] == ["0", "4", "8", "12"]
    assert (run / "curves.png").stat().st_size > 0


def test_resume_can_extend_max_iter_in_process(tmp_path, reference):
    run = tmp_path / "run"
    train(load_experiment(_write_config(tmp_path, max_iter=6)), run_dir=run)
    train(load_experiment(_write_config(tmp_path, max_iter=12)), resume=True, run_dir=run)
    _assert_same_state(_final(run), _final(reference))


def test_resume_refusals_are_clear(tmp_path, reference):
    cfg = load_experiment(_write_config(tmp_path, max_iter=12))
    with pytest.raises(ResumeError, match="already holds checkpoints.*--resume"):
        train(cfg, run_dir=reference)
    with pytest.raises(ResumeError, match="no checkpoint"):
        train(cfg, resume=True, run_dir=tmp_path / "empty")
    changed = load_experiment(_write_config(tmp_path), ["solver.base_lr=0.1"])
    with pytest.raises(ResumeError, match="solver.base_lr"):
        train(changed, resume=True, run_dir=reference)


def test_checkpoint_from_before_clip_mode_resumes_with_the_rule_it_trained_with(tmp_path):
    """Checkpoints written before solver.clip_mode existed ran Caffe's literal iter_size rule:
    resuming them under the new default would switch the clip mid-run, so it is refused with
    the override that continues them."""
    from tsn.config import to_dict
    from tsn.train import _check_resumable

    cfg = _write_config(tmp_path)
    saved = {"config": to_dict(load_experiment(cfg)), "rng": [None]}
    del saved["config"]["solver"]["clip_mode"]
    with pytest.raises(ResumeError, match="solver.clip_mode.*add solver.clip_mode="
                                          "caffe_iter_size"):
        _check_resumable(saved, load_experiment(cfg), 1, tmp_path / "iter_0000002.pt")
    _check_resumable(saved, load_experiment(cfg, ["solver.clip_mode=caffe_iter_size"]), 1,
                     tmp_path / "iter_0000002.pt")


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "iter_0000002.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="iter_0000002.pt: not a readable"):
        checkpoint.load(bad)


def test_atomic_save_leaves_no_partial_file(tmp_path):
    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    target = tmp_path / "iter_0000001.pt"
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.atomic_save({"x": Boom()}, target)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    cfg = _write_config(tmp_path)
    run = tmp_path / "run"
    # an absurd lr with clipping off blows the weights up within a few iterations
    args = ["solver.base_lr=1e30", "solver.clip_gradients=0", "checkpoint_every=1"]
    with pytest.raises(NonFiniteLossError, match="iteration [0-9]+: the loss is") as err:
        train(load_experiment(cfg, args), run_dir=run)
    saved = checkpoint.list_checkpoints(run / "checkpoints")
    assert saved, "no good checkpoint kept"
    last_it, last_path = saved[-1]
    assert str(last_path) in str(err.value)
    failed_at = int(str(err.value).split()[1].rstrip(":"))
    assert last_it == failed_at  # every completed iteration is saved; the failing one is not
    assert "the loss is" in (run / "train.log").read_text()
    assert (run / "curves.png").exists()  # the plot shows the blow-up
    # the CLI turns it into exit code 3 and one message
    code = tsn_main(["train", str(cfg), *args, "--run-dir", str(tmp_path / "cli")])
    assert code == 3
    assert "tsn train: stopped: iteration" in capsys.readouterr().err
