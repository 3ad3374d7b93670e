"""Convert Caffe weights to PyTorch .pt files and back, with every tensor checked and logged.

A .pt written here is a plain dict (loadable with torch.load(weights_only=True)):
    {"format": "tsn-weights/1", "layout": "bn_inception" | "caffe_net",
     "state_dict": {key: tensor}, "meta": {"prototxt": ..., "caffemodel": ..., "sha256": ...}}
Layout "bn_inception" keys are those of tsn.models.bn_inception.BNInception (the hand-written
model used for training); "caffe_net" keys are those of the prototxt-built CaffeNet, for any
other net. The mapping is the explicit table `caffe_blob_map`; BN blobs are (1, C) in Caffe
and (C,) in PyTorch, the only reshape.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from prototxt_port.caffemodel import read_caffemodel, write_caffemodel
from prototxt_port.errors import CaffeFormatError
from prototxt_port.net import CaffeNet, layer_name_of
from tsn.atomic import atomic_open
from tsn.models.bn_inception import BNInception, caffe_blob_map

log = logging.getLogger(__name__)
FORMAT = "tsn-weights/1"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bn_inception_template(blobs: Mapping[str, list[np.ndarray]]) -> BNInception | None:
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

    `model`: the template from `_bn_inception_template(blobs)` when the caller has built it.
    """
    model = model or _bn_inception_template(blobs)
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


def save_weights(obj: dict, path: str | Path) -> None:
    """torch.save a weights dict atomically (the file appears whole or not at all)."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def convert_caffemodel(
    prototxt: str | Path,
    caffemodel: str | Path,
    out: str | Path,
    layout: str = "auto",
    allow_missing: Iterable[str] = (),
) -> dict:
    """caffemodel -> .pt. Every blob is checked against the prototxt first; nothing is written
    on any missing, extra or mis-shaped blob (except layers named in `allow_missing`)."""
    blobs = read_caffemodel(caffemodel)
    net = CaffeNet(
        prototxt, phase="test", blob_shapes={k: [a.shape for a in v] for k, v in blobs.items()}
    )
    missing = net.load_blobs(blobs, source=str(caffemodel), allow_missing=allow_missing)
    template = _bn_inception_template(blobs) if layout in ("auto", "bn_inception") else None
    if layout == "auto":
        layout = "bn_inception" if template is not None else "caffe_net"
    if layout == "bn_inception":
        state = blobs_to_bn_inception(blobs, template)
    elif layout == "caffe_net":
        state = OrderedDict(
            (k, v.detach().clone())
            for k, v in net.state_dict().items()
            if layer_name_of(k.split(".")[1]) not in missing
        )
        for key, value in state.items():
            log.info("%s => %s %s", key, key, tuple(value.shape))
    else:
        raise ValueError(f"layout must be auto, bn_inception or caffe_net, got {layout!r}")
    meta = {
        "prototxt": Path(prototxt).name,
        "caffemodel": Path(caffemodel).name,
        "sha256": sha256_of(caffemodel),
        "missing_layers": missing,
    }
    save_weights(
        {"format": FORMAT, "layout": layout, "state_dict": state, "meta": meta}, Path(out)
    )
    log.info("wrote %s: %d tensors, layout %s", out, len(state), layout)
    return meta


def load_weights(path: str | Path) -> dict:
    """Load a .pt written by convert_caffemodel (weights_only: nothing in the file runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CaffeFormatError(f"{path}: weights file not found") from None
    except Exception as err:  # torch raises several types for damaged zip/pickle data
        raise CaffeFormatError(f"{path}: not a readable .pt weights file ({err})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CaffeFormatError(f"{path}: not a {FORMAT} file written by `prototxt_port convert`")
    return obj


def export_caffemodel(weights: str | Path, prototxt: str | Path, out: str | Path) -> None:
    """.pt (from convert_caffemodel) -> caffemodel laid out like `prototxt`, blob by blob."""
    obj = load_weights(weights)
    state = obj["state_dict"]
    allowed_missing = list(obj["meta"].get("missing_layers", []))
    if obj["layout"] == "bn_inception":
        blobs = bn_inception_to_blobs(state)
    else:
        blobs = _caffe_net_state_to_blobs(state, prototxt, weights)
    shapes = {k: [a.shape for a in v] for k, v in blobs.items()}
    net = CaffeNet(prototxt, phase="test", blob_shapes=shapes)
    net.load_blobs(blobs, source=str(weights), allow_missing=allowed_missing)
    write_caffemodel(out, prototxt, blobs)
    log.info("wrote %s: %d layers with weights", out, len(blobs))


def _caffe_net_state_to_blobs(state, prototxt, source) -> OrderedDict[str, list[np.ndarray]]:
    """CaffeNet state dict ("layers.<layer>.<attr>") -> Caffe blobs in Caffe order and shape."""
    shapes: OrderedDict[str, list[tuple[int, ...]]] = OrderedDict()
    for key, tensor in state.items():
        shapes.setdefault(layer_name_of(key.split(".")[1]), []).append(tuple(tensor.shape))
    net = CaffeNet(prototxt, phase="test", blob_shapes=shapes)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CaffeFormatError(f"{source}: does not fit {prototxt}: {err}") from None
    if result.unexpected_keys:
        raise CaffeFormatError(
            f"{source}: key {result.unexpected_keys[0]!r} has no layer in {prototxt}"
        )
    return OrderedDict((k, v) for k, v in net.caffe_blobs().items() if k in shapes)
