"""Float precision of training and testing: the release's IEEE float32 by default.

PyTorch runs cuDNN convolutions in TF32 on Ampere and newer GPUs unless told otherwise
(`torch.backends.cudnn.conv.fp32_precision` defaults to "tf32"): a 10-bit mantissa in every
convolution, which the Caffe release (float32 on 2016 GPUs) never had. So precision is a
named choice here, recorded in run.json, score files and reports:

- "fp32" (default, the release): IEEE float32 convolutions and matmuls;
- "tf32": TF32 convolutions and matmuls (1.85x a BN-Inception train step on an H200,
  results/bench/amp_cuda.json);
- "bf16": autocast to bfloat16 for convolutions and matmuls, float32 weights, BN statistics
  and loss (2.1x on an H200). fp16 is not offered: it needs loss scaling, which the release's
  solver (gradient clipping at 40 on the raw gradient) would have to be changed for.
"""

from __future__ import annotations

import contextlib

import torch

from tsn.engine.choices import PRECISIONS


def check_precision(precision: str) -> None:
    """Unknown names raise ValueError listing the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {PRECISIONS} (fp32 = the release)")


def set_float32_mode(precision: str) -> None:
    """IEEE float32 (fp32, bf16) or TF32 (tf32) for float32 convolutions and matmuls, process
    wide. Sets cuDNN's conv and RNN flags together, so that PyTorch's legacy `allow_tf32`
    getters (which refuse mixed flags) keep working."""
    check_precision(precision)
    mode = "tf32" if precision == "tf32" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
    torch.backends.cudnn.rnn.fp32_precision = mode


def precision_note(precision: str) -> str:
    """The deviation note for score files and reports: "" for the release's fp32."""
    check_precision(precision)
    if precision == "fp32":
        return ""
    what = "TF32 convolutions and matmuls" if precision == "tf32" else "bfloat16 autocast"
    return f"precision {precision} ({what}; the release ran in float32)"


def autocast(precision: str, device: torch.device):
    """The forward-pass context of `precision`: bf16 autocast, else nothing."""
    check_precision(precision)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
