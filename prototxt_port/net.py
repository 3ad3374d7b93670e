"""Build a PyTorch module from a Caffe prototxt, with the TSN fork's semantics.

`load_net(prototxt, caffemodel, phase)` returns a CaffeNet whose forward takes the net's input
blobs (the tops of its data layers, or its `input` fields) and returns every top blob by name.
Shapes are worked out layer by layer on the meta device, so a net builds without data.
"""

from __future__ import annotations

import copy
import difflib
import functools
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prototxt_port import caffe_pb2
from prototxt_port.caffemodel import read_caffemodel
from prototxt_port.errors import CaffeFormatError
from prototxt_port.layers import BLOB_LAYOUT, BUILDERS, DATA_LAYER_TYPES, check_arity
from prototxt_port.prototxt import layer_in_phase, parse_prototxt, phase_value

log = logging.getLogger(__name__)

# Names a ModuleDict cannot hold as keys (its own attributes).
_RESERVED_KEYS = frozenset(dir(nn.ModuleDict()))

# Element-wise layers: the top has the bottom's shape.
SHAPE_PRESERVING = {"BN", "ReLU", "Dropout"}


@dataclass(frozen=True)
class CaffeParam:
    """One Caffe blob of a parameter layer, with the multipliers the Caffe solver applies."""

    name: str  # f"{layer}_{blob_index}", e.g. "conv1_bn_3"
    layer: str
    index: int
    tensor: torch.Tensor  # nn.Parameter, or a buffer for BN running statistics
    lr_mult: float
    decay_mult: float


@dataclass(frozen=True)
class _Step:
    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]


def _line_of(path: Path, layer_name: str) -> str:
    """' (line N)' where the layer's name is defined in the prototxt, for error messages."""
    try:
        stat = path.stat()
    except OSError:
        return ""
    for number, line in enumerate(_prototxt_lines(path, stat.st_mtime_ns, stat.st_size), start=1):
        if f'"{layer_name}"' in line and "name" in line:
            return f" (line {number})"
    return ""


