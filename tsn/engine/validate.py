"""Validation during training: the TEST phase of the train_val prototxts (Caffe test_interval).

Caffe runs the TEST net every `test_interval` iterations (and once before training with
`test_initialization: true`, docs/caffe_release.md#solvers): VideoData in TEST phase (K
segment-centre snippets, centre crop), BN on stored statistics, dropout off; it reports the loss and
the `Accuracy` layer (top-1 of each video after consensus). With several ranks each tests a share of
the list and the results are averaged, after `SyncData` broadcast rank 0's blobs (BN statistics
included, docs/caffe_release.md#mpi). Here: the same, with the shares summed exactly (counts, not
means) and mean class accuracy (the paper's metric) reported beside top-1. This is a training
monitor; the paper's numbers come from `tsn test` (25 frames x 10 crops).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from tsn.engine import distributed


@dataclass(frozen=True)
class ValResult:
    """Validation of one model state."""

    loss: float  # mean cross-entropy over the videos (SoftmaxWithLoss)
    video_top1: float  # Caffe's Accuracy layer: top-1 of the consensus logits
    mean_class_acc: float  # mean over classes of per-class top-1 (the paper's metric)
    videos: int


@torch.no_grad()
def validate(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    worker_init_fn=None,
) -> ValResult:
    """Evaluate `model` on this rank's share (items r, r+N, ...) and combine over ranks."""
    world, rank = distributed.world_size(), distributed.rank()
    distributed.broadcast_module(model)  # Caffe SyncData before every test pass
    share = Subset(dataset, range(rank, len(dataset), world))  # type: ignore[arg-type]
    loader = DataLoader(
        share, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        worker_init_fn=worker_init_fn,
        # own generator: the training RNG stream must not move (resume determinism)
        generator=torch.Generator().manual_seed(0),
    )
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros(num_classes, dtype=torch.float64, device=device)
    total = torch.zeros(num_classes, dtype=torch.float64, device=device)
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            hit = (logits.argmax(1) == y).double()
            # one-hot sums, not index_add_: deterministic on CUDA too
            onehot = F.one_hot(y, num_classes).double()
            correct += (onehot * hit[:, None]).sum(0)
            total += onehot.sum(0)
    finally:
        model.train(was_training)
    stats = distributed.sum_tensor(torch.cat([loss_sum.view(1), correct, total]))
    loss_sum, correct, total = stats[0], stats[1 : 1 + num_classes], stats[1 + num_classes :]
    videos = int(total.sum())
    if videos == 0:
        raise ValueError("validation: the list holds no videos")
    present = total > 0  # classes absent from the list do not count (tools/eval_net.py)
    return ValResult(
        loss=float(loss_sum) / videos,
        video_top1=float(correct.sum()) / videos,
        mean_class_acc=float((correct[present] / total[present]).mean()),
        videos=videos,
    )
