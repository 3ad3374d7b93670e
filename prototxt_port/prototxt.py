"""Read Caffe text-format files (net prototxts, solver prototxts) with the real protobuf library.

The schema is our caffe.proto for the TSN fork (field numbers from the fork's
src/caffe/proto/caffe.proto); text_format handles both `param { }` blocks and bracketed repeated
values (`mean_value: [..]`).
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message

from prototxt_port import caffe_pb2
from prototxt_port.errors import CaffeFormatError


def _read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaffeFormatError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as err:
        raise CaffeFormatError(
            f"{path}: not a text {what} (byte {err.start} is not UTF-8); "
            "pass the .prototxt, not a binary .caffemodel"
        ) from None


def _parse(path: str | Path, message: Message, what: str) -> Message:
    text = _read_text(path, what)
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        line, column = err.GetLine(), err.GetColumn()
        where = f"line {line}, column {column}" if line else "parse error"
        # err's own text starts with "line:column : "; keep only the reason.
        reason = str(err).split(" : ", 1)[-1]
        raise CaffeFormatError(
            f"{path}: {where}: {reason} "
            f"(not valid {what} text for the TSN Caffe fork's caffe.proto)"
        ) from None
    return message


def parse_prototxt(path: str | Path) -> caffe_pb2.NetParameter:
    """Parse a net prototxt (deploy or train_val) into a NetParameter."""
    return _parse(path, caffe_pb2.NetParameter(), "net prototxt")


def read_solver(path: str | Path) -> caffe_pb2.SolverParameter:
    """Parse a solver prototxt into a SolverParameter."""
    return _parse(path, caffe_pb2.SolverParameter(), "solver prototxt")


def layer_in_phase(layer: caffe_pb2.LayerParameter, phase: int) -> bool:
    """Caffe's NetStateRule filtering (net.cpp FilterNet), for the phase; level 0, no stages."""

    def meets(rule: caffe_pb2.NetStateRule) -> bool:
        if rule.HasField("phase") and rule.phase != phase:
            return False
        if rule.HasField("min_level") and 0 < rule.min_level:
            return False
        if rule.HasField("max_level") and 0 > rule.max_level:
            return False
        return not rule.stage  # no stages are set in our net state

    if layer.include:
        return any(meets(rule) for rule in layer.include)
    return not any(meets(rule) for rule in layer.exclude)


def phase_value(phase: str) -> int:
    """'train' / 'test' -> caffe.Phase value."""
    try:
        return {"train": caffe_pb2.TRAIN, "test": caffe_pb2.TEST}[phase.lower()]
    except KeyError:
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}") from None
