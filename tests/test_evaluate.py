"""`gan-color evaluate` end to end on real photos with a tiny export, the Python API's wiring, classifiers, the
unavailable-weights path, and W&B logging (offline, and without wandb)."""

from __future__ import annotations

import csv
import importlib.util
import json
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from gan_color import ab_grid, color
from gan_color.cli import main
from gan_color.data.images import list_images, load_rgb
from gan_color.data.transforms import eval_transform
from gan_color.eval import wandb_report
from gan_color.eval.evaluate import evaluate
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.metrics import scores as M
from gan_color.models import build_colorizer

REPO = Path(__file__).resolve().parents[1]
CHEAP = ["psnr_rgb_uint8", "ssim_rgb_uint8", "colorfulness", "delta_colorfulness", "auc_ab_0_150", "bin_accuracy"]




@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    network = build_colorizer("resnet_6blocks", ngf=8)
    return save_export(network, ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run="tiny"),
                       tmp_path / "tiny")


class ConstantAB(nn.Module):
    """Predicts one ab value everywhere (0 = gray), so expected metric values can be computed by hand."""

    def __init__(self, ab: float = 0.0) -> None:
        super().__init__()
        self.ab = nn.Parameter(torch.full((1, 2, 1, 1), ab))

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        return self.ab.expand(len(gray_l), 2, *gray_l.shape[-2:])


def test_evaluate_cli_end_to_end(run_dir: Path, photo_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["evaluate", "--model", str(run_dir), "--data", str(photo_dir), "--size", "32", "--limit", "6",
               "--workers", "0", "--quiet", "--best-worst", "2", "--metrics", *CHEAP])
    assert rc == 0
    out_dir = run_dir / "eval" / photo_dir.name
    summary = json.loads((out_dir / "metrics.json").read_text())
    assert summary["protocol"]["size"] == 32 and summary["protocol"]["limit"] == 6
    assert summary["model"]["arch"] == "resnet_6blocks" and summary["data"]["root"] == str(photo_dir.resolve())
    assert set(summary["metrics"]) == {"psnr_rgb_uint8", "ssim_rgb_uint8", "colorfulness",
                                       "delta_colorfulness", "colorfulness_real", "auc_ab_0_150"}
    assert 5 < summary["metrics"]["psnr_rgb_uint8"] < 40
    assert "bin_accuracy" in summary["not_applicable"] and summary["unavailable"] == {}
    with (out_dir / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["count"] > 0
    assert all((photo_dir / row["file"]).is_file() for row in rows)
    mean_psnr = sum(float(row["psnr_rgb_uint8"]) for row in rows) / len(rows)
    assert mean_psnr == pytest.approx(summary["metrics"]["psnr_rgb_uint8"], rel=1e-6)  # per image, then averaged
    grid = Image.open(out_dir / "best_worst.png")
    assert grid.width > 3 * 150 and grid.height > 4 * 150  # 3 columns, 2 best + 2 worst rows
    assert "not applicable" in capsys.readouterr().out


def test_evaluate_cli_scores_lpips_with_the_real_weights(run_dir: Path, photo_dir: Path, prepared_torch_home: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(prepared_torch_home))
    assert main(["evaluate", "--model", str(run_dir), "--data", str(photo_dir), "--size", "32", "--limit", "3",
                 "--workers", "0", "--quiet", "--best-worst", "0", "--out", str(tmp_path / "out"),
                 "--metrics", "psnr_rgb_uint8", "lpips_alex"]) == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(summary["metrics"]) == {"psnr_rgb_uint8", "lpips_alex"} and summary["unavailable"] == {}
    assert 0 < summary["metrics"]["lpips_alex"] < 1


def test_evaluate_api_numbers_match_a_direct_computation(photo_dir: Path) -> None:
    colorizer = Colorizer(ConstantAB(0.0), ExportSpec(arch="constant", kwargs={}, image_size=32))
    result = evaluate(colorizer, photo_dir, size=32, limit=5, metrics=["psnr_rgb_uint8", "auc_ab_0_150"],
                      device="cpu", progress=False, drop_grayscale=False)
    crop = eval_transform(32)
    real = torch.stack([crop(load_rgb(p, 32)) for p in list_images(photo_dir)[:5]])
    gray_l, real_ab = color.rgb_to_model_inputs(real)
    gray = color.model_outputs_to_rgb(gray_l, torch.zeros_like(real_ab))
    psnr = M.psnr_uint8(color.rgb_to_uint8(gray), color.rgb_to_uint8(real))
    auc = M.auc_ab(torch.zeros_like(real_ab), color.denormalize_ab(real_ab))
    assert [row["psnr_rgb_uint8"] for row in result["per_image"]] == pytest.approx(psnr.tolist(), abs=1e-4)
    assert result["metrics"]["auc_ab_0_150"] == pytest.approx(float(auc.mean()), abs=1e-6)
    assert [row["file"] for row in result["per_image"]] == [p.name for p in list_images(photo_dir)[:5]]


def test_classifier_bin_accuracy_in_full_resolution_mode(photo_dir: Path) -> None:
    q = len(ab_grid.ab_bins())
    torch.manual_seed(0)
    spec = ExportSpec(arch="conv1x1", kwargs={}, output="ab_logits", num_bins=q, image_size=32)
    result = evaluate(Colorizer(nn.Conv2d(1, q, 1), spec), photo_dir, size=32, limit=3, full_resolution=True,
                      metrics=["bin_accuracy", "psnr_rgb_uint8"], device="cpu", progress=False)
    assert 0 <= result["metrics"]["bin_accuracy"] <= 1 and result["protocol"]["full_resolution"]
    assert result["count"] == len(result["per_image"]) > 0


def test_missing_weights_are_reported_and_other_metrics_run(run_dir: Path, photo_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    rc = main(["evaluate", "--model", str(run_dir), "--data", str(photo_dir), "--size", "32", "--limit", "3",
               "--workers", "0", "--quiet", "--best-worst", "0", "--out", str(tmp_path / "out"),
               "--metrics", "psnr_rgb_uint8", "lpips_alex", "fid"])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(summary["metrics"]) == ["psnr_rgb_uint8"]
    assert set(summary["unavailable"]) == {"lpips_alex", "fid"}
    printed = capsys.readouterr()
    assert "lpips_alex             unavailable: lpips_alex: the torchvision ImageNet alex" in printed.out
    assert "TORCH_HOME" in printed.out and "Traceback" not in printed.out + printed.err


def test_cli_errors_are_messages(run_dir: Path, photo_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--model", str(run_dir), "--data", str(photo_dir), "--metrics", "psnr_rgb_unit8"]) == 2
    assert "did you mean 'psnr_rgb_uint8'" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(photo_dir)]) == 2
    assert "no model export" in capsys.readouterr().err


def _result() -> dict:
    rows = [{"index": i, "file": f"{i}.jpg", "psnr_rgb_uint8": 20.0 + i} for i in range(3)]
    return {"metrics": {"psnr_rgb_uint8": 21.0}, "per_image": rows, "data": {"name": "photos"},
            "model": {"arch": "x"}, "protocol": {"size": 32}}


def test_wandb_resumes_the_training_run_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tracking.json").write_text(json.dumps({"wandb_run_id": "trainrun1", "project": "p", "group": "g"}))
    assert wandb_report.log_evaluation(run, _result(), run / "eval" / "photos") == "trainrun1"
    offline = list((tmp_path / "wandb").glob("offline-run-*-trainrun1"))
    assert len(offline) == 1
    tables = list(offline[0].rglob("*.table.json"))
    assert len(tables) == 1 and len(json.loads(tables[0].read_text())["data"]) == 3
    # without tracking.json (no W&B in training): a new job_type="eval" run
    (run / "tracking.json").unlink()
    new_id = wandb_report.log_evaluation(run, _result(), run / "eval" / "photos")
    assert new_id not in (None, "trainrun1") and list((tmp_path / "wandb").glob(f"offline-run-*-{new_id}"))


def test_wandb_missing_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name))
    assert wandb_report.log_evaluation(tmp_path, _result(), tmp_path) is None
    assert "W&B logging skipped" in capsys.readouterr().err


