"""Data pipeline: folders (odd and broken files), filters, embedded photos, named-dataset failures, caches, add_lab."""

from __future__ import annotations

import argparse
import io
import logging
import socket
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from conftest import PHOTO_CROPS, write_photos
from PIL import Image
from torch.utils.data import DataLoader, default_collate

from gan_color import color
from gan_color.data import (
    DatasetUnavailableError,
    add_lab,
    build_dataset,
    cache,
    dataset_kind,
    filters,
    images,
)
from gan_color.registry import DATASETS


@pytest.fixture(scope="module")
def subset_dir(tmp_path_factory):
    """10 colour + 5 grayscale (single-channel JPEG) photos cut from the photos the package ships."""
    folder = tmp_path_factory.mktemp("subset")
    write_photos(folder, PHOTO_CROPS[:2])
    write_photos(folder, PHOTO_CROPS[2:3], gray=True)
    return folder


def _gray_names(folder):
    return {p.name for p in folder.glob("gray_*.jpg")}


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def _rgb(size=(48, 40), value=(200, 30, 60)):
    return Image.new("RGB", size, value)


@pytest.fixture()
def odd_dir(tmp_path):
    """Every kind of odd file a scraped folder holds. 12 decodable images, 3 unreadable, 1 truncated."""
    root = tmp_path / "odd"
    _save(root / "a" / "b" / "nested.jpg", _rgb())
    _save(root / "UPPER.PNG", _rgb())
    _save(root / "photo.JPEG", _rgb())
    _save(root / "w.webp", _rgb())
    _save(root / "b.bmp", _rgb())
    _save(root / "t.TIF", _rgb())
    _save(root / "gray_l.png", Image.new("L", (40, 40), 100))
    _save(root / "gray_la.png", Image.new("LA", (40, 40), (100, 0)))
    palette = Image.new("P", (40, 40), 1)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    _save(root / "palette_transparent.png", palette, transparency=1)
    _save(root / "rgba.png", Image.new("RGBA", (40, 40), (255, 0, 0, 0)))
    _save(root / "cmyk.jpg", Image.new("CMYK", (40, 40), (255, 0, 0, 0)), quality=100)
    _save(root / "sixteen.png", Image.fromarray(np.full((40, 40), 32896, np.uint16)))  # I;16, 128 * 257
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 60).convert("RGB").save(buffer, "JPEG")
    (root / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "random.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    (root / "notes.txt").write_text("ignored")
    (root / "labels.csv").write_text("ignored")
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "ignored.jpg", _rgb())
    return root


def _warnings(caplog):
    return [r for r in caplog.records if r.name == "gan_color.data" and r.levelno == logging.WARNING]


def test_folder_over_photos(photo_dir):
    dataset = build_dataset(str(photo_dir), size=32, train=True, limit=8)
    assert len(dataset) == 8 and dataset.skipped == []
    item = dataset[5]
    assert set(item) == {"rgb", "gray_l", "real_ab", "index"} and item["index"] == 5
    assert item["rgb"].shape == (3, 32, 32) and item["rgb"].dtype == torch.float32
    assert item["gray_l"].shape == (1, 32, 32) and item["real_ab"].shape == (2, 32, 32)
    assert 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    assert -1 <= item["gray_l"].min() and item["gray_l"].max() <= 1 and item["real_ab"].abs().max() <= 1.2
    rgb_only = build_dataset(str(photo_dir), size=32, train=False, to_lab=False, limit=2)[1]
    assert set(rgb_only) == {"rgb", "index"} and rgb_only["rgb"].dtype == torch.uint8  # float only after add_lab
    with_lab = build_dataset(str(photo_dir), size=32, train=False, limit=2)[1]
    torch.testing.assert_close(with_lab["rgb"], rgb_only["rgb"] / 255)


