"""Distance between two flow fields in the terms of the TV-L1 reference set (docs/flow.md).

End-point error per pixel (mean and 99th percentile) and, on the dense_flow encoding of both
components (bound 20, the JPEG values TSN trains on), the share of identical values and of
values within +-1 grey level. `FAITHFUL` holds the per-pair bounds a faithful re-implementation
of OpenCV 2.4's TV-L1 must meet; they sit above the floor measured between two builds of the
same 2.4 source (FMA contraction on and off).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tsn.flow.encode import BOUND, encode_flow


@dataclass(frozen=True)
class FlowDistance:
    """How far one (H, W, 2) flow is from another."""

    mean_epe: float  # px
    p99_epe: float  # px
    max_epe: float  # px (not a usable criterion: single pixels move between float orderings)
    encoded_mean_abs: float  # grey levels, both components
    encoded_identical: float  # % of encoded values equal
    encoded_within_1: float  # % within +-1 grey level

    def as_dict(self) -> dict:
        """Plain dict for JSON reports."""
        return asdict(self)


@dataclass(frozen=True)
class Bounds:
    """Per-pair acceptance bounds."""

    mean_epe: float
    p99_epe: float
    encoded_within_1: float
    encoded_identical: float

    def failures(self, d: FlowDistance) -> list[str]:
        """The bounds `d` breaks, as readable strings (empty when it meets them all)."""
        out = []
        if not d.mean_epe <= self.mean_epe:
            out.append(f"mean EPE {d.mean_epe:.4f} > {self.mean_epe}")
        if not d.p99_epe <= self.p99_epe:
            out.append(f"p99 EPE {d.p99_epe:.4f} > {self.p99_epe}")
        if not d.encoded_within_1 >= self.encoded_within_1:
            out.append(f"within +-1 {d.encoded_within_1:.3f}% < {self.encoded_within_1}%")
        if not d.encoded_identical >= self.encoded_identical:
            out.append(f"identical {d.encoded_identical:.2f}% < {self.encoded_identical}%")
        return out


# "Faithful" in the reference set's README: all 2.4 primitives, 1/32 px remap grid included.
FAITHFUL = Bounds(mean_epe=0.025, p99_epe=0.2, encoded_within_1=99.5, encoded_identical=94.0)


def flow_distance(flow: np.ndarray, ref: np.ndarray, bound: float = BOUND) -> FlowDistance:
    """Distance of `flow` from `ref`, both (H, W, 2) x/y in pixels."""
    flow, ref = np.asarray(flow, np.float32), np.asarray(ref, np.float32)
    if flow.shape != ref.shape or flow.shape[-1] != 2:
        raise ValueError(f"flow_distance: shapes {flow.shape} and {ref.shape} must be one "
                         "(H, W, 2)")
    epe = np.linalg.norm(flow.astype(np.float64) - ref.astype(np.float64), axis=-1)
    coded, coded_ref = encode_flow(flow, bound), encode_flow(ref, bound)
    diff = np.abs(coded.astype(np.int16) - coded_ref.astype(np.int16))
    return FlowDistance(
        mean_epe=float(epe.mean()), p99_epe=float(np.percentile(epe, 99)),
        max_epe=float(epe.max()), encoded_mean_abs=float(diff.mean()),
        encoded_identical=float(100.0 * (diff == 0).mean()),
        encoded_within_1=float(100.0 * (diff <= 1).mean()),
    )
