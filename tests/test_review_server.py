"""`keeptrash review` against hostile and careless use: the real console script serving a real contact sheet on
127.0.0.1, driven by headless Chromium and by raw HTTP clients (issue 26: merging, the --decisions path, who may
write, malformed requests). The loop as a person runs it end to end is in test_review_loop.py."""

import csv
import hashlib
import http.client
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from keeptrash.cull.contact_sheet import render_contact_sheet
from keeptrash.io import spreadsheet_safe
from keeptrash.labels.own_decisions import read_decisions_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEEPTRASH = str(Path(sys.executable).parent / "keeptrash")
OTHER_PHOTO = "ab" * 32  # a photo decided in an earlier session, not on this sheet


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> dict:
    """A contact sheet of five real photos, as `keeptrash cull --out OUT` writes it; the model keeps the first three."""
    root = tmp_path_factory.mktemp("sheet")
    folder, out = root / "holiday", root / "out"
    folder.mkdir()
    out.mkdir()
    paths = []
    for name in PHOTO_NAMES:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
        paths.append(folder / name)
    scores = pd.DataFrame({
        "path": [str(path) for path in paths],
        "sha256": [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths],
        "keep_probability": [0.9, 0.8, 0.7, 0.2, 0.1],
        "decision": ["keep", "keep", "keep", "trash", "trash"],
        "reason": [""] * 5,
    })
    (out / "contact_sheet.html").write_text(render_contact_sheet(scores, [], 0.5, "holiday", 10**8), encoding="utf-8")
    return {"out": out, "scores": scores}


