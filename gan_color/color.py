"""Colour science for gan-color: batched, differentiable sRGB <-> CIE Lab in torch, the pix2pix normalization,
and the ab quantization, soft encoding, class rebalancing and annealed-mean decoding of Zhang et al. (ECCV 2016).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# pix2pix colorization normalization: L/50 - 1 and ab/110, so both land in about [-1, 1] (a tanh output range).
L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0
AB_BIN_SIZE = 10

# Same sRGB -> XYZ matrix and D65 (2 degree) white as scikit-image, so the two agree to float precision.
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
# Row i divided by white_i yields XYZ / white directly; the inverse multiplies by the white back.
_XYZN_FROM_RGB = (_XYZ_FROM_RGB / _D65_WHITE[:, None]).tolist()
_RGB_FROM_XYZN = (np.linalg.inv(_XYZ_FROM_RGB) * _D65_WHITE[None, :]).tolist()

# CIE 1976 constants: f(t) = t^(1/3) above epsilon, (kappa t + 16) / 116 below; its inverse switches at 6/29.
_EPSILON = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0
_DELTA = 6.0 / 29.0
# IEC 61966-2-1 sRGB transfer function thresholds (encoded and linear side).
_SRGB_ENCODED_KNEE = 0.04045
_SRGB_LINEAR_KNEE = 0.0031308


def _as_float(x: Tensor) -> Tensor:
    """At least float32 (half/bfloat16 lack the precision for Lab); float64 stays float64."""
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_channels(x: Tensor, channels: int, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != channels:
        raise ValueError(f"{name} must be [B,{channels},H,W] or [{channels},H,W], got shape {tuple(x.shape)}")


def _mix(matrix: list[list[float]], x: Tensor) -> Tensor:
    """3x3 matrix times the channel dim (1) of [N,3,P], with python scalars: exact in float32 whatever the TF32 /
    matmul-precision settings, immune to autocast, and no device copies."""
    c0, c1, c2 = x.unbind(1)
    return torch.stack([c0.mul(r0).add_(c1, alpha=r1).add_(c2, alpha=r2) for r0, r1, r2 in matrix], dim=1)


class _Power(torch.autograd.Function):
    """base ** exponent for base > 0. On the CPU the forward is numpy's SIMD power/cbrt, 2-6x faster than torch's
    (measured: docs/color.md); elsewhere it is torch.pow. The backward is the analytic one, in torch."""

    @staticmethod
    def forward(ctx, base: Tensor, exponent: float) -> Tensor:
        if base.device.type != "cpu":
            power = base.pow(exponent)
        else:
            array = base.detach().numpy()
            power = torch.from_numpy(np.cbrt(array) if exponent == 1.0 / 3.0 else np.power(array, exponent))
        ctx.save_for_backward(base)  # not the power: callers continue in place on it
        ctx.exponent = exponent
        return power

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (base,) = ctx.saved_tensors
        return grad * ctx.exponent * base.pow(ctx.exponent - 1.0), None


def _piecewise(x: Tensor, knee: float, above: Callable[[Tensor], Tensor], slope: float) -> Tensor:
    """`above(x)` for x > knee, else the line through (knee, above(knee)) with `slope` (each of sRGB's and CIE's
    two-part curves is continuous at its knee), computed as above(max(x, knee)) + slope * (min(x, knee) - knee):
    no masks or `where`, and each branch only ever sees arguments on its own side of the knee."""
    return above(x.clamp(min=knee)).add_(x.clamp(max=knee), alpha=slope).sub_(slope * knee)


def _srgb_decode(encoded: Tensor) -> Tensor:  # IEC 61966-2-1
    return _piecewise(
        encoded, _SRGB_ENCODED_KNEE, lambda x: _Power.apply(x.add(0.055).mul_(1.0 / 1.055), 2.4), 1.0 / 12.92
    )


def _srgb_encode(linear: Tensor) -> Tensor:
    return _piecewise(
        linear, _SRGB_LINEAR_KNEE, lambda x: _Power.apply(x, 1.0 / 2.4).mul_(1.055).sub_(0.055), 12.92
    )


def _cie_f(t: Tensor) -> Tensor:  # CIE 1976: the cube root, and the line tangent to it at epsilon below
    return _piecewise(t, _EPSILON, lambda x: _Power.apply(x, 1.0 / 3.0), _KAPPA / 116.0)


def _cie_f_inverse(f: Tensor) -> Tensor:
    return _piecewise(f, _DELTA, lambda x: x.pow(3), 3.0 * _DELTA**2)


# Pixels per piece in the pointwise conversions on CPU: big enough to amortise the per-op dispatch, small enough
# that the temporaries stay in cache instead of each faulting in fresh pages (the fastest size, 8k-1M, measured).
_PIXELS_PER_PIECE = 1 << 15


def _pointwise(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a per-pixel `fn` on [N,3,P] views to x [..., 3, H, W]; on CPU in cache-sized pieces."""
    flat = x.reshape(-1, 3, x.shape[-2] * x.shape[-1])
    if x.device.type != "cpu":  # accelerators want few, large kernels
        return fn(flat).reshape(x.shape)
    piece = max(1, _PIXELS_PER_PIECE // flat.shape[0])
    return torch.cat([fn(p) for p in flat.split(piece, dim=2)], dim=2).reshape(x.shape)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] ([B,3,H,W] or [3,H,W], any device) to CIE Lab (L in [0, 100], a/b in CIE units), D65.

    uint8 input is read as 0-255, as skimage's `rgb2lab` does. Computes in float32 (float64 if given float64) and
    returns that dtype. Differentiable: every branch of the piecewise functions sees a clamped, safe argument, so
    gradients are finite everywhere, including at 0.
    """
    _check_channels(rgb, 3, "rgb")
    if rgb.dtype == torch.uint8:  # 8-bit images, scaled by 1/255 piece by piece (no whole-batch float copy)
        return _pointwise(lambda piece: _rgb_to_lab(piece.float().div_(255.0)), rgb)
    if not rgb.is_floating_point():
        raise TypeError(f"rgb must be floating point in [0, 1] or uint8 in [0, 255], got {rgb.dtype}")
    return _pointwise(_rgb_to_lab, _as_float(rgb))


def _rgb_to_lab(rgb: Tensor) -> Tensor:
    fx, fy, fz = _cie_f(_mix(_XYZN_FROM_RGB, _srgb_decode(rgb))).unbind(1)  # XYZ relative to the white point
    return torch.stack([fy.mul(116.0).sub_(16.0), fx.sub(fy).mul_(500.0), fy.sub(fz).mul_(200.0)], dim=1)


def rgb_to_lightness(rgb: Tensor) -> Tensor:
    """CIE L [..., 1, H, W] of sRGB [..., 3, H, W] (or of gray [..., 1, H, W], meaning R = G = B), float in [0, 1] or
    uint8: bit for bit `rgb_to_lab(rgb)[..., :1, :, :]` (of the gray expanded to 3 channels), at a fraction of the
    cost: only Y is mixed and only its cube root taken; a gray input is decoded once, not three times."""
    if rgb.dim() < 3 or rgb.shape[-3] not in (1, 3):
        raise ValueError(f"rgb must be [B,3,H,W], [3,H,W] or one channel of gray, got shape {tuple(rgb.shape)}")
    if rgb.dtype != torch.uint8 and not rgb.is_floating_point():
        raise TypeError(f"rgb must be floating point in [0, 1] or uint8 in [0, 255], got {rgb.dtype}")
    channels = rgb.shape[-3]
    flat = rgb.reshape(-1, channels, rgb.shape[-2] * rgb.shape[-1])

    def lightness(piece: Tensor) -> Tensor:
        piece = piece.float().div_(255.0) if piece.dtype == torch.uint8 else _as_float(piece)
        linear = _srgb_decode(piece)
        c0, c1, c2 = linear.unbind(1) if channels == 3 else (linear[:, 0],) * 3
        r0, r1, r2 = _XYZN_FROM_RGB[1]
        y = c0.mul(r0).add_(c1, alpha=r1).add_(c2, alpha=r2)  # the Y row of `_mix`, same operations
        return _cie_f(y[:, None]).mul_(116.0).sub_(16.0)

    if flat.device.type != "cpu":
        out = lightness(flat)
    else:  # cache-sized pieces, as `_pointwise`
        piece = max(1, _PIXELS_PER_PIECE // flat.shape[0])
        out = torch.cat([lightness(p) for p in flat.split(piece, dim=2)], dim=2)
    return out.reshape(*rgb.shape[:-3], 1, *rgb.shape[-2:])


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab ([B,3,H,W] or [3,H,W]) to sRGB; clipped to [0, 1] when `clip` (as skimage.color.lab2rgb always does).

    Like skimage, f(Z) is clamped at 0 before inversion (very negative b would otherwise give an absurd Z).
    Out-of-gamut colours give values outside [0, 1] when clip=False. Differentiable, float32 or float64.
    """
    _check_channels(lab, 3, "lab")
    rgb = _pointwise(_lab_to_rgb, _as_float(lab))
    return rgb.clamp(0.0, 1.0) if clip else rgb


