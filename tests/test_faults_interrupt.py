"""Fault suite: real SIGINT / SIGTERM to running commands (issue 13, docs/reliability.md).

`tsn train` gets Ctrl-C as a terminal sends it (SIGINT to the whole process group, DataLoader
workers included) or SIGTERM to its pid, at a seeded random iteration: it must write the
checkpoint of that iteration, print one line saying how to resume and exit 130 / 143; the
printed command then finishes the run bit-equal to an uninterrupted one. Two ranks stop
together when only one is signalled, and under mpirun. `tsn test`, `tsn extract` and
`tsn weights fetch` print one line, exit 130 and resume on a rerun. No traceback anywhere.
Opt-in: `make test-faults` (marker `faults`).
"""

from __future__ import annotations

import http.server
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import test_faults_test
import torch
from test_engine_distributed import _clean_env, _torchrun_style

from tsn.config import load_experiment
from tsn.engine import checkpoint
from tsn.train import train

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
MAX_ITER = 30

CONFIG = """\
name = "interrupt"
seed = 31
threads = 1
device = "cpu"
checkpoint_every = 500
dist_timeout_s = 20.0
display = 1

[model]
arch = "tiny"
num_classes = 4
dropout = 0.5

[data]
dataset = "clips"
synthetic_size = 32
num_workers = {workers}
synthetic_delay_s = {delay}

[solver]
base_lr = 0.05
max_iter = {max_iter}
batch_per_process = 4
effective_batch = 8
"""


def _config(tmp: Path, workers: int = 2, delay: float = 0.02, max_iter: int = MAX_ITER) -> Path:
    path = tmp / f"cfg_{workers}_{delay}_{max_iter}.toml"
    path.write_text(CONFIG.format(workers=workers, delay=delay, max_iter=max_iter))
    return path


def _rows(run: Path) -> int:
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def _wait_rows(run: Path, procs: list, want: int) -> None:
    deadline = time.monotonic() + 120
    while _rows(run) < want:
        for p in procs:
            assert p.poll() is None, p.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.01)


def _tsn_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [ln for ln in stderr.splitlines() if ln.startswith("tsn ")]


def _resume_argv(line: str) -> list[str]:
    """The command the interrupt line prints, run with this interpreter."""
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words[:2] == ["tsn", "train"], line
    return [sys.executable, "-m", "tsn.cli", *words[1:]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The final checkpoint of the run never interrupted (2 DataLoader workers, as below)."""
    tmp = tmp_path_factory.mktemp("reference")
    train(load_experiment(_config(tmp, delay=0.0)), run_dir=tmp / "run")
    return checkpoint.load(checkpoint.latest(tmp / "run" / "checkpoints"))


def _assert_equal(got: dict, want: dict) -> None:
    assert got["iteration"] == want["iteration"] == MAX_ITER
    for key, value in want["model"].items():
        assert torch.equal(value, got["model"][key]), key
    for key, value in want["optimizer"]["history"].items():
        assert torch.equal(value, got["optimizer"]["history"][key]), key
    assert got["data"] == want["data"]


@pytest.mark.parametrize("how", ["ctrl_c_to_the_group", "sigterm_to_the_pid"])
def test_train_stops_with_a_checkpoint_of_the_current_iteration(tmp_path, reference, how):
    rng = random.Random(f"interrupt-{how}")
    run = tmp_path / "run"
    cfg = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tsn.cli", "train", str(cfg), "--run-dir",
                             str(run)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_rows(run, [proc], rng.randint(3, 12))
    time.sleep(rng.uniform(0.0, 0.1))
    if how == "ctrl_c_to_the_group":  # what a terminal does: the DataLoader workers get it too
        os.killpg(proc.pid, signal.SIGINT)
        code, name = 130, "SIGINT"
    else:
        proc.send_signal(signal.SIGTERM)
        code, name = 143, "SIGTERM"
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    lines = _tsn_lines(err)
    assert len(lines) == 1, lines
    match = re.match(rf"tsn train: interrupted \({name}\) at iteration (\d+): checkpoint "
                     rf"(\S+) written; resume with: ", lines[0])
    assert match, lines[0]
    it, path = int(match.group(1)), Path(match.group(2))
    assert checkpoint.latest(run / "checkpoints") == path and path.name == f"iter_{it:07d}.pt"
    assert _rows(run) == it < MAX_ITER  # the iteration in progress was finished and kept
    assert checkpoint.load(path)["iteration"] == it
    done = subprocess.run(_resume_argv(lines[0]), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_equal(checkpoint.load(checkpoint.latest(run / "checkpoints")), reference)
    assert _rows(run) == MAX_ITER
    print(f"{how}: stopped at iteration {it}")


def test_one_signalled_rank_stops_both_at_the_same_iteration(tmp_path):
    run = tmp_path / "run"
    procs = _torchrun_style(_config(tmp_path, workers=0), run)
    _wait_rows(run, procs, random.Random(5).randint(3, 10))
    procs[1].send_signal(signal.SIGTERM)  # rank 0 has no signal of its own
    errs = []
    for p in procs:
        try:
            errs.append(p.communicate(timeout=60)[1])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a rank hung after one rank was signalled")
    assert [p.returncode for p in procs] == [143, 143], errs[0][-2000:] + errs[1][-2000:]
    assert _tsn_lines(errs[1]) == []  # rank 0 says it, once
    (line,) = _tsn_lines(errs[0])
    it = int(re.search(r"at iteration (\d+)", line).group(1))
    saved = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert saved["iteration"] == it == _rows(run) and len(saved["rng"]) == 2


def test_mpirun_ctrl_c_checkpoints_and_says_how_to_resume(tmp_path):
    """Open MPI 4.1 turns Ctrl-C into SIGTERM to every rank odls_base_sigkill_timeout seconds
    later and SIGKILLs them as long again after (default 1 s; 3 s here, docs/engine.md)."""
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin")
    run = tmp_path / "run"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca",
           "odls_base_sigkill_timeout", "3", "-np", "2", sys.executable, "-m", "tsn.cli",
           "train", str(_config(tmp_path, workers=0, max_iter=2000)), "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_rows(run, [proc], random.Random(6).randint(3, 10))
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("mpirun hung after Ctrl-C")
    assert proc.returncode != 0
    (line,) = _tsn_lines(err)
    it = int(re.search(r"interrupted \(SIGTERM\) at iteration (\d+)", line).group(1))
    assert checkpoint.load(checkpoint.latest(run / "checkpoints"))["iteration"] == it


def _interrupt_when(proc: subprocess.Popen, ready, what: str) -> str:
    """SIGINT to the process group once `ready()`; the command's stderr."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, f"{what} ended before the interrupt"
        assert time.monotonic() < deadline, f"{what} made no progress"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    return err


def test_tsn_test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path):
    run, listing = test_faults_test.make_run(tmp_path)
    out = tmp_path / "scores.npz"
    partial = tmp_path / "scores.partial.npz"
    cmd = test_faults_test.command(run, listing, out) + ["--crops", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = _interrupt_when(proc, partial.exists, "tsn test")
    assert _tsn_lines(err) == ["tsn test: interrupted; rerun the same command to resume"]
    assert partial.exists() and not out.exists()
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already scored" in done.stderr and out.exists() and not partial.exists()


def test_tsn_extract_ctrl_c_is_one_line_and_the_rerun_finishes(tmp_path):
    from test_faults_extract import VIDEOS, _cmd, _finished, _make_videos

    src, out = tmp_path / "src", tmp_path / "out"
    _make_videos(src)
    cmd = _cmd(src, out) + ["--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = _interrupt_when(proc, lambda: list(out.glob("*.partial/img_00003.jpg")),
                          "tsn extract")
    assert _tsn_lines(err) == ["tsn extract: interrupted; rerun the same command to resume"]
    assert "KeyboardInterrupt" not in err  # the pool workers leave Ctrl-C to the main process
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_finished(out)) == VIDEOS and not list(out.glob("*.partial"))


