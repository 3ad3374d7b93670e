"""The experiment builder: the model, the datasets and the device of an Experiment, in one place.

Training (tsn.train), testing (`tsn test`, tsn.evaluate), the reference-model evaluation
(`tsn weights eval-reference`) and the benchmarks build through these functions, so a model is
assembled one way only: a registered backbone (tsn.models.BACKBONES, the tiny CPU net included)
inside the real TSN wrapper (segments, consensus, partial BN, init record), with the input
channels, dropout and new_length of the modality table (tsn/modality.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from tsn.config import ConfigError, Experiment, from_resolved
from tsn.data.clips import SyntheticClips
from tsn.data.dataset import TSNDataset, TSNTestDataset, default_scale_ratios, worker_init_fn
from tsn.data.errors import DataError
from tsn.data.layout import layout
from tsn.data.sampling import val_offsets
from tsn.data.splits import official_classes, read_ucf101_classes
from tsn.data.video_list import VideoRecord, read_file_list
from tsn.engine import checkpoint
from tsn.errors import WeightsError
from tsn.modality import new_length_of
from tsn.models import TSN, build_tsn
from tsn.scores import Protocol


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:LOCAL_RANK when CUDA is present, else the CPU; the one device choice.

    'cuda' -> cuda:LOCAL_RANK (one GPU per rank); 'cpu' and 'cuda:N' are taken as they are.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but torch sees no CUDA device; use device=cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def build_model(exp: Experiment) -> tuple[TSN, dict]:
    """The TSN of `exp.model` and a record of the initialisation actually used.

    The tiny CPU backbone keeps PyTorch's initialisers from the current torch seed: its record
    says "random (torch seed <exp.seed>)", the seed training sets before building.
    """
    m = exp.model
    model = build_tsn(
        backbone=m.arch, num_classes=m.num_classes, modality=m.modality,
        num_segments=m.num_segments, consensus=m.consensus,
        dropout=m.dropout if m.dropout >= 0 else None,  # None: the modality's train_val value
        new_length=new_length_of(m.modality, m.new_length), init=m.init,
        init_weights=m.init_weights or None, partial_bn=m.partial_bn,
    )
    record = dict(model.init_record)
    if record["init"] == "random":
        record["init"] = f"random (torch seed {exp.seed})"
    return model, record


def build_dataset(exp: Experiment, phase: str = "train"):
    """(dataset, worker_init_fn) of a phase: "train" (data.train_list) or "val" (test.val_list).

    In-memory clips: the validation set is the same classes drawn in a held-out "epoch".
    Real data: TSNDataset in Caffe's TRAIN phase (random offsets, multi-scale crops, mirror)
    or TEST phase (segment-centre snippets, centre crop).
    """
    d, m = exp.data, exp.model
    length = new_length_of(m.modality, m.new_length)
    train = phase == "train"
    if d.dataset == "clips":
        if not train and exp.test.val_list != "clips":
            raise ConfigError("with data.dataset=clips set test.val_list=clips")
        clips = SyntheticClips(
            d.synthetic_size, m.num_segments, length, d.synthetic_shape, m.num_classes,
            exp.seed, d.synthetic_delay_s,
        )
        if not train:
            clips.set_epoch(1_000_000)  # noise never drawn in training
        return clips, None
    list_file = d.train_list if train else exp.test.val_list
    if not list_file:
        raise ConfigError(f"data.train_list is empty: give the {d.dataset} list file")
    records = read_file_list(list_file, root=d.root or None, num_classes=m.num_classes)
    dataset = TSNDataset(
        records, m.modality, num_segments=m.num_segments, new_length=length, train=train,
        scale_ratios=default_scale_ratios(m.modality, d.scales), seed=exp.seed,
        num_classes=m.num_classes,
    )
    return dataset, worker_init_fn


class SegmentCentreTestDataset(TSNTestDataset):
    """K snippets at the segment centres (train_val TEST phase offsets, video_data_layer.cpp)."""

    def ticks(self, index: int) -> list[int]:
        n = self.records[index].num_frames
        return [int(o) + 1 for o in val_offsets(n, self.num_frames, self.window)]


TEST_SAMPLINGS = {"eval_net": TSNTestDataset, "segment_centre": SegmentCentreTestDataset}


def build_test_dataset(records: list[VideoRecord], modality: str, protocol: Protocol,
                       new_length: int | None, sources: Mapping | None = None):
    """The test dataset of `protocol`: 25 eval_net ticks (the release) or K segment centres.

    `sources`: {record path: frame source} for videos held in memory (tsn.data.frames,
    `tsn predict`); the others read their frame folders."""
    if protocol.frame_sampling not in TEST_SAMPLINGS:
        raise ValueError(f"frame sampling {protocol.frame_sampling!r}: use "
                         f"{sorted(TEST_SAMPLINGS)}")
    return TEST_SAMPLINGS[protocol.frame_sampling](
        records, modality, num_frames=protocol.num_frames, crops=protocol.num_crops,
        new_length=new_length or None, sources=sources)


def class_names(exp: Experiment) -> tuple[str, ...] | None:
    """The class names of `exp`'s labels, in label order, or None when they are not known.

    The layout's split folder (`data.layout_root`, tsn/data/layout.py) holds them when the run
    was trained from it (classInd.txt for UCF101 and synth); otherwise the dataset's official
    list (tsn.data.splits.official_classes). A list whose length is not model.num_classes is
    not the one the run was trained with: None.
    """
    d, n = exp.data, exp.model.num_classes
    if d.dataset not in ("ucf101", "hmdb51", "synth"):
        return None  # in-memory clips: no names
    names = None
    if d.layout_root and d.dataset != "hmdb51":
        ind = layout(d.dataset, d.layout_root).splits / "classInd.txt"
        if ind.is_file():
            try:
                names = read_ucf101_classes(ind.parent)
            except DataError:
                names = None
    names = names or official_classes(d.dataset)
    return tuple(names) if len(names) == n else None


def load_trained(run_dir: str | Path, checkpoint_path: str | Path | None,
                 device: torch.device) -> tuple[TSN, Experiment, Path]:
    """(model, experiment, checkpoint path) of a `tsn train` run folder, weights loaded."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json; pass the folder written by "
                                "`tsn train`")
    exp = from_resolved(json.loads(cfg_path.read_text()), str(cfg_path))
    ckpt = Path(checkpoint_path) if checkpoint_path else checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint; train first")
    # Every weight comes from the checkpoint: build without the ImageNet init, so testing does
    # not need (or read) the init weights file the run was trained from.
    bare = dataclasses.replace(exp, model=dataclasses.replace(exp.model, init="scratch",
                                                              init_weights=""))
    model, _ = build_model(bare)
    model.load_state_dict(checkpoint.load(ckpt)["model"])
    return model.to(device), exp, ckpt


def reference_model(weights: Mapping, modality: str, device: torch.device) -> TSN:
    """A TSN (1 segment: testing scores snippets) holding converted BN-Inception weights with
    their fc-action (`tsn weights eval-reference`), in TEST phase."""
    state = weights["state_dict"]
    if weights["layout"] != "bn_inception" or "fc.weight" not in state:
        raise WeightsError("reference weights must be a BN-Inception with its fc-action")
    model = build_tsn("bn_inception", num_classes=int(state["fc.weight"].shape[0]),
                      modality=modality, num_segments=1, init="scratch")
    model.backbone.load_state_dict(state, strict=True)
    return model.to(device).eval()
