"""Conversion of a downloaded caffemodel and `eval-reference` end to end on CPU: a fake
"reference" BN-Inception caffemodel written here is served on 127.0.0.1, fetched, converted
through prototxt_port, and tested on tiny synthetic frame folders; fusion rows by hand."""

from __future__ import annotations

import argparse
import csv

import cv2
import numpy as np
import pytest
import torch
from test_weights_http import LocalServer

from prototxt_port import write_caffemodel
from prototxt_port.convert import load_weights
from tsn.models.bn_inception import BNInception
from tsn.scores import Protocol, VideoScores, save_scores
from tsn.weights.bn_inception_layout import bn_inception_to_blobs
from tsn.weights.cli import add_arguments, run
from tsn.weights.manifest import load_manifest
from tsn.weights.reference import EvalOptions, fuse_rows

NAME = "ucf101_split_1_tsn_rgb_reference_bn_inception"
WINNER = 7  # the fake model's fc-action bias makes every video class 7


@pytest.fixture(scope="module")
def fake_reference(tmp_path_factory):
    """A 101-way RGB BN-Inception caffemodel (random convs, fc-action = bias on class 7)."""
    torch.manual_seed(0)
    state = BNInception(3, 101).state_dict()
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.zeros(101)
    state["fc.bias"][WINNER] = 5.0
    path = tmp_path_factory.mktemp("fake") / "fake.caffemodel"
    prototxt = load_manifest().get(NAME).prototxt
    write_caffemodel(path, prototxt, bn_inception_to_blobs(state))
    return path, state


def write_dataset(root, labels):
    """<root>/ucf101/frames/<video>/img_0000k.jpg (340x256) + the split-1 RGB test list."""
    lines = []
    for i, label in enumerate(labels):
        folder = root / "ucf101" / "frames" / f"v_{i}"
        folder.mkdir(parents=True)
        for t in range(1, 5):
            img = np.full((256, 340, 3), 40 * t + 10 * i, np.uint8)
            cv2.imwrite(str(folder / f"img_{t:05d}.jpg"), img)
        lines.append(f"{folder} 4 {label}")
    lists = root / "ucf101" / "lists"
    lists.mkdir(parents=True)
    (lists / "ucf101_rgb_val_split_1.txt").write_text("\n".join(lines) + "\n")


def test_fetch_converts_the_download_and_eval_reference_runs(fake_reference, tmp_path, capsys):
    path, state = fake_reference
    real = load_manifest()
    manifest = tmp_path / "manifest.toml"
    write_dataset(tmp_path / "data", [WINNER, WINNER, WINNER, 3])
    with LocalServer() as srv:
        srv.add(f"/{NAME}.caffemodel.v5", path.read_bytes(), cut_after=5_000_000, cuts_left=1)
        blocks = []
        for name in (NAME, "hmdb51_split_1_tsn_rgb_reference_bn_inception"):
            e = real.get(name)
            blocks.append(
                f'[[model]]\nname = "{name}"\nkind = "reference"\nformat = "caffemodel"\n'
                f'modality = "rgb"\ndataset = "{e.dataset}"\nsplit = 1\nfile = "{e.file}"\n'
                f'urls = ["{srv.url("/" + name + ".caffemodel.v5")}"]\n'
                f'prototxt = "{e.prototxt}"\nexpected_mca = {e.expected_mca}\n')
        manifest.write_text("schema = 1\n" + "\n".join(blocks))
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        common = ["--manifest", str(manifest), "--dir", str(tmp_path / "w"),
                  "--lock", str(tmp_path / "lock.toml")]
        assert run(parser.parse_args(common + ["fetch", NAME, "--quiet"])) == 0
    converted = load_weights(tmp_path / "w" / f"{NAME}.pt")
    assert converted["layout"] == "bn_inception"
    for key in ("conv1.conv.weight", "blocks.inception_5b.pool_proj.bn.running_var", "fc.bias"):
        assert torch.equal(converted["state_dict"][key], state[key]), key
    eval_args = common + ["eval-reference", "--data-root", str(tmp_path / "data"),
                          "--out-dir", str(tmp_path / "results"), "--frames", "2",
                          "--crops", "1", "--device", "cpu"]
    assert run(parser.parse_args(eval_args)) == 0
    with open(tmp_path / "results" / "reference_models.csv") as handle:
        rows = {r["name"]: r for r in csv.DictReader(handle)}
    ucf = rows[NAME]
    # 3 videos of class 7 right, the class-3 video wrong: mean class accuracy 50, top-1 75
    assert (float(ucf["measured_mca"]), float(ucf["top1"]), ucf["videos"]) == (50.0, 75.0, "4")
    assert float(ucf["expected_mca"]) == 86.01 and float(ucf["delta"]) == pytest.approx(-36.01)
    # 4 test videos: an interval so wide that even 86.01 is inside (nothing is refuted)
    assert float(ucf["ci_low"]) < 50 < 86.01 < float(ucf["ci_high"])
    assert ucf["expected_in_interval"] == "inside"
    hmdb = rows["hmdb51_split_1_tsn_rgb_reference_bn_inception"]
    assert hmdb["measured_mca"] == "" and "tsn weights fetch hmdb51_split_1" in hmdb["status"]
    md = (tmp_path / "results" / "reference_models.md").read_text()
    assert "86.01" in md and "50.0" in md
    # a second run reuses the finished score file (same weights and protocol): resumable
    scores = tmp_path / "results" / "reference_scores" / f"{NAME}.npz"
    before = scores.stat().st_mtime_ns
    assert run(parser.parse_args(eval_args)) == 0
    assert scores.stat().st_mtime_ns == before


def test_missing_dataset_row_says_how_to_get_it(tmp_path):
    from tsn.weights.reference import evaluate_entry

    entry = load_manifest().get("hmdb51_split_2_tsn_flow_reference_bn_inception")
    raw = tmp_path / "w" / "downloads" / entry.file
    raw.parent.mkdir(parents=True)
    (tmp_path / "w" / f"{entry.name}.pt").write_bytes(b"converted earlier")
    row = evaluate_entry(entry, EvalOptions(tmp_path / "w", tmp_path / "data", tmp_path / "r"))
    assert "hmdb51_flow_val_split_2.txt" in row["status"]
    assert "make data-hmdb51" in row["status"] and row.get("measured_mca") is None


def test_fusion_rows_fuse_raw_scores_with_the_manifest_weights(tmp_path):
    manifest = load_manifest()
    rgb = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # right, right, wrong(label 1)
    flow = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # 1:1.5 flips video 0 and 2
    ids, labels = ("a", "b", "c"), np.array([0, 1, 1])
    out = tmp_path / "reference_scores"
    for name, scores in (("ucf101_split_1_tsn_rgb_reference_bn_inception", rgb),
                         ("ucf101_split_1_tsn_flow_reference_bn_inception", flow)):
        save_scores(out / f"{name}.npz", VideoScores(ids, labels, scores, Protocol()))
    rows = fuse_rows(manifest, EvalOptions(tmp_path, tmp_path, tmp_path))
    ucf = [r for r in rows if r["dataset"] == "ucf101"][0]
    # fused = rgb + 1.5 flow: [2, 1.5] -> 0 right, [0, 2.5] right, [1, 1.5] -> 1 right
    assert ucf["measured_mca"] == 100.0 and ucf["expected_mca"] == 93.82
    hmdb = [r for r in rows if r["dataset"] == "hmdb51"][0]
    assert hmdb["status"] == "members not evaluated"

