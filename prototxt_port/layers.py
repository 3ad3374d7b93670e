"""PyTorch implementations of the Caffe layer types found in the TSN prototxts.

Each builder takes the LayerParameter and the bottom shapes (meta tensors, or None where the
shape is unknown) and returns (module or None, forward function). Forward functions take the
layer's module (None for parameterless layers) and the list of bottom tensors, and return the
list of top tensors. Numerics follow the TSN Caffe fork
(docs/caffe_release.md#bn-inception, #bn-layer, #other-numerics).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from prototxt_port import caffe_pb2
from prototxt_port.caffe_layers import CaffeBatchNorm, CaffeDropout
from prototxt_port.errors import CaffeFormatError

# forward(module or None, bottoms) -> tops
Forward = Callable[[nn.Module | None, list[torch.Tensor]], list[torch.Tensor]]

# Layer types whose tops are the net's inputs (fed by the caller, not computed).
DATA_LAYER_TYPES = {"VideoData", "HDF5Data", "Data", "ImageData", "MemoryData", "Input"}


def _pair(param, name: str, default: int | None = None) -> tuple[int, int]:
    """Caffe's square-or-(h, w) fields: kernel_size / kernel_h+kernel_w, etc."""
    h, w = f"{name}_h", f"{name}_w"
    if param.HasField(h) or param.HasField(w):
        return getattr(param, h), getattr(param, w)
    single = name if name != "kernel" else "kernel_size"
    if param.HasField(single) or default is None:
        value = getattr(param, single)
        return value, value
    return default, default


def _channels(bottom: torch.Tensor | None, blob_shapes, blob_dim: int, layer, what: str) -> int:
    """Input size of a parameter layer: from the bottom's shape, else from the weights given."""
    if bottom is not None:
        return int(bottom.shape[1]) if what == "channels" else int(math.prod(bottom.shape[1:]))
    if blob_shapes:
        return int(blob_shapes[0][blob_dim])
    raise CaffeFormatError(
        f"layer {layer.name!r} ({layer.type}): its input shape is unknown (the data layer does not "
        "declare it) and no weights were given; pass input_shapes={'<blob>': (N, C, H, W)}"
    )


def _positive(layer, **values) -> None:
    """Caffe CHECKs these are > 0 at set-up; say so instead of building an empty layer."""
    for name, value in values.items():
        smallest = min(value) if isinstance(value, tuple) else value
        if smallest <= 0:
            raise CaffeFormatError(
                f"layer {layer.name!r} ({layer.type}): {name} must be > 0, got {value}"
            )


def build_convolution(layer, bottoms, blob_shapes) -> tuple[nn.Module, Forward]:
    p = layer.convolution_param
    kernel = _pair(p, "kernel")
    stride = _pair(p, "stride", 1)
    _positive(layer, num_output=p.num_output, kernel_size=kernel, stride=stride, group=p.group)
    pad = _pair(p, "pad", 0)
    dilation = (p.dilation, p.dilation)
    if p.HasField("dilation_h") or p.HasField("dilation_w"):
        dilation = (p.dilation_h, p.dilation_w)
    group = p.group
    if blob_shapes and bottoms[0] is None:
        c_in = int(blob_shapes[0][1]) * group
    else:
        c_in = _channels(bottoms[0], blob_shapes, 1, layer, "channels")
    conv = nn.Conv2d(c_in, p.num_output, kernel, stride, pad, dilation, group, bias=p.bias_term)
    return conv, lambda m, xs: [m(xs[0])]


def build_inner_product(layer, bottoms, blob_shapes) -> tuple[nn.Module, Forward]:
    p = layer.inner_product_param
    _positive(layer, num_output=p.num_output)
    axis = p.axis
    if bottoms[0] is not None:
        in_features = int(math.prod(bottoms[0].shape[axis:]))
    else:
        # weight (out, in), or legacy 4-D (1, 1, out, in): `in` is the last dim either way
        in_features = _channels(None, blob_shapes, -1, layer, "features")
    fc = nn.Linear(in_features, p.num_output, bias=p.bias_term)
    return fc, lambda m, xs: [m(xs[0].flatten(axis))]


