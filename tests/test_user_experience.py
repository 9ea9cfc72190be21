"""What a user sees: captioned images on the dashboards (TensorBoard event files, W&B offline run files read back),
the W&B comparison table, commands that end with what they wrote and what to run next, and the help text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gan_color import train
from gan_color.cli import SUBCOMMANDS, build_subparser, main
from gan_color.config import load_config
from gan_color.eval.evaluate import evaluate, write_report
from gan_color.eval.wandb_report import offline_history, offline_records, offline_table, offline_table_html
from gan_color.inference import Colorizer

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


# ----------------------------------------------------------------------------------------------------------------
# Reading what the trackers wrote, as their UIs would (W&B: gan_color.eval.wandb_report.offline_*)


def wandb_run_info(run_folder: Path) -> Any:
    return next(r.run for r in offline_records(run_folder) if r.WhichOneof("record_type") == "run")


def tensorboard_images(logdir: Path) -> dict[str, tuple[list[int], str, list[Any]]]:
    """Image tag -> (steps, description, PIL images) from every event file under `logdir`."""
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for path in logdir.rglob("events.out.tfevents*"):
        events = EventAccumulator(str(path), size_guidance={"images": 0})
        events.Reload()
        for tag in events.Tags()["images"]:
            found[tag] = ([e.step for e in events.Images(tag)], events.SummaryMetadata(tag).summary_description,
                          [Image.open(io.BytesIO(e.encoded_image_string)) for e in events.Images(tag)])
    return found


# ----------------------------------------------------------------------------------------------------------------
# Item 1: dashboards with pictures


def test_training_logs_captioned_probe_grids_and_held_out_images(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    cfg = load_config(TINY, [f"train.output_dir={tmp_path}", "tracking.wandb=true", "tracking.tensorboard=true",
                             "train.validate_every=2", "train.validate_images=4"])
    run_dir = train.main(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "val/psnr_rgb_uint8" in row] == [2, 4, 6]

    images = tensorboard_images(run_dir / "tensorboard")
    assert images["samples/probes"][0] == [3, 6]  # sample_every=3
    assert "gray input | generated | ground truth" in images["samples/probes"][1]
    assert images["val/held_out"][0] == [2, 4, 6]  # every validation
    assert "gray input | generated | ground truth" in images["val/held_out"][1]
    # the captions are drawn above the pictures: a white band, then the picture (4 strips of 3 crops, stacked)
    stack = images["val/held_out"][2][-1]
    assert stack.width >= 3 * cfg.data.size and stack.height > 4 * cfg.data.size
    assert stack.getpixel((2, 2)) == (255, 255, 255)

    offline = next((run_dir / "wandb").glob("offline-run-*"))
    history = offline_history(offline)
    assert len(history["samples/probes/path"]) == 2
    assert all((offline / "files" / path).is_file() for path in history["samples/probes/path"])
    assert "gray input | generated | ground truth" in history["samples/probes/caption"][0]
    captions = history["val/held_out/captions"][-1]
    assert len(captions) == 4 and all("PSNR" in caption for caption in captions)
    assert all((offline / "files" / path).is_file() for path in history["val/held_out/filenames"][-1])


@pytest.fixture(scope="module")
def evaluated_runs(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from test_compare import METRICS, make_run

    root = tmp_path_factory.mktemp("ux_runs")
    folders = [make_run(root / "gan_a", 0, steps=100), make_run(root / "gan_b", 1, steps=60)]
    for folder in folders:
        result = evaluate(Colorizer.load(folder), photo_dir, size=32, limit=5, metrics=METRICS, device="cpu",
                          progress=False)
        write_report(result, folder / "eval" / photo_dir.name)
    return folders


def test_compare_wandb_table_has_a_row_per_held_out_image(evaluated_runs: list[Path], photo_dir: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # where offline tables are staged
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, evaluated_runs), "--out", str(out), "--device", "cpu", "--num-images", "2",
                 "--wandb", "--wandb-images", "4"]) == 0
    printed = capsys.readouterr().out
    assert "W&B: comparison run 'compare: gan_a vs gan_b on" in printed
    assert f"next: look at {out / 'sheet.png'}" in printed

    offline = next((tmp_path / "wandb").glob("offline-run-*"))
    info = wandb_run_info(offline)
    assert info.job_type == "compare" and info.run_group == f"compare-{photo_dir.name}"
    table, files = offline_table(offline, "comparison/examples")
    assert table["columns"][:5] == ["file", "gray input", "gan_a", "gan_b", "ground truth"]
    assert "gan_a psnr_rgb_uint8" in table["columns"] and "gan_b auc_ab_0_150" in table["columns"]
    assert len(table["data"]) == 4  # one row per held-out image
    per_image = {row["file"]: row for row in _csv(evaluated_runs[1] / "eval" / photo_dir.name / "per_image.csv")}
    psnr_b = table["columns"].index("gan_b psnr_rgb_uint8")
    for row in table["data"]:
        assert row[psnr_b] == pytest.approx(float(per_image[row[0]]["psnr_rgb_uint8"]))
        for cell in row[1:5]:  # the four pictures, each a PNG the table ships with
            assert cell["_type"] == "image-file" and files[cell["path"]].read_bytes()[:4] == b"\x89PNG"
    # a bar chart per ranked metric and a line chart per training curve, every run in each
    bars, _ = offline_table(offline, "comparison/psnr_rgb_uint8_table")
    assert sorted(row[0] for row in bars["data"]) == ["gan_a", "gan_b"]
    metrics, _ = offline_table(offline, "comparison/table")
    assert [row[0] for row in metrics["data"]] == ["gan_a", "gan_b"]
    history = offline_history(offline)
    assert {"comparison/metrics/path", "comparison/curves/path", "comparison/sheet/path"} <= set(history)
    lines, _ = offline_table(offline, "curves/loss/G_L1_table")
    assert {row[1] for row in lines["data"]} == {"gan_a", "gan_b"}
    page = offline_table_html(offline, "comparison/examples", tmp_path / "table.html").read_text()
    assert "not a screenshot of the W&amp;B web UI" in page and page.count("<tr>") == 1 + 4
    assert page.count("data:image/png;base64,") == 4 * 4


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------------------------
# Item 3: every command ends with what it wrote and what to run next


def test_train_ends_with_its_paths_and_the_next_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}", "tracking.tensorboard=true"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "tiny"
    assert f"tiny: trained to step 6; everything is in {run_dir}/" in out
    for path in (run_dir / "generator.safetensors", run_dir / "metrics.jsonl", run_dir / "samples",
                 run_dir / "checkpoints" / "step_00000006"):
        assert str(path) in out and path.exists()
    assert f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}" in out.split("trained to step")[0]
    assert f"  TensorBoard    tensorboard --logdir {run_dir / 'tensorboard'}" in out
    assert f"next: gan-color colorize --model {run_dir} PHOTOS --out colorized/" in out


def test_evaluate_says_why_files_were_left_out(evaluated_runs: list[Path], photo_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted(photo_dir.glob("*.jpg"))[:3]:
        Image.open(path).save(photos / path.name)
    Image.open(path).convert("L").convert("RGB").save(photos / "gray.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["evaluate", "--model", str(evaluated_runs[0]), "--data", str(photos), "--size", "32",
                 "--metrics", "psnr_rgb_uint8", "--workers", "0", "--no-progress", "--best-worst", "0"]) == 0
    out = capsys.readouterr().out
    assert "scored 3 of 5 files; left out: 1 without colour (grayscale; --keep-grayscale scores them); " \
           "1 unreadable (broken.jpg)" in out
    assert f"wrote {evaluated_runs[0] / 'eval' / 'photos' / 'metrics.json'}" in out
    assert f"next: evaluate other runs on the same folder, then `gan-color compare {evaluated_runs[0]}" in out


def test_colorize_names_its_output_folder(evaluated_runs: list[Path], photo_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    photo = sorted(photo_dir.glob("*.jpg"))[0]
    out_dir = tmp_path / "colorized"
    assert main(["colorize", "--model", str(evaluated_runs[0]), str(photo), "--out", str(out_dir),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"wrote them to {out_dir}/" in out and (out_dir / photo.name).is_file()
    assert f"next: look at them, or score the model on colour photos: gan-color evaluate --model " \
           f"{evaluated_runs[0]} --data DIR" in out


def test_human_eval_says_what_to_share_and_how_to_score(evaluated_runs: list[Path], photo_dir: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "rating"
    assert main(["human-eval", "export", "--models", *map(str, evaluated_runs), "--data", str(photo_dir),
                 "--n", "4", "--size", "32", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"rater package: {out / 'rater'}" in printed and (out / "rater" / "index.html").is_file()
    assert f"next: raters open {out / 'rater'}/index.html" in printed
    assert f"gan-color human-eval score --key {out / 'key.json'} --answers" in printed


# ----------------------------------------------------------------------------------------------------------------
# Item 5: help text a user can read


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_for_users(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    description = text.split("positional arguments")[0]
    assert "implemented by a module" not in description and description.rstrip().endswith(".yaml")
    assert "configs/accelerate/cpu.yaml" in description


@pytest.mark.parametrize("argv", [[name] for name in SUBCOMMANDS] + [["human-eval", "export"],
                                                                     ["human-eval", "score"]])
def test_every_option_has_help_defaults_and_an_example(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    text = _help(argv, capsys)
    assert "example:\n  gan-color " + argv[0] in text
    parser = build_subparser(argv[0])
    if len(argv) > 1:
        parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[argv[1]]
    for action in parser._actions:
        if action.help == "==SUPPRESS==" or action.__class__.__name__ == "_SubParsersAction":
            continue
        assert action.help, f"{argv} {action.option_strings or action.dest} has no help"
        if action.option_strings and action.default not in (None, False) and "--help" not in action.option_strings:
            assert "default" in parser.formatter_class("x")._get_help_string(action)


def test_one_progress_flag_name(capsys: pytest.CaptureFixture) -> None:
    for argv in (["evaluate"], ["colorize"], ["human-eval", "export"]):
        text = _help(argv, capsys)
        assert "--no-progress" in text and "--quiet" not in text
    parser = build_subparser("evaluate")  # the old name still works, hidden
    args = parser.parse_args(["--model", "m", "--data", "d", "--quiet"])
    assert args.no_progress is True


# ----------------------------------------------------------------------------------------------------------------
# Item 4: `accelerate launch` as the README writes it: no warning block, and a failure is one line + non-zero exit


@pytest.mark.slow
def test_accelerate_launch_with_the_preset_is_quiet() -> None:
    import shutil

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}  # as a user's shell has it
    readme = (ROOT / "README.md").read_text()
    first = "accelerate launch -q --config_file configs/accelerate/cpu.yaml --num_cpu_threads_per_process 1 \\\n" \
            "    train_gan.py --config configs/quickstart.yaml"
    assert first in readme
    launch = [accelerate, *first.replace("\\\n", "").split()[1:]]
    ok = subprocess.run([*launch, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "name: quickstart" in ok.stdout
    assert "were not passed" not in ok.stderr and "Traceback" not in ok.stderr
    bad = subprocess.run([*launch, "optim.lrr=1e-4"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["config error: unknown config key 'optim.lrr' (did you mean 'lr'?); "
                                               "valid keys here: ['lr', 'beta1', 'beta2', 'weight_decay', 'steps', "
                                               "'decay_steps', 'ema_decay']"]


# ----------------------------------------------------------------------------------------------------------------
# Item 7: small mismatches


def test_prepare_data_bar_ends_at_the_total(photo_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted(photo_dir.glob("*.jpg"))[:3]:
        (src / path.name).write_bytes(path.read_bytes())
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["prepare-data", str(src), str(tmp_path / "cache"), "--size", "32", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err and "3/4" not in captured.err.split("\r")[-1]
    assert f"next: train on it: accelerate launch train_gan.py --config CONFIG data.train={tmp_path / 'cache'}" \
        in captured.out


def test_the_quickstart_validates_so_val_keys_reach_metrics_jsonl() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    assert cfg.train.validate_every > 0 and cfg.optim.steps % cfg.train.validate_every == 0
    assert cfg.train.validate_every % cfg.train.log_every == 0  # validation runs on logged steps


def test_evaluation_docs_give_users_a_way_to_place_weights() -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text()
    assert "../shared" not in text
    for name in ("alexnet-owt-7be5be79.pth", "weights-inception-2015-12-05-6726825d.pth", "hub/checkpoints",
                 "TORCH_HOME", "--no-download"):
        assert name in text


# ----------------------------------------------------------------------------------------------------------------
# Item 2 (with the seeded held-out split): the probe grid shows seen and unseen photos, labelled


def test_probe_grid_labels_seen_and_unseen_photos(tmp_path: Path) -> None:
    from gan_color.sampling import choose_probes

    cfg = load_config(TINY, [f"train.output_dir={tmp_path}", "optim.steps=1", "optim.decay_steps=0",
                             "train.num_probes=4"])
    run = train.setup(cfg)
    labels = run.probes["labels"]
    assert len(labels) == run.probes["gray_l"].shape[0] == 4
    held_out = set((tmp_path / "tiny" / "holdout.txt").read_text().split())
    assert [label.split(": ")[0] for label in labels] == ["unseen (held out)"] * 2 + ["seen in training"] * 2
    assert all((label.split(": ")[1] in held_out) == label.startswith("unseen") for label in labels)
    run.accelerator.end_training()
    # with data.val (or no split) every probe is held out and the grid keeps its plain layout
    assert choose_probes(train.build_dataset("embedded", size=32, train=False, embedded_length=8), None, 4,
                         seed=0)["labels"] == []
