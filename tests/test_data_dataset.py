"""TSNDataset / TSNTestDataset on dense_flow-layout frame folders: which files are read, the
shared crop/flip, the eval_net 25x10 layout, repeatability across workers, and bad input."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tsn.data import transforms
from tsn.data.dataset import TSNDataset, TSNTestDataset, worker_init_fn
from tsn.data.errors import DataError
from tsn.data.video_list import VideoRecord
from tsn.modality import RGB_MEAN_BGR

H, W = 256, 340


def write_uniform(folder, n, flow=False):
    """Frames whose grey value is 2 * file index (uniform images decode exactly)."""
    os.makedirs(folder, exist_ok=True)
    for i in range(1, n + 1):
        img = np.full((H, W), 2 * i, np.uint8)
        cv2.imwrite(os.path.join(folder, f"img_{i:05d}.jpg"), img)
        if flow:
            cv2.imwrite(os.path.join(folder, f"flow_x_{i:05d}.jpg"), img)
            cv2.imwrite(os.path.join(folder, f"flow_y_{i:05d}.jpg"), 255 - img)
    return VideoRecord(str(folder), n, 1)


def write_textured(folder, n, seed=0):
    """Frames with random texture (for crop / flip checks)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        base = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(os.path.join(folder, f"img_{i:05d}.jpg"), base)
        cv2.imwrite(os.path.join(folder, f"flow_x_{i:05d}.jpg"), base[:, :, 0])
        cv2.imwrite(os.path.join(folder, f"flow_y_{i:05d}.jpg"), base[:, :, 1])
    return VideoRecord(str(folder), n, 0)


