"""Released TSN weights: manifest, checksum-locked fetch, conversion, imports, evaluation.

manifest (weights/manifest.toml -> frozen entries), checksums (trust-on-first-use SHA-256
lock), fetch (download + verify + convert to .pt), importers (Cadene / tsn-pytorch .pth by
key mapping), reference (`make eval-reference`), cli (`tsn weights ...`).
"""

from tsn.errors import WeightsError
from tsn.weights.manifest import Manifest, WeightEntry, load_manifest

__all__ = ["Manifest", "WeightEntry", "WeightsError", "load_manifest"]
