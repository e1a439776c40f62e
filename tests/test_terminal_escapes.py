"""File and folder names holding terminal escape sequences, echoed by the real `keeptrash` console script: no raw
control character reaches the terminal (it would clear the screen, set the window title or fake a line of output);
each shows escaped (ESC as \\x1b, a newline as \\n) while accented letters stay readable."""

import http.client
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LIVEC_IMAGES, PHOTO_NAMES

KEEPTRASH = str(Path(sys.executable).parent / "keeptrash")
# Sets the window title, clears the screen, homes the cursor, then fakes a line of keeptrash output.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[H\nkeeptrash: every photo kept\r\x9b"
ESCAPED = r"\x1b]0;pwned\x07\x1b[2J\x1b[H\nkeeptrash: every photo kept\r\x9b"
# Bytes a terminal acts on: C0 controls but the line ends the output is made of, DEL, and C1 controls in UTF-8.
RAW_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def keeptrash(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KEEPTRASH, *args], capture_output=True, cwd=cwd)


def assert_shown_escaped(result: subprocess.CompletedProcess, prefix: bytes) -> None:
    """No raw control byte on stdout or stderr, every line one of keeptrash's own (no faked ones)."""
    for stream in (result.stdout, result.stderr):
        assert not RAW_CONTROL.search(stream), stream
        assert all(line.startswith((prefix, b"keeptrash: error: ")) for line in stream.splitlines()), stream


def test_printable_escapes_controls_and_keeps_letters():
    from keeptrash.errors import printable

    assert printable(f"Fête à Zürich {HOSTILE}.jpg") == f"Fête à Zürich {ESCAPED}.jpg"
    assert printable(os.fsdecode(b"bad-\xff\x1b.jpg")) == r"bad-\xff\x1b.jpg"
    assert printable("tab\there\u202eevil") == r"tab\there\u202eevil"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)


@pytest.fixture(scope="module")
def hostile_cull(tmp_path_factory, model_path, cache_root) -> dict:
    """`keeptrash cull -r --follow-links --move` of a folder with a hostile name (default --out beside it, so hostile
    too), holding a photo and a broken file with hostile names and a symlinked subfolder reached twice."""
    root = tmp_path_factory.mktemp("escapes")
    folder = root / f"trip {HOSTILE}"
    (folder / "sub").mkdir(parents=True)
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], folder / f"Fête {HOSTILE}.jpg")
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[1], folder / "sub" / "plain.jpg")
    (folder / f"broken {HOSTILE}.jpg").write_bytes(b"not a photo")
    (folder / "again").symlink_to(folder / "sub", target_is_directory=True)  # skipped: "already scanned as ..."
    result = keeptrash("cull", str(folder), "-r", "--follow-links", "--move", "--model", str(model_path))
    assert result.returncode == 0, result.stderr
    return {"folder": folder, "out": root / f"{folder.name}-keeptrash", "result": result}


def test_cull_shows_hostile_names_escaped(hostile_cull):
    result = hostile_cull["result"]
    assert_shown_escaped(result, b"cull: ")
    stdout = result.stdout.decode("utf-8")
    assert f"cull: wrote {hostile_cull['out']}/keeptrash.csv".replace(HOSTILE, ESCAPED) in stdout
    # The summary counts skips by their reason up to its first colon: here inside the folder's name.
    assert f"(already scanned as {hostile_cull['folder']}".replace(HOSTILE, ESCAPED).split(":")[0] in stdout
    assert "keeptrash undo " in stdout


def test_undo_shows_hostile_names_escaped(hostile_cull):
    out = hostile_cull["out"]
    moved = next(path for path in out.rglob("*.jpg") if HOSTILE in path.name)
    moved.unlink()  # a photo gone from keep/ or trash/: undo names it in a problem line and ends in an error
    journal = next(out.glob("undo-*.jsonl"))
    result = keeptrash("undo", str(journal))
    assert result.returncode == 2
    assert_shown_escaped(result, b"undo: ")
    assert f"Fête {ESCAPED}.jpg: missing" in result.stdout.decode("utf-8")
    assert result.stderr.decode().strip().splitlines() == ["keeptrash: error: 1 photos or sidecars could not be restored; see the lines above"]


@pytest.mark.parametrize("command", ["cull", "undo", "review", "report"])
def test_an_error_quoting_a_hostile_name_is_one_escaped_line(command, tmp_path, model_path):
    missing = tmp_path / f"missing {HOSTILE}"
    args = {
        "cull": ["cull", str(missing), "--model", str(model_path)],
        "undo": ["undo", str(missing)],
        "review": ["review", str(missing)],
        "report": ["report", "--base", f"no-such {HOSTILE}", "--out", str(missing)],
    }[command]
    result = keeptrash(*args, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert_shown_escaped(result, b"keeptrash: error: ")
    assert len(result.stderr.splitlines()) == 1 and ESCAPED.encode() in result.stderr


def test_review_shows_a_hostile_decisions_path_and_origin_escaped(hostile_cull):
    decisions = hostile_cull["out"] / f"decisions {HOSTILE}.csv"
    process = subprocess.Popen([KEEPTRASH, "review", str(hostile_cull["out"]), "--decisions", str(decisions)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        first = process.stdout.readline()
        found = re.search(rb"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", first)
        assert found, first
        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=30)
        connection.request("POST", f"/decisions?token={found.group(2).decode()}", body=b"{}",
                           headers={"Origin": "http://evil.example\x1b[2J", "Content-Type": "application/json"})
        assert connection.getresponse().status == 403
        connection.close()
    finally:
        process.terminate()
        rest, errors = process.communicate(timeout=30)
    shown = subprocess.CompletedProcess([], 0, first + rest, errors)
    assert_shown_escaped(shown, b"review: ")
    assert f"decisions are saved to {decisions}".replace(HOSTILE, ESCAPED).encode() in first
    assert rb"review: refused a save from http://evil.example\x1b[2J" in rest
    assert not decisions.exists()
