"""The run folder: resolved config, log file, metrics CSV and the loss/accuracy plot.

<run_root>/<name>/
  config.json      the fully resolved Experiment (tsn.config.to_dict), written once
  run.json         what was actually used: init weights, world size, iter_size, device, JPEG
                   decoder, and the git commit, versions, hardware, seed and date
  train.log        the log of rank 0
  metrics.csv      one row per iteration (see COLUMNS)
  val_metrics.csv  one row per validation pass (see VAL_COLUMNS), when test.val_list is set
  curves.png       loss and training video top-1 against the iteration
  checkpoints/     iter_<N>.pt (tsn.engine.checkpoint)
  tensorboard/     the CSVs' rows as TensorBoard scalars, with log.tensorboard = true
                   (tsn/engine/tensorboard.py; the CSVs stay the source of truth)
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from tsn.atomic import atomic_write_text
from tsn.engine import tensorboard

log = logging.getLogger(__name__)

COLUMNS = (
    "iter",  # 0-based iteration that this row's update completed
    "epoch",  # data epoch after the iteration
    "lr",  # Caffe rate of the iteration (before lr_mult)
    "loss",  # mean over sub-iterations and ranks (Caffe's displayed loss)
    "train_video_top1",  # top-1 of the iteration's training videos (after consensus, dropout on)
    "grad_norm",  # global L2 norm compared with clip_gradients (rank-averaged; see next)
    "grad_norm_of",  # "mean": of the iter_size-averaged gradient (clip_mode release);
    # "sum": of the iter_size sum (clip_mode caffe_iter_size). The same at iter_size 1.
    "clipped",  # 1 when clip_gradients scaled the gradient down
    "clip_scale",
    "seconds",  # wall time of the iteration
    "videos_per_s",  # effective batch / seconds
)
VAL_COLUMNS = (
    "iter",  # validation before this 0-based iteration (Caffe TestAll at iter % interval == 0)
    "loss",  # mean cross-entropy of the validation videos
    "video_top1",  # Caffe Accuracy layer: top-1 after consensus
    "mean_class_acc",  # the paper's metric, on this K-segment centre-crop protocol
    "videos",
    "seconds",
)


class RunFolder:
    """Paths of one run and the writers for its log, metrics and plot."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.record = self.path / "run.json"
        self.log = self.path / "train.log"
        self.metrics = self.path / "metrics.csv"
        self.val_metrics = self.path / "val_metrics.csv"
        self.plot = self.path / "curves.png"
        self.checkpoints = self.path / "checkpoints"
        self.tensorboard_dir = self.path / tensorboard.FOLDER
        self._handler: logging.Handler | None = None
        self._mirror: tensorboard.ScalarMirror | None = None

    def create(self) -> None:
        """Make the folders."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def attach_log(self) -> None:
        """Send the `tsn` and `prototxt_port` loggers to train.log too (appending on resume)."""
        self._handler = logging.FileHandler(self.log, encoding="utf-8")
        self._handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        for name in ("tsn", "prototxt_port"):
            logger = logging.getLogger(name)
            logger.addHandler(self._handler)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)

    def detach_log(self) -> None:
        """Close the log file handler."""
        if self._handler is not None:
            for name in ("tsn", "prototxt_port"):
                logging.getLogger(name).removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def write_json(self, path: Path, data: dict) -> None:
        """Atomic, pretty JSON."""
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def start_metrics(self, first_iter: int) -> None:
        """Create the CSVs, or on resume drop the rows of iterations that are redone."""
        for path, columns in ((self.metrics, COLUMNS), (self.val_metrics, VAL_COLUMNS)):
            rows = []
            if first_iter > 0 and path.exists():
                with open(path, newline="", encoding="utf-8") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["iter"]) < first_iter]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_text(path, buf.getvalue())

    def append_metrics(self, row: dict, path: Path | None = None) -> None:
        """Append one row (flushed at once so a killed run keeps its history); with TensorBoard
        attached, the row is mirrored there too."""
        path = path or self.metrics
        columns = VAL_COLUMNS if path == self.val_metrics else COLUMNS
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=columns).writerow(row)
        if self._mirror is not None:
            if path == self.val_metrics:
                self._mirror.validation(row)
            else:
                self._mirror.step(row)

    def attach_tensorboard(self, first_iter: int) -> None:
        """Mirror every row appended from now on as TensorBoard scalars (log.tensorboard);
        call after start_metrics. TensorBoardMissing when the package is not installed."""
        writer = tensorboard.open_writer(self.tensorboard_dir, first_iter or None)
        self._mirror = tensorboard.ScalarMirror(writer, self.read_metrics())

    def detach_tensorboard(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None

    def read_metrics(self, path: Path | None = None) -> list[dict]:
        """All rows of metrics.csv (or another of the run's CSVs) as dicts of strings."""
        path = path or self.metrics
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def write_plot(self) -> Path | None:
        """Loss and training video top-1 against the iteration, saved as curves.png."""
        rows = self.read_metrics()
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")  # no display on training machines
        import matplotlib.pyplot as plt

        it = [int(r["iter"]) for r in rows]
        fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        ax_loss.plot(it, [float(r["loss"]) for r in rows], lw=0.8)
        ax_loss.set_ylabel("training loss")
        ax_loss.set_yscale("log")
        ax_acc.plot(it, [float(r["train_video_top1"]) for r in rows], lw=0.8, color="tab:green",
                    label="training batches")
        val = self.read_metrics(self.val_metrics)
        if val:
            v_it = [int(r["iter"]) for r in val]
            ax_loss.plot(v_it, [float(r["loss"]) for r in val], "o-", ms=3, color="tab:red",
                         label="validation")
            ax_loss.legend()
            ax_acc.plot(v_it, [float(r["video_top1"]) for r in val], "o-", ms=3,
                        color="tab:red", label="validation")
            ax_acc.legend()
        ax_acc.set_ylabel("training video top-1")
        ax_acc.set_xlabel("iteration")
        fig.suptitle(self.path.name)
        fig.tight_layout()
        tmp = self.plot.with_name(".curves.tmp.png")
        try:
            fig.savefig(tmp, dpi=100)
            tmp.replace(self.plot)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written png
            raise
        finally:
            plt.close(fig)
        return self.plot