def _lab_to_rgb(lab: Tensor) -> Tensor:
    return _srgb_encode(_lab_to_linear_rgb(lab))


def _lab_to_linear_rgb(lab: Tensor) -> Tensor:
    lightness, a, b = lab.unbind(1)
    fy = lightness.add(16.0).div_(116.0)
    f = torch.stack([fy.add(a, alpha=1.0 / 500.0), fy, fy.sub(b, alpha=1.0 / 200.0).clamp_(min=0.0)], dim=1)
    return _mix(_RGB_FROM_XYZN, _cie_f_inverse(f))


GAMUT_TOLERANCE = 1e-5  # sRGB values this far outside [0, 1] are float error, not out-of-gamut colours
GAMUT_STEPS = 8  # bisection steps on the chroma scale: the kept chroma is within 1/256 of the largest in gamut


def _outside(rgb: Tensor, low: float, high: float) -> Tensor:
    """[B,3,...] -> [B,...]: any channel below `low` or above `high` (channel by channel: faster than .any(1))."""
    c0, c1, c2 = rgb.unbind(1)
    return (c0 < low) | (c0 > high) | (c1 < low) | (c1 > high) | (c2 < low) | (c2 > high)


def lab_to_rgb_in_gamut(lightness: torch.Tensor, ab: torch.Tensor, steps: int = GAMUT_STEPS) -> torch.Tensor:
    """CIE L [B,1,H,W] + ab [B,2,H,W] -> sRGB in [0, 1] with L kept exactly: out-of-gamut pixels get their chroma
    scaled down (hue kept) until they fit, instead of clipping RGB, which would change their lightness."""
    rgb = lab_to_rgb(torch.cat([lightness, ab], 1), clip=False)
    outside = _outside(rgb, -GAMUT_TOLERANCE, 1 + GAMUT_TOLERANCE)  # [B, H, W]
    if not outside.any():
        return rgb.clamp_(0, 1)
    # The out-of-gamut pixels as rows, [1, N] of L and [2, N] of ab: each bisection step is a few whole-array
    # operations, with no per-step transposes or copies.
    where = outside.nonzero(as_tuple=True)
    l_px = _as_float(lightness[where[0], 0, where[1], where[2]])[None]
    ab_px = _as_float(ab[where[0], :, where[1], where[2]]).T.contiguous()

    def convert(scale: torch.Tensor, fn: Callable[[Tensor], Tensor]) -> torch.Tensor:  # -> [1, 3, N]
        return _pointwise(fn, torch.cat([l_px, ab_px * scale], 0)[None, :, :, None])[..., 0]

    # `_lab_to_linear_rgb` of (L, scale * ab), operation for operation, with the parts that depend on L only (f(Y)
    # and its inverse) computed once for the whole bisection.
    fy = l_px.add(16.0).div_(116.0)
    y_inverse = _cie_f_inverse(fy)

    def linear_rgb(scale: torch.Tensor) -> torch.Tensor:  # -> [1, 3, N]
        a, b = (ab_px * scale).unbind(0)
        x_inverse, z_inverse = _cie_f_inverse(
            torch.stack([fy.add(a, alpha=1.0 / 500.0), fy.sub(b, alpha=1.0 / 200.0).clamp_(min=0.0)]))
        return _mix(_RGB_FROM_XYZN, torch.stack([x_inverse, y_inverse, z_inverse], dim=1))

    # The sRGB encoding is monotonic, so the bisection tests linear RGB against the encoded bounds' preimages and
    # skips the encoding's power function; only the final scale is encoded.
    bounds = _srgb_decode(torch.tensor([-GAMUT_TOLERANCE, 1 + GAMUT_TOLERANCE], dtype=torch.float64)).tolist()
    low, high = torch.zeros_like(l_px), torch.ones_like(l_px)  # gray (scale 0) is always in gamut
    for _ in range(steps):
        mid = (low + high) / 2
        fits = _outside(linear_rgb(mid), *bounds).logical_not_().to(mid.dtype)
        # where(fits, mid, low) and where(fits, high, mid), exactly (lerp returns its ends for weights 0 and 1),
        # several times faster than torch.where on CPU
        low, high = torch.lerp(low, mid, fits), torch.lerp(mid, high, fits)
    rgb[where[0], :, where[1], where[2]] = convert(low, _lab_to_rgb)[0].T.to(rgb.dtype)
    return rgb.clamp_(0, 1)