class Server:
    """`keeptrash review` running as a person starts it; url is the one it prints."""

    def __init__(self, out: Path, decisions: Path):
        self.decisions = decisions
        self.process = subprocess.Popen(
            [KEEPTRASH, "review", str(out), "--decisions", str(decisions)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.printed = ""  # what it printed before the URL, and the URL's line
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/(\?token=[\w-]+)?", self.printed)):
            line = self.process.stdout.readline()
            if not line:
                pytest.fail(f"keeptrash review printed no URL:\n{self.printed}{self.process.communicate(timeout=30)[1]}")
            self.printed += line
        self.url, self.port = found.group(0), int(found.group(1))

    def stop(self) -> tuple[str, str]:
        """Its whole stdout and its stderr, once stopped."""
        self.process.terminate()
        stdout, stderr = self.process.communicate(timeout=30)
        return self.printed + stdout, stderr


@pytest.fixture(scope="module")
def server(sheet, tmp_path_factory):
    """One server for the module's tests; each test sets the decisions file's content first."""
    running = Server(sheet["out"], tmp_path_factory.mktemp("own") / "decisions" / "holiday.csv")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: .ci/run installs Debian's chromium package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


def open_sheet(browser, url: str):
    """A fresh tab in a fresh browser profile on the served sheet, once it has loaded the saved decisions."""
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_function("document.getElementById('decided').textContent !== ''")
    page.wait_for_load_state("networkidle")
    return page


def file_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def request(server: Server, method: str, path: str = "/decisions", body: bytes | None = None, token: bool = True,
            headers: dict | None = None) -> tuple[int, str]:
    """One request as a script or another program would send it: with the printed URL's token unless told not to."""
    query = server.url.split("/", 3)[3] if token else ""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path + query.lstrip("/"), body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def post(server: Server, body: bytes, **options) -> tuple[int, str]:
    return request(server, "POST", body=body, **options)


def saves(*decisions: tuple[str, str | None], path: str = "x.jpg") -> bytes:
    return json.dumps({"decisions": [{"path": path, "sha256": sha, "decision": decision} for sha, decision in decisions]}).encode()


def saved_after(page, action, photos: int) -> None:
    """Do action on the page, then wait for the server's answer to its save: photos decisions in the file."""
    page.evaluate("document.getElementById('saved').textContent = ''")
    action()
    page.wait_for_function(f"document.getElementById('saved').textContent.startsWith('{photos} decisions saved')")


# --- item 2: a save merges into the file, never drops what it was not sent ------------------------------------------


def test_a_save_keeps_decisions_for_other_photos_and_the_persons_extra_column(server, sheet, browser):
    sha = list(sheet["scores"]["sha256"])
    server.decisions.parent.mkdir(parents=True, exist_ok=True)
    # An earlier folder's decision, a note column the person added, and a sheet photo decided before.
    server.decisions.write_text(
        f"note,decision,sha256,path\r\nfrom the beach,keep,{OTHER_PHOTO},/old/beach.jpg\r\nblurry,Trash,{sha[0].upper()},/x/{PHOTO_NAMES[0]}\r\n",
        encoding="utf-8",
    )
    page = open_sheet(browser, server.url)
    assert page.inner_text("#decided").startswith("1 decided")  # the extra column does not hide the saved decision
    assert page.locator("figure.photo .verdict").nth(0).inner_text() == "trash (you; model: keep)"
    saved_after(page, lambda: page.locator("figure.photo").nth(1).click(), 3)  # keep -> trash
    rows = file_rows(server.decisions)
    assert [(row["sha256"], row["decision"], row["note"]) for row in rows] == [
        (OTHER_PHOTO, "keep", "from the beach"), (sha[0], "trash", "blurry"), (sha[1], "trash", ""),
    ]
    saved_after(page, lambda: page.keyboard.press("u"), 2)  # taken back: that row goes, and only it
    assert [row["sha256"] for row in file_rows(server.decisions)] == [OTHER_PHOTO, sha[0]]
    # trash -> keep: the photo's row changes in place, its note stays
    saved_after(page, lambda: page.locator("figure.photo").nth(0).click(), 2)
    assert [(row["sha256"], row["decision"], row["note"]) for row in file_rows(server.decisions)] == [
        (OTHER_PHOTO, "keep", "from the beach"), (sha[0], "keep", "blurry"),
    ]
    page.context.close()


def test_two_tabs_on_one_server_keep_each_others_decisions(server, sheet, browser):
    sha = list(sheet["scores"]["sha256"])
    server.decisions.unlink(missing_ok=True)
    first, second = open_sheet(browser, server.url), open_sheet(browser, server.url)
    saved_after(first, lambda: first.locator("figure.photo").nth(3).click(), 1)
    saved_after(second, lambda: second.locator("figure.photo").nth(4).click(), 2)
    saved_after(first, lambda: first.locator("figure.photo").nth(0).click(), 3)
    assert {row["sha256"]: row["decision"] for row in file_rows(server.decisions)} == {sha[3]: "keep", sha[4]: "keep", sha[0]: "trash"}
    first.context.close()
    second.context.close()


def test_the_file_is_safe_to_open_in_a_spreadsheet_and_reads_back_as_saved(server, sheet):
    sha = sheet["scores"]["sha256"].iloc[2]
    server.decisions.unlink(missing_ok=True)
    formula = '=HYPERLINK("http://evil.example","x")'
    body = json.dumps({"decisions": [{"path": formula, "sha256": sha, "decision": "keep"}]}).encode()
    assert post(server, body)[0] == 200
    assert file_rows(server.decisions)[0]["path"] == spreadsheet_safe(formula) == "'" + formula  # a spreadsheet shows it as text
    assert read_decisions_file(server.decisions)["path"].tolist() == [formula]


def test_a_photo_saved_twice_in_the_file_keeps_one_row_in_the_first_place_and_other_rows_stay():
    from keeptrash.cull.review_server import merged_decisions, posted_changes
    from keeptrash.labels.own_decisions import read_decisions_table

    text = f"path,sha256,decision\na.jpg,{'a' * 64},keep\nb.jpg,{'b' * 64},trash\nc.jpg,{'a' * 64},trash\nd.jpg,{'d' * 64},keep\n"
    saved = read_decisions_table(Path("holiday.csv"), io.BytesIO(text.encode()))
    merged = merged_decisions(saved, posted_changes(saves(("a" * 64, "keep"), ("d" * 64, None), ("e" * 64, "trash"), ("e" * 64, "keep"))))
    assert merged.to_dict("list") == {
        "path": ["x.jpg", "b.jpg", "x.jpg"], "sha256": ["a" * 64, "b" * 64, "e" * 64], "decision": ["keep", "trash", "keep"],
    }


def test_the_downloaded_export_writes_formula_like_paths_as_text(sheet, browser, tmp_path):
    page = browser.new_context(accept_downloads=True).new_page()
    page.goto((sheet["out"] / "contact_sheet.html").as_uri())
    page.evaluate("document.querySelector('figure.photo').dataset.path = '=cmd|\\' /C calc\\'!A0'")
    page.locator("figure.photo").nth(0).click()
    with page.expect_download() as download:
        page.keyboard.press("e")
    download.value.save_as(tmp_path / "decisions.csv")
    assert file_rows(tmp_path / "decisions.csv")[0]["path"] == "'=cmd|' /C calc'!A0"
    assert read_decisions_file(tmp_path / "decisions.csv")["path"].tolist() == ["=cmd|' /C calc'!A0"]
    page.context.close()


# --- item 3: --decisions must name a decisions CSV, checked before anything is served ------------------------------


def _a_photo(path: Path) -> Path:
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], path)
    return path


