"""Training-throughput benchmark: the engine against a bare PyTorch loop in the same process.

Two measurements, each a ratio to a baseline timed in the same process on the same device:
  optimizer: CaffeSGD.step (global clip norm, lr-in-momentum, per-blob multipliers) against
             torch.optim.SGD with the same multipliers as param groups, on the model's blobs;
  iteration: one engine iteration (tsn.engine.train over synthetic clips: data, iter_size
             forward/backward, norm, update, metrics row) against a bare loop (forward, loss,
             backward, torch.optim.SGD step) on the same model and batch.
Results go to results/bench/train_<device>.json. Speed is reported, never asserted by a test.

    python -m tsn.engine.bench [--arch bn_inception|tiny] [--device cpu|cuda] [--iters N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tsn.config import load_experiment
from tsn.engine.optim import CaffeSGD, param_specs
from tsn.engine.stream import BatchStream
from tsn.engine.train import build_dataset, build_model, select_device, train


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def bench_optimizer(model, modality: str, device, repeats: int) -> dict:
    """Seconds per step: CaffeSGD vs torch.optim.SGD with lr_mult/decay_mult param groups."""
    specs = param_specs(model, modality)
    for s in specs:
        s.tensor.grad = torch.randn_like(s.tensor)
    caffe = CaffeSGD(specs, 0.9, 5e-4, clip_gradients=40.0)
    grads = [s.tensor.grad.clone() for s in specs]

    def caffe_step():
        for s, g in zip(specs, grads):
            s.tensor.grad = g
        caffe.step(1e-9, 1)

    # one param group per (lr_mult, decay_mult), as a careful torch user would write it
    by_mult: dict[tuple[float, float], list] = {}
    for s in specs:
        if s.lr_mult:
            by_mult.setdefault((s.lr_mult, s.decay_mult), []).append(s.tensor)
    groups = [{"params": ts, "lr": 1e-9 * lr, "weight_decay": 5e-4 * decay}
              for (lr, decay), ts in by_mult.items()]
    torch_sgd = torch.optim.SGD(groups, lr=1e-9, momentum=0.9, foreach=True)

    def torch_step():
        for s, g in zip(specs, grads):
            s.tensor.grad = g
        torch.nn.utils.clip_grad_norm_([s.tensor for s in specs], 40.0)
        torch_sgd.step()

    caffe_s = statistics.median(_time(caffe_step, device, repeats))
    torch_s = statistics.median(_time(torch_step, device, repeats))
    return {"caffe_sgd_s": caffe_s, "torch_sgd_clip_s": torch_s, "ratio": caffe_s / torch_s}


def bench_iteration(args, device) -> dict:
    """Seconds per iteration: engine (train()) vs a bare loop on the same model and batch."""
    overrides = [
        f"model.arch={args.arch}", "data.dataset=clips", f"device={device.type}",
        f"data.synthetic_shape=[3,{args.size},{args.size}]", "model.init=scratch",
        f"data.synthetic_size={args.batch * (args.iters + 2)}", f"data.num_workers={args.workers}",
        f"solver.batch_per_process={args.batch}", f"solver.effective_batch={args.batch}",
        f"solver.max_iter={args.iters + 2}", "checkpoint_every=1000000", "deterministic=false",
    ]
    exp = load_experiment(None, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        train(exp, run_dir=Path(tmp) / "run")
        rows = (Path(tmp) / "run" / "metrics.csv").read_text().splitlines()[1:]
    engine = [float(r.split(",")[8]) for r in rows[2:]]  # the first two are warm-up

    torch.manual_seed(0)
    model, _ = build_model(exp)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)
    dataset, _ = build_dataset(exp)
    # the same data path as the engine, so the ratio isolates the engine's own overhead
    stream = BatchStream(dataset, args.batch, 0, num_workers=args.workers,
                         pin_memory=device.type == "cuda")

    def bare():
        x, y = next(stream)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()

    _time(bare, device, 2)
    baseline = _time(bare, device, args.iters)
    e, b = statistics.median(engine), statistics.median(baseline)
    return {"engine_s": e, "bare_loop_s": b, "ratio": e / b,
            "engine_videos_per_s": args.batch / e, "bare_videos_per_s": args.batch / b}


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and write results/bench/train_<device>.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bn_inception")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=2, help="videos per iteration (K=3 each)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (both loops)")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args(argv)
    device = select_device(args.device, 0)
    torch.manual_seed(0)
    exp = load_experiment(None, [f"model.arch={args.arch}", "data.dataset=clips",
                                 "model.init=scratch", "model.modality=flow"])
    model, _ = build_model(exp)
    result = {
        "what": "tsn.engine training throughput vs a bare PyTorch loop (same process)",
        "arch": args.arch, "device": str(device), "batch_videos": args.batch,
        "segments": 3, "image_size": args.size, "workers": args.workers, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "host": platform.node(),
        # other processes on the machine skew CPU timings: the 1-minute load before the runs
        "loadavg_1min_before": os.getloadavg()[0],
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "optimizer": bench_optimizer(model.to(device), "flow", device, max(5, args.iters)),
        "iteration": bench_iteration(args, device),
    }
    result["loadavg_1min_after"] = os.getloadavg()[0]
    out = Path(args.out) / f"train_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
