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
    from tiny_runs import train_tiny_on_frames

    return train_tiny_on_frames(tmp_path_factory.mktemp("tiny_run"), 4, 6, (128, 170))


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


@pytest.mark.parametrize("command", ["synth", "extract", "lists", "weights fetch"])
def test_commands_check_their_output_before_working(tmp_path, capsys, command):
    """A folder that cannot be made (a file in the way, as a read-only disk in
    tests/test_faults_disk.py): one line before any work, no traceback."""
    from tsn.cli import main as tsn_main

    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "out"
    src = tmp_path / "src"
    src.mkdir()
    _avi(src / "v_A_g01_c01.avi", frames=4)
    names = {f"v_{c}_g0{g}_c01" for c in "AB" for g in (1, 2)}
    splits, frames = _ucf_splits(tmp_path / "data", names)
    argv = {"synth": ["synth", "--out", str(out), "--train-per-class", "1",
                      "--test-per-class", "1", "--frames", "4"],
            "extract": ["extract", "--src", str(src), "--out", str(out), "--flow", "dis"],
            "lists": ["lists", "--dataset", "ucf101", "--splits-dir", str(splits), "--frames",
                      str(frames), "--out", str(out), "--split", "1", "--modality", "rgb"],
            "weights fetch": ["weights", "--dir", str(out), "--lock", str(tmp_path / "l.toml"),
                              "fetch", "bn_inception_rgb_init"]}
    assert tsn_main(argv[command]) == 2
    err = capsys.readouterr().err.strip()
    where = out / "downloads" if command == "weights fetch" else out
    assert err.startswith(f"tsn {command}: error: cannot write {where}: [Errno 20] Not a "
                          "directory"), err
    assert "\n" not in err and not (tmp_path / "a_file").is_dir()


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


def test_reproduce_stops_on_an_interrupt_with_one_line(tmp_path, capsys, monkeypatch):
    import reproduce.__main__ as repro
    from tsn.engine.interrupt import TrainingInterrupted

    for err, code in ((KeyboardInterrupt(), 130),
                      (TrainingInterrupted(7, tmp_path / "iter_0000007.pt", 15, True), 143)):
        def stopped(row, ctx, err=err):
            raise err

        monkeypatch.setattr(repro, "run_row", stopped)
        monkeypatch.setattr(repro, "ensure_synthetic", lambda base, profile: base)
        rc = repro.main(["table2", "--data", "synthetic", "--data-root", str(tmp_path / "d"),
                         "--out", str(tmp_path / "r")])
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert rc == code and line.startswith("python -m reproduce table2: interrupted")
        assert line.endswith("rerun the same command to resume")


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


# ------------------------------------------------------------ case 7: interrupts

