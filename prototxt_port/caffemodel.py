"""Read and write binary .caffemodel files (NetParameter with BlobProto data).

Blobs are float32; shapes come from `shape` or, when any legacy field is set, from
num/channels/height/width (Caffe blob.cpp FromProto). Writing emits `shape` only, as Caffe does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from prototxt_port import caffe_pb2
from prototxt_port.errors import CaffeFormatError
from prototxt_port.files import atomic_write_bytes
from prototxt_port.prototxt import layer_in_phase, parse_prototxt, phase_value

Blobs = "OrderedDict[str, list[np.ndarray]]"


def blob_to_array(blob: caffe_pb2.BlobProto, where: str) -> np.ndarray:
    """One BlobProto -> float32 array of its declared shape (error if the sizes disagree)."""
    legacy = any(blob.HasField(f) for f in ("num", "channels", "height", "width"))
    if legacy:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(int(d) for d in blob.shape.dim)
    data = np.asarray(blob.data, dtype=np.float32)
    if data.size != int(np.prod(shape, dtype=np.int64)):
        raise CaffeFormatError(
            f"{where}: blob declares shape {shape} ({int(np.prod(shape))} values) but holds "
            f"{data.size}; the file is damaged: fetch it again"
        )
    return data.reshape(shape)


def array_to_blob(array: np.ndarray, blob: caffe_pb2.BlobProto) -> None:
    """Fill a BlobProto with a float32 array (shape + packed data)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(array.ravel())


def parse_caffemodel(path: str | Path) -> caffe_pb2.NetParameter:
    """Decode a .caffemodel into a NetParameter, with one clear error for any damage."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CaffeFormatError(f"{path}: caffemodel not found") from None
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise CaffeFormatError(
            f"{path}: not a readable caffemodel ({err}); the file is truncated or is not a binary "
            "NetParameter: download it again (a .prototxt is text, not weights)"
        ) from None
    if not any(layer.blobs for layer in net.layer) and not any(lay.blobs for lay in net.layers):
        raise CaffeFormatError(
            f"{path}: holds no weights ({len(raw)} bytes, no layer with blobs); "
            "the file is empty or truncated: download it again"
        )
    return net


def read_caffemodel(path: str | Path) -> OrderedDict[str, list[np.ndarray]]:
    """Layer name -> list of float32 arrays (Caffe blob order), for every layer with blobs.

    Reads current (`layer`, field 100) and legacy V1 (`layers`, field 2) definitions.
    """
    net = parse_caffemodel(path)
    blobs: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    for layer in list(net.layer) + list(net.layers):
        if not layer.blobs:
            continue
        if layer.name in blobs:
            raise CaffeFormatError(f"{path}: layer {layer.name!r} appears twice with weights")
        blobs[layer.name] = [
            blob_to_array(b, f"{path}: layer {layer.name!r} blob {i}")
            for i, b in enumerate(layer.blobs)
        ]
    return blobs


def write_caffemodel(
    path: str | Path,
    prototxt_path: str | Path,
    blobs: Mapping[str, Sequence[np.ndarray]],
    phase: str = "test",
) -> None:
    """Write `blobs` (layer name -> arrays) as a caffemodel laid out like `prototxt_path`.

    Every layer of the prototxt (in the phase) is written with its parameters, as Caffe's
    Net::ToProto does; layers named in `blobs` carry them. A blob for a layer the prototxt
    does not have is an error, and nothing is written.
    """
    net_def = parse_prototxt(prototxt_path)
    wanted = phase_value(phase)
    out = caffe_pb2.NetParameter()
    out.name = net_def.name
    written = set()
    for layer in net_def.layer:
        if not layer_in_phase(layer, wanted):
            continue
        copy = out.layer.add()
        copy.CopyFrom(layer)
        del copy.include[:]
        del copy.exclude[:]
        copy.phase = wanted
        for array in blobs.get(layer.name, ()):
            array_to_blob(np.asarray(array), copy.blobs.add())
        if layer.name in blobs:
            written.add(layer.name)
    extra = [name for name in blobs if name not in written]
    if extra:
        raise CaffeFormatError(
            f"{prototxt_path}: no layer named {extra[0]!r} (and {len(extra) - 1} more) in the "
            f"{phase} net, but weights were given for it; nothing was written to {path}"
        )
    atomic_write_bytes(path, out.SerializeToString())
