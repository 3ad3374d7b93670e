"""`make bench-models`: size, compute and speed of every backbone inside a TSN.

    python -m bench.models --device cpu --out results/bench/models_cpu.csv

For each backbone: learnable parameters, those left trainable by partial BN ("release"),
multiply-accumulates per 224x224 snippet (counted on the meta device, no compute), and
measured throughput -- eval forward of single snippets and a TSN training step (forward +
backward, K segments) -- on the chosen device. Rows go to a CSV (written atomically) together
with the device, torch version and thread count, so numbers from different machines never mix.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from tsn.atomic import atomic_open
from tsn.engine.precision import set_float32_mode
from tsn.modality import MODALITIES
from tsn.models import BACKBONES, build_tsn

log = logging.getLogger(__name__)

FIELDS = (
    "backbone", "modality", "in_channels", "params", "trainable_release", "gmacs_per_snippet",
    "device", "eval_batch", "eval_snippets_per_s", "train_videos", "num_segments",
    "train_snippets_per_s", "torch", "threads", "date",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench.models`."""
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated names")
    parser.add_argument("--modality", default="rgb", choices=tuple(MODALITIES),
                        help="a tsn/modality.py name")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    parser.add_argument("--eval-batch", type=int, default=2, help="snippets per eval forward")
    parser.add_argument("--train-videos", type=int, default=1, help="videos per training step")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--out", default="results/bench/models.csv", help="CSV to write")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (allocations, cuDNN algorithm choice)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def macs_per_snippet(name: str, modality: str) -> float:
    """Multiply-accumulates of one 224x224 snippet, counted on the meta device."""
    model = build_tsn(name, modality=modality, init="scratch", num_segments=1).to("meta").eval()
    x = torch.empty(1, model.snippet_channels, 224, 224, device="meta")
    with FlopCounterMode(display=False) as counter:
        model.forward_snippets(x)
    return counter.get_total_flops() / 2.0


def bench_one(name: str, args: argparse.Namespace) -> dict:
    """Measure one backbone; returns a CSV row."""
    device = torch.device(args.device)
    model = build_tsn(name, modality=args.modality, init="scratch").to(device)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    c, k = model.snippet_channels, model.num_segments
    snippets = torch.randn(args.eval_batch, c, 224, 224, device=device)
    videos = torch.randn(args.train_videos, k * c, 224, 224, device=device)
    labels = torch.zeros(args.train_videos, dtype=torch.long, device=device)

    def evaluate() -> None:
        with torch.no_grad():
            model.eval().forward_snippets(snippets)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(videos), labels).backward()

    eval_s = _median_seconds(evaluate, device, args.repeats)
    train_s = _median_seconds(train_step, device, args.repeats)
    return {
        "backbone": name,
        "modality": args.modality,
        "in_channels": c,
        "params": params,
        "trainable_release": trainable,
        "gmacs_per_snippet": round(macs_per_snippet(name, args.modality) / 1e9, 3),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "eval_batch": args.eval_batch,
        "eval_snippets_per_s": round(args.eval_batch / eval_s, 2),
        "train_videos": args.train_videos,
        "num_segments": k,
        "train_snippets_per_s": round(args.train_videos * k / train_s, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_csv(rows: list[dict], out: Path) -> None:
    """Write rows atomically (temporary file in the same folder, then os.replace)."""
    with atomic_open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> int:
    """Benchmark the requested backbones and write the CSV; returns the exit status."""
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        log.error("unknown backbone(s) %s: choose from %s", unknown, ", ".join(BACKBONES))
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log.error("--device %s asked for, but torch sees no CUDA device", args.device)
        return 2
    set_float32_mode("fp32")  # IEEE float32, not PyTorch's default TF32 convolutions
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out.with_suffix(".log"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    try:
        rows = []
        for name in tqdm(names, desc="bench-models"):
            rows.append(bench_one(name, args))
            log.info("%s", rows[-1])
        write_csv(rows, out)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    log.info("wrote %s", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.models`."""
    parser = argparse.ArgumentParser(prog="python -m bench.models",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
