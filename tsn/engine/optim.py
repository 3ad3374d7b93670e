"""Caffe's SGD solver, exactly (solver.cpp; docs/caffe_release.md#sgd-update).

Per iteration, with `g` the gradient SUMMED over the iter_size sub-iterations (and, with several
processes, already averaged over ranks by tsn.engine.distributed):

    norm = sqrt(sum over ALL blobs of ||g||^2)        # solver.cpp ClipGradients, before decay
    n    = norm / iter_size  (clip_mode "release")    # the norm the release's 4 GPUs compared
    n    = norm              (clip_mode "caffe_iter_size": Caffe's literal rule)
    if clip > 0 and n > clip: g *= clip / n
    g   /= iter_size                                  # Normalize
    g   += weight_decay * decay_mult * w              # Regularize (L2)
    h    = (lr * lr_mult) * g + momentum * h          # ComputeUpdateValue: lr lives IN the buffer
    w   -= h                                          # Net::Update

Why two clip modes (docs/engine.md, "Gradient clipping and iter_size"): Caffe clips after the
rank average but before dividing by iter_size, so its threshold depends on how the batch is
split. The release ran 4 GPUs x iter_size 1 and compared the norm of the rank-AVERAGED gradient
with 40 (RGB) / 20 (flow); one process with iter_size 4 under the literal rule compares the SUM
of four batch means, a 4x tighter clip. "release" (the default) compares the norm of the
gradient averaged over ranks and iter_size, whatever the split, which is what the release did;
at iter_size 1 the two modes are the same computation.

This differs from torch.optim.SGD (`h = m*h + g; w -= lr*h`) right after an lr drop: Caffe's
buffer still carries velocity scaled by the old lr. `param_specs(model, modality)` gives the
lr_mult / decay_mult of every blob of a native (non-prototxt) model, as the TSN train_val files
set them (docs/caffe_release.md#multipliers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from tsn.engine.choices import CLIP_MODES
from tsn.modality import get_modality

# solver.clip_mode values (tsn.engine.choices): "release" (default) clips the gradient averaged
# over ranks AND iter_size, as the release's 4 GPUs x iter_size 1 did; "caffe_iter_size" is
# solver.cpp's literal rule (clip the iter_size SUM). Same result at iter_size 1.
# what StepInfo.grad_norm (metrics.csv grad_norm) is the norm of, by clip mode
NORM_OF = {"release": "mean", "caffe_iter_size": "sum"}


@dataclass(frozen=True)
class ParamSpec:
    """One learnable (or statistics) blob and the multipliers Caffe's solver applies to it.

    prototxt_port.CaffeParam has the same fields, so a CaffeNet's `caffe_params()` can be
    passed to CaffeSGD directly.
    """

    name: str  # state-dict key (native models) or f"{layer}_{blob}" (prototxt nets)
    tensor: torch.Tensor  # nn.Parameter, or a buffer (BN running stats: lr 0, decay 0)
    lr_mult: float
    decay_mult: float


@dataclass(frozen=True)
class StepInfo:
    """What one solver step did: Caffe logs the norm and scale when it clips."""

    # the global L2 norm compared with clip_gradients, before clipping: of the gradient
    # averaged over iter_size ("mean", clip_mode release) or summed over it ("sum",
    # caffe_iter_size); both rank-averaged. Equal at iter_size 1.
    grad_norm: float
    clipped: bool
    clip_scale: float  # clip / grad_norm (in float32, as Caffe) when clipped, else 1.0
    norm_of: str  # "mean" | "sum": which gradient grad_norm measures (NORM_OF)


def check_clip_mode(clip_mode: str) -> None:
    """Unknown clip modes raise ValueError naming the valid ones."""
    if clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode {clip_mode!r}: use one of {CLIP_MODES} (release = clip the "
                         "gradient averaged over ranks and iter_size, as the release's 4 GPUs)")


def clip_mode_note(clip_mode: str) -> str:
    """The deviation note for score files and reports: "" for the release's rule."""
    check_clip_mode(clip_mode)
    if clip_mode == "release":
        return ""
    return ("clip_mode caffe_iter_size (Caffe's literal rule: the clip met the gradient summed "
            "over iter_size, tighter than the release's 4 GPUs x iter_size 1 when iter_size > 1)")


