"""`tsn extract`: frames and optical flow for a folder of videos (dense_flow settings)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tsn.flow.compute import METHODS
from tsn.flow.extract import FAILURE_LOG, ExtractConfig, extract_all, find_videos
from tsn.flow.warp import WarpOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn extract`."""
    parser.add_argument("--src", required=True, help="a video file or a folder of videos")
    parser.add_argument("--out", required=True, help="frame root (one folder per video)")
    parser.add_argument("--flow", default="tvl1", choices=(*METHODS, "none"),
                        help="tvl1 = dense_flow (slow: ~1.4 s/pair); dis = fast option")
    parser.add_argument("--warp", action="store_true",
                        help="warped flow (native size, flow_x/flow_y only; use its own --out)")
    parser.add_argument("--warp-fixed", action="store_true",
                        help="fix the release's warped-flow quirks (stale reference, y index)")
    parser.add_argument("--width", type=int, default=340, help="0 keeps the native size")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--level", type=int, default=1, choices=(1, 2),
                        help="1: <out>/<video_id> (Caffe TSN), 2: <out>/<class>/<video_id>")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--ext", default="avi,mp4", help="video extensions to look for")


def run(args: argparse.Namespace) -> int:
    """Extract; exit status 1 when some videos failed (see the failure log)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    exts = tuple("." + e.strip(".").lower() for e in args.ext.split(","))
    videos = find_videos(args.src, exts)
    if not videos:
        print(f"no {args.ext} videos under {args.src}")
        return 1
    warp_opts = WarpOptions(stale_reference=not args.warp_fixed, y_index_bug=not args.warp_fixed)
    cfg = ExtractConfig(flow=args.flow, warp=args.warp, width=args.width, height=args.height,
                        level=args.level, warp_options=warp_opts)
    stats = extract_all(videos, args.out, cfg, workers=args.workers)
    print(f"extracted {stats['done']}, skipped {stats['skipped']} (already done), "
          f"failed {stats['failed']}")
    if stats["failed"]:
        print(f"failures listed in {Path(args.out) / FAILURE_LOG}")
        return 1
    return 0
