"""`tsn extract`: frames and optical flow for a folder of videos (dense_flow settings).

Under `mpirun -np N` or `torchrun --nproc_per_node N` every rank extracts every N-th video of
the sorted list (on cuda:<local rank> with `--device cuda`); ranks need no process group.

Exit codes: 0 done (or everything already done), 1 some videos failed (listed in
`<out>/extract_failures.log`) or no video found, 2 bad usage, an output root that cannot be
written, or one made with other settings (`--force`), 130 / 143 interrupted (tsn.cli).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from tsn.flow.choices import BACKENDS, FAILURE_LOG, METHODS, SEMANTICS

DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
LAYOUT_DATASETS = ("ucf101", "hmdb51", "synth")  # the folders `tsn lists --dataset` knows


def resolve_paths(args: argparse.Namespace) -> tuple[str, str]:
    """(src, out): as given, else from the layout of --dataset under --root (ValueError when
    neither says where)."""
    if args.dataset is None:
        if args.src is None or args.out is None:
            raise ValueError("say where: --src and --out, or --dataset (the data layout's "
                             "videos/ and frames/ under --root)")
        return args.src, args.out
    from tsn.data.layout import layout

    where = layout(args.dataset, args.root)
    out = where.frames("warped_flow" if args.warp else "rgb")
    return args.src or str(where.videos), args.out or str(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn extract`."""
    parser.add_argument("--src", default=None,
                        help="a video file or a folder of videos (default with --dataset: "
                             "<root>/<dataset>/videos, or UCF-101/ as the archive unpacks)")
    parser.add_argument("--out", default=None,
                        help="frame root, one folder per video (default with --dataset: "
                             "<root>/<dataset>/frames, warp_frames with --warp)")
    parser.add_argument("--dataset", default=None, choices=LAYOUT_DATASETS,
                        help="take --src and --out from the data layout (docs/data.md), as "
                             "`tsn lists --dataset` reads them")
    parser.add_argument("--root", default="data",
                        help="data root of the layout <root>/<dataset>/ (default data)")
    parser.add_argument("--flow", default="tvl1", choices=(*METHODS, "none"),
                        help="tvl1 = dense_flow's TV-L1 (see --tvl1-backend); dis / dis_fast = "
                             "fast OpenCV DIS (not TV-L1); none = frames only")
    parser.add_argument("--tvl1-backend", default="torch", choices=BACKENDS,
                        help="torch (default): OpenCV 2.4's TV-L1 in PyTorch, batched on "
                             "--device; opencv: OpenCV 5's DualTVL1 on the CPU (~0.7-1.1 "
                             "CPU-s per 340x256 pair). Both timed by make bench-flow "
                             "(results/bench/flow_cpu.md)")
    parser.add_argument("--tvl1-semantics", default="gpu24", choices=SEMANTICS,
                        help="torch backend: gpu24 = the 2.4 GPU class dense_flow ran (default),"
                             " cpu24 = the 2.4 CPU code")
    parser.add_argument("--device", default="cpu",
                        help="torch backend: cpu | cuda | cuda:<i> (cuda = cuda:<local rank> "
                             "under mpirun/torchrun)")
    parser.add_argument("--batch", type=int, default=16,
                        help="torch backend: frame pairs per TV-L1 call (default 16)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch backend: fuse the TV-L1 iteration with torch.compile "
                             "(default on: the same flow, ~1.5x faster per CPU core; each "
                             "process compiles once, ~15-30 s); --no-compile for short runs")
    parser.add_argument("--warp", action="store_true",
                        help="warped flow (native size, flow_x/flow_y only; use its own --out)")
    parser.add_argument("--warp-fixed", action="store_true",
                        help="fix the release's warped-flow quirks (stale reference, y index)")
    parser.add_argument("--width", type=int, default=340, help="0 keeps the native size")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--level", type=int, default=1, choices=(1, 2),
                        help="1: <out>/<video_id> (Caffe TSN), 2: <out>/<class>/<video_id>")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes: on the CPU, one video each (one thread each); torch "
                             "backend on cuda: decoders, and as many JPEG writers")
    parser.add_argument("--ext", default="avi,mp4", help="video extensions to look for")
    parser.add_argument("--force", action="store_true",
                        help="the output root was made with other settings: delete the "
                             "finished folders of these videos and redo them with these "
                             "(without it such a rerun is refused)")
    parser.add_argument("--allow-short", action="store_true",
                        help="extract what decodes of a video that decodes fewer frames than "
                             "its container declares (default: a logged failure; a few "
                             "missing frames are tolerated, docs/data.md)")