@functools.lru_cache(maxsize=8)
def _prototxt_lines(path: Path, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    """The file's lines, cached per (path, modification time, size)."""
    try:
        return tuple(path.read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return ()


def _data_shapes(layer: caffe_pb2.LayerParameter) -> list[tuple[int, ...] | None]:
    """Top shapes a data layer declares (VideoData: batch x K*new_length*C x crop x crop)."""
    if layer.type == "VideoData":
        v, t = layer.video_data_param, layer.transform_param
        per_frame = 3 if v.modality == caffe_pb2.VideoDataParameter.RGB else 2
        channels = v.num_segments * v.new_length * per_frame
        side = t.crop_size or v.crop_size
        data = (v.batch_size, channels, side, side) if side else None
        return [data, (v.batch_size,)][: len(layer.top)]
    return [None] * len(layer.top)


def _net_inputs(net_def: caffe_pb2.NetParameter) -> list[tuple[str, tuple[int, ...] | None]]:
    """The deploy-style `input:` blobs with their input_dim / input_shape."""
    inputs = []
    for i, name in enumerate(net_def.input):
        if len(net_def.input_shape) > i:
            inputs.append((name, tuple(int(d) for d in net_def.input_shape[i].dim)))
        elif len(net_def.input_dim) >= 4 * (i + 1):
            inputs.append((name, tuple(net_def.input_dim[4 * i : 4 * i + 4])))
        else:
            inputs.append((name, None))
    return inputs


def _caffe_shape(tensor: torch.Tensor, rule: str | None) -> tuple[int, ...]:
    return (1, tensor.numel()) if rule == "1C" else tuple(tensor.shape)


class CaffeNet(nn.Module):
    """A Caffe net as an nn.Module: forward(*inputs) -> {top blob name: tensor}."""

    def __init__(
        self,
        prototxt_path: str | Path,
        phase: str = "test",
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        blob_shapes: Mapping[str, list[tuple[int, ...]]] | None = None,
    ) -> None:
        super().__init__()
        self.prototxt_path = Path(prototxt_path)
        self.phase = phase
        self.net_def = parse_prototxt(prototxt_path)
        if self.net_def.layers:
            raise CaffeFormatError(
                f"{prototxt_path}: uses the legacy V1 'layers' definitions; upgrade it with "
                "Caffe's upgrade_net_proto_text tool (only caffemodels may be V1)"
            )
        self.layers = nn.ModuleDict()
        self.steps: list[_Step] = []
        self.input_names: list[str] = []
        self.specs: dict[str, caffe_pb2.LayerParameter] = {}
        self._forwards = {}
        self._build(phase_value(phase), dict(input_shapes or {}), dict(blob_shapes or {}))
        self.train(phase == "train")

    # ------------------------------------------------------------------ building
    def _build(self, phase: int, input_shapes: dict, blob_shapes: dict) -> None:
        meta: dict[str, torch.Tensor | None] = {}

        def add_input(name: str, shape) -> None:
            shape = input_shapes.get(name, shape)
            self.input_names.append(name)
            meta[name] = None if shape is None else torch.empty(tuple(shape), device="meta")

        for name, shape in _net_inputs(self.net_def):
            add_input(name, shape)
        for layer in self.net_def.layer:
            if not layer_in_phase(layer, phase):
                continue
            line = _line_of(self.prototxt_path, layer.name)
            where = f"{self.prototxt_path}: layer {layer.name!r}{line}"
            if layer.name in self.specs:
                raise CaffeFormatError(f"{where}: a second layer has this name in the same phase")
            if layer.type in DATA_LAYER_TYPES:
                for top, shape in zip(layer.top, _data_shapes(layer)):
                    add_input(top, shape)
                continue
            if layer.type not in BUILDERS:
                raise CaffeFormatError(
                    f"{where}: unknown layer type {layer.type!r}; prototxt_port implements "
                    f"{', '.join(sorted(BUILDERS))} and the data layers {sorted(DATA_LAYER_TYPES)}"
                )
            problem = check_arity(layer)
            if problem:
                raise CaffeFormatError(f"{where}: {problem}")
            for bottom in layer.bottom:
                if bottom not in meta:
                    close = difflib.get_close_matches(bottom, list(meta), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise CaffeFormatError(
                        f"{where}: bottom {bottom!r} is not produced by any earlier layer{hint}"
                    )
            bottoms = [meta[b] for b in layer.bottom]
            try:
                module, forward = BUILDERS[layer.type](layer, bottoms, blob_shapes.get(layer.name))
            except CaffeFormatError as err:
                raise CaffeFormatError(f"{self.prototxt_path}: {err}") from None
            except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as err:
                raise CaffeFormatError(f"{where}: invalid {layer.type} parameters: {err}") from None
            if module is not None:
                self.layers[module_key(layer.name, where)] = module
                _init_from_fillers(layer, module)
            self.specs[layer.name] = layer
            self._forwards[layer.name] = forward
            self.steps.append(_Step(layer.name, layer.type, tuple(layer.bottom), tuple(layer.top)))
            tops = self._infer(layer, module, forward, bottoms, where)
            for top, value in zip(layer.top, tops):
                meta[top] = value
        self._meta_shapes = {k: (None if v is None else tuple(v.shape)) for k, v in meta.items()}

    def _infer(self, layer, module, forward, bottoms, where) -> list[torch.Tensor | None]:
        """Top shapes of one layer, computed on the meta device (None where unknown)."""
        if any(b is None for b in bottoms):
            return [None] * len(layer.top)
        if layer.type in SHAPE_PRESERVING:  # skip the (slow) meta kernels: same shape out
            return [bottoms[0]]
        try:
            with torch.no_grad():
                meta_module = None if module is None else copy.deepcopy(module).to("meta")
                return forward(meta_module, bottoms)
        except (RuntimeError, ValueError) as err:
            shapes = [tuple(b.shape) for b in bottoms]
            raise CaffeFormatError(
                f"{where}: cannot apply it to inputs of shape {shapes}: {err}"
            ) from None

    # ------------------------------------------------------------------ running
    def forward(
        self, *inputs: torch.Tensor, **named: torch.Tensor
    ) -> OrderedDict[str, torch.Tensor]:
        """Run the net. Positional inputs fill the input blobs in order; returns every top."""
        if len(inputs) > len(self.input_names):
            raise ValueError(f"net takes {len(self.input_names)} inputs {self.input_names}")
        blobs: OrderedDict[str, torch.Tensor] = OrderedDict(zip(self.input_names, inputs))
        blobs.update(named)
        for step in self.steps:
            missing = [b for b in step.bottoms if b not in blobs]
            if missing:
                raise ValueError(f"layer {step.name!r} needs input blob {missing[0]!r}; pass it")
            module = self.module(step.name)
            tops = self._forwards[step.name](module, [blobs[b] for b in step.bottoms])
            blobs.update(zip(step.tops, tops))
        return blobs

    def module(self, layer_name: str) -> nn.Module | None:
        """The module of a Caffe layer (None for parameterless layers)."""
        key = module_key(layer_name)
        return self.layers[key] if key in self.layers else None

    def caffe_params(self) -> list[CaffeParam]:
        """Every blob of every parameter layer, in Caffe's order, with lr/decay multipliers."""
        params = []
        for step in self.steps:
            if step.type not in BLOB_LAYOUT:
                continue
            module = self.module(step.name)
            specs = list(self.specs[step.name].param)
            for index, (attr, _rule) in enumerate(BLOB_LAYOUT[step.type]):
                tensor = getattr(module, attr)
                if tensor is None:  # bias_term: false
                    continue
                spec = specs[index] if index < len(specs) else caffe_pb2.ParamSpec()
                lr_mult, decay_mult = spec.lr_mult, spec.decay_mult
                if step.type == "BN" and (index >= 2 or module.frozen):
                    # bn_layer.cpp LayerSetUp: stats never learn; frozen forces 0 on scale/shift
                    lr_mult = decay_mult = 0.0
                params.append(
                    CaffeParam(
                        f"{step.name}_{index}", step.name, index, tensor, lr_mult, decay_mult
                    )
                )
        return params

    def num_learnable(self) -> int:
        """Count of learnable values (conv, BN scale/shift, fc), as Caffe's parameter tables do."""
        return sum(
            p.tensor.numel() for p in self.caffe_params() if isinstance(p.tensor, nn.Parameter)
        )

    def blob_shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of a top blob worked out at build time (None where the input was unknown)."""
        return self._meta_shapes.get(name)

    # ------------------------------------------------------------------ weights
    def caffe_blobs(self) -> OrderedDict[str, list[np.ndarray]]:
        """Layer name -> float32 arrays in Caffe blob order and shape (for write_caffemodel)."""
        out: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        for step in self.steps:
            if step.type in BLOB_LAYOUT:
                module = self.module(step.name)
                arrays = []
                for attr, rule in BLOB_LAYOUT[step.type]:
                    tensor = getattr(module, attr)
                    if tensor is not None:
                        shape = _caffe_shape(tensor, rule)
                        arrays.append(
                            tensor.detach().cpu().numpy().reshape(shape).astype(np.float32)
                        )
                out[step.name] = arrays
        return out

    def load_blobs(
        self,
        blobs: Mapping[str, Sequence[np.ndarray]],
        source: str = "weights",
        strict: bool = True,
        allow_missing: Iterable[str] = (),
    ) -> list[str]:
        """Copy Caffe blobs into the net by layer name with strict shape checks.

        strict=True: every parameter layer must get weights (except those in `allow_missing`,
        e.g. fc-action for ImageNet init models) and every weight must find a layer.
        strict=False is Caffe's CopyTrainedLayersFrom: extra layers are ignored and missing
        ones keep their filler values. Missing layers are returned and logged, so the caller
        can say so. Nothing is changed when an error is raised.
        """
        param_layers = [s for s in self.steps if s.type in BLOB_LAYOUT]
        names = {s.name for s in param_layers}
        allowed = set(allow_missing)
        extra = [n for n in blobs if n not in names]
        missing = [s.name for s in param_layers if s.name not in blobs]
        unexpected = [name for name in missing if name not in allowed]
        if strict and (extra or unexpected):
            problem = (
                f"has weights for {extra[0]!r}, which is not a parameter layer of the net"
                if extra
                else f"has no weights for layer {unexpected[0]!r}"
            )
            count = len(extra) + len(unexpected)
            raise CaffeFormatError(
                f"{source}: {problem} ({count} mismatched layer(s) in all: extra {extra[:5]}, "
                f"missing {unexpected[:5]}); "
                f"check that the caffemodel belongs to {self.prototxt_path}"
            )
        updates = []
        for step in param_layers:
            if step.name not in blobs:
                continue
            module = self.module(step.name)
            targets = [(a, r) for a, r in BLOB_LAYOUT[step.type] if getattr(module, a) is not None]
            arrays = list(blobs[step.name])
            if len(arrays) != len(targets):
                raise CaffeFormatError(
                    f"{source}: layer {step.name!r} has {len(arrays)} blobs, the {step.type} layer "
                    f"in {self.prototxt_path.name} needs {len(targets)}"
                )
            for index, ((attr, rule), array) in enumerate(zip(targets, arrays)):
                tensor = getattr(module, attr)
                want = _caffe_shape(tensor, rule)
                array = np.asarray(array, dtype=np.float32)
                if tuple(array.shape) != want and not _legacy_compatible(array.shape, want):
                    raise CaffeFormatError(
                        f"{source}: blob {step.name}[{index}] has shape {tuple(array.shape)}, the "
                        f"net needs {want}; the caffemodel does not match {self.prototxt_path.name}"
                    )
                updates.append((tensor, array))
        with torch.no_grad():
            for tensor, array in updates:
                tensor.copy_(torch.from_numpy(array.reshape(tuple(tensor.shape))))
        for name in missing:
            log.warning("%s: no weights for layer %r: it keeps its filler values", source, name)
        return missing


def module_key(layer_name: str, where: str = "") -> str:
    """ModuleDict key of a Caffe layer: '%' and '.' escaped (Caffe allows '.' in names)."""
    key = layer_name.replace("%", "%25").replace(".", "%2E")
    if not key or key in _RESERVED_KEYS:
        raise CaffeFormatError(
            f"{where or repr(layer_name)}: layer name {layer_name!r} is empty or "
            "reserved by PyTorch; rename the layer"
        )
    return key


def layer_name_of(key: str) -> str:
    """Inverse of module_key."""
    return key.replace("%2E", ".").replace("%25", "%")


def _legacy_compatible(have: Sequence[int], want: Sequence[int]) -> bool:
    """Legacy 4-D blobs (num, channels, height, width) left-pad the real shape with 1s."""
    if len(have) != 4 or math.prod(have) != math.prod(want):
        return False
    squeezed_have = [d for d in have if d != 1]
    squeezed_want = [d for d in want if d != 1]
    return squeezed_have == squeezed_want


def _init_from_fillers(layer: caffe_pb2.LayerParameter, module: nn.Module) -> None:
    """Initialise a parameter layer the way Caffe's fillers would (for layers not loaded)."""
    if layer.type == "Convolution":
        p = layer.convolution_param
        _fill(module.weight, p.weight_filler if p.HasField("weight_filler") else None)
        if module.bias is not None:
            _fill(module.bias, p.bias_filler if p.HasField("bias_filler") else None)
    elif layer.type == "InnerProduct":
        p = layer.inner_product_param
        _fill(module.weight, p.weight_filler if p.HasField("weight_filler") else None)
        if module.bias is not None:
            _fill(module.bias, p.bias_filler if p.HasField("bias_filler") else None)
    elif layer.type == "BN":
        p = layer.bn_param
        _fill(module.weight, p.slope_filler if p.HasField("slope_filler") else None, default=1.0)
        _fill(module.bias, p.bias_filler if p.HasField("bias_filler") else None)


def _fill(tensor: torch.Tensor, filler, default: float = 0.0) -> None:
    """Caffe fillers: constant, gaussian, uniform, xavier (U(+-sqrt(3/fan_in))), msra."""
    with torch.no_grad():
        if filler is None:
            tensor.fill_(default)
            return
        fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
        fan_out = tensor.shape[0] * (tensor[0][0].numel() if tensor.dim() > 2 else 1)
        norm = {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[filler.variance_norm]
        kind = filler.type
        if kind == "constant":
            tensor.fill_(filler.value)
        elif kind == "gaussian":
            tensor.normal_(filler.mean, filler.std)
        elif kind == "uniform":
            tensor.uniform_(filler.min, filler.max)
        elif kind == "xavier":
            bound = math.sqrt(3.0 / norm)
            tensor.uniform_(-bound, bound)
        elif kind == "msra":
            tensor.normal_(0.0, math.sqrt(2.0 / norm))
        else:
            raise CaffeFormatError(f"filler type {kind!r} is not supported")


def load_net(
    prototxt_path: str | Path,
    caffemodel_path: str | Path | None = None,
    phase: str = "test",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    strict: bool = True,
) -> CaffeNet:
    """Build the net of a prototxt (optionally loading a caffemodel) as a CaffeNet module."""
    blobs = read_caffemodel(caffemodel_path) if caffemodel_path is not None else None
    shapes = None
    if blobs is not None:
        shapes = {name: [a.shape for a in arrays] for name, arrays in blobs.items()}
    net = CaffeNet(prototxt_path, phase=phase, input_shapes=input_shapes, blob_shapes=shapes)
    if blobs is not None:
        net.load_blobs(blobs, source=str(caffemodel_path), strict=strict)
    return net
