"""`tsn synth`: write the seeded synthetic dataset in UCF101's on-disk format."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn synth`."""
    parser.add_argument("--out", required=True, help="output folder (UCF-101/, ucfTrainTestlist/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-class", type=int, default=4)
    parser.add_argument("--test-per-class", type=int, default=2)
    parser.add_argument("--frames", type=int, default=32, help="frames per video")
    parser.add_argument("--codec", default="XVID", help="FourCC: XVID (like UCF101) or MJPG")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset; prints where it is. Exit 2, one line, when the output folder
    cannot be written (checked before the first video) or nothing would be generated."""
    from tsn.atomic import check_writable
    from tsn.data.synth import CLASSES, SynthConfig, generate  # OpenCV: only when it runs

    cfg = SynthConfig(args.out, args.seed, args.train_per_class, args.test_per_class,
                      args.frames, args.codec)
    total = len(CLASSES) * (cfg.train_per_class + cfg.test_per_class)
    if min(cfg.train_per_class, cfg.test_per_class) < 1 or cfg.num_frames < 2:
        print("tsn synth: error: --train-per-class and --test-per-class must be >= 1 and "
              "--frames >= 2 (a flow pair); nothing was written", file=sys.stderr)
        return 2
    try:
        check_writable(args.out)
        with tqdm(total=total, desc="synth videos", unit="video") as bar:
            splits = generate(cfg, bar.update)
    except (OSError, RuntimeError) as err:  # read-only / full output, an unusable codec
        print(f"tsn synth: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {total} videos; split files in {splits}")
    return 0
