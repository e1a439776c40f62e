"""Per-image HTTP download of AVA ids from a mirror: bounded concurrency, retries with backoff,
resume of partial files with HTTP Range, atomic renames and a polite rate limit.

There is no default mirror: dpchallenge.com's own pages block bulk clients, so the user names one
with `download.url_template` (for example `https://mirror.example/ava/{id}.jpg`).
"""

import http.client
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

TIMEOUT_SECONDS = 30
FIRST_BACKOFF_SECONDS = 0.5
_CHUNK = 1 << 16


class _Missing(Exception):
    """The server says the image does not exist (404 or 410): no retry, the manifest records it missing."""


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
    request = urllib.request.Request(url, headers={"User-Agent": "keeptrash (AVA research download)"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise _Missing() from None
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


def download_images(url_template: str, images_dir: Path, image_ids: Sequence[str], concurrency: int, retries: int, per_second: float) -> HttpResult:
    """Fetch every id not already in images_dir; interrupted transfers resume from their .part file."""
    if "{id}" not in url_template:
        raise KeeptrashError("download.url_template must contain {id}, e.g. https://mirror.example/ava/{id}.jpg")
    images_dir.mkdir(parents=True, exist_ok=True)
    result, lock, limit = HttpResult(), threading.Lock(), _RateLimit(per_second)
    todo = [image_id for image_id in image_ids if not (images_dir / f"{image_id}.jpg").is_file()]
    for image_id in image_ids:
        if image_id not in todo:
            result.images[image_id] = images_dir / f"{image_id}.jpg"
    progress = tqdm(desc="downloading AVA images", unit="B", unit_scale=True, disable=None)

    def fetch(image_id: str) -> None:
        final, part = images_dir / f"{image_id}.jpg", images_dir / f".{image_id}.jpg.part"
        url = url_template.format(id=image_id)
        for attempt in range(retries + 1):
            limit.wait()
            try:
                _fetch_once(url, part, progress)
            except _Missing:
                with lock:
                    result.missing.append(image_id)
                return
            except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
                if attempt == retries:
                    with lock:
                        result.failed[image_id] = f"{url}: {getattr(error, 'reason', None) or error}"
                    return
                time.sleep(FIRST_BACKOFF_SECONDS * 2**attempt)
                continue
            part.replace(final)
            with lock:
                result.images[image_id] = final
                result.fetched += 1
            return

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(fetch, todo))
    progress.close()
    return result
