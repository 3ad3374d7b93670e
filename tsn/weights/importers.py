"""Import PyTorch ports of BN-Inception by key mapping, checked against the Caffe layout.

Two families of files exist (docs/datasets_and_ports.md#pytorch-ports-of-bn-inception):

* Cadene `pretrainedmodels` bninception (`bn_inception-52deb4733.pth`): a bare state dict whose
  keys are the Caffe layer names with '/' -> '_' (`conv1/7x7_s2` -> `conv1_7x7_s2.weight`,
  `inception_3a/1x1_bn` -> `inception_3a_1x1_bn.running_var`) and a 1000-way `last_linear`.
* tsn-pytorch: training checkpoints `{'epoch', 'arch', 'state_dict', 'best_prec1'}` whose state
  keys are `module.base_model.<same names>` plus the new classifier `module.new_fc.*` (dropout > 0)
  or `module.base_model.fc.*` (dropout 0); and the ImageNet file it downloads
  (`bn_inception-9f5701afb96c8044.pth`, tf-model-zoo.torch) with bare names, a 1000-way `fc`
  and BN tensors stored as (1, C) (tf-model-zoo squeezes dim 0 on load; so do we).

Mapping rule: for every (Caffe layer, blob index, our key) of `bn_inception_layout.caffe_blob_map`,
the source key is `layer.replace('/', '_')` + `.weight` / `.bias` (conv: blobs 0, 1) or `.weight` /
`.bias` / `.running_mean` / `.running_var` (BN: blobs 0-3). Every key and shape is checked; any
missing, extra or mis-shaped key fails with one error listing them. Both ports use BatchNorm2d with
eps 1e-5 and stored variance (not inverse std), i.e. the same test-time formula as the fork's BN
layer (docs/caffe_release.md#bn-layer, #bn-storage), and both expect BGR 0-255 input minus a mean,
as Caffe does, but with R mean 128 instead of the prototxts' 123. A 1000-way classifier is
ImageNet's and is dropped (TSN's fc-action keeps its gaussian filler, as with the Caffe init
models); any other classifier becomes fc-action.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch

from prototxt_port.convert import FORMAT, save_weights, sha256_of
from tsn.errors import WeightsError
from tsn.models.bn_inception import BNInception
from tsn.weights.bn_inception_layout import LAYOUT, bn_inception_to_blobs, caffe_blob_map

log = logging.getLogger(__name__)
IMAGENET_CLASSES = 1000
BN_ATTRS = ("weight", "bias", "running_mean", "running_var")
CONV_ATTRS = ("weight", "bias")
IGNORED_SUFFIXES = (".num_batches_tracked",)  # PyTorch >= 0.4.1 bookkeeping, no Caffe blob


def caffe_to_port_key(layer: str, index: int) -> str:
    """Port key of blob `index` of Caffe layer `layer` ('/' -> '_'; conv or BN attribute)."""
    attrs = BN_ATTRS if layer.endswith("_bn") else CONV_ATTRS
    return f"{layer.replace('/', '_')}.{attrs[index]}"


def _load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # nothing in it runs
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as err:  # damaged zip / pickle needing code / not a torch file
        raise WeightsError(f"{path}: not a loadable weights-only PyTorch file ({err}); "
                           "re-download it (files needing code to load are refused)") from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, expected a state dict")
    return dict(obj)


def _strip(state: Mapping, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def map_port_state(state: Mapping[str, torch.Tensor], classifier: str, source: str
                   ) -> tuple[OrderedDict[str, torch.Tensor], dict]:
    """Port state dict (prefixes removed) -> BNInception state dict, checked key by key.

    `classifier` is the port's name for the last Linear (`last_linear`, `new_fc` or `fc`).
    Returns (state dict, info) where info says what was dropped or left at its filler.
    """
    state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{source}: entry {bad[0]!r} is not a tensor ({len(bad)} such)")
    if "conv1_7x7_s2.weight" not in state:
        raise WeightsError(f"{source}: no 'conv1_7x7_s2.weight': not a BN-Inception port "
                           f"(first keys: {list(state)[:3]})")
    in_channels = int(state["conv1_7x7_s2.weight"].shape[1])
    fc_w = state.get(f"{classifier}.weight")
    keep_fc = fc_w is not None and fc_w.dim() == 2 and fc_w.shape[0] != IMAGENET_CLASSES
    model = BNInception(in_channels, int(fc_w.shape[0]) if keep_fc else 101)
    reference = model.state_dict()
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    used, missing, misshaped = set(), [], []
    for layer, index, key in caffe_blob_map(model):
        theirs = (f"{classifier}.{CONV_ATTRS[index]}" if layer == "fc-action"
                  else caffe_to_port_key(layer, index))
        if layer == "fc-action" and not keep_fc:
            continue
        if theirs not in state:
            missing.append(theirs)
            continue
        used.add(theirs)
        tensor, want = state[theirs], reference[key].shape
        if tensor.shape != want and tensor.dim() == len(want) + 1 and tensor.shape[0] == 1:
            tensor = tensor.squeeze(0)  # tf-model-zoo stores BN blobs Caffe-style as (1, C)
        if tensor.shape != want:
            misshaped.append(f"{theirs} {tuple(state[theirs].shape)} != {tuple(want)} "
                             f"(Caffe {layer}[{index}])")
            continue
        mapped[key] = tensor.detach().to(torch.float32).clone()
    dropped = [k for k in (f"{classifier}.weight", f"{classifier}.bias")
               if k in state and not keep_fc]
    extra = [k for k in state if k not in used and k not in dropped]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
    if extra:
        problems.append(f"{len(extra)} without a Caffe blob (first: {', '.join(extra[:3])})")
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped (first: {misshaped[0]})")
    if problems:
        raise WeightsError(f"{source}: does not match the Caffe BN-Inception layout "
                           f"(bn_inception_layout.caffe_blob_map): {'; '.join(problems)}")
    info = {"in_channels": in_channels, "dropped": dropped,
            "missing_layers": [] if keep_fc else ["fc-action"],
            "num_classes": int(fc_w.shape[0]) if keep_fc else None}
    for key in dropped:
        log.info("%s: dropped %s (%d-way ImageNet classifier; fc-action keeps its filler)",
                 source, key, IMAGENET_CLASSES)
    return mapped, info


def _save(state, info: dict, source: Path, fmt: str, out: str | Path) -> dict:
    bn_inception_to_blobs(state)  # second check: every key has its Caffe blob
    meta = {"source_format": fmt, "source": source.name, "sha256": sha256_of(source),
            "missing_layers": info["missing_layers"], "dropped": info["dropped"],
            "preprocessing": "BGR 0-255 minus mean; the port used mean [104, 117, 128]"}
    save_weights({"format": FORMAT, "layout": LAYOUT.name, "state_dict": state,
                        "meta": meta}, Path(out))
    log.info("wrote %s: %d tensors from %s (%s)", out, len(state), source, fmt)
    return meta


def import_cadene(path: str | Path, out: str | Path) -> dict:
    """Cadene pretrainedmodels bninception .pth -> tsn-weights/1 .pt (layout bn_inception)."""
    path = Path(path)
    state = _load(path)
    mapped, info = map_port_state(state, "last_linear", str(path))
    return _save(mapped, info, path, "cadene_pth", out)


def import_tsn_pytorch(path: str | Path, out: str | Path) -> dict:
    """tsn-pytorch checkpoint (or its ImageNet bn_inception .pth) -> tsn-weights/1 .pt."""
    path = Path(path)
    obj = _load(path)
    state = obj["state_dict"] if isinstance(obj.get("state_dict"), Mapping) else obj
    state = _strip(state, ("module.", "base_model."))
    classifier = "new_fc" if "new_fc.weight" in state else "fc"
    mapped, info = map_port_state(state, classifier, str(path))
    meta = _save(mapped, info, path, "tsn_pytorch_pth", out)
    if "arch" in obj:
        log.info("%s: arch %s, epoch %s", path, obj.get("arch"), obj.get("epoch"))
    return meta
