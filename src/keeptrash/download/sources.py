"""Where AVA pixels come from: one ImageSource per `download.source` value.

A source turns AVA image ids into local files. Sources that fetch over the network or unpack
archives (archives, mega, torrent, http) implement the same method and write into the download
folder; the download stage then verifies every file the same way whatever its source.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from keeptrash.download.archives import extract_images
from keeptrash.errors import KeeptrashError, say
from keeptrash.download.http_download import download_images, download_volumes
from keeptrash.download.mega import fetch_volumes
from keeptrash.params import DownloadParams
from keeptrash.download.torrent import download_torrent

# Photos shipped in the repo so that the default pipeline runs offline from a fresh clone.
SAMPLE_AVA_FOLDER = Path("data/sample/ava/images")


class ImageSource(Protocol):
    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        """Make each image available locally; return the path of every one that is (absent ids are missing)."""


class FolderSource:
    """Already-extracted AVA images named `<id>.jpg` in one folder: nothing is copied."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise KeeptrashError(f"{folder}: folder of AVA images not found (download.folder); point it at the extracted <id>.jpg files")
        self.folder = folder

    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        found = {}
        for image_id in tqdm(image_ids, desc=f"looking up AVA images in {self.folder}", unit="img", disable=None):
            path = self.folder / f"{image_id}.jpg"
            if path.is_file():
                found[image_id] = path
        return found


class ArchiveSource:
    """The published AVA 7z archive (one file or its volumes) in a folder, first fetched from volume_urls if
    given: wanted images are extracted to images_dir."""

    def __init__(self, archives_dir: Path, images_dir: Path, volume_urls: tuple[str, ...] = (), retries: int = 0, requests_per_second: float = 1.0):
        self.archives_dir, self.images_dir = archives_dir, images_dir
        self.volume_urls, self.retries, self.requests_per_second = volume_urls, retries, requests_per_second

    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        if self.volume_urls:
            download_volumes(self.volume_urls, self.archives_dir, self.retries, self.requests_per_second)
        extraction = extract_images(self.archives_dir, self.images_dir, image_ids)
        for name, reason in extraction.refused:
            say(f"download: refused archive member {name!r}: {reason}")
        return extraction.images


class MegaSource:
    """The AVA volumes from a public MEGA folder (downloaded into archives_dir by megadl), then extracted."""

    def __init__(self, params: DownloadParams):
        self.params = params

    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        fetch_volumes(self.params.mega_url, Path(self.params.archives_dir))
        return ArchiveSource(Path(self.params.archives_dir), Path(self.params.images_dir)).fetch(image_ids)


class TorrentSource:
    """The AVA torrent, downloaded into archives_dir; its loose images are used in place, its 7z volumes extracted."""

    def __init__(self, params: DownloadParams):
        self.params = params

    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        params = self.params
        result = download_torrent(params.torrent, Path(params.archives_dir), set(image_ids), params.torrent_peers, params.torrent_stall_seconds)
        images = dict(result.images)
        for folder in result.archive_folders:
            images.update(ArchiveSource(folder, Path(params.images_dir)).fetch(image_ids))
        return images


class HttpSource:
    """One URL per image id on a mirror; downloads what is not already in images_dir."""

    def __init__(self, params: DownloadParams):
        self.params = params

    def fetch(self, image_ids: Sequence[str]) -> dict[str, Path]:
        params = self.params
        result = download_images(
            params.url_template, Path(params.images_dir), image_ids, params.concurrency, params.retries, params.requests_per_second
        )
        if result.failed:
            image_id, reason = next(iter(result.failed.items()))
            raise KeeptrashError(
                f"{len(result.failed)} AVA images failed after {params.retries + 1} tries (first: {image_id}, {reason}); "
                f"the {result.fetched} fetched are kept, rerun dvc repro to resume"
            )
        return result.images


SOURCES: dict[str, Callable[[DownloadParams], ImageSource]] = {
    "sample": lambda params: FolderSource(SAMPLE_AVA_FOLDER),
    "folder": lambda params: FolderSource(Path(params.folder)),
    "archives": lambda params: ArchiveSource(
        Path(params.archives_dir), Path(params.images_dir), params.archive_urls, params.retries, params.requests_per_second
    ),
    "http": HttpSource,
    "mega": MegaSource,
    "torrent": TorrentSource,
}


def open_source(params: DownloadParams) -> ImageSource:
    return SOURCES[params.source](params)
