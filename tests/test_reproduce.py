"""reproduce/: rows as named deltas, run reuse, missing-data message, end-to-end tiny run."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from reproduce import __main__ as cli
from reproduce import data as data_mod
from reproduce import fusion, table1, table2, table3, table4, table5, table6
from reproduce.base import Context, Row, Stream, run_key, stream_overrides
from reproduce.paper import load_paper
from reproduce.profiles import get_profile

CLASSES = ("Alpha", "Beta", "Gamma")


def make_frame_dataset(base, profile, num_frames=8, videos_per_class=3):
    """UCF101-format splits + dense_flow-layout frames; the class sets the colour and flow."""
    (base / "splits").mkdir(parents=True)
    (base / "splits" / "classInd.txt").write_text(
        "".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    train, test = [], []
    for label, cls in enumerate(CLASSES):
        for g in range(videos_per_class):
            vid = f"v_{cls}_g{g + 1:02d}_c01"
            (test if g == 0 else train).append(f"{cls}/{vid}.avi")
            folder = base / "frames" / vid
            folder.mkdir(parents=True)
            rgb = np.full((256, 340, 3), 40 + 80 * label, np.uint8)
            flow = np.full((256, 340), 128 + 30 * (label - 1), np.uint8)
            for t in range(1, num_frames + 1):
                cv2.imwrite(str(folder / f"img_{t:05d}.jpg"), rgb)
                cv2.imwrite(str(folder / f"flow_x_{t:05d}.jpg"), flow)
                cv2.imwrite(str(folder / f"flow_y_{t:05d}.jpg"), 255 - flow)
    (base / "splits" / "trainlist01.txt").write_text(
        "".join(f"{v} {CLASSES.index(v.split('/')[0]) + 1}\n" for v in train))
    (base / "splits" / "testlist01.txt").write_text("".join(f"{v}\n" for v in test))
    (base / "READY").write_text(json.dumps({
        "train_per_class": profile.synth_train_per_class,
        "test_per_class": profile.synth_test_per_class, "frames": profile.synth_frames,
        "flow": profile.flow}))


def test_every_row_matches_a_paper_row():
    paper = {(r["table"], r["row"], r["column"]) for r in load_paper()}
    modules = (table1, table2, table3, table4, table5, table6)
    for module in (*modules, fusion):  # one ROWS shape: {name: Row}, each under its table
        for row in module.ROWS.values():
            assert isinstance(row, Row) and row.base and row.table in range(1, 7)
            for cell in row.cells:
                assert (row.table, row.name, cell.column) in paper, (row.name, cell.column)
    assert all(row.table == m.TABLE and key == row.name for m in modules
               for key, row in m.ROWS.items())
    assert table5.ROWS["Temporal Segment Networks"].base == table4.BASE  # its runs are reused
    # every paper row of tables 1-6 is covered by a module
    covered = {(m.TABLE, n) for m in modules for n in m.ROWS}
    assert {(t, r) for t, r, _ in paper} == covered


def test_rows_are_deltas_and_shared_runs_hash_equal(tmp_path):
    make_frame_dataset(tmp_path / "synthetic", get_profile("tiny"))
    ctx = Context("synthetic", get_profile("tiny"), tmp_path, tmp_path / "runs")
    t2 = stream_overrides(table2.RGB, table2.BASE, ctx, 1)
    t3 = stream_overrides(table3.ROWS["Average"].cells[0].streams[0], table3.BASE, ctx, 1)
    assert run_key(t2) == run_key(t3)  # Table 2 RGB = Table 3 Average spatial: one run
    assert run_key([*t2, "log.tensorboard=true"]) == run_key(t2)  # logging: the same run
    flow = stream_overrides(table2.FLOW, table2.BASE, ctx, 1)
    assert "model.init=cross_modality" in flow and "model.init=imagenet" not in flow
    assert "data.dataset=synth" in flow  # the run records the synthetic frames, not ucf101
    assert "model.consensus=max" in stream_overrides(
        table3.ROWS["Max"].cells[0].streams[0], table3.BASE, ctx, 1)
    full = Context("synthetic", get_profile("full"), tmp_path, tmp_path / "runs")
    with pytest.raises(data_mod.DataMissing, match="needs ImageNet weights for backbone "
                                                   "'bn_inception'.*INIT_WEIGHTS"):
        stream_overrides(table2.RGB, table2.BASE, full, 1)  # never a silent scratch fallback
    full = Context("synthetic", get_profile("full"), tmp_path, tmp_path / "runs",
                   {"bn_inception": "w.pt"}, ("solver.preset=paper",))
    rgb = stream_overrides(table2.RGB, table2.BASE, full, 1)
    assert any(o.startswith("model.init_weights=") and o.endswith("w.pt") for o in rgb)
    assert "solver.preset=paper" in rgb
    # the clip rule is in every run's overrides and hash; an override wins and names a new run
    assert "solver.clip_mode=release" in t2
    literal = Context("synthetic", get_profile("tiny"), tmp_path, tmp_path / "runs",
                      overrides=("solver.clip_mode=caffe_iter_size",))
    t2_literal = stream_overrides(table2.RGB, table2.BASE, literal, 1)
    assert "solver.clip_mode=caffe_iter_size" in t2_literal
    assert "solver.clip_mode=release" not in t2_literal and run_key(t2_literal) != run_key(t2)
    scratch = table1.ROWS["From Scratch"].cells[1].streams[0]
    assert scratch == Stream("flow", ("model.init=scratch", "model.partial_bn=none",
                                      "model.dropout=0"))


def test_missing_real_dataset_says_how_to_get_it(tmp_path, capsys):
    rc = cli.main(["table2", "--data", "ucf101", "--data-root", str(tmp_path),
                   "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "ucf101 not found under" in err and "crcv.ucf.edu" in err and "tsn extract" in err
    with pytest.raises(data_mod.DataMissing, match="hmdb51 not found"):
        data_mod.lists("hmdb51", 1, "rgb", tmp_path)


def test_table2_tiny_end_to_end_and_reuse(tmp_path):
    """Train rgb / rgb_diff / flow tiny TSNs on frame folders, test, fuse, write the report."""
    profile = get_profile("tiny")
    make_frame_dataset(tmp_path / "data" / "synthetic", profile)
    out = tmp_path / "results"
    argv = ["table2", "--data", "synthetic", "--profile", "tiny", "--data-root",
            str(tmp_path / "data"), "--out", str(out)]
    assert cli.main(argv) == 0
    md = (out / "table2-synthetic-tiny.md").read_text()
    assert "NOT comparable to the paper" in md and "Profile `tiny`" in md
    assert "Warped Flow" in md  # named as not run
    with (out / "table2-synthetic-tiny.csv").open() as fh:
        rows = {(r["row"], r["column"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {(n, "single") for n in ("RGB Image", "RGB Difference",
                                                 "Optical Flow")} | {
        ("RGB Image + RGB Difference", "fused")}
    fused = rows[("RGB Image + RGB Difference", "fused")]
    assert fused["protocol"] == "3x1 mean, fused 1:1" and fused["paper_value"] == "87.30"
    assert fused["schedule"] == "custom (max_iter 3, base_lr 0.01 fixed)" and fused["batch"] == "4"
    assert 0 <= float(fused["value"]) <= 100 and fused["delta"] == ""
    assert float(fused["ci_low"]) <= float(fused["ci_high"]) and fused["streams"] == "rgb+rgb_diff"
    # the report's numbers come from the runs table, one row per score file (3 streams, 1 fused)
    from tsn import runs_table

    table = runs_table.read_table(out / "runs.csv")
    assert sorted(table["kind"]) == ["fused", "stream", "stream", "stream"]
    hit = table[table["key"] == fused["scores"].split()[0].replace(str(out) + "/", "")]
    assert hit["mean_class_acc"].item() == fused["value"]
    assert hit["ci_low"].item() == fused["ci_low"]
    runs = sorted((out / "runs" / "synthetic" / "tiny").iterdir())
    assert [p.name.split("-")[0] for p in runs] == ["flow", "rgb", "rgb_diff"]
    stamps = {p: (p / "scores_3x1.npz").stat().st_mtime_ns for p in runs}
    assert cli.main([*argv, "--rows", "RGB Image"]) == 0  # reused: nothing retrained/tested
    assert all((p / "scores_3x1.npz").stat().st_mtime_ns == t for p, t in stamps.items())
    # a partial rerun updates its rows and keeps the others of the previous report
    with (out / "table2-synthetic-tiny.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    md = (out / "table2-synthetic-tiny.md").read_text()
    assert "Rows kept from the previous report (not rerun now): Optical Flow, RGB Difference" in md


@pytest.mark.slow
def test_every_target_runs_on_synthetic_tiny(tmp_path):
    """Opt-in (slow, ~1-2 min): tables 1-6 and fusion end to end on frame folders."""
    make_frame_dataset(tmp_path / "data" / "synthetic", get_profile("tiny"))
    for target in ("table1", "table3", "table4", "table5", "table6", "fusion"):
        argv = [target, "--data", "synthetic", "--data-root", str(tmp_path / "data"),
                "--out", str(tmp_path / "results")]
        assert cli.main(argv) == 0, target
        assert (tmp_path / "results" / f"{target}-synthetic-tiny.csv").is_file()


def test_launched_training_gets_mpiruns_sigkill_grace(tmp_path, monkeypatch):
    """Under a launcher, `tsn train` runs with OMPI_MCA_odls_base_sigkill_timeout=60 (Open
    MPI's 1 s default kills an interrupted BN-Inception rank before its checkpoint), unless the
    user set it. The launcher here is a script that records its environment and arguments."""
    import sys

    from reproduce import base

    seen = tmp_path / "seen.json"
    launcher = tmp_path / "fake_mpirun.py"
    launcher.write_text(
        "import json, os, sys\n"
        f"open({str(seen)!r}, 'w').write(json.dumps([os.environ.get("
        "'OMPI_MCA_odls_base_sigkill_timeout'), sys.argv[1:]]))\n")
    ctx = Context("synthetic", get_profile("tiny"), launcher=f"{sys.executable} {launcher}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.delenv("OMPI_MCA_odls_base_sigkill_timeout", raising=False)
    base._train(None, ["solver.max_iter=1"], run_dir, False, ctx)
    grace, argv = json.loads(seen.read_text())
    assert grace == "60"
    assert argv[1:4] == ["-m", "tsn.cli", "train"] and "solver.max_iter=1" in argv
    monkeypatch.setenv("OMPI_MCA_odls_base_sigkill_timeout", "5")
    base._train(None, [], run_dir, True, ctx)
    grace, argv = json.loads(seen.read_text())
    assert grace == "5" and argv[-1] == "--resume"


def test_run_keys_are_portable_and_follow_the_frames(tmp_path, monkeypatch):
    """The same settings name the same run folder in a clone anywhere (paths under the working
    directory count relative to it); frames extracted another way name another run."""
    monkeypatch.chdir(tmp_path)
    here = ["data.train_list=" + str(tmp_path / "data" / "l.txt"), "solver.max_iter=3"]
    assert run_key(here) == run_key(["data.train_list=data/l.txt", "solver.max_iter=3"])
    elsewhere = ["data.train_list=/elsewhere/data/l.txt", "solver.max_iter=3"]
    assert run_key(elsewhere) != run_key(here)  # outside the working directory: as given
    dis, tvl1 = {"flow": "dis", "width": 340}, {"flow": "tvl1", "width": 340}
    assert run_key(here, dis) != run_key(here, tvl1) != run_key(here)
    assert run_key(here, dict(reversed(list(dis.items())))) == run_key(here, dis)
