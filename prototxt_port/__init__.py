"""Caffe prototxt / caffemodel I/O for the TSN fork, and nets built from prototxts in PyTorch.

load_net(prototxt, caffemodel=None, phase="test")  -> CaffeNet (forward returns every top)
read_caffemodel(path) -> {layer name: [float32 arrays]}; write_caffemodel(path, prototxt, blobs)
parse_prototxt(path), read_solver(path)
CaffeFormatError: the one error raised for bad input
"""

from prototxt_port.caffemodel import read_caffemodel, write_caffemodel
from prototxt_port.errors import CaffeFormatError
from prototxt_port.net import CaffeNet, CaffeParam, load_net
from prototxt_port.prototxt import parse_prototxt, read_solver

__all__ = [
    "CaffeFormatError",
    "CaffeNet",
    "CaffeParam",
    "load_net",
    "parse_prototxt",
    "read_caffemodel",
    "read_solver",
    "write_caffemodel",
]