def test_rgb_train_reads_one_random_frame_per_segment(tmp_path):
    rec = write_uniform(tmp_path / "v", 100)
    ds = TSNDataset([rec], "rgb", num_segments=3, seed=3)
    seen = set()
    for epoch in range(40):
        ds.set_epoch(epoch)
        x, label = ds[0]
        assert x.shape == (9, 224, 224) and x.dtype == torch.float32 and label == 1
        files = []
        for seg in range(3):
            v = x[3 * seg:3 * seg + 3, 5, 5] + torch.tensor(RGB_MEAN_BGR)
            assert torch.all(v == v[0])  # grey
            files.append(int(v[0]) // 2)
        offs = [f - 1 for f in files]  # files are 1-based, offsets 0-based
        assert all(33 * i <= o <= 33 * i + 32 for i, o in enumerate(offs))
        assert files == [o + 1 for o in ds.offsets(0)]
        seen.add(tuple(files))
    assert len(seen) > 20


def test_flow_train_stacks_xy_and_shares_crop_and_flip(tmp_path):
    rec = write_textured(tmp_path / "v", 30)
    ds = TSNDataset([rec], "flow", num_segments=3, seed=0)
    assert ds.scale_ratios == (1.0, 0.875, 0.75)  # released flow scale_ratios
    mirrored = 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        x, _ = ds[0]
        assert x.shape == (30, 224, 224)
        rng = ds.rng(0)
        offs = ds.offsets(0, rng)
        crop = ds.crop(H, W, rng)
        mirrored += crop.mirror
        chans = []
        for o in offs:
            for f in range(o + 1, o + 6):
                for c in "xy":
                    chans.append(cv2.imread(str(tmp_path / "v" / f"flow_{c}_{f:05d}.jpg"), 0))
        stack = np.stack(chans, axis=2)
        box = stack[crop.h_off:crop.h_off + crop.crop_h, crop.w_off:crop.w_off + crop.crop_w]
        box = cv2.resize(box, (224, 224)) if (crop.crop_h, crop.crop_w) != (224, 224) else box
        if crop.mirror:
            box = box[:, ::-1].astype(np.int32)
            box[:, :, 0::2] = 255 - box[:, :, 0::2]
        expect = torch.from_numpy(np.ascontiguousarray(box.transpose(2, 0, 1))).float() - 128
        assert torch.equal(x, expect)
    assert 0 < mirrored < 12


def test_rgb_train_equals_stack_then_apply_crop(tmp_path):
    """The per-frame fast path (split into a uint8 block, one subtraction) is bit-identical to
    the reference: stack the BGR frames, `transforms.apply_crop`, `to_chw_float`."""
    rec = write_textured(tmp_path / "v", 30)
    ds = TSNDataset([rec], "rgb", num_segments=3, seed=0)
    kinds = set()
    for epoch in range(16):
        ds.set_epoch(epoch)
        x, _ = ds[0]
        rng = ds.rng(0)
        offs = ds.offsets(0, rng)
        crop = ds.crop(H, W, rng)
        kinds.add((crop.mirror, (crop.crop_h, crop.crop_w) != (224, 224)))
        stack = np.concatenate([cv2.imread(str(tmp_path / "v" / f"img_{o + 1:05d}.jpg"))
                                for o in offs], axis=2)
        expect = transforms.to_chw_float(transforms.apply_crop(stack, crop, False),
                                         RGB_MEAN_BGR)
        assert torch.equal(x, torch.from_numpy(expect))
    assert len(kinds) >= 3  # mirrored and not, resized and not (mostly)


def test_item_rng_is_default_rng_of_seed_epoch_index(tmp_path):
    """The fast uint32 seeding gives the documented default_rng([seed, epoch, index])."""
    rec = write_uniform(tmp_path / "v", 10)
    for seed, epoch, index in [(0, 0, 0), (7, 3, 12345), (2**32 - 1, 1, 2), (2**40, 0, 5)]:
        ds = TSNDataset([rec], "rgb", seed=seed)  # rng() takes any index
        ds.set_epoch(epoch)
        expect = np.random.default_rng([seed, epoch, index]).integers(0, 2**62, 8)
        assert np.array_equal(ds.rng(index).integers(0, 2**62, 8), expect)


def test_val_phase_centre_offsets_and_crop(tmp_path):
    rec = write_uniform(tmp_path / "v", 100)
    ds = TSNDataset([rec], "rgb", train=False)
    x, _ = ds[0]
    files = [int(x[3 * s, 0, 0] + 104) // 2 for s in range(3)]
    assert files == [17, 50, 83]  # (33 - 1 + 1) // 2 + i * 33, +1


def test_rgb_diff_reads_new_length_plus_one(tmp_path):
    rec = write_uniform(tmp_path / "v", 60)
    ds = TSNDataset([rec], "rgb_diff", num_segments=3, seed=1)
    x, _ = ds[0]
    assert x.shape == (3 * 5 * 3, 224, 224)
    assert torch.all(x == 2.0)  # consecutive frames differ by 2 grey levels


def test_repeatable_across_workers_and_resume(tmp_path):
    recs = [write_uniform(tmp_path / f"v{i}", 40 + i) for i in range(6)]
    ds = TSNDataset(recs, "rgb", num_segments=3, seed=5)
    ds.set_epoch(2)
    one = torch.stack([ds[i][0] for i in range(6)])
    loader = DataLoader(ds, batch_size=3, num_workers=2, worker_init_fn=worker_init_fn)
    two = torch.cat([b for b, _ in loader])
    assert torch.equal(one, two)
    ds.set_epoch(3)
    assert not torch.equal(one, torch.stack([ds[i][0] for i in range(6)]))


def test_test_dataset_25x10_layout(tmp_path):
    rec = write_textured(tmp_path / "v", 40)
    ds = TSNTestDataset([rec], "flow")
    x, label = ds[0]
    assert x.shape == (250, 10, 224, 224) and label == 0
    ticks = ds.ticks(0)
    assert ticks == [1 + i for i in range(25)]  # step (40 - 5) // 24 = 1
    t = 24  # frame index 24 (tick 25): files min(40, 25 + k)
    fx = cv2.imread(str(tmp_path / "v" / f"flow_x_{ticks[t]:05d}.jpg"), 0).astype(np.float32)
    fy = cv2.imread(str(tmp_path / "v" / f"flow_y_{ticks[t]:05d}.jpg"), 0).astype(np.float32)
    boxes = [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)]
    for k, (h, w) in enumerate(boxes):
        v = x[10 * t + k]
        assert torch.equal(v[0], torch.from_numpy(fx[h:h + 224, w:w + 224] - 128))
        assert torch.equal(v[1], torch.from_numpy(fy[h:h + 224, w:w + 224] - 128))
        m = x[10 * t + 5 + k]  # mirrored: width reversed, x -> 255 - x
        flipped_x = 255 - fx[h:h + 224, w:w + 224][:, ::-1] - 128
        assert torch.equal(m[0], torch.from_numpy(np.ascontiguousarray(flipped_x)))
        assert torch.equal(m[1], torch.from_numpy(
            np.ascontiguousarray(fy[h:h + 224, w:w + 224][:, ::-1] - 128)))
    one = TSNTestDataset([rec], "rgb", crops=1)[0][0]
    assert one.shape == (25, 3, 224, 224)


def test_test_dataset_resizes_to_340x256(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(d / f"img_{i:05d}.jpg"), np.full((240, 320, 3), 50, np.uint8))
    x, _ = TSNTestDataset([VideoRecord(str(d), 3, 0)], "rgb")[0]
    assert x.shape == (250, 3, 224, 224) and torch.all(x[:, 0] == 50 - 104)


def test_bad_input_is_one_clear_error(tmp_path):
    rec = write_uniform(tmp_path / "v", 20, flow=True)
    with pytest.raises(DataError, match="vshort: 3 frame"):
        TSNDataset([VideoRecord(str(tmp_path / "vshort"), 3, 0)], "flow")
    with pytest.raises(DataError, match="label 7"):
        TSNDataset([VideoRecord(rec.path, 20, 7)], "rgb", num_classes=5)
    with pytest.raises(DataError, match="nothere: frame folder missing"):
        TSNDataset([VideoRecord(str(tmp_path / "nothere"), 20, 0)], "rgb")
    # list says 30 frames but only 20 exist: the missing file is named, no IndexError
    ds = TSNDataset([VideoRecord(rec.path, 30, 0)], "flow", train=False)
    with pytest.raises(DataError, match=r"flow_x_000(2[1-9]|30)\.jpg: frame missing"):
        ds[0]
    # truncated JPEG
    p = tmp_path / "v" / "img_00001.jpg"
    p.write_bytes(p.read_bytes()[:200])
    ds = TSNTestDataset([rec], "rgb")
    with pytest.raises(DataError, match="img_00001.jpg: corrupt or truncated"):
        ds[0]
    with pytest.raises(DataError, match="unknown modality"):
        TSNDataset([rec], "depth")
