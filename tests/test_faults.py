"""Fault injection (issue 12, docs/reliability.md): pickle bombs in every weights/statistics/checkpoint path, two runs
on one run folder, changed settings on resume, damaged checkpoints, unreadable images, spreadsheet formulas, bad
input of every command, and kill -9 at random points of a real training run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gan_color import checkpoint as ckpt
from gan_color import train
from gan_color.cli import main as cli_main
from gan_color.config import load_config
from gan_color.inference import ExportSpec, save_export
from gan_color.metrics import fid as fid_lib
from gan_color.metrics.weights import WeightsRejected
from gan_color.models import build_colorizer
from gan_color.runlock import LOCK_FILE, RunLock

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


class Bomb:
    """Pickles to `os.system("touch MARKER")`: whoever unpickles it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_bomb(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(1), "payload": Bomb(marker)}, path)
    return path


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def tiny(tmp_path: Path, *overrides: str):
    return load_config(TINY, [f"train.output_dir={tmp_path}", *overrides])


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    network = build_colorizer("resnet_6blocks", ngf=8)
    return save_export(network, ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run="tiny"),
                       tmp_path / "tiny")


def colour_pngs(folder: Path, count: int = 3, size: int = 40, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def evaluate_args(export_dir: Path, data: Path, out: Path, *metrics: str) -> list[str]:
    return ["evaluate", "--model", str(export_dir), "--data", str(data), "--size", "32", "--workers", "0",
            "--quiet", "--best-worst", "0", "--out", str(out), "--metrics", *metrics]


# ----------------------------------------------------------------------------------------------------------------
# 1. Nothing is ever unpickled: FID weights (given, hub cache), FID statistics cache, LPIPS backbone, checkpoints


def test_fid_weights_pickle_bomb_is_refused_in_one_line(export_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "PWNED"
    evil = plant_bomb(tmp_path / "evil.pth", marker)
    data = colour_pngs(tmp_path / "photos")
    rc = cli_main(evaluate_args(export_dir, data, tmp_path / "out", "psnr_rgb_uint8", "fid") + ["--fid-weights",
                                                                                               str(evil)])
    assert rc == 2 and not marker.exists()
    line = one_line_error(capsys.readouterr().err)
    assert str(evil) in line and "not a plain tensor file" in line and "nothing in it was run" in line


def test_hub_cache_pickle_bombs_are_refused(export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "PWNED"
    home = tmp_path / "home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    data = colour_pngs(tmp_path / "photos")
    for name, metric in ((INCEPTION_FILE, "fid"), (ALEXNET_FILE, "lpips_alex")):
        bomb = plant_bomb(home / "hub" / "checkpoints" / name, marker)
        rc = cli_main(evaluate_args(export_dir, data, tmp_path / "out", "psnr_rgb_uint8", metric))
        assert rc == 2 and not marker.exists(), metric
        line = one_line_error(capsys.readouterr().err)
        assert line.startswith(f"error: {metric}: refused") and str(bomb) in line


def test_fid_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.ones(32, 3, 3, 3)}, other)
    with pytest.raises(WeightsRejected, match="it is not the FID Inception-v3"):
        fid_lib.inception_weights(other)
    # a safetensors file goes through the same check
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsRejected, match="SHA-256"):
        fid_lib.inception_weights(tmp_path / "other.safetensors")


def test_genuine_inception_copies_are_accepted(prepared_torch_home: Path) -> None:
    safetensors_copy = ROOT.parent / "shared" / "weights" / "inception_2015_12_05_pool3.safetensors"
    resaved = prepared_torch_home / "hub" / "checkpoints" / INCEPTION_FILE  # the same tensors as a torch .pth
    for path in (safetensors_copy, resaved):
        state, weights_id = fid_lib.verified_inception(fid_lib.inception_weights(path))
        assert weights_id == "6de81499" and state["fc.weight"].shape == (1008, 2048)


