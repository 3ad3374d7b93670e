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
from pathlib import Path

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


# ------------------------------------------------------------ a tiny trained run for `tsn test`

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Frame folders of 4 videos, their list (labels 0/1) and a one-iteration 2-class run."""
    import json

    import cv2
    import numpy as np

    from tsn.cli import main as tsn_main

    tmp = tmp_path_factory.mktemp("tiny_run")
    rng = np.random.default_rng(0)
    lines = []
    for v in range(4):
        folder = tmp / "frames" / f"v_{v:03d}"
        folder.mkdir(parents=True)
        for t in range(1, 7):
            cv2.imwrite(str(folder / f"img_{t:05d}.jpg"),
                        rng.integers(0, 256, (128, 170, 3), dtype=np.uint8))
        lines.append(f"{folder} 6 {v % 2}")
    listing = tmp / "test.txt"
    listing.write_text("\n".join(lines) + "\n")
    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps({"name": "t", "model": {"arch": "tiny", "num_classes": 2},
                               "data": {"dataset": "synth", "num_workers": 0,
                                        "train_list": str(listing)},
                               "solver": {"preset": "custom", "max_iter": 1,
                                          "batch_per_process": 2, "effective_batch": 2}}))
    assert tsn_main(["train", str(cfg), "--run-dir", str(tmp / "run")]) == 0
    return tmp / "run", listing, lines


def _test_args(run, listing, out):
    return ["test", str(run), "--list", str(listing), "--out", str(out), "--frames", "3",
            "--crops", "1", "--device", "cpu"]


@pytest.fixture()
def no_forward(monkeypatch):
    """Fail the test if `tsn test` reaches its forward pass."""
    import tsn.evaluate

    def forbidden(*args, **kwargs):
        raise AssertionError("the test ran although its input was bad")

    monkeypatch.setattr(tsn.evaluate, "evaluate", forbidden)


# ------------------------------------------------------------ case 1: `tsn test` checks its list

def test_tsn_test_checks_every_entry_before_the_first_forward_pass(tiny_run, tmp_path, capsys,
                                                                  no_forward):
    import shutil

    from tsn.cli import main as tsn_main

    run, _listing, lines = tiny_run
    frames = tmp_path / "frames"
    shutil.copytree(Path(lines[0].split()[0]).parent, frames)
    (frames / "v_001" / "img_00006.jpg").unlink()  # 5 frames, the list says 6
    shutil.rmtree(frames / "v_002")
    bad = [ln.replace(str(Path(ln.split()[0]).parent), str(frames)) for ln in lines]
    bad[3] = bad[3].rsplit(" ", 1)[0] + " 7"  # label 7 for a 2-class model
    listing = tmp_path / "bad.txt"
    listing.write_text("\n".join(bad) + "\n")
    out = tmp_path / "out" / "scores.npz"
    assert tsn_main(_test_args(run, listing, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert f"{listing}: 3 of 4 videos cannot be tested, nothing was run" in err[0]
    for why in ("v_001: 5 rgb frames", "v_002: frame folder missing", "v_003: label 7 outside "
                "0..1 (the model has 2 classes)"):
        assert why in err[0]
    assert not out.exists() and not out.with_name("scores.partial.npz").exists()


# ------------------------------------------------------------ case 2: unwritable outputs

def test_tsn_test_refuses_an_unwritable_output_before_testing(tiny_run, tmp_path, capsys,
                                                              no_forward):
    from tsn.cli import main as tsn_main

    run, listing, _ = tiny_run
    (tmp_path / "a_file").write_text("")  # a folder that cannot be made: ENOTDIR, as EROFS
    assert tsn_main(_test_args(run, listing, tmp_path / "a_file" / "scores.npz")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"tsn test: error: cannot write {tmp_path / 'a_file'}: a file is in the way "
                   "(not a folder)")
    assert "\n" not in err


def test_tsn_test_keeps_the_scores_when_the_final_write_fails(tiny_run, tmp_path, capsys,
                                                             monkeypatch):
    import errno

    import tsn.evaluate
    from tsn.cli import main as tsn_main
    from tsn.scores import load_scores

    run, listing, _ = tiny_run
    out = tmp_path / "scores.npz"
    real_save = tsn.evaluate.save_scores

    def full_disk_for_the_final_file(path, vs):
        if Path(path) == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, vs)

    monkeypatch.setattr(tsn.evaluate, "save_scores", full_disk_for_the_final_file)
    assert tsn_main(_test_args(run, listing, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    partial = tmp_path / "scores.partial.npz"
    assert err.startswith(f"tsn test: error: cannot write {out}: [Errno 28] No space left")
    assert f"the scores of all 4 videos are kept in {partial}" in err
    assert len(load_scores(partial).video_ids) == 4
    monkeypatch.setattr(tsn.evaluate, "save_scores", real_save)  # space again: the rerun
    calls = []
    real_forward = tsn.evaluate._video_logits
    monkeypatch.setattr(tsn.evaluate, "_video_logits",
                        lambda *a, **k: calls.append(a[2]) or real_forward(*a, **k))
    assert tsn_main(_test_args(run, listing, out)) == 0
    assert calls == [[]]  # nothing recomputed: every video came from the partial file
    assert len(load_scores(out).video_ids) == 4 and not partial.exists()


# ------------------------------------------------------------ case 8: eval-reference, no weights

def test_eval_reference_without_weights_fails_in_one_line_and_writes_no_table(tmp_path, capsys):
    from tsn.cli import main as tsn_main

    out = tmp_path / "results"
    rc = tsn_main(["weights", "--dir", str(tmp_path / "w"), "eval-reference",
                   "--data-root", str(tmp_path / "data"), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and "None" not in captured.out
    err = captured.err.strip()
    assert "\n" not in err and "none of the 12 reference model(s) is fetched" in err
    assert "make weights WEIGHTS=reference" in err and "nothing was evaluated" in err
    assert not (out / "reference_models.csv").exists()
    assert not (out / "reference_models.md").exists()


def test_eval_reference_with_weights_but_no_data_evaluates_nothing(tmp_path, capsys):
    from tsn.cli import main as tsn_main

    name = "hmdb51_split_2_tsn_flow_reference_bn_inception"
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / f"{name}.pt").write_bytes(b"converted earlier")
    out = tmp_path / "results"
    rc = tsn_main(["weights", "--dir", str(tmp_path / "w"), "eval-reference", name,
                   "--data-root", str(tmp_path / "data"), "--out-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nothing was evaluated, no table written" in err and "\n" not in err
    assert "make data-hmdb51" in err and not (out / "reference_models.csv").exists()
