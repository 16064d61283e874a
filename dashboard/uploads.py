"""Unpack an uploaded ZIP of images into a folder safely: no path escapes, no links, limits checked first."""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

MAX_FILES = 20_000
MAX_BYTES = 1_000_000_000
MAX_RATIO = 200  # uncompressed : compressed, per image member; zip bombs reach 1000:1 and more
RATIO_FLOOR = 1 << 20  # members under 1 MiB may compress as well as they like
CHUNK = 1 << 20
MAX_NAME = 120  # characters kept of one path component, extension included
_WANTED = f"upload a ZIP of {'/'.join(e.lstrip('.') for e in IMG_EXTENSIONS)} files, flat or in class folders"


class UploadError(ValueError):
    """An upload that cannot be used; the message is one line that says why."""


@dataclass
class ExtractReport:
    """What extract_images wrote: the folder to load, the image count and what was skipped and why."""

    folder: Path
    images: int
    skipped: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason -> members skipped for it
    classes: tuple[str, ...] = ()  # class sub-folders written; () for one flat folder

    @property
    def summary(self) -> str:
        """One line for the UI, e.g. "120 images in 2 class folders (cats, dogs); skipped 2: 2 not an image"."""
        where = f" in {len(self.classes)} class folders ({', '.join(self.classes)})" if self.classes else ""
        line = f"{self.images:,} images{where}"
        return f"{line}; skipped {self.skipped:,}: {_reason_text(self.reasons)}" if self.skipped else line


@dataclass
class _Member:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # safe path components inside the ZIP, file name last


def extract_images(
    source: bytes | io.IOBase | str | Path,
    dest: str | Path,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
) -> ExtractReport:
    """Unpack the image files of a ZIP (bytes, a file object or a path) into dest, keeping one level of class folders.

    dest must be new or empty. Raises UploadError for a file that is not a readable ZIP, a limit exceeded
    (checked before anything is written) or no readable image; on an error nothing this call wrote is left.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: unpack each upload into a new folder")
    with _open_zip(source) as archive:
        images, reasons = _classify(archive.infolist())
        _check_limits(images, reasons, max_files, max_bytes, max_ratio)
        targets = _layout(images, reasons)
        written = _extract_all(archive, targets, dest, reasons)
    if not written:
        _remove_empty_dirs(dest, targets)
        raise UploadError(f"no images found in the ZIP ({_reason_text(reasons) or 'it is empty'}): {_WANTED}")
    classes = tuple(sorted({t.parts[0] for t in written if len(t.parts) == 2}))
    skipped = sum(reasons.values())
    return ExtractReport(dest, len(written), skipped, dict(reasons), classes)


def _open_zip(source) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as err:
        raise UploadError(f"the upload is not a readable ZIP file ({err})") from err


# ---- which members, under which names


def _classify(infos: list[zipfile.ZipInfo]) -> tuple[list[_Member], Counter]:
    """The image members with safe path parts, and a count of the others by reason (ignored ones not counted)."""
    images, reasons = [], Counter()
    for info in infos:
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir() or kind == stat.S_IFDIR:
            continue
        parts = _safe_parts(info.filename)
        if parts == ():
            continue  # __MACOSX/ and dotfiles: bookkeeping, not data
        if parts is None:
            reasons["unsafe path"] += 1
        elif kind not in (0, stat.S_IFREG):
            reasons["link or special file"] += 1
        elif not has_file_allowed_extension(parts[-1], IMG_EXTENSIONS):
            reasons["not an image"] += 1
        else:
            images.append(_Member(info, parts))
    return images, reasons


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The components of a member name; None when it is absolute, has a drive or '..'; () when ignored."""
    name = name.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        return None
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return ()
    return tuple(parts)


def _check_limits(images: list[_Member], reasons: Counter, max_files: int, max_bytes: int, max_ratio: float):
    """Refuse before anything is written, from the sizes the ZIP declares."""
    files = len(images) + sum(reasons.values())
    if files > max_files:
        raise UploadError(f"the ZIP holds {files:,} files: allowed at most {max_files:,}")
    total = sum(m.info.file_size for m in images)
    if total > max_bytes:
        raise UploadError(
            f"the ZIP's images unpack to {total:,} bytes ({total / 1e9:.2f} GB): allowed at most {max_bytes:,} bytes"
        )
    for m in images:
        ratio = m.info.file_size / max(m.info.compress_size, 1)
        if m.info.file_size > RATIO_FLOOR and ratio > max_ratio:
            raise UploadError(
                f"{m.info.filename!r} is compressed {ratio:,.0f}:1 (allowed at most {max_ratio:,.0f}:1): "
                "the ZIP looks like a zip bomb"
            )


