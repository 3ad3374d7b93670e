"""`make bench-flow` in quick mode (64x48 frames, one round): the report's structure, not its
speed; and the README cost table made from it (bench/flow_cost.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "-m", "bench.flow", "--quick", "--out-dir", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_quick_bench_writes_json_md_png(quick):
    result = json.loads((quick / "flow_cpu.json").read_text())
    names = ["opencv5", "torch gpu24 b1", "torch gpu24 b2"]
    assert [r["side"] for r in result["summary"]] == names
    for row in result["summary"]:
        assert row["pairs_per_s"] > 0 and row["cpu_s_per_pair"] > 0 and row["blocks"] == 1
        assert row["min_pairs_per_s"] <= row["pairs_per_s"] <= row["max_pairs_per_s"]
    assert result["summary"][0]["x_opencv5"] == 1.0
    assert [b["side"] for b in result["blocks"]] == names  # one interleaved round
    for block in result["blocks"]:
        assert len(block["load_before"]) == len(block["load_after"]) == 3
        assert block["pairs"] == 2 and block["round"] == 0
    th = result["threads"]
    assert th["torch_threads"] == th["opencv_threads"] == 1
    rec = result["record"]
    assert {"commit", "versions", "hardware", "date", "config"} <= set(rec)
    assert rec["versions"]["opencv"] and rec["config"]["quick"] is True
    assert rec["config"]["frame_size"] == [64, 48]
    md = (quick / "flow_cpu.md").read_text()
    assert "| side | batch | semantics | pairs_per_s |" in md and "![pairs/s](flow_cpu.png)" in md
    assert "quick mode" in md and "## Blocks" in md
    assert (quick / "flow_cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_table_from_the_bench_json(quick, tmp_path):
    from bench.flow_cost import BEGIN, END, NO_GPU

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    cmd = [sys.executable, "-m", "bench.flow_cost", "--bench-dir", str(quick),
           "--readme", str(readme)]
    refused = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--quick run" in refused.stderr
    done = subprocess.run([*cmd, "--allow-quick"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{END}\n\nafter\n")
    result = json.loads((quick / "flow_cpu.json").read_text())
    ocv = result["summary"][0]["cpu_s_per_pair"]
    ucf = next(line for line in text.splitlines() if line.startswith("| UCF101 |"))
    cells = [c.strip() for c in ucf.strip("|").split("|")]
    assert cells[1] == "2.46 M" and cells[4] == NO_GPU
    assert float(cells[2].replace(",", "")) == pytest.approx(2.46e6 * ocv / 3600, rel=0.06)
    assert "| HMDB51 | 0.60 M |" in text


def test_bench_refuses_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    done = subprocess.run([sys.executable, "-m", "bench.flow", "--device", "cuda", "--quick",
                           "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bench.flow: --device cuda: no CUDA device visible (torch.cuda.is_available() is False);"
        " use --device cpu"]
    assert not list(tmp_path.iterdir())
