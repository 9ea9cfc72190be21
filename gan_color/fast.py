"""The fast training recipe (`train.recipe: fast`): the paper's networks, losses, optimizer and schedule, stepped the
way a GPU wants them (bf16 autocast, channels-last, torch.compile of G and D, fused Adam, cuDNN autotuning). It
wraps the objective's step and changes no maths; in fp32 it trains to the plain step's losses (tests/test_fast.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from gan_color.devices import training_device_type

RECIPES = ("plain", "fast")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def resolve(cfg: Any, device_type: str | None = None) -> Any:
    """The config a run actually trains with. On a CUDA GPU `fast` turns on bf16 autocast (fp16 when asked for
    explicitly; none on a GPU without bf16), channels-last and torch.compile. Elsewhere it keeps the configured
    precision, layout and compile: on CPUs bf16 and channels-last win on some and lose on others, and compile's
    warm-up takes minutes (docs/benchmarks.md), so there the recipe is the fused optimizer and the layout-friendly
    instance norm only."""
    if getattr(cfg.train, "recipe", "plain") != "fast" or (device_type or training_device_type()) != "cuda":
        return cfg
    precision = cfg.train.mixed_precision
    if precision == "no":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "no"
    train = dataclasses.replace(cfg.train, mixed_precision=precision, channels_last=True, compile=True)
    return dataclasses.replace(cfg, train=train)


def adam_options(recipe: str, parameters: list[torch.Tensor]) -> dict[str, Any]:
    """Adam's implementation (not its maths): `fast` uses the fused kernel (one launch for all parameters) where
    this torch has it for these tensors, else the multi-tensor (foreach) one; `plain` keeps torch's default."""
    if recipe != "fast":
        return {}
    devices = {p.device.type for p in parameters}
    fused_ok = all(p.is_floating_point() for p in parameters) and devices <= {"cuda", "cpu", "mps", "xpu"}
    return {"fused": True} if fused_ok else {"foreach": True}


def make_adam(parameters, *, recipe: str, **kwargs: Any) -> torch.optim.Adam:
    parameters = list(parameters)
    options = adam_options(recipe, parameters)
    try:
        return torch.optim.Adam(parameters, **kwargs, **options)
    except (RuntimeError, TypeError, ValueError):  # an older torch without fused Adam for this device
        return torch.optim.Adam(parameters, **kwargs, **({"foreach": True} if options else {}))


class InstanceNorm(nn.Module):
    """`nn.InstanceNorm2d(affine=False, track_running_stats=False)` as plain tensor ops: the same statistics (biased
    variance, eps inside the square root, computed in fp32 under autocast) but no reshape to one big batch-norm,
    so a channels-last input stays channels-last (the built-in layer copies it to NCHW and back every call)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        var, mean = torch.var_mean(x32, dim=(2, 3), keepdim=True, unbiased=False)
        return ((x32 - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def swap_instance_norms(module: nn.Module) -> int:
    """Replace every parameter- and buffer-free InstanceNorm2d in `module` by `InstanceNorm`, in place (state dicts
    are unchanged: these layers hold no state). Returns how many were replaced."""
    count = 0
    for name, child in module.named_children():
        if (isinstance(child, nn.InstanceNorm2d) and not child.affine and not child.track_running_stats):
            setattr(module, name, InstanceNorm(child.eps))
            count += 1
        else:
            count += swap_instance_norms(child)
    return count


def prepare_networks(networks: dict[str, nn.Module], recipe: str) -> dict[str, nn.Module]:
    if recipe == "fast":
        for network in networks.values():
            swap_instance_norms(network)
    return networks


def configure_backends(recipe: str, device_type: str) -> None:
    """cuDNN autotuning: training shapes are fixed, so the first steps' search pays for itself."""
    if recipe == "fast" and device_type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_network(network: nn.Module, mode: str = "default") -> nn.Module:
    return torch.compile(network, mode=None if mode == "default" else mode)


def begin_step(compile_mode: str) -> None:
    """With CUDA graphs (compile mode reduce-overhead) tell torch a new iteration starts, so the graphs' output
    buffers of the previous step may be reused."""
    if compile_mode == "reduce-overhead" and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        torch.compiler.cudagraph_mark_step_begin()
