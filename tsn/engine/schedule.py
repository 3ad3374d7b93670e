"""Learning-rate policies of Caffe's solver and the TSN schedules, chosen by name.

`lr_at(cfg, it)` is Caffe's SGDSolver::GetLearningRate for the policies TSN uses
(solver.cpp, docs/caffe_release.md#solvers), with `it` the 0-based iteration BEFORE its update:
  fixed:     base_lr
  step:      base_lr * gamma ^ floor(it / stepsize)
  multistep: base_lr * gamma ^ (number of stepvalues <= it)

`preset(name, dataset, modality)` returns the solver fields of the released solver prototxts
("released", the default: batch 128 = 32 x 4 GPUs) or of the paper's text ("paper", batch 256,
ECCV 2016 section 4.1). `iter_size_for(...)` derives the gradient-accumulation count that keeps the
effective batch whatever the number of processes (TSN README: keep 32 x iter_size x N_GPU = 128).
"""

from __future__ import annotations

from typing import Protocol

from tsn.modality import get_modality


class ScheduleFields(Protocol):
    """What lr_at reads (tsn.config.SolverCfg has these fields)."""

    base_lr: float
    lr_policy: str
    gamma: float
    stepsize: int
    stepvalues: tuple[int, ...]


POLICIES = ("fixed", "step", "multistep")


def lr_at(cfg: ScheduleFields, it: int) -> float:
    """Learning rate of 0-based iteration `it` (computed before that iteration's update)."""
    if cfg.lr_policy == "fixed":
        return cfg.base_lr
    if cfg.lr_policy == "step":
        if cfg.stepsize <= 0:
            raise ValueError("lr_policy 'step' needs stepsize > 0")
        # Caffe: this->iter_ / this->param_.stepsize() in integer arithmetic
        return cfg.base_lr * cfg.gamma ** (it // cfg.stepsize)
    if cfg.lr_policy == "multistep":
        # Caffe increments current_step_ while iter_ >= stepvalue(current_step_)
        return cfg.base_lr * cfg.gamma ** sum(1 for v in cfg.stepvalues if it >= v)
    raise ValueError(f"lr_policy {cfg.lr_policy!r} is not supported; use one of {POLICIES}")


# Released solvers (docs/caffe_release.md#solvers):
# [TSN] models/{ucf101,hmdb51}/tsn_bn_inception_{rgb,flow}_solver.prototxt.
# Every one has momentum 0.9, weight_decay 5e-4, gamma 0.1, iter_size 1 on 4 GPUs of 32.
_RELEASED = {
    ("ucf101", "rgb"): dict(base_lr=0.001, lr_policy="step", stepsize=1500, stepvalues=(),
                            max_iter=3500, clip_gradients=40.0),
    ("ucf101", "flow"): dict(base_lr=0.005, lr_policy="multistep", stepsize=0,
                             stepvalues=(10000, 16000), max_iter=18000, clip_gradients=20.0),
    ("hmdb51", "rgb"): dict(base_lr=0.001, lr_policy="step", stepsize=1000, stepvalues=(),
                            max_iter=2500, clip_gradients=40.0),
    ("hmdb51", "flow"): dict(base_lr=0.005, lr_policy="multistep", stepsize=0,
                             stepvalues=(4000, 6000), max_iter=7000, clip_gradients=20.0),
}
# Paper (TSN ECCV 2016 section 4.1; docs/caffe_release.md#paper-vs-release): batch 256; RGB 0.001
# /10 every 2,000, stop 4,500; flow 0.005 /10 at 12,000 and 18,000, stop 20,000. The paper gives one
# schedule for both datasets and does not describe clipping: the released clip values are kept
# (named choice).
_PAPER = {
    "rgb": dict(base_lr=0.001, lr_policy="step", stepsize=2000, stepvalues=(), max_iter=4500,
                clip_gradients=40.0),
    "flow": dict(base_lr=0.005, lr_policy="multistep", stepsize=0, stepvalues=(12000, 18000),
                 max_iter=20000, clip_gradients=20.0),
}
_COMMON = dict(gamma=0.1, momentum=0.9, weight_decay=5e-4)
PRESETS = ("released", "paper")


def preset(name: str, dataset: str, modality: str) -> dict:
    """Solver fields of a named schedule for a dataset and modality.

    The schedules are keyed by the modality's `schedule` (tsn.modality): rgb_diff trains with
    RGB's and warped_flow with flow's (the release has solvers for rgb and flow only).
    """
    key_modality = get_modality(modality).schedule
    if name == "released":
        fields = _RELEASED.get((dataset, key_modality))
        if fields is None:
            known = sorted({d for d, _ in _RELEASED})
            raise ValueError(
                f"no released solver for dataset {dataset!r} / modality {modality!r}; the "
                f"release has {known} x ['rgb', 'flow']; set solver.preset=custom and give "
                "every solver field"
            )
        return {**_COMMON, **fields, "effective_batch": 128}
    if name == "paper":
        if key_modality not in _PAPER:
            raise ValueError(f"the paper gives no schedule for modality {modality!r}")
        return {**_COMMON, **_PAPER[key_modality], "effective_batch": 256}
    raise ValueError(f"unknown solver preset {name!r}; choose one of {PRESETS} or 'custom'")


def iter_size_for(effective_batch: int, batch_per_process: int, world_size: int) -> int:
    """iter_size such that batch_per_process * iter_size * world_size == effective_batch."""
    per_step = batch_per_process * world_size
    if batch_per_process <= 0 or effective_batch <= 0 or effective_batch % per_step:
        raise ValueError(
            f"effective batch {effective_batch} is not a multiple of batch_per_process "
            f"{batch_per_process} x world size {world_size} = {per_step}; change "
            "solver.batch_per_process (e.g. 32, 16, 8) so that it divides "
            f"{effective_batch} / {world_size}"
        )
    return effective_batch // per_step