def test_model_size_runs_the_network_at_that_size_and_upsamples(photo_dir: Path) -> None:
    seen = []

    class Spy(ConstantAB):
        def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(gray_l.shape[-2:]))
            return super().forward(gray_l)

    colorizer = Colorizer(Spy(0.2), ExportSpec(arch="spy", kwargs={}, image_size=16))
    result = evaluate(colorizer, photo_dir, size=32, limit=3, model_size=16, metrics=["psnr_rgb_uint8"],
                      device="cpu", progress=False)
    assert set(seen) == {(16, 16)} and result["count"] == 3
    assert result["protocol"]["model_size"] == 16 and "the model sees L resized to 16x16" in result["protocol"]["crop"]
    seen.clear()
    plain = evaluate(colorizer, photo_dir, size=32, limit=3, metrics=["psnr_rgb_uint8"], device="cpu", progress=False)
    assert set(seen) == {(32, 32)} and plain["protocol"]["model_size"] == 32
    # a constant ab upsampled is the same constant: the same scores either way
    assert result["metrics"]["psnr_rgb_uint8"] == pytest.approx(plain["metrics"]["psnr_rgb_uint8"], abs=1e-4)


def test_model_size_train_on_the_cli_and_a_bad_value(run_dir: Path, photo_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    args = ["evaluate", "--model", str(run_dir), "--data", str(photo_dir), "--size", "48", "--limit", "2",
            "--workers", "0", "--quiet", "--best-worst", "0", "--out", str(tmp_path / "out"), "--metrics",
            "psnr_rgb_uint8"]
    assert main([*args, "--model-size", "train"]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["protocol"]["model_size"] == 32
    capsys.readouterr()
    assert main([*args, "--model-size", "3"]) == 2
    assert "--model-size must be a size of at least 16 px or 'train', got '3'" in capsys.readouterr().err