def resolve_device(device: str, local_rank: int) -> str:
    """`cuda` -> `cuda:<local rank>` (one GPU per rank); an explicit index is kept."""
    if not DEVICE_RE.match(device):
        raise ValueError(f"--device {device!r}: use cpu, cuda or cuda:<index>")
    return f"cuda:{local_rank}" if device == "cuda" else device


def _check_cuda(device: str) -> str:
    """'' when `device` is usable, else the one-line reason."""
    if not device.startswith("cuda"):
        return ""
    import torch

    if not torch.cuda.is_available():
        return f"--device {device}: no CUDA device visible (torch.cuda.is_available() is False)"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible"
    return ""


def build_config(args: argparse.Namespace, local_rank: int = 0):
    """The ExtractConfig the parsed arguments ask for (ValueError on a bad value)."""
    from tsn.flow.extract import ExtractConfig
    from tsn.flow.warp import WarpOptions

    warp_opts = WarpOptions(stale_reference=not args.warp_fixed, y_index_bug=not args.warp_fixed)
    return ExtractConfig(flow=args.flow, warp=args.warp, width=args.width, height=args.height,
                         level=args.level, tvl1_backend=args.tvl1_backend,
                         tvl1_semantics=args.tvl1_semantics,
                         device=resolve_device(args.device, local_rank), batch=args.batch,
                         compile=args.compile, warp_options=warp_opts,
                         allow_short=getattr(args, "allow_short", False))


def run(args: argparse.Namespace) -> int:
    """Extract; exit status 1 when some videos failed (see the failure log), 2 on bad usage."""
    from tsn.atomic import check_writable
    from tsn.engine.distributed import detect
    from tsn.flow.extract import ExtractError, extract_all, find_videos

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    info = detect()
    try:
        args.src, args.out = resolve_paths(args)
        cfg = build_config(args, info.local_rank)
    except ValueError as err:
        print(f"tsn extract: {err}", file=sys.stderr)
        return 2
    problem = _check_cuda(cfg.device) if cfg.uses_torch else ""
    if problem:
        print(f"tsn extract: {problem}", file=sys.stderr)
        return 2
    exts = tuple("." + e.strip(".").lower() for e in args.ext.split(","))
    videos = find_videos(args.src, exts)
    if not videos:
        where = "" if Path(args.src).exists() else " (it does not exist)"
        print(f"tsn extract: error: no {args.ext} videos under {args.src}{where}; nothing was "
              "done (--ext names other extensions)", file=sys.stderr)
        return 1
    try:
        check_writable(args.out)  # before any video: a read-only or full output fails now
        stats = extract_all(videos, args.out, cfg, workers=args.workers, rank=info.rank,
                            world=info.world_size, force=args.force)
    except (ExtractError, OSError) as err:
        print(f"tsn extract: error: {err}", file=sys.stderr)
        return 2
    who = "" if info.world_size == 1 else f"rank {info.rank}/{info.world_size}: "
    print(f"{who}extracted {stats['done']}, skipped {stats['skipped']} (already done), "
          f"failed {stats['failed']}")
    if stats["failed"]:
        log_path = Path(args.out) / FAILURE_LOG
        if stats.get("unlogged"):
            print(f"{who}{stats['unlogged']} of the {stats['failed']} failures could not be "
                  f"written to {log_path}: the warnings above name them", file=sys.stderr)
        else:
            print(f"failures listed in {log_path}")
        return 1
    return 0
