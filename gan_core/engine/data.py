"""Data sets loaded once into memory as tensors: digits, MNIST, Fashion-MNIST, CIFAR-10, flowers, folders, 2-D toys."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST
from torchvision.datasets.folder import IMG_EXTENSIONS, ImageFolder, has_file_allowed_extension
from torchvision.datasets.utils import download_and_extract_archive
from torchvision.transforms.v2 import functional as F

from ..config import (  # defined beside ConfigError: the command line catches both without torch
    DataError,
    RunConfig,
)
from ..folder.run_folder import POINTS_PREFIX
from .idx import APT_PACKAGES, TRAIN_IMAGES, TRAIN_LABELS, find_pair, idx_folders, read_pair
from .models import ARCHS
from .points import read_points, tiled

FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
TOY_POINTS = 20_000
TOY_SEED = 1234  # fixed: the toy sets are the same in every run, whatever the run's seed


@dataclass
class Data:
    """A whole data set in memory: uint8 images (N, C, H, W) or float32 points (N, 2), with optional labels."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    num_classes: int
    class_names: tuple[str, ...]
    skipped: int = 0

    @property
    def points(self) -> bool:
        """True for 2-D point sets."""
        return self.x.dim() == 2

    @property
    def data_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (2,) for points."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def facts(self) -> DataFacts:
        return DataFacts(self.name, len(self), self.y is not None)

    def spread(self) -> tuple[tuple[float, ...], float]:
        """2-D points: their mean (x, y) and their spread about it (root-mean-square over both coordinates, at
        least 1e-3), the units the networks work in (models.Standardise); images: (0, 0) and 1."""
        if not self.points:
            return (0.0, 0.0), 1.0
        x = self.x.double()
        mean = x.mean(0)
        return tuple(mean.tolist()), max(1e-3, float((x - mean).pow(2).mean().sqrt()))

    def real_points(self, n: int = 500) -> torch.Tensor:
        """2-D data: n real points spread along the set (drawn behind the generated ones)."""
        return self.x[:: max(1, len(self) // n)][:n]


class DataFacts(NamedTuple):
    """What the checks before Start need of a data set, known without loading it."""

    name: str
    size: int  # samples (a folder: its image files, some of which may turn out unreadable)
    labelled: bool


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: loader(image_size, data_dir, download) -> Data, what it holds, and where(data_dir): the
    place it loads from without the network, or None when it downloads on first use (looks, reads nothing)."""

    loader: Callable[[int, Path, bool], Data]
    kind: str  # 'image' or 'points'
    labelled: bool
    size: int  # the training split's samples
    description: str
    where: Callable[[Path], str | None] = lambda data_dir: "built in"


# ---- transforms


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1] (x / 127.5 - 1); float points pass through unchanged."""
    if x.dtype == torch.uint8:
        return x.float() / 127.5 - 1.0
    return x


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of a batch (B, C, H, W) horizontally with probability 0.5, on x's device."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


def _resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 images (N, C, h, w) to (N, C, size, size), bilinear with antialias."""
    if tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    return F.resize(x, [size, size], antialias=True)


def _resize_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side of one uint8 image (C, h, w) to size, then center-crop to size x size."""
    return F.center_crop(F.resize(img, [size], antialias=True), [size, size])


# ---- folders of images


def _read_image(path: str, size: int) -> torch.Tensor | None:
    """One file -> uint8 (1 or 3, size, size), 1 channel only for greyscale; None when unreadable."""
    try:
        with Image.open(path) as img:
            img.draft(None, (size, size))  # JPEG: decode at a reduced scale, still >= size
            img = img.convert("L" if img.mode in ("L", "1") else "RGB")
        return _resize_crop(F.pil_to_tensor(img), size)
    except Exception:  # any unreadable or corrupt file is skipped and counted
        return None


def _folder_samples(root: Path) -> tuple[list[str], list[int] | None, tuple[str, ...]]:
    """Image paths, labels (None for a flat folder) and class names, without opening any file."""
    if any(entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(root)):
        folder = ImageFolder(str(root), allow_empty=True)
        return [p for p, _ in folder.samples], [c for _, c in folder.samples], tuple(folder.classes)
    paths = sorted(str(p) for p in root.iterdir() if has_file_allowed_extension(p.name, IMG_EXTENSIONS))
    return paths, None, (root.name,)


def _stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """Stack (C, H, W) images; greyscale ones are repeated to 3 channels unless every image is greyscale."""
    if any(img.shape[0] == 3 for img in images):
        images = [img.expand(3, -1, -1) for img in images]
    return torch.stack(images)


def _existing_folder(path: str | Path) -> Path:
    root = Path(path)
    if root.is_file():
        raise DataError(f"{root} is a file, not a folder: give a folder of images or of class sub-folders")
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist: give a folder of images or of class sub-folders"
        )
    return root


def load_folder(path: str | Path, image_size: int, name: str | None = None) -> Data:
    """Read a folder of images (class sub-folders give labels; a flat folder is one unlabelled class)."""
    root = _existing_folder(path)
    paths, labels, class_names = _folder_samples(root)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(lambda p: _read_image(p, image_size), paths))
    keep = [i for i, img in enumerate(images) if img is not None]
    if not keep:
        raise DataError(
            f"no readable image in {root} ({len(paths)} image files): add .png/.jpg files or class sub-folders"
        )
    y = None if labels is None else torch.tensor([labels[i] for i in keep], dtype=torch.int64)
    x = _stack_images([images[i] for i in keep])
    return Data(name or f"folder:{path}", x, y, len(class_names), class_names, skipped=len(paths) - len(keep))


