"""`keeptrash review`: serve a contact sheet on 127.0.0.1 and write the person's decisions straight to a CSV.

The page is the same file `keeptrash cull` wrote; served over HTTP, its script posts the decisions here after every
change (keeptrash.cull.review_page) instead of offering a download, and this server writes them atomically to the
decisions file, in the format the labels stage reads (keeptrash.labels.own_decisions). Nothing else is served or written.
"""

import functools
import io
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write
from keeptrash.labels.own_decisions import read_decisions_file

SHEET_NAME = "contact_sheet.html"
# A decision row is under 400 bytes; this is room for a quarter of a million photos.
MAX_BODY_BYTES = 100 * 1024 * 1024


def find_sheet(folder: Path) -> Path:
    """The contact sheet of a cull: in folder itself (the --out folder), or in FOLDER-keeptrash (cull's default --out)."""
    for candidate in (folder / SHEET_NAME, folder.resolve().parent / f"{folder.resolve().name}-keeptrash" / SHEET_NAME):
        if candidate.is_file():
            return candidate
    raise KeeptrashError(f"{folder}: no {SHEET_NAME} in it or in {folder.name}-keeptrash; run keeptrash cull {folder} first")


def checked_decisions(body: bytes, destination: Path) -> int:
    """How many decision rows body holds, after the checks the labels stage makes (KeeptrashError if any fails)."""
    return len(read_decisions_file(destination, io.BytesIO(body)))


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, sheet: Path, decisions: Path, **kwargs):
        self.sheet, self.decisions = sheet, decisions
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would bury the messages that matter

    def _local(self) -> bool:
        """Refuse requests that name another host (a web page elsewhere reaching this port by DNS rebinding)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost"):
            return True
        self._reply(HTTPStatus.FORBIDDEN, b"only http://127.0.0.1 may use this server\n")
        return False

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self._local():
            return
        if self.path == "/decisions":
            saved = self.decisions.read_bytes() if self.decisions.is_file() else b"path,sha256,decision\r\n"
            self._reply(HTTPStatus.OK, saved, "text/csv; charset=utf-8")
        elif self.path in ("/", f"/{SHEET_NAME}"):
            self._reply(HTTPStatus.OK, self.sheet.read_bytes(), "text/html; charset=utf-8")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"only the contact sheet and its decisions are served here\n")

    def do_POST(self):  # noqa: N802
        if not self._local():
            return
        if self.path != "/decisions":
            self._reply(HTTPStatus.NOT_FOUND, b"post decisions to /decisions\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"a decisions CSV of up to 100 MB is expected\n")
            return
        body = self.rfile.read(length)
        try:
            rows = checked_decisions(body, self.decisions)
            atomic_write(self.decisions, lambda temp: temp.write_bytes(body))
        except KeeptrashError as error:
            print(f"review: not saved: {error}", flush=True)
            self._reply(HTTPStatus.BAD_REQUEST, f"{error}\n".encode())
            return
        print(f"review: {rows} decisions saved to {self.decisions}", flush=True)
        self._reply(HTTPStatus.OK, f"{rows} decisions saved to {self.decisions}\n".encode())


def serve(sheet: Path, decisions: Path, port: int) -> None:
    """Serve the sheet until interrupted (Ctrl+C), saving every decision the page posts into decisions."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Handler, sheet=sheet, decisions=decisions))
    except OSError as error:
        raise KeeptrashError(f"--port {port}: cannot listen on 127.0.0.1 ({error.strerror}); pick another port or 0 for any") from None
    with server:
        print(f"review: open http://127.0.0.1:{server.server_port}/ ; decisions are saved to {decisions} as you make them; "
              "Ctrl+C to stop", flush=True)
        server.serve_forever()
