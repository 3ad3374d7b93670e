"""`tsn predict VIDEO [VIDEO ...] --rgb SOURCE [--flow SOURCE]`: top-k classes of your own
videos (tsn.prediction; the Python API is `tsn.predict(video, rgb=..., flow=...)`).

Exit codes: 0 every video predicted; 1 some videos could not be read (one line each, the others
are predicted); 2 bad input before any video (a missing or unusable source, weights of the
wrong modality, class names that do not fit the model, a JSON file that cannot be written).
"""

from __future__ import annotations

import argparse
import os
import sys

from tsn.flow.choices import METHODS

DATASETS = ("ucf101", "hmdb51", "synth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn predict`."""
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    parser.add_argument("--rgb", default=None, metavar="SOURCE",
                        help="RGB stream: a `tsn train` run folder or converted BN-Inception "
                             "weights (`tsn weights fetch`, `python -m prototxt_port convert`)")
    parser.add_argument("--flow", default=None, metavar="SOURCE",
                        help="optical-flow stream, as --rgb; with both, scores are fused "
                             "1 : 1.5 (raw logits, as tsn fuse)")
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--classes", default=None, metavar="FILE",
                       help="class names: classInd.txt or one name per line (default: the "
                            "run's, or the dataset's for converted weights)")
    names.add_argument("--dataset", default=None, choices=DATASETS,
                       help="use this dataset's official class list")
    parser.add_argument("--top-k", type=int, default=5, help="classes to list (5)")
    parser.add_argument("--frames", type=int, default=25, help="snippets per video (25)")
    parser.add_argument("--crops", type=int, choices=(1, 10), default=10,
                        help="10: corners + centre and mirrored (eval_net.py); 1: centre")
    parser.add_argument("--flow-method", default="tvl1", choices=METHODS,
                        help="tvl1: OpenCV 2.4's TV-L1 (gpu24, what `tsn extract` computes by "
                             "default; ~1 CPU-s per pair, <= 125 pairs a video); dis / "
                             "dis_fast: OpenCV DIS, fast, not TV-L1 (use the method the flow "
                             "stream was trained on)")
    parser.add_argument("--device", default="auto",
                        help="auto | cpu | cuda | cuda:N: the models and the TV-L1")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the TV-L1 iteration (the same flow on the CPU; "
                             "compiling takes ~20-30 s once per command, then ~0.7 instead of "
                             "~1 CPU-s a pair: worth it for several videos)")
    parser.add_argument("--batch", type=int, default=50, help="views per forward (50)")
    parser.add_argument("--allow-short", action="store_true",
                        help="predict a video that decodes fewer frames than its container "
                             "declares (refused by default, as by `tsn extract`)")
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="write every prediction (per stream and fused, protocol, "
                             "sources' records) to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Predict each video; print its top-k; optionally write the JSON."""
    # The TV-L1 is a long chain of small operations: OpenMP threads that sleep between them
    # use a busy CPU better than spinning ones (docs/flow.md); set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # FFmpeg's own log lines ("moov atom not found") would surround our one-line error for an
    # unreadable video; AV_LOG_QUIET unless the caller asks for them (OpenCV reads it on open)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import json
    import logging

    from prototxt_port.errors import CaffeFormatError
    from tsn.atomic import atomic_write_text
    from tsn.data.errors import DataError
    from tsn.errors import WeightsError
    from tsn.flow.batched import ExtractError
    from tsn.prediction import PredictError, Predictor, report, summary

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        predictor = Predictor(args.rgb, args.flow, classes=args.classes, dataset=args.dataset,
                              frames=args.frames, crops=args.crops,
                              flow_method=args.flow_method, device=args.device,
                              compile=args.compile, batch=args.batch, top_k=args.top_k,
                              allow_short=args.allow_short, progress=not args.quiet)
    except (PredictError, CaffeFormatError, WeightsError, DataError, OSError) as err:
        print(f"tsn predict: error: {err}", file=sys.stderr)
        return 2
    results, errors = [], []
    for video in args.videos:
        try:
            result = predictor(video)
        except (ExtractError, DataError, OSError) as err:
            print(f"tsn predict: error: {err}", file=sys.stderr)
            errors.append({"video": video, "error": str(err)})
            continue
        results.append(result)
        print(summary(result))
    if args.json:
        try:
            atomic_write_text(args.json, json.dumps(report(results, errors), indent=2) + "\n")
        except OSError as err:
            print(f"tsn predict: error: cannot write {args.json}: {err}", file=sys.stderr)
            return 2
        print(f"predictions written to {args.json}")
    return 1 if errors else 0
