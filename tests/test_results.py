"""scripts/make_results.py (gan_color.tools.results): a deterministic, disjoint split and a tiny end-to-end run that
writes the table from its template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gan_color.cli import main as cli_main
from gan_color.tools.configs import ConfigNotFoundError, config_path
from gan_color.tools.results import command, models, report, split

ROOT = Path(__file__).resolve().parents[1]


def image_folder(path: Path, count: int) -> Path:
    for i in range(count):
        (path / f"class{i % 3}").mkdir(parents=True, exist_ok=True)
        (path / f"class{i % 3}" / f"img{i:03d}.jpg").write_bytes(b"")  # the split reads names only
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))


def test_split_is_deterministic_disjoint_and_links_the_originals(tmp_path):
    data = image_folder(tmp_path / "data", 30)
    first = split.make_split(data, tmp_path / "a", train=20, heldout=7, seed=3)
    again = split.make_split(data, tmp_path / "b", train=20, heldout=7, seed=3)
    train, heldout = listing(first["train"]), listing(first[split.HELDOUT])
    assert (len(train), len(heldout)) == (20, 7)
    assert not set(train) & set(heldout)
    assert (train, heldout) == (listing(again["train"]), listing(again[split.HELDOUT]))
    link = first["train"] / train[0]
    assert link.is_symlink() and link.resolve() == (data / train[0]).resolve()
    manifest = json.loads((tmp_path / "a" / "split.json").read_text())
    assert manifest["train"] == train and manifest["heldout"] == heldout and manifest["seed"] == 3
    other = split.make_split(data, tmp_path / "c", train=20, heldout=7, seed=4)
    assert listing(other[split.HELDOUT]) != heldout


def test_split_keeps_its_held_out_images_when_files_are_added(tmp_path):
    data = image_folder(tmp_path / "data", 30)
    before = listing(split.make_split(data, tmp_path / "a", train=10, heldout=5)[split.HELDOUT])
    image_folder(tmp_path / "more", 40)  # same names plus 10 new ones
    names = set(listing(tmp_path / "more")) - set(listing(data))
    after = split.split_order(listing(data) + sorted(names), 0)[:5]
    assert set(after) - set(before) <= names  # old files keep their rank; only new files can enter


def test_split_rejects_more_images_than_the_folder_has(tmp_path):
    data = image_folder(tmp_path / "data", 10)
    with pytest.raises(ValueError, match="holds 10 images"):
        split.make_split(data, tmp_path / "s", train=8, heldout=5)


def test_unknown_model_names_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        models.selected_models(["no_such_model"])
    assert [name for name, _ in models.selected_models(None)] == list(models.MODELS)
    for _, config in models.MODELS.items():
        assert config_path(config).is_file(), config


def test_notes_survive_regeneration(tmp_path):
    path = tmp_path / "results.md"
    assert "Observations" in report.kept_notes(path)
    path.write_text(f"old table\n{report.NOTES_BEGIN}\nthe GAN is browner\n{report.NOTES_END}\n")
    assert report.kept_notes(path) == "the GAN is browner"


def test_tiny_end_to_end_writes_the_table_and_sheets(tmp_path, photo_dir):
    try:
        config_path(models.MODELS["cnn_l2_lab"])
    except ConfigNotFoundError:
        pytest.skip("baseline configs are missing")
    out, work = tmp_path / "docs", tmp_path / "work"
    args = ["--data", str(photo_dir), "--out", str(out), "--work", str(work), "--size", "32", "--steps", "2",
            "--batch-size", "2", "--train", "8", "--heldout", "4", "--models", str(ROOT / "configs" / "tiny_cpu.yaml"),
            "cnn_l2_lab", "--metrics", "psnr_rgb_uint8", "ssim_rgb_uint8", "colorfulness", "delta_colorfulness",
            "--workers", "0", "--threads", "1", "--sheet-images", "2"]
    assert command.main(args) == 0
    text = (out / "results.md").read_text()
    for row in ("| tiny_cpu | pix2pix", "| cnn_l2_lab | regression", "| *gray input (ab = 0)*", "PSNR dB ↑"):
        assert row in text, row
    assert "2 steps x 2 images" in text and report.NOTES_BEGIN in text
    payload = json.loads((out / "results" / "results.json").read_text())
    names = [m["name"] for m in payload["models"]]
    assert names == ["tiny_cpu", "cnn_l2_lab", "gray input (ab = 0)"]
    for model in payload["models"]:
        assert model["metrics"]["psnr_rgb_uint8"] > 0 and 0 < model["metrics"]["ssim_rgb_uint8"] <= 1
    assert payload["models"][0]["training"]["seconds"] > 0
    assert payload["models"][0]["training"]["params_discriminator"] > 0
    assert (out / "results" / "sheet_1.jpg").is_file() and (out / "results" / "metrics.png").is_file()
    assert (work / "runs" / "cnn_l2_lab" / "eval" / "heldout" / "metrics.json").is_file()
    # Same runs asked with another budget: refused instead of silently mixing settings.
    assert command.main([*args[:9], "3", *args[10:]]) == 2


def test_results_command_names_the_missing_config(tmp_path, capsys):
    data = image_folder(tmp_path / "data", 12)
    code = cli_main(["results", "--data", str(data), "--out", str(tmp_path / "docs"), "--work", str(tmp_path / "w"),
                     "--train", "8", "--heldout", "4", "--models", "cnn_l2_lab", "--configs", str(tmp_path / "none")])
    assert code == 2
    err = capsys.readouterr().err
    assert "baselines/regression_cnn_l2_lab.yaml" in err and str(tmp_path / "none") in err and "--configs" in err


def test_fid_train_size_scores_the_network_at_its_training_size(tmp_path, monkeypatch):
    from argparse import Namespace
    from types import SimpleNamespace

    from gan_color.tools.results import scoring

    asked = []

    def fake_evaluate_model(colorizer, heldout, out_dir, *, model_size=None, **kwargs):
        asked.append((out_dir.name, kwargs["size"], model_size))
        return {"metrics": {"fid320": 50.0 if model_size else 60.0}}

    monkeypatch.setattr(scoring, "evaluate_model", fake_evaluate_model)
    colorizer = SimpleNamespace(spec=SimpleNamespace(image_size=128))
    args = Namespace(fid_size=256, fid_train_size=True, device="cpu", no_download=True, work=str(tmp_path))
    scores = scoring.fid_at(colorizer, tmp_path, args, tmp_path)
    assert scores == {"fid320_256px": 60.0, "fid320_256px_trainsize": 50.0}
    assert asked == [("heldout_fid256", 256, None), ("heldout_fid256_trainsize", 256, 128)]
    assert report.header("fid320_256px_trainsize") == "FID (320 img, 256px, network at its training size) ↓"
    args.fid_train_size = False
    assert scoring.fid_at(colorizer, tmp_path, args, tmp_path) == {"fid320_256px": 60.0}


def test_scores_are_reused_only_for_the_same_weights_images_and_protocol(tmp_path, photo_dir, monkeypatch):
    import torch

    from gan_color.inference import Colorizer, ExportSpec
    from gan_color.models import build_colorizer
    from gan_color.tools.results import scoring

    calls = []
    real_evaluate = scoring.evaluate

    def counting_evaluate(*args, **kwargs):
        calls.append(kwargs["size"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(scoring, "evaluate", counting_evaluate)
    torch.manual_seed(0)
    colorizer = Colorizer(build_colorizer("resnet_6blocks", ngf=4), ExportSpec(arch="resnet_6blocks",
                                                                                kwargs={"ngf": 4}, image_size=32))
    options = dict(size=32, metrics=["psnr_rgb_uint8", "colorfulness"], device="cpu", allow_download=False,
                   fid_cache=tmp_path / "fid", best_worst=False)
    first = scoring.evaluate_model(colorizer, photo_dir, tmp_path / "eval", **options)
    again = scoring.evaluate_model(colorizer, photo_dir, tmp_path / "eval", **options)
    assert len(calls) == 1 and again["metrics"] == pytest.approx(first["metrics"])
    assert again["per_image"] == [pytest.approx(row) for row in first["per_image"]]
    scoring.evaluate_model(colorizer, photo_dir, tmp_path / "eval", **{**options, "size": 40})
    with torch.no_grad():
        next(colorizer.network.parameters()).add_(0.01)
    scoring.evaluate_model(colorizer, photo_dir, tmp_path / "eval", **options)
    assert calls == [32, 40, 32]
