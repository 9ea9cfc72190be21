"""Adversarial losses (pix2pix `GANLoss`): LSGAN (MSE against 1/0) and vanilla (BCE with logits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_color.registry import LOSSES


class GANLoss(nn.Module):
    """Compares a discriminator's patch map with an all-real (1) or all-fake (0) target of the same shape."""

    def __init__(self, criterion) -> None:
        super().__init__()
        self.criterion = criterion

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        prediction = prediction.float()  # the loss in fp32 even under autocast
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return self.criterion(prediction, target)


@LOSSES.register("lsgan")
def lsgan() -> GANLoss:
    """Least-squares GAN (Mao et al. 2017), the pix2pix/CycleGAN default: MSE of D's raw output against 1 / 0."""
    return GANLoss(F.mse_loss)


@LOSSES.register("vanilla")
def vanilla() -> GANLoss:
    """The original GAN objective in its numerically stable form: BCE on logits."""
    return GANLoss(F.binary_cross_entropy_with_logits)
