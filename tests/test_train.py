"""The shared training loop: a smoke run writing every run file, resume equivalence, determinism, D/G separation,
non-finite losses, incompatible checkpoints, atomic checkpoint discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gan_color import checkpoint as ckpt
from gan_color import devices, train
from gan_color.config import load_config
from gan_color.inference import Colorizer
from gan_color.objectives import Pix2PixObjective

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


def tiny(tmp_path: Path, *overrides: str):
    return load_config(TINY, [f"train.output_dir={tmp_path}", *overrides])


def weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoints" / ckpt.step_dir_name(step)
    return {
        **load_file(str(folder / "generator.safetensors")),
        **{f"D.{k}": v for k, v in load_file(str(folder / "discriminator.safetensors")).items()},
    }


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max((x - b[k]).abs().max().item() for k, x in a.items())
    assert worst <= atol, f"weights differ by {worst}"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return train.main(tiny(out))


def test_smoke_run_writes_every_run_file(straight_run):
    run = straight_run
    for name in ("config.yaml", "metrics.jsonl", "generator.safetensors", "generator.json", "tracking.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss/D_real", "loss/D_fake", "loss/G_GAN", "loss/G_L1", "lr", "images_per_sec"} <= rows[0].keys()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_00000003.png", "step_00000006.png"]
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step_00000003", "step_00000006"]
    state = torch.load(run / "checkpoints" / "step_00000006" / "training_state.pt", weights_only=True)
    assert state["step"] == 6 and set(state["optimizers"]) == {"generator", "discriminator"}
    colorizer = Colorizer.load(run)  # the export loads without the training config
    ab = colorizer(torch.zeros(1, 1, 40, 24))
    assert ab.shape == (1, 2, 40, 24)
    assert colorizer.spec.image_size == 32 and colorizer.spec.step == 6


def test_probe_grid_is_gray_generated_truth(straight_run):
    from PIL import Image

    grid = Image.open(straight_run / "samples" / "step_00000006.png")
    # a labelled sheet: 3 columns (gray | generated | truth) of 96 px cells, 4 rows (2 unseen + 2 seen photos)
    assert grid.size[0] == 3 * (96 + 4) + 4 and grid.size[1] > 4 * 96


def test_resume_equals_straight_run(straight_run, tmp_path, kill_after_checkpoint):
    kill_after_checkpoint(tiny(tmp_path), step=3)
    assert ckpt.latest_checkpoint(tmp_path / "tiny" / "checkpoints").name == "step_00000003"
    train.main(tiny(tmp_path))  # the same command again resumes automatically
    assert_same(weights(tmp_path / "tiny", 6), weights(straight_run, 6))
    rows = [json.loads(line)["step"] for line in (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [2, 4, 6]  # no duplicate or lost log lines across the restart


def test_same_seed_same_weights_other_seed_differs(straight_run, tmp_path):
    again = train.main(tiny(tmp_path / "a"))
    assert_same(weights(again, 6), weights(straight_run, 6), atol=0)
    other = train.main(tiny(tmp_path / "b", "seed=1"))
    with pytest.raises(AssertionError):
        assert_same(weights(other, 6), weights(straight_run, 6))


def test_explicit_resume_path_and_incompatible_config(straight_run, tmp_path):
    cfg = tiny(tmp_path, f"train.resume={straight_run / 'checkpoints' / 'step_00000003'}", "name=branch")
    run_dir = train.main(cfg)
    assert_same(weights(run_dir, 6), weights(straight_run, 6))
    with pytest.raises(ckpt.CheckpointError, match=r"model=.*ngf.*start a new run"):
        train.main(tiny(straight_run.parent, "model.kwargs.ngf=4"))
    with pytest.raises(ckpt.CheckpointError, match="already holds checkpoints"):
        train.main(tiny(straight_run.parent, "train.resume=never"))


class SpyOptimizer:
    """Records every network's parameters at the moment each optimizer steps."""

    def __init__(self, inner, name, networks, log):
        self.inner, self.name, self.networks, self.log = inner, name, networks, log

    def zero_grad(self, set_to_none=True):
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.log.append((f"before_{self.name}", snapshot(self.networks)))
        self.inner.step()
        self.log.append((f"after_{self.name}", snapshot(self.networks)))