def _a_symlink_to_a_photo(path: Path) -> Path:
    path.symlink_to(_a_photo(path.parent / "IMG_0002.jpg"))
    return path


def _a_fifo(path: Path) -> Path:
    import os

    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.parent, "{given}: a folder; name the CSV file to write in it"),
        (lambda path: _a_photo(path.with_name("IMG_0001.jpg")), "{given}: not a .csv file name; decisions are written to a CSV"),
        (lambda path: _a_photo(path.with_name("IMG_0001.CR2")), "{given}: not a .csv file name"),
        (lambda path: _a_symlink_to_a_photo(path), "{given}: not a .csv file name (it names {parent}/IMG_0002.jpg)"),
        (lambda path: _a_photo(path), "{given}: not a readable CSV"),
        (lambda path: path.write_text("date,amount\n2026-01-02,12.50\n") and path, "{given}: needs columns path, sha256 and decision, missing path"),
        (lambda path: path.write_text(f"path,sha256,decision\na.jpg,{'a' * 64},maybe\n") and path, "{given}:2: decision must be keep or trash"),
        (lambda path: _a_fifo(path), "{given}: not a regular file"),
    ],
    ids=["folder", "photo", "raw", "symlink-to-photo", "photo-named-csv", "other-csv", "bad-decision", "fifo"],
)
def test_review_refuses_a_decisions_path_it_could_only_destroy(tmp_path, make, message):
    from keeptrash.cull.review_server import decisions_to_write
    from keeptrash.errors import KeeptrashError

    given = make(tmp_path / "decisions.csv")
    before = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file() and not path.is_fifo()}
    with pytest.raises(KeeptrashError) as refused:
        decisions_to_write(given)
    assert str(refused.value).startswith(f"--decisions {given}") and message.format(given=given, parent=tmp_path) in str(refused.value)
    assert {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file() and not path.is_fifo()} == before


