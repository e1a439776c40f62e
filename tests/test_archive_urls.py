"""download.archive_urls: the 7z volumes fetched from a real HTTP server on 127.0.0.1, then extracted."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import multivolumefile
import py7zr
import pytest

from conftest import LIVEC_IMAGES, REPO, download_params, tiny_filesystem
from keeptrash.errors import KeeptrashError
from keeptrash.download.http_download import download_volumes
from keeptrash.download.sources import open_source
from mirror import Mirror

PHOTOS = sorted(LIVEC_IMAGES.glob("*.jpg"))[:12]  # named by number, like AVA's <id>.jpg
WANTED = [photo.stem for photo in PHOTOS[::3]]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("volumes")
    with multivolumefile.open(folder / "AVA_dataset.7z", mode="wb", volume=200_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            for photo in PHOTOS:
                seven_zip.write(photo, f"images/{photo.name}")
    files = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
    assert len(files) >= 3
    return files


@pytest.fixture
def mirror(volumes):
    server = Mirror(volumes)
    yield server
    server.close()


def params(mirror, tmp_path, **changes):
    return download_params(
        source="archives", archive_urls=tuple(mirror.url(name) for name in mirror.files), archives_dir=str(tmp_path / "archives"),
        images_dir=str(tmp_path / "images"), retries=3, requests_per_second=100.0, **changes,
    )


def test_volumes_survive_faults_and_only_wanted_images_are_extracted(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.download.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    names = list(mirror.files)
    mirror.faults = {names[0]: ["drop"], names[1]: ["500", "wrong-length"], names[2]: ["slow"]}
    found = open_source(params(mirror, tmp_path)).fetch(WANTED)
    assert {path.name: digest(path.read_bytes()) for path in (tmp_path / "archives").iterdir()} == {
        name: digest(body) for name, body in mirror.files.items()
    }
    assert sorted(found) == sorted(WANTED)
    for image_id, path in found.items():
        assert digest(path.read_bytes()) == digest((LIVEC_IMAGES / f"{image_id}.jpg").read_bytes())
    dropped = [header for name, header in mirror.requests if name == names[0]]
    assert dropped[1] == f"bytes={len(mirror.files[names[0]]) // 2}-"  # resumed, not restarted
    mirror.requests.clear()
    open_source(params(mirror, tmp_path)).fetch(WANTED)
    assert mirror.requests == []  # complete volumes are not fetched again


def test_a_volume_missing_on_the_server_is_one_line(mirror, tmp_path):
    urls = (mirror.url(next(iter(mirror.files))), mirror.url("AVA_dataset.7z.099"))
    with pytest.raises(KeeptrashError) as error:
        download_volumes(urls, tmp_path, retries=0, per_second=100.0)
    assert str(error.value) == f"download.archive_urls: {urls[1]} is not on the server (404); correct the URL list"


def test_a_dead_server_ends_in_one_line_and_keeps_finished_volumes(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.download.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    names = list(mirror.files)
    mirror.faults = {names[1]: ["500"] * 10}
    with pytest.raises(KeeptrashError) as error:
        download_volumes([mirror.url(name) for name in names], tmp_path, retries=2, per_second=100.0)
    message = str(error.value)
    assert "failed after 3 tries" in message and names[1] in message and "rerun dvc repro to resume" in message
    assert "\n" not in message and sorted(os.listdir(tmp_path)) == [names[0]]


def test_too_little_disk_space_is_said_before_downloading(mirror, tmp_path):
    with tiny_filesystem(tmp_path / "tiny", "128k") as target:
        with pytest.raises(KeeptrashError, match=r"the archive volumes need 0\.\d+ GB more, only 0\.\d+ GB free"):
            download_volumes([mirror.url(name) for name in mirror.files], target, retries=0, per_second=100.0)
        assert mirror.requests == [] and os.listdir(target) == []


def test_a_download_killed_with_sigkill_resumes_from_its_partial_volume(volumes, tmp_path):
    names = list(volumes)
    mirror = Mirror(volumes, bytes_per_second=200_000)
    try:
        code = (
            "import sys; from pathlib import Path; from keeptrash.download.http_download import download_volumes; "
            "download_volumes(sys.argv[2:], Path(sys.argv[1]), 0, 100.0)"
        )
        child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), *map(mirror.url, names)], cwd=REPO)
        part = tmp_path / f".{names[1]}.part"
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        had = part.stat().st_size
        assert (tmp_path / names[0]).read_bytes() == volumes[names[0]] and 0 < had < len(volumes[names[1]])
        assert not (tmp_path / names[1]).exists()  # half a volume is never taken for a whole one
        mirror.requests.clear()
        mirror.bytes_per_second = 0
        download_volumes([mirror.url(name) for name in names], tmp_path, retries=0, per_second=100.0)
    finally:
        mirror.close()
    requested = dict(mirror.requests)
    assert names[0] not in requested and requested[names[1]].startswith("bytes=")
    assert int(requested[names[1]].removeprefix("bytes=").rstrip("-")) >= had
    assert {name: (tmp_path / name).read_bytes() for name in names} == volumes