def build_bn(layer, bottoms, blob_shapes) -> tuple[nn.Module, Forward]:
    p = layer.bn_param
    if bottoms[0] is not None:
        channels = int(bottoms[0].shape[1])
    else:
        # scale blob (1, C), or legacy 4-D (1, C, 1, 1)
        channels = (
            int(math.prod(blob_shapes[0]))
            if blob_shapes
            else _channels(None, blob_shapes, -1, layer, "channels")
        )
    bn = CaffeBatchNorm(channels, eps=p.eps, momentum=p.momentum, frozen=p.frozen)
    return bn, lambda m, xs: [m(xs[0])]


def build_pooling(layer, bottoms, blob_shapes) -> tuple[nn.Module | None, Forward]:
    p = layer.pooling_param
    if p.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
        raise CaffeFormatError(f"layer {layer.name!r}: STOCHASTIC pooling is not supported")
    if p.global_pooling:
        if bottoms[0] is None:
            raise CaffeFormatError(
                f"layer {layer.name!r}: global pooling needs a known input shape"
            )
        kernel, stride, pad = tuple(bottoms[0].shape[2:]), (1, 1), (0, 0)
    else:
        kernel, stride, pad = _pair(p, "kernel"), _pair(p, "stride", 1), _pair(p, "pad", 0)
        _positive(layer, kernel_size=kernel, stride=stride)
    # Caffe always rounds the output size up (no round-mode field, pooling_layer.cpp), and its
    # AVE pool divides by the window clipped to the padded input: count_include_pad=True.
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        pool = nn.MaxPool2d(kernel, stride, pad, ceil_mode=True)
    else:
        pool = nn.AvgPool2d(kernel, stride, pad, ceil_mode=True, count_include_pad=True)
    return None, lambda _m, xs: [pool(xs[0])]


