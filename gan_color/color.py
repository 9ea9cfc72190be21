"""Colour science for gan-color: the colour constants, batched differentiable sRGB <-> CIE Lab in torch, gamut
mapping, the pix2pix normalization (L/50 - 1, ab/110), uint8 helpers and colourfulness. The ab grid: gan_color.ab_grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gan_color.cpu_pointwise import in_pieces, power

# pix2pix colorization normalization: L/50 - 1 and ab/110, so both land in about [-1, 1] (a tanh output range).
L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0

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


def as_float(x: Tensor) -> Tensor:
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


def _piecewise(x: Tensor, knee: float, above: Callable[[Tensor], Tensor], slope: float) -> Tensor:
    """`above(x)` for x > knee, else the line through (knee, above(knee)) with `slope` (each of sRGB's and CIE's
    two-part curves is continuous at its knee), computed as above(max(x, knee)) + slope * (min(x, knee) - knee):
    no masks or `where`, and each branch only ever sees arguments on its own side of the knee."""
    return above(x.clamp(min=knee)).add_(x.clamp(max=knee), alpha=slope).sub_(slope * knee)


def _srgb_decode(encoded: Tensor) -> Tensor:  # IEC 61966-2-1
    return _piecewise(
        encoded, _SRGB_ENCODED_KNEE, lambda x: power(x.add(0.055).mul_(1.0 / 1.055), 2.4), 1.0 / 12.92
    )


def _srgb_encode(linear: Tensor) -> Tensor:
    return _piecewise(
        linear, _SRGB_LINEAR_KNEE, lambda x: power(x, 1.0 / 2.4).mul_(1.055).sub_(0.055), 12.92
    )


def _cie_f(t: Tensor) -> Tensor:  # CIE 1976: the cube root, and the line tangent to it at epsilon below
    return _piecewise(t, _EPSILON, lambda x: power(x, 1.0 / 3.0), _KAPPA / 116.0)


def _cie_f_inverse(f: Tensor) -> Tensor:
    return _piecewise(f, _DELTA, lambda x: x.pow(3), 3.0 * _DELTA**2)


def _pointwise(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a per-pixel `fn` on [N,3,P] views to x [..., 3, H, W] (on CPU in cache-sized pieces)."""
    return in_pieces(fn, x.reshape(-1, 3, x.shape[-2] * x.shape[-1])).reshape(x.shape)


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
    return _pointwise(_rgb_to_lab, as_float(rgb))


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

    def lightness(piece: Tensor) -> Tensor:
        piece = piece.float().div_(255.0) if piece.dtype == torch.uint8 else as_float(piece)
        linear = _srgb_decode(piece)
        c0, c1, c2 = linear.unbind(1) if channels == 3 else (linear[:, 0],) * 3
        r0, r1, r2 = _XYZN_FROM_RGB[1]
        y = c0.mul(r0).add_(c1, alpha=r1).add_(c2, alpha=r2)  # the Y row of `_mix`, same operations
        return _cie_f(y[:, None]).mul_(116.0).sub_(16.0)

    out = in_pieces(lightness, rgb.reshape(-1, channels, rgb.shape[-2] * rgb.shape[-1]))
    return out.reshape(*rgb.shape[:-3], 1, *rgb.shape[-2:])


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab ([B,3,H,W] or [3,H,W]) to sRGB; clipped to [0, 1] when `clip` (as skimage.color.lab2rgb always does).

    Like skimage, f(Z) is clamped at 0 before inversion (very negative b would otherwise give an absurd Z).
    Out-of-gamut colours give values outside [0, 1] when clip=False. Differentiable, float32 or float64.
    """
    _check_channels(lab, 3, "lab")
    rgb = _pointwise(_lab_to_rgb, as_float(lab))
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
    l_px = as_float(lightness[where[0], 0, where[1], where[2]])[None]
    ab_px = as_float(ab[where[0], :, where[1], where[2]]).T.contiguous()

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
    lab = torch.cat([denormalize_l(as_float(gray_l)), denormalize_ab(as_float(ab))], dim=-3)
    return lab_to_rgb(lab, clip=True)


def gray_l_to_srgb(gray_l: Tensor) -> Tensor:
    """Normalized L [..., 1, H, W] -> sRGB in [0, 1] of the neutral gray of that lightness (R = G = B, a = b = 0):
    what an ImageNet network sees when shown the black-and-white photo. Plain torch ops: compiles, any device."""
    f = (denormalize_l(as_float(gray_l)) + 16.0) / 116.0
    linear = torch.where(f > _DELTA, f.pow(3), (3.0 * _DELTA**2) * (f - 4.0 / 29.0))  # Y of D65 white = 1
    encoded = 1.055 * linear.clamp(min=_SRGB_LINEAR_KNEE).pow(1.0 / 2.4) - 0.055
    return torch.where(linear > _SRGB_LINEAR_KNEE, encoded, 12.92 * linear).clamp(0, 1)


def colorfulness(rgb: Tensor) -> Tensor:
    """Hasler & Suesstrunk (2003) colourfulness M per image of rgb [B,3,H,W] in [0, 1], on the 0-255 scale.

    rg = R - G, yb = (R + G) / 2 - B; M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)
    (population std over pixels). 0 for gray images; about 33 is "moderately colourful" in the paper's scale.
    """
    _check_channels(rgb, 3, "rgb")
    rgb = as_float(rgb) * 255.0
    red, green, blue = rgb.flatten(-2).unbind(-2)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = torch.sqrt(rg.var(dim=-1, correction=0) + yb.var(dim=-1, correction=0))
    offset = torch.sqrt(rg.mean(dim=-1).square() + yb.mean(dim=-1).square())
    return spread + 0.3 * offset
