"""OpenCV 2.4's Dual TV-L1 optical flow in PyTorch, batched over frame pairs, on CPU or CUDA.

dense_flow (the TSN flow extractor) called OpenCV 2.4's `gpu::OpticalFlowDual_TVL1_GPU` with its
default constructor (docs/flow.md). This module re-implements that algorithm from its two public
2.4 sources, the CPU twin `modules/video/src/tvl1flow.cpp` and the GPU class
`modules/gpu/src/tvl1flow.cpp` + `modules/gpu/src/cuda/tvl1flow.cu`:

* `semantics="cpu24"`: the CPU code: pyrDown pyramid, `cv::resize` bilinear upsampling on pixel
  centres, `cv::remap` INTER_CUBIC (Keys a = -0.75, coordinates on a 1/32 px grid, zero border)
  and the error summed every iteration.
* `semantics="gpu24"` (default, what the released models were trained on): the same pyramid and
  solver with the GPU class's four differences, each one switch of `Semantics`:
  `stop` (error summed on odd iterations only, skipped while the previous error, reduced by
  epsilon^2 * area per iteration since, is above the threshold), `warp` (its own normalised
  a = -0.5 bicubic over clamp-to-edge textures, exact coordinates), `upsample` (`gpu::resize`
  samples the coarse flow at `dst * src/dst`, no half-pixel offset) and `arithmetic` (`hypotf`,
  float reduction of the error, double threshold). nvcc's FMA contraction is not reproduced.

Every elementwise step keeps the 2.4 source's operation order in float32, so a pair's result does
not depend on the batch it runs in or on the device (up to `hypot` and reduction rounding).
Each pair keeps its own stopping test: pairs that stop leave the working batch, so a batch costs
about the sum of its pairs' own iterations (with the per-operation overhead shared), not N times
the slowest pair's. `compile=True` fuses the inner iteration with torch.compile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tsn.flow.choices import SEMANTICS  # names accepted by tvl1_flow; gpu24 is dense_flow's

log = logging.getLogger(__name__)

FLT_EPSILON = float(np.finfo(np.float32).eps)  # numeric_limits<float>::epsilon() in estimateV
DBL_MAX = float(np.finfo(np.float64).max)  # the GPU loop's "no error measured" value
INTER_TAB_SIZE = 32  # cv::remap's sub-pixel grid (imgproc INTER_BITS = 5)
MIN_LEVEL_SIZE = 16  # the pyramid stops before a level narrower or lower than this


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV 2.4 TV-L1 parameters; the defaults are the constructor's, which dense_flow kept."""

    tau: float = 0.25  # time step of the dual update
    lambda_: float = 0.15  # weight of the data term
    theta: float = 0.3  # coupling of u and v
    nscales: int = 5  # pyramid levels (fewer when a level would drop below 16 px)
    warps: int = 5  # warps per level
    epsilon: float = 0.01  # stop when sum |u_new - u_old|^2 <= epsilon^2 * w * h
    iterations: int = 300  # inner iterations per warp at most

    def __post_init__(self) -> None:
        if self.nscales < 1 or self.warps < 1 or self.iterations < 1:
            raise ValueError(f"TVL1Params: nscales, warps and iterations must be >= 1: {self}")
        if not (self.tau > 0 and self.theta > 0 and self.lambda_ >= 0 and self.epsilon >= 0):
            raise ValueError(f"TVL1Params: tau, theta > 0 and lambda_, epsilon >= 0: {self}")


@dataclass(frozen=True)
class Semantics:
    """Which of the 2.4 CPU / GPU behaviours to run; one field per documented difference."""

    name: str
    stop: str  # "every_iteration" (CPU) | "odd_iterations" (GPU skip heuristic)
    warp: str  # "remap_cubic" (CPU cv::remap) | "gpu_bicubic" (warpBackward kernel)
    upsample: str  # "pixel_centres" (cv::resize) | "gpu_corners" (gpu::resize)
    arithmetic: str  # "cpu" (double hypot, float threshold) | "gpu" (hypotf, float reduction)

    def __post_init__(self) -> None:
        allowed = {"stop": ("every_iteration", "odd_iterations"),
                   "warp": ("remap_cubic", "gpu_bicubic"),
                   "upsample": ("pixel_centres", "gpu_corners"),
                   "arithmetic": ("cpu", "gpu")}
        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise ValueError(f"Semantics.{name} must be one of {values}, "
                                 f"got {getattr(self, name)!r}")


