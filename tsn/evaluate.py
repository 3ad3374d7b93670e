"""`tsn test`: run a trained TSN over the 25 x 10 test protocol and write a score file.

Protocol ([TSN] tools/eval_net.py, spec section 5.1): per video 25 snippets at the eval_net
ticks, 10 crops each (4 corners + centre of 340x256, then mirrored), one forward per snippet
batch in TEST phase (BN uses stored statistics, dropout is identity); raw `fc-action` logits are
averaged over crops (mean, or max with crop_agg=max), then over frames, with no softmax. The
optional `segment_centre` sampling takes K frames at the segment centres instead (the
train_val TEST phase). The metric is mean class accuracy; overall top-1 is reported beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tsn.scores import Protocol, VideoScores, aggregate

log = logging.getLogger(__name__)


def snippet_forward(model: nn.Module):
    """A function (M, L*C, H, W) -> (M, classes) of per-snippet logits for `model`.

    TSN models expose `forward_snippets`. A model that only takes a K-segment blob and reads K
    from `model.num_segments` at forward time (the engine's tiny smoke model, whose consensus
    is a plain average) runs with num_segments = 1 for the call: each snippet is then its own
    "video" and the average over one segment is the snippet's logits.
    """
    if hasattr(model, "forward_snippets"):
        return model.forward_snippets
    k = int(getattr(model, "num_segments", 1))
    if k == 1:
        return model

    def one_segment(x: torch.Tensor) -> torch.Tensor:
        model.num_segments = 1
        try:
            return model(x)
        finally:
            model.num_segments = k

    return one_segment


@torch.no_grad()
def evaluate(model: nn.Module, dataset, video_ids: Sequence[str], device: torch.device,
             protocol: Protocol, batch_snippets: int = 50, num_workers: int = 0,
             keep_full: bool = False, progress: bool = True) -> VideoScores:
    """Per-video averaged raw logits of `model` over `dataset` (one item per video).

    `dataset[i]` is `(views (frames*crops, L*C, H, W), label)`, frame-major crop-minor, as
    tsn.data.dataset.TSNTestDataset returns it. Views are run `batch_snippets` at a time.
    """
    if len(video_ids) != len(dataset):
        raise ValueError(f"{len(video_ids)} video ids for a dataset of {len(dataset)} videos")
    frames, crops = protocol.num_frames, protocol.num_crops
    model.eval()  # TEST phase: stored BN statistics, no dropout
    forward = snippet_forward(model)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False,
                                         num_workers=num_workers)
    scores, labels, fulls = [], [], []
    for i, (views, label) in enumerate(tqdm(loader, total=len(dataset), desc="test",
                                            disable=not progress, unit="video")):
        if views.shape[0] != frames * crops:
            raise ValueError(f"video {video_ids[i]}: dataset gave {views.shape[0]} views, "
                             f"protocol {protocol.label} needs {frames * crops}")
        logits = torch.cat([forward(chunk.to(device, non_blocking=True)).float().cpu()
                            for chunk in views.split(batch_snippets)])
        full = logits.reshape(frames, crops, -1).numpy()  # frame-major, crop-minor
        scores.append(aggregate(full, protocol.crop_agg))
        labels.append(int(label))
        if keep_full:
            fulls.append(full)
    return VideoScores(tuple(video_ids), np.asarray(labels, dtype=np.int64),
                       np.stack(scores), protocol, np.stack(fulls) if keep_full else None)


def load_trained(run_dir: str | Path, checkpoint_path: str | Path | None, device: torch.device):
    """(model, experiment, checkpoint path) of a `tsn train` run folder, weights loaded."""
    from tsn.config import from_resolved
    from tsn.engine import checkpoint
    from tsn.engine.train import build_model

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json; pass the folder written by "
                                "`tsn train`")
    import json

    exp = from_resolved(json.loads(cfg_path.read_text()), str(cfg_path))
    ckpt = Path(checkpoint_path) if checkpoint_path else checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint; train first")
    # Every weight comes from the checkpoint: build without the ImageNet init, so testing does
    # not need (or read) the init weights file the run was trained from.
    bare = dataclasses.replace(exp, model=dataclasses.replace(exp.model, init="scratch",
                                                              init_weights=""))
    model, _ = build_model(bare)
    model.load_state_dict(checkpoint.load(ckpt)["model"])
    return model.to(device), exp, ckpt


def build_test_dataset(records, modality: str, protocol: Protocol,
                       new_length: int | None):
    """The tsn.data test dataset for `protocol` (25 eval_net ticks or K segment centres)."""
    from tsn.data.dataset import TSNTestDataset
    from tsn.data.sampling import val_offsets

    class SegmentCentreTestDataset(TSNTestDataset):
        """K snippets at the segment centres (train_val TEST phase offsets, spec 2.2)."""

        def ticks(self, index: int) -> list[int]:
            n = self.records[index].num_frames
            return [int(o) + 1 for o in val_offsets(n, self.num_frames, self.window)]

    kinds = {"eval_net": TSNTestDataset, "segment_centre": SegmentCentreTestDataset}
    if protocol.frame_sampling not in kinds:
        raise ValueError(f"frame sampling {protocol.frame_sampling!r}: use {sorted(kinds)}")
    return kinds[protocol.frame_sampling](records, modality, num_frames=protocol.num_frames,
                                          crops=protocol.num_crops,
                                          new_length=new_length or None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn test`."""
    parser.add_argument("run_dir", help="run folder written by `tsn train`")
    parser.add_argument("--list", required=True, help="test file list (path num_frames label)")
    parser.add_argument("--root", default=None, help="frame root prepended to list paths")
    parser.add_argument("--checkpoint", default=None, help="default: newest in run_dir")
    parser.add_argument("--out", default=None, help="score file (default run_dir/scores.npz)")
    parser.add_argument("--frames", type=int, default=25, help="snippets per video (25)")
    parser.add_argument("--crops", type=int, choices=(1, 10), default=10)
    parser.add_argument("--crop-agg", choices=("mean", "max"), default="mean")
    parser.add_argument("--sampling", choices=("eval_net", "segment_centre"), default="eval_net",
                        help="eval_net: 25 ticks (release); segment_centre: K segment centres")
    parser.add_argument("--batch", type=int, default=50, help="snippet views per forward")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--keep-full", action="store_true",
                        help="also save the (frames, crops, C) logits of every video")
    parser.add_argument("--dataset", default="", help="dataset name recorded in the file")
    parser.add_argument("--split", type=int, default=0, help="split recorded in the file")


