"""Finding photos on disk and checking that each one decodes, without changing any file."""

import hashlib
import os
import shutil
import struct
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from keeptrash.images import CORRUPT, CORRUPT_EXIF, MISSING, OK, check_image, list_images, max_file_bytes, open_photo
from keeptrash.download.manifest import manifest_summary

MAX_PIXELS = 100_000_000


def test_real_jpeg_is_ok_with_size_and_sha256(photo):
    data = photo.read_bytes()
    check = check_image(photo, MAX_PIXELS)
    assert check.status == OK
    assert check.reason == ""
    assert (check.width, check.height) == (500, 500)
    assert check.bytes == len(data)
    assert check.sha256 == hashlib.sha256(data).hexdigest()


def test_png_is_ok_with_its_own_size(tmp_path, photo):
    path = tmp_path / "wide.png"
    with Image.open(photo) as image:
        image.crop((0, 0, 320, 200)).save(path)
    check = check_image(path, MAX_PIXELS)
    assert (check.status, check.width, check.height) == (OK, 320, 200)
    assert check.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_jpeg_is_corrupt(tmp_path, photo):
    data = photo.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    check = check_image(truncated, MAX_PIXELS)
    assert check.status == CORRUPT
    assert check.reason.startswith("not a decodable image")
    assert "truncated" in check.reason
    assert check.bytes == len(data) // 2
    assert check.sha256 == hashlib.sha256(data[: len(data) // 2]).hexdigest()
    assert (check.width, check.height) == (0, 0)


def test_zero_byte_file_is_corrupt(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    check = check_image(empty, MAX_PIXELS)
    assert (check.status, check.reason, check.bytes) == (CORRUPT, "empty file", 0)
    assert check.sha256 == hashlib.sha256(b"").hexdigest()


def test_text_file_named_jpg_is_corrupt(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("these are not pixels\n", encoding="utf-8")
    check = check_image(text, MAX_PIXELS)
    assert check.status == CORRUPT
    assert check.reason.startswith("not a decodable image")
    assert check.bytes == len("these are not pixels\n")
    assert (check.width, check.height) == (0, 0)


def test_missing_path_and_none_are_missing(tmp_path):
    for path in (tmp_path / "gone.jpg", None):
        check = check_image(path, MAX_PIXELS)
        assert (check.status, check.reason, check.bytes, check.sha256) == (MISSING, "file not found", 0, "")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    check = check_image(tmp_path / "dangling.jpg", MAX_PIXELS)
    assert (check.status, check.reason) == (MISSING, "broken symlink or symlink loop")
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block: it must not be opened at all
    for path in (tmp_path, tmp_path / "pipe.jpg"):
        check = check_image(path, MAX_PIXELS)
        assert (check.status, check.reason, check.bytes) == (CORRUPT, "not a regular file", 0)


def test_image_over_max_pixels_is_too_large(photo):
    check = check_image(photo, 500 * 500 - 1)
    assert check.status == CORRUPT
    assert check.reason.startswith("too large")
    assert str(500 * 500 - 1) in check.reason  # names the limit
    assert (check.width, check.height) == (0, 0)
    assert check.sha256 == hashlib.sha256(photo.read_bytes()).hexdigest()


def test_image_exactly_at_max_pixels_is_ok(photo):
    assert check_image(photo, 500 * 500).status == OK


def test_max_pixels_not_pillow_default_is_the_limit(tmp_path):
    big = tmp_path / "panorama.png"
    # 90.25 MP (~11 kB on disk): under max_pixels, over Pillow's default MAX_IMAGE_PIXELS of 89,478,485.
    Image.new("1", (9500, 9500)).save(big)
    check = check_image(big, MAX_PIXELS)
    assert (check.status, check.reason) == (OK, "")
    assert (check.width, check.height) == (9500, 9500)


def test_checking_changes_no_input_file(tmp_path, photo):
    data = photo.read_bytes()
    files = {
        "ok.jpg": data,
        "truncated.jpg": data[: len(data) // 2],
        "empty.jpg": b"",
        "text.jpg": b"hello\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    before = {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns) for name in files}
    statuses = [check_image(tmp_path / name, MAX_PIXELS).status for name in files]
    check_image(photo, 10)  # too large: also must not touch the file
    assert statuses == [OK, CORRUPT, CORRUPT, CORRUPT]
    after = {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns) for name in files}
    assert after == before
    assert photo.read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*files, photo.name])


# --- list_images -------------------------------------------------------------------------------


def test_list_images_finds_jpg_JPG_png_recursively_and_skips_hidden(tmp_path):
    root = tmp_path / "photos"
    source = LIVEC_IMAGES / PHOTO_NAMES[0]
    wanted = ["a.jpg", "b.JPG", "c.png", "d.jpeg", "e.PNG", "sub/f.jpg", "sub/deeper/g.Jpg"]
    skipped = [".hidden.jpg", ".cache/h.jpg", "sub/.thumbs/i.png", "notes.txt", "j.gif", "k.jpg.bak"]
    for name in wanted + skipped:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / name)
    (root / "folder.jpg").mkdir()  # a folder with an image suffix is not an image
    found = list_images(root)
    assert found == sorted(root / name for name in wanted)


def test_list_images_under_a_hidden_parent_still_finds_photos(tmp_path):
    root = tmp_path / ".config" / "photos"
    root.mkdir(parents=True)
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], root / "a.jpg")
    assert list_images(root) == [root / "a.jpg"]


