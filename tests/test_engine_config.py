"""Frozen experiment configs: files (JSON/TOML, never executed), typed overrides, errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tsn.config import (
    ConfigError,
    Experiment,
    from_resolved,
    load_experiment,
    solver_from_caffe,
    to_dict,
)


def test_configs_are_frozen():
    exp = load_experiment(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        exp.solver.base_lr = 1.0  # type: ignore[misc]


def test_toml_file_and_overrides_are_typed(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        'name = "x"\nseed = 5\n[model]\nmodality = "flow"\n[solver]\nstepvalues = [10, 20]\n'
    )
    exp = load_experiment(path, ["solver.base_lr=0.0005", "deterministic=false", "data.split=2"])
    assert exp.name == "x" and exp.seed == 5 and exp.model.modality == "flow"
    assert exp.solver.stepvalues == (10, 20) and exp.solver.base_lr == 0.0005
    assert exp.deterministic is False and exp.data.split == 2
    assert exp.solver.max_iter == 18000  # the released UCF101 flow preset filled the rest


def test_json_file(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"solver": {"max_iter": 7}, "data": {"synthetic_shape": [3, 8, 8]}}))
    exp = load_experiment(path)
    assert exp.solver.max_iter == 7 and exp.data.synthetic_shape == (3, 8, 8)


@pytest.mark.parametrize(
    "override, message",
    [
        ("solver.base_rate=1", "unknown config key 'solver.base_rate'"),
        ("optimizer.lr=1", "unknown config key 'optimizer.lr'"),
        ("solver.max_iter=1.5", "solver.max_iter must be int"),
        ("seed=abc", "seed must be int"),
        ("deterministic=maybe", "deterministic must be bool"),
        ("solver.max_iter", "write it as section.key=value"),
        ("model.modality=depth", "modality 'depth'"),
        ("solver.clip_mode=caffe", r"solver.clip_mode 'caffe': use one of \('release', "
                                   r"'caffe_iter_size'\)"),
    ],
)
def test_bad_overrides_are_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(None, [override])


def test_python_config_files_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "exp.py"
    path.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(ConfigError, match="must end in .json or .toml"):
        load_experiment(path)
    assert not marker.exists()


def test_broken_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[solver\nmax_iter = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_experiment(tmp_path / "missing.json")


def test_resolved_config_round_trips():
    exp = load_experiment(None, ["solver.preset=paper", "solver.max_iter=9", "model.dropout=0.5"])
    again = from_resolved(json.loads(json.dumps(to_dict(exp))), "config.json")
    assert again == exp and isinstance(again, Experiment)


def test_clip_mode_defaults_to_the_release_and_legacy_configs_name_caffes_rule():
    assert load_experiment(None).solver.clip_mode == "release"
    exp = load_experiment(None, ["solver.clip_mode=caffe_iter_size"])
    assert from_resolved(to_dict(exp), "config.json").solver.clip_mode == "caffe_iter_size"
    # a config.json written before the field existed trained with Caffe's literal rule
    old = to_dict(load_experiment(None))
    del old["solver"]["clip_mode"]
    assert from_resolved(old, "config.json").solver.clip_mode == "caffe_iter_size"


def test_solver_from_caffe_prototxt(golden_dir):
    import prototxt_port as pp

    solver = pp.read_solver(golden_dir / "C_solver_tiny" / "tiny_solver.prototxt")
    cfg = solver_from_caffe(solver, batch_per_process=2)
    assert cfg.lr_policy == "multistep" and cfg.stepvalues == (3, 6)
    assert cfg.iter_size_for(1) == 2 and cfg.clip_gradients == 1.0 and cfg.max_iter == 8
    assert cfg.clip_mode == "release"  # the prototxt's clip means what it meant on the GPUs
    literal = solver_from_caffe(solver, batch_per_process=2, clip_mode="caffe_iter_size")
    assert literal.clip_mode == "caffe_iter_size"
    with pytest.raises(ConfigError, match="clip_mode 'sum'"):
        solver_from_caffe(solver, batch_per_process=2, clip_mode="sum")


def test_glossary_names_the_paper_symbols():
    import tsn.config

    for name in ("num_segments", "new_length", "consensus", "effective_batch", "clip_gradients"):
        assert name in tsn.config.__doc__


def test_shipped_configs_load_and_name_their_schedule():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "configs"
    expected = {"ucf101_rgb": 3500, "ucf101_flow": 18000, "hmdb51_rgb": 2500,
                "hmdb51_flow": 7000, "smoke": 100}
    for name, max_iter in expected.items():
        exp = load_experiment(folder / f"{name}.toml")
        assert exp.solver.max_iter == max_iter, name
    assert load_experiment(folder / "ucf101_flow.toml").solver.stepvalues == (10000, 16000)


def test_cli_takes_overrides_before_or_after_the_options(monkeypatch):
    from tsn import cli, train_cli

    seen = []
    monkeypatch.setattr(train_cli, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["train", "c.toml", "a=1", "--resume", "b=2", "--run-dir", "r", "c=3"]) == 0
    assert seen[0].overrides == ["a=1", "b=2", "c=3"] and seen[0].resume
    assert seen[0].run_dir == "r" and seen[0].config == "c.toml"
    with pytest.raises(SystemExit):  # an unknown option is still refused
        cli.main(["train", "c.toml", "--bogus"])
    with pytest.raises(SystemExit):  # and commands without trailing values refuse extras
        cli.main(["fuse", "x", "y", "--bogus"])


def test_dataset_names_and_the_renamed_synthetic():
    synth = load_experiment(None, ["data.dataset=synth", "model.modality=flow"])
    ucf = load_experiment(None, ["data.dataset=ucf101", "model.modality=flow"])
    assert synth.solver == ucf.solver  # tsn synth frames train with UCF101's presets
    assert load_experiment(None, ["data.dataset=clips"]).data.dataset == "clips"
    with pytest.raises(ConfigError, match="renamed: 'clips' .*'synth'"):
        load_experiment(None, ["data.dataset=synthetic"])
    with pytest.raises(ConfigError, match="data.dataset 'kinetics'"):
        load_experiment(None, ["data.dataset=kinetics"])
