"""Tests for gan_core.engine.data: every loader on files the test writes in the format torchvision reads; no network."""

import gzip
import pickle
import shutil
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
import torchvision.datasets.mnist
from conftest import write_idx
from PIL import Image

from gan_core.engine import data, idx
from gan_core.engine.data import (
    DATASETS,
    TOYS,
    DataError,
    dataset_kind,
    load_dataset,
    offline_source,
    random_hflip,
    to_model_range,
)


def _offline(*args, **kwargs):
    raise URLError("offline (test)")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download fails at once, as on a machine without internet."""
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", _offline)
    monkeypatch.setattr(data, "download_and_extract_archive", _offline)


@pytest.fixture(autouse=True)
def no_copies_elsewhere(tmp_path, monkeypatch):
    """Only the test's own files are found: no system package, no $GAN_DATA_DIR, the working folder tmp_path."""
    system = {name: tmp_path / "system" / name for name in idx.SYSTEM_FOLDERS}
    monkeypatch.setattr(idx, "SYSTEM_FOLDERS", system)
    monkeypatch.delenv("GAN_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return system


# ---- digits


def test_digits_shape_labels_and_range():
    digits = load_dataset("digits")
    assert digits.x.shape == (1797, 1, 28, 28) and digits.x.dtype == torch.uint8
    assert digits.y.dtype == torch.int64 and sorted(digits.y.unique().tolist()) == list(range(10))
    assert digits.x.min() == 0 and digits.x.max() == 255
    assert digits.num_classes == 10 and digits.class_names == tuple("0123456789")
    assert len(digits) == 1797 and digits.data_shape == (1, 28, 28) and not digits.points


def test_digits_resized_to_64():
    assert load_dataset("digits", image_size=64).x.shape == (1797, 1, 64, 64)


def test_digits_at_8_keep_sklearn_values():
    from sklearn.datasets import load_digits

    expected = torch.from_numpy(load_digits().images * 255 / 16).round().to(torch.uint8)
    assert torch.equal(load_dataset("digits", image_size=8).x[:, 0], expected)


# ---- mnist and fashion-mnist


def _write_idx_images(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes())


def _write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">ii", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


def _write_mnist(raw: Path, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Write train and t10k IDX files (torchvision checks all four exist); return the train images and labels."""
    raw.mkdir(parents=True)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        images[i] = 10 * i  # a flat grey level per image ...
        images[i, i, 2 * i] = 255  # ... and one bright pixel at a known place
    labels = np.arange(n)[::-1] % 10
    for split, count in (("train", n), ("t10k", 2)):
        _write_idx_images(raw / f"{split}-images-idx3-ubyte", images[:count])
        _write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels[:count])
    return images, labels


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_reads_idx_files(tmp_path, name, folder):
    images, labels = _write_mnist(tmp_path / folder / "raw")
    loaded = load_dataset(name, image_size=28, data_dir=tmp_path)
    assert loaded.x.shape == (5, 1, 28, 28) and loaded.x.dtype == torch.uint8
    assert torch.equal(loaded.x[:, 0], torch.from_numpy(images))
    assert loaded.y.tolist() == labels.tolist() and loaded.y.dtype == torch.int64
    assert loaded.num_classes == 10 and loaded.name == name
    assert load_dataset(name, image_size=14, data_dir=tmp_path).x.shape == (5, 1, 14, 14)


@pytest.mark.parametrize("download", [True, False])
def test_mnist_missing_names_the_folder(tmp_path, download):
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=tmp_path, download=download)
    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message
    assert "\n" not in message and "--dataset digits" in message
    if download:
        assert "offline (test)" in message


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_the_training_split_alone_gzipped_or_not(tmp_path, gz):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "FashionMNIST" / "raw", images, np.array([9, 0, 3]), gz=gz)  # no t10k files
    loaded = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert torch.equal(loaded.x[:, 0], torch.from_numpy(images).to(torch.uint8)) and loaded.y.tolist() == [
        9,
        0,
        3,
    ]
    assert loaded.class_names[9] == "Ankle boot" and len(loaded.class_names) == 10


def test_idx_files_are_found_in_data_dir_then_env_then_data_then_the_system(
    tmp_path, monkeypatch, no_copies_elsewhere
):
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "env"))
    places = [tmp_path / "mine" / "FashionMNIST" / "raw", tmp_path / "env" / "FashionMNIST" / "raw",
              tmp_path / "data" / "FashionMNIST" / "raw", no_copies_elsewhere["fashion-mnist"]]  # fmt: skip
    for n, raw in enumerate(places, start=1):  # n images of label n in the n-th place
        write_idx(raw, np.full((n, 28, 28), n), np.full(n, n), gz=n % 2 == 0)
    for n, raw in enumerate(places, start=1):
        assert offline_source("fashion-mnist", tmp_path / "mine") == str(raw)
        loaded = DATASETS["fashion-mnist"].loader(28, tmp_path / "mine", False)  # the loader itself: no cache
        assert loaded.y.tolist() == [n] * n, raw
        shutil.rmtree(raw)
    assert offline_source("fashion-mnist", tmp_path / "mine") is None


def test_fashion_mnist_missing_names_the_apt_package(tmp_path, no_copies_elsewhere):
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", data_dir=tmp_path / "mine")
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message and "offline (test)" in message
    assert str(tmp_path / "mine" / "FashionMNIST" / "raw") in message and "--dataset digits" in message
    assert str(no_copies_elsewhere["fashion-mnist"]) in message and "\n" not in message
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=tmp_path / "mine")
    assert "apt-get" not in str(caught.value)  # no package installs MNIST


def _spoil(raw: Path, kind: str) -> tuple[Path, str]:
    """Write a training split of 20 images with one thing wrong; the file at fault and what the error says."""
    images, labels = np.zeros((20, 28, 28)), np.arange(20) % 10
    if kind == "labels out of range":
        labels[3] = 10
    image_path, label_path = write_idx(raw, images if kind != "32x32" else np.zeros((20, 32, 32)),
                                       labels[:19] if kind == "count mismatch" else labels,
                                       gz=kind in ("truncated gzip", "not gzip"))  # fmt: skip
    if kind == "bad magic":
        image_path.write_bytes(struct.pack(">I", 0x802) + image_path.read_bytes()[4:])
        return image_path, "is not an IDX images file: magic number 0x00000802, expected 0x00000803"
    if kind == "truncated":
        image_path.write_bytes(image_path.read_bytes()[:-100])
        return image_path, "is truncated: 15,596 bytes, its header [20, 28, 28] says 15,696"
    if kind == "header only":
        label_path.write_bytes(b"\x00\x00\x08")
        return label_path, "is truncated: 3 bytes, shorter than its 8-byte header"
    if kind == "truncated gzip":
        image_path.write_bytes(image_path.read_bytes()[:-30])
        return image_path, "is truncated: the gzip stream ends early"
    if kind == "not gzip":
        label_path.write_bytes(gzip.decompress(label_path.read_bytes()))
        return label_path, "cannot be read: Not a gzipped file"
    return {
        "labels out of range": (label_path, "has label 10 at index 3: expected 0 to 9"),
        "count mismatch": (label_path, f"has 19 labels but {image_path} has 20 images"),
        "32x32": (image_path, "holds 32x32 images, expected 28x28"),
    }[kind]


DAMAGED = ["bad magic", "truncated", "header only", "truncated gzip", "not gzip", "labels out of range",
           "count mismatch", "32x32"]  # fmt: skip


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_idx_file_is_named_with_what_is_wrong(tmp_path, kind):
    path, what = _spoil(tmp_path / "FashionMNIST" / "raw", kind)
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert (
        str(caught.value).startswith(f"{path} ")
        and what in str(caught.value)
        and "\n" not in str(caught.value)
    )


def test_offline_source_says_where_each_set_is(tmp_path):
    assert offline_source("digits", tmp_path) == offline_source("ring", tmp_path) == "built in"
    assert all(
        offline_source(name, tmp_path) is None for name in ("mnist", "fashion-mnist", "cifar10", "flowers")
    )
    write_idx(tmp_path / "MNIST" / "raw", np.zeros((1, 28, 28)), np.zeros(1), gz=True)
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "flower_photos").mkdir()
    assert offline_source("mnist", tmp_path) == str(tmp_path / "MNIST" / "raw")
    assert offline_source("cifar10", tmp_path) == str(tmp_path / "cifar-10-batches-py")
    assert offline_source("flowers", tmp_path) == str(tmp_path / "flower_photos")
    assert offline_source("fashion-mnist", tmp_path) is None
    with pytest.raises(DataError, match="unknown data set"):
        offline_source("imagenet", tmp_path)


# ---- cifar10


def test_cifar10_reads_pickled_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True
    )  # no md5s
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = np.arange(5 * 2 * 3072).reshape(10, 3072).astype(np.uint8)
    for b in range(5):
        batch = {"data": images[2 * b : 2 * b + 2], "labels": [b, 9 - b]}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch))
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    loaded = load_dataset("cifar10", image_size=32, data_dir=tmp_path)
    assert loaded.x.shape == (10, 3, 32, 32) and loaded.x.dtype == torch.uint8
    assert torch.equal(loaded.x.reshape(10, 3072), torch.from_numpy(images))  # CIFAR rows are (3, 32, 32)
    assert loaded.y.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5] and loaded.class_names == tuple(names)


def test_cifar10_missing_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py") as caught:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path) in str(caught.value) and "offline (test)" in str(caught.value)


# ---- folders and flowers


def _save(path: Path, size=(40, 20), colour=(255, 0, 0), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def _class_folder(root: Path) -> None:
    for i in range(3):
        _save(root / "cats" / f"c{i}.png", colour=(200, 10 * i, 0))
    for i in range(2):
        _save(root / "dogs" / f"d{i}.jpg", size=(30, 50), colour=(0, 0, 200))
    (root / "cats" / "x.png").write_bytes(b"this is not a png at all")
    (root / "notes.txt").write_text("not an image, not counted")


def test_folder_with_classes_skips_corrupt_file(tmp_path):
    _class_folder(tmp_path)
    loaded = load_dataset(f"folder:{tmp_path}", image_size=16)
    assert loaded.x.shape == (5, 3, 16, 16) and loaded.x.dtype == torch.uint8
    assert loaded.skipped == 1
    assert (
        loaded.y.tolist() == [0, 0, 0, 1, 1]
        and loaded.class_names == ("cats", "dogs")
        and loaded.num_classes == 2
    )
    assert (
        loaded.x[0, :, 8, 8].tolist() == [200, 0, 0] and loaded.x[3, 2, 8, 8] > 190
    )  # colours kept, RGB order


def test_folder_resize_crops_the_centre(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 255, 0))
    img.paste(
        (255, 0, 0), (0, 0, 5, 20)
    )  # red and blue side bands: squeezing would keep them, cropping drops them
    img.paste((0, 0, 255), (35, 0, 40, 20))
    img.save(tmp_path / "a.png")
    loaded = load_dataset(f"folder:{tmp_path}", image_size=10)
    assert loaded.x.shape == (1, 3, 10, 10)
    assert (loaded.x[0, 1] == 255).all() and (loaded.x[0, 0] == 0).all() and (loaded.x[0, 2] == 0).all()


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(4):
        _save(tmp_path / f"img{i}.png", colour=(i, i, i))
    loaded = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert loaded.x.shape == (4, 3, 8, 8) and loaded.y is None
    assert loaded.num_classes == 1 and loaded.class_names == (tmp_path.name,) and loaded.skipped == 0


def test_greyscale_folder_gives_one_channel_and_mixed_gives_three(tmp_path):
    for i in range(3):
        _save(tmp_path / "grey" / f"g{i}.png", colour=50 * i, mode="L")
    grey = load_dataset(f"folder:{tmp_path / 'grey'}", image_size=12)
    assert grey.x.shape == (3, 1, 12, 12) and grey.x[:, 0, 0, 0].tolist() == [0, 50, 100]
    _save(tmp_path / "grey" / "colour.png", colour=(1, 2, 3))
    mixed = data.load_folder(tmp_path / "grey", image_size=12)
    assert mixed.x.shape == (4, 3, 12, 12) and mixed.x[:, :, 0, 0].tolist() == [
        [1, 2, 3],  # colour.png sorts first; grey images are repeated to 3 channels
        [0, 0, 0],
        [50, 50, 50],
        [100, 100, 100],
    ]


def test_empty_or_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable image") as caught:
        load_dataset(f"folder:{tmp_path / 'empty'}")
    assert "\n" not in str(caught.value)


def test_a_file_given_as_folder_is_called_a_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"one image, not a folder")
    with pytest.raises(DataError) as caught:
        load_dataset(f"folder:{tmp_path / 'a.png'}")
    assert str(caught.value) == (
        f"{tmp_path / 'a.png'} is a file, not a folder: give a folder of images or of class sub-folders"
    )


def test_flowers_reads_extracted_folder(tmp_path):
    for flower in ("daisy", "roses"):
        _save(tmp_path / "flower_photos" / flower / "a.jpg", size=(64, 48))
    (tmp_path / "flower_photos" / "LICENSE.txt").write_text("licence")
    loaded = load_dataset("flowers", image_size=32, data_dir=tmp_path)
    assert (
        loaded.name == "flowers"
        and loaded.x.shape == (2, 3, 32, 32)
        and loaded.class_names == ("daisy", "roses")
    )


def test_flowers_missing_says_where_to_extract(tmp_path):
    with pytest.raises(DataError, match="flower_photos.tgz") as caught:
        load_dataset("flowers", data_dir=tmp_path)
    assert str(tmp_path / "flower_photos") in str(caught.value) and "offline (test)" in str(caught.value)


# ---- 2-D toys


def test_toy_centres():
    ring, ring_std = TOYS["ring"]
    assert ring.shape == (8, 2) and ring_std == 0.02
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(ring[2], torch.tensor([0.0, 2.0]), atol=1e-6)
    grid, grid_std = TOYS["grid"]
    assert grid.shape == (25, 2) and grid_std == 0.05
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(c) for c in grid.tolist()}) == 25


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_toy_points_around_their_modes(name):
    centres, std = TOYS[name]
    toy = load_dataset(name)
    assert toy.points and toy.data_shape == (2,) and toy.x.dtype == torch.float32 and len(toy) == 20_000
    assert toy.num_classes == len(centres) and sorted(toy.y.unique().tolist()) == list(range(len(centres)))
    offsets = toy.x - centres[toy.y]
    assert offsets.norm(dim=1).max() < 5 * std
    assert offsets.std().item() == pytest.approx(std, rel=0.05)
    assert torch.equal(data._load_toy(name)(0, Path("."), False).x, toy.x)  # the same fixed set every time


def test_spread_is_what_the_networks_standardise_points_by():
    shift, scale = load_dataset("grid").spread()
    assert max(map(abs, shift)) < 0.05 and scale == pytest.approx(8**0.5, rel=0.01)  # {-4 .. 4}^2: variance 8
    shift, scale = load_dataset("ring").spread()
    assert max(map(abs, shift)) < 0.05 and scale == pytest.approx(2**0.5, rel=0.01)  # radius 2
    assert load_dataset("digits").spread() == ((0.0, 0.0), 1.0)  # images: not used


# ---- transforms, registry and cache


def test_to_model_range():
    x = torch.tensor([0, 255, 127], dtype=torch.uint8)
    out = to_model_range(x)
    assert out.dtype == torch.float32 and out[0] == -1.0 and out[1] == 1.0 and abs(out[2]) < 0.01
    points = torch.randn(4, 2)
    assert to_model_range(points) is points


def test_random_hflip_flips_about_half_and_keeps_values():
    x = torch.arange(1000 * 2 * 3 * 4, dtype=torch.float32).reshape(1000, 2, 3, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped ^ kept).all()  # each image is either untouched or mirrored, never mixed
    assert 420 < flipped.sum() < 580
    assert torch.equal(out.sort(-1).values, x.sort(-1).values)


def test_dataset_kind():
    assert dataset_kind("ring") == dataset_kind("grid") == "points"
    assert dataset_kind("digits") == dataset_kind("folder:/anywhere") == "image"
    assert set(DATASETS) == {"digits", "mnist", "fashion-mnist", "cifar10", "flowers", "ring", "grid"}
    with pytest.raises(DataError, match="digits, mnist, fashion-mnist, cifar10, flowers, ring, grid"):
        dataset_kind("imagenet")


def test_second_load_is_cached():
    first = load_dataset("digits", image_size=20)
    assert load_dataset("digits", image_size=20) is first
    assert load_dataset("digits", image_size=24) is not first
    assert isinstance(first, data.Data)
