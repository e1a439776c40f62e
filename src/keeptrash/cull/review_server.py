"""`keeptrash review`: serve a contact sheet on 127.0.0.1 and write the person's decisions straight to a CSV.

The page is the same file `keeptrash cull` wrote; served over HTTP, its script posts each decision the person makes
(or takes back) here (keeptrash.cull.review_page) instead of offering a download, and this server merges it into the
decisions file by sha256 and writes the file atomically, in the format the labels stage reads
(keeptrash.labels.own_decisions). The file may hold decisions for photos not on this sheet (an earlier folder, a
photo deleted since) and columns the person added: a save changes only the rows of the photos it names. The page
learns the saved decisions from this server, read by the labels stage's own reader. Nothing else is served or written.
Only the person may use it: every request needs the token of the printed URL, and a save must come from the sheet
(docs/review-loop.md, "Who may use it").
"""

import contextlib
import fcntl
import functools
import json
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from keeptrash.errors import KeeptrashError, printable
from keeptrash.io import atomic_write, leftover_temp_files, spreadsheet_safe
from keeptrash.labels.own_decisions import COLUMNS, checked_decisions, read_decisions_table

SHEET_NAME = "contact_sheet.html"
# A decision is under 400 bytes as JSON; this is room for a quarter of a million photos at once.
MAX_BODY_BYTES = 100 * 1024 * 1024
# Seconds a client may take to send its request: a stalled one holds a thread, not the server.
REQUEST_TIMEOUT = 30


def find_sheet(folder: Path) -> Path:
    """The contact sheet of a cull: in folder itself (the --out folder), or in FOLDER-keeptrash (cull's default --out)."""
    for candidate in (folder / SHEET_NAME, folder.resolve().parent / f"{folder.resolve().name}-keeptrash" / SHEET_NAME):
        if candidate.is_file():
            return candidate
    raise KeeptrashError(
        f"{printable(folder)}: no {SHEET_NAME} in it or in {printable(folder.name)}-keeptrash; run keeptrash cull {printable(folder)} first"
    )


def decisions_to_write(decisions: Path) -> Path:
    """The file `--decisions` names, checked before the first click could replace it: a .csv file that does not exist
    yet or that the labels stage reads as decisions (else KeeptrashError). A symlink gives the file it points to, so
    that the link stays."""
    given = printable(decisions)
    if decisions.is_dir():
        raise KeeptrashError(f"--decisions {given}: a folder; name the CSV file to write in it, e.g. {printable(decisions / 'decisions.csv')}")
    target = decisions.resolve()
    if target.suffix.lower() != ".csv":
        raise KeeptrashError(
            f"--decisions {given}: not a .csv file name{f' (it names {printable(target)})' if target.name != decisions.name else ''}; "
            "decisions are written to a CSV, e.g. data/own/decisions/holiday.csv"
        )
    if target.exists() and not target.is_file():
        raise KeeptrashError(f"--decisions {given}: not a regular file; name a CSV file to write")
    if target.exists():
        try:
            read_decisions_table(target)
        except KeeptrashError as error:
            raise KeeptrashError(f"--decisions {printable(error)} (keeptrash review would not replace it; or pass a new file name)") from None
    return target


def saved_decisions(decisions: Path) -> pd.DataFrame:
    """Every row of the decisions file (none when it does not exist yet), as the labels stage reads them."""
    if not decisions.exists():
        return pd.DataFrame(columns=[*COLUMNS, "line"])
    return read_decisions_table(decisions)


def _a_change(change) -> bool:
    return (
        isinstance(change, dict) and isinstance(change.get("path"), str) and isinstance(change.get("sha256"), str)
        and "decision" in change and (change["decision"] is None or isinstance(change["decision"], str))
    )


def posted_changes(body: bytes) -> pd.DataFrame:
    """The decisions a page posted, `{"decisions": [{"path": ..., "sha256": ..., "decision": "keep"|"trash"|null}]}`
    (null: the person took the decision back), checked as the labels stage checks a file's rows."""
    try:
        changes = json.loads(body)["decisions"]
    except (ValueError, KeyError, TypeError):
        changes = None
    if not isinstance(changes, list) or not all(_a_change(change) for change in changes):
        raise KeeptrashError('a save is JSON {"decisions": [{"path": ..., "sha256": ..., "decision": "keep", "trash" or null}]}')
    rows = pd.DataFrame(changes, columns=list(COLUMNS), dtype=object)
    withdrawn = rows["decision"].isna()
    where = "decision " + pd.Series(range(1, len(rows) + 1), index=rows.index).astype(str) + " posted"
    taken = checked_decisions(rows[~withdrawn], where[~withdrawn])
    gone = checked_decisions(rows[withdrawn].assign(decision="keep"), where[withdrawn]).assign(decision=None)
    return pd.concat([taken, gone]).sort_index()


