"""The http source against a real HTTP server on 127.0.0.1 that injects the faults real mirrors have."""

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO, download_params
from keeptrash.errors import KeeptrashError
from keeptrash.http_download import download_images
from keeptrash.sources import open_source

AVA_IMAGES = REPO / "data" / "sample" / "ava" / "images"
PHOTOS = {path.stem: path.read_bytes() for path in sorted(AVA_IMAGES.glob("*.jpg"))}
IDS = sorted(PHOTOS)


class Mirror(ThreadingHTTPServer):
    """Serves /<id>.jpg with Range support; `faults` maps an id to the faults its next requests get, in order."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def template(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{{id}}.jpg"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        image_id = self.path.strip("/").removesuffix(".jpg")
        with self.server.lock:
            self.server.requests.append((image_id, self.headers.get("Range")))
            fault = self.server.faults.get(image_id, [None]).pop(0) if self.server.faults.get(image_id) else None
        if image_id not in PHOTOS or fault == "404":
            self.send_error(404)
            return
        if fault == "500":
            self.send_error(500)
            return
        if fault == "slow":
            time.sleep(0.3)
        body, status = PHOTOS[image_id], 200
        wanted = self.headers.get("Range")
        if wanted:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            body, status = body[start:], 206
        self.send_response(status)
        if fault == "wrong-length":
            self.send_header("Content-Length", str(len(body) + 1000))
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":
            self.wfile.write(body[: len(body) // 2])  # then the connection closes mid-file
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def mirror():
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fetch(mirror, folder, ids, retries=3):
    return download_images(mirror.template, folder, ids, concurrency=3, retries=retries, per_second=200)


def assert_exact(folder, ids):
    for image_id in ids:
        assert hashlib.sha256((folder / f"{image_id}.jpg").read_bytes()).digest() == hashlib.sha256(PHOTOS[image_id]).digest()
    assert not list(folder.glob(".*.part"))


def test_every_fault_is_retried_until_the_image_is_whole(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    mirror.faults = {IDS[0]: ["drop"], IDS[1]: ["500", "500"], IDS[2]: ["slow"], IDS[3]: ["wrong-length"]}
    result = fetch(mirror, tmp_path, IDS[:5])
    assert sorted(result.images) == sorted(IDS[:5]) and result.failed == {} and result.fetched == 5
    assert_exact(tmp_path, IDS[:5])
    ranges = [header for image_id, header in mirror.requests if image_id == IDS[0]]
    assert ranges[0] is None and ranges[1] == f"bytes={len(PHOTOS[IDS[0]]) // 2}-"  # resumed, not restarted


def test_missing_images_are_reported_not_retried(mirror, tmp_path):
    result = fetch(mirror, tmp_path, [IDS[0], "999999999"])
    assert result.missing == ["999999999"] and list(result.images) == [IDS[0]]
    assert [image_id for image_id, _ in mirror.requests].count("999999999") == 1


def test_a_killed_run_resumes_from_its_partial_file_and_skips_finished_ones(mirror, tmp_path):
    (tmp_path / f"{IDS[0]}.jpg").write_bytes(PHOTOS[IDS[0]])  # finished before the kill
    (tmp_path / f".{IDS[1]}.jpg.part").write_bytes(PHOTOS[IDS[1]][:1000])  # half-written when killed
    result = fetch(mirror, tmp_path, IDS[:2])
    assert [image_id for image_id, _ in mirror.requests] == [IDS[1]]
    assert mirror.requests[0][1] == "bytes=1000-"
    assert result.fetched == 1 and sorted(result.images) == sorted(IDS[:2])
    assert_exact(tmp_path, IDS[:2])


def test_a_dead_mirror_ends_in_one_line_and_keeps_what_was_fetched(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr("keeptrash.http_download.FIRST_BACKOFF_SECONDS", 0.01)
    mirror.faults = {IDS[1]: ["500"] * 10}
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


def test_a_template_without_an_id_is_refused(tmp_path):
    with pytest.raises(KeeptrashError, match=r"must contain \{id\}"):
        download_images("http://127.0.0.1:1/images.jpg", tmp_path, IDS[:1], 1, 0, 1.0)