def test_review_pointed_at_a_photo_stops_in_one_line_before_serving(sheet, tmp_path):
    photo = _a_photo(tmp_path / "IMG_0001.jpg")
    result = subprocess.run([KEEPTRASH, "review", str(sheet["out"]), "--decisions", str(photo)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"keeptrash: error: --decisions {photo}: not a .csv file name; decisions are written to a CSV, e.g. data/own/decisions/holiday.csv"
    ]
    assert photo.read_bytes() == (LIVEC_IMAGES / PHOTO_NAMES[0]).read_bytes()


# --- item 4: only the person's own page may read the sheet and write the decisions ---------------------------------


@pytest.fixture
def saved_file(server, sheet) -> bytes:
    """The module server's decisions file holding one decision; its bytes, which nobody else may change."""
    server.decisions.parent.mkdir(parents=True, exist_ok=True)
    server.decisions.write_text(f"path,sha256,decision\na.jpg,{sheet['scores']['sha256'].iloc[0]},keep\n", encoding="utf-8")
    return server.decisions.read_bytes()


class _EvilSite:
    """Another web site the person visits while reviewing: a real server on 127.0.0.1 with one page."""

    def __init__(self, html: str):
        import functools
        import http.server
        import threading

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(html.encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.port = self.server.server_port
        threading.Thread(target=functools.partial(self.server.serve_forever, 0.05), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# A text/plain form's body is NAME=VALUE: the name and value are chosen so the body is a decisions CSV that wipes
# the file (the old server saved it) or JSON (what the server reads now).
WIPING_FORM = """<form method="POST" action="http://127.0.0.1:{port}/decisions" enctype="text/plain">
<input type="hidden" name='{name}' value='{value}'></form><script>document.forms[0].submit()</script>"""


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site-other-port"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("path,sha256,decision\r\nevil", f"x.jpg,{'e' * 64},trash"),
        (f'{{"decisions": [{{"path": "x.jpg", "sha256": "{"e" * 64}", "decision": null, "x": "', '"}]}'),
    ],
    ids=["csv", "json"],
)
def test_another_web_page_cannot_post_decisions_even_after_the_person_opened_the_sheet(server, saved_file, browser, host, name, value):
    page = open_sheet(browser, server.url)  # the person's browser holds the sheet's cookie
    evil = _EvilSite(WIPING_FORM.format(port=server.port, name=name, value=value))
    try:
        with page.expect_response(lambda response: "/decisions" in response.url and response.request.method == "POST") as posted:
            page.goto(f"http://{host}:{evil.port}/")
        assert posted.value.status == 403
    finally:
        evil.close()
        page.context.close()
    assert server.decisions.read_bytes() == saved_file


def test_another_page_on_this_machine_cannot_post_with_the_persons_cookie(server, saved_file, browser):
    """A page on another port is the same site: the cookie goes along, and the Origin check is what refuses it."""
    page = open_sheet(browser, server.url)
    script = f"""<script>fetch("http://127.0.0.1:{server.port}/decisions", {{method: "POST", mode: "no-cors", credentials: "include",
      headers: {{"Content-Type": "text/plain"}}, body: '{{"decisions": []}}'}})</script>"""
    evil = _EvilSite(script)
    try:
        with page.expect_response(lambda response: "/decisions" in response.url) as posted:
            page.goto(f"http://127.0.0.1:{evil.port}/")
        assert "keeptrash-review" in (posted.value.request.header_value("cookie") or "")  # sent: only Origin tells them apart
        assert posted.value.status == 403
    finally:
        evil.close()
        page.context.close()
    assert server.decisions.read_bytes() == saved_file


def test_the_token_opens_the_sheet_once_then_a_strict_http_only_cookie_carries_it(server, sheet, browser, saved_file):
    page = open_sheet(browser, server.url)
    assert "token" not in page.url  # out of the address bar and history
    (cookie,) = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["name"]) == (True, "Strict", f"keeptrash-review-{server.port}")
    assert page.evaluate("document.cookie") == ""
    page.reload()
    page.wait_for_function("document.getElementById('decided').textContent.startsWith('1 decided')")
    page.context.close()
    wrong = server.url.rsplit("=", 1)[0] + "=" + "x" * 43
    for method, path, body, token in [("GET", "/", None, False), ("GET", "/decisions", None, False), ("GET", "/contact_sheet.html", None, False),
                                      ("POST", "/decisions", saves((OTHER_PHOTO, "trash")), False)]:
        status, text = request(server, method, path, body, token=token)
        assert status == 403 and "token" in text and "<figure" not in text, (method, path)
    status, _ = request(server, "GET", "/" + wrong.split("/", 3)[3], token=False)
    assert status == 403
    assert server.decisions.read_bytes() == saved_file