class _Slow(http.server.BaseHTTPRequestHandler):
    """Serves `body` 4 KiB at a time with a pause, honouring `Range: bytes=N-`."""

    body = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range",
                             f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        self.send_header("Content-Length", str(len(self.body) - start))
        self.end_headers()
        try:
            for i in range(start, len(self.body), 4096):
                self.wfile.write(self.body[i:i + 4096])
                self.wfile.flush()
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_weights_fetch_ctrl_c_keeps_the_part_file_and_the_rerun_resumes(tmp_path):
    import numpy as np

    from prototxt_port import write_caffemodel

    proto = tmp_path / "t.prototxt"
    proto.write_text('name: "t"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\n'
                     'input_dim: 8\nlayer { name: "fc" type: "InnerProduct" bottom: "data" '
                     'top: "fc" inner_product_param { num_output: 400 } }\n')
    rng = np.random.default_rng(0)
    write_caffemodel(tmp_path / "m.caffemodel", proto,
                     {"fc": [rng.normal(size=(400, 192)).astype(np.float32),
                             np.zeros(400, np.float32)]})
    _Slow.body = (tmp_path / "m.caffemodel").read_bytes()  # ~300 KB: ~1.5 s to serve
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/m"
        (tmp_path / "manifest.toml").write_text(
            'schema = 1\n[[model]]\nname = "x"\nkind = "init"\nformat = "caffemodel"\n'
            'modality = "rgb"\ndataset = "imagenet"\nfile = "x.caffemodel"\n'
            f'urls = ["{url}"]\nprototxt = "{proto}"\n')
        cmd = [sys.executable, "-m", "tsn.cli", "weights", "--manifest",
               str(tmp_path / "manifest.toml"), "--dir", str(tmp_path / "w"), "--lock",
               str(tmp_path / "lock.toml"), "fetch", "x", "--quiet"]
        part = tmp_path / "w" / "downloads" / "x.caffemodel.part"
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        err = _interrupt_when(proc, lambda: part.exists() and part.stat().st_size > 50_000,
                              "tsn weights fetch")
        assert _tsn_lines(err) == ["tsn weights: interrupted; rerun the same command to "
                                   "resume"]
        kept = part.stat().st_size
        assert 0 < kept < len(_Slow.body) and not (tmp_path / "lock.toml").exists()
        done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert (tmp_path / "w" / "downloads" / "x.caffemodel").read_bytes() == _Slow.body
        assert (tmp_path / "w" / "x.pt").is_file() and (tmp_path / "lock.toml").is_file()
    finally:
        httpd.shutdown()
        httpd.server_close()
