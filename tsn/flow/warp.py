"""Warped flow: flow after removing camera motion by a homography (docs/caffe_release.md#warped-
flow, [DF] src/dense_warp_flow_gpu.cpp, include/warp_flow.h).

SURF is not in the opencv-contrib wheel (non-free algorithms are off), so the feature matches
use SIFT (descriptors compared by L2 as SURF's were); the rest follows dense_flow:
1. flow prev -> cur; 2. features on cur, brute-force L2 matched against the reference frame's
features within a 25 px window; 3. up to 1000 Shi-Tomasi corners on cur (quality 0.001, min
distance 3) paired with p + flow(p); 4. more than 50 matches -> RANSAC homography (threshold 1)
kept if more than 25 inliers, else identity; 5. cur warped onto prev (dst(x) = cur(H x)),
pixels whose source leaves the image shrunk by 5 px take prev's value; 6. flow prev -> warped.
No human mask (all ones), native resolution, as the release.

The release's two quirks are named options of `WarpOptions` and on by default (release
behaviour, reproducible with the wheel): `stale_reference` (the reference features are those
of the first frame, never updated) and `y_index_bug` (the y displacement of a corner (x, y) is
read at flow_y[y, y] instead of flow_y[y, x]).

The steps that do not need the flow (features, their matches, the corners of step 3) are
`WarpCues`, so a batched pipeline can compute them beside decoding (tsn/flow/pipeline.py)
and run only `warp_with_flow` between its two flow batches; `WarpedFlow` chains them per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tsn.flow.compute import compute_flow


@dataclass(frozen=True)
class WarpOptions:
    """Warped-flow settings; defaults reproduce the release (dense_flow c9369a3)."""

    stale_reference: bool = True  # release quirk: match against frame 0's features forever
    y_index_bug: bool = True  # release quirk: flow_y[y][y] for the corner displacement
    window: int = 25  # windowedMatchingMask max dx, dy (px)
    min_matches: int = 50
    min_inliers: int = 25
    ransac_threshold: float = 1.0
    border: int = 5  # margin inside which a warped source pixel counts as valid
    max_corners: int = 1000


class Features:
    """SIFT keypoints/descriptors of a frame (SURF stand-in)."""

    def __init__(self) -> None:
        self.sift = cv2.SIFT_create()

    def __call__(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        kps, desc = self.sift.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
        return pts, desc


def feature_matches(ref: tuple, cur: tuple, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(ref points, cur points) of the L2 best matches within `window` px (query = cur)."""
    ref_pts, ref_desc = ref
    cur_pts, cur_desc = cur
    if ref_desc is None or cur_desc is None or len(ref_pts) == 0 or len(cur_pts) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    d = np.abs(cur_pts[:, None, :] - ref_pts[None, :, :])
    mask = ((d[..., 0] <= window) & (d[..., 1] <= window)).astype(np.uint8)
    matches = cv2.BFMatcher(cv2.NORM_L2).match(cur_desc, ref_desc, mask)
    q = np.array([m.queryIdx for m in matches], int)
    t = np.array([m.trainIdx for m in matches], int)
    if len(q) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    return ref_pts[t], cur_pts[q]


def corners(cur: np.ndarray, opts: WarpOptions) -> np.ndarray:
    """Shi-Tomasi corners of `cur` (N x 2, x then y) as the release detects them."""
    found = cv2.goodFeaturesToTrack(cur, opts.max_corners, 0.001, 3)
    return np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2)


def corner_flow_matches(p: np.ndarray, flow: np.ndarray, opts: WarpOptions) -> tuple:
    """(p, p + flow(p)) for corners `p` of the current frame (release quirk: y_index_bug)."""
    if len(p) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    rows, cols = flow.shape[:2]
    xi = np.clip(np.rint(p[:, 0]).astype(int), 0, cols - 1)
    yi = np.clip(np.rint(p[:, 1]).astype(int), 0, rows - 1)
    dx = flow[yi, xi, 0]
    dy = flow[yi, np.minimum(yi, cols - 1) if opts.y_index_bug else xi, 1]
    return p, p + np.stack([dx, dy], axis=1)