def clip_decision(summed_norm: float, clip_gradients: float, iter_size: int = 1,
                  clip_mode: str = "release") -> StepInfo:
    """Whether and by how much Caffe's ClipGradients scales the gradient (solver.cpp).

    `summed_norm` is the global L2 norm of the gradient summed over `iter_size` sub-iterations
    (and averaged over ranks). In "release" mode the norm compared with `clip_gradients` is that
    of the averaged gradient, summed_norm / iter_size, as the release (iter_size 1 on 4 GPUs)
    compared; in "caffe_iter_size" mode it is summed_norm itself. The scale clip / norm is
    rounded to float32, as Caffe computes it in Dtype. Scaling the sum by it and then dividing
    by iter_size equals clipping the averaged gradient.
    """
    check_clip_mode(clip_mode)
    norm = summed_norm / iter_size if clip_mode == "release" else summed_norm
    clipped = clip_gradients > 0 and norm > clip_gradients
    scale = 1.0
    if clipped:
        scale = float(torch.tensor(clip_gradients / norm, dtype=torch.float32))
    return StepInfo(norm, clipped, scale, NORM_OF[clip_mode])


# Caffe's Convolution and InnerProduct blobs as the TSN train_val prototxts set them: weight
# lr_mult 1, decay_mult 1; bias lr_mult 2, decay_mult 0 (docs/caffe_release.md#multipliers).
# Any other module that owns parameters declares its own: `caffe_multipliers()` returning
# {parameter name: (lr_mult, decay_mult)} (prototxt_port.caffe_layers.CaffeBatchNorm,
# tsn.models.consensus.WeightedConsensus).
LAYER_MULTIPLIERS: dict[type, dict[str, tuple[float, float]]] = {
    nn.Conv2d: {"weight": (1.0, 1.0), "bias": (2.0, 0.0)},
    nn.Linear: {"weight": (1.0, 1.0), "bias": (2.0, 0.0)},
}


def module_multipliers(module: nn.Module) -> dict[str, tuple[float, float]] | None:
    """{parameter name: (lr_mult, decay_mult)} of one module's own parameters, or None when
    neither the module (`caffe_multipliers()`) nor LAYER_MULTIPLIERS gives a policy."""
    declared = getattr(module, "caffe_multipliers", None)
    if declared is not None:
        return dict(declared())
    return LAYER_MULTIPLIERS.get(type(module))


def param_specs(model: nn.Module, modality: str = "rgb") -> list[ParamSpec]:
    """lr_mult / decay_mult of every parameter of a native TSN model, as the train_val prototxts.

    Each module's own multipliers (`module_multipliers`: conv / linear weight 1/1, bias 2/0;
    CaffeBatchNorm scale and shift 1/0 when trainable, 0/0 when frozen, as bn_layer.cpp forces);
    the first convolution's are multiplied by the modality's `first_conv_lr_boost` (flow 5:
    5/10 with decay 1/0, tsn_bn_inception_flow_train_val.prototxt). Running statistics are
    buffers, left to the forward pass. A module that owns parameters without a policy raises:
    it needs one first.
    """
    specs: list[ParamSpec] = []
    # conv1/7x7_s2 is the first convolution in module (= prototxt) order
    first_conv = next((m for m in model.modules() if type(m) is nn.Conv2d), None)
    boost = get_modality(modality).first_conv_lr_boost
    for module_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        prefix = f"{module_name}." if module_name else ""
        mults = module_multipliers(module)
        if mults is None:
            raise TypeError(
                f"module {module_name!r} of type {type(module).__name__} has parameters "
                f"{sorted(own)} but no lr_mult/decay_mult policy: give it a "
                "`caffe_multipliers()` method (docs/caffe_release.md#multipliers) before training"
            )
        if module is first_conv:
            mults = {k: (lr * boost, decay) for k, (lr, decay) in mults.items()}
        for attr, tensor in own.items():
            if attr not in mults:
                raise TypeError(f"{prefix}{attr}: no lr_mult/decay_mult policy for this tensor")
            lr_mult, decay_mult = mults[attr]
            specs.append(ParamSpec(prefix + attr, tensor, lr_mult, decay_mult))
    return specs


