"""Optical flow between two grayscale frames: TV-L1 at dense_flow's parameters, or DIS.

dense_flow ran OpenCV 2.4's `gpu::OpticalFlowDual_TVL1_GPU` at library defaults (spec 6.2):
tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5, epsilon 0.01, iterations 300. OpenCV 3+
(`cv2.optflow.DualTVL1OpticalFlow`, CPU) splits the 2.4 `iterations` loop into
`outerIterations x innerIterations` with a median filter between outer steps; 10 x 30 = 300
keeps the iteration budget per warp and the epsilon stop. The 2.4 GPU copy read for the spec
builds its pyramid with pyrDown (factor 0.5), so scale_step defaults to 0.5 (OpenCV 3+'s own
default is 0.8; spec 6.2 flags 2.4.13's value as unconfirmed). The GPU kernel has no median
filter; OpenCV 3+ always applies one (ksize `median_filtering`, 5 by default) -- a known,
unavoidable difference. TV-L1 costs ~1.4 s per 340x256 pair on 2 threads (environment.md 2),
so "dis" (DISOpticalFlow, MEDIUM preset) is offered as the explicitly named fast option.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

METHODS = ("tvl1", "dis", "dis_fast")


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV 2.4 GPU TV-L1 defaults as dense_flow used them (spec 6.2)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30  # x outer 10 = the 2.4 `iterations` 300
    outer_iterations: int = 10
    scale_step: float = 0.5  # pyrDown pyramid of the 2.4 GPU code
    median_filtering: int = 5  # OpenCV 3+ only (no equivalent in the 2.4 GPU kernel)


def make_flow(method: str = "tvl1", params: TVL1Params | None = None):
    """A cv2 DenseOpticalFlow object for `method` in METHODS."""
    if method == "tvl1":
        p = params or TVL1Params()
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.nscales, warps=p.warps,
            epsilon=p.epsilon, innnerIterations=p.inner_iterations,
            outerIterations=p.outer_iterations, scaleStep=p.scale_step, gamma=0.0,
            medianFiltering=p.median_filtering, useInitialFlow=False,
        )
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if method == "dis_fast":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    raise ValueError(f"unknown flow method {method!r}: use one of {METHODS}")


def compute_flow(flow_obj, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Flow prev -> cur (HxWx2 float32, x then y) on grayscale uint8 frames."""
    return flow_obj.calc(prev, cur, None)