def test_another_user_on_this_machine_can_neither_read_the_sheet_nor_write_decisions(server, saved_file, sheet):
    if shutil.which("setpriv") is None or Path("/proc/self").stat().st_uid != 0:
        pytest.skip("needs root and setpriv to run a client as another user")
    client = f"""
import urllib.request, urllib.error
for method, path, body in [("GET", "/", None), ("GET", "/decisions", None), ("POST", "/decisions", b'{{"decisions": []}}')]:
    request = urllib.request.Request("http://127.0.0.1:{server.port}" + path, data=body, method=method,
                                     headers={{"Content-Type": "application/json"}})
    try:
        print(method, path, urllib.request.urlopen(request, timeout=20).status)
    except urllib.error.HTTPError as error:
        print(method, path, error.code)
"""
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", client],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == ["GET / 403", "GET /decisions 403", "POST /decisions 403"], result.stderr
    assert server.decisions.read_bytes() == saved_file


def test_a_new_decisions_file_is_the_persons_alone(server, sheet):
    server.decisions.unlink(missing_ok=True)
    assert post(server, saves((sheet["scores"]["sha256"].iloc[1], "trash")))[0] == 200
    assert server.decisions.stat().st_mode & 0o777 == 0o600
    server.decisions.chmod(0o640)  # the person's choice for an existing file stays
    assert post(server, saves((sheet["scores"]["sha256"].iloc[2], "keep")))[0] == 200
    assert server.decisions.stat().st_mode & 0o777 == 0o640


# --- item 5: malformed requests, a hundred saves at once, a save killed midway --------------------------------------


def raw_request(port: int, head: str, body: bytes = b"", then: str = "read") -> bytes:
    """Send head (request line and headers) and body as they are; then read the answer, or close abruptly ("reset")."""
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if then == "reset":  # a client killed or a tab closed mid-request: RST, not FIN
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return b""
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_malformed_saves_are_refused_in_one_line_each_and_change_nothing(sheet, tmp_path):
    running = Server(sheet["out"], tmp_path / "decisions.csv")
    shas = sheet["scores"]["sha256"].tolist()
    assert post(running, saves((shas[0], "keep")))[0] == 200
    before = running.decisions.read_bytes()
    query = running.url.split("/", 3)[3]
    head = f"POST /decisions{query.lstrip('/')} HTTP/1.1\nHost: 127.0.0.1:{running.port}\nContent-Type: application/json\n"
    ten = saves(*((f"{index:x}" * 64, "trash") for index in range(10)))
    cases = {  # what is sent -> the status answered
        "short": (head + f"Content-Length: {len(ten)}\n", ten[: len(ten) // 3], b" 400 "),  # then the client stops sending
        "text length": (head + "Content-Length: ten\n", ten, b" 400 "),
        "negative length": (head + "Content-Length: -5\n", ten, b" 400 "),
        "no length": (head, ten, b" 411 "),
        "huge length": (head + f"Content-Length: {10**12}\n", ten, b" 413 "),
    }
    for name, (headers, body, status) in cases.items():
        answer = raw_request(running.port, headers, body)
        assert status in answer.split(b"\r\n")[0], (name, answer)
    assert b"cut short" in raw_request(running.port, *cases["short"][:2])
    raw_request(running.port, head + f"Content-Length: {len(ten)}\n", ten[:40], then="reset")  # gone mid-body
    raw_request(running.port, head + f"Content-Length: {len(ten)}\n", ten, then="reset")  # gone before the answer
    assert post(running, saves((shas[1], "keep")))[0] == 200  # the server carries on
    stdout, stderr = running.stop()
    assert "Traceback" not in stdout + stderr and stderr == "", stderr
    refused = [line for line in stdout.splitlines() if line.startswith("review: refused a save")]
    assert len(refused) == 6, stdout  # one line each, none for the two resets but a "connection ended" line at most
    assert "cut short" in refused[0] and "Content-Length 'ten'" in refused[1]
    saved = read_decisions_file(running.decisions)
    # The short and the malformed saves saved nothing; the one whose client left before the answer may have saved its ten.
    assert [saved["sha256"].iloc[0], saved["sha256"].iloc[-1]] == [shas[0], shas[1]] and len(saved) in (2, 12)


def test_a_hundred_saves_at_once_are_all_answered_and_all_kept(server):
    from concurrent.futures import ThreadPoolExecutor

    server.decisions.unlink(missing_ok=True)
    photos = [hashlib.sha256(str(number).encode()).hexdigest() for number in range(100)]
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda sha: post(server, saves((sha, "trash")))[0], photos))
    assert answers == [200] * 100
    assert sorted(read_decisions_file(server.decisions)["sha256"]) == sorted(photos)