def build_relu(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    slope = layer.relu_param.negative_slope
    if slope:
        return None, lambda _m, xs: [F.leaky_relu(xs[0], slope)]
    return None, lambda _m, xs: [torch.relu(xs[0])]


def build_dropout(layer, bottoms, blob_shapes) -> tuple[nn.Module, Forward]:
    drop = CaffeDropout(layer.dropout_param.dropout_ratio)
    return drop, lambda m, xs: [m(xs[0])]


def build_concat(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    p = layer.concat_param
    axis = p.axis if p.HasField("axis") or not p.HasField("concat_dim") else p.concat_dim
    return None, lambda _m, xs: [torch.cat(xs, dim=axis)]


def _reshape_target(in_shape, param) -> list[int]:
    """Caffe Reshape: 0 copies the bottom dim, -1 is inferred; axis/num_axes select a range."""
    dims = list(param.shape.dim)
    n = len(in_shape)
    start = param.axis if param.axis >= 0 else n + param.axis + 1
    end = n if param.num_axes == -1 else start + param.num_axes
    out = [in_shape[start + i] if d == 0 else int(d) for i, d in enumerate(dims)]
    return list(in_shape[:start]) + out + list(in_shape[end:])


def build_reshape(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    param = layer.reshape_param
    return None, lambda _m, xs: [xs[0].reshape(_reshape_target(tuple(xs[0].shape), param))]


def build_flatten(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    p = layer.flatten_param
    return None, lambda _m, xs: [xs[0].flatten(p.axis, p.end_axis)]


def build_softmax(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    axis = layer.softmax_param.axis
    return None, lambda _m, xs: [torch.softmax(xs[0], dim=axis)]


def build_softmax_loss(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    axis = layer.softmax_param.axis
    normalize = layer.loss_param.normalize
    ignore = layer.loss_param.ignore_label if layer.loss_param.HasField("ignore_label") else None

    def forward(_m, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        scores, label = xs
        logp = torch.log_softmax(scores, dim=axis).movedim(axis, -1)
        logp = logp.reshape(-1, logp.shape[-1])  # (outer * inner, classes)
        target = label.reshape(-1).long()
        valid = torch.ones_like(target, dtype=torch.bool) if ignore is None else target != ignore
        picked = logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
        total = -(picked * valid).sum()
        # normalize: divide by the number of (non-ignored) labels; else by the outer count.
        outer = int(math.prod(scores.shape[:axis]))
        count = valid.sum().clamp(min=1) if normalize else outer
        return [total / count]

    return None, forward


def build_accuracy(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    p = layer.accuracy_param

    def forward(_m, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        scores, label = xs
        flat = scores.movedim(p.axis, -1).reshape(-1, scores.shape[p.axis])
        top = flat.topk(p.top_k, dim=1).indices
        hit = (top == label.reshape(-1, 1).long()).any(dim=1)
        return [hit.float().mean()]

    return None, forward


def build_eltwise(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    p = layer.eltwise_param
    op = p.operation
    coeffs = list(p.coeff)

    def forward(_m, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if op == caffe_pb2.EltwiseParameter.PROD:
            return [math.prod(xs[1:], start=xs[0])]
        if op == caffe_pb2.EltwiseParameter.MAX:
            return [torch.stack(xs).amax(0)]
        weights = coeffs or [1.0] * len(xs)
        return [sum(w * x for w, x in zip(weights, xs))]

    return None, forward


def build_split(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    count = len(layer.top)
    return None, lambda _m, xs: [xs[0]] * count


def build_silence(layer, bottoms, blob_shapes) -> tuple[None, Forward]:
    return None, lambda _m, xs: []


BUILDERS = {
    "Convolution": build_convolution,
    "InnerProduct": build_inner_product,
    "BN": build_bn,
    "Pooling": build_pooling,
    "ReLU": build_relu,
    "Dropout": build_dropout,
    "Concat": build_concat,
    "Reshape": build_reshape,
    "Flatten": build_flatten,
    "Softmax": build_softmax,
    "SoftmaxWithLoss": build_softmax_loss,
    "Accuracy": build_accuracy,
    "Eltwise": build_eltwise,
    "Split": build_split,
    "Silence": build_silence,
}

# Caffe blob order of each parameter layer: (module attribute, Caffe blob shape from torch's).
BLOB_LAYOUT = {
    "Convolution": [("weight", None), ("bias", None)],
    "InnerProduct": [("weight", None), ("bias", None)],
    # BN blobs are (1, C) in the fork (bn_layer.cpp), torch keeps (C,)
    "BN": [("weight", "1C"), ("bias", "1C"), ("running_mean", "1C"), ("running_var", "1C")],
}

# (min bottoms, max bottoms, min tops, max tops) per type; None = unbounded.
ARITY = {
    "Convolution": (1, 1, 1, 1),
    "InnerProduct": (1, 1, 1, 1),
    "BN": (1, 1, 1, 1),
    "Pooling": (1, 1, 1, 1),
    "ReLU": (1, 1, 1, 1),
    "Dropout": (1, 1, 1, 1),
    "Concat": (1, None, 1, 1),
    "Reshape": (1, 1, 1, 1),
    "Flatten": (1, 1, 1, 1),
    "Softmax": (1, 1, 1, 1),
    "SoftmaxWithLoss": (2, 2, 1, 1),
    "Accuracy": (2, 2, 1, 1),
    "Eltwise": (2, None, 1, 1),
    "Split": (1, 1, 1, None),
    "Silence": (1, None, 0, 0),
}


def check_arity(layer) -> str | None:
    """What is wrong with the number of bottoms/tops of a layer, or None."""
    low_b, high_b, low_t, high_t = ARITY[layer.type]
    for what, count, low, high in (
        ("bottom", len(layer.bottom), low_b, high_b),
        ("top", len(layer.top), low_t, high_t),
    ):
        if count < low or (high is not None and count > high):
            want = f"{low}" if low == high else f"{low} to {high or 'any'}"
            return f"a {layer.type} layer takes {want} {what}(s), this one has {count}"
    return None
