"""`train(exp)`: Caffe's solver iteration, resumable, on 1 or N processes.

The model, datasets and device come from the experiment builder (tsn/build.py); the solver
machinery from tsn/engine (CaffeSGD, schedules, distributed helpers, checkpoints, run folder).

One iteration (solver.cpp Step, docs/caffe_release.md#sgd-update): iter_size forward/backward passes
whose gradients are summed; gradients averaged over ranks; lr from the schedule at the 0-based
iteration; the CaffeSGD update (clip, /iter_size, decay, momentum with lr inside). The clip compares
the norm of the gradient averaged over ranks and iter_size, as the release's 4 GPUs x iter_size 1
did, unless solver.clip_mode=caffe_iter_size (docs/engine.md "Gradient clipping and iter_size"). A
non-finite loss or gradient stops the run before the update, with the last good checkpoint kept.
Checkpoints every `checkpoint_every` iterations and at the end; `resume=True` continues from the
newest one with model, momentum, RNG and data position, so a killed-and-resumed run ends with the
same weights as an uninterrupted one (deterministic CPU mode; tests/test_engine_resume.py).
SIGINT / SIGTERM finish the iteration, write its checkpoint on every rank's agreement and raise
TrainingInterrupted (tsn/engine/interrupt.py, as Caffe's `-sigint_effect`), so an interrupted
run loses no iteration.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from tsn import config as config_mod
from tsn import report
from tsn.build import build_dataset, build_model, class_names, select_device
from tsn.config import Experiment
from tsn.data import jpeg
from tsn.engine import checkpoint, distributed, precision
from tsn.engine.interrupt import StopRequest, TrainingInterrupted
from tsn.engine.optim import CaffeSGD, param_specs
from tsn.engine.runlog import RunFolder
from tsn.engine.schedule import lr_at
from tsn.engine.stream import BatchStream, StreamPosition
from tsn.engine.validate import validate

log = logging.getLogger(__name__)

# run.json / train.log: which gradient's norm meets clip_gradients (StepInfo.norm_of)
_NORM_OF_TEXT = {
    "release": "gradient averaged over ranks and iter_size (as the release's 4 GPUs x "
               "iter_size 1)",
    "caffe_iter_size": "gradient summed over iter_size and averaged over ranks (Caffe's "
                       "literal iter_size rule)",
}


class NonFiniteLossError(RuntimeError):
    """The loss or gradient became NaN/inf; the run stopped without applying the update."""


class ResumeError(RuntimeError):
    """--resume asked for something the run folder cannot give."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    iterations: int
    final_loss: float
    checkpoint: Path | None


def set_determinism(exp: Experiment) -> None:
    """Deterministic kernels, a fixed thread count (resume gives identical weights) and the
    float32 mode of `exp.precision` (IEEE float32 unless asked otherwise)."""
    if exp.threads > 0:
        torch.set_num_threads(exp.threads)
    if exp.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    precision.set_float32_mode(exp.precision)  # PyTorch's default is TF32 convolutions


def _validate(exp, model, val, device, it: int, run: RunFolder, is_main: bool) -> None:
    """One Caffe TestAll pass before iteration `it`; rank 0 logs it and writes its row."""
    dataset, worker_init = val
    t0 = time.perf_counter()
    result = validate(model, dataset, exp.model.num_classes, device, exp.test.batch_size,
                      exp.data.num_workers, worker_init)
    if is_main:
        log.info("Iteration %d, Testing net: loss = %.6g, video_top1 = %.4f, mean_class_acc = "
                 "%.4f (%d videos)", it, result.loss, result.video_top1, result.mean_class_acc,
                 result.videos)
        run.append_metrics({
            "iter": it, "loss": f"{result.loss:.8g}", "video_top1": f"{result.video_top1:.6f}",
            "mean_class_acc": f"{result.mean_class_acc:.6f}", "videos": result.videos,
            "seconds": f"{time.perf_counter() - t0:.3f}",
        }, run.val_metrics)


def _snapshot_state(exp, model, opt, stream, device) -> dict:
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "data": {"epoch": stream.position.epoch, "batch": stream.position.batch},
        # every rank's generators: dropout masks differ per rank and must resume exactly
        "rng": distributed.all_gather_object(checkpoint.rng_state(device)),
        "config": config_mod.to_dict(exp),
    }


