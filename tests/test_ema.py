"""The generator's EMA (optim.ema_decay): the average's arithmetic, what a run exports and checkpoints, and that a
killed run resumes its average exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gan_color import checkpoint as ckpt
from gan_color import train
from gan_color.config import ConfigError, load_config
from gan_color.ema import EMA_NAME, make_ema, reset_ema, update_ema

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


def tiny(tmp_path: Path, *overrides: str):
    return load_config(TINY, [f"train.output_dir={tmp_path}", "optim.ema_decay=0.5", *overrides])


def test_average_follows_the_formula_and_batch_norm_buffers():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert make_ema(net, 0.0) is None
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        make_ema(net, 1.0)
    ema = make_ema(net, 0.9)
    w0 = net[0].weight.detach().clone()
    update_ema(ema, net)  # the first update copies
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(2.0)
    update_ema(ema, net)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * w0 + 0.1 * (w0 + 1.0))
    torch.testing.assert_close(ema.module[1].running_mean, torch.full((2,), 0.2))
    assert not any(p.requires_grad for p in ema.parameters())
    reset_ema(ema, net)
    torch.testing.assert_close(ema.module[0].weight, net[0].weight)
    assert int(ema.n_averaged) == 0


def test_config_rejects_a_decay_outside_0_1(tmp_path):
    with pytest.raises(ConfigError, match="optim.ema_decay must lie in"):
        load_config(TINY, [f"train.output_dir={tmp_path}", "optim.ema_decay=1.0"])


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    return train.main(tiny(tmp_path_factory.mktemp("ema")))


def test_run_exports_and_checkpoints_the_average(ema_run):
    final = ema_run / "checkpoints" / ckpt.step_dir_name(6)
    averaged = load_file(str(final / f"{EMA_NAME}.safetensors"))
    raw = load_file(str(final / "generator.safetensors"))
    exported = load_file(str(ema_run / "generator.safetensors"))
    assert int(averaged.pop("n_averaged")) == 6  # one update per step
    assert exported.keys() == raw.keys() == {k.removeprefix("module.") for k in averaged}
    for key, value in exported.items():
        torch.testing.assert_close(value, averaged[f"module.{key}"], rtol=0, atol=0)
    assert any(not torch.equal(value, raw[key]) for key, value in exported.items() if value.is_floating_point())


def test_killed_run_resumes_its_average_exactly(ema_run, tmp_path, kill_after_checkpoint):
    kill_after_checkpoint(tiny(tmp_path), step=3)
    train.main(tiny(tmp_path))
    resumed, straight = (load_file(str(d / "generator.safetensors")) for d in (tmp_path / "tiny", ema_run))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6)


def test_ema_turned_on_at_resume_starts_from_the_generator(tmp_path, capsys):
    train.main(load_config(TINY, [f"train.output_dir={tmp_path}", "optim.steps=3", "optim.decay_steps=1"]))
    capsys.readouterr()
    run_dir = train.main(tiny(tmp_path, "optim.steps=6", "optim.decay_steps=3"))
    assert "holds no generator EMA: the average starts from its generator" in capsys.readouterr().out
    assert (ckpt.latest_checkpoint(run_dir / "checkpoints") / f"{EMA_NAME}.safetensors").is_file()
