"""Shared pytest fixtures (CPU-only, offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


# Crops (left, top, right, bottom as fractions) of each bundled photo: whole, two overlapping thirds, the centre.
PHOTO_CROPS = ((0, 0, 1, 1), (0, 0, 2 / 3, 2 / 3), (1 / 3, 1 / 3, 1, 1), (1 / 4, 1 / 4, 3 / 4, 3 / 4))
PHOTO_SIDE = 192  # the longer side of each written photo: small enough to keep the tests fast


def write_photos(folder: Path, crops=PHOTO_CROPS, *, gray: bool = False) -> list[Path]:
    """JPEGs cut from the colour photos the package ships (gan_color.data.embedded), named so the first five in
    sorted order come from five different photos; with `gray`, saved as single-channel (L) JPEGs."""
    from gan_color.data.embedded import PHOTOS, load_photos

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, box in enumerate(crops):
        for name, array in zip(PHOTOS, load_photos()):
            image = Image.fromarray(array)
            width, height = image.size
            image = image.crop((round(box[0] * width), round(box[1] * height), round(box[2] * width),
                                round(box[3] * height)))
            image.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
            path = folder / f"{'gray_' if gray else ''}{k:02d}_{name}.jpg"
            (image.convert("L") if gray else image).save(path, quality=90)
            paths.append(path)
    return paths


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 colour photos (JPEG, longer side 192 px) cut from the photos the package ships: every clone has them."""
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder)
    return folder


@pytest.fixture(scope="session")
def imagenet_dir() -> Path:
    """The 1000-image ImageNet sample next to the repository (../shared/data). Only the FID regression tests use
    it, for the numbers recorded on it; they need the real weights from ../shared/weights too."""
    path = SHARED_DATA / "imagenet-1k-sample"
    if not path.is_dir():
        pytest.skip(f"{path} is missing: the FID regression numbers were recorded on these photos")
    return path


@pytest.fixture(scope="session")
def prepared_torch_home() -> Path:
    """A torch hub cache with the real LPIPS/FID weights, built once from ../shared/weights into .torch_home/."""
    if not (SHARED_WEIGHTS / "make_torch_home.py").is_file():
        pytest.skip(f"needs the real LPIPS/FID weights, which are not in the repository: {SHARED_WEIGHTS} is missing")
    home = REPO / ".torch_home"
    if not (home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").is_file():
        subprocess.run([sys.executable, str(SHARED_WEIGHTS / "make_torch_home.py"), str(home)], check=True,
                       capture_output=True)
    return home


FID_STAND_IN = "gan-color-test-colour-stats"


@pytest.fixture(scope="session")
def fid_stand_in() -> str:
    """The name of a tiny torch-fidelity feature extractor (per-channel mean and std of uint8 images) registered in
    place of Inception, for FID plumbing tests that need no weights."""
    import torch
    from torch_fidelity import register_feature_extractor
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    class ColourStats(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)

        @staticmethod
        def get_provided_features_list():
            return ("stats",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "stats"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            assert x.dtype == torch.uint8  # torch-fidelity's contract, kept by gan_color
            x = x.double() / 255
            return (torch.cat([x.mean((2, 3)), x.std((2, 3))], 1),)

    if FID_STAND_IN not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(FID_STAND_IN, ColourStats)
    return FID_STAND_IN


@pytest.fixture
def kill_after_checkpoint(monkeypatch: pytest.MonkeyPatch):
    """`kill(cfg, step)`: train `cfg` as a process killed right after the checkpoint of `step` is written (the
    run stops with KeyboardInterrupt, as from Ctrl-C), leaving the run folder for a resume to continue."""
    from gan_color import train

    def kill(cfg, step: int) -> None:
        real_save = train.save

        def save_then_die(run):
            real_save(run)
            if run.step == step:
                raise KeyboardInterrupt

        monkeypatch.setattr(train, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train.main(cfg)
        monkeypatch.setattr(train, "save", real_save)

    return kill