def _check_resumable(saved: dict, exp: Experiment, world: int, path: Path) -> None:
    """A checkpoint resumes only the same experiment (max_iter may grow) on the same world."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    now, was = flat(config_mod.to_dict(exp)), flat(saved["config"])
    was["solver.max_iter"] = now["solver.max_iter"]
    was["name"] = now["name"]
    # checkpoints from before solver.clip_mode existed trained with Caffe's literal rule
    was.setdefault("solver.clip_mode", config_mod.LEGACY_CLIP_MODE)
    was.setdefault("data.layout_root", "")  # added later; resolved into the list paths anyway
    for key in [k for k in now.keys() | was.keys() if k.startswith("log.")]:
        now.pop(key, None)  # what is logged never changes the training: a resume may switch it
        was.pop(key, None)
    diff = sorted(k for k in now.keys() | was.keys() if now.get(k) != was.get(k))
    if diff:
        hint = (f" (add solver.clip_mode={was['solver.clip_mode']} to continue with the rule "
                "it was trained with)") if "solver.clip_mode" in diff else ""
        raise ResumeError(f"{path}: saved with a different config ({diff[:5]}); resume with "
                          f"it{hint}")
    if len(saved["rng"]) != world:
        raise ResumeError(
            f"{path}: written by {len(saved['rng'])} process(es), now {world}: the data order "
            "and dropout streams would differ; resume with the same number of processes"
        )


def train(exp: Experiment, resume: bool = False, run_dir: Path | None = None) -> TrainResult:
    """Run (or resume) the experiment; returns where it ended. Raises on non-finite loss, and
    TrainingInterrupted after the checkpoint of the iteration a SIGINT / SIGTERM stopped."""
    set_determinism(exp)
    info = distributed.detect()
    device = select_device(exp.device, info.local_rank)
    with StopRequest() as stop:
        info = distributed.init(device, exp.dist_timeout_s)
        try:
            return _train(exp, resume, run_dir, info, device, stop)
        finally:
            distributed.shutdown()


def _train(exp, resume, run_dir, info, device, stop: StopRequest) -> TrainResult:
    world = info.world_size
    iter_size = exp.solver.iter_size_for(world)
    run = RunFolder(Path(run_dir) if run_dir else Path(exp.run_root) / exp.name)
    found = checkpoint.latest(run.checkpoints)
    if not resume and found is not None:
        raise ResumeError(
            f"{run.path} already holds checkpoints ({found.name}): pass --resume to continue "
            "it, or choose another name= / run folder"
        )
    if resume and found is None:
        raise ResumeError(f"--resume: no checkpoint under {run.checkpoints}")
    if info.is_main:
        run.create()
        run.attach_log()
    distributed.barrier()
    stopped = False
    try:
        return _setup_and_loop(exp, resume, found, run, info, device, iter_size, stop)
    except (TrainingInterrupted, KeyboardInterrupt):
        stopped = True
        raise
    finally:
        # stopped on a signal: exit fast (mpirun SIGKILLs its ranks soon after its SIGTERM);
        # the resumed run draws the curves
        if info.is_main and not stopped:
            if run.metrics.exists():
                try:  # also after a non-finite stop: the curves show what happened
                    run.write_plot()
                except OSError as err:  # a full disk must not hide the error that stopped us
                    log.warning("cannot write %s: %s", run.plot, err)
        if info.is_main:
            run.detach_tensorboard()
            run.detach_log()


def _setup_and_loop(exp, resume, found, run, info, device, iter_size,
                    stop: StopRequest) -> TrainResult:
    world, rank = info.world_size, info.rank
    torch.manual_seed(exp.seed)  # same init on every rank (then rank 0's is broadcast anyway)
    model, init_record = build_model(exp)
    model.to(device).train()
    specs = param_specs(model, exp.model.modality)
    opt = CaffeSGD(specs, exp.solver.momentum, exp.solver.weight_decay, exp.solver.clip_gradients,
                   exp.solver.clip_mode)
    start_iter, position = 0, StreamPosition()
    torch.manual_seed(exp.seed * 7919 + 1 + rank)  # dropout stream, different on every rank
    if resume:
        saved = checkpoint.load(found)
        _check_resumable(saved, exp, world, found)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        checkpoint.set_rng_state(saved["rng"][rank], device)
        start_iter = int(saved["iteration"])
        position = StreamPosition(int(saved["data"]["epoch"]), int(saved["data"]["batch"]))
        log.info("resumed from %s at iteration %d", found, start_iter)
    distributed.broadcast_module(model)  # Caffe SyncData: all blobs from rank 0

    dataset, worker_init = build_dataset(exp)
    val = build_dataset(exp, "val") if exp.test.val_list else None
    interval = exp.test.interval

    def due(it: int) -> bool:  # Caffe Solver::Step: TestAll when iter_ % test_interval == 0
        return val is not None and it % interval == 0 and (it > 0 or exp.test.initialization)

    stream = BatchStream(
        dataset, exp.solver.batch_per_process, exp.seed, rank, world, exp.data.num_workers,
        worker_init, position, pin_memory=device.type == "cuda",
    )
    if info.is_main:
        run.write_json(run.config, config_mod.to_dict(exp))
        provenance = report.run_record(seed=exp.seed)  # commit, versions, hardware, date
        del provenance["config"]  # config.json holds it
        run.write_json(run.record, {
            **init_record, "world_size": world, "iter_size": iter_size, "device": str(device),
            "launcher": info.launcher, "torch": torch.__version__, "host": platform.node(),
            "effective_batch": exp.solver.batch_per_process * iter_size * world,
            "jpeg_decoder": jpeg.BACKEND, "clip_mode": exp.solver.clip_mode,
            "grad_norm_of": _NORM_OF_TEXT[exp.solver.clip_mode],
            # label -> class name (`tsn predict` prints them); None when unknown (clips)
            "classes": class_names(exp), **provenance,
        })
        run.start_metrics(start_iter)
        if exp.log.tensorboard:  # the CSVs' rows mirrored as scalars (tsn/engine/tensorboard.py)
            run.attach_tensorboard(start_iter)
        log.info("run %s: %d iterations, iter_size %d x %d process(es) x batch %d",
                 run.path, exp.solver.max_iter, iter_size, world, exp.solver.batch_per_process)
        if exp.solver.clip_gradients > 0:
            log.info("gradient clipping at %g on the L2 norm of the %s (solver.clip_mode=%s)",
                     exp.solver.clip_gradients, _NORM_OF_TEXT[exp.solver.clip_mode],
                     exp.solver.clip_mode)

    last_ckpt, loss_value = found, float("nan")
    bar = tqdm(range(start_iter, exp.solver.max_iter), initial=start_iter,
               total=exp.solver.max_iter, disable=not info.is_main or None, desc="train")
    forward_context = precision.autocast(exp.precision, device)  # bf16 or nothing
    for it in bar:
        if due(it):
            with forward_context:
                _validate(exp, model, val, device, it, run, info.is_main)
        t0 = time.perf_counter()
        lr = lr_at(exp.solver, it)
        losses, correct, seen = [], 0, 0
        for _ in range(iter_size):
            x, y = next(stream)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with forward_context:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)  # SoftmaxWithLoss: mean over the batch
            loss.backward()  # gradients of the sub-iterations accumulate (sum)
            losses.append(loss.detach())
            correct += (logits.detach().argmax(1) == y).sum()  # stays on device: no sync
            seen += y.numel()
        distributed.average_gradients(s.tensor for s in specs)
        norm = float(opt.global_norm())
        # a stop request rides on the loss all-reduce: every rank stops after this iteration
        loss_value, acc, stop_vote = distributed.mean_scalars(
            [float(torch.stack(losses).mean()), float(correct) / seen, float(stop.signum)],
            device,
        )
        if not (torch.isfinite(torch.tensor([loss_value, norm])).all()):
            msg = (
                f"iteration {it}: the loss is {loss_value} and the gradient norm {norm}: "
                f"training stopped before this update; the last good checkpoint is "
                f"{last_ckpt or 'none (no checkpoint written yet)'}; lower solver.base_lr "
                "or check the input data"
            )
            log.error(msg)
            raise NonFiniteLossError(msg)
        step = opt.step(lr, iter_size, norm)
        seconds = time.perf_counter() - t0
        if info.is_main:
            if step.clipped:  # the message Caffe's ClipGradients logs (+ which norm it is)
                log.debug("Gradient clipping: scaling down gradients (L2 norm %g > %g) by "
                          "scale factor %g (norm of the %s gradient)", step.grad_norm,
                          opt.clip_gradients, step.clip_scale, step.norm_of)
            run.append_metrics({
                "iter": it, "epoch": stream.position.epoch, "lr": f"{lr:.8g}",
                "loss": f"{loss_value:.8g}", "train_video_top1": f"{acc:.6f}",
                "grad_norm": f"{step.grad_norm:.8g}", "grad_norm_of": step.norm_of,
                "clipped": int(step.clipped),
                "clip_scale": f"{step.clip_scale:.8g}", "seconds": f"{seconds:.4f}",
                "videos_per_s": f"{exp.solver.batch_per_process * iter_size * world / seconds:.2f}",
            })
            if it % exp.display == 0 or it + 1 == exp.solver.max_iter:
                log.info("Iteration %d, lr = %g, loss = %.6g, train_video_top1 = %.3f", it, lr,
                         loss_value, acc)
            bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:g}")
        done = it + 1
        if (done % exp.checkpoint_every == 0 or done == exp.solver.max_iter
                or stop_vote > 0):
            state = _snapshot_state(exp, model, opt, stream, device)  # collective: all ranks
            if info.is_main:
                last_ckpt = checkpoint.save(run.checkpoints, done, state, exp.keep_checkpoints)
            distributed.barrier()
        if stop_vote > 0:  # a rank without a signal of its own stops as for SIGTERM
            bar.close()
            if info.is_main:
                log.info("stopped on a signal after iteration %d; checkpoint %s", done - 1,
                         last_ckpt)
            raise TrainingInterrupted(done, last_ckpt, stop.signum or signal.SIGTERM,
                                      info.is_main)
    bar.close()
    if due(exp.solver.max_iter) and start_iter < exp.solver.max_iter:
        _validate(exp, model, val, device, exp.solver.max_iter, run, info.is_main)  # final test
    return TrainResult(run.path, exp.solver.max_iter, loss_value, last_ckpt)

