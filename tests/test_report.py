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
    return [{**base, "row": "RGB Image", "column": "single", "value": 85.0, "top1": 85.3},
            {**base, "row": "Optical Flow", "column": "single", "value": 85.2, "top1": 85.9}]


def test_paper_rows_carry_source_and_exact_values(paper_rows):
    assert [r["paper_value"] for r in paper_rows] == [84.5, 87.2, 94.0]
    assert "Table 2, row 'RGB Image', column 'single'" in paper_rows[0]["source"]
    assert "mean of 3 splits" in paper_rows[2]["source"]


def test_compare_delta_and_tolerance(paper_rows):
    rows = cmp.compare(measured(), paper_rows)
    assert rows[0]["delta"] == pytest.approx(0.5) and rows[0]["within_tolerance"] == "yes"
    assert rows[1]["delta"] == pytest.approx(-2.0) and rows[1]["within_tolerance"] == "no"


def test_compare_synthetic_is_not_comparable(paper_rows):
    rows = cmp.compare(measured("synthetic"), paper_rows)
    assert rows[0]["delta"] is None and rows[0]["within_tolerance"].startswith("n/a")
    assert rows[0]["paper_value"] == 84.5


def test_write_table_report_md_csv_png(tmp_path, paper_rows):
    rows = cmp.compare(measured("synthetic"), paper_rows)
    record = report.run_record({"profile": "tiny"}, seed=0)
    paths = cmp.write_table_report("table2", rows, tmp_path, record=record)
    md = paths["md"].read_text()
    assert "NOT comparable to the paper" in md and "25x10 mean" in md
    assert f"commit: {record['commit']}" in md and "table2.png" in md
    with paths["csv"].open() as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == list(cmp.CSV_COLUMNS)
    assert got[1]["value"] == "85.20" and got[1]["paper_value"] == "87.20"
    assert got[1]["schedule"] == "released" and got[1]["batch"] == "128"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # compare CLI reads it back: synthetic rows never fail --check
    assert cmp.main([str(paths["csv"]), "--check", "--paper", str(tmp_path / "paper.csv")]) == 0


def test_compare_check_fails_out_of_tolerance(tmp_path, paper_rows):
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
