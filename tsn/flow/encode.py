"""dense_flow's flow-to-image mapping (common.cpp `convertFlowToImage`, bound B = 20)."""

from __future__ import annotations

import numpy as np

BOUND = 20.0  # extract_gpu -b 20 ([TSN] tools/build_of.py)


def encode_flow(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Flow (px/frame) -> uint8: v > B -> 255, v < -B -> 0, else cvRound(255 (v + B) / 2B).

    cvRound rounds half to even, as np.rint does, so 0 px maps to 128 (127.5 -> 128).
    """
    scaled = np.rint(255.0 * (flow.astype(np.float64) + bound) / (2.0 * bound))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def decode_flow(image: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Inverse of encode_flow (up to the 0.157 px quantisation step)."""
    return image.astype(np.float32) * (2.0 * bound / 255.0) - bound
