"""DataLoader-ready TSN datasets: Caffe VideoData (train / val phase) and the eval_net.py test.

`TSNDataset[i]` is exactly one video's Caffe `data` blob: the K snippets concatenated on the
channel axis, segment-major; per frame 3 channels (BGR - [104,117,123]) for rgb, 2 (x, y
interleaved, - 128) for flow and warped_flow. rgb_diff (paper section 3.1; no released prototxt,
docs/caffe_release.md#rgb-vs-flow-nets) reads new_length + 1 consecutive frames per snippet and
gives the new_length differences frame[t+1] - frame[t] (3 channels each, BGR, no mean: it cancels).

Randomness: each item draws from `np.random.default_rng([seed, epoch, index])`, so a sample is
the same whatever the worker count, worker order or a mid-epoch resume.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tsn import modality as modality_table
from tsn.data import frames, jpeg, sampling, transforms
from tsn.data.errors import DataError
from tsn.data.video_list import VideoRecord
from tsn.modality import Modality

log = logging.getLogger(__name__)


def single_thread_opencv() -> None:
    """Turn OpenCV's own thread pool off in this process, before DataLoader forks workers.

    OpenCV's pthreads pool is not fork-safe: a worker forked after the parent used the pool
    waits forever on it (seen as a hung DataLoader in our tests). Loading is parallel across
    workers anyway, so one OpenCV thread per process loses nothing.
    """
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def get_modality(name: str) -> Modality:
    """The tsn.modality record of a name; unknown names raise DataError with the valid ones."""
    try:
        return modality_table.get_modality(name)
    except ValueError as err:
        raise DataError(str(err)) from None


def default_scale_ratios(modality: str, preset: str = "release") -> tuple[float, ...]:
    """train_val scale_ratios ("release", default) or the paper's 4 sizes ("paper")."""
    table = {"release": transforms.RELEASE_SCALE_RATIOS, "paper": transforms.PAPER_SCALE_RATIOS}
    if preset not in table:
        raise DataError(f"scale preset must be 'release' or 'paper', got {preset!r}")
    return table[preset]["flow" if get_modality(modality).is_flow else "rgb"]


def validate_records(
    records: Sequence[VideoRecord], window: int, num_classes: int | None, check_paths: bool
) -> None:
    """Fail at construction (not mid-epoch) on short videos, bad labels, missing folders."""
    for r in records:
        sampling.check_length(r.path, r.num_frames, window)
        if r.label < 0 or (num_classes is not None and r.label >= num_classes):
            raise DataError(f"{r.path}: label {r.label} outside [0, {num_classes})")
        if check_paths and not os.path.isdir(r.path):
            raise DataError(f"{r.path}: frame folder missing (extract it with `tsn extract`, "
                            "or fix the list's root)")


def read_snippets(record: VideoRecord, mod: Modality, starts: Sequence[int], window: int,
                  clamp: bool = False, source: frames.FrameSource | None = None) -> np.ndarray:
    """HWC uint8 stack of the snippets starting at 1-based files `starts` (window files each).

    clamp=True reads `min(num_frames, start + k)` as eval_net.py does. The files come from
    `source` (tsn.data.frames), by default the record's frame folder.
    """
    source = source or frames.FrameFolder(record.path)
    images = []
    for s in starts:
        files = (sampling.eval_stack_files(s, record.num_frames, window) if clamp
                 else sampling.snippet_files(s - 1, window))
        images += frames.read_stack(source, files, mod.files, not mod.is_flow)
    return frames.stack_channels(images, record.path)


def finish(stack: np.ndarray, mod: Modality, num_snippets: int, window: int) -> np.ndarray:
    """HWC uint8 (already cropped) -> CHW float32 in Caffe's normalisation."""
    if mod.extra_frames:
        # RGB difference: consecutive frames within each snippet, BGR, no mean
        h, w = stack.shape[:2]
        x = stack.reshape(h, w, num_snippets, window, 3).astype(np.float32)
        diff = (x[:, :, :, 1:] - x[:, :, :, :-1]).reshape(h, w, -1)
        return np.ascontiguousarray(diff.transpose(2, 0, 1))
    return transforms.to_chw_float(stack, mod.mean)


