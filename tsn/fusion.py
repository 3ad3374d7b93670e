"""Late fusion of saved score files: weighted sum of raw averaged logits (eval_scores.py,
docs/caffe_release.md#fusion).

[TSN] tools/eval_scores.py adds the per-video averaged logits of each stream *before* any
softmax, with per-file weights; the release README uses RGB : flow = 1 : 1.5, and the issue
asks for 1 : 1 : 0.5 when warped flow is the third stream. Accuracy is the mean class accuracy
against the labels of the first file. Files whose videos or labels do not line up are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

import numpy as np

from tsn.metrics import mean_class_accuracy, video_top1
from tsn.scores import Protocol, ScoreFileError, VideoScores, load_scores, save_scores

log = logging.getLogger(__name__)

# Default weights by number of streams ([TSN] README: rgb 1, flow 1.5; issue #5: 1:1:0.5).
DEFAULT_WEIGHTS: dict[int, tuple[float, ...]] = {2: (1.0, 1.5), 3: (1.0, 1.0, 0.5)}


def default_weights(num_files: int) -> tuple[float, ...]:
    """1 : 1.5 for two streams (RGB, flow), 1 : 1 : 0.5 for three (+ warped flow), else 1 each."""
    return DEFAULT_WEIGHTS.get(num_files, (1.0,) * num_files)


def check_aligned(runs: Sequence[VideoScores], names: Sequence[str]) -> None:
    """Raise ScoreFileError naming both files and the first mismatch if runs do not line up."""
    ref, ref_name = runs[0], names[0]
    for vs, name in zip(runs[1:], names[1:]):
        where = f"{ref_name} vs {name}"
        if len(vs.video_ids) != len(ref.video_ids):
            raise ScoreFileError(f"{where}: {len(ref.video_ids)} videos vs {len(vs.video_ids)}; "
                                 "score files must come from the same test list")
        for i, (a, b) in enumerate(zip(ref.video_ids, vs.video_ids)):
            if a != b:
                raise ScoreFileError(f"{where}: video #{i} is {a!r} vs {b!r}; score files must "
                                     "list the same videos in the same order")
        bad = np.flatnonzero(np.asarray(ref.labels) != np.asarray(vs.labels))
        if bad.size:
            i = int(bad[0])
            raise ScoreFileError(f"{where}: label of video #{i} ({ref.video_ids[i]!r}) is "
                                 f"{ref.labels[i]} vs {vs.labels[i]}; the class lists differ")
        if vs.num_classes != ref.num_classes:
            raise ScoreFileError(f"{where}: {ref.num_classes} vs {vs.num_classes} classes")


def fuse(runs: Sequence[VideoScores], weights: Sequence[float] | None = None,
         names: Sequence[str] | None = None) -> VideoScores:
    """Weighted sum of the runs' averaged raw logits (no softmax); labels of the first run."""
    if not runs:
        raise ValueError("fuse needs at least one score file")
    names = list(names) if names else [f"run{i}" for i in range(len(runs))]
    weights = tuple(float(w) for w in (weights if weights is not None
                                       else default_weights(len(runs))))
    if len(weights) != len(runs):
        raise ValueError(f"{len(runs)} score files but {len(weights)} weights")
    check_aligned(runs, names)
    fused = sum(w * np.asarray(vs.scores, dtype=np.float64) for w, vs in zip(weights, runs))
    first = runs[0].protocol
    protocol = dataclasses.replace(
        first, modality="+".join(vs.protocol.modality for vs in runs),
        weights=" + ".join(f"{w:g}*{n}" for w, n in zip(weights, names)),
        extra={"fused": [{"file": n, "weight": w, "protocol": dataclasses.asdict(vs.protocol)}
                         for n, w, vs in zip(names, weights, runs)]})
    return VideoScores(runs[0].video_ids, np.asarray(runs[0].labels), fused, protocol)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`tsn fuse S1.npz S2.npz [...] [--weights w1 w2 ...] [--out fused.npz]`."""
    parser.add_argument("score_files", nargs="+", help="score files written by `tsn test`")
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="one weight per file (default 1 1.5 for two files, "
                             "1 1 0.5 for three, else 1 each)")
    parser.add_argument("--out", default=None, help="write the fused scores to this .npz")


def run(args: argparse.Namespace) -> int:
    """Fuse the files, print mean class accuracy and top-1 of each input and of the fusion."""
    try:
        runs = [load_scores(p) for p in args.score_files]
        fused = fuse(runs, args.weights, names=args.score_files)
    except (ScoreFileError, ValueError) as exc:
        print(f"tsn fuse: error: {exc}", file=sys.stderr)
        return 2
    weights = args.weights or default_weights(len(runs))
    for name, w, vs in zip(args.score_files, weights, runs):
        print(f"{name}: weight {w:g}  mean class accuracy "
              f"{100 * mean_class_accuracy(vs.scores, vs.labels):.2f}%  "
              f"top-1 {100 * video_top1(vs.scores, vs.labels):.2f}%  ({vs.protocol.label})")
    print(f"fused: mean class accuracy {100 * mean_class_accuracy(fused.scores, fused.labels):.2f}%"
          f"  top-1 {100 * video_top1(fused.scores, fused.labels):.2f}%")
    if args.out:
        try:
            log.info("fused scores written to %s", save_scores(args.out, fused))
        except OSError as exc:  # disk full / read-only: save_scores left no partial file
            print(f"tsn fuse: error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
    return 0


__all__ = ["DEFAULT_WEIGHTS", "Protocol", "check_aligned", "default_weights", "fuse"]