@pytest.mark.parametrize("where", ["--fid-cache", "TORCH_HOME"])
def test_statistics_cache_never_unpickles(where: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch, fid_stand_in: str) -> None:
    marker = tmp_path / "PWNED"
    images = torch.rand(6, 3, 16, 16)
    fake, real = fid_lib.Uint8Images(images * 0.5), fid_lib.Uint8Images(images)
    cache = tmp_path / "cache"
    if where == "TORCH_HOME":  # the default cache: $TORCH_HOME/fidelity_cache
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
        cache = tmp_path / "home" / "fidelity_cache"
    options = dict(feature_extractor=fid_stand_in, real_cache_name="set",
                   cache_root=cache if where == "--fid-cache" else None)
    expected = fid_lib.compute_fid(fake, real, feature_extractor=fid_stand_in)
    # torch-fidelity's own cache names (pickles) are never read ...
    for suffix in ("stat-fid-stats", "features-stats"):
        plant_bomb(cache / f"gan_color-set-{fid_stand_in}-{suffix}.pt", marker)
    # ... and a planted .npz with a pickled object array is refused, reported in one line and replaced
    planted = cache / f"gan_color-set-{fid_stand_in}-stats.npz"
    np.savez(planted, mu=np.array([Bomb(marker)], dtype=object), sigma=np.zeros((1, 1)))
    assert fid_lib.compute_fid(fake, real, **options) == pytest.approx(expected, rel=1e-12)
    assert not marker.exists()
    warning = one_line_error(capsys.readouterr().err)
    assert warning.startswith("warning: fid: ignoring the cached statistics") and str(planted) in warning
    assert fid_lib.compute_fid(fake, real, **options) == pytest.approx(expected, rel=1e-12)  # from the new .npz
    assert capsys.readouterr().err == ""
    with np.load(planted, allow_pickle=False) as data:
        assert data["mu"].shape == (6,)


