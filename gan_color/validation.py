"""Validation during training: a fixed, seeded subset of the held-out images, scored with the cheap metrics (PSNR,
AuC, colourfulness) and the objective's own, a few of them logged as images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gan_color import color
from gan_color.inference import ExportSpec, raw_to_ab
from gan_color.metrics.scores import cheap_metrics
from gan_color.objectives import Objective
from gan_color.sampling import collate_probes, log_held_out, predict_raw, probe_indices


def validation_batches(held_out: Any, count: int, *, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """`count` held-out items chosen by `seed`, collated into batches of `batch_size`: the same every validation."""
    indices = probe_indices(len(held_out), count, seed=seed)
    return [collate_probes(held_out, indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]


def validate(generator: nn.Module, batches: list[dict[str, torch.Tensor]], *, spec: ExportSpec, objective: Objective,
             accelerator: Any, step: int) -> dict[str, float]:
    """Mean of every metric over `batches` as {"val/<name>": value}; the first batch's colorizations are logged."""
    device, totals, count = accelerator.device, {}, 0
    for i, batch in enumerate(batches):
        gray_l, real_ab = batch["gray_l"].to(device), batch["real_ab"].to(device)
        raw = predict_raw(generator, gray_l, spec)
        fake_ab = raw_to_ab(raw, spec, size=tuple(gray_l.shape[-2:]))
        if i == 0:  # a few held-out colorizations for the dashboards
            log_held_out(accelerator, gray_l, fake_ab, real_ab, step=step)
        values = cheap_metrics(color.model_outputs_to_rgb(gray_l, fake_ab), batch["rgb"].to(device),
                               fake_ab=fake_ab, real_ab=real_ab)
        values.update(objective.validation_metrics(raw, {"gray_l": gray_l, "real_ab": real_ab}))
        n = gray_l.shape[0]
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value) * n
        count += n
    return {f"val/{k}": v / max(count, 1) for k, v in totals.items()}