# ---- torchvision data sets


def _short(err: Exception) -> str:
    """The last non-empty line of an error, shortened: urllib's reason is usually there."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:120]


def _missing(name: str, folder: Path, download: bool, err: Exception, what: str) -> DataError:
    reason = _short(err) if download else "download=False"
    return DataError(
        f"{name} is not in {folder} and could not be downloaded ({reason}): put {what} there, or use --dataset digits"
    )


def _idx_where(cls: type[MNIST], name: str) -> Callable[[Path], str | None]:
    def where(data_dir: Path) -> str | None:
        pair = find_pair(idx_folders(name, cls.__name__, data_dir))
        return None if pair is None else str(pair.images.parent.absolute())

    return where


def _download_idx(
    cls: type[MNIST], name: str, data_dir: Path, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's download into data_dir, when no copy was found: images (N, 28, 28) and labels."""
    try:
        if not download:
            raise RuntimeError("download=False")
        ds = cls(str(data_dir), train=True, download=True)
    except Exception as err:
        folders = idx_folders(name, cls.__name__, data_dir)
        apt = f"run `apt-get install {APT_PACKAGES[name]}`, " if name in APT_PACKAGES else ""
        raise DataError(
            f"{name} is not in {', '.join(map(str, folders))} and could not be downloaded ({_short(err)}): {apt}"
            f"put {TRAIN_IMAGES} and {TRAIN_LABELS} (.gz or not) in {folders[0]}, or use --dataset digits"
        ) from err
    return ds.data, ds.targets.long()


def _load_mnist_like(cls: type[MNIST], name: str) -> Callable[[int, Path, bool], Data]:
    def loader(image_size: int, data_dir: Path, download: bool) -> Data:
        pair = find_pair(idx_folders(name, cls.__name__, data_dir))
        images, labels = _download_idx(cls, name, data_dir, download) if pair is None else read_pair(pair)
        x = _resize_batch(images.unsqueeze(1), image_size)  # (N, 1, S, S)
        return Data(name, x, labels, len(cls.classes), tuple(cls.classes))

    return loader


def _folder_where(folder: str) -> Callable[[Path], str | None]:
    return lambda data_dir: str((data_dir / folder).absolute()) if (data_dir / folder).is_dir() else None


