"""Fault suite: a full disk and a read-only output folder, for every writer of results.

Both are real file systems, not mocks: a small tmpfs (`mount -t tmpfs -o size=...`) filled to
the last byte gives ENOSPC, and the same tmpfs remounted read-only gives EROFS (tests run as
root, where chmod 0555 would not stop a write). Mounting needs root/CAP_SYS_ADMIN; where it is
not permitted the tests skip (they say so) rather than pretend.
Each writer must fail with one clear line (no traceback), keep the previous file intact and
leave no partial file: training checkpoints, score files (`tsn fuse --out`, save_scores),
`tsn extract`, and `python -m prototxt_port convert`. The commands that run long (`tsn test`,
`tsn extract`, `tsn lists`, `tsn synth`) find out before they start (issue 13).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tsn.engine import checkpoint
from tsn.scores import Protocol, VideoScores, load_scores, save_scores

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Mount:
    """A tmpfs at `path` that a test can fill up or make read-only."""

    def __init__(self, path: Path, size: str = "64m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")

    def fill(self) -> None:
        """Write a filler file until ENOSPC: the next write anywhere here fails."""
        for chunk in (1 << 20, 4096, 1):  # big writes, then the last partial blocks
            try:
                with open(self.path / ".filler", "ab", buffering=0) as f:
                    while True:
                        f.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err

    def read_only(self) -> None:
        """Remount read-only (root ignores chmod, not a read-only mount)."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture(params=["full", "read_only"])
def fault(request, tmp_path):
    """(mount, apply): apply() turns the mount into the fault under test."""
    m = Mount(tmp_path / "mnt")
    yield m, (m.fill if request.param == "full" else m.read_only), request.param
    m.close()


def _expected(kind: str) -> str:
    return "No space left on device" if kind == "full" else "Read-only file system"


def _one_clear_line(stderr: str, kind: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if "error" in ln.lower()]
    assert lines and _expected(kind) in lines[-1], stderr[-3000:]


def _no_temp_files(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.name != ".filler"
            and (".tmp" in p.name or p.name.endswith(".partial"))]
    assert not left, left


TRAIN = """\
name = "disk"
seed = 3
threads = 1
device = "cpu"
checkpoint_every = 2
display = 1
[model]
arch = "tiny"
num_classes = 4
[data]
dataset = "clips"
synthetic_size = 16
num_workers = 0
[solver]
base_lr = 0.05
max_iter = {max_iter}
batch_per_process = 4
effective_batch = 4
"""