class CaffeSGD:
    """Caffe's SGDSolver update on a list of ParamSpec-like records (name, tensor, mults).

    `clip_mode` chooses which norm meets `clip_gradients` when iter_size > 1 (CLIP_MODES,
    `clip_decision`); the default is the release's.
    """

    def __init__(
        self,
        params: Iterable,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        clip_gradients: float = 0.0,
        clip_mode: str = "release",
    ) -> None:
        check_clip_mode(clip_mode)
        self.clip_mode = clip_mode
        self.params: list = list(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError("CaffeSGD: parameter names must be unique")
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.clip_gradients = clip_gradients  # solver clip_gradients; <= 0 means off (Caffe)
        # history: the momentum buffer h of every blob, 0 at start (saved in .solverstate)
        self.history = {p.name: torch.zeros_like(p.tensor) for p in self.params}

    def grads(self) -> list[torch.Tensor | None]:
        """The accumulated gradient of each blob (None where nothing flowed, e.g. frozen BN)."""
        return [getattr(p.tensor, "grad", None) for p in self.params]

    def zero_grad(self) -> None:
        """Reset accumulated gradients to None before the next iteration's sub-iterations."""
        for p in self.params:
            if isinstance(p.tensor, nn.Parameter):
                p.tensor.grad = None

    def global_norm(self) -> torch.Tensor:
        """L2 norm over all blobs' summed gradients (lr_mult-0 blobs contribute 0), float64.

        Per-blob norms are float32 (Caffe sums squares in Dtype too); they are combined in float64.
        """
        grads = [g.detach() for g in self.grads() if g is not None]
        if not grads:
            return torch.zeros((), dtype=torch.float64)
        norms = torch.stack(torch._foreach_norm(grads)).double()
        return norms.pow(2).sum().sqrt()

    @torch.no_grad()
    def step(self, lr: float, iter_size: int = 1, norm: float | None = None) -> StepInfo:
        """Apply one Caffe update with learning rate `lr`; gradients are consumed (set to None).

        `norm` may pass the global norm of the summed gradient (`global_norm`) when the caller
        already computed it; the clip decision follows `self.clip_mode` (`clip_decision`). The
        math is per blob; it runs as multi-tensor (foreach) kernels over blobs sharing
        multipliers.
        """
        norm = float(self.global_norm()) if norm is None else norm
        info = clip_decision(norm, self.clip_gradients, iter_size, self.clip_mode)
        clipped, scale = info.clipped, info.clip_scale
        groups: dict[tuple[float, float], list[tuple]] = {}
        for p, g in zip(self.params, self.grads()):
            if p.lr_mult == 0.0:
                # h = 0 * g + m * h stays 0 from a zero start: nothing moves (frozen BN, stats)
                continue
            g = torch.zeros_like(p.tensor) if g is None else g.detach()
            groups.setdefault((p.lr_mult, p.decay_mult), []).append(
                (p.tensor.data, g, self.history[p.name])
            )
        for (lr_mult, decay_mult), members in groups.items():
            ws, gs, hs = (list(t) for t in zip(*members))
            # the gradient buffers are consumed: Caffe also rewrites the diffs in place
            if clipped:
                torch._foreach_mul_(gs, scale)
            if iter_size > 1:
                torch._foreach_mul_(gs, 1.0 / iter_size)  # Normalize
            local_decay = self.weight_decay * decay_mult
            if local_decay:
                torch._foreach_add_(gs, ws, alpha=local_decay)  # Regularize (L2)
            # caffe_cpu_axpby(local_rate, diff, momentum, history), then w -= history
            torch._foreach_mul_(hs, self.momentum)
            torch._foreach_add_(hs, gs, alpha=lr * lr_mult)
            torch._foreach_sub_(ws, hs)
        self.zero_grad()
        return info

    def state_dict(self) -> dict:
        """Momentum history by blob name plus the hyper-parameters (for checkpoints)."""
        return {
            "history": {k: v.detach().clone() for k, v in self.history.items()},
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "clip_gradients": self.clip_gradients,
            "clip_mode": self.clip_mode,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the momentum history; names and shapes must match this model exactly."""
        history = state["history"]
        missing = sorted(set(self.history) - set(history))
        extra = sorted(set(history) - set(self.history))
        if missing or extra:
            raise ValueError(
                f"optimizer state does not fit this model: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
        for name, buf in self.history.items():
            saved = history[name]
            if tuple(saved.shape) != tuple(buf.shape):
                raise ValueError(
                    f"optimizer state {name}: shape {tuple(saved.shape)} != {tuple(buf.shape)}"
                )
            buf.copy_(saved.to(buf.device, buf.dtype))

