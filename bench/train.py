"""`make bench-train`: training throughput, the engine against a bare PyTorch loop, interleaved.

Two comparisons, each run in one process on one device, the two sides taking turns (bench.rounds:
one block of each side per round, the order rotated each round, the load average recorded
before and after every block):
  optimizer: CaffeSGD.step (global clip norm, lr-in-momentum, per-blob multipliers) against
             torch.optim.SGD with the same multipliers as param groups, on the model's blobs;
  iteration: engine iterations (train() over in-memory clips: data, iter_size forward/backward,
             norm, update, metrics row; the engine's own per-iteration seconds, set-up left out)
             against a bare loop (forward, loss, backward, torch.optim.SGD step) on the same
             model and batch. Each engine block resumes the run for --iters more iterations.
Results go to results/bench/train_<device>.json. Speed is reported, never asserted by a test.

    python -m bench.train [--arch bn_inception|tiny] [--device cpu|cuda] [--iters N] [--rounds R]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.rounds import interleave, load_average, summarise
from tsn.atomic import atomic_write_text
from tsn.build import build_dataset, build_model, select_device
from tsn.config import load_experiment
from tsn.engine.optim import CaffeSGD, param_specs
from tsn.engine.stream import BatchStream
from tsn.train import train


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_optimizer(model, modality: str, device, rounds: int, steps: int) -> dict:
    """Seconds per step: CaffeSGD vs torch.optim.SGD with lr_mult/decay_mult param groups."""
    specs = param_specs(model, modality)
    for s in specs:
        s.tensor.grad = torch.randn_like(s.tensor)
    caffe = CaffeSGD(specs, 0.9, 5e-4, clip_gradients=40.0)
    grads = [s.tensor.grad.clone() for s in specs]

    # one param group per (lr_mult, decay_mult), as a careful torch user would write it
    by_mult: dict[tuple[float, float], list] = {}
    for s in specs:
        if s.lr_mult:
            by_mult.setdefault((s.lr_mult, s.decay_mult), []).append(s.tensor)
    groups = [{"params": ts, "lr": 1e-9 * lr, "weight_decay": 5e-4 * decay}
              for (lr, decay), ts in by_mult.items()]
    torch_sgd = torch.optim.SGD(groups, lr=1e-9, momentum=0.9, foreach=True)

    def caffe_block(_round: int) -> None:
        for _ in range(steps):
            for s, g in zip(specs, grads):
                s.tensor.grad = g
            caffe.step(1e-9, 1)
        _sync(device)

    def torch_block(_round: int) -> None:
        for _ in range(steps):
            for s, g in zip(specs, grads):
                s.tensor.grad = g
            torch.nn.utils.clip_grad_norm_([s.tensor for s in specs], 40.0)
            torch_sgd.step()
        _sync(device)

    blocks = interleave({"caffe_sgd": caffe_block, "torch_sgd_clip": torch_block}, rounds, steps)
    stats = summarise(blocks)
    caffe_s, torch_s = stats["caffe_sgd"]["median_s"], stats["torch_sgd_clip"]["median_s"]
    return {"caffe_sgd_s": caffe_s, "torch_sgd_clip_s": torch_s, "ratio": caffe_s / torch_s,
            "stats": stats, "blocks": blocks}


def _engine_seconds(metrics: Path, first_iter: int) -> float:
    """Sum of the engine's own per-iteration seconds (metrics.csv) from `first_iter` on."""
    with open(metrics, newline="", encoding="utf-8") as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle)
                   if int(row["iter"]) >= first_iter)


def bench_iteration(args, device) -> dict:
    """Seconds per iteration: engine (train(), resumed block by block) vs a bare loop."""
    overrides = [
        f"model.arch={args.arch}", "data.dataset=clips", f"device={device.type}",
        f"data.synthetic_shape=[3,{args.size},{args.size}]", "model.init=scratch",
        f"data.synthetic_size={args.batch * (args.iters + 2)}", f"data.num_workers={args.workers}",
        f"solver.batch_per_process={args.batch}", f"solver.effective_batch={args.batch}",
        f"solver.max_iter={args.iters}", "checkpoint_every=1000000", "deterministic=false",
    ]
    exp = load_experiment(None, overrides)

    torch.manual_seed(0)
    model, _ = build_model(exp)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)
    dataset, _ = build_dataset(exp)
    # the same data path as the engine, so the ratio isolates the engine's own overhead
    stream = BatchStream(dataset, args.batch, 0, num_workers=args.workers,
                         pin_memory=device.type == "cuda")

    with tempfile.TemporaryDirectory() as tmp:
        run_dir, done = Path(tmp) / "run", [0]

        def engine_block(_round: int) -> float:
            first = done[0]
            done[0] += args.iters
            step = replace(exp, solver=replace(exp.solver, max_iter=done[0]))
            train(step, resume=first > 0, run_dir=run_dir)
            return _engine_seconds(run_dir / "metrics.csv", first)

        def bare_block(_round: int) -> None:
            for _ in range(args.iters):
                x, y = next(stream)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad()
            _sync(device)

        blocks = interleave({"engine": engine_block, "bare_loop": bare_block}, args.rounds,
                            args.iters)
    stats = summarise(blocks)
    e, b = stats["engine"]["median_s"], stats["bare_loop"]["median_s"]
    return {"engine_s": e, "bare_loop_s": b, "ratio": e / b,
            "engine_videos_per_s": args.batch / e, "bare_videos_per_s": args.batch / b,
            "stats": stats, "blocks": blocks}


def main(argv: list[str] | None = None) -> int:
    """Run both comparisons and write results/bench/train_<device>.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.train",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bn_inception")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=2, help="videos per iteration (K=3 each)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=4, help="iterations (steps) per block")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (both loops)")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args(argv)
    device = select_device(args.device, 0)
    torch.manual_seed(0)
    exp = load_experiment(None, [f"model.arch={args.arch}", "data.dataset=clips",
                                 "model.init=scratch", "model.modality=flow",
                                 "data.synthetic_shape=[2,16,16]"])
    model, _ = build_model(exp)
    result = {
        "what": "tsn training throughput vs a bare PyTorch loop (same process, interleaved)",
        "arch": args.arch, "device": str(device), "batch_videos": args.batch,
        "segments": 3, "image_size": args.size, "workers": args.workers, "rounds": args.rounds,
        "iters_per_block": args.iters, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "host": platform.node(),
        # other processes on the machine skew CPU timings: every block records its load too
        "load_before": load_average(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "optimizer": bench_optimizer(model.to(device), "flow", device, args.rounds,
                                     max(5, args.iters)),
        "iteration": bench_iteration(args, device),
    }
    result["load_after"] = load_average()
    out = Path(args.out) / f"train_{device.type}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("optimizer", "iteration")}
                     | {k: {n: x for n, x in result[k].items() if n != "blocks"}
                        for k in ("optimizer", "iteration")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
