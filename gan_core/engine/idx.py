"""MNIST-format (IDX) files, gzip or plain: where they are looked for, and read checked by content, not checksum."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import torch

from ..config import DataError

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # unsigned bytes, 3 and 1 dimensions
SIDE = 28
CLASSES = 10
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
SYSTEM_FOLDERS = {  # where a system package puts a set's IDX files (Debian: apt-get install dataset-fashion-mnist)
    "mnist": Path("/usr/share/datasets/mnist"),
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
}
APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


class IdxPair(NamedTuple):
    """The training split's two files (either may end in .gz)."""

    images: Path
    labels: Path


def idx_folders(name: str, torchvision_folder: str, data_dir: Path) -> list[Path]:
    """Where an MNIST-format set is looked for, in order: ROOT/<torchvision_folder>/raw (torchvision's layout) for
    ROOT the run's data_dir, $GAN_DATA_DIR and data/, then the folder a system package installs."""
    roots = dict.fromkeys([Path(data_dir), Path(os.environ.get("GAN_DATA_DIR", "data")), Path("data")])
    return [root / torchvision_folder / "raw" for root in roots] + [SYSTEM_FOLDERS[name]]


def _present(folder: Path, name: str) -> Path | None:
    """folder/name, else folder/name.gz, else None (the plain file first: torchvision un-gzips beside the .gz)."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def find_pair(folders: Iterable[Path]) -> IdxPair | None:
    """The first folder holding both training files; None when none does. Only looks, reads nothing."""
    for folder in folders:
        images, labels = _present(folder, TRAIN_IMAGES), _present(folder, TRAIN_LABELS)
        if images and labels:
            return IdxPair(images, labels)
    return None


def _content(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as file:
                return file.read()
        return path.read_bytes()
    except EOFError:
        raise DataError(f"{path} is truncated: the gzip stream ends early") from None
    except (OSError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read: {getattr(err, 'strerror', None) or err}") from None


def _checked(path: Path, magic: int, dims: int) -> tuple[tuple[int, ...], bytes]:
    """The header's sizes and the bytes after it, once magic number and length agree with the header."""
    raw, header = _content(path), 4 * (1 + dims)
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    found, *sizes = struct.unpack(f">{1 + dims}I", raw[:header])
    if found != magic:
        kind = "images" if dims == 3 else "labels"
        raise DataError(
            f"{path} is not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}"
        )
    expected = header + math.prod(sizes)
    if len(raw) != expected:
        short = "truncated" if len(raw) < expected else "too long"
        raise DataError(f"{path} is {short}: {len(raw):,} bytes, its header {sizes} says {expected:,}")
    return tuple(sizes), raw[header:]


def read_pair(pair: IdxPair) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels (N,) in 0..9; DataError naming the file that is wrong."""
    (n, rows, cols), pixels = _checked(pair.images, IMAGES_MAGIC, 3)
    if (rows, cols) != (SIDE, SIDE):
        raise DataError(f"{pair.images} holds {rows}x{cols} images, expected {SIDE}x{SIDE}")
    if n == 0:
        raise DataError(f"{pair.images} holds no images")
    (count,), label_bytes = _checked(pair.labels, LABELS_MAGIC, 1)
    if count != n:
        raise DataError(f"{pair.labels} has {count:,} labels but {pair.images} has {n:,} images")
    labels = torch.frombuffer(bytearray(label_bytes), dtype=torch.uint8).long()
    if count and labels.max() >= CLASSES:
        index = int(labels.argmax())
        raise DataError(
            f"{pair.labels} has label {int(labels[index])} at index {index}: expected 0 to {CLASSES - 1}"
        )
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(n, rows, cols)  # (N, 28, 28)
    return images, labels
