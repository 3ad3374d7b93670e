"""`tsn test RUN_DIR --list LIST`: the 25 x 10 test of a trained run (tsn.evaluate).

Exit codes: 0 done, 2 bad input (missing run, list or checkpoint; a list entry the model cannot
test, found before the first forward pass; an output folder that cannot be written), 130
interrupted (the finished videos are kept in `<out>.partial.npz`; rerun to resume; tsn.cli).
"""

from __future__ import annotations

import argparse
import logging
import sys

from tsn.engine.choices import PRECISIONS
from tsn.metrics import mean_class_accuracy, video_top1


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
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32: IEEE float32 as the release (default); tf32 / bf16: faster "
                        "deviations, recorded in the score file")
    parser.add_argument("--save-every-s", type=float, default=60.0,
                        help="seconds between saves of the finished videos to <out>.partial.npz "
                        "(the resume point; default 60)")
    parser.add_argument("--restart", action="store_true",
                        help="ignore the scores of an interrupted run (<out>.partial.npz) "
                        "instead of resuming from them")


def run(args: argparse.Namespace) -> int:
    """Test a trained run; print mean class accuracy and top-1; write scores + confusion PNG."""
    from tsn import evaluate  # torch and OpenCV: only when a test runs

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        vs, out, _ = evaluate.test_run(
            args.run_dir, args.list, args.out, root=args.root, checkpoint_path=args.checkpoint,
            frames=args.frames, crops=args.crops, crop_agg=args.crop_agg, sampling=args.sampling,
            batch=args.batch, workers=args.workers, device=args.device,
            keep_full=args.keep_full, dataset=args.dataset, split=args.split,
            precision=args.precision, save_every_s=args.save_every_s, restart=args.restart)
    except (OSError, ValueError, RuntimeError) as err:  # FileNotFoundError, DataError, ...
        print(f"tsn test: error: {err}", file=sys.stderr)
        return 2
    if vs is None:  # a rank other than 0 of mpirun / torchrun: rank 0 reports
        return 0
    from tsn.per_class import describe_worst, per_class_path, per_class_rows
    from tsn.stats import scores_interval

    png = out.with_suffix(".confusion.png")
    ci = scores_interval(vs.scores, vs.labels)
    print(f"mean class accuracy {100 * mean_class_accuracy(vs.scores, vs.labels):.2f}% "
          f"(95% CI {100 * ci.low:.2f}-{100 * ci.high:.2f}, the test set's finite size only)  "
          f"video top-1 {100 * video_top1(vs.scores, vs.labels):.2f}%  "
          f"({len(vs.video_ids)} videos, {vs.protocol.label}); scores {out}, confusion {png}, "
          f"per class {per_class_path(out)}")
    print("five worst classes:")
    for line in describe_worst(per_class_rows(vs), 5):
        print(f"  {line}")
    return 0