def run(args: argparse.Namespace) -> int:
    """Test a trained run; print mean class accuracy and top-1; write scores + confusion PNG."""
    from tsn.config import to_dict
    from tsn.data.video_list import read_file_list
    from tsn.metrics import confusion_matrix, mean_class_accuracy, video_top1
    from tsn.report import git_commit, run_record, write_confusion_png
    from tsn.scores import save_scores

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    try:
        model, exp, ckpt = load_trained(args.run_dir, args.checkpoint, device)
        records = read_file_list(args.list, root=args.root)
        protocol = Protocol(modality=exp.model.modality, num_frames=args.frames,
                            num_crops=args.crops, crop_agg=args.crop_agg,
                            frame_sampling=args.sampling, weights=str(ckpt),
                            dataset=args.dataset or exp.data.dataset, split=args.split,
                            commit=git_commit(),
                            # the run record: training config, versions, hardware, seed
                            extra={"record": run_record(to_dict(exp), exp.seed),
                                   "list": str(args.list)})
        dataset = build_test_dataset(records, exp.model.modality, protocol,
                                     exp.model.new_length)
        ids = [Path(r.path).name for r in records]
        vs = evaluate(model, dataset, ids, device, protocol, args.batch, args.workers,
                      args.keep_full)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"tsn test: error: {err}", file=sys.stderr)
        return 2
    out = save_scores(args.out or Path(args.run_dir) / "scores.npz", vs)
    cm = confusion_matrix(vs.labels, vs.scores.argmax(1), vs.num_classes)
    png = write_confusion_png(out.with_suffix(".confusion.png"), cm,
                              f"{exp.model.modality} {protocol.label}")
    print(f"mean class accuracy {100 * mean_class_accuracy(vs.scores, vs.labels):.2f}%  "
          f"video top-1 {100 * video_top1(vs.scores, vs.labels):.2f}%  "
          f"({len(ids)} videos, {protocol.label}); scores {out}, confusion {png}")
    return 0
