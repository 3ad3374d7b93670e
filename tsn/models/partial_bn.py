"""Partial BN (TSN paper sec. 3.2): freeze every BN layer except the first one.

The release and the paper differ (docs/caffe_release.md#partial-bn, #paper-vs-release):

* "release" (default): what `frozen: true` does in the Caffe fork on all 68 BN layers after
  `conv1/7x7_s2_bn` -- running statistics are used in training too AND scale/shift get
  lr_mult = decay_mult = 0 (bn_layer.cpp LayerSetUp). Here: `frozen=True`, weight/bias
  `requires_grad=False`.
* "paper": freeze the statistics only ("freeze the mean and variance parameters of all Batch
  Normalization layers except the first one"); scale and shift stay trainable.
* "none": every BN uses batch statistics and trains its scale/shift (plain fine-tuning).
* "all": every BN frozen, release semantics (statistics and scale/shift).

The first BN is the first CaffeBatchNorm in module order, which for BN-Inception is the BN of
the first conv (`conv1.bn` = `conv1/7x7_s2_bn`). The choice lives in each layer's `frozen` flag,
which CaffeBatchNorm honours in train mode, so later `model.train()` calls keep it.
"""

from __future__ import annotations

import logging

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prototxt_port.caffe_layers import CaffeBatchNorm

log = logging.getLogger(__name__)

PARTIAL_BN_MODES = ("release", "paper", "none", "all")


def batch_norms(model: nn.Module) -> list[CaffeBatchNorm]:
    """Every CaffeBatchNorm of `model`, in module order; refuses PyTorch BatchNorm layers."""
    foreign = [name for name, m in model.named_modules() if isinstance(m, _BatchNorm)]
    if foreign:
        raise ValueError(
            f"partial BN needs CaffeBatchNorm layers, found torch BatchNorm at {foreign[:3]}: "
            "build the backbone with prototxt_port.caffe_layers.CaffeBatchNorm"
        )
    return [m for m in model.modules() if isinstance(m, CaffeBatchNorm)]


def apply_partial_bn(model: nn.Module, mode: str = "release") -> int:
    """Set every BN's `frozen` flag (and scale/shift trainability) for `mode`; returns #frozen.

    Modes: "release" (default), "paper", "none", "all" -- see the module docstring. Models
    without BN (GoogLeNet, VGG-16, ClarifaiNet) are left untouched and 0 is returned.
    """
    if mode not in PARTIAL_BN_MODES:
        raise ValueError(f"unknown partial BN mode {mode!r}: choose one of {PARTIAL_BN_MODES}")
    bns = batch_norms(model)
    if not bns:
        log.info("partial BN %r: the model has no BN layer, nothing to freeze", mode)
        return 0
    for index, bn in enumerate(bns):
        if mode == "none" or (index == 0 and mode in ("release", "paper")):
            bn.set_frozen(False)  # batch statistics in train mode, trainable scale/shift
        elif mode == "paper":
            bn.set_frozen(True, freeze_affine=False)
        else:  # "release" after the first, or "all"
            bn.set_frozen(True)
    frozen = sum(bn.frozen for bn in bns)
    log.info("partial BN %r: %d of %d BN layers frozen", mode, frozen, len(bns))
    return frozen
