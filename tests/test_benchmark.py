"""`gan-color benchmark`: a tiny run of every section gives the JSON keys, positive rates and same-run ratios."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from gan_color.cli import main
from gan_color.tools.benchmark import clock, command, loading, report, runner, settings
from gan_color.tools.benchmark.reference import Pix2PixColorization

ROOT = Path(__file__).resolve().parents[1]
REGRESSION = ROOT / "configs" / "baselines" / "regression_cnn_l2_lab.yaml"


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    if not REGRESSION.is_file():
        pytest.skip(f"{REGRESSION} is missing")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # default --threads: 1 on a CPU
        code = main(["benchmark", "--sizes", "32", "--steps", "1", "--warmup", "1", "--repeats", "1", "--batch-size",
                     "2", "--ngf", "4", "--ndf", "4", "--generators", "resnet_6blocks", "--baselines", str(REGRESSION),
                     "--data-images", "6", "--workers", "0", "--device", "cpu", "--json", str(out)])
    assert code == 0
    return {**json.loads(out.read_text()), "printed": printed.getvalue()}


def test_progress_with_an_eta_and_one_cpu_thread_by_default(result):
    lines = [line for line in result["printed"].splitlines() if "cases, ~" in line]
    assert lines and lines[-1].rstrip().endswith("min left]") and "[1/" in lines[0]
    assert result["environment"]["torch_threads"] == 1


def rows(result: dict, section: str) -> dict[str, dict]:
    return {row["name"]: row for row in result[section]}


def test_json_has_every_section_and_the_environment(result):
    assert {"environment", "settings", "rows", "seconds", *settings.SECTIONS} <= result.keys()
    assert result["environment"]["device"] == "cpu"
    assert result["settings"]["sizes"] == [32]
    assert len(result["rows"]) == sum(len(result[s]) for s in settings.SECTIONS)


def test_training_rows_are_positive_and_compared_with_the_gan(result):
    train = rows(result, "train")
    assert set(train) == {"gan_resnet_6blocks", "baseline_regression_cnn_l2_lab"}
    gan, baseline = train["gan_resnet_6blocks"], train["baseline_regression_cnn_l2_lab"]
    assert gan["images_per_sec"] > 0 and baseline["images_per_sec"] > 0
    assert baseline["baseline"] == "gan_resnet_6blocks"
    assert baseline["ratio"] == pytest.approx(baseline["images_per_sec"] / gan["images_per_sec"])
    assert gan["extra"]["params_discriminator"] > 0 and "params_discriminator" not in baseline["extra"]


def test_variants_measure_what_the_cpu_supports_and_say_why_not(result):
    variants = rows(result, "variants")
    assert set(variants) == set(settings.VARIANTS)
    for name in ("reference", "fp32", "fast", "channels_last", "bf16", "bf16+channels_last"):
        assert variants[name]["images_per_sec"] > 0, name
    for name in ("fp32", "fast", "channels_last"):  # every variant against the upstream step of the same run
        row = variants[name]
        assert row["baseline"] == "reference"
        assert row["ratio"] == pytest.approx(row["images_per_sec"] / variants["reference"]["images_per_sec"])
        assert row["extra"]["vs_fp32"] == pytest.approx(row["images_per_sec"] / variants["fp32"]["images_per_sec"])
    for name in ("fp16", "compile", "bf16+compile", "bf16+channels_last+compile", "fast+cudagraphs"):
        assert variants[name]["images_per_sec"] is None and variants[name]["note"], name


def test_reference_step_is_the_projects_fp32_step(tmp_path):
    """The upstream pix2pix step of the benchmark and the project's objective, from the same weights on the same
    batch, give the same losses and weights: the `reference` row measures the same maths."""
    from gan_color.models import build_colorizer, build_discriminator
    from gan_color.objectives import Pix2PixObjective

    torch.manual_seed(0)
    reference = Pix2PixColorization(ngf=4, ndf=4, n_blocks=6)
    generator, discriminator = build_colorizer("resnet_6blocks", ngf=4), build_discriminator("patchgan", ndf=4)
    generator.load_state_dict({k.replace("conv_block.", "block."): v for k, v in reference.netG.state_dict().items()})
    discriminator.load_state_dict(reference.netD.state_dict())
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
                  for name, net in (("generator", generator), ("discriminator", discriminator))}
    gray_l, real_ab = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 2, 32, 32) * 0.6 - 0.3
    with clock.accelerate_session(torch.device("cpu")):
        from accelerate import Accelerator

        accelerator, objective = Accelerator(cpu=True), Pix2PixObjective()
        for _ in range(3):
            reference.set_input(gray_l, real_ab)
            reference.optimize_parameters()
            ours = objective.training_step({"gray_l": gray_l, "real_ab": real_ab},
                                           {"generator": generator, "discriminator": discriminator}, optimizers,
                                           accelerator)
            assert ours["loss/D"].item() == pytest.approx(reference.loss_D.item(), rel=1e-4, abs=1e-6)
            assert ours["loss/G_L1"].item() * 100 == pytest.approx(reference.loss_G_L1.item(), rel=1e-4)
            assert ours["loss/G_GAN"].item() == pytest.approx(reference.loss_G_GAN.item(), rel=1e-4, abs=1e-6)
    # Weights agree too; the biases of convolutions followed by an instance norm are left out: their gradient is zero
    # in exact arithmetic, so Adam moves them by rounding noise, differently in two implementations.
    for (name, a), b in zip(reference.netD.state_dict().items(), discriminator.state_dict().values()):
        assert name.endswith("bias") or torch.allclose(a, b, atol=1e-5), name
    with torch.no_grad():
        assert torch.allclose(reference.netG(gray_l), generator(gray_l), atol=1e-4)


def test_data_rows_compare_with_per_image_skimage(result):
    data = rows(result, "data")
    for source in ("folder", "cache"):
        for method in ("lab_on_device", "lab_per_item_torch", "skimage_per_item"):
            row = data[f"{source}_{method}"]
            assert row["images_per_sec"] > 0 and row["baseline"] == f"{source}_skimage_per_item"
            assert row["extra"]["timed_batches"] >= loading.MIN_WINDOW  # steady state, many batches
            assert row["images_per_sec"] <= row["extra"]["plausible_max"]
        assert data[f"{source}_skimage_per_item"]["ratio"] == pytest.approx(1.0)
    assert data["prepare_data_cache"]["images_per_sec"] > 0
    for name in ("lab_skimage_per_image", "lab_torch_per_image", "lab_torch_batched"):
        assert data[name]["images_per_sec"] > 0 and data[name]["baseline"] == "lab_skimage_per_image", name


def test_colorize_rows(result):
    colorize = rows(result, "colorize")
    assert colorize["colorizer_model"]["images_per_sec"] > 0
    assert colorize["colorize_files"]["images_per_sec"] > 0
    assert colorize["colorize_files"]["ratio"] > 0


def test_accelerate_state_is_left_clean(result):
    from accelerate.state import AcceleratorState

    # No bf16 state left behind: the next Accelerator of the process starts from scratch.
    assert not AcceleratorState._shared_state


def test_skimage_reference_matches_the_colour_module():
    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return {"rgb": torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)), "index": index}

    item = loading.SkimageLab(One())[0]
    rgb = (item["rgb"] * 255).round() / 255
    uint8 = {"rgb": (item["rgb"] * 255).round().to(torch.uint8), "index": 0}
    assert torch.equal(loading.SkimageLab([uint8])[0]["real_ab"], item["real_ab"])
    from gan_color import color

    gray_l, real_ab = color.rgb_to_model_inputs(rgb[None])
    assert torch.allclose(item["gray_l"], gray_l[0], atol=1e-4)
    assert torch.allclose(item["real_ab"], real_ab[0], atol=1e-4)


def test_bad_arguments_exit_with_2(capsys):
    assert main(["benchmark", "--steps", "0"]) == 2
    assert main(["benchmark", "--data", "/no/such/folder"]) == 2
    assert "error" in capsys.readouterr().err


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return {"rgb": torch.full((3, 16, 16), 100, dtype=torch.uint8), "index": index}


def test_data_window_is_long_and_impossible_rates_are_flagged(monkeypatch):
    rate, detail = loading.loader_throughput(Items(), batch_size=4, workers=1, device=torch.device("cpu"),
                                               lab_on_device=True)
    # 10 images, batch 4: the dataset is repeated until the window holds 10x the 2 prefetched batches
    assert rate > 0 and detail["timed_batches"] >= 10 * detail["prefetch_batches"]
    monkeypatch.setattr(loading, "single_process_rate", lambda dataset, items=6: 1.0)  # a "slow" item
    rate, detail = loading.loader_throughput(Items(), batch_size=4, workers=1, device=torch.device("cpu"),
                                               lab_on_device=True)
    assert rate is None and "impossible" in detail["flag"]


def test_json_is_written_per_section_when_a_later_one_fails(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runner, "run_colorize", broken)
    out = tmp_path / "partial.json"
    code = main(["benchmark", "--only", "variants", "colorize", "--sizes", "32", "--steps", "1", "--warmup", "0",
                 "--repeats", "1", "--batch-size", "2", "--ngf", "4", "--ndf", "4", "--generators", "resnet_6blocks",
                 "--data-images", "4", "--workers", "0", "--threads", "1", "--device", "cpu", "--json", str(out)])
    assert code == 1 and "disk on fire" in capsys.readouterr().err
    partial = json.loads(out.read_text())
    assert rows(partial, "variants")["fp32"]["images_per_sec"] > 0
    assert partial["errors"] == {"colorize": "RuntimeError: disk on fire"} and partial["complete"]


def test_budget_records_cases_it_did_not_start():
    chosen = settings.Settings(sizes=[32], steps=1, warmup=0, repeats=1, batch_size=2, ngf=4, ndf=4,
                               generators=["resnet_6blocks"], only=["variants"], budget=1e-9, device="cpu")
    result = runner.benchmark(chosen, log=lambda line: None)
    variants = rows(result, "variants")
    assert variants["fp32"]["images_per_sec"] is None and variants["fp32"]["note"] == settings.NOT_RUN


def test_gpu_preset_command_parses():
    import argparse

    parser = argparse.ArgumentParser()
    command.add_cli_arguments(parser)
    chosen = command.settings_from_args(parser.parse_args(["--preset", "gpu", "--json", "x.json"]))
    assert chosen.variant_sizes == [256, 128, 64] and chosen.variant_batch_sizes == [16, 1]
    assert chosen.budget and chosen.budget < 480 and chosen.generators == ["resnet_9blocks"]
    assert chosen.only[0] == "variants" and chosen.ngf is None


def test_markdown_table_of_the_variants(result, tmp_path, capsys):
    text = report.markdown_tables(result)
    assert "| reference | **" in text and "x fp32)" in text and "32 px, batch 2" in text
    (tmp_path / "r.json").write_text(json.dumps(result))
    assert main(["benchmark", "--table", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out.startswith("| variant |")
