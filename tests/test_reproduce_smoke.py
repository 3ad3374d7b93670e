"""End-to-end smoke run of `make table2 DATA=synthetic` with the tiny profile.

tsn synth -> tsn extract (DIS flow) -> lists -> tsn train (rgb, rgb_diff, flow) -> tsn test ->
fusion -> results/table2-synthetic-tiny.{md,csv,png}; a second run reuses everything.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def make(target: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(["make", "--no-print-directory", target, f"PY={sys.executable}", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_make_table2_synthetic_tiny(tmp_path: Path):
    args = ("DATA=synthetic", "PROFILE=tiny", f"DATA_ROOT={tmp_path / 'data'}",
            f"RESULTS={tmp_path / 'results'}")
    first = make("table2", *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = tmp_path / "results"
    md = (out / "table2-synthetic-tiny.md").read_text()
    assert md.splitlines()[2].startswith("> **Synthetic data: these numbers are NOT comparable")
    assert (out / "table2-synthetic-tiny.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "table2-synthetic-tiny.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows] == ["RGB Image", "RGB Difference",
                                        "RGB Image + RGB Difference", "Optical Flow"]
    assert all(r["dataset"] == "synthetic" and r["protocol"].startswith("3x1") for r in rows)
    assert all(r["precision"] == "fp32" for r in rows)  # the release's float32, named
    assert all(r["clip_mode"] == "release" for r in rows)  # the release's clip rule, named
    assert all(0.0 <= float(r["value"]) <= 100.0 for r in rows)
    # second run: the trained runs and score files are reused, nothing is retrained
    second = make("table2", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "reusing synthetic dataset" in log and "reusing trained run" in log
    assert "Iteration" not in log