def merged_decisions(saved: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """saved with each changed photo's newest decision, in the place of its first row (its later rows go) or appended;
    a decision taken back removes the photo's rows. Rows of photos the changes do not name are kept as they are, with
    every column the file has."""
    latest = changes.drop_duplicates("sha256", keep="last").set_index("sha256")
    rows = saved.drop(columns="line")
    changed = rows["sha256"].isin(latest.index)
    rows = rows[~changed | ~rows["sha256"].duplicated()].copy()
    at = rows["sha256"].isin(latest.index)
    rows.loc[at, "path"] = rows.loc[at, "sha256"].map(latest["path"])
    rows.loc[at, "decision"] = rows.loc[at, "sha256"].map(latest["decision"])
    new = latest[~latest.index.isin(rows["sha256"])].reset_index()[list(COLUMNS)]
    merged = pd.concat([rows, new], ignore_index=True)
    return merged[merged["decision"].notna()].fillna("")


def write_decisions(decisions: Path, table: pd.DataFrame) -> None:
    """The table written atomically, every cell safe to open in a spreadsheet; an existing file keeps its mode and a
    new one is the person's alone (0600), as the photos it describes may be private."""
    mode = stat.S_IMODE(decisions.stat().st_mode) if decisions.exists() else 0o600
    text = table.map(spreadsheet_safe).to_csv(index=False)

    def write(temp: Path) -> None:
        temp.write_text(text, encoding="utf-8")
        os.chmod(temp, mode)

    atomic_write(decisions, write)


@dataclass(frozen=True)
class _Session:
    """What every request of one `keeptrash review` shares."""

    sheet: Path
    decisions: Path
    token: str  # in the printed URL; any request without it (or its cookie) is refused


@contextlib.contextmanager
def merging(decisions: Path):
    """One merge-write of decisions at a time, across threads and `keeptrash review` processes: an exclusive lock on
    its folder (a lock file beside it would be one more file in labels.own_dir, which dvc repro watches)."""
    try:
        folder = os.open(decisions.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise KeeptrashError(f"{printable(decisions.parent)}: cannot open the decisions file's folder ({error.strerror})") from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


class _Handler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT

    def __init__(self, *args, session: _Session, **kwargs):
        self.session = session
        self.new_cookie = False
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would bury the messages that matter

    @property
    def cookie_name(self) -> str:
        return f"keeptrash-review-{self.server.server_port}"  # cookies are shared across ports: one per server

    def _allowed(self, write: bool) -> bool:
        """Jupyter's rules: the request names 127.0.0.1 or localhost (not a host a web page rebound to this port) and
        carries the token (in the URL, then in its cookie); a write must also come from the page itself, not from
        another site's form or script (a text/plain form post needs no preflight)."""
        host = self.headers.get("Host") or ""
        if host.rsplit(":", 1)[0] not in ("127.0.0.1", "localhost"):
            return self._refuse(b"only http://127.0.0.1 may use this server\n", "a request for another host")
        given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie") or "")
        except CookieError:
            pass
        remembered = cookies[self.cookie_name].value if self.cookie_name in cookies else ""
        expected = self.session.token.encode()
        self.new_cookie = secrets.compare_digest(given.encode(), expected)
        if not (self.new_cookie or secrets.compare_digest(remembered.encode(), expected)):
            return self._refuse(
                b"open the address keeptrash review printed: it holds the token this server asks for\n", "a request without the token"
            )
        origin, site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site")
        if write and ((origin is not None and origin != f"http://{host}") or site not in (None, "same-origin")):
            return self._refuse(b"decisions are saved only from the contact sheet this server shows\n", f"a save from {origin or site}")
        return True

    def _refuse(self, body: bytes, what: str, status: HTTPStatus = HTTPStatus.FORBIDDEN) -> bool:
        print(f"review: refused {printable(what)}", flush=True)
        self._reply(status, body)
        return False

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.new_cookie:
            self.send_header("Set-Cookie", f"{self.cookie_name}={self.session.token}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self._allowed(write=False):
            return
        path = urlsplit(self.path).path
        if path == "/decisions":
            try:
                rows = saved_decisions(self.session.decisions)
            except KeeptrashError as error:
                self._reply(HTTPStatus.CONFLICT, f"{error}\n".encode())
                return
            latest = dict(zip(rows["sha256"], rows["decision"]))  # the last row of a photo wins, as in the labels stage
            self._reply(HTTPStatus.OK, json.dumps({"decisions": latest}).encode(), "application/json")
        elif path in ("/", f"/{SHEET_NAME}"):
            self._reply(HTTPStatus.OK, self.session.sheet.read_bytes(), "text/html; charset=utf-8")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"only the contact sheet and its decisions are served here\n")

    def do_POST(self):  # noqa: N802
        if not self._allowed(write=True):
            return
        if urlsplit(self.path).path != "/decisions":
            self._reply(HTTPStatus.NOT_FOUND, b"post decisions to /decisions\n")
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"decisions are posted as application/json\n")
            return
        body = self._body()
        if body is None:
            return
        decisions = self.session.decisions
        try:
            changes = posted_changes(body)
            with merging(decisions):
                merged = merged_decisions(saved_decisions(decisions), changes)
                if not changes.empty:
                    write_decisions(decisions, merged)
        except KeeptrashError as error:
            self._refuse(f"{error}\n".encode(), f"a save ({error})", HTTPStatus.BAD_REQUEST)
            return
        photos = merged["sha256"].nunique()
        print(f"review: {photos} decisions saved to {printable(decisions)}", flush=True)
        self._reply(HTTPStatus.OK, f"{photos} decisions saved to {printable(decisions)}\n".encode())

    def _body(self) -> bytes | None:
        """Exactly Content-Length bytes of the request, or None once refused: a body cut short is not a save."""
        declared = self.headers.get("Content-Length")
        if declared is None:
            self._refuse(b"a save needs a Content-Length\n", "a save without a Content-Length", HTTPStatus.LENGTH_REQUIRED)
            return None
        if not declared.strip().isdigit():
            self._refuse(b"Content-Length must be a number of bytes\n", f"a save with Content-Length {declared!r}", HTTPStatus.BAD_REQUEST)
            return None
        length = int(declared)
        if length > MAX_BODY_BYTES:
            self._refuse(b"a save of up to 100 MB is expected\n", f"a save of {length} bytes", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self._refuse(b"the save was cut short\n", f"a save cut short ({len(body)} of {length} bytes)", HTTPStatus.BAD_REQUEST)
            return None
        return body

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError) as error:  # the client went away or stalled: nothing to answer
            print(f"review: a connection ended early ({printable(error.strerror or error)})", flush=True)


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # 5 (socketserver's) resets connections when a hundred saves arrive at once

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        print(f"review: a request failed ({printable(type(error).__name__)}: {printable(error)})", flush=True)


def serve(sheet: Path, decisions: Path, port: int) -> None:
    """Serve the sheet until interrupted (Ctrl+C), merging every decision the page posts into decisions."""
    try:
        decisions.parent.mkdir(parents=True, exist_ok=True)
        with merging(decisions):  # no save of another review is under way: its temporary files are a killed one's
            for leftover in leftover_temp_files(decisions):
                leftover.unlink()
                print(f"review: removed {printable(leftover)}, left by a save that was killed", flush=True)
    except OSError as error:  # KeeptrashError from merging() names the folder itself
        raise KeeptrashError(f"--decisions {printable(decisions)}: cannot use its folder ({error.strerror}); fix permissions or pick another") from None
    session = _Session(sheet, decisions, secrets.token_urlsafe(32))
    try:
        server = _Server(("127.0.0.1", port), functools.partial(_Handler, session=session))
    except OSError as error:
        raise KeeptrashError(f"--port {port}: cannot listen on 127.0.0.1 ({error.strerror}); pick another port or 0 for any") from None
    with server:
        print(f"review: open http://127.0.0.1:{server.server_port}/?token={session.token} ; decisions are saved to "
              f"{printable(decisions)} as you make them; Ctrl+C to stop", flush=True)
        server.serve_forever()