def _unsafe_loads(source: str) -> list[str]:
    """Calls that can unpickle: torch.load without weights_only=True, np.load(allow_pickle=True), pickle/dill/joblib
    loads, torch.jit.load, torch.hub's loaders without weights_only=True."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name in ("torch.load", "load_state_dict_from_url", "torch.hub.load_state_dict_from_url") or \
                name.endswith(".get_state_dict"):
            if keywords.get("weights_only") != "True":
                found.append(f"{name} line {node.lineno}")
        elif name in ("np.load", "numpy.load") and keywords.get("allow_pickle", "False") != "False":
            found.append(f"{name} line {node.lineno}")
        elif name.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle") or name == "torch.jit.load":
            found.append(f"{name} line {node.lineno}")
    return found


def test_no_project_code_can_unpickle() -> None:
    files = sorted(path for folder in ("gan_color", "baselines", "scripts") for path in (ROOT / folder).rglob("*.py"))
    offenders = {str(path.relative_to(ROOT)): found for path in files if (found := _unsafe_loads(path.read_text()))}
    assert offenders == {}
    assert _unsafe_loads("torch.load(p)\nnp.load(p, allow_pickle=True)\npickle.loads(b)") == [
        "torch.load line 1", "np.load line 2", "pickle.loads line 3"]


def test_torch_fidelity_builtin_extractors_are_not_used(tmp_path: Path) -> None:
    images = fid_lib.Uint8Images(torch.rand(3, 3, 8, 8))
    with pytest.raises(ValueError, match="not supported"):
        fid_lib.compute_fid(images, images, feature_extractor="vgg16-fe")


def test_lpips_reads_its_weights_as_tensors(prepared_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lpips' own path (torchvision's load_state_dict_from_url) would unpickle: it must not be taken
    monkeypatch.setenv("TORCH_HOME", str(prepared_torch_home))
    from torch import hub

    from gan_color.metrics import scores as M

    def refuse(*args, **kwargs):
        raise AssertionError("load_state_dict_from_url called")

    monkeypatch.setattr(hub, "load_state_dict_from_url", refuse)
    import torchvision.models._api as api

    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)
    metric = M.build_metric("lpips_alex")
    photos = torch.rand(2, 3, 32, 32)
    assert metric.per_image(M.EvalBatch(fake_rgb=photos, real_rgb=photos)).abs().max() < 1e-6


# ----------------------------------------------------------------------------------------------------------------
# 2. One run per run folder; changed settings on resume are applied and recorded


def test_second_run_on_a_locked_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny(tmp_path)
    with RunLock(cfg.run_dir):
        rc = cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}"])
    assert rc == 1
    line = one_line_error(capsys.readouterr().err)
    assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in line
    assert not (cfg.run_dir / "checkpoints").exists() and not (cfg.run_dir / "metrics.jsonl").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny(tmp_path, "optim.steps=2", "optim.decay_steps=1", "train.checkpoint_every=2")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    assert train.main(cfg) == cfg.run_dir
    assert "took over the lock of a run that is no longer running" in capsys.readouterr().err
    assert not (cfg.run_dir / LOCK_FILE).exists()  # released on exit


def test_lock_of_another_host_is_reported(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere-node-7"}))
    with pytest.raises(RuntimeError, match=f"elsewhere-node-7.*delete {tmp_path / LOCK_FILE}"):
        RunLock(tmp_path).acquire()


def test_without_flock_a_live_holder_still_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        monkeypatch.setattr(fcntl, "flock", no_flock)
        with pytest.raises(RuntimeError, match=f"in use by pid {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path):  # the holder is gone: taken over, and released without flock
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_is_released_when_the_run_fails(tmp_path: Path) -> None:
    cfg = tiny(tmp_path)
    with pytest.raises(ZeroDivisionError), RunLock(cfg.run_dir):
        raise ZeroDivisionError
    with RunLock(cfg.run_dir):
        pass


def test_changed_settings_on_resume_are_applied_and_recorded(tmp_path: Path) -> None:
    run_dir = train.main(tiny(tmp_path))  # 6 steps at lr 2e-4
    cfg = tiny(tmp_path, "optim.steps=10", "optim.lr=1e-3", "optim.beta1=0.9")
    train.main(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    changes = [row for row in rows if "config_change" in row]
    assert len(changes) == 1 and changes[0]["step"] == 6
    assert changes[0]["config_change"] == {"optim.beta1": [0.5, 0.9], "optim.lr": [0.0002, 0.001],
                                           "optim.steps": [6, 10]}
    lr_at_8 = next(row["lr"] for row in rows if row["step"] == 8 and "lr" in row)  # the new lr and schedule
    assert lr_at_8 == pytest.approx(1e-3 * train.pix2pix_schedule(10, 3)(8)) and lr_at_8 > 0
    state = torch.load(run_dir / "checkpoints" / "step_00000010" / "training_state.pt", weights_only=True)
    group = state["optimizers"]["generator"]["param_groups"][0]
    assert group["initial_lr"] == 1e-3 and tuple(group["betas"]) == (0.9, 0.999)
    assert "lr: 0.001" in (run_dir / "config.yaml").read_text()


# ----------------------------------------------------------------------------------------------------------------
# 3. A damaged newest checkpoint: skipped with one warning naming the file, the previous one resumes


def network_weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoints" / ckpt.step_dir_name(step)
    return {**load_file(str(folder / "generator.safetensors")),
            **{f"D.{k}": v for k, v in load_file(str(folder / "discriminator.safetensors")).items()}}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((x - b[k]).abs().max().item() for k, x in a.items())
    assert worst <= 1e-6, f"weights differ by {worst}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unbroken tiny run: checkpoints at steps 3 and 6."""
    return train.main(tiny(tmp_path_factory.mktemp("straight")))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def flip_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


