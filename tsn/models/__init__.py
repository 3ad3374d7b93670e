"""Backbones and the TSN wrapper, looked up by name.

BACKBONES maps a name to a constructor `(in_channels, num_classes, dropout) -> nn.Module`;
every backbone exposes `forward_features`, `.dropout`, `.fc` and its first conv as
`.conv1.conv` (also `tsn.models.cross_modality.first_conv(model)`).
`build_tsn(...)` is the one place that assembles a TSN: backbone, consensus, initial weights
(ImageNet / scratch / cross-modality) and partial BN, and records what it did in
`model.init_record`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from tsn.modality import get_modality
from tsn.models.bn_inception import BNInception
from tsn.models.clarifai import ClarifaiNet, clarifai_zf
from tsn.models.consensus import CONSENSUS
from tsn.models.googlenet import GoogLeNet
from tsn.models.partial_bn import apply_partial_bn
from tsn.models.tiny import TinyNet
from tsn.models.tsn import TSN
from tsn.models.vgg import VGG16
from tsn.models.weights_init import InitRecord, initialise

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "bn_inception": BNInception,  # the release's backbone (default)
    "googlenet": GoogLeNet,  # Table 4
    "vgg16": VGG16,  # Table 4
    "clarifai": ClarifaiNet,  # Table 4 / two-stream baseline (two-stream widths)
    "clarifai_zf": clarifai_zf,  # ClarifaiNet with ZFNet widths (384, 384, 256)
    "tiny": TinyNet,  # 2-conv CPU net for smoke runs, the demo profile and tests (not the paper)
}


def build_backbone(name: str, in_channels: int, num_classes: int, dropout: float) -> nn.Module:
    """Construct the backbone called `name`; ValueError naming the known ones otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](in_channels=in_channels, num_classes=num_classes, dropout=dropout)


def build_tsn(
    backbone: str = "bn_inception",
    num_classes: int = 101,
    modality: str = "rgb",
    num_segments: int = 3,
    consensus: str = "avg",
    dropout: float | None = None,
    new_length: int | None = None,
    init: str = "imagenet",
    init_weights: str | Path | Mapping | None = None,
    partial_bn: str = "release",
) -> TSN:
    """Build a TSN for `modality`, initialise it, apply partial BN; see `model.init_record`.

    Args:
        dropout, new_length: None takes the modality's default (tsn.modality: rgb 0.8 / 1,
            flow 0.7 / 5).
        init: "imagenet" (release) loads `init_weights` (a converted .pt or a state dict) with
            cross-modality init of the first conv for non-RGB inputs; "cross_modality" is the
            same but raises unless that conversion happened; without weights both fall back
            to "scratch" (Caffe fillers) and say so in the record.
        partial_bn: "release" (default), "paper", "none" or "all" (tsn.models.partial_bn).

    A backbone with `torch_init = True` (the tiny CPU net) keeps PyTorch's default initialisers,
    drawn from the current torch seed, whatever `init` asks: the record says "random".
    """
    spec = get_modality(modality)
    if consensus not in CONSENSUS:
        raise ValueError(f"unknown consensus {consensus!r}: choose one of {tuple(CONSENSUS)}")
    length = spec.new_length if new_length is None else new_length
    ratio = spec.dropout if dropout is None else dropout
    net = build_backbone(backbone, length * spec.channels_per_frame, num_classes, ratio)
    if getattr(net, "torch_init", False):
        if init_weights is not None:
            raise ValueError(f"backbone {backbone!r} takes no initial weights (PyTorch's default "
                             "initialisers, seeded); drop init_weights")
        record = InitRecord("random", init, None, False,
                            "PyTorch default initialisers from the torch seed (no Caffe fillers)")
    else:
        record = initialise(net, init, init_weights)
    model = TSN(net, num_segments, length, spec.channels_per_frame, consensus)
    frozen = apply_partial_bn(model, partial_bn)
    model.init_record = {
        **record.as_dict(),
        "backbone": backbone,
        "modality": modality,
        "in_channels": length * spec.channels_per_frame,
        "dropout": ratio,
        "consensus": consensus,
        "num_segments": num_segments,
        "partial_bn": partial_bn,
        "frozen_bn_layers": frozen,
    }
    return model


__all__ = ["BACKBONES", "TSN", "apply_partial_bn", "build_backbone", "build_tsn"]