class TSNDataset(Dataset):
    """Caffe VideoData for one phase: train (random offsets + multi-scale fixed crops + mirror)
    or val (segment-centre offsets + centre crop), one item = one video's K snippets."""

    def __init__(
        self, records: Sequence[VideoRecord], modality: str, num_segments: int = 3,
        new_length: int | None = None, train: bool = True, scale_ratios=None, seed: int = 0,
        more_fix_crop: bool = True, mirror: bool = True, max_distort: int = 1,
        num_classes: int | None = None, check_paths: bool = True,
    ) -> None:
        self.mod = get_modality(modality)
        self.records = list(records)
        self.num_segments = num_segments
        self.new_length = new_length or self.mod.new_length
        self.window = self.mod.window(self.new_length)
        self.train = train
        self.scale_ratios = tuple(scale_ratios or default_scale_ratios(modality))
        self.more_fix_crop, self.mirror, self.max_distort = more_fix_crop, mirror, max_distort
        self.seed, self.epoch = seed, 0
        validate_records(self.records, self.window, num_classes, check_paths)
        single_thread_opencv()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Per-item randomness depends on (seed, epoch, index) only."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of one item in the current epoch."""
        key = (self.seed, self.epoch, index)
        if all(0 <= k < 2**32 for k in key):
            # the same SeedSequence as the list (one uint32 word per entry), built ~3x faster
            return np.random.default_rng(np.array(key, np.uint32))
        return np.random.default_rng(list(key))

    def offsets(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """0-based snippet offsets of item `index` (train: random, val: segment centres)."""
        n = self.records[index].num_frames
        if self.train:
            return sampling.train_offsets(n, self.num_segments, self.window,
                                          rng or self.rng(index))
        return sampling.val_offsets(n, self.num_segments, self.window)

    def crop(self, height: int, width: int, rng: np.random.Generator) -> transforms.Crop:
        """One crop/mirror decision for the whole video (data_transformer.cpp)."""
        if not self.train:
            return transforms.center_crop(height, width)
        return transforms.draw_train_crop(rng, height, width, self.scale_ratios,
                                          self.more_fix_crop, self.mirror, self.max_distort)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        rng = self.rng(index)
        offsets = self.offsets(index, rng)  # drawn first, as the data layer does
        files = [f for o in offsets for f in sampling.snippet_files(o, self.window)]
        return torch.from_numpy(self.render(record, files, rng)), record.label

    def render(self, record: VideoRecord, files: list[int], rng) -> np.ndarray:
        """The Caffe blob of one video from its snippet files, frame by frame.

        Equivalent to stacking all channels and calling `transforms.apply_crop` once (the
        same per-channel bilinear resize), but faster: only crop boxes are decoded, every
        resize has <= 3 channels (OpenCV's vectorised path), each cropped frame is split
        straight into one uint8 CHW block, and a single subtraction writes the float32 blob
        (one pass instead of one per channel; all values are small integers, so exact).
        """
        mod, size = self.mod, transforms.CROP_SIZE
        paths = frames.frame_paths(record.path, files, mod.files)
        blobs = [frames.read_jpeg(p) for p in paths]
        frame_size = jpeg.image_size(blobs[0], paths[0])  # the crop table depends on it
        crop = self.crop(*frame_size, rng)
        box = (crop.h_off, crop.w_off, crop.crop_h, crop.crop_w)
        # decode only the crop box of every frame (tsn.data.jpeg: the same pixels as decoding
        # the frame and slicing), all first: back-to-back decodes keep libjpeg's tables and
        # code in cache (~5% faster per sample than interleaving them with the resizes below)
        patches = [jpeg.decode(data, not mod.is_flow, p, box, frame_size)
                   for p, data in zip(paths, blobs)]
        resize = (crop.crop_h, crop.crop_w) != (size, size)
        per_image = 1 if mod.is_flow else 3
        block = np.empty((len(patches) * per_image, size, size), np.uint8)
        for i, patch in enumerate(patches):
            if not mod.is_flow:
                if resize:
                    patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
                # HWC -> CHW: split writes the three planes into block's views (no transpose
                # copy); tests compare with the stack-then-apply_crop reference
                cv2.split(patch, list(block[3 * i:3 * i + 3]))
                continue
            dst = block[i]  # one flow image = one channel, written in place
            if not crop.mirror:
                if resize:
                    cv2.resize(patch, (size, size), dst=dst, interpolation=cv2.INTER_LINEAR)
                else:
                    np.copyto(dst, patch)
                continue
            if resize:
                patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
            cv2.flip(patch, 1, dst=dst)
            if i % 2 == 0:
                # Caffe: mirrored x flow -> 255 - v (= bitwise not on uint8), - 128 below
                cv2.bitwise_not(dst, dst=dst)
        if crop.mirror and not mod.is_flow:
            # one in-place horizontal flip of every plane (flow images were flipped above)
            planes = block.reshape(-1, size)
            cv2.flip(planes, 1, dst=planes)
        out = np.empty(block.shape, np.float32)
        np.subtract(block, self._mean_column(len(files)), out=out)
        if mod.extra_frames:
            # RGB difference inside each snippet: frame t+1 - frame t (BGR, mean cancels)
            x = out.reshape(self.num_segments, self.window, 3, *out.shape[1:])
            out = (x[:, 1:] - x[:, :-1]).reshape(-1, *out.shape[1:])
        return out

    def _mean_column(self, num_files: int) -> np.ndarray:
        """(C, 1, 1) float32 means of a blob of num_files frames (cyclic per channel), cached:
        building it costs more than 1% of a sample."""
        cache = self.__dict__.setdefault("_mean_cache", {})
        if num_files not in cache:
            per_frame = self.mod.channels_per_frame
            mean = np.resize(np.asarray(self.mod.mean, np.float32), per_frame)
            cache[num_files] = np.tile(mean, num_files)[:, None, None]
        return cache[num_files]


class TSNTestDataset(Dataset):
    """eval_net.py protocol: 25 equally spaced snippets x 10 crops (or 1 centre crop).

    Item: tensor (num_frames * crops, new_length * C, 224, 224), frame-major, crop-minor, crops
    TL, TR, BL, BR, centre then the same five mirrored (flow x -> 255 - x); frames resized to
    340x256 first (a no-op on dense_flow output).

    `sources` maps a record's path to its frame source (tsn.data.frames: `tsn predict` passes
    the JPEG bytes of a video decoded in memory); records not in it read their frame folder.
    """

    def __init__(
        self, records: Sequence[VideoRecord], modality: str, num_frames: int = 25,
        crops: int = 10, new_length: int | None = None, num_classes: int | None = None,
        check_paths: bool = True, sources: Mapping[str, frames.FrameSource] | None = None,
    ) -> None:
        self.mod = get_modality(modality)
        self.records = list(records)
        self.sources = dict(sources or {})
        self.num_frames, self.crops = num_frames, crops
        self.new_length = new_length or self.mod.new_length
        self.window = self.mod.window(self.new_length)
        transforms.oversample_crops(256, 340, num_crops=crops)  # validates `crops`
        in_memory = [r for r in self.records if r.path in self.sources]
        validate_records([r for r in self.records if r.path not in self.sources], 1,
                         num_classes, check_paths)
        validate_records(in_memory, 1, num_classes, False)  # no folder to look for
        single_thread_opencv()

    def __len__(self) -> int:
        return len(self.records)

    def ticks(self, index: int) -> list[int]:
        """1-based start files of the test snippets of item `index`."""
        return sampling.eval_ticks(self.records[index].num_frames, self.window, self.num_frames)

    def files(self, index: int) -> list[int]:
        """Every 1-based frame file the test snippets of item `index` read, sorted (what
        `tsn predict` decodes and, for flow, computes)."""
        n = self.records[index].num_frames
        return sorted({f for tick in self.ticks(index)
                       for f in sampling.eval_stack_files(tick, n, self.window)})

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.views(index), self.records[index].label

    def views(self, index: int, frames: slice = slice(None)) -> torch.Tensor:
        """The views of test frames `frames` (a slice of `ticks(index)`) of video `index`:
        (len(frames) * crops, L*C, 224, 224), frame-major. tsn test asks for a few frames at a
        time: the 25 x 10 views of one flow video are ~500 MB of float32 at once."""
        record = self.records[index]
        views = []
        source = self.sources.get(record.path)
        for tick in self.ticks(index)[frames]:
            stack = read_snippets(record, self.mod, [tick], self.window, clamp=True,
                                  source=source)
            if stack.shape[:2] != transforms.EVAL_SIZE[::-1]:
                stack = cv2.resize(stack, transforms.EVAL_SIZE, interpolation=cv2.INTER_LINEAR)
                stack = stack[:, :, None] if stack.ndim == 2 else stack
            for crop in transforms.oversample_crops(stack.shape[0], stack.shape[1],
                                                    num_crops=self.crops):
                views.append(finish(transforms.apply_crop(stack, crop, self.mod.is_flow),
                                    self.mod, 1, self.window))
        return torch.from_numpy(np.stack(views))


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker set-up: one OpenCV thread per worker, library RNGs seeded.

    Samples do not depend on these seeds (they use (seed, epoch, index)); seeding only keeps
    any third-party randomness repeatable. (Under fork the parent already set one thread, see
    `single_thread_opencv`; under spawn this sets it.)
    """
    single_thread_opencv()
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