CPU24 = Semantics("cpu24", "every_iteration", "remap_cubic", "pixel_centres", "cpu")
GPU24 = Semantics("gpu24", "odd_iterations", "gpu_bicubic", "gpu_corners", "gpu")
_BY_NAME = {"gpu24": GPU24, "cpu24": CPU24}


def get_semantics(semantics: str | Semantics) -> Semantics:
    """The Semantics for a name in SEMANTICS (or a Semantics, returned as is)."""
    if isinstance(semantics, Semantics):
        return semantics
    if semantics not in _BY_NAME:
        raise ValueError(f"unknown TV-L1 semantics {semantics!r}: use one of {SEMANTICS}")
    return _BY_NAME[semantics]


@dataclass(frozen=True)
class TVL1Stats:
    """What a call did: inner iterations per pair, level (coarsest first) and warp."""

    iterations: np.ndarray  # int32 (N, levels, warps)
    level_sizes: list[tuple[int, int]] = field(default_factory=list)  # (h, w), coarsest first


# --------------------------------------------------------------------------------------------
# Pyramid and the two flow upsamplings


SIMD_LANES = 4  # float lanes of OpenCV's baseline (SSE2) universal intrinsics


def _simd_columns(size: int, start: int, stop: int, device) -> torch.Tensor:
    """Columns [start, stop) that a 4-lane SIMD loop from `start` covers (the rest is scalar)."""
    covered = start + (max(0, stop - start) // SIMD_LANES) * SIMD_LANES
    x = torch.arange(size, device=device)
    return (x >= start) & (x < covered)


def pyr_down(img: torch.Tensor) -> torch.Tensor:
    """cv::pyrDown of float images (N, H, W): [1 4 6 4 1]/16 both ways, reflect-101, halved.

    Follows imgproc pyramids.cpp (the OpenCV 4 primitives the 2.4 code ran on) to the operation
    order. Scalar columns compute `((s0*6 + (s-1 + s+1)*4) + s-2) + s+2`; the SIMD loops
    `s0*6 + ((s-1 + s+1)*4 + (s-2 + s+2))` along rows (PyrDownVecH, columns 1 .. width0) and
    `((r-1 + r+1) + r0)*4 + ((r-2 + r+2) + (r0 + r0))` down the columns (PyrDownVecV); every
    result is then `* (1/256)`. The output is ((W+1)/2, (H+1)/2).
    """
    h, w = img.shape[-2:]
    dh, dw = (h + 1) // 2, (w + 1) // 2
    x = F.pad(img.unsqueeze(1), (2, 2, 2, 2), mode="reflect").squeeze(1)  # reflect-101

    def tap(t: torch.Tensor, k: int, size: int, dim: int) -> torch.Tensor:
        # source index 2d + k of every output d, in the padded tensor (offset 2)
        return t.narrow(dim, 2 + k, 2 * size - 1).unfold(dim, 1, 2).squeeze(-1)

    m2, m1, c, p1, p2 = (tap(x, k, dw, 2) for k in (-2, -1, 0, 1, 2))
    scalar = ((c * 6 + (m1 + p1) * 4) + m2) + p2
    simd = c * 6 + ((m1 + p1) * 4 + (m2 + p2))
    width0 = min((w - 3) // 2 + 1, dw)  # columns whose taps need no border table
    rows = torch.where(_simd_columns(dw, 1, width0, img.device), simd, scalar)
    m2, m1, c, p1, p2 = (tap(rows, k, dh, 1) for k in (-2, -1, 0, 1, 2))
    scalar = ((c * 6 + (m1 + p1) * 4) + m2) + p2
    simd = ((m1 + p1) + c) * 4 + ((m2 + p2) + (c + c))
    out = torch.where(_simd_columns(dw, 0, dw, img.device), simd, scalar)
    return out * (1.0 / 256.0)


def build_pyramid(img: torch.Tensor, nscales: int) -> list[torch.Tensor]:
    """Levels finest first; stops before a level below 16 px, as tvl1flow.cpp calc() does."""
    levels = [img]
    for _ in range(1, nscales):
        down = pyr_down(levels[-1])
        if down.shape[-1] < MIN_LEVEL_SIZE or down.shape[-2] < MIN_LEVEL_SIZE:
            break
        levels.append(down)
    return levels


def _linear_taps_centres(dst: int, src: int, clamp_weight: bool, device) -> tuple:
    """cv::resize INTER_LINEAR source index and weight per destination index (float path).

    `f = (float)((d + 0.5) * scale - 0.5)` in double, `s = floor(f)`, weight `f - s`. Along x
    (`clamp_weight`) an index left of 0 or at/after the last column is clamped with weight 0;
    along y only the row indices are clamped (resize.cpp resizeGeneric_Invoker).
    """
    scale = src / dst
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    frac = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weight:
        left = s < 0
        right = s >= src - 1
        frac[left | right] = 0.0
        s[left] = 0
        s[right] = src - 1
    s0 = np.clip(s, 0, src - 1)
    s1 = np.clip(s + 1, 0, src - 1)
    w0 = (np.float32(1.0) - frac).astype(np.float32)
    return (torch.from_numpy(s0).to(device), torch.from_numpy(s1).to(device),
            torch.from_numpy(w0).to(device), torch.from_numpy(frac).to(device))


def upsample_pixel_centres(u: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv::resize(u, size) with INTER_LINEAR on float (N, h, w) -> (N, H, W), as the CPU code.

    Horizontal pass `S[x0]*a0 + S[x1]*a1`, then vertical `R0*b0 + R1*b1`, in float.
    """
    h, w = u.shape[-2:]
    big_h, big_w = size
    x0, x1, ax0, ax1 = _linear_taps_centres(big_w, w, True, u.device)
    y0, y1, by0, by1 = _linear_taps_centres(big_h, h, False, u.device)
    rows = u[:, :, x0] * ax0 + u[:, :, x1] * ax1
    return rows[:, y0, :] * by0[:, None] + rows[:, y1, :] * by1[:, None]


def _linear_taps_corners(dst: int, src: int, device) -> tuple:
    """gpu::resize INTER_LINEAR taps: `s = d * (float)(1 / (dst / src))` in float, no offset."""
    step = np.float32(1.0 / (dst / src))
    coord = np.arange(dst, dtype=np.float32) * step
    s0 = np.floor(coord).astype(np.int64)
    s1f = (s0 + 1).astype(np.float32)
    # weights as the kernel forms them: (x2 - src_x) and (src_x - x1), ints converted to float
    w_lo = (s1f - coord).astype(np.float32)
    w_hi = (coord - s0.astype(np.float32)).astype(np.float32)
    s1 = np.minimum(s0 + 1, src - 1)  # x2_read / clamp-to-edge texture
    return (torch.from_numpy(s0).to(device), torch.from_numpy(s1).to(device),
            torch.from_numpy(w_lo).to(device), torch.from_numpy(w_hi).to(device))


def upsample_gpu_corners(u: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """gpu::resize(u, size) INTER_LINEAR as 2.4's resize.cu LinearFilter computes it.

    `out = 0; out += S(y1,x1)*(wx_lo*wy_lo); out += S(y1,x2)*(wx_hi*wy_lo);
    out += S(y2,x1)*(wx_lo*wy_hi); out += S(y2,x2)*(wx_hi*wy_hi)` in float.
    """
    h, w = u.shape[-2:]
    big_h, big_w = size
    x1, x2, wxl, wxh = _linear_taps_corners(big_w, w, u.device)
    y1, y2, wyl, wyh = _linear_taps_corners(big_h, h, u.device)
    top, bottom = u[:, y1, :], u[:, y2, :]
    out = top[:, :, x1] * (wxl[None, :] * wyl[:, None])
    out = out + top[:, :, x2] * (wxh[None, :] * wyl[:, None])
    out = out + bottom[:, :, x1] * (wxl[None, :] * wyh[:, None])
    return out + bottom[:, :, x2] * (wxh[None, :] * wyh[:, None])


# --------------------------------------------------------------------------------------------
# Finite differences (identical rules in the CPU and GPU sources)


def centered_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0.5 * (f[i+1] - f[i-1]); at the borders 0.5 * (f[1] - f[0]) and 0.5 * (f[n-1] - f[n-2])."""
    right = torch.cat([img[..., 1:], img[..., -1:]], dim=-1)
    left = torch.cat([img[..., :1], img[..., :-1]], dim=-1)
    down = torch.cat([img[..., 1:, :], img[..., -1:, :]], dim=-2)
    up = torch.cat([img[..., :1, :], img[..., :-1, :]], dim=-2)
    return 0.5 * (right - left), 0.5 * (down - up)


def forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """u[x+1] - u[x] and u[y+1] - u[y], 0 in the last column / last row."""
    if torch.compiler.is_compiling():  # functional form: fuses (out= would break the graph)
        return (F.pad(u[..., 1:] - u[..., :-1], (0, 1)),
                F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1)))
    # eager: differences written into place, no padded copies
    dx = torch.empty_like(u)
    torch.sub(u[..., 1:], u[..., :-1], out=dx[..., :-1])
    dx[..., -1] = 0.0
    dy = torch.empty_like(u)
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=dy[..., :-1, :])
    dy[..., -1, :] = 0.0
    return dx, dy


def divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence with the 2.4 border rules and operation order.

    Inside and on the first row: (v1[x] - v1[x-1]) + (v2[y] - v2[y-1]), reading 0 above the
    image; first column: (v1 + v2) - v2[y-1]; corner: v1 + v2.
    """
    if torch.compiler.is_compiling():  # functional form: fuses (out= would break the graph)
        v1x = torch.cat([v1[..., :1], v1[..., 1:] - v1[..., :-1]], dim=-1)
        v2y = torch.cat([v2[..., :1, :], v2[..., 1:, :] - v2[..., :-1, :]], dim=-2)
        first_col = (v1[..., 1:, :1] + v2[..., 1:, :1]) - v2[..., :-1, :1]
        div = v1x + v2y
        return torch.cat([div[..., :1, :],
                          torch.cat([first_col, div[..., 1:, 1:]], dim=-1)], dim=-2)
    div = torch.empty_like(v1)
    torch.sub(v1[..., 1:], v1[..., :-1], out=div[..., 1:])
    div[..., 0] = v1[..., 0]
    v2y = torch.empty_like(v2)
    torch.sub(v2[..., 1:, :], v2[..., :-1, :], out=v2y[..., 1:, :])
    v2y[..., 0, :] = v2[..., 0, :]
    div += v2y
    div[..., 1:, 0] = (v1[..., 1:, 0] + v2[..., 1:, 0]) - v2[..., :-1, 0]
    return div


# --------------------------------------------------------------------------------------------
# Warping I1 and its gradients by the current flow


def _cubic_table(device) -> torch.Tensor:
    """cv::remap's INTER_CUBIC float weights: (32, 4) over the 1/32 px fractions.

    imgproc interpolateCubic with A = -0.75, evaluated in float in the source's order.
    """
    one, a = np.float32(1), np.float32(-0.75)
    rows = []
    for i in range(INTER_TAB_SIZE):
        x = np.float32(i) * np.float32(1.0 / INTER_TAB_SIZE)
        x1 = x + one
        c0 = ((a * x1 - np.float32(5) * a) * x1 + np.float32(8) * a) * x1 - np.float32(4) * a
        c1 = ((a + np.float32(2)) * x - (a + np.float32(3))) * x * x + one
        omx = one - x
        c2 = ((a + np.float32(2)) * omx - (a + np.float32(3))) * omx * omx + one
        c3 = one - c0 - c1 - c2
        rows.append([c0, c1, c2, c3])
    return torch.tensor(np.array(rows, dtype=np.float32), device=device)


_TABLES: dict = {}


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, C, H*W) sampled at index (N, H, W) -> (N, C, H, W)."""
    n, c, hw = flat.shape
    idx = index.reshape(n, 1, hw).expand(n, c, hw)
    return torch.gather(flat, 2, idx).reshape(n, c, *index.shape[1:])