TRAIN = """\
name = "stop"
seed = 5
threads = 1
device = "cpu"
checkpoint_every = 500
display = 1
[model]
arch = "tiny"
num_classes = 4
dropout = 0.5
[data]
dataset = "clips"
synthetic_size = 16
num_workers = 0
[solver]
base_lr = 0.05
max_iter = 8
batch_per_process = 4
effective_batch = 4
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny run's config and its final checkpoint, never interrupted."""
    from tsn.cli import main as tsn_main
    from tsn.engine import checkpoint

    tmp = tmp_path_factory.mktemp("uninterrupted")
    cfg = tmp / "c.toml"
    cfg.write_text(TRAIN)
    assert tsn_main(["train", str(cfg), "--run-dir", str(tmp / "ref")]) == 0
    return cfg, checkpoint.load(checkpoint.latest(tmp / "ref" / "checkpoints"))


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_train_signal_writes_the_current_iteration_and_resumes_bit_equal(
        tmp_path, capsys, monkeypatch, signum, uninterrupted):
    """The handler path in-process: the signal arrives during iteration 3 (of 8, checkpoints
    every 500); the run writes iter_0000004.pt, says how to resume, and the resumed run ends
    equal to an uninterrupted one. Real signals to a subprocess: tests/test_faults_interrupt.py."""
    import signal

    import torch

    import tsn.train
    from tsn.cli import main as tsn_main
    from tsn.engine import checkpoint

    cfg, ref = uninterrupted
    real_lr_at = tsn.train.lr_at

    def lr_at(solver, it):
        if it == 3:
            os.kill(os.getpid(), getattr(signal, signum))
        return real_lr_at(solver, it)

    monkeypatch.setattr(tsn.train, "lr_at", lr_at)
    run = tmp_path / "run"
    capsys.readouterr()
    rc = tsn_main(["train", str(cfg), "--run-dir", str(run)])
    assert rc == 128 + getattr(signal, signum)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("tsn train")]
    want = run / "checkpoints" / "iter_0000004.pt"
    assert err == [f"tsn train: interrupted ({signum}) at iteration 4: checkpoint {want} "
                   f"written; resume with: tsn train {cfg} --resume --run-dir {run}"]
    assert checkpoint.latest(run / "checkpoints") == want
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.setattr(tsn.train, "lr_at", real_lr_at)
    assert tsn_main(["train", str(cfg), "--resume", "--run-dir", str(run)]) == 0
    got = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert got["iteration"] == ref["iteration"] == 8
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_any_other_command_stops_on_a_signal_with_one_line(tmp_path, capsys, monkeypatch,
                                                           signum):
    import signal

    import tsn.data.synth
    from tsn.cli import main as tsn_main

    def generate(cfg, progress=None):
        os.kill(os.getpid(), getattr(signal, signum))  # SIGTERM: raised as Terminated
        raise AssertionError("not reached")  # SIGINT: KeyboardInterrupt already raised

    monkeypatch.setattr(tsn.data.synth, "generate", generate)
    rc = tsn_main(["synth", "--out", str(tmp_path / "s")])
    assert rc == 128 + getattr(signal, signum)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "tsn synth: interrupted; rerun the same command to resume"
    assert "Traceback" not in "\n".join(err)


# ------------------------------------------------------------ case 4: short (truncated) videos

def _avi(path: Path, frames: int = 30, keep: int | None = None) -> Path:
    """An MJPG AVI of `frames` frames (the header declares them all); `keep`: cut the file at
    the start of frame keep + 1, as a truncated download would, so `keep` frames decode."""
    import cv2
    import numpy as np

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 72))
    rng = np.random.default_rng(len(path.name))
    base = rng.integers(0, 255, (72, 96, 3), np.uint8)
    for t in range(frames):
        vw.write(np.roll(base, 2 * t, axis=1))
    vw.release()
    if keep is not None:
        data = path.read_bytes()
        # every frame is a "00dc" chunk; the header's stream list holds one more before them
        starts = [i for i in range(len(data)) if data.startswith(b"00dc", i)]
        path.write_bytes(data[:starts[keep + 1]])
    return path


@pytest.mark.parametrize("pipeline", [False, True], ids=["pool", "device_pipeline"])
def test_a_video_short_of_its_declared_frames_is_a_logged_failure(tmp_path, pipeline):
    from tsn.flow.extract import FAILURE_LOG, ExtractConfig, extract_all
    from tsn.flow.tvl1 import TVL1Params

    src = tmp_path / "src"
    src.mkdir()
    _avi(src / "v_Trunc_g01_c01.avi", frames=12, keep=3)  # 3 of 12 decode
    _avi(src / "v_Near_g01_c01.avi", frames=12, keep=10)  # 2 missing: within the tolerance
    _avi(src / "v_Good_g01_c01.avi", frames=12)
    videos = sorted(src.iterdir())
    # the CPU pool (OpenCV / DIS, torch on cpu) and the device pipeline (torch on CUDA) share
    # the decoder: both apply the rule (a 1-iteration TV-L1 keeps the pipeline fast on a CPU)
    cheap = TVL1Params(nscales=1, warps=1, iterations=1)
    cfg = (ExtractConfig(flow="tvl1", width=0, pipeline=True, batch=8, tvl1_params=cheap)
           if pipeline else ExtractConfig(flow="dis_fast", width=0))
    out = tmp_path / "out"
    stats = extract_all(videos, out, cfg, workers=1, progress=False)
    assert stats == {"done": 2, "skipped": 0, "failed": 1}
    log = (out / FAILURE_LOG).read_text()
    assert "v_Trunc_g01_c01.avi: only 3 of the 12 frames its container declares decode" in log
    assert "--allow-short" in log and len(log.splitlines()) == 1
    assert not (out / "v_Trunc_g01_c01").exists() and not list(out.glob("*.partial"))
    assert len(list((out / "v_Near_g01_c01").glob("img_*"))) == 9  # 10 frames, 9 pairs
    accepted = extract_all(videos, out, ExtractConfig(**{**cfg.__dict__, "allow_short": True}),
                           progress=False)
    assert accepted["done"] == 1 and len(list((out / "v_Trunc_g01_c01").glob("flow_x_*"))) == 2