def snapshot(networks):
    return {name: [p.detach().clone() for p in net.parameters()] for name, net in networks.items()}


def test_d_step_leaves_g_and_g_step_leaves_d():
    from accelerate import Accelerator

    from gan_color.models import build_colorizer, build_discriminator

    torch.manual_seed(0)
    networks = {
        "generator": build_colorizer("resnet_6blocks", ngf=8),
        "discriminator": build_discriminator("patchgan", ndf=8),
    }
    log: list = []
    optimizers = {
        n: SpyOptimizer(torch.optim.Adam(m.parameters(), lr=1e-2), n, networks, log) for n, m in networks.items()
    }
    batch = {"gray_l": torch.randn(2, 1, 32, 32), "real_ab": torch.rand(2, 2, 32, 32) - 0.5}
    start = snapshot(networks)
    Pix2PixObjective().training_step(batch, networks, optimizers, Accelerator(cpu=True))
    order = [name for name, _ in log]
    assert order == ["before_discriminator", "after_discriminator", "before_generator", "after_generator"]
    d_done, g_done = log[1][1], log[3][1]
    unchanged = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b))  # noqa: E731
    assert unchanged(d_done["generator"], start["generator"])  # the D step did not touch G
    assert not unchanged(d_done["discriminator"], start["discriminator"])
    assert unchanged(g_done["discriminator"], d_done["discriminator"])  # the G step did not touch D
    assert not unchanged(g_done["generator"], start["generator"])
    assert all(p.requires_grad for p in networks["discriminator"].parameters())  # D unfrozen afterwards


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, monkeypatch):
    real_step = Pix2PixObjective.training_step

    def poisoned(self, batch, networks, optimizers, accelerator):
        losses = real_step(self, batch, networks, optimizers, accelerator)
        if poisoned.calls >= 4:
            losses["loss/G_L1"] = torch.tensor(float("nan"))
        poisoned.calls += 1
        return losses

    poisoned.calls = 0
    monkeypatch.setattr(Pix2PixObjective, "training_step", poisoned)
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite loss at step 6.*step_00000003"):
        train.main(tiny(tmp_path))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "tiny" / "checkpoints")] == ["step_00000003"]


def test_incomplete_checkpoints_are_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step_00000010").mkdir(parents=True)
    (root / "step_00000010" / "meta.json").write_text("{}")
    (root / "step_00000020").mkdir()  # killed before meta.json: incomplete
    (root / ".tmp_step_00000030").mkdir()  # killed mid-write
    assert ckpt.latest_checkpoint(root).name == "step_00000010"


def test_pix2pix_schedule_is_constant_then_linear():
    factor = train.pix2pix_schedule(10, 4)
    values = [factor(s) for s in range(10)]
    assert values[:5] == [1.0] * 5 and values[-1] == pytest.approx(0.2) and values == sorted(values, reverse=True)


def test_wandb_offline_resumes_the_same_run_id(tmp_path, monkeypatch, kill_after_checkpoint):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    kill_after_checkpoint(tiny(tmp_path, "tracking.wandb=true"), step=3)
    first = json.loads((tmp_path / "tiny" / "tracking.json").read_text())
    assert first["wandb_run_id"] and first["group"] == "tiny_cpu"
    train.main(tiny(tmp_path, "tracking.wandb=true"))
    second = json.loads((tmp_path / "tiny" / "tracking.json").read_text())
    assert second["wandb_run_id"] == first["wandb_run_id"]
    runs = sorted((tmp_path / "tiny" / "wandb").glob("offline-run-*"))
    # W&B names offline runs offline-run-<time>-<id>, with a '-1' suffix when two start in the same second
    assert len(runs) == 2 and all(f"-{first['wandb_run_id']}" in r.name for r in runs)


def test_fp16_without_gpu_is_a_clear_error(tmp_path):
    if devices.has_accelerator():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        train.main(tiny(tmp_path, "train.mixed_precision=fp16"))


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one process-wide state; a run with other precision settings needs it reset (and after)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_trains(tmp_path, fresh_accelerator_state):
    run_dir = train.main(tiny(tmp_path, "train.mixed_precision=bf16", "optim.steps=2", "optim.decay_steps=1",
                              "train.checkpoint_every=2", "train.sample_every=2"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in rows[-1].items() if k.startswith("loss/"))
