"""The archives source: real 7z archives (single and split into volumes) built from real AVA photos."""

import hashlib
import os
import shutil

import multivolumefile
import py7zr
import pytest

from conftest import REPO, download_params, tiny_filesystem
from keeptrash.download.archives import archive_path, extract_images
from keeptrash.errors import KeeptrashError
from keeptrash.download.sources import open_source

AVA_IMAGES = REPO / "data" / "sample" / "ava" / "images"
PHOTOS = sorted(AVA_IMAGES.glob("*.jpg"))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_members(seven_zip: py7zr.SevenZipFile) -> None:
    for photo in PHOTOS:
        seven_zip.write(photo, f"AVA_dataset/images/{photo.name}")


@pytest.fixture
def volumes(tmp_path):
    """The real AVA photos in a 7z split into ~150 kB volumes, as the published set is split."""
    folder = tmp_path / "archives"
    folder.mkdir()
    with multivolumefile.open(folder / "AVA_dataset.7z", mode="wb", volume=150_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            write_members(seven_zip)
    assert len(list(folder.iterdir())) > 3
    return folder


def test_only_the_wanted_images_are_extracted_byte_for_byte(volumes, tmp_path):
    wanted = [PHOTOS[0].stem, PHOTOS[3].stem, "999999999"]  # the last is not in the archive
    result = extract_images(volumes, tmp_path / "images", wanted)
    assert sorted(os.listdir(tmp_path / "images")) == sorted([PHOTOS[0].name, PHOTOS[3].name])
    assert set(result.images) == {PHOTOS[0].stem, PHOTOS[3].stem}
    for image_id, path in result.images.items():
        assert digest(path) == digest(AVA_IMAGES / f"{image_id}.jpg")
    assert result.extracted == 2 and result.refused == []


def test_a_second_run_extracts_nothing_again(volumes, tmp_path):
    wanted = [photo.stem for photo in PHOTOS[:4]]
    extract_images(volumes, tmp_path / "images", wanted[:2])
    before = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "images").iterdir()}
    again = extract_images(volumes, tmp_path / "images", wanted)
    assert again.extracted == 2  # only the two new ones
    assert all((tmp_path / "images" / name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert not [name for name in os.listdir(tmp_path / "images") if name.startswith(".")]  # no temporary files left


def test_a_single_file_archive_works_too(tmp_path):
    (tmp_path / "archives").mkdir()
    with py7zr.SevenZipFile(tmp_path / "archives" / "AVA.7z", "w") as seven_zip:
        write_members(seven_zip)
    result = extract_images(tmp_path / "archives", tmp_path / "images", [PHOTOS[1].stem])
    assert digest(result.images[PHOTOS[1].stem]) == digest(PHOTOS[1])


def test_unsafe_members_are_refused_and_never_written(tmp_path, monkeypatch):
    (tmp_path / "archives").mkdir()
    (tmp_path / "link-target.jpg").write_bytes(PHOTOS[0].read_bytes())
    # py7zr will not write hostile names itself; a hand-made or foreign archive can hold them.
    monkeypatch.setattr(py7zr.py7zr, "check_archive_path", lambda name: True)
    with py7zr.SevenZipFile(tmp_path / "archives" / "evil.7z", "w") as seven_zip:
        os.symlink(tmp_path / "link-target.jpg", tmp_path / "321.jpg")
        seven_zip.write(tmp_path / "321.jpg", "images/321.jpg")
        seven_zip.write(PHOTOS[0], f"images/{PHOTOS[0].name}")
        seven_zip.writestr(PHOTOS[1].read_bytes(), "../../escaped/123.jpg")
        seven_zip.writestr(PHOTOS[1].read_bytes(), "/etc/456.jpg")
        seven_zip.writestr(b"#!/bin/sh\n", "images/789.sh")
        seven_zip.writestr(b"x" * 100, "images/readme.jpg")
    monkeypatch.undo()
    wanted = [PHOTOS[0].stem, "123", "456", "789", "321"]
    result = extract_images(tmp_path / "archives", tmp_path / "out" / "images", wanted)
    reasons = dict(result.refused)
    assert reasons["../../escaped/123.jpg"].startswith("path leaves")
    assert reasons["/etc/456.jpg"] == "absolute path"
    assert reasons["images/789.sh"].startswith("not an AVA image name")
    assert reasons["images/readme.jpg"].startswith("not an AVA image name")
    assert reasons["images/321.jpg"].startswith("not a regular file")
    assert os.listdir(tmp_path / "out" / "images") == [PHOTOS[0].name]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "out" / "escaped").exists()
    assert set(result.images) == {PHOTOS[0].stem}


def test_a_folder_without_one_archive_is_a_clear_error(tmp_path):
    with pytest.raises(KeeptrashError, match="not found"):
        archive_path(tmp_path / "none")
    (tmp_path / "a.7z").write_bytes(b"")
    (tmp_path / "b.7z").write_bytes(b"")
    with pytest.raises(KeeptrashError, match="expected one .7z archive"):
        archive_path(tmp_path)


def test_too_little_disk_space_says_how_much_is_needed(volumes, tmp_path):
    with tiny_filesystem(tmp_path / "tiny", "64k") as target:
        with pytest.raises(KeeptrashError, match=r"needs 0\.\d+ GB, only 0\.\d+ GB free"):
            extract_images(volumes, target, [photo.stem for photo in PHOTOS])
        assert os.listdir(target) == []


def test_the_download_stage_source_extracts_what_it_is_asked_for(volumes, tmp_path):
    params = download_params(source="archives", archives_dir=str(volumes), images_dir=str(tmp_path / "images"))
    found = open_source(params).fetch([PHOTOS[2].stem])
    assert found == {PHOTOS[2].stem: tmp_path / "images" / PHOTOS[2].name}
    shutil.rmtree(tmp_path / "images")


def test_volumes_named_like_the_published_set_are_read_in_order(volumes, tmp_path):
    for volume in volumes.iterdir():  # AVA_dataset.7z.0001 -> AVA_dataset.7z.001
        volume.rename(volume.with_suffix(f".{int(volume.suffix[1:]):03d}"))
    assert archive_path(volumes).name == "AVA_dataset.7z"
    result = extract_images(volumes, tmp_path / "images", [photo.stem for photo in PHOTOS])
    assert {image_id: digest(path) for image_id, path in result.images.items()} == {p.stem: digest(p) for p in PHOTOS}


# --- damaged archives (issue 12): one line naming the volume, what was extracted kept -----------------------------


def volume_files(folder):
    return sorted(folder.iterdir())


def cut_short(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_last_volume_names_it_and_says_to_fetch_it_again(volumes, tmp_path):
    last = volume_files(volumes)[-1]
    cut_short(last)
    with pytest.raises(KeeptrashError) as error:
        extract_images(volumes, tmp_path / "images", [photo.stem for photo in PHOTOS])
    message = str(error.value)
    assert message.startswith(str(last)) and "fetch again" in message and "\n" not in message, message


def test_a_volume_cut_short_before_the_last_is_named(volumes, tmp_path):
    second = volume_files(volumes)[1]
    cut_short(second)
    with pytest.raises(KeeptrashError, match=f"^{second}: volume cut short"):
        extract_images(volumes, tmp_path / "images", [PHOTOS[0].stem])


def test_a_missing_volume_is_named(volumes, tmp_path):
    volume_files(volumes)[2].unlink()
    with pytest.raises(KeeptrashError, match="volume 3 is missing"):
        extract_images(volumes, tmp_path / "images", [PHOTOS[0].stem])


def test_a_truncated_single_file_archive_is_named(tmp_path):
    (tmp_path / "archives").mkdir()
    archive = tmp_path / "archives" / "AVA.7z"
    with py7zr.SevenZipFile(archive, "w") as seven_zip:
        write_members(seven_zip)
    cut_short(archive)
    with pytest.raises(KeeptrashError, match=f"^{archive}: damaged or incomplete 7z archive"):
        extract_images(tmp_path / "archives", tmp_path / "images", [PHOTOS[0].stem])


def test_a_bit_flip_names_the_volume_keeps_the_whole_images_and_a_rerun_resumes(volumes, tmp_path):
    files = volume_files(volumes)
    flipped = files[len(files) // 2]
    original = flipped.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x10
    flipped.write_bytes(bytes(damaged))
    images, wanted = tmp_path / "images", [photo.stem for photo in PHOTOS]
    with pytest.raises(KeeptrashError) as error:
        extract_images(volumes, images, wanted)
    message = str(error.value)
    assert flipped.name in message and "damaged" in message, message
    kept = sorted(images.glob("*.jpg"))
    assert kept, "the images before the damage were extracted and verified: they are kept"
    assert f"the {len(kept)} images extracted before it are kept" in message
    assert all(digest(path) == digest(AVA_IMAGES / path.name) for path in kept)
    assert not [name for name in os.listdir(images) if name.startswith(".")]  # no partial image left
    flipped.write_bytes(original)  # fetched again
    again = extract_images(volumes, images, wanted)
    assert again.extracted == len(PHOTOS) - len(kept)
    assert all(digest(path) == digest(AVA_IMAGES / path.name) for path in images.glob("*.jpg"))
