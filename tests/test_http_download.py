"""The http source against a real HTTP server on 127.0.0.1 that injects the faults real mirrors have."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, download_params
from keeptrash.errors import KeeptrashError
from keeptrash.download.http_download import download_images
from keeptrash.download.sources import open_source
from mirror import Mirror

AVA_IMAGES = REPO / "data" / "sample" / "ava" / "images"
PHOTOS = {path.stem: path.read_bytes() for path in sorted(AVA_IMAGES.glob("*.jpg"))}
IDS = sorted(PHOTOS)


def name(image_id: str) -> str:
    return f"{image_id}.jpg"


@pytest.fixture
def mirror():
    server = Mirror({name(image_id): body for image_id, body in PHOTOS.items()})
    server.template = server.url("{id}.jpg")
    yield server
    server.close()


def fetch(mirror, folder, ids, retries=3):
    return download_images(mirror.template, folder, ids, concurrency=3, retries=retries, per_second=200)


def assert_exact(folder, ids):
    for image_id in ids:
        assert hashlib.sha256((folder / f"{image_id}.jpg").read_bytes()).digest() == hashlib.sha256(PHOTOS[image_id]).digest()
    assert not list(folder.glob(".*.part"))


def test_every_fault_is_retried_until_the_image_is_whole(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.download.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    mirror.faults = {name(IDS[0]): ["drop"], name(IDS[1]): ["500", "500"], name(IDS[2]): ["slow"], name(IDS[3]): ["wrong-length"]}
    result = fetch(mirror, tmp_path, IDS[:5])
    assert sorted(result.images) == sorted(IDS[:5]) and result.failed == {} and result.fetched == 5
    assert_exact(tmp_path, IDS[:5])
    ranges = [header for requested, header in mirror.requests if requested == name(IDS[0])]
    assert ranges[0] is None and ranges[1] == f"bytes={len(PHOTOS[IDS[0]]) // 2}-"  # resumed, not restarted


def test_missing_images_are_reported_not_retried(mirror, tmp_path):
    result = fetch(mirror, tmp_path, [IDS[0], "999999999"])
    assert result.missing == ["999999999"] and list(result.images) == [IDS[0]]
    assert [requested for requested, _ in mirror.requests].count(name("999999999")) == 1


def test_a_killed_run_resumes_from_its_partial_file_and_skips_finished_ones(mirror, tmp_path):
    (tmp_path / f"{IDS[0]}.jpg").write_bytes(PHOTOS[IDS[0]])  # finished before the kill
    (tmp_path / f".{IDS[1]}.jpg.part").write_bytes(PHOTOS[IDS[1]][:1000])  # half-written when killed
    result = fetch(mirror, tmp_path, IDS[:2])
    assert [requested for requested, _ in mirror.requests] == [name(IDS[1])]
    assert mirror.requests[0][1] == "bytes=1000-"
    assert result.fetched == 1 and sorted(result.images) == sorted(IDS[:2])
    assert_exact(tmp_path, IDS[:2])


def test_a_dead_mirror_ends_in_one_line_and_keeps_what_was_fetched(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.download.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    mirror.faults = {name(IDS[1]): ["500"] * 10}
    params = download_params(
        source="http", images_dir=str(tmp_path), url_template=mirror.template, concurrency=2, retries=2, requests_per_second=100.0
    )
    with pytest.raises(KeeptrashError) as error:
        open_source(params).fetch(IDS[:3])
    message = str(error.value)
    assert "1 AVA images failed after 3 tries" in message and IDS[1] in message and "rerun dvc repro" in message
    assert "\n" not in message
    assert_exact(tmp_path, [IDS[0], IDS[2]])
    assert not (tmp_path / f"{IDS[1]}.jpg").exists()


def test_the_rate_limit_spaces_requests(mirror, tmp_path):
    started = time.monotonic()
    download_images(mirror.template, tmp_path, IDS[:4], concurrency=4, retries=0, per_second=10)
    assert time.monotonic() - started >= 0.3  # 4 starts at 10 per second: at least 3 intervals


def test_a_download_killed_with_sigkill_resumes_without_fetching_finished_images(tmp_path):
    slow = Mirror({name(image_id): body for image_id, body in PHOTOS.items()}, bytes_per_second=300_000)
    try:
        code = (
            "import sys; from pathlib import Path; from keeptrash.download.http_download import download_images; "
            "download_images(sys.argv[1], Path(sys.argv[2]), sys.argv[3:], 1, 0, 100.0)"
        )
        child = subprocess.Popen([sys.executable, "-c", code, slow.url("{id}.jpg"), str(tmp_path), *IDS], cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (list(tmp_path.glob("*.jpg")) and any(p.stat().st_size for p in tmp_path.glob(".*.part"))):
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        finished = sorted(path.stem for path in tmp_path.glob("*.jpg"))
        partial = {path.name.removeprefix(".").removesuffix(".jpg.part"): path.stat().st_size for path in tmp_path.glob(".*.part")}
        assert finished and partial and len(finished) < len(IDS)
        for image_id in finished:  # a finished name always holds the whole image
            assert (tmp_path / name(image_id)).read_bytes() == PHOTOS[image_id]
        slow.bytes_per_second = 0
        result = download_images(slow.url("{id}.jpg"), tmp_path, IDS, 2, 0, 100.0)
    finally:
        slow.close()
    again = dict(slow.requests[-(len(IDS) - len(finished)):])
    assert not set(map(name, finished)) & set(again)
    for image_id, size in partial.items():
        assert again[name(image_id)] == f"bytes={size}-"
    assert result.fetched == len(IDS) - len(finished)
    assert_exact(tmp_path, IDS)