def test_drop_grayscale_and_min_colorfulness(subset_dir):
    dataset = build_dataset(str(subset_dir), size=32, train=False, drop_grayscale=True)
    gray_names = _gray_names(subset_dir)
    assert len(gray_names) == 5 and len(dataset) == 10 and not {p.name for p in dataset.paths} & gray_names
    assert dataset.filter_report["dropped_grayscale"] == 5 and dataset.filter_report["considered"] == 15
    # min_colorfulness keeps exactly the images whose thumbnail score reaches it.
    scores = {p.name: filters.image_stats(images.load_thumbnail(p, filters.THUMBNAIL_SIDE))[1] for p in dataset.paths}
    threshold = float(np.median(list(scores.values())))
    colourful = build_dataset(str(subset_dir), size=32, train=False, drop_grayscale=True, min_colorfulness=threshold)
    assert {p.name for p in colourful.paths} == {name for name, s in scores.items() if s >= threshold}
    assert colourful.filter_report["dropped_low_colorfulness"] == 10 - len(colourful)


def test_odd_and_broken_files(odd_dir, caplog):
    caplog.set_level(logging.WARNING, logger="gan_color.data")
    dataset = build_dataset(str(odd_dir), size=16, train=True)
    assert len(dataset) == 13  # 12 good + the truncated JPEG, whose header is fine
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in dataset.skipped) == ["empty.jpg", "random.jpg", "text.png"]
    assert len(_warnings(caplog)) == 3
    for _ in range(2):  # the truncated file is replaced, and warned about once
        batch = [dataset[i] for i in range(len(dataset))]
    assert len(batch) == 13 and all(item["rgb"].shape == (3, 16, 16) for item in batch)
    assert len(_warnings(caplog)) == 4 and len(dataset.skipped) == 4
    assert "truncated.jpg" in dataset.skipped[-1][0] and "truncated" in dataset.skipped[-1][1]


def test_modes_convert_to_rgb(odd_dir):
    def pixel(name):
        return images.load_rgb(odd_dir / name).getpixel((5, 5))

    assert pixel("gray_l.png") == (100, 100, 100)
    assert pixel("gray_la.png") == (255, 255, 255)  # fully transparent -> white background
    assert pixel("palette_transparent.png") == (255, 255, 255)
    assert pixel("rgba.png") == (255, 255, 255)
    assert pixel("sixteen.png") == (128, 128, 128)  # rescaled from 16 bit, not clipped to 255
    cyan = pixel("cmyk.jpg")
    assert cyan[0] < 10 and cyan[1] > 245 and cyan[2] > 245
    assert images.to_rgb(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))).getpixel((1, 0)) == (128,) * 3
    assert images.to_rgb(Image.fromarray(np.array([[0, 7, 200]], np.int32))).getpixel((2, 0)) == (200,) * 3
    assert images.to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255,) * 3


def test_exif_orientation_and_jpeg_draft(tmp_path):
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    image.paste((0, 0, 255), (40, 0, 80, 40))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = images.load_rgb(tmp_path / "rotated.jpg")
    assert upright.size == (40, 80)
    top, bottom = upright.getpixel((20, 5)), upright.getpixel((20, 75))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
    _rgb((1600, 1200)).save(tmp_path / "big.jpg")
    assert images.load_rgb(tmp_path / "big.jpg", min_side=64).size == (200, 150)  # libjpeg decoded at 1/8