def _coordinates(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x + u1 and y + u2 in float (buildFlowMap / warpBackward's wx, wy), kept finite-sized."""
    h, w = u1.shape[-2:]
    gx = torch.arange(w, device=u1.device, dtype=torch.float32)
    gy = torch.arange(h, device=u1.device, dtype=torch.float32)[:, None]
    limit = float(1 << 20)  # far outside any image; keeps the integer conversions defined
    return (gx + u1).clamp(-limit, limit), (gy + u2).clamp(-limit, limit)


def warp_remap_cubic(stack: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """cv::remap(stack, x + u1, y + u2, INTER_CUBIC, BORDER_CONSTANT 0) of float images.

    stack (N, C, H, W), flow (N, H, W). Coordinates are rounded to 1/32 px (`cvRound(map * 32)`,
    half to even), the weights come from the float table (`wy[i] * wx[j]`). A 4x4 block inside
    the image sums row by row (`((r0 + r1) + r2) + r3`, imgproc remapBicubic); a block that
    touches the border adds its inside taps one by one and reads 0 outside.
    """
    n, c, h, w = stack.shape
    key = ("cubic", stack.device)
    if key not in _TABLES:
        _TABLES[key] = _cubic_table(stack.device)
    table = _TABLES[key]
    mx, my = _coordinates(u1, u2)
    mx = (mx * INTER_TAB_SIZE).round().to(torch.int32)
    my = (my * INTER_TAB_SIZE).round().to(torch.int32)
    sx0, sy0 = (mx >> 5) - 1, (my >> 5) - 1  # first of the 4 taps (remapBicubic: sx = X - 1)
    wx = table[(mx & (INTER_TAB_SIZE - 1)).long()]  # (N, H, W, 4)
    wy = table[(my & (INTER_TAB_SIZE - 1)).long()]
    cols = [(sx0 + k) for k in range(4)]
    rows = [(sy0 + k) for k in range(4)]
    col_ok = [(x >= 0) & (x < w) for x in cols]
    row_ok = [(y >= 0) & (y < h) for y in rows]
    cols = [x.clamp(0, w - 1).long() for x in cols]
    rows = [y.clamp(0, h - 1).long() * w for y in rows]
    flat = stack.reshape(n, c, h * w)
    inside = ((sx0 >= 0) & (sx0 <= w - 4) & (sy0 >= 0) & (sy0 <= h - 4)).unsqueeze(1)
    total = border = None
    for i in range(4):
        row_sum = None
        for j in range(4):
            weight = (wy[..., i] * wx[..., j]).unsqueeze(1)
            term = _gather(flat, rows[i] + cols[j]) * weight
            row_sum = term if row_sum is None else row_sum + term
            masked = torch.where((row_ok[i] & col_ok[j]).unsqueeze(1), term, 0.0)
            border = masked if border is None else border + masked
        total = row_sum if total is None else total + row_sum
    return torch.where(inside, total, border)


def _gpu_bicubic_coeff(d: torch.Tensor) -> torch.Tensor:
    """tvl1flow.cu bicubicCoeff: Keys a = -0.5 on |d|, in float, 0 from |d| = 2."""
    x = d.abs()
    near = x * x * (1.5 * x - 2.5) + 1.0
    far = x * (x * (-0.5 * x + 2.5) - 4.0) + 2.0
    return torch.where(x <= 1.0, near, torch.where(x < 2.0, far, 0.0))


def warp_gpu_bicubic(stack: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """tvl1flow.cu warpBackward: normalised a = -0.5 bicubic over clamp-to-edge textures.

    For each pixel, taps at integer (cx, cy) with |wx - cx| < 2 and |wy - cy| < 2 (the kernel
    loops ceil(w - 2) .. floor(w + 2); the extra taps weigh 0), weight
    `coeff(wx - cx) * coeff(wy - cy)`, reads clamped to the image, sums in loop order (cy outer),
    then `sum * (1 / wsum)`.
    """
    n, c, h, w = stack.shape
    wx, wy = _coordinates(u1, u2)
    fx, fy = torch.floor(wx), torch.floor(wy)
    flat = stack.reshape(n, c, h * w)
    cx = [fx + (k - 1) for k in range(4)]
    cy = [fy + (k - 1) for k in range(4)]
    kx = [_gpu_bicubic_coeff(wx - x) for x in cx]
    ky = [_gpu_bicubic_coeff(wy - y) for y in cy]
    cols = [x.clamp(0, w - 1).long() for x in cx]
    rows = [y.clamp(0, h - 1).long() * w for y in cy]
    total = wsum = None
    for i in range(4):
        for j in range(4):
            weight = kx[j] * ky[i]
            term = weight.unsqueeze(1) * _gather(flat, rows[i] + cols[j])
            total = term if total is None else total + term
            wsum = weight if wsum is None else wsum + weight
    return total * (1.0 / wsum).unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Stopping rules


class StopRule:
    """Per-pair stopping test of one warp's inner loops (host side; pairs indexed 0..N-1).

    "every_iteration" (tvl1flow.cpp procOneScale): a loop runs on while the error of its last
    iteration exceeds epsilon^2 * area, a float threshold. "odd_iterations" (gpu tvl1flow.cpp):
    the error is summed only on odd n and only while `prevError < scaledEpsilon` (prevError starts
    at 0); every other iteration sets error = DBL_MAX and lowers prevError by scaledEpsilon, a
    double threshold. Both stop after `iterations`.
    """

    def __init__(self, kind: str, n_pairs: int, epsilon: float, area: int,
                 iterations: int) -> None:
        self.kind = kind
        self.iterations = iterations
        self.measure_enabled = epsilon > 0
        scaled = epsilon * epsilon * area
        self.threshold = float(np.float32(scaled)) if kind == "every_iteration" else scaled
        self.prev_error = np.zeros(n_pairs, dtype=np.float64)

    def measure(self, n: int, pairs: np.ndarray) -> np.ndarray:
        """Which of `pairs` sum their error at iteration n (0-based)."""
        if self.kind == "every_iteration":
            return np.ones(len(pairs), dtype=bool)
        if not (self.measure_enabled and n & 1):
            return np.zeros(len(pairs), dtype=bool)
        return self.prev_error[pairs] < self.threshold

    def stops(self, n: int, pairs: np.ndarray, measured: np.ndarray,
              errors: np.ndarray) -> np.ndarray:
        """After iteration n: which of `pairs` stop (error <= threshold, or out of iterations)."""
        if self.kind == "every_iteration":
            error = errors
        else:
            error = np.where(measured, errors, DBL_MAX)
            self.prev_error[pairs] = np.where(measured, errors,
                                              self.prev_error[pairs] - self.threshold)
        return ~(error > self.threshold) | (n + 1 >= self.iterations)


def _tree_sum(x: torch.Tensor) -> torch.Tensor:
    """Per-row float sum (N, L) -> (N,) by halving: the same order on any device and batch."""
    length = x.shape[1]
    width = 1 << max(0, (length - 1).bit_length())
    if width != length:
        x = F.pad(x, (0, width - length))
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        x = x[:, :half] + x[:, half:]
    return x[:, 0]


def _error_sums(change: torch.Tensor, arithmetic: str) -> np.ndarray:
    """Per pair, the sum over pixels of the float change d1^2 + d2^2 (N, H, W), to the host.

    "cpu" sums in double (the 2.4 CPU code adds to a float left to right; the double sum is
    within that rounding and the same for any batch), "gpu" in float by a fixed halving tree
    (gpu::sum reduces in float, in parallel).
    """
    term = change.reshape(change.shape[0], -1)
    if arithmetic == "cpu":
        return term.double().sum(dim=1).cpu().numpy()
    return _tree_sum(term).double().cpu().numpy()


# --------------------------------------------------------------------------------------------
# The solver


def _inner_step(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, lt_grad, neg_lt_grad,
                l_t: float, theta: float, taut: float, rho_c, double_hypot: bool,
                want_change: bool = True):
    """One inner iteration of both 2.4 sources, on tensors only (so torch.compile can fuse it).

    estimateV (thresholding), divergence of p, estimateU, forward gradient of u, dual update.
    Returns the new (u1, u2, p11, p12, p21, p22) and the per-pixel change d1^2 + d2^2 that both
    sources sum for the stopping test (None unless `want_change`).
    """
    rho = rho_c + (I1wx * u1 + I1wy * u2)
    # thresholding operator TH: v = u + c * grad(I1w), c chosen per pixel as estimateV does
    coeff = torch.where(rho < neg_lt_grad, l_t,
                        torch.where(rho > lt_grad, -l_t,
                                    torch.where(grad > FLT_EPSILON, -rho / grad, 0.0)))
    v1 = u1 + coeff * I1wx
    v2 = u2 + coeff * I1wy
    new1 = v1 + theta * divergence(p11, p12)
    new2 = v2 + theta * divergence(p21, p22)
    change = None
    if want_change:
        d1, d2 = new1 - u1, new2 - u2
        change = d1 * d1 + d2 * d2
    u1x, u1y = forward_gradient(new1)
    u2x, u2y = forward_gradient(new2)
    if double_hypot:  # tvl1flow.cpp: static_cast<float>(hypot(double, double))
        g1 = torch.hypot(u1x.double(), u1y.double()).float()
        g2 = torch.hypot(u2x.double(), u2y.double()).float()
    else:  # tvl1flow.cu: hypotf
        g1 = torch.hypot(u1x, u1y)
        g2 = torch.hypot(u2x, u2y)
    ng1 = 1.0 + taut * g1
    ng2 = 1.0 + taut * g2
    return (new1, new2, (p11 + taut * u1x) / ng1, (p12 + taut * u1y) / ng1,
            (p21 + taut * u2x) / ng2, (p22 + taut * u2y) / ng2, change)


_COMPILED: dict = {}


def _step_function(compile_step: bool):
    """_inner_step, or its torch.compile'd twin (one per process, dynamic shapes).

    If compiling fails (no C++ compiler, no Triton), the eager step is used from then on, with
    one warning: the numbers are the same either way.
    """
    if not compile_step or _COMPILED.get("failed"):
        return _inner_step
    if "step" not in _COMPILED:
        compiled = torch.compile(_inner_step, dynamic=True)

        def step(*args):
            if _COMPILED.get("failed"):
                return _inner_step(*args)
            try:
                return compiled(*args)
            except torch.OutOfMemoryError:
                raise
            except Exception as err:  # noqa: BLE001 -- any compiler failure: fall back
                log.warning("torch.compile of the TV-L1 iteration failed (%s: %s); running "
                            "eager", type(err).__name__, str(err).splitlines()[0][:200])
                _COMPILED["failed"] = True
                return _inner_step(*args)

        _COMPILED["step"] = step
    return _COMPILED["step"]


STATE = ("u1", "u2", "p11", "p12", "p21", "p22")  # what an inner iteration carries


def _solve_level(I0: torch.Tensor, I1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor,
                 params: TVL1Params, sem: Semantics,
                 compile_step: bool = False) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """procOneScale for a batch: `warps` warps, each with an inner loop per pair.

    The duals p are zeroed once per level, not per warp (both sources). A pair whose loop stops
    leaves the working batch; its state is written back at once. With `compile_step` the working
    batch never shrinks below two rows (a finished row rides along, unwritten), because compiled
    graphs specialise on a batch of one. Returns the refined (u1, u2) and the inner iteration
    counts (N, warps).
    """
    n, h, w = I0.shape
    I1x, I1y = centered_gradient(I1)
    stack = torch.stack([I1, I1x, I1y], dim=1)
    zeros = torch.zeros_like(I0)
    state = {"u1": u1.clone(), "u2": u2.clone(), "p11": zeros, "p12": zeros.clone(),
             "p21": zeros.clone(), "p22": zeros.clone()}
    # l_t, taut and theta are floats in both sources: static_cast<float>(lambda * theta) etc.
    l_t = float(np.float32(params.lambda_ * params.theta))
    taut = float(np.float32(params.tau / params.theta))
    theta = float(np.float32(params.theta))
    counts = np.zeros((n, params.warps), dtype=np.int32)
    warp = warp_remap_cubic if sem.warp == "remap_cubic" else warp_gpu_bicubic
    step = _step_function(compile_step)
    double_hypot = sem.arithmetic == "cpu"
    for k in range(params.warps):
        warped = warp(stack, state["u1"], state["u2"])
        # contiguous planes: a compiled step then always sees the same strides
        I1w, I1wx, I1wy = (warped[:, c].contiguous() for c in range(3))
        grad = I1wx * I1wx + I1wy * I1wy
        rho_c = ((I1w - I1wx * state["u1"]) - I1wy * state["u2"]) - I0
        lt_grad = l_t * grad
        fixed = {"I1wx": I1wx, "I1wy": I1wy, "grad": grad, "lt_grad": lt_grad,
                 "neg_lt_grad": -lt_grad, "rho_c": rho_c}
        work = dict(state)
        rows = np.arange(n)  # the pair of each working row
        live = np.ones(n, dtype=bool)  # working rows whose pair still iterates
        rule = StopRule(sem.stop, n, params.epsilon, h * w, params.iterations)
        it = 0
        while live.any():
            measured = rule.measure(it, rows[live])
            # compiled: one graph that always returns the change (fused, nearly free)
            out = step(*(work[name] for name in STATE), fixed["I1wx"], fixed["I1wy"],
                       fixed["grad"], fixed["lt_grad"], fixed["neg_lt_grad"], l_t, theta, taut,
                       fixed["rho_c"], double_hypot, compile_step or bool(measured.any()))
            work = dict(zip(STATE, out[:6]))
            errors = (_error_sums(out[6], sem.arithmetic)[live] if measured.any()
                      else np.zeros(int(live.sum())))
            done = np.zeros(len(rows), dtype=bool)
            done[live] = rule.stops(it, rows[live], measured, errors)
            it += 1
            if not done.any():
                continue
            counts[rows[done], k] = it
            src = torch.from_numpy(np.flatnonzero(done)).to(I0.device)
            dst = torch.from_numpy(rows[done]).to(I0.device)
            for name in STATE:
                state[name][dst] = work[name][src]
            live &= ~done
            if not live.any() or (compile_step and live.sum() == 1 and len(rows) > 1):
                continue  # done, or keep two rows: the finished one rides along, unwritten
            keep = torch.from_numpy(np.flatnonzero(live)).to(I0.device)
            work = {name: t[keep] for name, t in work.items()}
            fixed = {name: t[keep] for name, t in fixed.items()}
            rows, live = rows[live], live[live]
    return state["u1"], state["u2"], counts


def _as_batch(frames, device: torch.device) -> torch.Tensor:
    """uint8 or float frames (N, H, W) as float32 0..255 on `device` (convertTo, scale 1)."""
    if not isinstance(frames, torch.Tensor):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    t = frames
    if t.dtype not in (torch.uint8, torch.float32):
        raise TypeError(f"TV-L1 frames must be uint8 (or float32 0..255), got {t.dtype}")
    return t.to(device=device, dtype=torch.float32)


def tvl1_flow_tensor(prev: torch.Tensor, nxt: torch.Tensor,
                     semantics: str | Semantics = "gpu24",
                     params: TVL1Params | None = None,
                     compile: bool = False) -> tuple[torch.Tensor, TVL1Stats]:
    """Flow prev -> nxt of N pairs of float32 frames (N, H, W) on their device.

    Returns the flow (N, H, W, 2), x then y in pixels (`prev(p) ~ nxt(p + flow(p))`), and the
    iteration counts. The pyramid, solver and upsampling follow tvl1flow.cpp calc(). `compile`
    runs the inner iteration through torch.compile (fused kernels; the first call compiles).
    """
    params = params or TVL1Params()
    sem = get_semantics(semantics)
    if prev.shape != nxt.shape or prev.dim() != 3:
        raise ValueError(f"TV-L1 needs two (N, H, W) batches of one shape, got "
                         f"{tuple(prev.shape)} and {tuple(nxt.shape)}")
    if min(prev.shape[-2:]) < 3:
        raise ValueError(f"TV-L1 frames must be at least 3x3 pixels, got {tuple(prev.shape[-2:])}")
    with torch.no_grad():
        I0s = build_pyramid(prev, params.nscales)
        I1s = build_pyramid(nxt, params.nscales)
        levels = len(I0s)
        n = prev.shape[0]
        u1 = torch.zeros_like(I0s[-1])
        u2 = torch.zeros_like(I0s[-1])
        iterations = np.zeros((n, levels, params.warps), dtype=np.int32)
        upsample = (upsample_pixel_centres if sem.upsample == "pixel_centres"
                    else upsample_gpu_corners)
        for i, s in enumerate(range(levels - 1, -1, -1)):
            u1, u2, iterations[:, i] = _solve_level(I0s[s], I1s[s], u1, u2, params, sem,
                                                    compile)
            if s == 0:
                break
            size = tuple(I0s[s - 1].shape[-2:])
            u1 = upsample(u1, size) * 2.0
            u2 = upsample(u2, size) * 2.0
        flow = torch.stack([u1, u2], dim=-1)
    sizes = [tuple(t.shape[-2:]) for t in reversed(I0s)]
    return flow, TVL1Stats(iterations, sizes)


def tvl1_flow(prev: np.ndarray, nxt: np.ndarray, *, semantics: str | Semantics = "gpu24",
              device: str | torch.device = "cpu", params: TVL1Params | None = None,
              compile: bool = False, return_stats: bool = False):
    """OpenCV 2.4 Dual TV-L1 flow of grey frames: (N, H, W) -> (N, H, W, 2), (H, W) -> (H, W, 2).

    `prev`, `nxt`: uint8 numpy arrays. float32 result, x then y in pixels. `semantics`: "gpu24"
    (dense_flow's GPU class, the default) or "cpu24" (the 2.4 CPU code). `device`: where to
    compute ("cpu", "cuda", "cuda:1"). `params`: TVL1Params, dense_flow's by default.
    `compile`: fuse the inner iteration with torch.compile (faster on long runs; the first call
    in a process compiles for ~30 s). With `return_stats`, also the TVL1Stats (iterations per
    pair, level and warp).
    """
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    if prev.shape != nxt.shape or prev.ndim not in (2, 3):
        raise ValueError(f"tvl1_flow: prev and nxt must both be (H, W) or (N, H, W), got "
                         f"{prev.shape} and {nxt.shape}")
    single = prev.ndim == 2
    if single:
        prev, nxt = prev[None], nxt[None]
    dev = torch.device(device)
    flow, stats = tvl1_flow_tensor(_as_batch(prev, dev), _as_batch(nxt, dev), semantics, params,
                                   compile)
    out = flow.cpu().numpy()
    if single:
        out = out[0]
    return (out, stats) if return_stats else out
