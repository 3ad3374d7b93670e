"""Caffe prototxt / caffemodel I/O for the TSN fork, and nets built from prototxts in PyTorch.

load_net(prototxt, caffemodel=None, phase="test")  -> CaffeNet (forward returns every top)
read_caffemodel(path) -> {layer name: [float32 arrays]}; write_caffemodel(path, prototxt, blobs)
parse_prototxt(path), read_solver(path)
CaffeFormatError: the one error raised for bad input

A leaf package: it imports nothing from tsn. The names above are loaded on first use, so
importing one submodule (prototxt_port.errors, prototxt_port.caffe_layers) does not import the
others (protobuf, the layer builders).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CaffeFormatError": "prototxt_port.errors",
    "CaffeNet": "prototxt_port.net",
    "CaffeParam": "prototxt_port.net",
    "load_net": "prototxt_port.net",
    "parse_prototxt": "prototxt_port.prototxt",
    "read_caffemodel": "prototxt_port.caffemodel",
    "read_solver": "prototxt_port.prototxt",
    "write_caffemodel": "prototxt_port.caffemodel",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'prototxt_port' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
