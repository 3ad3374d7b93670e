"""log.tensorboard: the CSV rows mirrored as TensorBoard scalars (tsn/engine/tensorboard.py).

The scalars are checked with a fake writer, so the default suite covers the code path without
the optional package; one test uses the real writer when `tensorboard` is installed."""

from __future__ import annotations

import csv
import sys

import pytest

from tsn.config import ConfigError, load_experiment
from tsn.engine import tensorboard
from tsn.train import train


class FakeWriter:
    """Records add_scalar calls like torch.utils.tensorboard.SummaryWriter."""

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: dict[str, dict[int, float]] = {}
        self.closed = False

    def add_scalar(self, tag, value, step):
        self.scalars.setdefault(tag, {})[step] = value

    def flush(self):
        pass

    def close(self):
        self.closed = True


def _exp(tmp_path, *extra):
    return load_experiment(None, [
        "model.arch=tiny", "model.num_classes=3", "data.dataset=clips", "data.num_workers=0",
        "data.synthetic_size=12", "solver.preset=custom", "solver.base_lr=0.01",
        "solver.lr_policy=fixed", "solver.max_iter=4", "solver.batch_per_process=3",
        "solver.effective_batch=3", "checkpoint_every=2", f"run_root={tmp_path}", "device=cpu",
        "test.val_list=clips", "test.interval=2", "solver.clip_gradients=1e-6",
        "log.tensorboard=true", *extra])


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_scalars_mirror_the_csv_rows_and_survive_a_resume(tmp_path, monkeypatch):
    writers = []

    def fake(log_dir, purge_step=None):
        writers.append(FakeWriter(log_dir, purge_step))
        return writers[-1]

    monkeypatch.setattr(tensorboard, "open_writer", fake)
    run = tmp_path / "tsn"
    train(_exp(tmp_path, "solver.max_iter=2"))
    train(_exp(tmp_path), resume=True)  # 2 more iterations
    first, second = writers
    assert first.log_dir == run / "tensorboard" and first.purge_step is None and first.closed
    assert second.purge_step == 2 and second.closed  # events of redone iterations dropped
    rows = _rows(run / "metrics.csv")
    merged = {tag: {**first.scalars.get(tag, {}), **second.scalars.get(tag, {})}
              for tag in first.scalars.keys() | second.scalars.keys()}
    for r in rows:
        it = int(r["iter"])
        assert merged["train/loss"][it] == float(r["loss"])
        assert merged["train/lr"][it] == float(r["lr"]) == 0.01
        assert merged["train/grad_norm"][it] == float(r["grad_norm"])
        assert merged["train/clipped"][it] == 1.0 == float(r["clipped"])  # clip at 1e-6
    # clip events count on across the resume: 1, 2 | 3, 4
    assert merged["train/clip_events"] == {0: 1, 1: 2, 2: 3, 3: 4}
    val = _rows(run / "val_metrics.csv")
    assert {int(r["iter"]) for r in val} == {0, 2, 4}
    for r in val:
        assert merged["val/mean_class_acc"][int(r["iter"])] == float(r["mean_class_acc"])
    # switching it off on resume is allowed: logging never changes the training
    train(_exp(tmp_path, "solver.max_iter=6", "log.tensorboard=false"), resume=True)
    assert len(writers) == 2


def test_missing_package_is_one_error_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(tensorboard.TensorBoardMissing, match=r"pip install '\.\[tensorboard\]'"):
        train(_exp(tmp_path))
    assert len(_rows(tmp_path / "tsn" / "metrics.csv")) == 0  # not one iteration ran


def test_config_key_is_checked():
    assert load_experiment(None, ["log.tensorboard=true"]).log.tensorboard is True
    assert load_experiment(None, []).log.tensorboard is False
    with pytest.raises(ConfigError, match="log.tensorboard must be bool"):
        load_experiment(None, ["log.tensorboard=maybe"])


@pytest.mark.extras
def test_real_writer(tmp_path):
    """Opt-in (`make test-extras` installs the tensorboard extra first): the real writer
    leaves an event file; the default suite checks every scalar with a fake writer."""
    train(_exp(tmp_path, "solver.max_iter=2"))
    assert any((tmp_path / "tsn" / "tensorboard").glob("events.out.tfevents.*"))
