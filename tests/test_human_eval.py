"""Human evaluation: the rater package is blind (names, order, metadata, sides), reproducible and safe; scoring
recovers known rates with intervals that cover them, and rejects malformed answer files clearly."""

from __future__ import annotations

import csv
import json
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from openpyxl import load_workbook
from PIL import Image

from gan_color import color
from gan_color.cli import main
from gan_color.data.images import load_rgb
from gan_color.data.transforms import eval_transform
from gan_color.eval.human_eval import formats
from gan_color.eval.human_eval.export import _check_export, export_package, plan_trials
from gan_color.eval.human_eval.protocol import KEY_FORMAT
from gan_color.eval.human_eval.scoring import AnswersError, score
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.models import build_colorizer

MODELS = ("secretmodelA", "secretmodelB")
EVIL = '"><img src=x onerror=alert(1)>'
EVIL_TITLE = "</script><script>alert(1)</script>"


def colour_photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A smooth, clearly coloured synthetic photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]] / max(size)
    channels = [np.sin(x * rng.uniform(2, 6) + y * rng.uniform(1, 4) + rng.uniform(0, 6)) for _ in range(3)]
    return Image.fromarray((np.stack(channels, 2) * 110 + 128).clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("human_eval")
    data = root / "data"
    (data / "nested").mkdir(parents=True)
    for i in range(9):
        colour_photo(i).save(data / ("nested" if i % 2 else "") / f"photo_{i}.jpg", quality=95)
    colour_photo(99).save(data / f"{EVIL}.png")
    Image.new("L", (48, 40), 128).save(data / "grayscale.png")  # passed over: no Turing test without colour
    (data / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    colorizers, paths = {}, {}
    for i, name in enumerate(MODELS):
        torch.manual_seed(i)
        paths[name] = str(save_export(build_colorizer("resnet_6blocks", ngf=8),
                                      ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run=name),
                                      root / name))
        colorizers[name] = Colorizer.load(paths[name])

    def export(out: str, seed: int = 0, n: int = 10) -> Path:
        return export_package(colorizers, data, root / out, n=n, seed=seed, size=32, task="both", title=EVIL_TITLE,
                              model_paths=paths, progress=False)

    return {"root": root, "data": data, "export": export, "key": export("pkg"), "paths": paths}


def rater_files(key: Path) -> dict[str, bytes]:
    rater = key.parent / "rater"
    return {p.relative_to(rater).as_posix(): p.read_bytes() for p in sorted(rater.rglob("*")) if p.is_file()}


def png_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def test_package_reveals_no_model_source_or_side(setup: dict) -> None:
    key_path = setup["key"]
    key = json.loads(key_path.read_text())
    files = rater_files(key_path)
    assert key_path.parent / "rater" not in key_path.parents  # the key is outside the shared folder
    images = sorted(name for name in files if name.startswith("images/"))
    assert set(files) == {"index.html", "sheet.csv", "sheet.xlsx", "README.txt", *images}
    assert len(images) == 2 * len(key["trials"]) == 20
    assert all(re.fullmatch(r"images/[0-9a-f]{16}\.png", name) for name in images)
    # every photo is used once (10 usable of 12 files: gray and broken passed over), so no picture repeats
    assert len({t["source"] for t in key["trials"]}) == 10 and f"{EVIL}.png" in {t["source"] for t in key["trials"]}
    with zipfile.ZipFile(key_path.parent / "rater" / "sheet.xlsx") as xlsx:
        xlsx_text = b"".join(xlsx.read(name) for name in xlsx.namelist())
        assert {info.date_time for info in xlsx.infolist()} == {formats.FIXED_TIME}  # no time of export
        assert b"2000-01-01T00:00:00Z</dcterms:modified>" in xlsx.read("docProps/core.xml")
    text = b"".join(files[name] for name in ("index.html", "sheet.csv", "README.txt")) + xlsx_text
    secrets = [*MODELS, *setup["paths"].values(), str(setup["data"]), "photo_", "src=x onerror", "nested"]
    assert not [s for s in secrets if s.encode() in text]
    for name in images:
        assert png_chunks(files[name]) == [b"IHDR", b"IDAT", b"IEND"]  # no text, EXIF, time or ICC chunk
        image = Image.open(key_path.parent / "rater" / name)
        assert image.size == (32, 32) and image.mode == "RGB" and not image.info
    mtimes = {p.stat().st_mtime for p in (key_path.parent / "rater").rglob("*") if p.is_file()}
    assert mtimes == {formats.FIXED_EPOCH}  # write order (real first? model by model?) is not recoverable
    with (key_path.parent / "rater" / "sheet.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial"] for r in rows] == [t["id"] for t in key["trials"]]
    assert [(r["left_image"], r["right_image"]) for r in rows] == [
        (t["left"]["image"], t["right"]["image"]) for t in key["trials"]]


