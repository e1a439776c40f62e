"""The torrent source: two real libtorrent sessions on 127.0.0.1, one seeding volumes this test makes."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import libtorrent as lt
import multivolumefile
import py7zr
import pytest

from conftest import LIVEC_IMAGES, REPO, download_params, tiny_filesystem
from keeptrash.errors import KeeptrashError
from keeptrash.download.sources import open_source
from keeptrash.download.torrent import RESUME_EVERY_SECONDS, download_torrent
from seeding import PIECE_BYTES, Seeder, make_torrent

# LIVE-C photos are named by number, like AVA's <id>.jpg.
PHOTOS = sorted(LIVEC_IMAGES.glob("*.jpg"))[:40]
WANTED = [photo.stem for photo in PHOTOS[::7]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): digest(path) for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def volumes_torrent(tmp_path) -> tuple[Path, Path, str]:
    """(the .torrent, the folder seeded from, info hash) of a folder like the published one: 7z volumes and a readme."""
    content = tmp_path / "seed" / "AVA_dataset"
    content.mkdir(parents=True)
    with multivolumefile.open(content / "images.7z", mode="wb", volume=400_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            for photo in PHOTOS:
                seven_zip.write(photo, f"images/{photo.name}")
    (content / "README.txt").write_text("AVA: A Large-Scale Database for Aesthetic Visual Analysis\n")
    torrent = tmp_path / "ava.torrent"
    return torrent, content.parent, make_torrent(content, torrent)


@pytest.fixture
def seeder(volumes_torrent):
    torrent, content_parent, _ = volumes_torrent
    seed = Seeder(torrent, content_parent)
    yield seed
    seed.close()


def torrent_params(tmp_path: Path, torrent: str, peers: tuple[str, ...], stall: float = 60.0):
    return download_params(
        source="torrent", torrent=torrent, torrent_peers=peers, torrent_stall_seconds=stall,
        archives_dir=str(tmp_path / "archives"), images_dir=str(tmp_path / "images"),
    )


def test_the_volumes_come_from_the_seed_and_only_wanted_images_are_extracted(volumes_torrent, seeder, tmp_path):
    torrent, content_parent, _ = volumes_torrent
    found = open_source(torrent_params(tmp_path, str(torrent), (seeder.peer,))).fetch(WANTED + ["999999"])
    assert tree_digests(tmp_path / "archives" / "AVA_dataset") == tree_digests(content_parent / "AVA_dataset")
    assert sorted(found) == sorted(WANTED)
    for image_id, path in found.items():
        assert path == tmp_path / "images" / f"{image_id}.jpg"
        assert digest(path) == digest(LIVEC_IMAGES / f"{image_id}.jpg")
    assert sorted(os.listdir(tmp_path / "images")) == sorted(f"{image_id}.jpg" for image_id in WANTED)


def test_a_magnet_link_gets_its_metadata_from_the_peer_and_a_second_run_fetches_nothing(volumes_torrent, seeder, tmp_path):
    _, content_parent, info_hash = volumes_torrent
    magnet = f"magnet:?xt=urn:btih:{info_hash}"
    first = download_torrent(magnet, tmp_path / "archives", set(WANTED), (seeder.peer,), 60.0)
    assert first.archive_folders == [tmp_path / "archives" / "AVA_dataset"]
    volume_bytes = sum(path.stat().st_size for path in (content_parent / "AVA_dataset").iterdir())
    assert volume_bytes <= first.downloaded_bytes < volume_bytes + 4 * PIECE_BYTES  # plus alignment padding
    again = download_torrent(magnet, tmp_path / "archives", set(WANTED), (seeder.peer,), 60.0)
    assert again.downloaded_bytes == 0 and again.archive_folders == first.archive_folders


def test_loose_images_in_a_torrent_are_fetched_only_when_labelled(tmp_path):
    content = tmp_path / "seed" / "images"
    content.mkdir(parents=True)
    for photo in PHOTOS:
        (content / photo.name).write_bytes(photo.read_bytes())
    torrent = tmp_path / "loose.torrent"
    make_torrent(content, torrent)
    seed = Seeder(torrent, content.parent)
    try:
        result = download_torrent(str(torrent), tmp_path / "archives", set(WANTED), (seed.peer,), 60.0)
    finally:
        seed.close()
    assert sorted(result.images) == sorted(WANTED) and result.archive_folders == []
    for image_id, path in result.images.items():
        assert path == tmp_path / "archives" / "images" / f"{image_id}.jpg"
        assert digest(path) == digest(LIVEC_IMAGES / f"{image_id}.jpg")
    total = sum(photo.stat().st_size for photo in PHOTOS)
    wanted_bytes = sum((LIVEC_IMAGES / f"{image_id}.jpg").stat().st_size for image_id in WANTED)
    # Pieces that straddle a wanted file's edges come along; whole unwanted photos do not.
    assert wanted_bytes <= result.downloaded_bytes < wanted_bytes + 2 * len(WANTED) * PIECE_BYTES < total
    complete = {path.name for path in (tmp_path / "archives" / "images").iterdir() if path.is_file() and digest(path) == digest(content / path.name)}
    assert complete == {f"{image_id}.jpg" for image_id in WANTED}


def saved_piece_bytes(archives: Path, deadline: float) -> int:
    """Wait for resume data that records some finished pieces; their bytes."""
    while time.monotonic() < deadline:
        for resume_file in archives.glob(".keeptrash-*.resume"):
            if have := sum(lt.read_resume_data(resume_file.read_bytes()).have_pieces):
                return have * PIECE_BYTES
        time.sleep(0.2)
    return 0


def test_a_download_killed_with_sigkill_resumes_without_fetching_finished_pieces_again(volumes_torrent, tmp_path):
    torrent, content_parent, _ = volumes_torrent
    total = sum(path.stat().st_size for path in (content_parent / "AVA_dataset").iterdir())
    seed = Seeder(torrent, content_parent, bytes_per_second=total // 20)  # about 20 s for everything
    try:
        archives = tmp_path / "archives"
        code = (
            "import sys; from pathlib import Path; from keeptrash.download.torrent import download_torrent; "
            "download_torrent(sys.argv[1], Path(sys.argv[2]), set(), (sys.argv[3],), 60.0)"
        )
        child = subprocess.Popen([sys.executable, "-c", code, str(torrent), str(archives), seed.peer], cwd=REPO)
        kept = saved_piece_bytes(archives, deadline=time.monotonic() + 4 * RESUME_EVERY_SECONDS)
        assert child.poll() is None, "the throttled download finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        torrent_bytes = lt.torrent_info(str(torrent)).total_size()  # the volumes plus alignment padding
        assert 0 < kept < total
        seed.session.apply_settings({"upload_rate_limit": 0})
        result = download_torrent(str(torrent), archives, set(), (seed.peer,), 60.0)
    finally:
        seed.close()
    assert tree_digests(archives / "AVA_dataset") == tree_digests(content_parent / "AVA_dataset")
    assert 0 < result.downloaded_bytes <= torrent_bytes - kept  # pieces the killed run had saved are not fetched again


def test_no_peer_ends_in_one_line_saying_how_to_resume(volumes_torrent, tmp_path):
    torrent, _, _ = volumes_torrent
    with pytest.raises(KeeptrashError) as error:
        download_torrent(str(torrent), tmp_path / "archives", set(WANTED), ("127.0.0.1:9",), 1.5)
    message = str(error.value)
    assert "no data from any peer for 2 s" in message and "rerun dvc repro to resume" in message and "\n" not in message


@pytest.mark.parametrize(
    "torrent, expected",
    [
        ("magnet:?xt=urn:btih:nothex", "not a valid magnet link"),
        ("missing.torrent", "neither a magnet link nor an existing .torrent file"),
        ("garbage", "not a valid .torrent file"),
    ],
)
def test_bad_torrent_settings_are_one_line_errors(tmp_path, torrent, expected):
    if torrent == "garbage":
        torrent = str(tmp_path / "garbage.torrent")
        Path(torrent).write_bytes(b"<html>not found</html>")
    elif torrent == "missing.torrent":
        torrent = str(tmp_path / torrent)
    with pytest.raises(KeeptrashError, match=expected) as error:
        download_torrent(torrent, tmp_path / "archives", set(), (), 1.0)
    assert "\n" not in str(error.value)


def test_too_little_disk_space_is_said_before_downloading(volumes_torrent, seeder, tmp_path):
    torrent, _, _ = volumes_torrent
    with tiny_filesystem(tmp_path / "tiny", "256k") as target:
        with pytest.raises(KeeptrashError, match=r"the torrent needs 0\.\d+ GB more, only 0\.\d+ GB free"):
            download_torrent(str(torrent), target, set(), (seeder.peer,), 60.0)
        assert os.listdir(target) == []