DAMAGES = {
    "generator.safetensors": truncate,
    "rng_rank0.pt": lambda f: f.write_bytes(b""),
    "training_state.pt": truncate,
    "meta.json": truncate,
    "discriminator.safetensors": flip_byte,  # same size, other bytes: only the hash sees it
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(name: str, straight: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    import shutil

    run_dir = Path(shutil.copytree(straight, tmp_path / "tiny"))
    DAMAGES[name](run_dir / "checkpoints" / "step_00000006" / name)
    capsys.readouterr()
    assert cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}"]) == 0
    err = capsys.readouterr()
    warnings = [line for line in err.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and name in warnings[0] and "step_00000006" in warnings[0], warnings
    assert "resumed from" in err.out + err.err and "step_00000003 at step 3" in err.out + err.err
    assert "Traceback" not in err.err
    assert_same_weights(network_weights(run_dir, 6), network_weights(straight, 6))


def test_damaged_checkpoint_asked_for_is_a_one_line_error(straight: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    import shutil

    run_dir = Path(shutil.copytree(straight, tmp_path / "tiny"))
    target = run_dir / "checkpoints" / "step_00000003"
    truncate(target / "generator.safetensors")
    rc = cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path / 'other'}",
                   f"train.resume={target}"])
    assert rc == 1
    line = one_line_error(capsys.readouterr().err)
    assert "generator.safetensors" in line and str(target) in line


def test_pickle_bomb_in_a_checkpoint_never_runs(straight: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    # an attacker who also rewrites the manifest still meets weights_only=True
    import shutil

    marker = tmp_path / "PWNED"
    run_dir = Path(shutil.copytree(straight, tmp_path / "tiny"))
    folder = run_dir / "checkpoints" / "step_00000006"
    for name in ("training_state.pt", "rng_rank0.pt"):
        plant_bomb(folder / name, marker)
    (folder / ckpt.MANIFEST).unlink()
    capsys.readouterr()
    rc = cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}", "optim.steps=7",
                   "optim.decay_steps=3"])
    assert rc == 1 and not marker.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is damaged: rng_rank0.pt cannot be read" in err


def test_empty_tracking_json_is_a_warning(straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    run_dir = Path(shutil.copytree(straight, tmp_path / "tiny"))
    (run_dir / "tracking.json").write_text("")
    capsys.readouterr()
    assert cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}", "optim.steps=7",
                     "optim.decay_steps=3"]) == 0
    err = capsys.readouterr().err
    assert f"warning: ignoring {run_dir / 'tracking.json'}" in err and "Traceback" not in err
    assert json.loads((run_dir / "tracking.json").read_text())["run_name"] == "tiny"


def test_checkpoint_files_match_their_manifest(straight: Path) -> None:
    folder = straight / "checkpoints" / "step_00000006"
    manifest = json.loads((folder / ckpt.MANIFEST).read_text())
    assert set(manifest) == {"generator.safetensors", "discriminator.safetensors", "training_state.pt",
                             "rng_rank0.pt"}
    assert ckpt.verify_checkpoint(folder)["step"] == 6
    assert not list(straight.rglob("*.tmp")) and not list((straight / "checkpoints").glob(".tmp_*"))


# ----------------------------------------------------------------------------------------------------------------
# 4. An unreadable file is left out and listed in every mode; each per-image row is its own file's


def truncated_jpeg(path: Path, seed: int = 9) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 72, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:1500])  # header intact, scan data cut
    return path


def folder_with_a_broken_middle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a.png", "c.png"):
        pixels = rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)
        pixels[..., 0] = 250  # colourful, so the default grayscale filter keeps them
        Image.fromarray(pixels).save(folder / name)
    truncated_jpeg(folder / "b.jpg")
    return folder


@pytest.mark.parametrize("mode", [[], ["--keep-grayscale"], ["--full-resolution"],
                                  ["--keep-grayscale", "--full-resolution"]])
