"""Tests for dashboard.uploads: ZIPs built in memory, safe names, links, limits, bombs and bad files."""

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from dashboard.uploads import UploadError, extract_images
from gan_core.engine.data import load_folder


def image_bytes(color=(200, 30, 30), fmt: str = "PNG", size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, fmt)
    return buffer.getvalue()


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """entries: (name or ZipInfo, data) pairs, written in order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def patch_central_sizes(zip_bytes: bytes, compressed=None, uncompressed=None) -> bytes:
    """Overwrite the sizes the central directory declares for its first member (what zipfile trusts)."""
    data = bytearray(zip_bytes)
    at = data.index(b"PK\x01\x02")
    if compressed is not None:
        data[at + 20 : at + 24] = struct.pack("<I", compressed)
    if uncompressed is not None:
        data[at + 24 : at + 28] = struct.pack("<I", uncompressed)
    return bytes(data)


# ---- a normal upload


def test_class_folders_kept_and_bad_members_counted(tmp_path):
    cat, dog = image_bytes((200, 30, 30)), image_bytes((30, 30, 200), "JPEG")
    zip_bytes = make_zip(
        [
            ("cats/", b""),
            ("cats/a.png", cat),
            ("cats/b.png", cat),
            ("dogs/c.jpg", dog),
            ("dogs/notes.txt", b"not an image"),
            ("dogs/broken.png", b"\x89PNG but not really"),
            ("__MACOSX/cats/._a.png", b"resource fork"),
            ("cats/.DS_Store", b"finder"),
        ]
    )
    dest = tmp_path / "upload"
    report = extract_images(zip_bytes, dest)
    assert (report.folder, report.images, report.skipped) == (dest, 3, 2)
    assert report.reasons == {"not an image": 1, "unreadable image": 1}
    assert report.classes == ("cats", "dogs")
    summary = "3 images in 2 class folders (cats, dogs); skipped 2: 1 not an image, 1 unreadable image"
    assert report.summary == summary
    assert files_under(dest) == ["cats/a.png", "cats/b.png", "dogs/c.jpg"]
    assert (dest / "cats" / "a.png").read_bytes() == cat and (dest / "dogs" / "c.jpg").read_bytes() == dog


def test_extracted_folder_loads_with_labels(tmp_path):
    entries = [(f"cats/{i}.png", image_bytes((200, 0, 0))) for i in range(3)]
    entries += [(f"dogs/{i}.png", image_bytes((0, 0, 200))) for i in range(2)]
    upload = io.BytesIO(make_zip(entries))  # a file object, as Streamlit's UploadedFile is
    report = extract_images(upload, tmp_path / "up")
    data = load_folder(report.folder, 8)
    assert data.class_names == ("cats", "dogs") and data.y.tolist() == [0, 0, 0, 1, 1]


def test_shared_top_folder_dropped_deeper_paths_flattened(tmp_path):
    png = image_bytes()
    zip_bytes = make_zip(
        [
            ("photos/cats/a.png", png),
            ("photos/cats/x/a.png", png),
            ("photos/cats/x_a.png", png),
            ("photos/dogs/A.PNG", png),
            ("photos/dogs/a.png", png),
        ]
    )
    report = extract_images(zip_bytes, tmp_path / "up")
    assert report.images == 5 and report.classes == ("cats", "dogs")
    assert files_under(tmp_path / "up") == [
        "cats/a.png", "cats/x_a-1.png", "cats/x_a.png", "dogs/A.PNG", "dogs/a-1.png",
    ]  # fmt: skip


def test_flat_zip_and_images_beside_class_folders(tmp_path):
    png = image_bytes()
    flat = extract_images(make_zip([("a.png", png), ("b.png", png)]), tmp_path / "flat")
    assert (flat.images, flat.classes, files_under(tmp_path / "flat")) == (2, (), ["a.png", "b.png"])
    mixed = extract_images(make_zip([("loose.png", png), ("cats/a.png", png)]), tmp_path / "mixed")
    assert mixed.reasons == {"beside the class folders": 1}  # ImageFolder would silently ignore it
    assert files_under(tmp_path / "mixed") == ["cats/a.png"]


# ---- nothing lands outside dest


def test_unsafe_names_never_land_outside_dest(tmp_path):
    png = image_bytes()
    names = ["../evil.png", "/abs.png", "a/../../x.png", "C:/windows.png", "..\\back.png", "cats/../../up.png"]  # fmt: skip
    assert [zipfile.ZipInfo(n).filename for n in names[:3]] == names[:3]  # zipfile keeps them as written
    dest = tmp_path / "box" / "up"
    report = extract_images(make_zip([(zipfile.ZipInfo(n), png) for n in names] + [("ok.png", png)]), dest)
    assert report.images == 1 and report.reasons == {"unsafe path": len(names)}
    assert files_under(tmp_path) == ["box/up/ok.png"]
    assert not Path("/abs.png").exists()


def test_symlink_member_is_not_created(tmp_path):
    link = zipfile.ZipInfo("cats/link.png")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zip_bytes = make_zip([(link, b"../../../etc/passwd"), ("cats/a.png", image_bytes())])
    dest = tmp_path / "up"
    report = extract_images(zip_bytes, dest)
    assert report.images == 1 and report.reasons == {"link or special file": 1}
    assert files_under(dest) == ["a.png"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))


# ---- limits, checked before anything is written


def test_too_many_files(tmp_path):
    zip_bytes = make_zip([(f"{i}.png", b"") for i in range(20_001)], zipfile.ZIP_STORED)
    with pytest.raises(UploadError, match=r"^the ZIP holds 20,001 files: allowed at most 20,000$"):
        extract_images(zip_bytes, tmp_path / "up")
    with pytest.raises(UploadError, match="holds 5 files: allowed at most 4"):
        five = make_zip([(f"{i}.png", image_bytes()) for i in range(5)])
        extract_images(five, tmp_path / "up", max_files=4)
    assert files_under(tmp_path) == []


def test_declared_size_over_limit(tmp_path):
    zip_bytes = patch_central_sizes(make_zip([("a.png", image_bytes())]), uncompressed=3_000_000_000)
    with pytest.raises(UploadError, match=r"3,000,000,000 bytes \(3\.00 GB\): allowed at most 1,000,000,000"):
        extract_images(zip_bytes, tmp_path / "up")
    small = make_zip([(f"{i}.png", image_bytes()) for i in range(3)])
    total = 3 * len(image_bytes())
    with pytest.raises(UploadError, match=f"unpack to {total:,} bytes .*: allowed at most 100 bytes"):
        extract_images(small, tmp_path / "up", max_bytes=100)
    assert files_under(tmp_path) == []


def test_zip_bomb_ratio_refused(tmp_path):
    zip_bytes = make_zip([("bomb.png", bytes(5_000_000)), ("a.png", image_bytes())])
    with pytest.raises(UploadError, match=r"'bomb\.png' is compressed [\d,]+:1 \(allowed at most 200:1\)"):
        extract_images(zip_bytes, tmp_path / "up")
    assert files_under(tmp_path) == []


def test_member_longer_than_declared_is_not_kept(tmp_path):
    png = image_bytes()
    stored = make_zip([("a.png", png), ("b.png", png)], zipfile.ZIP_STORED)
    zip_bytes = patch_central_sizes(stored, compressed=len(png) - 10, uncompressed=len(png) - 10)
    report = extract_images(zip_bytes, tmp_path / "up")  # the read stops at the declared size: CRC fails
    assert report.images == 1 and report.reasons == {"unreadable in the ZIP": 1}
    assert files_under(tmp_path / "up") == ["b.png"]


def test_reading_past_declared_size_stops_and_undoes(tmp_path, monkeypatch):
    """zipfile itself stops at the declared size; should a reader ever give more, the copy stops too."""
    png = image_bytes()
    zip_bytes = make_zip([("a.png", png), ("b.png", png)])
    real_open = zipfile.ZipFile.open

    def open_longer(self, info, *args, **kwargs):
        if info.filename == "b.png":
            return io.BytesIO(png + bytes(10_000_000))
        return real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_longer)
    with pytest.raises(UploadError, match=f"'b.png' unpacks to more than its declared {len(png):,} bytes"):
        extract_images(zip_bytes, tmp_path / "up")
    assert files_under(tmp_path) == []  # a.png, already written, is removed again


# ---- bad uploads


@pytest.mark.parametrize("upload", [b"", b"hello, not a zip", make_zip([("a.png", image_bytes())])[:-30]])
def test_not_a_zip(tmp_path, upload):
    with pytest.raises(UploadError, match=r"^the upload is not a readable ZIP file \("):
        extract_images(upload, tmp_path / "up")


def test_no_images(tmp_path):
    zip_bytes = make_zip(
        [("readme.txt", b"hi"), ("data.csv", b"1,2"), ("bad.png", b"no"), (".hidden.png", b"")]
    )
    expected = r"^no images found in the ZIP \(2 not an image, 1 unreadable image\): upload a ZIP of jpg/"
    with pytest.raises(UploadError, match=expected):
        extract_images(zip_bytes, tmp_path / "up")
    assert files_under(tmp_path) == []
    with pytest.raises(UploadError, match=r"no images found in the ZIP \(it is empty\)"):
        extract_images(make_zip([]), tmp_path / "up")


def test_dest_must_be_empty(tmp_path):
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "old.png").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        extract_images(make_zip([("old.png", image_bytes())]), tmp_path / "up")
    assert (tmp_path / "up" / "old.png").read_bytes() == b"keep me"