def test_a_temporary_file_left_by_a_killed_save_is_removed_at_start_and_nothing_else(sheet, tmp_path):
    import os
    import tempfile

    decisions = tmp_path / "holiday.csv"
    decisions.write_text(f"path,sha256,decision\na.jpg,{'a' * 64},keep\n", encoding="utf-8")
    handle, leftover = tempfile.mkstemp(dir=tmp_path, prefix=".holiday.csv.", suffix=".tmp")  # atomic_write's name
    os.write(handle, b"path,sha256,decision\na.jpg,")  # killed here
    os.close(handle)
    others = [tmp_path / name for name in (".holiday.csv.notes.tmp", ".other.csv.abcd1234.tmp", "holiday.csv.abcd1234.tmp")]
    for other in others:
        other.write_text("not ours")
    running = Server(sheet["out"], decisions)
    stdout, _ = running.stop()
    assert not Path(leftover).exists() and all(other.exists() for other in others)
    assert f"review: removed {leftover}, left by a save that was killed" in stdout
    assert decisions.read_text(encoding="utf-8") == f"path,sha256,decision\na.jpg,{'a' * 64},keep\n"


def test_paths_with_terminal_escapes_are_shown_escaped(sheet, tmp_path):
    folder = tmp_path / "\x1b]0;pwned\x07\x1b[2J"
    folder.mkdir()
    running = Server(sheet["out"], folder / "decisions.csv")
    stdout, stderr = running.stop()
    assert "\x1b" not in stdout + stderr and "\x07" not in stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2J/decisions.csv as you make them" in stdout
    result = subprocess.run([KEEPTRASH, "review", str(sheet["out"]), "--decisions", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "\x1b" not in result.stderr and "\\x1b]0;pwned\\x07" in result.stderr


def test_a_file_made_unreadable_during_the_review_is_not_saved_over(server, sheet, browser):
    sha = sheet["scores"]["sha256"].tolist()
    server.decisions.parent.mkdir(parents=True, exist_ok=True)
    server.decisions.write_text(f"path,sha256,decision\na.jpg,{sha[0]},keep\n", encoding="utf-8")
    page = open_sheet(browser, server.url)
    broken = f"path,sha256,decision\na.jpg,{sha[0]},keep\nb.jpg,{OTHER_PHOTO},maybe\n"  # edited by hand meanwhile
    server.decisions.write_text(broken, encoding="utf-8")
    page.locator("figure.photo").nth(2).click()
    page.wait_for_function("document.getElementById('saved').textContent.startsWith('not saved: ')")
    assert ":3: decision must be keep or trash" in page.inner_text("#saved")
    assert server.decisions.read_text(encoding="utf-8") == broken
    page.context.close()