def rgb_to_uint8(rgb: Tensor) -> Tensor:
    """sRGB float in [0, 1] (or already uint8) -> uint8 0-255, rounded to nearest, as an 8-bit image stores it."""
    if rgb.dtype == torch.uint8:
        return rgb
    return (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def rgb_to_uint8_array(rgb: Tensor) -> np.ndarray:
    """sRGB [3, H, W], float in [0, 1] or already uint8 (as dataset items are) -> a uint8 [H, W, 3] image array."""
    return rgb_to_uint8(rgb).cpu().permute(1, 2, 0).numpy()


def normalize_l(l: Tensor) -> Tensor:  # noqa: E741 - "l" is the Lab channel name
    """L in [0, 100] -> [-1, 1]."""
    return (l - L_CENTER) / L_SCALE


def denormalize_l(x: Tensor) -> Tensor:
    """[-1, 1] -> L in [0, 100]."""
    return x * L_SCALE + L_CENTER


def normalize_ab(ab: Tensor) -> Tensor:
    """ab in CIE units -> about [-1, 1] (the sRGB gamut spans a in [-86, 98], b in [-108, 95])."""
    return ab / AB_SCALE


def denormalize_ab(x: Tensor) -> Tensor:
    """[-1, 1] -> ab in CIE units."""
    return x * AB_SCALE


def rgb_to_model_inputs(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB [B,3,H,W] in [0, 1] -> (gray_l [B,1,H,W] in [-1, 1], real_ab [B,2,H,W] in about [-1, 1])."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])


def model_outputs_to_rgb(gray_l: Tensor, ab: Tensor) -> Tensor:
    """Normalized gray_l [B,1,H,W] and ab [B,2,H,W] -> sRGB [B,3,H,W] clipped to [0, 1]."""
    lab = torch.cat([denormalize_l(_as_float(gray_l)), denormalize_ab(_as_float(ab))], dim=-3)
    return lab_to_rgb(lab, clip=True)


def gray_l_to_srgb(gray_l: Tensor) -> Tensor:
    """Normalized L [..., 1, H, W] -> sRGB in [0, 1] of the neutral gray of that lightness (R = G = B, a = b = 0):
    what an ImageNet network sees when shown the black-and-white photo. Plain torch ops: compiles, any device."""
    f = (denormalize_l(_as_float(gray_l)) + 16.0) / 116.0
    linear = torch.where(f > _DELTA, f.pow(3), (3.0 * _DELTA**2) * (f - 4.0 / 29.0))  # Y of D65 white = 1
    encoded = 1.055 * linear.clamp(min=_SRGB_LINEAR_KNEE).pow(1.0 / 2.4) - 0.055
    return torch.where(linear > _SRGB_LINEAR_KNEE, encoded, 12.92 * linear).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016: ab quantization and its decoding.
# ---------------------------------------------------------------------------------------------------------------


def _cube_surface(face_samples: int = 256, edge_samples: int = 1 << 14) -> Iterator[Tensor]:
    """RGB points in [3, <=_PIXELS_PER_PIECE] pieces: a grid on each of the cube's 6 faces and, far denser, on its
    12 edges."""
    face = torch.linspace(0.0, 1.0, face_samples)
    face_grid = torch.cartesian_prod(face, face).T.contiguous()  # [2, n^2]: two free channels, one fixed
    edge = torch.linspace(0.0, 1.0, edge_samples)[None]  # [1, n]: one free channel, two fixed
    for free in [*face_grid.split(_PIXELS_PER_PIECE, dim=1), *edge.split(_PIXELS_PER_PIECE, dim=1)]:
        n_fixed = 3 - free.shape[0]
        for channels in itertools.combinations(range(3), n_fixed):
            for values in itertools.product((0.0, 1.0), repeat=n_fixed):
                fixed, planes = dict(zip(channels, values)), iter(free)
                constant = {c: torch.full_like(free[0], v) for c, v in fixed.items()}
                yield torch.stack([constant[c] if c in constant else next(planes) for c in range(3)])


@functools.lru_cache(maxsize=8)
def _gamut_bins(bin_size: int) -> Tensor:
    # Lab is a continuous bijection of the RGB cube, so the ab projection of the gamut solid equals that of the
    # cube's surface. Cells wholly inside the projection are hit by the face grid (samples 1-2 ab units apart); a
    # cell holding only a sliver contains part of the projection's outline, which runs along cube edges (the
    # R-Y-G-C-B-M hexagon), hence their dense sampling. Same cells as 4096^2 samples per face for bin sizes 5-20.
    reach = 128 // bin_size + 2  # sRGB has |a|, |b| < 110: cell indices lie within +-reach
    side = 2 * reach + 1
    hits = torch.zeros(side * side, dtype=torch.int64)
    for rgb in _cube_surface():  # piece by piece: small tensors stay in cache, ops stay single-threaded
        ab = rgb_to_lab(rgb[:, None])[1:, 0]
        # Cell of centre c*bin_size covers [c - 1/2, c + 1/2) * bin_size, i.e. nearest centre on the full grid.
        # Shifted positive, truncation is floor (torch.floor spawns threads even for tiny tensors).
        cells = (ab / bin_size + (reach + 0.5)).to(torch.int64)
        hits += torch.bincount(cells[0] * side + cells[1], minlength=side * side)
    keys = hits.nonzero().squeeze(1)  # ascending: sorted by a, then b
    return (torch.stack([keys // side, keys % side], dim=1) - reach).mul(bin_size).to(torch.float32)


def ab_bins(bin_size: int = AB_BIN_SIZE) -> Tensor:
    """Centres [Q,2] (a, b; CIE units, float32, CPU, sorted by a then b) of the in-gamut ab grid cells.

    Rule: the grid has centres at multiples of `bin_size` (as Zhang et al.'s pts_in_hull.npy); a cell is kept if
    any colour of the continuous sRGB cube [0, 1]^3 falls in it. With bin_size=10 this gives Q = 262: the 261 cells
    hit by the 2^24 8-bit colours plus (20, -80), reached only by a sliver (R <= 8, G ~ 117.4-118.6, B >= 253.8, on
    the 0-255 scale) that resized or float images can produce. Zhang et al. report Q = 313 from a looser in-gamut
    test: at least 51 of their cells hold no sRGB colour, so no target pixel could ever fall in them. Consumers
    take Q = len(ab_bins()). Computed once per bin_size (~0.15 s), then cached; the tensor returned is a copy.
    """
    if int(bin_size) != bin_size or bin_size < 1:
        raise ValueError(f"bin_size must be a positive integer, got {bin_size}")
    return _gamut_bins(int(bin_size)).clone()


def _flat_ab(ab: Tensor) -> Tensor:
    _check_channels(ab, 2, "ab")
    if ab.dim() != 4:
        raise ValueError(f"ab must be [B,2,H,W], got shape {tuple(ab.shape)}")
    return _as_float(ab).permute(0, 2, 3, 1).reshape(-1, 2)


# Pixels per chunk of the nearest-bin search: bounds its temporaries (at most ~65k x Q distances).
_CHUNK = 1 << 16
_CELL = 2.0  # side, in ab units, of the cells of the nearest-bin candidate table


@dataclasses.dataclass(frozen=True)
class _CandidateTable:
    """For each cell of a square grid over the bins' extent, every bin that can be among the k nearest of some point
    in the cell: those within d_k(c) + 2h of the cell centre c (h: half the cell diagonal). For p in the cell, each
    of its k nearest b has |b - p| <= d_k(p) <= d_k(c) + h, since d_k is 1-Lipschitz, so |b - c| <= d_k(c) + 2h."""

    origin: Tensor  # [2]: the grid's lower-left corner
    cells: int  # cells per side
    candidates: Tensor  # [cells^2, M] bin indices, padded with index Q
    padded_bins: Tensor  # [Q+1, 2]: the bins and a far-away pad bin


def _build_candidate_table(bins: Tensor, k: int, dtype: torch.dtype) -> _CandidateTable:
    """The table for `bins` [Q,2] (float64, CPU), its coordinates returned in `dtype`."""
    origin = bins.min(0).values - 2 * AB_BIN_SIZE
    cells = int(math.ceil(float((bins.max(0).values + 2 * AB_BIN_SIZE - origin).max()) / _CELL))
    centres = origin + _CELL * (torch.cartesian_prod(torch.arange(cells), torch.arange(cells)) + 0.5)
    distances = torch.cdist(centres.to(torch.float64), bins)  # [cells^2, Q]
    kth = distances.topk(min(k, len(bins)), dim=1, largest=False).values[:, -1:]
    candidate = distances <= kth + 2 * (_CELL * math.sqrt(0.5)) + 1e-6
    width = int(candidate.sum(1).max())
    order = torch.where(candidate, distances, math.inf).argsort(dim=1)[:, :width]
    table = torch.where(candidate.gather(1, order), order, len(bins))
    padded = torch.cat([bins, torch.full((1, 2), 1e6, dtype=torch.float64)])
    return _CandidateTable(origin.to(dtype), cells, table, padded.to(dtype))


# (id(bins), k, dtype) -> (weak reference to bins, bins' version, table): keyed by the very tensor object, checked
# alive and unmodified, so repeated calls with the same bins (every training step) reuse the table.
_TABLES: dict[tuple, tuple[weakref.ref, int, _CandidateTable]] = {}


def _candidate_table(bins: Tensor, k: int, dtype: torch.dtype) -> _CandidateTable:
    key = (id(bins), k, dtype)
    hit = _TABLES.get(key)
    if hit is not None and hit[0]() is bins and hit[1] == bins._version:
        return hit[2]
    if len(_TABLES) >= 64:
        _TABLES.clear()
    table = _build_candidate_table(bins.detach().to("cpu", torch.float64), k, dtype)
    _TABLES[key] = (weakref.ref(bins), bins._version, table)
    return table


def _nearest_among_all(points: Tensor, bins: Tensor, k: int) -> Tensor:
    # Direct differences, not cdist's |x|^2 - 2xy + |y|^2 expansion, which can pick a wrong bin near a tie.
    distances = torch.cdist(points, bins, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.topk(k, dim=1, largest=False).indices


def _nearest_bins(points: Tensor, bins: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Indices [N,k] of the k nearest bins (closest first) and their exact squared distances [N,k].

    On the CPU, through the candidate table: distances to a cell's ~7 candidates (at most ~12) instead of all Q,
    5-9x faster; points off the table (far outside the gamut) take all bins. Other devices take all bins, which
    costs them little and needs no host sync."""
    on_cpu = points.device.type == "cpu"
    table = _candidate_table(bins, k, points.dtype) if on_cpu else None
    bins = bins.to(device=points.device, dtype=points.dtype)
    indices = []
    for chunk in points.split(_CHUNK):
        if table is None:
            indices.append(_nearest_among_all(chunk, bins, k))
            continue
        cell = ((chunk - table.origin) / _CELL).floor().long()
        outside = ((cell < 0) | (cell >= table.cells)).any(1)
        cell = cell.clamp_(0, table.cells - 1)
        candidates = table.candidates[cell[:, 0] * table.cells + cell[:, 1]]  # [n, M]
        squared = (table.padded_bins[candidates] - chunk[:, None, :]).square().sum(-1)
        index = candidates.gather(1, squared.topk(k, dim=1, largest=False).indices)
        if outside.any():
            index[outside] = _nearest_among_all(chunk[outside], bins, k)
        indices.append(index)
    index = torch.cat(indices) if indices else points.new_zeros((0, k), dtype=torch.int64)
    return index, (points[:, None, :] - bins[index]).square().sum(-1)


def encode_ab_nearest(ab: Tensor, bins: Tensor) -> Tensor:
    """Index of the nearest bin for every pixel: ab [B,2,H,W] in CIE units -> LongTensor [B,H,W]."""
    batch, _, height, width = ab.shape
    index, _ = _nearest_bins(_flat_ab(ab), bins, k=1)
    return index.reshape(batch, height, width)


def soft_encode_ab(ab: Tensor, bins: Tensor, k: int = 5, sigma: float = 5.0) -> Tensor:
    """Zhang et al. soft encoding: Gaussian (sigma) weights on the k nearest bins, summing to 1 -> [B,Q,H,W]."""
    batch, _, height, width = ab.shape
    points = _flat_ab(ab)
    index, squared = _nearest_bins(points, bins, k=k)
    # Subtracting the nearest distance keeps exp() from underflowing to 0/0 far from every bin.
    weights = torch.exp(-(squared - squared[:, :1]) / (2.0 * sigma**2))
    weights = weights / weights.sum(dim=1, keepdim=True)
    encoded = points.new_zeros(points.shape[0], bins.shape[0]).scatter_(1, index, weights)
    return encoded.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def bin_counts(ab: Tensor, bins: Tensor) -> Tensor:
    """Histogram [Q] (int64) of nearest bins over all pixels of ab [B,2,H,W]; summed over a dataset, the prior."""
    index = encode_ab_nearest(ab, bins).flatten()
    return torch.bincount(index, minlength=bins.shape[0]).cpu()


def rebalance_weights(counts_or_prior: Tensor, bins: Tensor, lam: float = 0.5, sigma: float = 5.0) -> Tensor:
    """Zhang et al. eq. 4 class-rebalancing weights [Q] (float32, CPU) from bin counts or an empirical prior.

    p~ is the prior smoothed by a Gaussian of `sigma` over bin centres (each bin's mass spread over the bins, so p~
    still sums to 1); w = ((1 - lam) p~ + lam / Q)^-1, scaled so that E_{p~}[w] = sum_q p~_q w_q = 1.
    """
    prior = counts_or_prior.detach().to(torch.float64).cpu().flatten()
    centres = bins.detach().to(torch.float64).cpu()
    if prior.shape[0] != centres.shape[0]:
        raise ValueError(f"got {prior.shape[0]} counts for {centres.shape[0]} bins")
    if (prior < 0).any() or prior.sum() <= 0:
        raise ValueError("counts_or_prior must be non-negative with a positive sum")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    prior = prior / prior.sum()
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2.0 * sigma**2))  # [q, j]
    smoothed = kernel @ (prior / kernel.sum(dim=0))
    weights = 1.0 / ((1.0 - lam) * smoothed + lam / centres.shape[0])
    return (weights / (smoothed * weights).sum()).to(torch.float32)


def annealed_mean(logits: Tensor, bins: Tensor, temperature: float = 0.38) -> Tensor:
    """Zhang et al. eq. 5: ab [B,2,H,W] (CIE units) = mean of f_T(z) = exp(log z / T) / sum, z = softmax(logits).

    exp(log softmax(x) / T) is proportional to exp(x / T), so f_T(z) = softmax(logits / T): T = 1 gives the mean,
    T -> 0 the mode; the paper uses T = 0.38.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use decode_mode for T -> 0), got {temperature}")
    probabilities = torch.softmax(_as_float(logits) / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", probabilities, bins.to(probabilities))


def decode_mode(logits: Tensor, bins: Tensor) -> Tensor:
    """Centre of the most probable bin per pixel: logits [B,Q,H,W] -> ab [B,2,H,W] (CIE units)."""
    centres = bins.to(device=logits.device, dtype=torch.promote_types(logits.dtype, torch.float32))
    return F.embedding(logits.argmax(dim=1), centres).permute(0, 3, 1, 2)


def decode_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Mean of the predicted distribution (annealed mean at T = 1): logits [B,Q,H,W] -> ab [B,2,H,W]."""
    return annealed_mean(logits, bins, temperature=1.0)


def colorfulness(rgb: Tensor) -> Tensor:
    """Hasler & Suesstrunk (2003) colourfulness M per image of rgb [B,3,H,W] in [0, 1], on the 0-255 scale.

    rg = R - G, yb = (R + G) / 2 - B; M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)
    (population std over pixels). 0 for gray images; about 33 is "moderately colourful" in the paper's scale.
    """
    _check_channels(rgb, 3, "rgb")
    rgb = _as_float(rgb) * 255.0
    red, green, blue = rgb.flatten(-2).unbind(-2)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = torch.sqrt(rg.var(dim=-1, correction=0) + yb.var(dim=-1, correction=0))
    offset = torch.sqrt(rg.mean(dim=-1).square() + yb.mean(dim=-1).square())
    return spread + 0.3 * offset