# ------------------------------------------------------------ case 5: one root, one setting

def test_extract_refuses_to_mix_settings_and_force_redoes(tmp_path, capsys, caplog):
    import json

    from tsn.cli import main as tsn_main
    from tsn.flow.extract import ExtractConfig, extract_all, find_videos
    from tsn.flow.settings import SETTINGS_FILE, SettingsMismatch

    src = tmp_path / "src"
    src.mkdir()
    for name in ("v_A_g01_c01", "v_B_g01_c01"):
        _avi(src / f"{name}.avi", frames=5)
    out = tmp_path / "frames"
    base = ["extract", "--src", str(src), "--out", str(out), "--flow", "dis_fast"]
    assert tsn_main(base + ["--width", "128", "--height", "96"]) == 0
    record = (out / SETTINGS_FILE).read_text()
    first = {p.name: p.stat().st_mtime_ns for p in (out / "v_A_g01_c01").iterdir()}
    capsys.readouterr()
    assert tsn_main(base[:-1] + ["dis", "--width", "64", "--height", "48"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"tsn extract: error: {out / SETTINGS_FILE}: this "
                                               "folder was made with other settings")
    assert "flow 'dis_fast' -> 'dis'" in err and "width 128 -> 64" in err
    assert "height 96 -> 48" in err and "--force to delete the 2 finished" in err
    assert (out / SETTINGS_FILE).read_text() == record  # nothing touched
    assert {p.name: p.stat().st_mtime_ns for p in (out / "v_A_g01_c01").iterdir()} == first
    # every rank compares for itself: rank 1 of 2 refuses too
    videos = find_videos(src)
    other = ExtractConfig(flow="dis", width=64, height=48)
    with pytest.raises(SettingsMismatch):
        extract_all(videos, out, other, progress=False, rank=1, world=2)
    # --force on one of the two videos: its folder is redone, the other is named as left over
    with caplog.at_level("WARNING"):
        stats = extract_all(videos[:1], out, other, progress=False, force=True)
    assert stats == {"done": 1, "skipped": 0, "failed": 0}
    assert "1 other folder(s)" in caplog.text and "v_B_g01_c01" in caplog.text
    assert json.loads((out / SETTINGS_FILE).read_text())["settings"]["width"] == 64
    import cv2

    assert cv2.imread(str(out / "v_A_g01_c01" / "img_00001.jpg")).shape == (48, 64, 3)
    assert extract_all(videos[:1], out, other, progress=False) == {
        "done": 0, "skipped": 1, "failed": 0}  # the same new settings: resumes


def test_extract_with_no_video_fails(tmp_path, capsys):
    from tsn.cli import main as tsn_main

    (tmp_path / "empty").mkdir()
    for src in (tmp_path / "empty", tmp_path / "missing"):
        assert tsn_main(["extract", "--src", str(src), "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("tsn extract: error: no avi,mp4 videos under") and "\n" not in err
    assert "(it does not exist)" in err


def test_extract_says_when_its_failure_log_could_not_be_written(tmp_path, capsys,
                                                                 monkeypatch):
    import tsn.flow.extract
    from tsn.cli import main as tsn_main

    src = tmp_path / "src"
    src.mkdir()
    (src / "v_Bad_g01_c01.avi").write_bytes(b"not a video")
    real_open = os.open

    def no_log(path, *args, **kwargs):
        if str(path).endswith("extract_failures.log"):
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(tsn.flow.extract.os, "open", no_log)
    out = tmp_path / "out"
    assert tsn_main(["extract", "--src", str(src), "--out", str(out), "--flow", "dis"]) == 1
    captured = capsys.readouterr()
    assert "failures listed in" not in captured.out
    assert f"1 of the 1 failures could not be written to {out / 'extract_failures.log'}" in (
        captured.err)


# ------------------------------------------------------------ case 10: `tsn lists` all or nothing

def _ucf_splits(root: Path, frames_for: set[str]) -> tuple[Path, Path]:
    """Official-format split files for 2 splits of 4 videos, and frame folders (one img_ and
    one flow pair each) for the videos in `frames_for`."""
    splits, frames = root / "splits", root / "frames"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text("1 A\r\n2 B\r\n")
    names = [f"v_{c}_g0{g}_c01" for c in "AB" for g in (1, 2)]
    for k, test_group in ((1, "g01"), (2, "g02")):
        train = [n for n in names if test_group not in n]
        test = [n for n in names if test_group in n]
        (splits / f"trainlist0{k}.txt").write_text(
            "".join(f"{n[2]}/{n}.avi {'AB'.index(n[2]) + 1}\r\n" for n in train))
        (splits / f"testlist0{k}.txt").write_text("".join(f"{n[2]}/{n}.avi\r\n" for n in test))
    for n in frames_for:
        (frames / n).mkdir(parents=True)
        for f in ("img_00001.jpg", "flow_x_00001.jpg", "flow_y_00001.jpg"):
            (frames / n / f).write_bytes(b"jpeg")
    return splits, frames


def test_lists_checks_every_split_before_writing_any(tmp_path, capsys):
    from tsn.cli import main as tsn_main

    names = {f"v_{c}_g0{g}_c01" for c in "AB" for g in (1, 2)}
    splits, frames = _ucf_splits(tmp_path, names - {"v_B_g02_c01"})  # split 2's test video
    out = tmp_path / "lists"
    out.mkdir()
    (out / "ucf101_rgb_train_split_1.txt").write_text("an older list\n")
    args = ["lists", "--dataset", "ucf101", "--splits-dir", str(splits), "--frames",
            str(frames), "--out", str(out), "--split", "1", "2", "--modality", "rgb"]
    assert tsn_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "v_B_g02_c01" in err and err.endswith("no list written") and "\n" not in err
    assert sorted(p.name for p in out.iterdir()) == ["ucf101_rgb_train_split_1.txt"]
    assert (out / "ucf101_rgb_train_split_1.txt").read_text() == "an older list\n"


def test_lists_undo_a_write_that_fails_part_way(tmp_path, capsys, monkeypatch):
    import errno

    import tsn.data.lists
    from tsn.cli import main as tsn_main

    names = {f"v_{c}_g0{g}_c01" for c in "AB" for g in (1, 2)}
    splits, frames = _ucf_splits(tmp_path, names)
    out = tmp_path / "lists"
    out.mkdir()
    (out / "ucf101_rgb_train_split_1.txt").write_text("an older list\n")
    real_write, calls = tsn.data.lists.write_file_list, []

    def disk_full_at_the_fourth(records, path):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(records, path)

    monkeypatch.setattr(tsn.data.lists, "write_file_list", disk_full_at_the_fourth)
    args = ["lists", "--dataset", "ucf101", "--splits-dir", str(splits), "--frames",
            str(frames), "--out", str(out), "--split", "1", "2", "--modality", "rgb"]
    assert tsn_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "no list written" in err
    assert sorted(p.name for p in out.iterdir()) == ["ucf101_rgb_train_split_1.txt"]
    assert (out / "ucf101_rgb_train_split_1.txt").read_text() == "an older list\n"
    monkeypatch.setattr(tsn.data.lists, "write_file_list", real_write)
    assert tsn_main(args) == 0
    assert len(list(out.iterdir())) == 4


# ------------------------------------------------------------ case 3: pin only what converts

TINY_PROTOTXT = """name: "tiny"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
"""


def _caffemodel(folder: Path) -> tuple[Path, bytes]:
    import numpy as np

    from prototxt_port import write_caffemodel

    proto = folder / "tiny.prototxt"
    proto.write_text(TINY_PROTOTXT)
    weights = np.arange(108, dtype=np.float32).reshape(4, 3, 3, 3)
    write_caffemodel(folder / "src.caffemodel", proto, {"conv1": [weights, np.ones(4, np.float32)]})
    return proto, (folder / "src.caffemodel").read_bytes()


def test_a_truncated_download_is_never_pinned(tmp_path):
    import hashlib

    from test_weights_http import LocalServer

    from tsn.errors import WeightsError
    from tsn.weights.checksums import ChecksumLock
    from tsn.weights.fetch import fetch
    from tsn.weights.manifest import WeightEntry, download_path

    proto, model = _caffemodel(tmp_path)
    lock_path = tmp_path / "checksums.toml"
    with LocalServer() as srv:
        srv.add("/m", model[: len(model) // 2])  # a mirror that serves a cut file whole
        e = WeightEntry(name="m", kind="init", format="caffemodel", modality="rgb",
                        dataset="imagenet", file="m.caffemodel", urls=(srv.url("/m"),),
                        prototxt=proto)
        for keep_pt in (True, False):  # --no-convert converts too, into a temporary file
            with pytest.raises(WeightsError, match="conversion of .* failed") as info:
                fetch(e, tmp_path / "w", ChecksumLock(lock_path), convert_to_pt=keep_pt,
                      progress=False)
            assert "its checksum was not recorded" in str(info.value)
            assert ChecksumLock(lock_path).get("m") is None and not lock_path.exists()
            dest = download_path(e, tmp_path / "w")
            assert not dest.exists() and dest.with_name(dest.name + ".rejected").is_file()
            assert [p.name for p in dest.parent.iterdir()] == ["m.caffemodel.rejected"]
            dest.with_name(dest.name + ".rejected").unlink()
        srv.add("/m", model)  # the genuine file: converted and pinned
        res = fetch(e, tmp_path / "w", ChecksumLock(lock_path), progress=False)
    assert res.recorded and res.converted.is_file()
    assert ChecksumLock(lock_path).get("m").sha256 == hashlib.sha256(model).hexdigest()


def test_a_wrong_pin_is_named_as_a_possible_cause(tmp_path):
    from test_weights_http import LocalServer

    from tsn.errors import WeightsError
    from tsn.weights.checksums import ChecksumLock, Record
    from tsn.weights.fetch import fetch
    from tsn.weights.manifest import WeightEntry

    proto, model = _caffemodel(tmp_path)
    lock = ChecksumLock(tmp_path / "checksums.toml")  # pinned from a damaged download earlier
    lock.records["m"] = Record("m.caffemodel", "0" * 64, 10, "http://old", "2026-01-01T00:00:00Z")
    lock.save()
    with LocalServer() as srv:
        srv.add("/m", model)
        e = WeightEntry(name="m", kind="init", format="caffemodel", modality="rgb",
                        dataset="imagenet", file="m.caffemodel", urls=(srv.url("/m"),),
                        prototxt=proto)
        with pytest.raises(WeightsError) as info:
            fetch(e, tmp_path / "w", ChecksumLock(lock.path), progress=False)
        msg = str(info.value)
        assert "changed upstream or arrived damaged" in msg
        assert "the recorded checksum is the wrong one" in msg
        assert "tsn weights fetch m --accept-new-checksum" in msg
        res = fetch(e, tmp_path / "w", ChecksumLock(lock.path), accept_new_checksum=True,
                    progress=False)
    assert res.recorded and ChecksumLock(lock.path).get("m").sha256 == res.sha256


# ------------------------------------------------------------ case 9: stalled downloads

@pytest.fixture()
def silent_server():
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/file"
    sock.close()


def test_a_server_that_never_answers_fails_within_the_stall_timeout(tmp_path, silent_server,
                                                                   monkeypatch, capsys):
    import time

    from test_weights_http import LocalServer

    from tsn import download as dl

    monkeypatch.setenv(dl.TIMEOUT_ENV, "0.5")
    t0 = time.monotonic()
    with pytest.raises(dl.DownloadError) as info:
        dl.download([silent_server], tmp_path / "f.bin", progress=False)
    assert time.monotonic() - t0 < 2.0  # one stall, no retries of a silent server
    msg = str(info.value)
    assert "no data for 0.5 s (stalled" in msg and "no partial file kept" in msg
    assert not (tmp_path / "f.bin.part").exists()
    body = os.urandom(200_000)
    with LocalServer() as srv:  # the next mirror is tried at once, with a byte progress bar
        srv.add("/f", body)
        capsys.readouterr()
        res = dl.download([silent_server, srv.url("/f")], tmp_path / "f.bin", timeout_s=0.5)
    assert res.path.read_bytes() == body and "B/s" in capsys.readouterr().err
    with pytest.raises(dl.DownloadError, match="stall timeout 'soon'"):
        dl.download([silent_server], tmp_path / "g.bin", timeout_s="soon")
