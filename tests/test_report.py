"""Report generator on a fixture: compare, md/csv/png writers, results/paper.csv provenance."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_dir

from reproduce import compare as cmp
from reproduce import paper
from tsn import report

SPEC_FIXTURE = """table,row,column,value_pct,dataset,split,note
2,RGB Image,single,84.5,ucf101,1,
2,Optical Flow,single,87.2,ucf101,1,
6,TSN (2 modalities),fused,94.0,ucf101,mean_of_3,RGB + Flow
"""


@pytest.fixture()
def paper_rows(tmp_path):
    spec = tmp_path / "paper_tables.csv"
    spec.write_text(SPEC_FIXTURE)
    out = tmp_path / "paper.csv"
    out.write_text(paper.render(paper.paper_rows(spec)))
    return paper.load_paper(out)


def measured(dataset="ucf101"):
    base = {"table": 2, "dataset": dataset, "split": "1", "protocol": "25x10 mean",
            "schedule": "released", "batch": 128, "init": "imagenet", "commit": "abc123"}
    # intervals of UCF101's size: about +-0.8 points around the value
    return [{**base, "row": "RGB Image", "column": "single", "value": 85.0, "ci_low": 84.1,
             "ci_high": 85.8, "top1": 85.3},
            {**base, "row": "Optical Flow", "column": "single", "value": 85.2, "ci_low": 84.4,
             "ci_high": 86.0, "top1": 85.9}]


def test_paper_rows_carry_source_and_exact_values(paper_rows):
    assert [r["paper_value"] for r in paper_rows] == [84.5, 87.2, 94.0]
    assert "Table 2, row 'RGB Image', column 'single'" in paper_rows[0]["source"]
    assert "mean of 3 splits" in paper_rows[2]["source"]


def test_paper_inside_the_interval_is_reproduced_outside_is_not(paper_rows):
    """RGB 85.0 (84.1-85.8) covers the paper's 84.5: inside; flow 85.2 (84.4-86.0) does not
    cover 87.2: outside. The verdict is the interval's, never a fixed gap."""
    rows = cmp.compare(measured(), paper_rows)
    assert rows[0]["delta"] == pytest.approx(0.5) and rows[0]["paper_in_interval"] == "inside"
    assert rows[1]["delta"] == pytest.approx(-2.0) and rows[1]["paper_in_interval"] == "outside"
    assert rows[0]["value (95% CI)"] == "85.00 (95% CI 84.10-85.80)"
    # a wider interval (a smaller test set) covers the same gap
    wide = [{**measured()[1], "ci_low": 80.0, "ci_high": 90.0}]
    assert cmp.compare(wide, paper_rows)[0]["paper_in_interval"] == "inside"
    bare = [{k: v for k, v in measured()[0].items() if not k.startswith("ci_")}]
    assert cmp.compare(bare, paper_rows)[0]["paper_in_interval"] == "no interval"


def test_compare_synthetic_is_not_comparable(paper_rows):
    rows = cmp.compare(measured("synthetic"), paper_rows)
    assert rows[0]["delta"] is None and rows[0]["paper_in_interval"].startswith("n/a")
    assert rows[0]["paper_value"] == 84.5


def test_write_table_report_md_csv_png(tmp_path, paper_rows):
    rows = cmp.compare(measured("synthetic"), paper_rows)
    record = report.run_record({"profile": "tiny"}, seed=0)
    paths = cmp.write_table_report("table2", rows, tmp_path, record=record)
    md = paths["md"].read_text()
    assert "NOT comparable to the paper" in md and "25x10 mean" in md
    assert f"commit: {record['commit']}" in md and "table2.png" in md
    assert "87.20 (UCF101; not comparable)" in md  # the paper number, marked
    assert "not from training randomness" in md  # what the interval means
    with paths["csv"].open() as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == list(cmp.CSV_COLUMNS)
    assert got[1]["value"] == "85.20" and got[1]["paper_value"] == "87.20"
    assert (got[1]["ci_low"], got[1]["ci_high"]) == ("84.40", "86.00")
    assert got[1]["schedule"] == "released" and got[1]["batch"] == "128"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # compare CLI reads it back: synthetic rows never fail --check
    assert cmp.main([str(paths["csv"]), "--check", "--paper", str(tmp_path / "paper.csv")]) == 0


