"""The mega source. A real MEGA transfer needs the internet, so these tests check what can be checked
here: megadl is found or the error says how to install it, the exact command, a failing megadl, and
the hand-over of downloaded volumes to the archives path (with a stand-in megadl on PATH that copies
real 7z volumes, since MEGA itself cannot be reached)."""

import os
import stat

import multivolumefile
import py7zr
import pytest

from conftest import REPO, download_params
from keeptrash.errors import KeeptrashError
from keeptrash.download.mega import megadl_command
from keeptrash.download.sources import open_source

AVA_IMAGES = REPO / "data" / "sample" / "ava" / "images"
URL = "https://mega.nz/folder/EXAMPLE#KEY"


def stand_in_megadl(folder, script: str):
    folder.mkdir(exist_ok=True)
    path = folder / "megadl"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def params(tmp_path, url=URL):
    return download_params(source="mega", archives_dir=str(tmp_path / "volumes"), mega_url=url, images_dir=str(tmp_path / "images"))


def test_without_megadl_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KeeptrashError, match="apt install megatools"):
        open_source(params(tmp_path)).fetch(["1"])


def test_the_command_names_the_folder_and_the_destination(tmp_path, monkeypatch):
    bin_dir = stand_in_megadl(tmp_path / "bin", "exit 0\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert megadl_command(URL, tmp_path / "volumes") == [str(bin_dir / "megadl"), "--path", str(tmp_path / "volumes"), URL]


def test_a_failing_megadl_ends_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(stand_in_megadl(tmp_path / "bin", "echo \"ERROR: Can't open folder\" >&2\nexit 1\n")))
    with pytest.raises(KeeptrashError, match="megadl failed \\(ERROR: Can't open folder\\)"):
        open_source(params(tmp_path)).fetch(["1"])


def test_downloaded_volumes_are_extracted_like_local_ones(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    photos = sorted(AVA_IMAGES.glob("*.jpg"))
    with multivolumefile.open(served / "AVA_dataset.7z", mode="wb", volume=200_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            for photo in photos:
                seven_zip.write(photo, f"images/{photo.name}")
    # Stands in for MEGA: puts the volumes where `megadl --path DIR URL` would.
    script = f'[ "$1" = --path ] && [ "$3" = "{URL}" ] || exit 2\ncp "{served}"/* "$2"/\n'
    monkeypatch.setenv("PATH", str(stand_in_megadl(tmp_path / "bin", script)) + os.pathsep + os.environ["PATH"])
    found = open_source(params(tmp_path)).fetch([photos[0].stem, photos[5].stem])
    assert {image_id: path.read_bytes() for image_id, path in found.items()} == {
        photo.stem: photo.read_bytes() for photo in (photos[0], photos[5])
    }
