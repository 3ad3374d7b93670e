"""Per-class CSVs beside score files, the confusion figure, the runs table (incremental = rebuilt)
and `tsn results` (list, filter, plot, rebuild, compare, confusion)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tsn import per_class, runs_table
from tsn.cli import main as tsn
from tsn.metrics import confusion_matrix, top_confusions
from tsn.report import write_confusion_png
from tsn.scores import Protocol, VideoScores, load_scores, save_scores

NAMES = ("Alpha", "Beta", "Gamma")


def scores(preds, labels, modality="rgb", dataset="ucf101", extra=None):
    preds, labels = np.asarray(preds), np.asarray(labels)
    protocol = Protocol(modality=modality, dataset=dataset, split=1, commit="abc",
                        weights="ckpt.pt",
                        extra={"classes": list(NAMES), "record": {"date": "2026-01-01"},
                               **(extra or {})})
    return VideoScores(tuple(f"v{i}" for i in range(len(labels))), labels,
                       np.eye(3)[preds].astype(np.float32), protocol)


def make_run(folder, preset="released", lr=0.001):
    folder.mkdir(parents=True)
    config = {"model": {"arch": "tiny", "num_segments": 3, "consensus": "avg",
                        "init": "imagenet", "partial_bn": "release"},
              "solver": {"preset": preset, "max_iter": 10, "base_lr": lr, "lr_policy": "fixed",
                         "effective_batch": 8, "clip_mode": "release"},
              "precision": "fp32"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "run.json").write_text(json.dumps({"init": "random (torch seed 0)"}))
    return folder


def test_per_class_csv_beside_every_final_score_file(tmp_path):
    vs = scores([0, 0, 1, 2, 2, 0], [0, 0, 1, 1, 2, 2])
    path = save_scores(tmp_path / "s.npz", vs)
    with per_class.per_class_path(path).open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(per_class.PER_CLASS_COLUMNS)
    assert [r["name"] for r in rows] == list(NAMES)
    beta = rows[1]  # 1 of 2 right, the other taken for Gamma
    assert (beta["videos"], beta["correct"], beta["accuracy"]) == ("2", "1", "50.00")
    assert beta["most_confused_with"] == "Gamma" and beta["confused_videos"] == "1"
    assert (beta["ci_low"], beta["ci_high"]) == ("9.45", "90.55")  # Wilson, 1 of 2
    assert rows[0]["most_confused_with"] == "" and rows[0]["confused_videos"] == "0"
    # a partial file of an unfinished test gets no side file
    partial = VideoScores(vs.video_ids, vs.labels, vs.scores,
                          Protocol(extra={"partial_of": "x"}))
    save_scores(tmp_path / "p.partial.npz", partial)
    assert not per_class.per_class_path(tmp_path / "p.partial.npz").exists()
    assert not (tmp_path / "runs.csv").exists()  # not under a runs/ folder: no table


def test_worst_classes_and_names():
    vs = scores([0, 0, 1, 2, 2, 0], [0, 0, 1, 1, 2, 2])
    rows = per_class.per_class_rows(vs)
    assert per_class.describe_worst(rows, 2) == [
        "Beta  50.0% (1/2), mostly taken for Gamma (1)",
        "Gamma  50.0% (1/2), mostly taken for Alpha (1)"]
    bare = VideoScores(vs.video_ids, vs.labels, vs.scores, Protocol(dataset="mystery"))
    assert per_class.class_names_of(bare) == ("class 0", "class 1", "class 2")
    ucf = VideoScores(("a",), np.array([0]), np.zeros((1, 101)), Protocol(dataset="ucf101"))
    assert per_class.class_names_of(ucf)[:2] == ("ApplyEyeMakeup", "ApplyLipstick")


def test_top_confusions_and_confusion_figure(tmp_path):
    cm = confusion_matrix(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 2, 2, 0, 2]), 3)
    assert top_confusions(cm, 2) == [(1, 2, 2), (0, 1, 1)]
    out = write_confusion_png(tmp_path / "cm.png", cm, "rgb 25x10", NAMES)
    assert out.read_bytes()[:4] == b"\x89PNG"
    big = np.diag(np.full(101, 30))
    big[3, 7] = 4
    assert write_confusion_png(tmp_path / "big.png", big, "101 classes").stat().st_size > 0


def test_runs_table_incremental_equals_rebuilt(tmp_path, capsys):
    runs = tmp_path / "results" / "runs"
    rgb = make_run(runs / "synthetic" / "demo" / "rgb-s1-aaa")
    flow = make_run(runs / "synthetic" / "demo" / "flow-s1-bbb", preset="paper", lr=0.005)
    frames = tmp_path / "frames"
    (frames / "v0").mkdir(parents=True)
    (frames / "extract_settings.json").write_text(json.dumps(
        {"settings": {"flow": "tvl1", "backend": "torch", "semantics": "gpu24"}}))
    flow_list = tmp_path / "flow_val.txt"
    flow_list.write_text(f"{frames / 'v0'} 10 0\n")
    save_scores(rgb / "scores_25x10.npz", scores([0, 1, 2, 2], [0, 1, 2, 1]))
    save_scores(flow / "scores_25x10.npz",
                scores([0, 1, 1, 2], [0, 1, 2, 1], "flow", extra={"list": str(flow_list)}))
    fused = VideoScores(("v0", "v1", "v2", "v3"), np.array([0, 1, 2, 1]),
                        np.eye(3)[[0, 1, 2, 1]],
                        Protocol(modality="rgb+flow", dataset="synthetic", split=1,
                                 extra={"fused": [
                                     # as fusion records them: relative to the working
                                     # directory of then, here tmp_path
                                     {"file": "results/runs/synthetic/demo/rgb-s1-aaa/"
                                      "scores_25x10.npz", "weight": 1.0,
                                      "protocol": {"modality": "rgb"}},
                                     {"file": "results/runs/synthetic/demo/flow-s1-bbb/"
                                      "scores_25x10.npz", "weight": 1.5, "protocol": {
                                         "modality": "flow", "extra": {"list": str(flow_list)}}}
                                 ]}))
    save_scores(rgb / "fused_x.npz", fused)
    table = tmp_path / "results" / "runs.csv"
    incremental = table.read_text()
    df = runs_table.read_table(table)
    assert df["key"].tolist() == ["runs/synthetic/demo/flow-s1-bbb/scores_25x10.npz",
                                  "runs/synthetic/demo/rgb-s1-aaa/fused_x.npz",
                                  "runs/synthetic/demo/rgb-s1-aaa/scores_25x10.npz"]
    flow_row = df.iloc[0].to_dict()
    assert flow_row["recipe"] == "paper" and flow_row["flow"] == "tvl1 torch gpu24"
    assert flow_row["mean_class_acc"] == "50.00" and flow_row["top1"] == "50.00"
    assert float(flow_row["ci_low"]) < 50 < float(flow_row["ci_high"])
    assert flow_row["schedule"] == "max_iter 10, base_lr 0.005 fixed"
    assert len(flow_row["config_hash"]) == 10 and flow_row["run"].endswith("flow-s1-bbb")
    fused_row = df.iloc[1].to_dict()
    assert fused_row["kind"] == "fused" and fused_row["protocol"].endswith("fused 1:1.5")
    assert fused_row["flow"] == "tvl1 torch gpu24" and fused_row["mean_class_acc"] == "100.00"
    # the fused row describes both streams' runs, not only the folder it is saved in
    assert fused_row["recipe"] == "rgb: release; flow: paper"
    assert fused_row["schedule"] == ("rgb: max_iter 10, base_lr 0.001 fixed; "
                                     "flow: max_iter 10, base_lr 0.005 fixed")
    assert fused_row["arch"] == "tiny" and fused_row["clip_mode"] == "release"
    # rewriting a file replaces its row; a rebuild from the folders gives the same table
    save_scores(rgb / "scores_25x10.npz", scores([0, 1, 2, 2], [0, 1, 2, 1]))
    assert table.read_text() == incremental
    (rgb / "junk.npz").write_bytes(b"not a zip")
    table.unlink()
    assert tsn(["results", "--table", str(table), "rebuild"]) == 0
    assert table.read_text() == incremental
    assert "skipped" in capsys.readouterr().err  # the broken file is named, not indexed
    # list / filter / plot
    assert tsn(["results", "--table", str(table), "list", "--where", "modality=flow",
                "--columns", "key,mean_class_acc,ci_low,ci_high"]) == 0
    out = capsys.readouterr().out
    assert "flow-s1-bbb" in out and "rgb-s1-aaa" not in out and "1 of 3 rows" in out
    assert tsn(["results", "--table", str(table)]) == 0
    assert "3 of 3 rows" in capsys.readouterr().out
    png = tmp_path / "runs.png"
    assert tsn(["results", "--table", str(table), "plot", "--where", "kind=stream",
                "--out", str(png)]) == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert tsn(["results", "--table", str(table), "list", "--where", "nope=1"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert tsn(["results", "--table", str(tmp_path / "none.csv")]) == 2


def test_runs_table_settings_name_is_extractions():
    from tsn.flow.settings import SETTINGS_FILE

    assert runs_table.SETTINGS_FILE == SETTINGS_FILE


def test_results_compare_and_confusion(tmp_path, capsys):
    a = save_scores(tmp_path / "a.npz", scores([0, 1, 2, 2, 0, 1], [0, 1, 2, 1, 0, 1]))
    b = save_scores(tmp_path / "b.npz", scores([0, 0, 2, 0, 0, 0], [0, 1, 2, 1, 0, 1]))
    assert tsn(["results", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "2 right only in A, 0 right only in B, p = 0.5" in out and "95% CI" in out
    assert tsn(["results", "confusion", str(a)]) == 0
    assert (tmp_path / "a.confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert load_scores(a).num_classes == 3
    assert tsn(["results", "compare", str(a), str(tmp_path / "missing.npz")]) == 2


def test_scores_without_runs_folder_are_not_indexed(tmp_path):
    assert runs_table.table_for(tmp_path / "x" / "s.npz") is None
    assert runs_table.table_for(tmp_path / "runs" / "r" / "s.npz") == tmp_path / "runs.csv"


@pytest.mark.parametrize("bad", ["", "dataset"])
def test_filter_needs_a_known_column(bad, tmp_path):
    from tsn.results_cli import _filter

    df = runs_table.read_table(tmp_path / "none.csv")
    with pytest.raises(ValueError):
        _filter(df, [f"{bad}=x" if bad != "dataset" else "nope~x"])
