"""Convert Caffe weights to PyTorch .pt files and back, with every tensor checked and logged.

A .pt written here is a plain dict (loadable with torch.load(weights_only=True)):
    {"format": "tsn-weights/1", "layout": <layout name>,
     "state_dict": {key: tensor}, "meta": {"prototxt": ..., "caffemodel": ..., "sha256": ...}}
Layout "caffe_net" keys are those of the prototxt-built CaffeNet (`layers.<layer>.<attr>`) and
fit any net. Other layouts map the blobs of one architecture to the state dict of a hand-written
model; they are registered by the package that owns that model (`register_layout`, or the
`prototxt_port.layouts` entry-point group, loaded on first use): tsn registers "bn_inception"
(tsn/weights/bn_inception_layout.py). prototxt_port itself imports nothing from tsn.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import torch

from prototxt_port.caffemodel import read_caffemodel, write_caffemodel
from prototxt_port.errors import CaffeFormatError
from prototxt_port.files import atomic_open, sha256_of
from prototxt_port.net import CaffeNet, layer_name_of

log = logging.getLogger(__name__)
FORMAT = "tsn-weights/1"
GENERIC_LAYOUT = "caffe_net"
ENTRY_POINT_GROUP = "prototxt_port.layouts"

Blobs = Mapping[str, list[np.ndarray]]


@dataclass(frozen=True)
class Layout:
    """How the blobs of one architecture map to the state dict of a hand-written model."""

    name: str
    matches: Callable[[Blobs], bool]  # do these blobs belong to this architecture?
    to_state: Callable[[Blobs], OrderedDict]  # Caffe blobs -> state dict (CaffeFormatError)
    to_blobs: Callable[[Mapping[str, torch.Tensor]], OrderedDict]  # and back, in Caffe order


_LAYOUTS: dict[str, Layout] = {}
_entry_points_loaded = False


def register_layout(layout: Layout) -> Layout:
    """Make `layout` available to convert/export by name (and to "auto"); returns it."""
    if layout.name == GENERIC_LAYOUT:
        raise ValueError(f"{GENERIC_LAYOUT!r} is the built-in generic layout")
    _LAYOUTS[layout.name] = layout
    return layout


def layouts() -> dict[str, Layout]:
    """The registered layouts, after loading the `prototxt_port.layouts` entry points once."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                register_layout(point.load())
            except Exception as err:  # noqa: BLE001 - a broken plug-in must not hide the rest
                log.warning("layout %s (%s) could not be loaded: %s", point.name, point.value,
                            err)
    return dict(_LAYOUTS)


def _layout(name: str, source: str) -> Layout:
    found = layouts().get(name)
    if found is None:
        known = ", ".join([GENERIC_LAYOUT, *layouts()])
        raise CaffeFormatError(f"{source}: layout {name!r} is not registered (known: {known}); "
                               "install the package that provides it")
    return found


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
    on any missing, extra or mis-shaped blob (except layers named in `allow_missing`).

    `layout`: "auto" (the first registered layout whose architecture matches, else "caffe_net"),
    "caffe_net", or a registered layout's name."""
    blobs = read_caffemodel(caffemodel)
    net = CaffeNet(
        prototxt, phase="test", blob_shapes={k: [a.shape for a in v] for k, v in blobs.items()}
    )
    missing = net.load_blobs(blobs, source=str(caffemodel), allow_missing=allow_missing)
    if layout == "auto":
        layout = next((lay.name for lay in layouts().values() if lay.matches(blobs)),
                      GENERIC_LAYOUT)
    if layout == GENERIC_LAYOUT:
        state = OrderedDict(
            (k, v.detach().clone())
            for k, v in net.state_dict().items()
            if layer_name_of(k.split(".")[1]) not in missing
        )
        for key, value in state.items():
            log.info("%s => %s %s", key, key, tuple(value.shape))
    else:
        state = _layout(layout, str(caffemodel)).to_state(blobs)
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
    if obj["layout"] == GENERIC_LAYOUT:
        blobs = _caffe_net_state_to_blobs(state, prototxt, weights)
    else:
        blobs = _layout(obj["layout"], str(weights)).to_blobs(state)
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
