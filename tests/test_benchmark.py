"""`gan-color benchmark`: a tiny run of every section gives the JSON keys, positive rates and same-run ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gan_color import benchmark
from gan_color.cli import main

ROOT = Path(__file__).resolve().parents[1]
REGRESSION = ROOT / "configs" / "baselines" / "regression_cnn_l2_lab.yaml"


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    if not REGRESSION.is_file():
        pytest.skip(f"{REGRESSION} is missing")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    code = main(["benchmark", "--sizes", "32", "--steps", "1", "--warmup", "1", "--repeats", "1", "--batch-size", "2",
                 "--ngf", "4", "--ndf", "4", "--generators", "resnet_6blocks", "--baselines", str(REGRESSION),
                 "--data-images", "6", "--workers", "0", "--threads", "1", "--device", "cpu", "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def rows(result: dict, section: str) -> dict[str, dict]:
    return {row["name"]: row for row in result[section]}


def test_json_has_every_section_and_the_environment(result):
    assert {"environment", "settings", "rows", "seconds", *benchmark.SECTIONS} <= result.keys()
    assert result["environment"]["device"] == "cpu"
    assert result["settings"]["sizes"] == [32]
    assert len(result["rows"]) == sum(len(result[s]) for s in benchmark.SECTIONS)


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
    assert set(variants) == set(benchmark.VARIANTS)
    for name in ("fp32", "channels_last", "bf16", "bf16+channels_last"):
        assert variants[name]["images_per_sec"] > 0, name
    assert variants["channels_last"]["ratio"] > 0 and variants["channels_last"]["baseline"] == "fp32"
    for name in ("fp16", "compile"):
        assert variants[name]["images_per_sec"] is None and variants[name]["note"], name


def test_data_rows_compare_with_per_image_skimage(result):
    data = rows(result, "data")
    for source in ("folder", "cache"):
        for method in ("lab_on_device", "lab_per_item_torch", "skimage_per_item"):
            row = data[f"{source}_{method}"]
            assert row["images_per_sec"] > 0 and row["baseline"] == f"{source}_skimage_per_item"
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

    item = benchmark.SkimageLab(One())[0]
    rgb = (item["rgb"] * 255).round() / 255
    uint8 = {"rgb": (item["rgb"] * 255).round().to(torch.uint8), "index": 0}
    assert torch.equal(benchmark.SkimageLab([uint8])[0]["real_ab"], item["real_ab"])
    from gan_color import color

    gray_l, real_ab = color.rgb_to_model_inputs(rgb[None])
    assert torch.allclose(item["gray_l"], gray_l[0], atol=1e-4)
    assert torch.allclose(item["real_ab"], real_ab[0], atol=1e-4)


def test_bad_arguments_exit_with_2(capsys):
    assert main(["benchmark", "--steps", "0"]) == 2
    assert main(["benchmark", "--data", "/no/such/folder"]) == 2
    assert "error" in capsys.readouterr().err
