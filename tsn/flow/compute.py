"""Optical flow between two grayscale frames with OpenCV: TV-L1 (OpenCV 3+ API) or DIS.

This is the `--tvl1-backend opencv` path. The default TV-L1 is tsn/flow/tvl1.py (OpenCV 2.4's
Dual TV-L1 re-implemented in PyTorch, what dense_flow ran); this module keeps OpenCV 5's
`cv2.optflow.DualTVL1OpticalFlow` by name, and DIS as the explicitly named fast option.

dense_flow ran OpenCV 2.4's `gpu::OpticalFlowDual_TVL1_GPU` at library defaults
(dense_flow_gpu.cpp):
tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5, epsilon 0.01, iterations 300. OpenCV 3+
(`cv2.optflow.DualTVL1OpticalFlow`, CPU) is a different algorithm in the details: a resize
pyramid, the 2.4 `iterations` loop split into `outerIterations x innerIterations` with an
optional median filter between outer steps, and (5.x) an unquantised bicubic remap. Here
10 x 30 = 300 keeps the iteration budget per warp and the epsilon stop; scale_step 0.5 matches
2.4's pyrDown factor (OpenCV 3+'s own default is 0.8). The median filter is OpenCV 3+'s
default (ksize 5) and is kept for continuity with earlier outputs; `median_filtering=1` turns
it off (the 2.4 code has none). Neither choice makes this path the 2.4 algorithm: on the
shared golden pairs it lands at ~0.13 px mean end-point error from 2.4's flow
(docs/data.md, "Extraction"). Cost: ~0.7-1.1 CPU-s per 340x256 pair (issue 11: 0.67;
results/bench/flow_cpu.md: 1.07 on a loaded 2-core machine; `make bench-flow` times it
against the torch path), so DIS (MEDIUM preset) stays the named fast option.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tsn.flow.choices import METHODS


@dataclass(frozen=True)
class OpenCVTVL1Params:
    """Settings of OpenCV 3+'s DualTVL1OpticalFlow at dense_flow's 2.4 values (dense_flow_gpu.cpp).

    Not the 2.4 parameter set (that is tsn.flow.tvl1.TVL1Params): the iteration split, scale
    step and median filter exist only in OpenCV 3+'s API.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30  # x outer 10 = the 2.4 `iterations` 300
    outer_iterations: int = 10
    scale_step: float = 0.5  # 2.4 built its pyramid with pyrDown (factor 0.5)
    median_filtering: int = 5  # OpenCV 3+'s default ksize; 1 = off (2.4 had no median filter)


def make_flow(method: str = "tvl1", params: OpenCVTVL1Params | None = None):
    """A cv2 DenseOpticalFlow object for `method` in METHODS."""
    if method == "tvl1":
        p = params or OpenCVTVL1Params()
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
