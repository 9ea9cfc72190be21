"""What the shipped model's recipe adds to the loop: the seeded held-out split, several sources as one dataset,
the NoGAN phases of the pix2pix objective, and fine-tuning from an export (`model.init`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from gan_color import train
from gan_color.config import ConfigError, load_config
from gan_color.data import build_dataset, holdout_keys, split_dataset
from gan_color.models import build_colorizer, build_discriminator
from gan_color.objectives import Pix2PixObjective

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


def photo_folder(root: Path, name: str, count: int) -> Path:
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(len(name) + count)
    for i in range(count):
        pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / ("sub" if i % 2 else ".") / f"img_{i:03d}.png")
    return folder


def test_holdout_keys_are_seeded_stable_and_never_empty_or_all():
    keys = [f"photos/{i}.jpg" for i in range(1000)]
    held = holdout_keys(keys, 0.02, seed=0)
    assert len(held) == 20 and held == holdout_keys(list(reversed(keys)), 0.02, seed=0)
    assert held != holdout_keys(keys, 0.02, seed=1)
    assert len(held & holdout_keys(keys + [f"more/{i}.jpg" for i in range(100)], 0.02, seed=0)) >= 15
    assert len(holdout_keys(keys[:5], 0.02, seed=0)) == 1  # at least one image is held out
    assert holdout_keys(keys[:1], 0.5, seed=0) == set()  # never all of them
    assert holdout_keys(keys, 0.0, seed=0) == set()


def test_comma_joined_sources_and_split_keys(tmp_path):
    a, b = photo_folder(tmp_path, "alpha", 6), photo_folder(tmp_path, "beta", 4)
    both = build_dataset(f"{a},{b}", size=16, train=False)
    assert len(both) == 10
    keys = [both.split_key(i) for i in range(10)]
    assert keys[0].startswith("alpha/") and keys[-1].startswith("beta/") and "alpha/sub/img_001.png" in keys
    held = holdout_keys(keys, 0.3, seed=0)
    train_part = split_dataset(both, held, keep_held_out=False)
    held_part = split_dataset(both, held, keep_held_out=True)
    assert len(train_part) + len(held_part) == 10 and len(held_part) == 3
    assert {held_part.describe(i) for i in range(3)}.isdisjoint(train_part.describe(i) for i in range(7))
    assert torch.equal(held_part[0]["rgb"], both[keys.index(held_part.split_key(0))]["rgb"])  # same crop either way
    with pytest.raises(ValueError, match="empty source"):
        build_dataset(f"{a},,{b}", size=16, train=False)


def test_training_never_sees_held_out_images(tmp_path):
    folder = photo_folder(tmp_path, "photos", 20)
    cfg = load_config(TINY, [f"train.output_dir={tmp_path / 'runs'}", f"data.train={folder}", "data.holdout=0.2",
                             "data.drop_grayscale=false", "optim.steps=1", "optim.decay_steps=0"])
    run = train.setup(cfg)
    held = set((cfg.run_dir / train.HOLDOUT_LIST).read_text().split())
    assert len(held) == 4
    dataset = run.loader.dataset.dataset  # the loader's SeededItems wraps the training split
    trained = {dataset.split_key(i) for i in range(len(dataset))}
    assert len(trained) == 16 and trained.isdisjoint(held)
    run.accelerator.end_training()


def snapshot(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize(("step", "g_moves", "d_moves", "keys"), [
    (0, True, False, {"loss/G_L1"}),
    (2, False, True, {"loss/D", "loss/D_real", "loss/D_fake"}),
    (3, True, True, {"loss/D", "loss/D_real", "loss/D_fake", "loss/G", "loss/G_GAN", "loss/G_L1"}),
])
def test_nogan_phases_train_only_their_network(step, g_moves, d_moves, keys):
    torch.manual_seed(0)
    networks = {"generator": build_colorizer("resnet_6blocks", ngf=8),
                "discriminator": build_discriminator("patchgan", ndf=8)}
    optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-2) for n, m in networks.items()}
    objective = Pix2PixObjective(gan_start=2, d_warmup=1)
    objective.step = step
    g0, d0 = snapshot(networks["generator"]), snapshot(networks["discriminator"])
    batch = {"gray_l": torch.randn(2, 1, 32, 32), "real_ab": torch.rand(2, 2, 32, 32) - 0.5}
    losses = objective.training_step(batch, networks, optimizers, Accelerator(cpu=True))
    assert set(losses) == keys
    assert changed(g0, networks["generator"]) == g_moves and changed(d0, networks["discriminator"]) == d_moves
    with pytest.raises(ValueError, match="step counts"):
        Pix2PixObjective(gan_start=-1)


def test_model_init_starts_from_an_export(tmp_path):
    first = train.main(load_config(TINY, [f"train.output_dir={tmp_path}", "name=first"]))
    cfg = load_config(TINY, [f"train.output_dir={tmp_path}", "name=second", f"model.init={first}"])
    networks = train.build_networks(cfg, Pix2PixObjective())
    exported = build_colorizer("resnet_6blocks", ngf=8)
    from safetensors.torch import load_file

    exported.load_state_dict(load_file(str(first / "generator.safetensors")))
    for a, b in zip(networks["generator"].state_dict().values(), exported.state_dict().values()):
        assert torch.equal(a, b)
    wrong = load_config(TINY, [f"train.output_dir={tmp_path}", "name=third", f"model.init={first}",
                               "model.kwargs.ngf=16"])
    with pytest.raises(ConfigError, match="does not fit model.kwargs"):
        train.build_networks(wrong, Pix2PixObjective())
