"""HTTP downloads: AVA images one URL per id from a mirror, or the archive volumes from a URL list.
Both retry with backoff, resume partial files with HTTP Range, rename only complete files and keep
a polite rate limit; images also download a few at a time.

There is no default mirror: dpchallenge.com's own pages block bulk clients, so the user names one
with `download.url_template` (for example `https://mirror.example/ava/{id}.jpg`).
"""

import http.client
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.params import url_file_name

TIMEOUT_SECONDS = 30
FIRST_BACKOFF_SECONDS = 0.5
_CHUNK = 1 << 16
USER_AGENT = "keeptrash (AVA research download)"


class Missing(Exception):
    """The server says the file does not exist (404 or 410): no retry."""


class FetchFailed(Exception):
    """Every try failed; the message says why the last one did."""


class _RateLimit:
    """At most `per_second` request starts per second across all threads."""

    def __init__(self, per_second: float):
        self.interval, self.next_start, self.lock = 1.0 / per_second, 0.0, threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclass
class HttpResult:
    images: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    fetched: int = 0


def _fetch_once(url: str, part: Path, progress: tqdm) -> None:
    """Download url into part, resuming from part's current size; raises on any short or failed transfer."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise Missing() from None
        if error.code == 416 and have:  # the range starts at the end: the part is complete... or stale
            part.unlink()
        raise
    with response:
        resumed = have and response.status == 206
        expected = response.headers.get("Content-Length")
        with part.open("ab" if resumed else "wb") as handle:
            received = 0
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
                progress.update(len(chunk))
    if expected is not None and received != int(expected):
        raise OSError(f"got {received} of {expected} bytes")


def part_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.part")


def fetch_file(url: str, final: Path, retries: int, progress: tqdm, limit: _RateLimit) -> None:
    """Download url to final through a `.<name>.part` sibling that a later call resumes; renamed only when complete."""
    part = part_path(final)
    for attempt in range(retries + 1):
        limit.wait()
        try:
            _fetch_once(url, part, progress)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
            if attempt == retries:
                raise FetchFailed(f"{url}: {getattr(error, 'reason', None) or error}") from None
            time.sleep(FIRST_BACKOFF_SECONDS * 2**attempt)
            continue
        part.replace(final)
        return


def download_images(url_template: str, images_dir: Path, image_ids: Sequence[str], concurrency: int, retries: int, per_second: float) -> HttpResult:
    """Fetch every id not already in images_dir (url_template holds {id}, checked by keeptrash.params); interrupted
    transfers resume from their .part file."""
    images_dir.mkdir(parents=True, exist_ok=True)
    result, lock, limit = HttpResult(), threading.Lock(), _RateLimit(per_second)
    todo = [image_id for image_id in image_ids if not (images_dir / f"{image_id}.jpg").is_file()]
    for image_id in image_ids:
        if image_id not in todo:
            result.images[image_id] = images_dir / f"{image_id}.jpg"
    progress = tqdm(desc="downloading AVA images", unit="B", unit_scale=True, disable=None)

    def fetch(image_id: str) -> None:
        final = images_dir / f"{image_id}.jpg"
        try:
            fetch_file(url_template.format(id=image_id), final, retries, progress, limit)
        except Missing:
            with lock:
                result.missing.append(image_id)
            return
        except FetchFailed as error:
            with lock:
                result.failed[image_id] = str(error)
            return
        with lock:
            result.images[image_id] = final
            result.fetched += 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(fetch, todo))
    progress.close()
    return result


def _remote_size(url: str) -> int | None:
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return None
    return int(length) if length and length.isdigit() else None


def download_volumes(urls: Sequence[str], archives_dir: Path, retries: int, per_second: float) -> int:
    """Fetch every archive volume not yet complete in archives_dir, one at a time; returns how many were fetched. Each
    URL ends in a 7z volume name (checked by keeptrash.params), which its file is saved under."""
    names = [url_file_name(url) for url in urls]
    archives_dir.mkdir(parents=True, exist_ok=True)
    todo = [(url, archives_dir / name) for url, name in zip(urls, names) if not (archives_dir / name).is_file()]
    sizes = [_remote_size(url) for url, _ in todo]
    partial = sum(part_path(final).stat().st_size for _, final in todo if part_path(final).exists())
    needed = sum(size for size in sizes if size) - partial
    free = shutil.disk_usage(archives_dir).free
    if needed > free:
        raise KeeptrashError(f"{archives_dir}: the archive volumes need {needed / 1e9:.2f} GB more, only {free / 1e9:.2f} GB free; free space or move download.archives_dir")
    limit = _RateLimit(per_second)
    progress = tqdm(total=needed if all(sizes) else None, desc="downloading AVA archive volumes", unit="B", unit_scale=True, disable=None)
    for fetched, (url, final) in enumerate(todo):
        try:
            fetch_file(url, final, retries, progress, limit)
        except Missing:
            raise KeeptrashError(f"download.archive_urls: {url} is not on the server (404); correct the URL list") from None
        except FetchFailed as error:
            raise KeeptrashError(
                f"archive volume download failed after {retries + 1} tries ({error}); the {fetched} volumes fetched "
                "and the partial one are kept, rerun dvc repro to resume"
            ) from None
    progress.close()
    return len(todo)
