"""AMP on/off for a BN-Inception TSN training step (CUDA): speed and how far the numbers move.

    python -m bench.amp --out results/bench/amp_cuda.json

Runs, in one process and on one device, the same forward + backward + SGD step in float32
(TF32 off: the faithful setting), float32 with TF32, and autocast bf16 / fp16 (fp16 with a
GradScaler), and reports each as a ratio against the float32 baseline, plus the largest logit
and gradient difference from float32 on the same batch. The Caffe release trained in float32.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import platform
import time

import torch
import torch.nn.functional as F

from tsn.atomic import atomic_write_text
from tsn.engine.precision import set_float32_mode
from tsn.models import build_tsn


def _step(model, x, y, mode: str, opt, scaler=None) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    ctx = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
    with ctx:
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    if scaler:  # fp16 needs loss scaling; the step unscales before updating
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        grad = model.fc_weight_grad()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        grad = model.fc_weight_grad()
        opt.step()
    return logits.detach().float(), grad


def _time(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def run(videos: int, repeats: int) -> dict:
    """Measure every mode against the float32 baseline; returns the JSON record."""
    torch.manual_seed(0)
    base = build_tsn("bn_inception", modality="rgb", init="scratch").cuda().train()
    x = torch.randn(videos, 9, 224, 224, device="cuda") * 50
    y = torch.randint(0, 101, (videos,), device="cuda")
    rows = {}
    reference = None
    for mode in ("fp32", "tf32", "bf16", "fp16"):
        set_float32_mode("tf32" if mode == "tf32" else "fp32")
        model = copy.deepcopy(base)
        model.fc_weight_grad = lambda m=model: (
            next(p for n, p in m.named_parameters() if n.endswith("fc.weight"))
            .grad.detach()
            .float()
            .clone()
        )
        scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
        # lr 0: the weights stay equal across modes while the step's cost is still paid
        opt = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=0.0, momentum=0.9
        )
        for module in model.modules():  # deterministic comparison: no dropout
            if isinstance(module, torch.nn.Module) and hasattr(module, "forced_mask"):
                module.forced_mask = torch.ones(1, device="cuda")
        logits, grad = _step(model, x, y, mode, opt, scaler)
        seconds = _time(functools.partial(_step, model, x, y, mode, opt, scaler), repeats)
        if reference is None:
            reference = (logits, grad, seconds)
        rows[mode] = {
            "seconds_per_step": seconds,
            "speedup_vs_fp32": reference[2] / seconds,
            "videos_per_s": videos / seconds,
            "max_logit_diff_vs_fp32": float((logits - reference[0]).abs().max()),
            "max_fc_grad_rel_diff_vs_fp32": float(
                (grad - reference[1]).abs().max() / reference[1].abs().max()
            ),
        }
    set_float32_mode("fp32")
    return {
        "what": "BN-Inception TSN (rgb, K=3) train step: forward+backward, fp32 vs AMP",
        "videos_per_step": videos,
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "host": platform.node(),
        "modes": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: write the record atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/amp_cuda.json")
    parser.add_argument("--videos", type=int, default=32, help="videos per step (Caffe: 32/GPU)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    record = run(args.videos, args.repeats)
    atomic_write_text(args.out, json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
