"""Training objectives: one optimisation step of a colorizer. `pix2pix` is the GAN; baselines register their own.

The training loop (gan_color.train) is shared: it builds the networks an objective asks for, one Adam optimizer and
one pix2pix schedule per network, and calls `objective.training_step` once per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_color import ab_grid, ab_prior, color
from gan_color.losses import GANLoss
from gan_color.registry import LOSSES, OBJECTIVES


class Objective:
    """Base class of a training objective. A subclass sets the class attributes and implements `training_step`;
    every other method has a default that fits a plain generator. When the loop calls each:

    - `check_config(cfg)`: while the config is validated, before anything is built (a message = an error).
    - `model_kwargs(kwargs)`: when the colorizer is built (e.g. a classifier sets its output channels to its bins).
    - `prepare(...)`: once before the first step (e.g. the class prior); what it returns is logged once.
    - `training_step(...)`: every step, after the loop has set `step`; returns the step's losses, detached.
    - `validation_metrics(raw, batch)`: at each validation, on the network's raw output.
    - `export_fields()`: when the inference export is written: how `Colorizer` turns the raw output into ab.
    """

    uses_discriminator: bool = False
    output: str = "ab"  # what the network's raw output is (see gan_color.inference.ExportSpec)
    in_channels: int = 1
    step: int = 0  # set by the training loop before each `training_step`: the number of steps already taken

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor kwargs of the colorizer with the channel counts this objective implies filled in."""
        return dict(kwargs)

    def prepare(self, *, dataset: Any, run_dir: Path, accelerator: Any) -> dict[str, Any]:
        """One-off set-up before training (e.g. the class-rebalancing prior); returns values to log once."""
        return {}

    def training_step(self, batch: dict[str, torch.Tensor], networks: dict[str, nn.Module],
                      optimizers: dict[str, torch.optim.Optimizer], accelerator: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def export_fields(self) -> dict[str, Any]:
        """Fields of the inference ExportSpec that this objective determines."""
        return {"output": self.output, "in_channels": self.in_channels}

    def validation_metrics(self, raw: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Objective-specific validation numbers (e.g. bin accuracy of a classifier)."""
        return {}

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        """A message if `cfg` is an invalid combination for this objective, else None."""
        return None


def batch_dependent(network: nn.Module) -> bool:
    """True if one sample's output depends on the rest of its batch (batch norm in training mode)."""
    return network.training and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in network.modules())


def set_requires_grad(network: nn.Module, flag: bool) -> None:
    for parameter in network.parameters():
        parameter.requires_grad_(flag)


@OBJECTIVES.register("pix2pix")
class Pix2PixObjective(Objective):
    """Isola et al. 2017: conditional GAN loss + lambda * L1, D and G updated alternately (D loss halved).

    Two optional phases before it (DeOldify's "NoGAN"): for the first `gan_start` steps G learns from lambda * L1
    alone and D rests; for the next `d_warmup` steps D learns to tell that G's fakes from real colours while G
    rests. The adversarial game then starts from a G that already colours plausibly and a D that already sees why
    not, instead of from two random networks (whose early game paints blotches). Both 0 = the paper's recipe.

    `rebalance_lam` < 1 weights each pixel's L1 by the rarity of its real colour: Zhang et al.'s class rebalancing
    (eq. 4, lam mixes the smoothed prior with the uniform one; 0.5 in their paper), with the prior counted on
    `prior_images` training photos. Plain L1 pulls an uncertain pixel to the median colour, which is nearly grey;
    the weights pull it towards the rarer, saturated ones. 1 = plain L1, the paper's.
    """

    uses_discriminator = True

    def __init__(self, *, gan_mode: str = "lsgan", lambda_l1: float = 100.0, gan_start: int = 0,
                 d_warmup: int = 0, rebalance_lam: float = 1.0, prior_images: int = 2000) -> None:
        if gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {gan_mode!r}")
        if gan_start < 0 or d_warmup < 0:
            raise ValueError(f"gan_start and d_warmup are step counts >= 0, got {gan_start} and {d_warmup}")
        if not 0.0 <= rebalance_lam <= 1.0 or prior_images < 0:
            raise ValueError(f"rebalance_lam must lie in [0, 1] (1 = plain L1) and prior_images be >= 0 (0 = all), "
                             f"got {rebalance_lam} and {prior_images}")
        self.gan_loss: GANLoss = LOSSES.build(gan_mode)
        self.lambda_l1 = lambda_l1
        self.gan_start, self.d_warmup = gan_start, d_warmup
        self.rebalance_lam, self.prior_images = rebalance_lam, prior_images
        self.bins: torch.Tensor | None = None  # the ab grid and its weights, built by `prepare` when rebalancing
        self.weights: torch.Tensor | None = None

    def prepare(self, *, dataset: Any, run_dir: Path, accelerator: Any) -> dict[str, Any]:
        """With rebalancing: the training set's ab prior (counted once, cached in the run folder) and its weights."""
        if self.rebalance_lam == 1.0:
            return {}
        self.bins = ab_grid.ab_bins()
        key = {"bin_size": ab_grid.AB_BIN_SIZE, "num_bins": len(self.bins), "requested_images": self.prior_images,
               "dataset_size": len(dataset)}
        counts, images, cached = ab_prior.run_prior(dataset, self.bins, key=key, images=self.prior_images, workers=0,
                                                    run_dir=run_dir, accelerator=accelerator)
        self.weights = ab_grid.rebalance_weights(counts, self.bins, lam=self.rebalance_lam)
        return {**ab_prior.prior_summary(counts, self.weights), "prior/images": images, "prior/cached": int(cached)}

    def l1(self, fake_ab: torch.Tensor, real_ab: torch.Tensor) -> torch.Tensor:
        """The L1 term: mean |fake - real| over pixels and both channels, each pixel weighted by its real colour's
        rebalancing weight when `rebalance_lam` < 1 (the weights average 1 over the prior)."""
        if self.rebalance_lam == 1.0:
            return F.l1_loss(fake_ab.float(), real_ab.float())
        if self.weights is None:
            raise RuntimeError("rebalance_lam < 1 needs the ab prior: call prepare() first (the training loop does)")
        if self.weights.device != real_ab.device:
            self.bins, self.weights = self.bins.to(real_ab.device), self.weights.to(real_ab.device)
        with torch.no_grad():
            nearest = ab_grid.encode_ab_nearest(color.denormalize_ab(real_ab.float()), self.bins)
        per_pixel = (fake_ab.float() - real_ab.float()).abs().mean(dim=1)
        return (per_pixel * self.weights[nearest]).mean()

    def phase(self) -> str:
        """'l1' (G alone on L1), 'd_warmup' (D alone) or 'gan' for the step about to be taken."""
        if self.step < self.gan_start:
            return "l1"
        return "d_warmup" if self.step < self.gan_start + self.d_warmup else "gan"

    def training_step(self, batch, networks, optimizers, accelerator):
        phase = self.phase()
        if phase == "l1":
            return self.l1_step(batch, networks, optimizers, accelerator)
        generator, discriminator = networks["generator"], networks["discriminator"]
        gray_l, real_ab = batch["gray_l"], batch["real_ab"]
        with accelerator.autocast(), torch.set_grad_enabled(phase == "gan"):
            fake_ab = generator(gray_l)

        # D step on detached fakes.
        set_requires_grad(discriminator, True)
        optimizers["discriminator"].zero_grad(set_to_none=True)
        with accelerator.autocast():
            pred_fake, pred_real = self.discriminate(discriminator, gray_l, fake_ab.detach(), real_ab)
        loss_d_fake = self.gan_loss(pred_fake, False)
        loss_d_real = self.gan_loss(pred_real, True)
        loss_d = 0.5 * (loss_d_fake + loss_d_real)  # pix2pix halves D's loss to slow D relative to G
        accelerator.backward(loss_d)
        optimizers["discriminator"].step()
        if phase == "d_warmup":
            return {"loss/D_real": loss_d_real.detach(), "loss/D_fake": loss_d_fake.detach(),
                    "loss/D": loss_d.detach()}

        # G step with D frozen. D's gradients are not needed, so G's pass goes through the unwrapped D: no DDP
        # reduction is armed for a backward that never reaches D's parameters.
        set_requires_grad(discriminator, False)
        optimizers["generator"].zero_grad(set_to_none=True)
        frozen_d = accelerator.unwrap_model(discriminator)
        with accelerator.autocast():
            pred_fake = frozen_d(gray_l, fake_ab)
        loss_g_gan = self.gan_loss(pred_fake, True)
        loss_g_l1 = self.l1(fake_ab, real_ab)
        loss_g = loss_g_gan + self.lambda_l1 * loss_g_l1
        accelerator.backward(loss_g)
        optimizers["generator"].step()
        set_requires_grad(discriminator, True)
        return {
            "loss/D_real": loss_d_real.detach(),
            "loss/D_fake": loss_d_fake.detach(),
            "loss/D": loss_d.detach(),
            "loss/G_GAN": loss_g_gan.detach(),
            "loss/G_L1": loss_g_l1.detach(),
            "loss/G": loss_g.detach(),
        }

    @staticmethod
    def discriminate(discriminator: nn.Module, gray_l: torch.Tensor, fake_ab: torch.Tensor,
                     real_ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's predictions for the fake and the real pairs. A D whose every layer treats samples independently
        (instance norm, or none) sees both in one batch: one DDP forward per backward, and the same numbers as two
        calls. A batch-norm D (`discriminator.kwargs.norm=batch`) normalises over its batch, so it gets the two
        batches apart, fake then real, as upstream pix2pix's `backward_D` does."""
        if batch_dependent(discriminator):
            return discriminator(gray_l, fake_ab), discriminator(gray_l, real_ab)
        return discriminator(torch.cat([gray_l, gray_l]), torch.cat([fake_ab, real_ab])).chunk(2)

    def l1_step(self, batch, networks, optimizers, accelerator):
        """NoGAN pre-training: G on lambda * L1 alone (the same L1 term the GAN phase keeps)."""
        optimizers["generator"].zero_grad(set_to_none=True)
        with accelerator.autocast():
            fake_ab = networks["generator"](batch["gray_l"])
        loss_g_l1 = self.l1(fake_ab, batch["real_ab"])
        accelerator.backward(self.lambda_l1 * loss_g_l1)
        optimizers["generator"].step()
        return {"loss/G_L1": loss_g_l1.detach()}

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        n_layers = cfg.discriminator.kwargs.get("n_layers", 3)
        if cfg.discriminator.name == "patchgan" and cfg.data.size < 2 ** (n_layers + 1) * 2:
            return f"data.size={cfg.data.size} is too small for a PatchGAN with n_layers={n_layers}"
        return None
