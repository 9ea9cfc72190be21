"""`gan-color compare` on two small evaluated runs: table (markdown + CSV), plots, the cross-model image sheet, and
publishing to W&B offline; runs without an evaluation."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_color.cli import main
from gan_color.eval.compare import choose_dataset
from gan_color.eval.evaluate import evaluate, write_report
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.metrics.ranking import metric_direction
from gan_color.models import build_colorizer

METRICS = ["psnr_rgb_uint8", "auc_ab_0_150", "colorfulness", "delta_colorfulness"]


def make_run(folder: Path, seed: int, *, steps: int = 0) -> Path:
    """A tiny export, and with `steps` a fake metrics.jsonl of that many logged steps."""
    torch.manual_seed(seed)
    network = build_colorizer("resnet_6blocks", ngf=8)
    save_export(network, ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run=folder.name), folder)
    with (folder / "metrics.jsonl").open("w") as f:
        for step in range(0, steps, 10):
            f.write(json.dumps({"step": step, "loss/G_L1": (seed + 1) * math.exp(-step / 50), "loss/G_GAN": 0.7,
                                "loss/D_real": 0.3, "loss/D_fake": 0.2, "val/psnr_rgb_uint8": 15 + step / 20}) + "\n")
        f.write('{"step": 999, "loss/G_L1": 0.')  # a line cut by a crash is skipped
    return folder


@pytest.fixture(scope="module")
def runs(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    folders = [make_run(root / "gan_a", 0, steps=100), make_run(root / "gan_b", 1, steps=60)]
    for folder in folders:
        result = evaluate(Colorizer.load(folder), photo_dir, size=32, limit=5, metrics=METRICS, device="cpu",
                          progress=False)
        write_report(result, folder / "eval" / photo_dir.name)
    return folders


def test_compare_writes_table_plots_sheet_and_wandb_run(runs: list[Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wandb_installed = importlib.util.find_spec("wandb") is not None
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "cmp"
    args = ["compare", *map(str, runs), "--out", str(out), "--device", "cpu", "--num-images", "3"]
    assert main(args + (["--wandb"] if wandb_installed else [])) == 0

    with (out / "comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == ["gan_a", "gan_b"]
    for row, run in zip(rows, runs):
        evaluated = json.loads(next((run / "eval").glob("*/metrics.json")).read_text())["metrics"]
        assert float(row["psnr_rgb_uint8"]) == pytest.approx(evaluated["psnr_rgb_uint8"])
    table = (out / "comparison.md").read_text().splitlines()
    assert table[0].startswith("| run | psnr_rgb_uint8 ↑ | auc_ab_0_150 ↑ | delta_colorfulness ↓")
    assert len(table) == 4 and table[2].count("**") + table[3].count("**") == 2 * 3  # one best per ranked metric

    for name in ("metrics.png", "training_curves.png"):
        assert Image.open(out / name).size[0] > 300
    sheet = Image.open(out / "sheet.png")
    assert sheet.width > 4 * 160 and sheet.height > 3 * 160  # gray | gan_a | gan_b | truth, 3 inputs
    if wandb_installed:
        offline = list((tmp_path / "wandb").glob("offline-run-*"))
        assert len(offline) == 1 and list(offline[0].rglob("*.table.json"))


def test_runs_without_evaluation(runs: list[Path], photo_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    fresh = make_run(tmp_path / "fresh", 2)
    assert main(["compare", str(fresh), "--out", str(tmp_path / "a"), "--num-images", "0"]) == 0
    assert (tmp_path / "a" / "comparison.md").read_text().splitlines()[2] == "| fresh | n/a | n/a |"
    assert "has no evaluation" in capsys.readouterr().err
    # the sheet needs inputs: the evaluated run's recorded folder, or --data
    assert main(["compare", str(fresh), "--out", str(tmp_path / "b"), "--device", "cpu"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["compare", str(runs[0]), str(fresh), "--out", str(tmp_path / "c"), "--device", "cpu",
                 "--num-images", "2"]) == 0
    assert "| fresh | n/a |" in (tmp_path / "c" / "comparison.md").read_text()
    assert Image.open(tmp_path / "c" / "sheet.png").width > 4 * 160


def test_dataset_choice_and_metric_directions(tmp_path: Path) -> None:
    for dataset in ("photos", "faces"):
        (tmp_path / "run" / "eval" / dataset).mkdir(parents=True)
        (tmp_path / "run" / "eval" / dataset / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="--dataset"):
        choose_dataset([tmp_path / "run"], None)
    assert choose_dataset([tmp_path / "run"], "faces") == "faces"
    assert metric_direction("fid10k") is False and metric_direction("psnr_rgb_uint8") is True
    assert metric_direction("colorfulness") is None and metric_direction("fidelity") is None