def test_real_side_is_the_eval_crop_and_fakes_keep_its_lightness(setup: dict) -> None:
    key_path = setup["key"]
    for trial in json.loads(key_path.read_text())["trials"][:4]:
        expected = eval_transform(32)(load_rgb(setup["data"] / trial["source"], 32)).permute(1, 2, 0).numpy()
        pictures = {side["model"]: np.asarray(Image.open(key_path.parent / "rater" / side["image"]))
                    for side in (trial["left"], trial["right"])}
        np.testing.assert_array_equal(pictures[None], expected)  # the real photo, pixel for pixel
        fake = next(picture for model, picture in pictures.items() if model is not None)
        lightness = [color.rgb_to_lab(torch.tensor(p).permute(2, 0, 1))[0] for p in (fake, expected)]
        assert (lightness[0] - lightness[1]).abs().mean() < 2.0  # same photo, new colours (8-bit rounding aside)


def test_html_is_self_contained_and_escapes_data(setup: dict) -> None:
    page = (setup["key"].parent / "rater" / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from the network
    embedded = re.search(r'<script type="application/json" id="package-data">(.*?)</script>', page, re.S).group(1)
    payload = json.loads(embedded)
    key = json.loads(setup["key"].read_text())
    assert [t["left"] for t in payload["trials"]] == [t["left"]["image"] for t in key["trials"]]
    assert set(payload) == {"package", "exposure_ms", "questions", "trials"}
    assert all(set(trial) == {"id", "task", "left", "right"} for trial in payload["trials"])  # names only, no models
    # data containing '</script>' can never close the element: '<', '>' and '&' are JSON-escaped
    assert formats.script_json({"x": EVIL_TITLE + "<!-- &"}) == (
        '{"x":"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\u003c!-- \\u0026"}')


def test_same_seed_same_bytes_other_seed_differs(setup: dict) -> None:
    again = setup["export"]("pkg_again")
    assert rater_files(again) == rater_files(setup["key"])
    assert again.read_bytes() == setup["key"].read_bytes()
    other = rater_files(setup["export"]("pkg_other", seed=1))
    assert set(other) != set(rater_files(setup["key"])) and other["sheet.csv"] != rater_files(again)["sheet.csv"]
    with pytest.raises(FileExistsError):
        setup["export"]("pkg")  # never mixes a new package with an old one's images


def test_trial_plan_is_balanced_and_uncorrelated_with_order() -> None:
    models = ["a", "b", "c"]
    trials = plan_trials(1200, models, "both", random.Random(3))
    assert sorted(t.image for t in trials) == list(range(1200))
    turing = [t for t in trials if t.task == "turing"]
    preference = [t for t in trials if t.task == "preference"]
    assert len(turing) == len(preference) == 600
    real_left = np.array([t.left is None for t in turing], dtype=float)
    for model in models:
        mine = [t.left is None for t in turing if model in (t.left, t.right)]
        assert len(mine) == 200 and sum(mine) == 100  # real photo on the left in exactly half of each model's trials
    assert abs(np.corrcoef(real_left, np.arange(len(turing)))[0, 1]) < 0.1
    model_index = np.array([models.index(t.left or t.right) for t in turing], dtype=float)
    assert abs(np.corrcoef(model_index, np.arange(len(turing)))[0, 1]) < 0.1
    first_left = [t.left == min(t.left, t.right) for t in preference]
    assert sum(first_left) == 300
    with pytest.raises(ValueError, match="two or more"):
        _check_export(["a"], 10, 32, "preference", 0)


def simulated_key(path: Path, trials_per_model: int = 150) -> dict:
    """A key in export's format: Turing trials for models A and B, preference trials A vs B."""
    trials, number = [], 0
    for task, pair in (("turing", (None, "A")), ("turing", (None, "B")), ("preference", ("A", "B"))):
        for i in range(trials_per_model):
            number += 1
            left, right = pair if i % 2 else pair[::-1]
            trials.append({"id": str(number), "task": task, "source": f"{number}.jpg",
                           "left": {"model": left, "image": f"images/{number}l.png"},
                           "right": {"model": right, "image": f"images/{number}r.png"}})
    key = {"format": KEY_FORMAT, "version": 1, "package": "abc123", "seed": 0, "size": 32,
           "task": "both", "data": "", "models": [{"name": "A", "path": ""}, {"name": "B", "path": ""}],
           "exposure_ms": 0, "trials": trials}
    path.write_text(json.dumps(key))
    return key


TRUTH = {"A": 0.2, "B": 0.45, "A>B": 0.7}  # fooling rates and how often A is preferred


def simulate_answers(key: dict, folder: Path, raters: int, rng: np.random.Generator) -> list[Path]:
    """Raters that pick the fake as real with the model's true fooling rate, and A over B with TRUTH['A>B']."""
    paths = []
    for r in range(raters):
        rows = [["package", "trial", "answer", "rater", "response_ms"]]
        for trial in key["trials"]:
            left, right = trial["left"]["model"], trial["right"]["model"]
            if trial["task"] == "turing":
                fooled = rng.random() < TRUTH[left or right]
                answer = "left" if (left is None) != fooled else "right"
            else:
                a_wins = rng.random() < TRUTH["A>B"]
                answer = "left" if (left == "A") == a_wins else "right"
            rows.append([key["package"], trial["id"], answer, f"rater{r}", "900"])
        paths.append(folder / f"answers-{r}.csv")
        with paths[-1].open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return paths


def test_scores_recover_known_rates_and_intervals_cover_them(tmp_path: Path) -> None:
    key = simulated_key(tmp_path / "key.json")
    results = score(tmp_path / "key.json", simulate_answers(key, tmp_path, 6, np.random.default_rng(0)))
    fooling = {e["model"]: e for e in results["turing"]}
    assert results["raters"] == 6 and results["answers"] == 6 * 450
    for model in ("A", "B"):
        entry = fooling[model]
        assert abs(entry["rate"] - TRUTH[model]) < 0.05
        assert entry["ci95"][0] < TRUTH[model] < entry["ci95"][1] and entry["ci95"][1] - entry["ci95"][0] < 0.15
        assert (entry["raters"], entry["trials"], entry["answers"]) == (6, 150, 900)
    (pref,) = results["preference"]
    assert (pref["model_a"], pref["model_b"]) == ("A", "B") and abs(pref["rate"] - TRUTH["A>B"]) < 0.05
    # coverage over repeated studies (3 raters x 40 trials each): a 95% interval should miss rarely
    small = simulated_key(tmp_path / "small.json", trials_per_model=40)
    covered = 0
    for seed in range(30):
        folder = tmp_path / f"study{seed}"
        folder.mkdir()
        result = score(tmp_path / "small.json", simulate_answers(small, folder, 3, np.random.default_rng(seed + 1)),
                       bootstrap=500, seed=seed)
        low, high = result["turing"][1]["ci95"]
        covered += low <= TRUTH["B"] <= high
    assert covered >= 26


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["trial", "answer", "rater"], *rows])
    return path


