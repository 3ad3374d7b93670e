"""Fault suite: one rank of a 2-rank run SIGKILLed at seeded random points.

Whichever rank dies (rank 0, which also hosts the rendezvous store, or rank 1) and whenever
(during start-up and rendezvous, or mid-training), every surviving rank must exit non-zero
within the bound set by dist_timeout_s (20 s here): never a hang, never a silent success.
Reuses the launch helpers of tests/test_engine_distributed.py (torchrun-style environment and
mpirun).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_engine_distributed import REPO, _clean_env, _config, _torchrun_style

pytestmark = pytest.mark.faults

BOUND_S = 90  # dist_timeout_s 20 (twice: rendezvous, then a collective) + start-up on 2 busy cores
CASES = [(0, 1.0), (1, 2.5), (0, None), (1, None)]  # (rank, seconds after start | mid-training)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(t) for t in text)
    return out


@pytest.mark.parametrize("case", range(len(CASES)))
def test_a_rank_killed_at_a_random_point_takes_every_rank_down(tmp_path, case):
    rank, after = CASES[case]
    rng = random.Random(100 + case)
    run = tmp_path / "run"
    procs = _torchrun_style(_config(tmp_path, max_iter=400, delay=0.02), run)
    start = time.monotonic()
    if after is None:  # mid-training: after a random number of logged iterations
        want = rng.randint(2, 8)
        metrics = run / "metrics.csv"
        while not (metrics.exists() and len(metrics.read_text().splitlines()) > want):
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
            assert time.monotonic() - start < 120, "training never started"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
    else:  # start-up: imports, rendezvous, model broadcast
        time.sleep(after + rng.uniform(0.0, 0.5))
        assert procs[rank].poll() is None
    procs[rank].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    other = procs[1 - rank]
    try:
        _out, err = other.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        other.kill()
        pytest.fail(f"rank {1 - rank} hung after rank {rank} was killed")
    took = time.monotonic() - killed
    procs[rank].communicate()
    assert procs[rank].returncode == -signal.SIGKILL
    assert other.returncode != 0, f"rank {1 - rank} exited 0 after rank {rank} died"
    assert took < BOUND_S, f"rank {1 - rank} took {took:.0f} s to notice"
    print(f"rank {rank} killed {killed - start:.1f} s after start; rank {1 - rank} exited "
          f"{other.returncode} after {took:.1f} s")


def test_mpirun_rank_killed_mid_training_ends_mpirun_non_zero(tmp_path):
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin")
    rng = random.Random(7)
    run = tmp_path / "run"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", sys.executable, "-m",
           "tsn.cli", "train", str(_config(tmp_path, max_iter=400, delay=0.02)),
           "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    start = time.monotonic()
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > rng.randint(2, 6)):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - start < 120, "training never started"
        time.sleep(0.02)
    ranks = [c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/comm").read_text()
             or "tsn" in Path(f"/proc/{c}/cmdline").read_text()]
    assert len(ranks) == 2, ranks
    victim = rng.choice(ranks)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("mpirun hung after a rank was killed")
    assert proc.returncode != 0
    assert time.monotonic() - killed < BOUND_S
    for pid in ranks:  # no rank left running (gone, or a zombie awaiting its reaper)
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists():
            assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", pid
