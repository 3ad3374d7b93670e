"""`tsn synth`: write the seeded synthetic dataset in UCF101's on-disk format."""

from __future__ import annotations

import argparse

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
    """Generate the dataset; prints where it is."""
    from tsn.data.synth import CLASSES, SynthConfig, generate  # OpenCV: only when it runs

    cfg = SynthConfig(args.out, args.seed, args.train_per_class, args.test_per_class,
                      args.frames, args.codec)
    total = len(CLASSES) * (cfg.train_per_class + cfg.test_per_class)
    with tqdm(total=total, desc="synth videos", unit="video") as bar:
        splits = generate(cfg, bar.update)
    print(f"wrote {total} videos; split files in {splits}")
    return 0