def test_list_images_of_missing_or_empty_folder_is_empty(tmp_path):
    assert list_images(tmp_path / "nowhere") == []
    (tmp_path / "empty").mkdir()
    assert list_images(tmp_path / "empty") == []


def with_app1(photo, payload: bytes, path):
    """The photo's JPEG bytes with an APP1 (EXIF) segment holding payload after the SOI marker."""
    data = photo.read_bytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:])
    return path


@pytest.mark.parametrize(
    "payload, problem",
    [
        (b"Exif\0\0XX*\0\x08\0\0\0" + bytes(20), "EXIF block without a TIFF header"),
        (b"Exif\0\0" + bytes(range(256)) * 3, "EXIF block without a TIFF header"),
        (b"Exif\0\0II*\0\xff\0\0\0", "EXIF directory at byte 255, beyond the 8-byte block"),
        (b"Exif\0\0II*\0\x08\0\0\0\xff\x7f" + bytes(10), "EXIF directory of 32767 entries cut short by the end of the block"),
    ],
)
def test_corrupt_exif_is_reported_but_the_photo_is_used(tmp_path, photo, payload, problem):
    path = with_app1(photo, payload, tmp_path / "corrupt-exif.jpg")
    check = check_image(path, MAX_PIXELS)
    assert (check.status, check.reason) == (OK, f"{CORRUPT_EXIF}: {problem}")
    image, size = open_photo(path, 256)
    assert size == (500, 500) and image.mode == "RGB"


def test_valid_exif_even_with_an_empty_directory_is_not_reported(tmp_path, photo):
    empty = with_app1(photo, b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0", tmp_path / "empty-exif.jpg")  # as some AVA photos carry
    assert check_image(empty, MAX_PIXELS).reason == ""
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(photo) as image:
        image.save(tmp_path / "rotated.jpg", exif=exif)
    assert check_image(tmp_path / "rotated.jpg", MAX_PIXELS).reason == ""


def test_the_manifest_summary_counts_photos_with_corrupt_exif(tmp_path, photo):
    bad = with_app1(photo, b"Exif\0\0XX*\0", tmp_path / "bad.jpg")
    rows = []
    for path in (photo, bad):
        check = check_image(path, MAX_PIXELS)
        rows.append({"key": path.name, "source": "ava", "status": check.status, "reason": check.reason, "bytes": check.bytes})
    summary = manifest_summary(pd.DataFrame(rows))
    assert summary["ok"] == 2 and summary["ok_with_corrupt_exif"] == 1


# --- issue 12: reasons that repeat, files refused before reading, the user's pixel limit, linked folders ---------


def test_a_non_image_reason_is_the_same_every_run_and_names_no_object(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("these are not pixels\n", encoding="utf-8")
    reasons = {check_image(text, MAX_PIXELS).reason for _ in range(3)}
    (reason,) = reasons
    assert reason.startswith("not a decodable image")
    assert " at 0x" not in reason and "<" not in reason, reason  # e.g. <_io.BytesIO object at 0x7f...>


def test_a_huge_sparse_file_is_refused_by_size_before_it_is_read(tmp_path):
    sparse = tmp_path / "953417.jpg"
    subprocess.run(["truncate", "-s", "30G", str(sparse)], check=True)
    assert sparse.stat().st_blocks == 0, "the file system cannot hold a sparse file"
    check = check_image(sparse, MAX_PIXELS)
    assert (check.status, check.bytes, check.sha256) == (CORRUPT, 30 * 1024**3, "")
    assert check.reason.startswith("too large") and str(MAX_PIXELS) in check.reason, check.reason


def test_a_file_at_the_size_limit_is_hashed_by_streaming_and_decoded(tmp_path, photo):
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(photo.read_bytes())
    with padded.open("ab") as handle:  # JPEG decoders ignore bytes after the end-of-image marker
        handle.truncate(max_file_bytes(500 * 500))
    check = check_image(padded, 500 * 500)
    assert (check.status, check.bytes) == (OK, max_file_bytes(500 * 500))
    assert check.sha256 == hashlib.sha256(padded.read_bytes()).hexdigest()
    with padded.open("ab") as handle:
        handle.write(b"\0")
    assert check_image(padded, 500 * 500).reason.startswith("too large")


def test_the_too_large_reason_quotes_the_limit_that_was_set_not_pillows(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb, optimize=True)  # 400 MP in ~50 kB
    check = check_image(bomb, 300_000_000)
    assert check.status == CORRUPT
    assert "300000000" in check.reason and "600000000" not in check.reason, check.reason
    assert "400000000" in check.reason, check.reason


def test_a_symlink_named_like_a_photo_to_a_folder_is_listed_and_recorded(tmp_path, photo):
    root, elsewhere = tmp_path / "own", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    shutil.copyfile(photo, elsewhere / "inside.jpg")
    (root / "holiday.jpg").symlink_to(elsewhere, target_is_directory=True)
    assert list_images(root) == [root / "holiday.jpg"]
    check = check_image(root / "holiday.jpg", MAX_PIXELS)
    assert check.status == CORRUPT and "symlink to a folder" in check.reason, check.reason


def test_a_non_image_reason_is_the_same_in_separate_runs(tmp_path):
    """What `dvc repro -f -s download` does: each run is a new process, where an object's address differs."""
    text = tmp_path / "notes.jpg"
    text.write_text("these are not pixels\n", encoding="utf-8")
    script = f"from pathlib import Path; from keeptrash.images import check_image; print(check_image(Path({str(text)!r}), 10**8).reason)"
    reasons = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(reasons) == 1, reasons
