"""The BN-Inception blob map: Caffe blobs of the TSN prototxts <-> tsn.models.BNInception keys.

Every tensor of BNInception's state dict is one Caffe blob of
`tsn_bn_inception_{rgb,flow}_{train_val,deploy}.prototxt`; `caffe_blob_map` lists the
correspondence in Caffe order. A conv layer has blobs [weight, bias], its BN layer `<conv>_bn`
[scale, shift, running mean, running variance] ((1, C) in Caffe, (C,) here: the only reshape),
`fc-action` [weight, bias].

`LAYOUT` is the "bn_inception" layout of prototxt_port's converter (prototxt_port.convert),
registered on import and declared as a `prototxt_port.layouts` entry point in pyproject.toml,
so that `python -m prototxt_port convert` writes BN-Inception .pt files that `tsn train` loads
(init_weights) without prototxt_port importing tsn.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch

from prototxt_port.convert import Layout, register_layout
from prototxt_port.errors import CaffeFormatError
from tsn.models.bn_inception import BNInception

log = logging.getLogger(__name__)

# attribute name in InceptionBlock -> Caffe layer-name suffix
_UNIT_SUFFIX = {
    "b1x1": "1x1",
    "b3x3_reduce": "3x3_reduce",
    "b3x3": "3x3",
    "double_3x3_reduce": "double_3x3_reduce",
    "double_3x3_1": "double_3x3_1",
    "double_3x3_2": "double_3x3_2",
    "pool_proj": "pool_proj",
}
BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # blobs 0-3 of a BN layer


def caffe_unit_names(model: BNInception) -> list[tuple[str, str]]:
    """(module path, Caffe conv layer name) of every Conv+BN unit, in prototxt order."""
    units = [
        ("conv1", "conv1/7x7_s2"),
        ("conv2_reduce", "conv2/3x3_reduce"),
        ("conv2", "conv2/3x3"),
    ]
    for name, block in model.blocks.items():
        for attr, suffix in _UNIT_SUFFIX.items():
            if getattr(block, attr) is not None:
                units.append((f"blocks.{name}.{attr}", f"{name}/{suffix}"))
    return units


def caffe_blob_map(model: BNInception) -> list[tuple[str, int, str]]:
    """(Caffe layer name, blob index, state-dict key) for every Caffe blob, in Caffe order."""
    rows: list[tuple[str, int, str]] = []
    for path, caffe_name in caffe_unit_names(model):
        rows += [(caffe_name, 0, f"{path}.conv.weight"), (caffe_name, 1, f"{path}.conv.bias")]
        rows += [(f"{caffe_name}_bn", i, f"{path}.bn.{key}") for i, key in enumerate(BN_KEYS)]
    rows += [("fc-action", 0, "fc.weight"), ("fc-action", 1, "fc.bias")]
    return rows


def template(blobs: Mapping[str, list[np.ndarray]]) -> BNInception | None:
    """A BNInception shaped like these blobs, or None when the layers are not BN-Inception's."""
    conv1 = blobs.get("conv1/7x7_s2")
    if conv1 is None:
        return None
    fc = blobs.get("fc-action")
    model = BNInception(int(conv1[0].shape[1]), int(fc[0].shape[0]) if fc else 101)
    expected = {layer for layer, _, _ in caffe_blob_map(model)} - {"fc-action"}
    return model if expected <= set(blobs) and set(blobs) - {"fc-action"} == expected else None


def blobs_to_bn_inception(
    blobs: Mapping[str, list[np.ndarray]], model: BNInception | None = None
) -> OrderedDict[str, torch.Tensor]:
    """Caffe blobs of a TSN BN-Inception -> BNInception state dict (fc-action may be absent).

    `model`: the template from `template(blobs)` when the caller has built it.
    """
    model = model or template(blobs)
    if model is None:
        raise CaffeFormatError("these weights are not a TSN BN-Inception (layer names differ)")
    reference = model.state_dict()
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for layer, index, key in caffe_blob_map(model):
        if layer not in blobs:
            continue
        array = blobs[layer][index]
        tensor = torch.from_numpy(np.array(array, dtype=np.float32)).reshape(reference[key].shape)
        log.info("%s[%d] %s => %s %s", layer, index, tuple(array.shape), key, tuple(tensor.shape))
        state[key] = tensor
    return state


def bn_inception_to_blobs(state: Mapping[str, torch.Tensor]) -> OrderedDict[str, list[np.ndarray]]:
    """BNInception state dict -> Caffe blobs (BN as (1, C)), checking that keys line up."""
    if "conv1.conv.weight" not in state:
        raise CaffeFormatError("state dict has no 'conv1.conv.weight': not a BNInception")
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else 101
    model = BNInception(int(state["conv1.conv.weight"].shape[1]), int(num_classes))
    table = caffe_blob_map(model)
    known = {key for _, _, key in table}
    extra = [k for k in state if k not in known]
    if extra:
        raise CaffeFormatError(f"state dict key {extra[0]!r} has no Caffe blob ({len(extra)} such)")
    blobs: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    for layer, _index, key in table:
        if key not in state:
            continue
        array = state[key].detach().cpu().numpy().astype(np.float32)
        if ".bn." in key:
            array = array.reshape(1, -1)
        log.info("%s %s => %s %s", key, tuple(state[key].shape), layer, array.shape)
        blobs.setdefault(layer, []).append(array)
    return blobs


LAYOUT = register_layout(Layout(
    name="bn_inception",
    matches=lambda blobs: template(blobs) is not None,
    to_state=blobs_to_bn_inception,
    to_blobs=bn_inception_to_blobs,
))
