"""Optional TensorBoard scalars of a training run: `log.tensorboard = true` in the config.

The run folder's CSVs (metrics.csv, val_metrics.csv; tsn/engine/runlog.py) stay the source of
truth: every row written there is mirrored here as scalars, in `<run>/tensorboard/`, for people
who would rather watch curves (`tensorboard --logdir results/runs`):

  train/loss, train/lr, train/grad_norm, train/video_top1, train/videos_per_s   every iteration
  train/clipped (1 when clip_gradients scaled the update), train/clip_scale,
  train/clip_events (clipped iterations so far, the resumed ones included)
  val/loss, val/video_top1, val/mean_class_acc                                  every validation

TensorBoard is an optional extra (`pip install '.[tensorboard]'`): asking for it without the
package is one error at the start of training that says how to install it, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

INSTALL_HINT = ("log.tensorboard = true needs the tensorboard package: pip install "
                "'.[tensorboard]' (or pip install tensorboard), or set log.tensorboard = false")
FOLDER = "tensorboard"


class TensorBoardMissing(RuntimeError):
    """log.tensorboard is on but torch.utils.tensorboard cannot be imported."""


def step_scalars(row: dict) -> dict[str, float]:
    """The scalars of one metrics.csv row (runlog.COLUMNS), by TensorBoard tag."""
    return {"train/loss": float(row["loss"]), "train/lr": float(row["lr"]),
            "train/grad_norm": float(row["grad_norm"]),
            "train/video_top1": float(row["train_video_top1"]),
            "train/videos_per_s": float(row["videos_per_s"]),
            "train/clipped": float(row["clipped"]), "train/clip_scale": float(row["clip_scale"])}


def validation_scalars(row: dict) -> dict[str, float]:
    """The scalars of one val_metrics.csv row (runlog.VAL_COLUMNS), by TensorBoard tag."""
    return {"val/loss": float(row["loss"]), "val/video_top1": float(row["video_top1"]),
            "val/mean_class_acc": float(row["mean_class_acc"])}


def open_writer(log_dir: Path, purge_step: int | None = None):
    """A torch.utils.tensorboard SummaryWriter on `log_dir`; on resume `purge_step` drops the
    events of iterations that are redone. TensorBoardMissing says how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's module imports the tensorboard package
        raise TensorBoardMissing(f"{INSTALL_HINT} ({err})") from err
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class ScalarMirror:
    """Writes each CSV row it is given to a SummaryWriter-like `writer` (add_scalar, flush,
    close), at the row's iteration."""

    def __init__(self, writer, earlier_rows: Iterable[dict] = ()) -> None:
        self.writer = writer
        # clip events of the iterations before a resume, so the count continues
        self.clip_events = sum(int(r.get("clipped") or 0) for r in earlier_rows)

    def step(self, row: dict) -> None:
        """Mirror one training row."""
        it = int(row["iter"])
        for tag, value in step_scalars(row).items():
            self.writer.add_scalar(tag, value, it)
        self.clip_events += int(row["clipped"])
        self.writer.add_scalar("train/clip_events", self.clip_events, it)

    def validation(self, row: dict) -> None:
        """Mirror one validation row."""
        for tag, value in validation_scalars(row).items():
            self.writer.add_scalar(tag, value, int(row["iter"]))
        self.writer.flush()  # validations are rare and worth seeing at once

    def close(self) -> None:
        """Flush and close the writer."""
        self.writer.flush()
        self.writer.close()
