"""Reliability round 2 (issue 13) in the default suite: never lose work, never trust a bad input.

One test (or a few) per case of docs/reliability.md "Round 2": `tsn test` checks its list and
its output before the first forward pass, unwritable outputs are one line before any work,
checksums are pinned only after a conversion, short videos and mixed extraction settings are
refused, files follow the umask, interrupts are one line, `eval-reference` without weights
fails, stalled downloads are bounded, `tsn lists` is all-or-nothing, config numbers are strict.
The cases that need real signals to a subprocess or a read-only mount are in
tests/test_faults_interrupt.py and tests/test_faults_disk.py (`make test-faults`).
"""

from __future__ import annotations

import os
import stat

import pytest

from tsn.atomic import atomic_write_text, check_writable
from tsn.config import ConfigError, load_experiment

# ------------------------------------------------------------ case 6: outputs follow the umask

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask_like_open(tmp_path, umask):
    from prototxt_port.files import atomic_write_bytes as port_write

    old = os.umask(umask)
    try:
        for name, write in (("a.txt", lambda p: atomic_write_text(p, "x")),
                            ("b.pt", lambda p: port_write(p, b"x"))):
            path = tmp_path / name
            write(path)
            with open(tmp_path / f"plain_{name}", "w") as f:  # what open() gives
                f.write("x")
            want = stat.S_IMODE(os.stat(tmp_path / f"plain_{name}").st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == want == 0o666 & ~umask
            os.chmod(path, 0o640)  # a replaced file keeps its mode, as open() keeps it
            write(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_check_writable_probes_and_leaves_nothing(tmp_path):
    folder = check_writable(tmp_path / "new" / "deep")
    assert folder.is_dir() and list(folder.iterdir()) == []


# ------------------------------------------------------------ case 11: strict config numbers

@pytest.mark.parametrize("text,key", [
    ('[solver]\nmax_iter = "100"\n', "solver.max_iter"),
    ('[solver]\nbase_lr = "0.01"\n', "solver.base_lr"),
    ('deterministic = "false"\n', "deterministic"),
    ('[solver]\nstepvalues = "10,20"\n', "solver.stepvalues"),
    ('[solver]\nstepvalues = [10, "20"]\n', "solver.stepvalues"),
])
def test_config_strings_are_not_numbers(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path}: {key} must be"):
        load_experiment(path)


def test_command_line_overrides_are_still_parsed():
    exp = load_experiment(None, ["solver.max_iter=100", "solver.base_lr=0.01",
                                 "deterministic=false", "solver.stepvalues=10,20", "name=x"])
    assert (exp.solver.max_iter, exp.solver.base_lr, exp.deterministic) == (100, 0.01, False)
    assert exp.solver.stepvalues == (10, 20) and type(exp.name) is str
