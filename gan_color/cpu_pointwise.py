"""CPU fast path of the colour conversions: numpy's SIMD power/cbrt (2-5x faster than torch's CPU pow) and work in
cache-sized pieces, measured in docs/color.md. Accelerators get torch.pow and one pass over the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

# Pixels per piece on CPU: big enough to amortise the per-op dispatch, small enough that the temporaries stay in
# cache instead of each faulting in fresh pages (the fastest size, 8k-1M, measured).
PIXELS_PER_PIECE = 1 << 15


class _Power(torch.autograd.Function):
    """base ** exponent for base > 0. On the CPU the forward is numpy's SIMD power/cbrt, 2-5x faster than torch's
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


def power(base: Tensor, exponent: float) -> Tensor:
    """Differentiable base ** exponent for base > 0 (a python float exponent); numpy's SIMD forward on the CPU."""
    return _Power.apply(base, exponent)


def in_pieces(fn: Callable[[Tensor], Tensor], flat: Tensor) -> Tensor:
    """`fn` of per-pixel work on flat [N,C,P] -> [N,C',P]: on CPU over cache-sized pieces of the pixel dim, joined;
    elsewhere in one call (accelerators want few, large kernels)."""
    if flat.device.type != "cpu":
        return fn(flat)
    piece = max(1, PIXELS_PER_PIECE // flat.shape[0])
    return torch.cat([fn(p) for p in flat.split(piece, dim=2)], dim=2)