def test_compare_check_fails_when_the_paper_is_outside(tmp_path, paper_rows):
    paper_csv = tmp_path / "paper.csv"
    paths = cmp.write_table_report("t", cmp.compare(measured(), paper_rows), tmp_path / "o")
    assert cmp.main([str(paths["csv"]), "--paper", str(paper_csv)]) == 0
    assert cmp.main([str(paths["csv"]), "--check", "--paper", str(paper_csv)]) == 1


def test_confusion_png_and_csv_blank_for_missing(tmp_path):
    path = report.write_confusion_png(tmp_path / "cm.png", np.eye(3, dtype=int), "cm")
    assert path.read_bytes()[:4] == b"\x89PNG"
    out = report.write_csv(tmp_path / "x.csv", [{"a": 1.0, "b": None}], ["a", "b"])
    assert out.read_text() == "a,b\n1.00,\n"


def test_results_paper_csv_is_generated_from_spec():
    """results/paper.csv must be exactly what reproduce.paper builds from the shared
    paper_tables.csv."""
    expected = paper.render(paper.paper_rows(shared_dir() / "spec" / "paper_tables.csv"))
    assert (REPO_ROOT / "results" / "paper.csv").read_text() == expected


def test_bad_spec_table_is_one_clear_error(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("table,row,column,value_pct,dataset,split,note\n2,RGB,single,x,ucf101,1,\n")
    with pytest.raises(ValueError, match=r"p.csv:2: value_pct 'x' is not a number"):
        paper.paper_rows(bad)


def test_fusion_gain_line():
    rows = [{"row": "Average", "column": c, "value": v}
            for c, v in (("spatial", 31.25), ("temporal", 25.0), ("two_stream", 50.0))]
    assert cmp.fusion_gains(rows) == ["Average: the fused two-stream score (50.00) beats the "
                                      "best single stream (31.25) by +18.75 pp."]
    rows[2]["value"] = 30.0
    assert "does NOT beat" in cmp.fusion_gains(rows)[0]


def test_synthetic_ceilings_come_from_the_design(tmp_path):
    """RGB sees the scene (its pair, and red vs green), flow the motion (up/down, a pan,
    sideways, still), neither the order: ceilings 62.5 / 75 / 87.5 from tsn.data.synth's tables
    alone."""
    from reproduce import synthetic
    from tsn.data import synth

    assert synth.ceiling(["rgb"]) == 0.625 and synth.ceiling(["flow"]) == 0.75
    assert synth.ceiling(["rgb", "flow"]) == 0.875 and synth.ceiling(["rgb_diff"]) is None
    assert synth.stream_groups(["rgb", "flow"])["CircleThenSquare"] == ("CircleThenSquare",
                                                                       "SquareThenCircle")
    assert synth.stream_groups(["rgb"])["MoveUp"] == ("MoveDown", "MoveUp")
    assert synth.stream_groups(["flow"])["RedScene"] == ("GreenScene", "RedScene")
    design = synthetic.design_section()
    assert "| RedScene / GreenScene | colour | red scene, a disk / green scene, a disk | yes |" \
        in design
    assert "| MoveUp / MoveDown | motion | blue scene, a disk | no |" in design
    assert "RGB (spatial stream) 62.50%" in design and "RGB + flow (fused) 87.50%" in design
    assert "| PanObjectUp / PanObjectDown | motion under a camera pan | grey scene, a disk | no |" \
        in design
    rows = [{"row": "Average", "column": c, "value": v, "ci_low": v - 5, "ci_high": v + 5,
             "streams": s, "dataset": "synthetic"}
            for c, v, s in (("spatial", 60.0, "rgb"), ("temporal", 70.0, "flow"),
                            ("two_stream", 85.0, "rgb+flow"))]
    reached = synthetic.reached_section(rows)
    assert "RGB (spatial stream): 60.00% (95% CI 55.00-65.00) of a 62.50% ceiling: 2.50 " \
           "points below it." in reached
    assert "The fusion beats both streams" in reached
    png = synthetic.write_ceiling_figure(tmp_path / "demo.png", rows, "demo")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_git_commit_outside_a_checkout_falls_back_to_tsn_commit(tmp_path, monkeypatch):
    """A copied tree without .git (a lent GPU machine) records $TSN_COMMIT, else 'unknown'."""
    from tsn.report import git_commit

    monkeypatch.delenv("TSN_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("TSN_COMMIT", "0123456789")
    assert git_commit(tmp_path) == "0123456789"
    assert git_commit() not in ("unknown", "0123456789")  # a checkout ignores the variable