def test_eval_deterministic_train_seeded(photo_dir):
    evaluation = build_dataset(str(photo_dir), size=24, train=False, limit=4)
    torch.manual_seed(1)
    first = evaluation[2]["rgb"]
    torch.manual_seed(2)
    assert torch.equal(first, evaluation[2]["rgb"])
    train = build_dataset(str(photo_dir), size=24, train=True, limit=4, to_lab=False)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(train[2]["rgb"])
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_embedded_offline_and_worker_seeding(monkeypatch):
    real_connect = socket.socket.connect

    def no_network(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError("network access attempted in an offline test")
        return real_connect(sock, address)  # DataLoader workers talk over Unix sockets

    monkeypatch.setattr(socket.socket, "connect", no_network)
    dataset = build_dataset("embedded", size=32, train=True, embedded_length=12)
    assert len(dataset) == 12 and dataset[11]["rgb"].shape == (3, 32, 32) and dataset[11]["real_ab"].shape[0] == 2

    def epoch():
        loader = DataLoader(dataset, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(7))
        return torch.cat([batch["rgb"] for batch in loader])

    assert torch.equal(epoch(), epoch())
    evaluation = build_dataset("embedded", size=32, train=False, embedded_length=12, seed=3)
    assert torch.equal(evaluation[4]["rgb"], evaluation[4]["rgb"])
    assert not torch.equal(evaluation[0]["rgb"], evaluation[5]["rgb"])  # same photo, another fixed crop


@pytest.mark.parametrize("name,cls", [("cifar10", "CIFAR10"), ("stl10", "STL10"), ("places365", "Places365")])
def test_named_dataset_unavailable(name, cls, monkeypatch, tmp_path):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("GAN_COLOR_DATA", str(tmp_path))
    monkeypatch.setattr(torchvision.datasets, cls, unreachable)
    with pytest.raises(DatasetUnavailableError, match=rf"{name}.*URLError.*image folder") as info:
        build_dataset(name, size=32, train=True)
    assert str(tmp_path / name) in str(info.value)


def test_cache_round_trip(subset_dir, tmp_path):
    dst = cache.prepare_data(subset_dir, tmp_path / "cache", 32, workers=2, progress=False)
    assert dataset_kind(str(dst)) == "cache"
    cached, folder = (build_dataset(str(p), size=32, train=False) for p in (dst, subset_dir))
    assert len(cached) == len(folder) == 15
    for i in (0, 13):  # the cache stores exactly what the eval transform makes of the file
        assert torch.equal(cached[i]["rgb"], folder[i]["rgb"])
    assert cached[3]["gray_l"].shape == (1, 32, 32)
    assert build_dataset(str(dst), size=24, train=True)[0]["real_ab"].shape == (2, 24, 24)
    cached_gray = build_dataset(str(dst), size=32, train=False, drop_grayscale=True, min_colorfulness=20.0)
    folder_gray = build_dataset(str(subset_dir), size=32, train=False, drop_grayscale=True, min_colorfulness=20.0)
    assert (
        cached_gray.filter_report == folder_gray.filter_report and cached_gray.filter_report["dropped_grayscale"] == 5
    )
    assert [cached_gray.describe(i) for i in range(len(cached_gray))] == [str(p) for p in folder_gray.paths]


def test_prepare_data_cli_skips_broken_files(odd_dir, tmp_path, caplog, capsys):
    parser = argparse.ArgumentParser()
    cache.add_cli_arguments(parser)
    args = parser.parse_args([str(odd_dir), str(tmp_path / "c"), "--size", "16", "--workers", "2"])
    assert cache.run_cli(args) == 0
    assert "cached 12 images" in capsys.readouterr().out
    assert np.load(tmp_path / "c" / cache.IMAGES_FILE, mmap_mode="r").shape == (12, 16, 16, 3)
    assert len(_warnings(caplog)) == 4
    assert cache.run_cli(args) == 2 and "--overwrite" in capsys.readouterr().err


def test_add_lab_matches_to_lab(photo_dir):
    with_lab = build_dataset(str(photo_dir), size=24, train=False, limit=3)
    rgb_only = build_dataset(str(photo_dir), size=24, train=False, limit=3, to_lab=False)
    batch = add_lab(default_collate([rgb_only[i] for i in range(3)]))
    expected = default_collate([with_lab[i] for i in range(3)])
    assert torch.allclose(batch["gray_l"], expected["gray_l"]) and torch.allclose(
        batch["real_ab"], expected["real_ab"]
    )
    single = add_lab(rgb_only[1])
    assert torch.allclose(single["real_ab"], with_lab[1]["real_ab"])
    assert batch["rgb"].dtype == torch.float32 and single["rgb"].dtype == torch.float32  # items carry uint8
    assert torch.allclose(color.model_outputs_to_rgb(batch["gray_l"], batch["real_ab"]), batch["rgb"], atol=2e-3)
    assert add_lab(expected)["rgb"] is expected["rgb"]  # float, with L/ab: untouched


def test_spec_errors_and_registry(tmp_path):
    assert {"folder", "cache", "embedded", "cifar10", "stl10", "places365"} <= set(DATASETS.names())
    with pytest.raises(ValueError, match="nowhere"):
        build_dataset(str(tmp_path / "nowhere"), size=32, train=True)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        build_dataset(str(tmp_path), size=32, train=True)
    (tmp_path / "broken.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 image files"):
        build_dataset(str(tmp_path), size=32, train=True)