def _load_cifar10(image_size: int, data_dir: Path, download: bool) -> Data:
    try:
        ds = CIFAR10(str(data_dir), train=True, download=download)
    except Exception as err:
        what = "the extracted cifar-10-python.tar.gz (data_batch_1..5, test_batch, batches.meta)"
        raise _missing("cifar10", data_dir / CIFAR10.base_folder, download, err, what) from err
    x = _resize_batch(torch.from_numpy(ds.data).permute(0, 3, 1, 2), image_size)  # (N, 3, S, S)
    return Data("cifar10", x, torch.tensor(ds.targets, dtype=torch.int64), len(ds.classes), tuple(ds.classes))


def _load_flowers(image_size: int, data_dir: Path, download: bool) -> Data:
    folder = data_dir / "flower_photos"
    if not folder.is_dir():
        try:
            if not download:
                raise RuntimeError("download=False")
            download_and_extract_archive(FLOWERS_URL, download_root=str(data_dir))
        except Exception as err:
            raise DataError(
                f"flowers is not in {folder} and could not be downloaded ({_short(err)}): extract {FLOWERS_URL} "
                f"into {data_dir} (giving {folder}/<class>/*.jpg), or use --dataset digits"
            ) from err
    return load_folder(folder, image_size, name="flowers")


def _load_digits(image_size: int, data_dir: Path, download: bool) -> Data:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).mul(255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(digits.target).long()
    return Data("digits", _resize_batch(x, image_size), y, 10, tuple(str(d) for d in range(10)))


# ---- 2-D toys


def toy_centres(name: str) -> torch.Tensor:
    """Mode centres (K, 2) of a 2-D toy: 'ring' (8 on a circle of radius 2) or 'grid' (25 at {-4..4 step 2}^2)."""
    if name == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)).float()
    if name == "grid":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(axis, axis)
    raise DataError(f"unknown toy {name!r}: choose one of {', '.join(TOY_STD)}")


def _load_toy(name: str) -> Callable[[int, Path, bool], Data]:
    def loader(image_size: int, data_dir: Path, download: bool) -> Data:
        centres, std = toy_centres(name), TOY_STD[name]
        generator = torch.Generator().manual_seed(TOY_SEED)
        k = centres.shape[0]
        y = (torch.arange(TOY_POINTS) % k)[torch.randperm(TOY_POINTS, generator=generator)]  # balanced modes
        x = centres[y] + std * torch.randn(TOY_POINTS, 2, generator=generator)
        return Data(name, x, y, k, tuple(f"mode {i}" for i in range(k)))

    return loader


def load_points(name: str) -> Data:
    """'points:FILE.npy': a drawn 2-D set (engine.points checks it), one unlabelled class."""
    # (>= 20,000, 2): any toy preset's batch fits
    points = tiled(read_points(name.removeprefix(POINTS_PREFIX)))
    return Data(name, torch.from_numpy(points), None, 1, ("points",))


# ---- public entry points

_cache: dict[tuple[str, int, str], Data] = {}
_key_locks: dict[tuple[str, int, str], threading.Lock] = {}
_locks_lock = threading.Lock()


def dataset_kind(name: str) -> str:
    """'image' or 'points' for a registry name, 'folder:PATH' or 'points:FILE.npy' (no loading; DataError for an
    unknown name)."""
    if name.startswith("folder:"):
        return "image"
    if name.startswith(POINTS_PREFIX):
        return "points"
    if name not in DATASETS:
        raise DataError(
            f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}, folder:PATH or points:FILE.npy"
        )
    return DATASETS[name].kind


def data_for(config: RunConfig) -> Data:
    """The data a run's settings train on, at its architecture's image size."""
    return load_dataset(config.dataset, ARCHS[config.arch].image_size, config.data_dir)


