"""A real HTTP server on 127.0.0.1 for download tests, with the faults real mirrors have."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CHUNK = 16 * 1024


class Mirror(ThreadingHTTPServer):
    """Serves /<name> from `files` with Range and HEAD support.

    `faults` maps a name to the faults its next requests get, in order: drop (the connection closes
    mid-file), 500, 404, slow (0.3 s before answering), wrong-length (a Content-Length 1000 bytes
    too long). bytes_per_second > 0 trickles every body out at that rate.
    """

    def __init__(self, files: dict[str, bytes], bytes_per_second: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.bytes_per_second = files, bytes_per_second
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header) of every GET
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        name = self.path.strip("/")
        if name not in self.server.files:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.files[name])))
        self.end_headers()

    def do_GET(self) -> None:
        name = self.path.strip("/")
        with self.server.lock:
            self.server.requests.append((name, self.headers.get("Range")))
            pending = self.server.faults.get(name)
            fault = pending.pop(0) if pending else None
        if name not in self.server.files or fault == "404":
            self.send_error(404)
            return
        if fault == "500":
            self.send_error(500)
            return
        if fault == "slow":
            time.sleep(0.3)
        body, status = self.server.files[name], 200
        wanted = self.headers.get("Range")
        if wanted:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            body, status = body[start:], 206
        self.send_response(status)
        extra = 1000 if fault == "wrong-length" else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        if fault == "drop":
            self.wfile.write(body[: len(body) // 2])  # then the connection closes mid-file
            self.close_connection = True
            return
        for start in range(0, len(body), _CHUNK):
            self.wfile.write(body[start : start + _CHUNK])
            if self.server.bytes_per_second:
                time.sleep(_CHUNK / self.server.bytes_per_second)
