"""The model that ships inside the package: `gan-color colorize --model gan-color-base` works offline right after
install, without the encoder's weight package, on a real black-and-white photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor
from skimage import data as skdata

from gan_color import cli
from gan_color.inference import SPEC_NAME, WEIGHTS_NAME, ZOO_DIR, Colorizer, find_export, shipped_models
from gan_color.models import pretrained

NAME = "gan-color-base"


def test_shipped_model_is_inside_the_package_and_small():
    assert NAME in shipped_models()
    folder = find_export(NAME)
    assert folder == ZOO_DIR / NAME
    assert (folder / WEIGHTS_NAME).stat().st_size < 50 * 2**20
    spec = json.loads((folder / SPEC_NAME).read_text())
    assert spec["kwargs"]["pretrained"] is False  # its own weights replace ImageNet's: nothing else to load
    card = (folder / "MODEL_CARD.md").read_text()
    for needed in ("Training data", "Recipe", "Held-out", "Licence", "research"):
        assert needed in card, needed


def test_loads_without_the_encoder_weight_package(monkeypatch):
    def unavailable(weights):
        raise pretrained.PretrainedWeightsError("not installed")

    monkeypatch.setattr(pretrained, "weights_file", unavailable)
    colorizer = Colorizer.load(NAME)
    ab = colorizer(torch.zeros(1, 1, 64, 64))
    assert ab.shape == (1, 2, 64, 64) and torch.isfinite(ab).all()


def test_colorize_a_real_black_and_white_photo(tmp_path, capsys):
    photo = tmp_path / "in" / "cameraman.png"  # CC0, a real grayscale photograph bundled with scikit-image
    photo.parent.mkdir()
    Image.fromarray(skdata.camera()).save(photo)
    assert cli.main(["colorize", "--model", NAME, str(photo), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "cameraman.png").convert("RGB"))
    assert out.shape == (512, 512, 3)
    lab = skcolor.rgb2lab(out)
    gray_l = skcolor.rgb2lab(np.repeat(skdata.camera()[..., None], 3, axis=2))[..., 0]
    assert np.abs(lab[..., 0] - gray_l).mean() < 1.0  # the photo's own lightness is kept
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    assert np.percentile(chroma, 90) > 5  # it is coloured, not gray
    sky = lab[:100, 200:400]  # the sky above the cameraman: blue (b < 0), as any colorization should paint it
    assert np.median(sky[..., 2]) < -3
    assert str(tmp_path / "out") in capsys.readouterr().out


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=NAME):
        find_export("gan-color-nonexistent")
