"""Atomic training checkpoints: model, Caffe momentum history, iteration, RNG and data position.

A checkpoint is `<run>/checkpoints/iter_<NNNNNNN>.pt`, written to a temporary file in the same
folder, fsynced, then renamed with os.replace: a run killed at any instant (SIGKILL included)
leaves either the previous set of checkpoints or the new one, never a torn file. The schedule
needs no state of its own: the lr is a pure function of the iteration (Caffe GetLearningRate).
Files are read back with torch.load(weights_only=True): a checkpoint cannot run code.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import numpy as np
import torch

from tsn.atomic import atomic_open

log = logging.getLogger(__name__)

_NAME = re.compile(r"^iter_(\d{7,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this run."""


def path_for(folder: Path, iteration: int) -> Path:
    """The checkpoint file of `iteration` completed iterations."""
    return Path(folder) / f"iter_{iteration:07d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every complete checkpoint in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest(folder: Path) -> Path | None:
    """The newest checkpoint, or None."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then os.replace (atomic rename)."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def rng_state(device: torch.device) -> dict:
    """This process's random generators (torch CPU/CUDA, Python, NumPy) as plain data."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save(folder: Path, iteration: int, state: dict, keep: int = 2) -> Path:
    """Write the checkpoint of `iteration` atomically and prune all but the newest `keep`."""
    path = path_for(folder, iteration)
    atomic_save({**state, "iteration": iteration}, path)
    for _it, old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def load(path: Path) -> dict:
    """Read a checkpoint (weights only: no code runs); one clear error for a bad file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); delete it to "
            "resume from the previous one"
        ) from None
    for key in ("iteration", "model", "optimizer", "data", "rng", "config"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry; not a tsn checkpoint")
    return state
