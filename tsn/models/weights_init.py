"""Backbone initialisation: Caffe fillers (from scratch) or converted ImageNet weights.

Every path returns an `InitRecord`, so the run record can name how the net started (TSN Table 1
compares "from scratch", "ImageNet" and "+ cross modality").

Scratch (the fillers of the TSN prototxts, docs/caffe_release.md#bn-inception):
* conv: Caffe `xavier` = U(-sqrt(3/fan_in), +sqrt(3/fan_in)), fan_in = in_ch*kh*kw; bias 0.2;
* BN: scale 1, shift 0, running mean 0, running var 1;
* the classifier `.fc` ("fc-action"): gaussian std 0.001, bias 0;
* hidden fully connected layers (VGG fc6/fc7, ClarifaiNet full6/7; no TSN prototxt has them):
  the conv rule (xavier, bias 0.2) -- our choice.

ImageNet: a converted state dict (`python -m prototxt_port convert ... --out W.pt`, or any
`{key: tensor}` dict) is loaded with a strict name and shape check; the classifier `fc.*` is
never loaded (its 1000-way ImageNet shape cannot fit, and the release's init models lack
`fc-action`), it keeps its filler. When the weights' first conv has 3 channels and the model's
has another count, cross-modality init is applied (tsn.models.cross_modality).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeBatchNorm
from tsn.errors import WeightsError
from tsn.models.consensus import WeightedConsensus
from tsn.models.cross_modality import first_conv_key, init_first_conv_from_rgb

log = logging.getLogger(__name__)

CONV_BIAS_FILLER = 0.2  # prototxt bias_filler { type: "constant" value: 0.2 }
FC_STD = 0.001  # fc-action weight_filler { type: "gaussian" std: 0.001 }
INIT_MODES = ("imagenet", "cross_modality", "scratch")


@dataclass(frozen=True)
class InitRecord:
    """How a backbone was initialised; `as_dict()` goes into the run record."""

    init: str  # "imagenet" or "scratch": what actually happened
    requested: str  # what the caller asked for
    source: str | None  # weights file (or "<state_dict>"), None for scratch
    cross_modality: bool  # first conv built from the RGB kernel's channel mean (paper sec. 3.2)
    reason: str  # one line: why this init (e.g. the fallback reason)
    sha256: str | None = None  # from the converted file's meta, when present

    def as_dict(self) -> dict:
        """Plain dict for JSON run records."""
        return asdict(self)


def caffe_xavier_(weight: torch.Tensor) -> torch.Tensor:
    """Caffe's xavier filler (variance_norm FAN_IN): U(+-sqrt(3 / fan_in)), in place."""
    fan_in = weight[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def init_scratch(model: nn.Module) -> None:
    """Fill every layer with the Caffe fillers listed in the module docstring."""
    # The classifier of a backbone, or of a TSN wrapper's backbone.
    classifier = getattr(getattr(model, "backbone", model), "fc", None)
    for module in model.modules():
        if module is classifier:
            nn.init.normal_(module.weight, 0.0, FC_STD)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            caffe_xavier_(module.weight)
            if module.bias is not None:
                nn.init.constant_(module.bias, CONV_BIAS_FILLER)
        elif isinstance(module, CaffeBatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
        elif isinstance(module, WeightedConsensus):
            nn.init.constant_(module.weight, 1.0 / module.num_segments)


def read_weights(source: str | Path | Mapping) -> tuple[dict[str, torch.Tensor], str, dict]:
    """(state dict, printable source, meta) from a .pt path or an in-memory dict."""
    if isinstance(source, Mapping):
        payload, name = source, "<state_dict>"
    else:
        path = Path(source)
        name = str(path)
        if path.suffix == ".caffemodel":
            raise WeightsError(
                f"{path}: a Caffe model cannot be loaded directly; convert it first with "
                f"`python -m prototxt_port convert --prototxt <deploy.prototxt> --caffemodel {path}"
                " --out W.pt --allow-missing fc-action` and pass W.pt"
            )
        if not path.is_file():
            raise WeightsError(
                f"{path}: initial weights file not found; pass an existing converted .pt, "
                "or init='scratch' to train from the Caffe fillers"
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt/foreign files
            raise WeightsError(f"{path}: not a readable PyTorch weights file ({exc})") from exc
    meta: dict = {}
    if isinstance(payload, Mapping) and "state_dict" in payload:
        if payload.get("layout", "bn_inception") == "caffe_net":
            raise WeightsError(
                f"{name}: weights in 'caffe_net' layout (prototxt layer names) do not match a "
                "tsn backbone; convert with --layout bn_inception"
            )
        meta = dict(payload.get("meta") or {})
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in payload.values()
    ):
        raise WeightsError(f"{name}: expected a state dict {{key: tensor}} (or a converted .pt)")
    return dict(payload), name, meta


def load_imagenet(model: nn.Module, source: str | Path | Mapping) -> InitRecord:
    """Load converted ImageNet weights into `model` (strict), fc kept at its filler.

    Call after `init_scratch(model)` so that the classifier has the Caffe filler.
    """
    state, name, meta = read_weights(source)
    target = model.state_dict()
    ours = {k for k in target if not k.startswith("fc.")}
    theirs = {k for k in state if not k.startswith("fc.")}
    missing, unexpected = sorted(ours - theirs), sorted(theirs - ours)
    if missing or unexpected:
        raise WeightsError(
            f"{name}: parameter names do not match {type(model).__name__}: "
            f"missing {len(missing)} {missing[:4]}, unexpected {len(unexpected)} {unexpected[:4]}; "
            "were these weights converted for this backbone?"
        )
    conv_key = first_conv_key(model)
    cross = False
    loaded: dict[str, torch.Tensor] = {}
    for key in sorted(ours):
        src, dst = state[key], target[key]
        if key == conv_key and src.shape != dst.shape and src.dim() == 4 and src.shape[1] == 3:
            src = init_first_conv_from_rgb(src, dst.shape[1])
            cross = True
        if src.shape != dst.shape:
            raise WeightsError(
                f"{name}: {key} has shape {tuple(src.shape)}, the model needs {tuple(dst.shape)}; "
                "only the first conv may differ (3 RGB channels -> cross-modality init)"
            )
        loaded[key] = src.to(dtype=dst.dtype)
    model.load_state_dict(loaded, strict=False)
    log.info("loaded %d tensors from %s (cross-modality: %s)", len(loaded), name, cross)
    reason = "converted ImageNet weights"
    if cross:
        reason += ", first conv from the RGB channel mean"
    return InitRecord("imagenet", "imagenet", name, cross, reason, meta.get("sha256"))


def initialise(
    model: nn.Module, init: str = "imagenet", weights: str | Path | Mapping | None = None
) -> InitRecord:
    """Scratch-fill `model`, then load ImageNet weights when asked and given; returns the record.

    init="imagenet" loads the weights (cross-modality happens by itself when the weights' first
    conv is RGB and the model's is not); init="cross_modality" is the same but insists on it
    (TSN Table 1 row "+ Cross modality pre-training"). Without weights both fall back to
    scratch (logged as a warning, named in the record); a weights path that does not exist is
    an error, not a fallback.
    """
    if init not in INIT_MODES:
        raise ValueError(f"unknown init {init!r}: choose one of {INIT_MODES}")
    init_scratch(model)
    if init == "scratch":
        if weights is not None:
            raise ValueError("init='scratch' was given together with weights: drop one of them")
        return InitRecord("scratch", "scratch", None, False, "Caffe fillers (requested)")
    if weights is None:
        log.warning("no converted ImageNet weights given: initialising from scratch instead")
        return InitRecord(
            "scratch", init, None, False, "no ImageNet weights available: Caffe fillers"
        )
    record = load_imagenet(model, weights)
    if init == "cross_modality" and not record.cross_modality:
        raise WeightsError(
            f"{record.source}: init='cross_modality' needs RGB weights (3-channel first conv) "
            "and a model with another input (flow, rgb_diff); use init='imagenet' to load "
            "these weights as they are"
        )
    return replace(record, requested=init)
