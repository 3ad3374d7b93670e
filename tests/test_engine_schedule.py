"""Learning-rate policies, the released / paper schedules and iter_size derivation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tsn.config import SolverCfg, load_experiment
from tsn.engine.schedule import iter_size_for, lr_at, preset


def _cfg(**kw) -> SolverCfg:
    return SolverCfg(preset="custom", **kw)


def test_step_policy_is_floor_division():
    cfg = _cfg(base_lr=1.0, lr_policy="step", gamma=0.1, stepsize=3)
    assert [lr_at(cfg, i) for i in range(7)] == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.1, 0.01]
    )


def test_multistep_counts_stepvalues_reached():
    cfg = _cfg(base_lr=0.01, lr_policy="multistep", gamma=0.1, stepvalues=(3, 6))
    assert [lr_at(cfg, i) for i in range(8)] == pytest.approx(
        [0.01] * 3 + [0.001] * 3 + [0.0001] * 2
    )


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="'inv' is not supported"):
        lr_at(SimpleNamespace(base_lr=1, lr_policy="inv", gamma=0.1, stepsize=1, stepvalues=()), 0)


@pytest.mark.parametrize(
    "dataset, modality, segments",
    [
        # docs/caffe_release.md#solvers (lr per iteration)
        ("ucf101", "rgb", [(1e-3, 1500), (1e-4, 1500), (1e-5, 500)]),
        ("hmdb51", "rgb", [(1e-3, 1000), (1e-4, 1000), (1e-5, 500)]),
        ("ucf101", "flow", [(5e-3, 10000), (5e-4, 6000), (5e-5, 2000)]),
        ("hmdb51", "flow", [(5e-3, 4000), (5e-4, 2000), (5e-5, 1000)]),
    ],
)
def test_released_schedules_give_the_spec_lr_table(dataset, modality, segments):
    exp = load_experiment(None, [f"data.dataset={dataset}", f"model.modality={modality}"])
    s = exp.solver
    assert s.max_iter == sum(n for _, n in segments)
    assert (s.momentum, s.weight_decay, s.effective_batch) == (0.9, 5e-4, 128)
    assert s.clip_gradients == (40.0 if modality == "rgb" else 20.0)
    it = 0
    for lr, n in segments:
        assert lr_at(s, it) == pytest.approx(lr) and lr_at(s, it + n - 1) == pytest.approx(lr)
        it += n


def test_paper_schedule_by_name():
    rgb = load_experiment(None, ["solver.preset=paper"]).solver
    assert (rgb.effective_batch, rgb.max_iter, rgb.stepsize) == (256, 4500, 2000)
    flow = load_experiment(None, ["solver.preset=paper", "model.modality=flow"]).solver
    assert (flow.stepvalues, flow.max_iter, flow.base_lr) == ((12000, 18000), 20000, 0.005)
    assert lr_at(flow, 11999) == pytest.approx(5e-3) and lr_at(flow, 12000) == pytest.approx(5e-4)


def test_explicit_fields_override_the_preset():
    s = load_experiment(None, ["solver.max_iter=100", "solver.preset=paper"]).solver
    assert s.max_iter == 100 and s.effective_batch == 256


def test_iter_size_keeps_the_effective_batch():
    assert iter_size_for(128, 32, 4) == 1  # the release: 4 GPUs
    assert iter_size_for(128, 32, 1) == 4  # one GPU reproduces four
    assert iter_size_for(256, 32, 4) == 2  # the paper's 256 (the pre-2016-09 solvers)
    with pytest.raises(ValueError, match="not a multiple of batch_per_process 24"):
        iter_size_for(128, 24, 1)
    with pytest.raises(ValueError, match="world size 3"):
        iter_size_for(128, 32, 3)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="released.*paper"):
        preset("fast", "ucf101", "rgb")
