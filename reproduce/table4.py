"""Table 4: backbones (UCF101 split 1). Plain two-stream (K=1) except "BN-Inception+TSN" (K=3).

All rows use the release's good practices (ImageNet / cross-modality init, partial BN, dropout)
on their backbone; the Clarifai row quotes the two-stream baseline in the paper.
"""

from __future__ import annotations

from reproduce.base import Row, rows, two_stream

TABLE = 4
BASE = ("model.consensus=avg", "model.init=imagenet")
_K1, _K3 = ("model.num_segments=1",), ("model.num_segments=3",)
_X = ("model.init=cross_modality",)


def _row(name: str, arch: str, k: tuple[str, ...]) -> tuple[str, tuple, tuple]:
    return name, (f"model.arch={arch}", *k), (f"model.arch={arch}", *k, *_X)


ROWS: dict[str, Row] = rows(TABLE, BASE, *(two_stream(n, r, f) for n, r, f in (
    _row("Clarifai", "clarifai", _K1),
    _row("GoogLeNet", "googlenet", _K1),
    _row("VGGNet-16", "vgg16", _K1),
    _row("BN-Inception", "bn_inception", _K1),
    _row("BN-Inception+TSN", "bn_inception", _K3),
)))