def _layout(images: list[_Member], reasons: Counter) -> list[_Member]:
    """Target paths relative to dest: [class/]name, one folder level, unique, sanitised."""
    common = _common_dirs([m.parts[:-1] for m in images])
    placed = [(m, m.parts[common:]) for m in images]
    nested = any(len(p) > 1 for _, p in placed)
    targets, taken = [], set()
    for m, parts in placed:
        if nested and len(parts) == 1:
            reasons["beside the class folders"] += 1  # ImageFolder reads class sub-folders only
            continue
        folder = (_clean(parts[0]),) if len(parts) > 1 else ()
        # deeper paths are flattened: cats/x/a.png -> cats/x_a.png
        flat = "_".join(parts[1:] if folder else parts)
        name = _unique(folder, _clean(flat), taken)
        targets.append(_Member(m.info, (*folder, name)))
    return targets


def _common_dirs(dirs: list[tuple[str, ...]]) -> int:
    """How many leading folders every image shares (a ZIP of 'photos/cats/..' and 'photos/dogs/..' shares 1)."""
    if not dirs:
        return 0
    n = min(len(d) for d in dirs)
    return next((i for i in range(n) if len({d[i] for d in dirs}) > 1), n)


def _clean(component: str) -> str:
    """One safe path component: no control characters or separators, not too long, never empty or dotted."""
    component = re.sub(r"[\x00-\x1f\x7f/\\:]", "_", component).strip() or "_"
    if len(component) > MAX_NAME:
        stem, suffix = PurePosixPath(component).stem, PurePosixPath(component).suffix[:16]
        component = stem[: MAX_NAME - len(suffix)] + suffix
    return "_" + component if component.startswith(".") else component


def _unique(folder: tuple[str, ...], name: str, taken: set) -> str:
    """name, or name-1, name-2 ... when another member already took it (compared case-insensitively)."""
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    candidate, i = name, 0
    while (*folder, candidate.lower()) in taken:
        i += 1
        candidate = f"{stem}-{i}{suffix}"
    taken.add((*folder, candidate.lower()))
    return candidate


# ---- writing


def _extract_all(archive: zipfile.ZipFile, targets: list[_Member], dest: Path, reasons: Counter) -> list:
    """Write and verify every target; a bad one is deleted and counted. On UploadError, undo everything."""
    dest.mkdir(parents=True, exist_ok=True)
    root, written = dest.resolve(), []
    try:
        for t in targets:
            path = dest.joinpath(*t.parts)
            if not path.parent.resolve().is_relative_to(root):  # a link already in dest pointing away
                reasons["unsafe path"] += 1
                continue
            path.parent.mkdir(exist_ok=True)
            why = _write_member(archive, t.info, path)
            if why:
                reasons[why] += 1
            else:
                written.append(t)
    except OSError as err:
        _undo(dest, written, targets)
        raise UploadError(f"could not write the images to {dest}: {err.strerror or err}") from err
    except BaseException:
        _undo(dest, written, targets)
        raise
    return written


def _undo(dest: Path, written: list[_Member], targets: list[_Member]) -> None:
    for t in written:
        dest.joinpath(*t.parts).unlink(missing_ok=True)
    _remove_empty_dirs(dest, targets)


def _write_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> str | None:
    """Copy one member in chunks, never past its declared size, then verify it with PIL; the reason if skipped."""
    try:
        # "xb": never follow a link or overwrite a file already there
        with archive.open(info) as src, open(path, "xb") as out:
            size = 0
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > info.file_size:
                    raise UploadError(
                        f"{info.filename!r} unpacks to more than its declared {info.file_size:,} bytes"
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
        path.unlink(missing_ok=True)  # corrupt data, unsupported compression or encrypted
        return "unreadable in the ZIP"
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return None if _verify(path) else "unreadable image"


def _verify(path: Path) -> bool:
    """True when PIL reads the file's header and structure; otherwise the file is deleted."""
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many kinds for a bad file, decompression bombs included
        path.unlink(missing_ok=True)
        return False


def _remove_empty_dirs(dest: Path, targets: list[_Member]) -> None:
    for folder in {t.parts[0] for t in targets if len(t.parts) == 2}:
        path = dest / folder
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()


def _reason_text(reasons: Counter) -> str:
    return ", ".join(f"{n:,} {why}" for why, n in reasons.items())
