"""Regression baselines: per-pixel L1 / L2 / p*L1 + (1-p)*MSE losses, and the `regression` objective that trains any
baseline network in Lab (L -> normalized ab, tanh) or RGB (gray -> sRGB, sigmoid; seed 001's first models)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_color.inference import model_input
from gan_color.models import colorizer_registry
from gan_color.objectives import Objective
from gan_color.registry import BASELINE_NETWORKS, LOSSES, OBJECTIVES

SPACES = ("lab", "rgb")
REGRESSION_LOSSES = ("l1", "l2", "l1_mse")


class L1MSELoss(nn.Module):
    """p * L1 + (1 - p) * MSE: L1's robustness to multimodal colours mixed with L2's smooth gradients near zero."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = p

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.p * F.l1_loss(prediction, target) + (1.0 - self.p) * F.mse_loss(prediction, target)


@LOSSES.register("l1")
def l1() -> nn.Module:
    return nn.L1Loss()


@LOSSES.register("l2")
def l2() -> nn.Module:
    return nn.MSELoss()


@LOSSES.register("l1_mse")
def l1_mse(*, p: float = 0.5) -> nn.Module:
    return L1MSELoss(p)


def expected_kwargs_conflicts(model_kwargs: dict[str, Any], expected: dict[str, Any], why: str) -> str | None:
    """A message naming the first model.kwargs entry that contradicts what the objective needs, else None."""
    for key, value in expected.items():
        if key in model_kwargs and model_kwargs[key] != value:
            return (f"model.kwargs.{key}={model_kwargs[key]!r} contradicts {why}, which needs {key}={value!r}; "
                    f"remove model.kwargs.{key} (the objective sets it)")
    return None


def unsupported_network(name: str, objective: str) -> str | None:
    """A message if network `name` cannot take the in/out channels and final activation the objective sets."""
    try:
        params = inspect.signature(colorizer_registry(name).get(name)).parameters
    except KeyError as error:
        return str(error).strip('"')
    missing = [k for k in ("in_channels", "out_channels", "final") if k not in params]
    if missing:
        return (f"objective {objective!r} needs a network that takes {missing}; {name!r} does not "
                f"(choose from {BASELINE_NETWORKS.names()})")
    return None


@OBJECTIVES.register("regression")
class RegressionObjective(Objective):
    """One network trained by a per-pixel loss against the ground truth's ab (Lab) or sRGB (RGB); no discriminator."""

    uses_discriminator = False

    def __init__(self, *, loss: str = "l1", p: float | None = None, space: str = "lab") -> None:
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {REGRESSION_LOSSES}, got {loss!r}")
        if p is not None and loss != "l1_mse":
            raise ValueError(f"p only applies to loss=l1_mse (got loss={loss!r}, p={p})")
        self.criterion = LOSSES.build(loss, **({"p": 0.5 if p is None else p} if loss == "l1_mse" else {}))
        self.loss_name, self.space = loss, space
        self.output = "ab" if space == "lab" else "rgb"
        self.in_channels = 1 if space == "lab" else 3

    def network_kwargs(self) -> dict[str, Any]:
        """What the colour space fixes: Lab = L in, tanh ab out; RGB = gray as sRGB in, sigmoid sRGB out."""
        if self.space == "lab":
            return {"in_channels": 1, "out_channels": 2, "final": "tanh"}
        return {"in_channels": 3, "out_channels": 3, "final": "sigmoid"}

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, **self.network_kwargs()}

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["real_ab"] if self.space == "lab" else batch["rgb"]

    def training_step(self, batch, networks, optimizers, accelerator):
        network, optimizer = networks["generator"], optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        with accelerator.autocast():
            prediction = network(model_input(batch["gray_l"], self.in_channels))
        prediction, target = prediction.float(), self.target(batch).float()  # losses in fp32 under autocast
        loss = self.criterion(prediction, target)
        accelerator.backward(loss)
        optimizer.step()
        with torch.no_grad():  # both components logged whatever is optimised, so runs compare on the same numbers
            l1_value, mse_value = F.l1_loss(prediction, target), F.mse_loss(prediction, target)
        return {"loss/total": loss.detach(), "loss/L1": l1_value, "loss/MSE": mse_value}

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        objective = cls(**cfg.objective.kwargs)
        why = f"objective regression with space={objective.space!r}"
        return (unsupported_network(cfg.model.name, "regression")
                or expected_kwargs_conflicts(cfg.model.kwargs, objective.network_kwargs(), why))