def test_answers_are_validated_with_file_and_row(tmp_path: Path) -> None:
    simulated_key(tmp_path / "key.json", trials_per_model=2)
    cases = {
        "unknown trial '99'": [["1", "left", "ann"], ["99", "left", "ann"]],
        "answered trial 2 twice": [["2", "left", "ann"], ["2", "right", "ann"]],
        "answer must be 'left' or 'right', got 'up'": [["1", "up", "ann"]],
    }
    for message, rows in cases.items():
        path = write_csv(tmp_path / "bad.csv", rows)
        with pytest.raises(AnswersError, match=re.escape(message)) as err:
            score(tmp_path / "key.json", [path])
        assert "bad.csv, row" in str(err.value)
    (tmp_path / "nocol.csv").write_text("trial,choice\n1,left\n")
    with pytest.raises(AnswersError, match="no 'answer' column"):
        score(tmp_path / "key.json", [tmp_path / "nocol.csv"])
    (tmp_path / "other.csv").write_text("package,trial,answer\nzzz,1,left\n")
    with pytest.raises(AnswersError, match="not this key's"):
        score(tmp_path / "key.json", [tmp_path / "other.csv"])
    # blank answers are counted, not errors; the same trial from two raters is fine
    ok = write_csv(tmp_path / "ok.csv", [["1", "Left", "ann"], ["1", "right", "bob"], ["2", "", "ann"]])
    results = score(tmp_path / "key.json", [ok])
    assert (results["answers"], results["blank"], results["raters"]) == (2, 1, 2)


def test_filled_xlsx_sheet_scores_through_the_cli(setup: dict, tmp_path: Path, capsys) -> None:
    sheet = setup["key"].parent / "rater" / "sheet.xlsx"
    key = json.loads(setup["key"].read_text())
    workbook = load_workbook(sheet)
    rows = list(workbook.active.iter_rows(min_row=2))
    for row, trial in zip(rows, key["trials"]):
        real_side = "left" if trial["left"]["model"] is None else "right"
        row[5].value = real_side if trial["task"] == "turing" else "left"  # never fooled
    workbook.save(tmp_path / "filled.xlsx")
    assert main(["human-eval", "score", "--key", str(setup["key"]), "--answers", str(tmp_path / "filled.xlsx"),
                 "--out", str(tmp_path / "scores"), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "| secretmodelA | 0.0% |" in printed and "| secretmodelB | 0.0% |" in printed
    results = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert results["answers"] == 10 and results["raters"] == 1
    assert main(["human-eval", "score", "--key", str(setup["key"]), "--answers", str(tmp_path / "missing.csv")]) == 2