def flow_matches(cur: np.ndarray, flow: np.ndarray, opts: WarpOptions) -> tuple:
    """(p, p + flow(p)) for Shi-Tomasi corners detected on `cur` (as the release does)."""
    return corner_flow_matches(corners(cur, opts), flow, opts)


def estimate_homography(prev_pts: np.ndarray, cur_pts: np.ndarray, opts: WarpOptions):
    """RANSAC homography prev -> cur, or identity with too few matches or inliers."""
    if len(prev_pts) > opts.min_matches:
        h, inliers = cv2.findHomography(prev_pts, cur_pts, cv2.RANSAC, opts.ransac_threshold)
        if h is not None and inliers is not None and int(inliers.sum()) > opts.min_inliers:
            return h
    return np.eye(3)


def warp_onto_prev(prev: np.ndarray, cur: np.ndarray, h: np.ndarray, border: int) -> np.ndarray:
    """dst(x) = cur(H x), bilinear; where H x leaves the image shrunk by `border`, prev(x)."""
    rows, cols = prev.shape
    warped = cv2.warpPerspective(cur, h, (cols, rows),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT)
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    src = cv2.perspectiveTransform(np.stack([xs, ys], -1).reshape(-1, 1, 2), h).reshape(rows,
                                                                                        cols, 2)
    valid = ((src[..., 0] >= border) & (src[..., 0] < cols - border)
             & (src[..., 1] >= border) & (src[..., 1] < rows - border))
    return np.where(valid, warped, prev)


@dataclass(frozen=True)
class PairCues:
    """What warped flow needs of a pair besides the flow: feature matches and corners."""

    feat_prev: np.ndarray  # matched reference-frame feature points (N x 2)
    feat_cur: np.ndarray  # their matches on the current frame
    corners: np.ndarray  # Shi-Tomasi corners of the current frame (M x 2)


class WarpCues:
    """Stateful per-video cue computer (holds the reference features, steps 2-3)."""

    def __init__(self, opts: WarpOptions | None = None) -> None:
        self.opts = opts or WarpOptions()
        self.features = Features()
        self.reference = None

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> PairCues:
        """Cues of the pair prev -> cur; call once per pair, in frame order."""
        if self.reference is None or not self.opts.stale_reference:
            self.reference = self.features(prev)
        f_prev, f_cur = feature_matches(self.reference, self.features(cur), self.opts.window)
        return PairCues(f_prev, f_cur, corners(cur, self.opts))


def warp_with_flow(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, cues: PairCues,
                   opts: WarpOptions) -> tuple[np.ndarray, np.ndarray]:
    """(cur warped onto prev, homography) from the flow prev -> cur and the pair's cues."""
    c_prev, c_cur = corner_flow_matches(cues.corners, flow, opts)
    h = estimate_homography(np.concatenate([cues.feat_prev, c_prev]).astype(np.float32),
                            np.concatenate([cues.feat_cur, c_cur]).astype(np.float32), opts)
    return warp_onto_prev(prev, cur, h, opts.border), h


class WarpedFlow:
    """Stateful per-video warped-flow computer, one pair at a time (OpenCV flow objects)."""

    def __init__(self, flow_obj, opts: WarpOptions | None = None) -> None:
        self.flow_obj, self.opts = flow_obj, opts or WarpOptions()
        self.cues = WarpCues(self.opts)

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(warped flow prev -> cur, homography) for one grayscale pair."""
        flow = compute_flow(self.flow_obj, prev, cur)
        warped, h = warp_with_flow(prev, cur, flow, self.cues(prev, cur), self.opts)
        return compute_flow(self.flow_obj, prev, warped), h
