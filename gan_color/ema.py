"""An exponential moving average (EMA) of the generator's weights: the export, probe grids and validation use the
average, the optimizer keeps stepping the raw weights. A GAN's generator moves with every discriminator update; the
average of its recent weights is smoother than any one of them (Karras et al. 2018 and 2019, Brock et al. 2019 and
Yazici et al. 2019 export it; so do most diffusion trainers). `optim.ema_decay` sets it; 0 is off, the paper's."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

EMA_NAME = "generator_ema"  # its file in a checkpoint: checkpoints/step_*/generator_ema.safetensors


def make_ema(generator: nn.Module, decay: float) -> AveragedModel | None:
    """A copy of `generator` (on its device) that `update_ema` moves towards it, or None when `decay` is 0.
    Buffers are averaged too, so a batch-norm generator's running statistics match its averaged weights."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the EMA decay must lie in [0, 1) (0 = off), got {decay}")
    ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema.eval()


def update_ema(ema: AveragedModel, generator: nn.Module) -> None:
    """One EMA step: average <- decay * average + (1 - decay) * weights (the first call copies the weights)."""
    ema.update_parameters(generator)


def reset_ema(ema: AveragedModel, generator: nn.Module) -> None:
    """Restart the average at `generator`'s weights (a resumed run whose checkpoint holds no average)."""
    ema.module.load_state_dict(generator.state_dict())
    ema.n_averaged.zero_()