def load_dataset(
    name: str, image_size: int = 28, data_dir: str | Path = "data", download: bool = True
) -> Data:
    """Load a registry data set (or 'folder:PATH'), images resized to image_size x image_size.

    Cached per process by (name, image_size, data_dir), so a second call returns the same Data at once.
    """
    kind = dataset_kind(name)
    if name.startswith(POINTS_PREFIX):  # a small file, read each time: a drawing saved again is seen
        return load_points(name)
    if kind == "image" and image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, not {image_size}")
    key = (name, image_size if kind == "image" else 0, str(Path(data_dir).resolve()))
    with _locks_lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:  # two threads asking for the same set share one load; other sets are not held up
        if key not in _cache:
            if name.startswith("folder:"):
                _cache[key] = _folder_loader(name)(image_size, Path(data_dir), download)
            else:
                with _no_new_empty_folders(Path(data_dir)):  # a failed download leaves nothing behind
                    _cache[key] = DATASETS[name].loader(image_size, Path(data_dir), download)
        return _cache[key]


def offline_source(name: str, data_dir: str | Path = "data") -> str | None:
    """Where a registry data set loads from without the network ('built in' for digits and the toys, else a
    folder's absolute path), or None when it would download on first use. Only looks for files: opens none."""
    dataset_kind(name)  # DataError for an unknown name
    if name.startswith(POINTS_PREFIX):
        return str(Path(name.removeprefix(POINTS_PREFIX)).absolute())
    return DATASETS[name].where(Path(data_dir))


def data_facts(name: str, data_dir: str | Path = "data") -> DataFacts:
    """Size and labels of a registry data set or 'folder:PATH', without loading any image."""
    dataset_kind(name)  # DataError for an unknown name
    if name.startswith("folder:"):
        root = _existing_folder(name.removeprefix("folder:"))
        paths, labels, _ = _folder_samples(root)
        return DataFacts(name, len(paths), labels is not None)
    if name.startswith(POINTS_PREFIX):
        return DataFacts(name, len(tiled(read_points(name.removeprefix(POINTS_PREFIX)))), False)
    return DataFacts(name, DATASETS[name].size, DATASETS[name].labelled)


@contextmanager
def _no_new_empty_folders(root: Path) -> Iterator[None]:
    """On failure, remove the empty folders created meanwhile under root (and root itself if it was new)."""
    existed = root.is_dir()
    before = {p for p in root.rglob("*") if p.is_dir()} if existed else set()
    try:
        yield
    except BaseException:
        created = [p for p in root.rglob("*") if p.is_dir() and p not in before] if root.is_dir() else []
        for path in sorted(created, key=lambda p: len(p.parts), reverse=True) + ([] if existed else [root]):
            with contextlib.suppress(OSError):  # not empty: something real was written there
                path.rmdir()
        raise


def _folder_loader(name: str) -> Callable[[int, Path, bool], Data]:
    return lambda image_size, data_dir, download: load_folder(name.removeprefix("folder:"), image_size, name)


# ---- registries

TOY_STD = {"ring": 0.02, "grid": 0.05}
TOYS = {name: (toy_centres(name), std) for name, std in TOY_STD.items()}

DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(_load_digits, "image", True, 1797, "scikit-learn's 1,797 8x8 handwritten digits"),
    "mnist": DatasetInfo(_load_mnist_like(MNIST, "mnist"), "image", True, 60_000, "MNIST handwritten digits, 60,000",
                         _idx_where(MNIST, "mnist")),
    "fashion-mnist": DatasetInfo(_load_mnist_like(FashionMNIST, "fashion-mnist"), "image", True, 60_000,
                                 "Fashion-MNIST clothes, 60,000 in 10 classes", _idx_where(FashionMNIST, "fashion-mnist")),
    "cifar10": DatasetInfo(_load_cifar10, "image", True, 50_000, "CIFAR-10 colour photos, 50,000 in 10 classes",
                           _folder_where(CIFAR10.base_folder)),
    "flowers": DatasetInfo(_load_flowers, "image", True, 3670, "TensorFlow flower_photos, 3,670 photos in 5 classes",
                           _folder_where("flower_photos")),
    "ring": DatasetInfo(_load_toy("ring"), "points", True, TOY_POINTS, "8 Gaussians on a circle of radius 2, std 0.02"),
    "grid": DatasetInfo(_load_toy("grid"), "points", True, TOY_POINTS, "25 Gaussians on a 5x5 grid, std 0.05"),
}  # fmt: skip