def test_unreadable_file_is_left_out_and_listed(mode: list[str], export_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    data = folder_with_a_broken_middle(tmp_path / "photos")
    good = tmp_path / "good"
    good.mkdir()
    for name in ("a.png", "c.png"):
        (good / name).write_bytes((data / name).read_bytes())
    for folder, out in ((data, tmp_path / "out"), (good, tmp_path / "out_good")):
        assert cli_main(evaluate_args(export_dir, folder, out, "psnr_rgb_uint8", "auc_ab_0_150") + mode) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [Path(name).name for name, _ in summary["data"]["unreadable"]] == ["b.jpg"]
    assert summary["count"] == summary["data"]["images"] == 2
    rows = (tmp_path / "out" / "per_image.csv").read_text().splitlines()
    rows_good = (tmp_path / "out_good" / "per_image.csv").read_text().splitlines()
    assert [r.split(",")[1:] for r in rows] == [r.split(",")[1:] for r in rows_good]  # a and c: their own metrics
    expected = json.loads((tmp_path / "out_good" / "metrics.json").read_text())["metrics"]
    assert summary["metrics"] == pytest.approx(expected)


def test_compare_sheet_leaves_out_an_unreadable_file(export_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    data = folder_with_a_broken_middle(tmp_path / "photos")
    intact = tmp_path / "intact"  # the same names, b.jpg whole: the evaluation lists all three files
    intact.mkdir()
    for name in ("a.png", "c.png"):
        (intact / name).write_bytes((data / name).read_bytes())
    colour_pngs(tmp_path / "b", count=1)
    Image.open(tmp_path / "b" / "img0.png").save(intact / "b.jpg")
    assert cli_main(evaluate_args(export_dir, intact, export_dir / "eval" / "photos", "psnr_rgb_uint8")) == 0
    capsys.readouterr()
    rc = cli_main(["compare", str(export_dir), "--data", str(data), "--out", str(tmp_path / "cmp"), "--num-images",
                   "3", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    assert f"warning: cannot decode {data / 'b.jpg'}" in err


# ----------------------------------------------------------------------------------------------------------------
# 6. No spreadsheet formula from a file or run name


FORMULAS = ["=HYPERLINK(1)", "+cmd", "@SUM(1)", "-2+3", "\tTab", "\rCR", "'quoted"]


def test_defuse_cell_round_trip() -> None:
    from gan_color.safeio import defuse_cell, undefuse_cell

    for text in [*FORMULAS, "plain.png", "", "'", "''x", "\uff1dSUM(1)", "a=b", "-"]:
        cell = defuse_cell(text)
        assert undefuse_cell(cell) == text
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d"))
    assert defuse_cell(-1.5) == -1.5 and defuse_cell(3) == 3 and defuse_cell(None) is None


def test_per_image_and_comparison_csv_defuse_formulas(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import csv

    from gan_color.safeio import undefuse_cell

    data = tmp_path / "photos"
    colour_pngs(data, count=1)
    for name in FORMULAS:
        (data / f"{name}.png").write_bytes((data / "img0.png").read_bytes())
    (data / "img0.png").unlink()
    torch.manual_seed(0)
    run = save_export(build_colorizer("resnet_6blocks", ngf=8),
                      ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run="x"),
                      tmp_path / "=HYPERLINK(run)")
    assert cli_main(evaluate_args(run, data, run / "eval" / "photos", "psnr_rgb_uint8")) == 0
    with (run / "eval" / "photos" / "per_image.csv").open(newline="") as f:
        files = [row["file"] for row in csv.DictReader(f)]
    assert len(files) == len(FORMULAS) and all(name.startswith("'") for name in files)
    assert sorted(undefuse_cell(name) for name in files) == sorted(f"{name}.png" for name in FORMULAS)
    assert cli_main(["compare", str(run), "--out", str(tmp_path / "cmp"), "--num-images", "2", "--device",
                     "cpu"]) == 0
    with (tmp_path / "cmp" / "comparison.csv").open(newline="") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    assert "'=HYPERLINK(run)" in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))]


# ----------------------------------------------------------------------------------------------------------------
# 7. Bad input of every kind: one line, non-zero exit


def damaged_exports(export_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of a good export, each broken one way."""
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(export_dir, tmp_path / "exports" / name))

    out = {}
    out["truncated weights"] = copy("truncated")
    truncate(out["truncated weights"] / "generator.safetensors")
    out["wrong-shape weights"] = copy("shape")
    save_export(build_colorizer("resnet_6blocks", ngf=4), ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 4},
                image_size=32, run="x"), tmp_path / "exports" / "ngf4")
    (out["wrong-shape weights"] / "generator.safetensors").write_bytes(
        (tmp_path / "exports" / "ngf4" / "generator.safetensors").read_bytes())
    for name, text in (("json list", "[]"), ("json syntax", "{"),
                       ("unknown arch", '{"format": "gan-color-export", "version": 1, "arch": "nope"}')):
        spec = json.loads((export_dir / "generator.json").read_text())
        out[name] = copy(name.replace(" ", "_"))
        (out[name] / "generator.json").write_text(text if name != "unknown arch" else json.dumps(
            {**spec, "arch": "nope"}))
    out["unknown kwargs"] = copy("kwargs")
    spec = json.loads((export_dir / "generator.json").read_text())
    (out["unknown kwargs"] / "generator.json").write_text(json.dumps({**spec, "kwargs": {"ngf": "abc"}}))
    return out


def test_damaged_exports_are_one_line_errors(export_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    data = colour_pngs(tmp_path / "photos")
    for kind, folder in damaged_exports(export_dir, tmp_path).items():
        capsys.readouterr()
        assert cli_main(evaluate_args(folder, data, tmp_path / "out", "psnr_rgb_uint8")) == 2, kind
        line = one_line_error(capsys.readouterr().err)
        assert line.startswith("error: ") and str(folder) in line, (kind, line)
        rc = cli_main(["human-eval", "export", "--models", str(folder), "--data", str(data), "--n", "2", "--out",
                       str(tmp_path / f"he_{folder.name}"), "--size", "32", "--no-progress", "--task", "turing"])
        assert rc == 2, kind
        assert str(folder) in one_line_error(capsys.readouterr().err)


def config_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("content, expected", [
    (b"name: x\ndata: {size: 32\n", "YAML syntax error at line"),
    ("name: caf\u00e9\n".encode("latin-1"), "not a UTF-8 text file"),
    (b"", "is empty"),
    (b"# only a comment\n", "is empty"),
])
def test_bad_config_files_are_one_line_errors(content: bytes, expected: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    path = config_file(tmp_path, "bad.yaml", content)
    assert cli_main(["train", "--config", str(path), f"train.output_dir={tmp_path}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("config error: ") and expected in line and str(path) in line


@pytest.mark.parametrize("override, expected", [
    ("model.kwargs.ngf=abc", "model.kwargs.ngf: expected a number"),
    ("model.kwargs.ngf=0", "0 channels"),
    ("discriminator.kwargs.ndf=0", "0 channels"),
    ("model.name=unet_256", "cannot work on data.size=32 px images"),
    ("train.num_probes=0", "train.num_probes must be >= 1"),
    ("train.num_probes=-3", "train.num_probes must be >= 1"),
    ("data.limit=-1", "data.limit must be >= 0"),
    ("train.validate_every=-1", "train.validate_every must be >= 0"),
    ("model.kwargs={a", "not valid YAML"),
])
def test_bad_values_are_one_line_errors(override: str, expected: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["train", "--config", str(TINY), f"train.output_dir={tmp_path}", override]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("config error: ") and expected in line, line
    assert not (tmp_path / "tiny").exists()


def test_mixed_precision_no_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["train", "--config", str(TINY), "--dry-run", "train.mixed_precision=no"]) == 0
    assert "mixed_precision: 'no'" in capsys.readouterr().out  # the string "no", not YAML's false
    path = config_file(tmp_path, "c.yaml", b"name: c\ntrain: {mixed_precision: no}\n")
    assert load_config(path).train.mixed_precision == "no"


@pytest.mark.parametrize("option, value, expected", [
    ("--size", "2", "--size must be at least 16"), ("--limit", "-1", "--limit must be at least 0"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
])
def test_evaluate_numbers_out_of_range(option: str, value: str, expected: str, export_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    data = colour_pngs(tmp_path / "photos")
    args = evaluate_args(export_dir, data, tmp_path / "out", "psnr_rgb_uint8")
    assert cli_main(args + [option, value]) == 2
    assert expected in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("damage", ["no trials", "trial without id", "bad side"])
def test_damaged_human_eval_key_is_one_line(damage: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gan_color.eval.human_eval.protocol import KEY_FORMAT, KEY_VERSION

    trial = {"id": "1", "task": "turing", "left": {"model": "m"}, "right": {"model": None}}
    key = {"format": KEY_FORMAT, "version": KEY_VERSION, "package": "p", "models": [{"name": "m"}],
           "trials": [trial]}
    if damage == "no trials":
        del key["trials"]
    elif damage == "trial without id":
        del trial["id"]
    else:
        trial["left"] = "m"
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "answers.csv").write_text("trial,answer\n1,left\n")
    rc = cli_main(["human-eval", "score", "--key", str(tmp_path / "key.json"), "--answers",
                   str(tmp_path / "answers.csv")])
    assert rc == 2
    assert "damaged answer key" in one_line_error(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------------------------
# kill -9 at random points of a real run (subprocesses); a second run on the same folder is refused

# Each run is a forked child of the test process (a real process, killed with SIGKILL, that needs no second import of
# torch: milliseconds to start instead of seconds). The harness (not the project) slows every checkpoint and export
# write in the child a little and announces it on stdout, so that a kill lands inside the write it targets.
KILL_RUN = ["optim.steps=12", "optim.decay_steps=6", "train.checkpoint_every=2", "train.log_every=2",
            "train.sample_every=6", "train.keep_checkpoints=2"]


def _install_harness(delay: float) -> None:
    import gan_color.inference as inference

    def announced(fn):
        def write(obj, path, *args, **kwargs):
            print(f"FAULT write {path}", flush=True)
            time.sleep(delay)
            return fn(obj, path, *args, **kwargs)
        return write

    def announced_text(fn):
        def write(path, text):
            print(f"FAULT write {path}", flush=True)
            time.sleep(delay)
            return fn(path, text)
        return write

    torch.save = announced(torch.save)
    ckpt.save_file = announced(ckpt.save_file)
    inference.save_file = announced(inference.save_file)
    ckpt._write_synced = announced_text(ckpt._write_synced)


class ForkedRun:
    """`gan-color train ...` in a forked child; Popen-like: pid, stdout (stdout + stderr), poll, wait, kill."""

    def __init__(self, argv: list[str], delay: float) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 70
            try:
                os.close(read_fd)
                os.dup2(write_fd, 1)
                os.dup2(write_fd, 2)
                sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
                torch.set_num_threads(1)
                _install_harness(delay)
                code = cli_main(argv)
            except BaseException:  # noqa: BLE001 - report anything, then leave without pytest's teardown
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(write_fd)
        self.pid, self.returncode = pid, None
        self.stdout = os.fdopen(read_fd, "r")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, 9)

    def communicate(self, timeout: float = 240) -> tuple[str, None]:
        """All output until the run ends; a run still going after `timeout` s is killed and fails the test."""
        import select

        chunks, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.stdout], [], [], 1.0)[0]:
                line = self.stdout.readline()
                if not line:
                    self.wait()
                    return "".join(chunks), None
                chunks.append(line)
        self.kill()
        self.wait()
        raise AssertionError(f"the run did not end within {timeout} s:\n{''.join(chunks)[-2000:]}")


def start_run(tmp_path: Path, out: Path, delay: float = 0.05) -> ForkedRun:
    return ForkedRun(["train", "--config", str(TINY), f"train.output_dir={out}", *KILL_RUN], delay)


def kill_at(process: subprocess.Popen, target: str, occurrence: int, timeout: float = 240) -> str:
    """SIGKILL `process` while it writes the `occurrence`-th file whose path contains `target`; returns that path
    ('' when the run ended first)."""
    import select
    import signal

    seen, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            break
        if "FAULT write " in line and target in line.split("FAULT write ", 1)[1]:  # (after any progress bar text)
            seen += 1
            if seen == occurrence:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return line.split("FAULT write ", 1)[1].strip()
    process.kill()
    process.wait()
    return ""


@pytest.mark.slow
def test_kill_9_at_random_points_resumes_to_the_same_weights(tmp_path: Path) -> None:
    import random
    import signal

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the OMP_NUM_THREADS=1 subprocesses
    try:
        straight = train.main(tiny(tmp_path / "straight", *KILL_RUN))
    finally:
        torch.set_num_threads(threads)
    rng = random.Random(12)
    files = ["generator.safetensors", "discriminator.safetensors", "training_state.pt", "rng_rank0.pt",
             "manifest.json", "meta.json"]
    # Each run resumes from the last complete checkpoint, completes the next one and is killed inside a write of the
    # one after it (a random file of it) or of the export; the run advances by one checkpoint per kill.
    targets = [f".tmp_step_{step:08d}/{rng.choice(files)}" for step in (2, 4)] + ["tiny/generator.safetensors.tmp"]
    targets += [f".tmp_step_{step:08d}/{rng.choice(files)}" for step in (8, 10)]
    out, killed = tmp_path / "killed", []
    for target in targets:  # 5 kills, 4 inside checkpoint writes, 1 inside the export
        killed.append(kill_at(start_run(tmp_path, out), target, occurrence=1))
    assert all(killed), killed
    assert [ckpt.latest_checkpoint(out / "tiny" / "checkpoints").name] == ["step_00000008"]
    run = start_run(tmp_path, out)  # a 6th kill at a random moment after the run got going (a step or a write)
    line = "start"
    while line and "FAULT write " not in line:  # (an empty line: the run ended; the assertions below tell)
        line = run.stdout.readline()
    time.sleep(rng.uniform(0.1, 1.0))
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    final = start_run(tmp_path, out, delay=0.0)
    output = final.communicate(timeout=240)[0]
    assert final.returncode == 0, output
    assert "took over the lock of a run that is no longer running" in output  # the killed run's lock was stale
    assert_same_weights(network_weights(out / "tiny", 12), network_weights(straight, 12))
    steps = [json.loads(line)["step"] for line in (out / "tiny" / "metrics.jsonl").read_text().splitlines()
             if "loss/G_L1" in line]
    assert steps == [2, 4, 6, 8, 10, 12]  # no lost, repeated or out-of-order lines across the kills


@pytest.mark.slow
def test_concurrent_start_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    first = start_run(tmp_path, out, delay=1.0)  # slow writes: still running when the second starts
    try:
        import select

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (out / "tiny" / LOCK_FILE).is_file():
            time.sleep(0.2)
        select.select([], [], [], 0.5)
        second = start_run(tmp_path, out, delay=0.0)
        message = second.communicate(timeout=240)[0]
        assert second.returncode == 1
        lines = [line for line in message.splitlines() if line.strip()]
        assert lines == [lines[-1]] and lines[-1].startswith("error: run folder")
        assert f"in use by pid {first.pid} on host {socket.gethostname()}" in lines[-1]
        assert first.poll() is None  # the first run was not disturbed
    finally:
        first.kill()
        first.wait()


def test_prepare_data_bad_size_and_only_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = colour_pngs(tmp_path / "photos", count=1)
    assert cli_main(["prepare-data", str(source), str(tmp_path / "a"), "--size", "0"]) == 2
    assert "size must be >= 1 px" in one_line_error(capsys.readouterr().err)
    broken = tmp_path / "broken"
    broken.mkdir()
    truncated_jpeg(broken / "x.jpg")
    (broken / "y.png").write_bytes(b"not an image")
    assert cli_main(["prepare-data", str(broken), str(tmp_path / "b"), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "can be decoded" in err.strip().splitlines()[-1] and "nothing was cached" in err
    assert not (tmp_path / "b" / "index.json").exists()


def test_human_eval_export_passes_over_an_unreadable_photo(export_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    data = folder_with_a_broken_middle(tmp_path / "photos")
    rc = cli_main(["human-eval", "export", "--models", str(export_dir), "--data", str(data), "--n", "2", "--out",
                   str(tmp_path / "he"), "--size", "32", "--no-progress", "--task", "turing"])
    assert rc == 0 and "Traceback" not in capsys.readouterr().err
    key = json.loads((tmp_path / "he" / "key.json").read_text())
    assert sorted(trial["source"] for trial in key["trials"]) == ["a.png", "c.png"]