def test_training_checkpoints(fault, tmp_path):
    m, apply, kind = fault
    run = m.path / "run"
    for max_iter in (4, 8):
        (tmp_path / f"c{max_iter}.toml").write_text(TRAIN.format(max_iter=max_iter))
    first = subprocess.run([sys.executable, "-m", "tsn.cli", "train", str(tmp_path / "c4.toml"),
                            "--run-dir", str(run)], cwd=REPO, env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    good = checkpoint.latest(run / "checkpoints")
    good_bytes = good.read_bytes()
    apply()
    done = subprocess.run([sys.executable, "-m", "tsn.cli", "train", str(tmp_path / "c8.toml"),
                           "--run-dir", str(run), "--resume"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    _one_clear_line(done.stderr, kind)
    assert checkpoint.latest(run / "checkpoints") == good
    assert good.read_bytes() == good_bytes
    assert checkpoint.load(good)["iteration"] == 4
    _no_temp_files(m.path)


def _scores(seed: int) -> VideoScores:
    rng = np.random.default_rng(seed)
    return VideoScores(("a", "b", "c"), np.array([0, 1, 1]), rng.normal(size=(3, 2)),
                       Protocol(modality="rgb"))


def test_score_files(fault, tmp_path):
    m, apply, kind = fault
    big = VideoScores(tuple(f"v{i}" for i in range(300)), np.zeros(300, np.int64),
                      np.zeros((300, 2)), full=np.ones((300, 25, 10, 2)))
    old = save_scores(m.path / "fused.npz", _scores(0))
    old_bytes = old.read_bytes()
    a, b = save_scores(tmp_path / "a.npz", _scores(1)), save_scores(tmp_path / "b.npz", _scores(2))
    apply()
    with pytest.raises(OSError) as err:  # in-process: the OSError propagates, no tmp left
        save_scores(m.path / "fused.npz", big)
    assert _expected(kind) in str(err.value)
    done = subprocess.run([sys.executable, "-m", "tsn.cli", "fuse", str(a), str(b),
                           "--out", str(m.path / "fused.npz")], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    _one_clear_line(done.stderr, kind)
    assert old.read_bytes() == old_bytes
    assert load_scores(old).video_ids == ("a", "b", "c")
    _no_temp_files(m.path)


def test_extraction(fault, tmp_path):
    import cv2

    m, apply, kind = fault
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("v_A_g01_c01", "v_A_g02_c01"):
        vw = cv2.VideoWriter(str(src / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                             (160, 120))
        for _ in range(6):
            vw.write(rng.integers(0, 255, (120, 160, 3), np.uint8))
        vw.release()
    out = m.path / "frames"
    cmd = [sys.executable, "-m", "tsn.cli", "extract", "--src", str(src), "--out", str(out),
           "--flow", "dis", "--width", "0"]
    first = subprocess.run(cmd + ["--src", str(src / "v_A_g01_c01.avi")], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = {p.name: p.read_bytes() for p in (out / "v_A_g01_c01").iterdir()}
    apply()
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]  # before any video: the output probe
    _one_clear_line(done.stderr, kind)
    assert f"tsn extract: error: cannot write {out}" in done.stderr
    assert {p.name: p.read_bytes() for p in (out / "v_A_g01_c01").iterdir()} == kept
    assert not (out / "v_A_g02_c01").exists()
    _no_temp_files(m.path)


def test_caffemodel_conversion(fault, tmp_path, golden_dir):
    m, apply, kind = fault
    folder = golden_dir / "C_solver_tiny"
    cmd = [sys.executable, "-m", "prototxt_port", "-q", "convert",
           "--prototxt", str(folder / "tiny_train.prototxt"),
           "--caffemodel", str(folder / "params_init.caffemodel"), "--out", str(m.path / "t.pt")]
    first = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    old = (m.path / "t.pt").read_bytes()
    apply()
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    _one_clear_line(done.stderr, kind)
    assert (m.path / "t.pt").read_bytes() == old
    _no_temp_files(m.path)


def test_tsn_test_finds_out_before_the_first_forward_pass(fault, tmp_path):
    import test_faults_test

    m, apply, kind = fault
    run, listing = test_faults_test.make_run(tmp_path)
    out = m.path / "scores" / "scores.npz"
    out.parent.mkdir()
    apply()
    done = subprocess.run(test_faults_test.command(run, listing, out), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    _one_clear_line(done.stderr, kind)
    assert f"tsn test: error: cannot write {out.parent}" in done.stderr
    assert "video/s" not in done.stderr  # no progress bar: not one video was scored
    _no_temp_files(m.path)


def test_lists_and_synth_find_out_before_working(fault, tmp_path):
    from test_reliability import _ucf_splits

    m, apply, kind = fault
    names = {f"v_{c}_g0{g}_c01" for c in "AB" for g in (1, 2)}
    splits, frames = _ucf_splits(tmp_path, names)
    (m.path / "lists").mkdir()
    apply()
    lists = subprocess.run([sys.executable, "-m", "tsn.cli", "lists", "--dataset", "ucf101",
                            "--splits-dir", str(splits), "--frames", str(frames), "--out",
                            str(m.path / "lists"), "--split", "1", "2"], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert lists.returncode == 2, lists.stderr[-2000:]
    _one_clear_line(lists.stderr, kind)
    assert list((m.path / "lists").iterdir()) == []
    synth = subprocess.run([sys.executable, "-m", "tsn.cli", "synth", "--out",
                            str(m.path / "synth")], cwd=REPO, env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert synth.returncode == 2, synth.stderr[-2000:]
    _one_clear_line(synth.stderr, kind)
    _no_temp_files(m.path)
