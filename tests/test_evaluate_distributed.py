"""`tsn test` under mpirun: 2 CPU ranks (gloo) share the videos and rank 0 writes the score
file of one process, bit for bit (same order, same float32 values, full logits included);
resume works from the one-process partial file and from the ranks' own, with any number of
ranks."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_evaluate import write_video

from tsn import evaluate
from tsn.config import Experiment, to_dict
from tsn.engine import checkpoint
from tsn.evaluate import _fingerprint, _save_partial, partial_files, partial_path
from tsn.models import build_tsn
from tsn.scores import load_scores

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = ["--frames", "2", "--crops", "10", "--keep-full"]  # 20 views a video


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMIX_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny 3-class run folder (random weights, BN statistics moved off their defaults) and
    a list of 5 videos: 2 ranks get 3 and 2."""
    tmp = tmp_path_factory.mktemp("dist_test")
    torch.manual_seed(3)
    model = build_tsn("tiny", num_classes=3, modality="rgb", init="scratch")
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "running_var" in name:
                t.uniform_(0.5, 2.0)
            elif "running_mean" in name:
                t.normal_(0, 0.3)
    exp = Experiment()
    exp = dataclasses.replace(exp, model=dataclasses.replace(
        exp.model, arch="tiny", num_classes=3, modality="rgb", init="scratch"))
    run = tmp / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(exp)))
    checkpoint.save(run / "checkpoints", 1, {"model": model.state_dict(), "optimizer": {},
                                             "data": {}, "rng": {}, "config": {}})
    recs = [write_video(tmp / f"v_{k}", 6 + k, step=5 + 7 * k) for k in range(5)]
    lst = tmp / "list.txt"
    lst.write_text("".join(f"{r.path} {r.num_frames} {k % 3}\n" for k, r in enumerate(recs)))
    one = tmp / "one.npz"
    evaluate.test_run(run, lst, one, frames=2, crops=10, keep_full=True, device="cpu",
                      progress=False)
    return run, lst, one


def _mpirun(run: Path, lst: Path, out: Path, ranks: int = 2) -> subprocess.CompletedProcess:
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks),
           sys.executable, "-m", "tsn.cli", "test", str(run), "--list", str(lst), "--out",
           str(out), "--device", "cpu", *PROTOCOL]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _same(a, b) -> None:
    assert a.video_ids == b.video_ids
    assert np.array_equal(a.labels, b.labels)
    assert a.scores.dtype == b.scores.dtype == np.float32
    assert np.array_equal(a.scores, b.scores), np.abs(a.scores - b.scores).max()
    assert np.array_equal(a.full, b.full)


def _plant(partial: Path, one, videos: list[int], offset: float) -> None:
    """A resume point holding `videos` of the one-process file with scores moved by
    `offset` (a recomputed video would lose it)."""
    done = {i: (int(one.labels[i]), one.scores[i] + offset, one.full[i]) for i in videos}
    _save_partial(partial, done, one.video_ids, one.protocol,
                  _fingerprint(one.video_ids, one.protocol, True))


def test_two_ranks_write_the_one_process_score_file(setup, tmp_path):
    run, lst, one_file = setup
    out = tmp_path / "two.npz"
    done = _mpirun(run, lst, out)
    assert "rank 0 of 2: 3 videos to score" in done.stderr
    assert "rank 1 of 2: 2 videos to score" in done.stderr
    assert done.stdout.count("mean class accuracy") == 1  # rank 0 reports
    one, two = load_scores(one_file), load_scores(out)
    _same(one, two)
    assert {k: v for k, v in dataclasses.asdict(two.protocol).items() if k != "extra"} == \
        {k: v for k, v in dataclasses.asdict(one.protocol).items() if k != "extra"}
    assert partial_files(partial_path(out)) == []
    assert out.with_suffix(".confusion.png").is_file()


def test_ranks_resume_from_one_process_and_rank_partial_files(setup, tmp_path):
    run, lst, one_file = setup
    one = load_scores(one_file)
    out = tmp_path / "resumed.npz"
    partial = partial_path(out)
    _plant(partial, one, [0, 1], 1000.0)  # an interrupted one-process test
    _plant(partial.with_name("resumed.partial.rank3.npz"), one, [4], 2000.0)  # 4 ranks' run
    done = _mpirun(run, lst, out)
    assert "rank 0 of 2: 1 videos to score" in done.stderr  # videos 2 and 3 remain
    vs = load_scores(out)
    np.testing.assert_array_equal(vs.scores[:2], one.scores[:2] + np.float32(1000.0))
    np.testing.assert_array_equal(vs.scores[4], one.scores[4] + np.float32(2000.0))
    np.testing.assert_array_equal(vs.scores[2:4], one.scores[2:4])
    assert partial_files(partial) == []


def test_one_process_resumes_from_the_ranks_partial_files(setup, tmp_path):
    run, lst, one_file = setup
    one = load_scores(one_file)
    out = tmp_path / "single.npz"
    partial = partial_path(out)
    _plant(partial.with_name("single.partial.rank0.npz"), one, [0, 2], 500.0)
    _plant(partial.with_name("single.partial.rank1.npz"), one, [1], 700.0)
    vs, _, _ = evaluate.test_run(run, lst, out, frames=2, crops=10, keep_full=True, device="cpu",
                        progress=False)
    np.testing.assert_array_equal(vs.scores[[0, 2]], one.scores[[0, 2]] + np.float32(500.0))
    np.testing.assert_array_equal(vs.scores[1], one.scores[1] + np.float32(700.0))
    np.testing.assert_array_equal(vs.scores[3:], one.scores[3:])
    assert partial_files(partial) == []
    # --restart drops every resume point: the plain one-process file again
    _plant(partial.with_name("single.partial.rank1.npz"), one, [1], 700.0)
    vs, _, _ = evaluate.test_run(run, lst, out, frames=2, crops=10, keep_full=True, device="cpu",
                        progress=False, restart=True)
    _same(one, vs)
