"""Baselines: every config trains a few steps through the shared loop and exports a loadable colorizer; losses fall
on a fixed batch; classifier decoding, rebalancing and the cached prior; config checks; pretrained ResNet-18 weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
import torchvision
from accelerate import Accelerator

from baselines.classification import ClassificationObjective
from baselines.regression import RegressionObjective
from gan_color import ab_grid, ab_prior, color, train
from gan_color.config import ConfigError, load_config
from gan_color.data import EmbeddedDataset, add_lab
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.models import build_colorizer
from gan_color.registry import LOSSES, OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "baselines"
# Each shipped config at test size: (small-model overrides, what its export's raw output is).
SMALL = {
    "regression_cnn_l2_lab": (["model.kwargs.width=8"], "ab"),
    "regression_cnn_l1_rgb": (["model.kwargs.width=8"], "rgb"),
    "regression_unet_l1mse_lab": (["model.kwargs.width=4"], "ab"),
    "regression_resnet18_l1_lab": (["model.kwargs.stages=2"], "ab"),
    "classification_eccv16": (["model.kwargs.width=4"], "ab_logits"),
    "classification_unet": (["model.kwargs.width=4"], "ab_logits"),
}
TINY = ["data.size=32", "data.batch_size=4", "data.num_workers=0", "data.embedded_length=16", "optim.steps=3",
        "optim.decay_steps=1", "train.log_every=1", "train.sample_every=3", "train.checkpoint_every=3",
        "train.num_probes=2", "train.validate_every=3", "train.validate_images=4"]


def tiny(name: str, out: Path, *overrides: str):
    return load_config(CONFIGS / f"{name}.yaml", [f"train.output_dir={out}", *TINY, *SMALL[name][0], *overrides])


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def fixed_batch(count: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    """Deterministic crops of the bundled photos (eval mode), with normalized L/ab."""
    dataset = EmbeddedDataset(size=size, train=False, length=count, to_lab=False)
    return add_lab({"rgb": torch.stack([dataset[i]["rgb"] for i in range(count)])})


def refuse_download(*args, **kwargs):
    raise URLError("network is unreachable (test)")


def test_every_shipped_config_is_tested():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_baseline_trains_through_the_shared_loop_and_exports(name, tmp_path, monkeypatch):
    run = train.main(tiny(name, tmp_path))
    logged = rows(run)
    losses = [r for r in logged if "loss/total" in r]
    assert [r["step"] for r in losses] == [1, 2, 3] and all(math.isfinite(r["loss/total"]) for r in losses)
    assert (run / "samples" / "step_00000003.png").is_file() and "val/psnr_rgb_uint8" in losses[-1]

    colorizer = Colorizer.load(run)  # the export alone, as evaluation / colorize / human-eval load it
    assert colorizer.spec.output == SMALL[name][1] and colorizer.spec.arch == tiny(name, tmp_path).model.name
    gray_l = fixed_batch(2, 48)["gray_l"][..., :40, :24]  # another size than trained, not a multiple of 16
    ab = colorizer(gray_l)
    assert ab.shape == (2, 2, 40, 24) and torch.isfinite(ab).all() and ab.abs().max() <= 1.05
    rgb = colorizer.colorize_rgb(gray_l)
    assert rgb.shape == (2, 3, 40, 24) and rgb.min() >= 0 and rgb.max() <= 1

    if SMALL[name][1] == "ab_logits":
        # The prior counts the training split only: of 16 crops of the 5 embedded photos, the held-out photo's 4
        # (indices 0, 5, 10, 15) never train.
        assert (run / ab_prior.PRIOR_FILE).is_file()
        assert logged[0]["prior/cached"] == 0 and logged[0]["prior/images"] == 12
        assert 0 <= losses[-1]["val/bin_accuracy"] <= 1 and losses[-1]["val/cross_entropy"] > 0
        # Resuming (here: extending the run) reads the cached prior instead of recounting the training set.
        monkeypatch.setattr(ab_prior, "compute_counts", refuse_download)
        train.main(tiny(name, tmp_path, "optim.steps=4"))
        resumed = [r for r in rows(run) if "prior/cached" in r]
        assert [(r["step"], r["prior/cached"]) for r in resumed] == [(0, 0), (3, 1)]
        assert resumed[1]["prior/entropy_bits"] == resumed[0]["prior/entropy_bits"]


@pytest.mark.parametrize("objective_name, objective_kwargs, network, kwargs", [
    ("regression", {"loss": "l2", "space": "lab"}, "cnn_encoder_decoder", {"width": 8}),
    ("regression", {"loss": "l1", "space": "rgb"}, "cnn_encoder_decoder", {"width": 8}),
    ("regression", {"loss": "l1_mse", "p": 0.3}, "unet_regressor", {"width": 4}),
    ("regression", {"loss": "l1"}, "resnet18_regressor", {"stages": 1}),
    ("classification", {}, "eccv16", {"width": 8}),
    ("classification", {"rebalance": False}, "unet_classifier", {"width": 4}),
], ids=["cnn-l2-lab", "cnn-l1-rgb", "unet-l1mse-lab", "resnet18-l1-lab", "eccv16", "unet-classifier"])
def test_loss_falls_on_a_fixed_batch(objective_name, objective_kwargs, network, kwargs):
    torch.manual_seed(0)
    objective = OBJECTIVES.build(objective_name, **objective_kwargs)
    batch = fixed_batch(4, 16)
    if objective_name == "classification" and objective.rebalance:
        objective.set_prior(ab_grid.bin_counts(color.denormalize_ab(batch["real_ab"]), objective.bins))
    net = build_colorizer(network, **objective.model_kwargs(kwargs))
    # Logits must move a long way from uniform (log Q nats): the classifiers get the larger step.
    lr = 1e-2 if objective_name == "classification" else 5e-3
    optimizers = {"generator": torch.optim.Adam(net.parameters(), lr=lr)}
    accelerator = Accelerator(cpu=True)
    losses = [objective.training_step(batch, {"generator": net}, optimizers, accelerator)["loss/total"].item()
              for _ in range(20)]
    assert sum(losses[-3:]) / 3 < 0.75 * losses[0], losses


def test_regression_losses_are_registered_and_mix_l1_and_mse():
    prediction, target = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    l1, mse = F.l1_loss(prediction, target), F.mse_loss(prediction, target)
    assert torch.allclose(LOSSES.build("l1")(prediction, target), l1)
    assert torch.allclose(LOSSES.build("l2")(prediction, target), mse)
    assert torch.allclose(LOSSES.build("l1_mse", p=0.3)(prediction, target), 0.3 * l1 + 0.7 * mse)
    assert torch.allclose(LOSSES.build("l1_mse", p=1.0)(prediction, target), l1)
    with pytest.raises(ValueError, match="p must lie in"):
        LOSSES.build("l1_mse", p=1.5)


def test_rgb_and_lab_objectives_set_the_network_and_export():
    lab, rgb = RegressionObjective(space="lab"), RegressionObjective(space="rgb")
    assert lab.model_kwargs({"width": 8}) == {"width": 8, "in_channels": 1, "out_channels": 2, "final": "tanh"}
    assert rgb.model_kwargs({}) == {"in_channels": 3, "out_channels": 3, "final": "sigmoid"}
    assert lab.export_fields() == {"output": "ab", "in_channels": 1}
    assert rgb.export_fields() == {"output": "rgb", "in_channels": 3}
    out = build_colorizer("cnn_encoder_decoder", width=8, **rgb.network_kwargs())(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32) and 0 <= out.min() and out.max() <= 1


def constant_logits_export(tmp_path: Path, logits: dict[int, float]) -> Colorizer:
    """An eccv16 export whose logits are `logits` (bin -> value, others -30) at every pixel, whatever the input."""
    objective = ClassificationObjective()
    net = build_colorizer("eccv16", **objective.model_kwargs({"width": 4}))
    head = net.head[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        for index, value in logits.items():
            head.bias[index] = value
    spec = ExportSpec(arch="eccv16", kwargs=objective.model_kwargs({"width": 4}), image_size=32, run="t",
                      **objective.export_fields())
    return Colorizer.load(save_export(net, spec, tmp_path / "export"))


def test_decoding_annealed_mean_mode_and_mean(tmp_path):
    bins = ab_grid.ab_bins()
    first, second = 40, 200
    colorizer = constant_logits_export(tmp_path, {first: 2.0, second: 1.0})
    gray_l = torch.rand(2, 1, 36, 20) * 2 - 1

    def expected(temperature: float) -> torch.Tensor:
        p_first = 1 / (1 + math.exp(-1.0 / temperature))  # softmax of two logits one apart, sharpened by 1/T
        return color.normalize_ab(p_first * bins[first] + (1 - p_first) * bins[second])

    cases = {"mode": color.normalize_ab(bins[first]), "mean": expected(1.0), "annealed_mean": expected(0.38)}
    for decode, value in cases.items():
        ab = colorizer(gray_l, decode=decode)
        assert ab.shape == (2, 2, 36, 20), decode
        assert torch.allclose(ab, value.view(1, 2, 1, 1).expand_as(ab), atol=1e-5), decode
    assert torch.allclose(colorizer(gray_l), colorizer(gray_l, decode="annealed_mean"))  # the export's default
    assert torch.allclose(colorizer(gray_l, temperature=1.0), cases["mean"].view(1, 2, 1, 1).expand(2, 2, 36, 20))


def test_cross_entropy_is_against_soft_encoded_targets_at_the_logits_resolution():
    objective = ClassificationObjective(rebalance=False)
    real_ab = fixed_batch(2)["real_ab"]
    logits = torch.randn(2, objective.num_bins, 8, 8)
    loss, plain = objective.loss(logits, real_ab)
    target = ab_grid.soft_encode_ab(color.denormalize_ab(real_ab[..., ::4, ::4]), objective.bins, k=5, sigma=5.0)
    assert torch.allclose(loss, -(target * logits.log_softmax(1)).sum(1).mean()) and torch.equal(loss, plain)


def test_rebalancing_weights_each_pixel_by_its_nearest_bin():
    objective = ClassificationObjective(lam=0.5)
    gray, rare = ab_grid.encode_ab_nearest(torch.zeros(1, 2, 1, 1), objective.bins).item(), 0
    counts = torch.zeros(objective.num_bins, dtype=torch.int64)
    counts[gray], counts[rare] = 10_000, 1
    objective.set_prior(counts)
    weights = ab_grid.rebalance_weights(counts, objective.bins, lam=0.5, sigma=5.0)
    assert torch.equal(objective.weights, weights) and weights[rare] > 5 * weights[gray]

    real_ab = torch.zeros(1, 2, 4, 4)
    real_ab[0, :, 0, 0] = color.normalize_ab(objective.bins[rare])  # one pixel of the rare colour
    logits = torch.zeros(1, objective.num_bins, 4, 4)  # uniform prediction: every pixel's CE is log Q
    loss, plain = objective.loss(logits, real_ab)
    assert plain == pytest.approx(math.log(objective.num_bins))
    expected = (weights[rare] + 15 * weights[gray]) / 16 * math.log(objective.num_bins)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and loss > plain

    uniform = ClassificationObjective(lam=1.0)  # lambda = 1: uniform weights, all exactly 1
    uniform.set_prior(counts)
    assert torch.allclose(uniform.weights, torch.ones(objective.num_bins))
    loss_uniform, plain_uniform = uniform.loss(logits, real_ab)
    assert torch.allclose(loss_uniform, plain_uniform)
    with pytest.raises(RuntimeError, match="needs the class prior"):
        ClassificationObjective().loss(logits, real_ab)


def test_prior_is_counted_once_cached_and_reused(tmp_path, monkeypatch):
    dataset = EmbeddedDataset(size=32, train=True, to_lab=False, length=8)
    accelerator = Accelerator(cpu=True)
    rng = torch.get_rng_state()
    first = ClassificationObjective(prior_images=4)
    logged = first.prepare(dataset=dataset, run_dir=tmp_path, accelerator=accelerator)
    assert torch.equal(torch.get_rng_state(), rng)  # the training crops' RNG stream is untouched
    payload = json.loads((tmp_path / ab_prior.PRIOR_FILE).read_text())
    assert payload["images"] == 4 and sum(payload["counts"]) == 4 * 32 * 32 == logged["prior/pixels"]
    assert payload["num_bins"] == first.num_bins and payload["bin_size"] == 10 and logged["prior/cached"] == 0
    assert 0 < logged["prior/entropy_bits"] < math.log2(first.num_bins)

    monkeypatch.setattr(ab_prior, "compute_counts", refuse_download)
    again = ClassificationObjective(prior_images=4)
    assert again.prepare(dataset=dataset, run_dir=tmp_path, accelerator=accelerator)["prior/cached"] == 1
    assert torch.equal(again.weights, first.weights)
    monkeypatch.undo()
    other = ClassificationObjective(prior_images=2)  # a different setting is recounted, not silently reused
    assert other.prepare(dataset=dataset, run_dir=tmp_path, accelerator=accelerator)["prior/cached"] == 0
    assert ClassificationObjective(rebalance=False).prepare(dataset=dataset, run_dir=tmp_path / "x",
                                                            accelerator=accelerator) == {}


def test_validation_metrics_bin_accuracy_and_cross_entropy():
    objective = ClassificationObjective(rebalance=False)
    real_ab = fixed_batch(2)["real_ab"]
    nearest = ab_grid.encode_ab_nearest(color.denormalize_ab(real_ab), objective.bins)
    perfect = 20.0 * F.one_hot(nearest, objective.num_bins).permute(0, 3, 1, 2).float()
    metrics = objective.validation_metrics(perfect, {"real_ab": real_ab})
    assert metrics["bin_accuracy"] == 1.0
    assert metrics["cross_entropy"] == pytest.approx(objective.loss(perfect, real_ab)[1].item())
    assert objective.validation_metrics(torch.zeros_like(perfect), {"real_ab": real_ab})["cross_entropy"] == \
        pytest.approx(math.log(objective.num_bins))


def test_classification_export_fields_follow_the_bin_grid():
    objective = ClassificationObjective(bin_size=20, decode="mode", temperature=0.5)
    fields = objective.export_fields()
    assert objective.num_bins == len(ab_grid.ab_bins(20)) and fields["num_bins"] == objective.num_bins
    assert fields["color"]["ab_bin_size"] == 20 and fields["decode"] == "mode" and fields["output"] == "ab_logits"
    assert objective.model_kwargs({}) == {"in_channels": 1, "out_channels": objective.num_bins, "final": "none"}


@pytest.mark.parametrize("name, overrides, message", [
    ("regression_cnn_l1_rgb", ["model.kwargs.in_channels=1"], "in_channels=1 contradicts .*space='rgb'"),
    ("regression_cnn_l2_lab", ["model.kwargs.final=sigmoid"], "final='sigmoid' contradicts"),
    ("regression_cnn_l2_lab", ["model.name=resnet_6blocks", "model.kwargs={}"], "needs a network that takes"),
    ("regression_cnn_l2_lab", ["objective.kwargs.loss=huber"], "loss must be one of"),
    ("regression_cnn_l2_lab", ["objective.kwargs.p=0.3"], "p only applies to loss=l1_mse"),
    ("regression_cnn_l2_lab", ["objective.kwargs.space=hsv"], "space must be one of"),
    ("classification_eccv16", ["objective.kwargs.decode=median"], "decode must be one of"),
    ("classification_eccv16", ["objective.kwargs.temperature=0"], "temperature must be > 0"),
    ("classification_unet", ["model.kwargs.out_channels=313"], "out_channels=313 contradicts"),
    ("classification_unet", ["model.kwargs.widht=8"], "did you mean 'width'"),
])
def test_invalid_combinations_are_config_errors(name, overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        tiny(name, tmp_path, *overrides)


def test_cnn_encoder_decoder_has_the_seed_size_and_outputs_follow_the_input_size():
    assert sum(p.numel() for p in build_colorizer("cnn_encoder_decoder").parameters()) == 4_337_602
    x = torch.randn(1, 1, 36, 20)
    for name, kwargs, size in [("cnn_encoder_decoder", {"width": 4}, (36, 20)),
                               ("unet_regressor", {"width": 4}, (36, 20)),
                               ("resnet18_regressor", {"stages": 1}, (36, 20)),
                               ("eccv16", {"width": 4}, (9, 5)),  # the paper's 1/4-resolution logits
                               ("unet_classifier", {"width": 4}, (36, 20))]:
        assert build_colorizer(name, **kwargs).eval()(x).shape[-2:] == size, name


def test_pretrained_resnet18_loads_through_the_torch_hub_cache(tmp_path, monkeypatch):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    stand_in = torchvision.models.resnet18().state_dict()  # same keys and shapes as the ImageNet file
    torch.save(stand_in, checkpoints / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    gray = build_colorizer("resnet18_regressor", pretrained=True)
    assert torch.allclose(gray.encoder[0].weight, stand_in["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(gray.encoder[4][0].conv1.weight, stand_in["layer1.0.conv1.weight"])
    rgb = build_colorizer("resnet18_regressor", pretrained=True, in_channels=3, out_channels=3, final="sigmoid")
    assert torch.equal(rgb.encoder[0].weight, stand_in["conv1.weight"])
    assert not torch.equal(build_colorizer("resnet18_regressor").encoder[4][0].conv1.weight,
                           stand_in["layer1.0.conv1.weight"])


def test_pretrained_weights_that_cannot_be_downloaded_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    with pytest.raises(RuntimeError, match=r"resnet18-f37072fd\.pth.*pretrained=false") as info:
        build_colorizer("resnet18_regressor", pretrained=True)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in str(info.value)
    assert "network is unreachable" in str(info.value)
