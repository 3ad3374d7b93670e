"""Run profiles: `full` is the paper/release recipe; `demo` and `tiny` shrink it for CPUs.

Every deviation from the recipe is a named setting here and is printed in each report (the
`profile` column and the notes), so no reduced number can pass for a paper number.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsn.modality import MODALITIES


@dataclass(frozen=True)
class Profile:
    """How much of the recipe to run."""

    name: str
    train: tuple[str, ...]  # key=value overrides applied after the row's delta
    test_frames: int  # snippets per test video (paper: 25)
    test_crops: int  # crops per snippet (paper: 10)
    test_batch: int  # snippet views per forward
    synth_train_per_class: int  # synthetic dataset size (tsn synth; 8 classes)
    synth_test_per_class: int
    synth_frames: int  # frames per synthetic video
    flow: str  # flow algorithm for synthetic extraction: tvl1 (paper) | dis (fast, demo)
    description: str
    test_workers: int = 0  # DataLoader processes decoding test videos (JPEG decoding bound)
    # applied after `train` to flow-like streams (tsn/modality.py is_flow): the release trains
    # flow longer and at a higher rate than RGB (docs/caffe_release.md#solvers)
    flow_train: tuple[str, ...] = ()

    def overrides(self, modality: str = "rgb") -> list[str]:
        """Training overrides of a stream of `modality` (the tiny backbone takes its input
        channels from the modality)."""
        flow = modality in MODALITIES and MODALITIES[modality].is_flow
        return [*self.train, *(self.flow_train if flow else ())]


_SMALL = ("model.arch=tiny", "solver.preset=custom", "solver.lr_policy=fixed",
          "solver.momentum=0.9", "solver.weight_decay=0.0005", "solver.clip_gradients=40",
          "data.num_workers=0", "display=10")

PROFILES: dict[str, Profile] = {
    "full": Profile(
        "full", (), 25, 10, 50, 4, 2, 32, "tvl1",
        "the release recipe: BN-Inception, released solver (batch 128), 25x10 test",
        test_workers=8),
    # The demo learns what the synthetic design allows (reproduce/synthetic.py): a tiny net from
    # scratch, so BN is not frozen and no dropout is added (partial BN and dropout 0.8 / 0.7
    # serve ImageNet-initialised BN-Inception, not 8 random features); 8 test videos per class
    # so that its intervals say something; one centre crop per test frame, because ten cost ten
    # times as much on a CPU and see nothing more in the synthetic set.
    "demo": Profile(
        "demo", (*_SMALL, "model.partial_bn=none", "model.dropout=0", "solver.base_lr=0.02",
                 "solver.lr_policy=step", "solver.gamma=0.1", "solver.stepsize=150",
                 "solver.max_iter=200", "solver.batch_per_process=8",
                 "solver.effective_batch=8", "checkpoint_every=100"), 25, 1, 50, 12, 8, 32,
        "dis",
        "CPU demo: tiny 2-conv TSN (not BN-Inception) trained from scratch, so no partial BN "
        "and no added dropout; batch 8, step lr (x0.1, as the release's solvers): RGB 200 "
        "iterations at 0.02 (step at 150), flow 450 at 0.03 (step at 300; the release, too, "
        "trains flow longer, at a higher rate); 25x1 test (one centre crop per frame, not 10 "
        "crops); DIS flow (not TV-L1); synthetic set of 8 classes x (12 train + 8 test) videos "
        "of 32 frames",
        flow_train=("solver.base_lr=0.03", "solver.stepsize=300", "solver.max_iter=450",
                    "checkpoint_every=150")),
    "tiny": Profile(
        "tiny", (*_SMALL, "solver.base_lr=0.01", "solver.max_iter=3",
                 "solver.batch_per_process=4", "solver.effective_batch=4",
                 "checkpoint_every=3"), 3, 1, 50, 1, 1, 12, "dis",
        "smoke test: tiny 2-conv TSN, 3 iterations of batch 4, 3x1 test, DIS flow, "
        "8 classes x (1 train + 1 test) synthetic videos of 12 frames"),
}


def get_profile(name: str) -> Profile:
    """The named profile; ValueError naming the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
    return PROFILES[name]
