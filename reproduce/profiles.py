"""Run profiles: `full` is the paper/release recipe; `demo` and `tiny` shrink it for CPUs.

Every deviation from the recipe is a named setting here and is printed in each report (the
`profile` column and the notes), so no reduced number can pass for a paper number.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def overrides(self) -> list[str]:
        """Training overrides (the tiny backbone takes its input channels from the modality)."""
        return list(self.train)


_SMALL = ("model.arch=tiny", "solver.preset=custom", "solver.lr_policy=fixed",
          "solver.momentum=0.9", "solver.weight_decay=0.0005", "solver.clip_gradients=40",
          "data.num_workers=0", "display=10")

PROFILES: dict[str, Profile] = {
    "full": Profile(
        "full", (), 25, 10, 50, 4, 2, 32, "tvl1",
        "the release recipe: BN-Inception, released solver (batch 128), 25x10 test",
        test_workers=8),
    "demo": Profile(
        "demo", (*_SMALL, "solver.base_lr=0.01", "solver.max_iter=120",
                 "solver.batch_per_process=8", "solver.effective_batch=8",
                 "checkpoint_every=60"), 25, 10, 50, 4, 2, 32, "dis",
        "CPU demo: tiny 2-conv TSN (not BN-Inception), 120 iterations of batch 8 at lr 0.01 "
        "(fixed), full 25x10 test, DIS flow (not TV-L1), synthetic set of 8 classes x (4 train + 2 "
        "test) videos of 32 frames"),
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
