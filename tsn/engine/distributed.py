"""The only module that touches torch.distributed; every helper is a no-op at world size 1.

Caffe's data parallelism (docs/caffe_release.md#mpi): one process per GPU, gradients
allreduce-SUMMED then multiplied by 1/N before the solver step (so clipping sees the average),
parameters and BN statistics broadcast from rank 0 at the start, BN statistics NOT synchronised
(each rank's unfrozen conv1 BN uses its own batch; rank 0's running stats are the ones saved).

Commands (the effective batch stays 128: iter_size = 128 / (batch_per_process x N)):
  1 GPU:   tsn train configs/ucf101_rgb.toml                  # iter_size 4 reproduces 4 GPUs
  4 GPUs:  mpirun -np 4 tsn train configs/ucf101_rgb.toml     # as the release (train_tsn.sh)
       or  torchrun --nproc_per_node 4 -m tsn.cli train configs/ucf101_rgb.toml
  CPU, 2 processes (gloo):
           mpirun --allow-run-as-root --oversubscribe -np 2 tsn train CONFIG device=cpu
Ranks come from torchrun's RANK / WORLD_SIZE / LOCAL_RANK, else Open MPI's OMPI_COMM_WORLD_*
variables (mpi4py, when installed, broadcasts rank 0's free port). NCCL on GPU, gloo on CPU.
A collective that waits longer than `timeout_s` (a dead rank) raises instead of hanging.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


class DistributedError(RuntimeError):
    """Another rank failed or the process group could not be formed."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"  # "single" | "torchrun" | "mpirun"

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes metrics and checkpoints (Caffe: only rank 0 snapshots)."""
        return self.rank == 0


def detect() -> DistInfo:
    """Rank / world size from torchrun or mpirun environment variables (single otherwise)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(
            int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), "torchrun"
        )
    if "OMPI_COMM_WORLD_RANK" in env:
        return DistInfo(
            int(env["OMPI_COMM_WORLD_RANK"]),
            int(env["OMPI_COMM_WORLD_SIZE"]),
            int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)),
            "mpirun",
        )
    return DistInfo()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mpi_rendezvous(info: DistInfo) -> None:
    """Set MASTER_ADDR/PORT under mpirun: rank 0's free port via mpi4py, else MASTER_PORT."""
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return
    try:
        from mpi4py import MPI
    except ImportError:  # mpi4py is optional: a fixed port must then be given
        if "MASTER_PORT" not in os.environ:
            raise DistributedError(
                "started by mpirun without mpi4py: export MASTER_ADDR and MASTER_PORT "
                "(mpirun -x MASTER_ADDR=host -x MASTER_PORT=29500 ...) or pip install mpi4py"
            ) from None
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        return
    comm = MPI.COMM_WORLD
    addr, port = comm.bcast(
        (socket.gethostname() if info.world_size > 1 else "127.0.0.1", _free_port())
        if info.rank == 0
        else None,
        root=0,
    )
    # single-node jobs (the only ones tested): the loopback address always works
    if os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") == str(info.world_size):
        addr = "127.0.0.1"
    os.environ.setdefault("MASTER_ADDR", addr)
    os.environ.setdefault("MASTER_PORT", str(port))


def init(device: torch.device, timeout_s: float = 120.0) -> DistInfo:
    """Join the process group when launched with several ranks; returns this rank's DistInfo."""
    info = detect()
    if info.world_size == 1:
        return info
    if info.launcher == "mpirun":
        _mpi_rendezvous(info)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL collectives and barriers use the current device
    try:
        dist.init_process_group(
            backend,
            rank=info.rank,
            world_size=info.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            init_method="env://",
        )
    except Exception as err:  # noqa: BLE001 - one clear error for every rendezvous failure
        raise DistributedError(
            f"rank {info.rank}/{info.world_size}: could not join the {backend} process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {err}"
        ) from err
    log.info("rank %d of %d joined (%s, %s)", info.rank, info.world_size, backend, info.launcher)
    return info


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if _active() else 0


def _guard(what: str, fn):
    """Run a collective; a peer that died or timed out becomes one DistributedError."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - gloo/nccl raise RuntimeError subclasses
        raise DistributedError(
            f"{what} failed: another rank probably died or timed out ({err}); stopping"
        ) from err


def average_gradients(tensors: Iterable[torch.Tensor]) -> None:
    """All-reduce SUM then scale by 1/N every gradient in place (Caffe mpi_functions.cpp)."""
    if not _active():
        return
    n = dist.get_world_size()
    grads = [t.grad for t in tensors if getattr(t, "grad", None) is not None]
    if not grads:
        return
    # one flat buffer: one collective per iteration instead of one per blob
    flat = torch.cat([g.reshape(-1) for g in grads])
    _guard("gradient all-reduce", lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM))
    flat.mul_(1.0 / n)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_scalars(values: list[float], device: torch.device) -> list[float]:
    """Average a few floats over ranks (loss display; Caffe averages the loss too)."""
    if not _active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    _guard("loss all-reduce", lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM))
    return (t / dist.get_world_size()).tolist()


def sum_tensor(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of `t` over ranks (exact counts for validation); `t` at world size 1."""
    if not _active():
        return t
    t = t.clone()
    _guard("validation all-reduce", lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM))
    return t


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters AND buffers (BN statistics) to every rank (Caffe SyncData)."""
    if not _active():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            _guard("parameter broadcast", lambda t=t: dist.broadcast(t.data, src=0))


def all_gather_object(obj) -> list:
    """Every rank's `obj` (e.g. its RNG state) in rank order; [obj] at world size 1."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    _guard("object all-gather", lambda: dist.all_gather_object(out, obj))
    return out


def gather_object(obj, dst: int = 0) -> list | None:
    """Every rank's `obj` in rank order on rank `dst`, None on the others; [obj] at world
    size 1 (tsn test: rank 0 collects the ranks' scores)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    _guard("object gather", lambda: dist.gather_object(obj, out, dst=dst))
    return out


def barrier() -> None:
    """Wait for every rank (bounded by the process-group timeout)."""
    if _active():
        _guard("barrier", dist.barrier)


def shutdown() -> None:
    """Leave the process group (safe to call when none was formed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
