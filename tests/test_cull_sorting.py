"""Sorting photos into keep/ and trash/ by copy, link or move, and undoing a move, without losing or changing a photo.

Every test checks the bytes of every photo it touched against a sha256 taken before, after each copy, link, move
and undo: a user's photo must never be modified, overwritten or deleted.
"""

import errno
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import LIVEC_IMAGES, tiny_filesystem, train_livec_model
from keeptrash.images import file_digest
from keeptrash.cull import KEEP, TRASH, SortRefused
from keeptrash.cull.journal import UndoJournal, read_journal
from keeptrash.cull.safe_write import PARTIAL_SUFFIX, candidate_paths, exclusive_folders, remove_stale_partials
from keeptrash.cull.sorting import sort_photo, undo_moves
from keeptrash.errors import KeeptrashError
from keeptrash.features.store import CACHE_ENV

# The first six real LIVE-C photos by name (all 500x500 RGB JPEGs, all different).
SIX_NAMES = tuple(sorted(path.name for path in LIVEC_IMAGES.iterdir() if path.suffix == ".jpg")[:6])
OLD_MTIME_NS = 1_000_000_000_123_456_789  # 2001-09-09, so a preserved mtime cannot be a fresh one by chance

UNICODE_NAMES = (
    "café.jpg",  # NFC
    "cafe\u0301.jpg",  # NFD: a different name, must not be normalised into the one above
    "日本語 写真.jpg",
    "📷.jpg",
    'a,b "q".jpg',
    "back\\slash.jpg",
    "line\nbreak.jpg",
    "sep\u2028arator.jpg",
    os.fsdecode(b"bad\xff.jpg"),  # not valid UTF-8: '\udcff' in Python
    os.fsdecode(b"caf\xe9 latin-1.jpg"),
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_intact(expected: dict[Path, str]) -> None:
    """Every photo is a file at its path with exactly the bytes it had."""
    for path, digest in expected.items():
        assert path.is_file(), f"{path!r} is gone"
        assert sha(path) == digest, f"{path!r} changed"


def files_in(folder: Path) -> list[Path]:
    """Everything in folder (recursively), including symlinks, but not folders."""
    if not folder.exists():
        return []
    return sorted(path for path in folder.rglob("*") if path.is_symlink() or not path.is_dir())


def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every name under root (as bytes) with what it is: file bytes, mtime and inode, or a link's target."""
    state = {}
    for folder, dirs, names in os.walk(os.fsencode(root)):
        for name in dirs + names:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, os.fsencode(root))
            if os.path.islink(path):
                state[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                state[key] = ("dir",)
            else:
                info = os.stat(path)
                with open(path, "rb") as handle:
                    state[key] = ("file", hashlib.sha256(handle.read()).hexdigest(), info.st_mtime_ns, info.st_ino)
    return state


def journal_entries(path: Path) -> list[dict]:
    """The records of a journal as written (paths relative to the culled folder and to the journal's), no headers."""
    data = path.read_bytes()
    assert data.isascii()
    return [entry for entry in map(json.loads, data.decode("ascii").splitlines()) if "keeptrash_undo" not in entry]


def journal_of(tmp_path: Path, source: Path, moved: Path, digest: str) -> UndoJournal:
    """A journal holding one move, written as sort_photo writes it, whatever state the files are in."""
    journal = UndoJournal(tmp_path / "undo.jsonl", source.parent)
    journal.record(source, moved, digest)
    journal.close()
    return journal


def move_all(sources: list[Path], folders: list[Path], journal_path: Path) -> list[Path]:
    """Move each source into its folder as `keeptrash cull --move` of the sources' common folder does."""
    journal = UndoJournal(journal_path, Path(os.path.commonpath([source.parent for source in sources])))
    try:
        moved = []
        for source, folder in zip(sources, folders):
            where, action = sort_photo(source, folder, "move", sha(source), journal)
            assert action == "moved"
            moved.append(where)
        return moved
    finally:
        journal.close()


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Copies of six real photos in tmp_path/photos, with an old mtime."""
    folder = tmp_path / "photos"
    folder.mkdir()
    copies = []
    for name in SIX_NAMES:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
        os.utime(folder / name, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        copies.append(folder / name)
    return copies


@pytest.fixture
def shm_dir(tmp_path) -> Path:
    """A folder on /dev/shm, a different filesystem from tmp_path, so hard links between them fail with EXDEV."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm to test a move across filesystems")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="keeptrash-test-"))
    try:
        if folder.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same filesystem as tmp_path")
        yield folder
    finally:
        shutil.rmtree(folder)


def shm_photos(shm_dir: Path, count: int = 3) -> list[Path]:
    copies = []
    for name in SIX_NAMES[:count]:
        shutil.copyfile(LIVEC_IMAGES / name, shm_dir / name)
        os.utime(shm_dir / name, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        copies.append(shm_dir / name)
    return copies


# --- candidate_paths ---------------------------------------------------------------------------


def test_candidate_paths_are_the_name_then_numbered_before_the_suffix(tmp_path):
    assert list(itertools.islice(candidate_paths(tmp_path, "IMG_1.jpg"), 4)) == [
        tmp_path / "IMG_1.jpg",
        tmp_path / "IMG_1-1.jpg",
        tmp_path / "IMG_1-2.jpg",
        tmp_path / "IMG_1-3.jpg",
    ]
    assert list(itertools.islice(candidate_paths(tmp_path, "README"), 2)) == [tmp_path / "README", tmp_path / "README-1"]
    assert list(itertools.islice(candidate_paths(tmp_path, "a.tar.gz"), 2))[1] == tmp_path / "a.tar-1.gz"
    assert list(itertools.islice(candidate_paths(tmp_path, ".hidden"), 2))[1] == tmp_path / ".hidden-1"


# --- copy ----------------------------------------------------------------------------------------


def test_copy_keeps_source_and_writes_identical_bytes_with_same_mtime(tmp_path, photos):
    before = {path: sha(path) for path in photos}
    keep = tmp_path / "out" / "keep"  # does not exist yet
    for source in photos:
        where, action = sort_photo(source, keep, "copy", before[source], None)
        assert (where, action) == (keep / source.name, "copied")
        assert sha(where) == before[source]
        assert not where.is_symlink()
        assert not os.path.samefile(source, where)  # a real copy, not a second name for the photo
        assert where.stat().st_mtime_ns == source.stat().st_mtime_ns == OLD_MTIME_NS
        assert source.stat().st_nlink == 1
    assert_intact(before)
    assert [path.name for path in files_in(keep)] == sorted(SIX_NAMES)


def test_copy_across_filesystems_keeps_source_and_bytes(tmp_path, shm_dir):
    sources = shm_photos(shm_dir)
    before = {path: sha(path) for path in sources}
    for source in sources:
        where, action = sort_photo(source, tmp_path / "keep", "copy", before[source], None)
        assert action == "copied"
        assert sha(where) == before[source]
        assert where.stat().st_mtime_ns == OLD_MTIME_NS
    assert_intact(before)


# --- link ----------------------------------------------------------------------------------------


def test_link_on_same_filesystem_is_a_hard_link(tmp_path, photos):
    before = {path: sha(path) for path in photos}
    trash = tmp_path / "out" / "trash"
    for source in photos:
        where, action = sort_photo(source, trash, "link", before[source], None)
        assert (where, action) == (trash / source.name, "linked")
        assert not where.is_symlink()
        assert os.path.samefile(source, where)
        assert where.stat().st_ino == source.stat().st_ino
        assert source.stat().st_nlink == 2
    assert_intact(before)
    assert_intact({trash / path.name: digest for path, digest in before.items()})


def test_link_across_filesystems_is_a_symlink_to_the_absolute_source(tmp_path, shm_dir, monkeypatch):
    sources = shm_photos(shm_dir)
    before = {path: sha(path) for path in sources}
    keep = tmp_path / "keep"
    monkeypatch.chdir(shm_dir)  # pass relative source paths: the link must still point at the absolute path
    for source in sources:
        where, action = sort_photo(Path(source.name), keep, "link", before[source], None)
        assert (where, action) == (keep / source.name, "symlinked")
        assert where.is_symlink()
        assert os.readlink(where) == str(source)
        assert os.path.samefile(source, where)
    assert_intact(before)
    assert_intact({keep / path.name: digest for path, digest in before.items()})


# --- move ----------------------------------------------------------------------------------------


def test_move_on_same_filesystem_removes_source_and_journals_relative_paths(tmp_path, photos, monkeypatch):
    before = {path: (sha(path), path.stat().st_ino) for path in photos}
    monkeypatch.chdir(tmp_path)  # paths relative to the working folder in; to the culled folder and journal's out
    journal = UndoJournal(Path("out") / "undo.jsonl", Path("photos"))
    try:
        for number, source in enumerate(photos):
            folder = Path("out") / ("keep" if number % 2 else "trash")
            relative = Path("photos") / source.name
            where, action = sort_photo(relative, folder, "move", before[source][0], journal)
            assert (where, action) == (folder / source.name, "moved")
            # On disk before the journal is closed: the line is written before the photo leaves its folder.
            entries = journal_entries(tmp_path / "out" / "undo.jsonl")
            assert entries[-1] == {"from": source.name, "to": str(where.relative_to("out")), "sha256": before[source][0]}
            assert len(entries) == number + 1
    finally:
        journal.close()
    for source, (digest, inode) in before.items():
        assert not os.path.lexists(source)
        moved = tmp_path / "out" / ("keep" if photos.index(source) % 2 else "trash") / source.name
        assert sha(moved) == digest
        assert moved.stat().st_ino == inode  # the same file under a new name, not a copy
        assert moved.stat().st_nlink == 1
        assert moved.stat().st_mtime_ns == OLD_MTIME_NS
    assert files_in(tmp_path / "photos") == []


def test_move_across_filesystems_copies_verifies_and_removes_source(tmp_path, shm_dir):
    sources = shm_photos(shm_dir)
    before = {path: sha(path) for path in sources}
    journal_path = tmp_path / "out" / "undo.jsonl"
    moved = move_all(sources, [tmp_path / "out" / "keep"] * len(sources), journal_path)
    for source, where in zip(sources, moved):
        assert not os.path.lexists(source)
        assert where == tmp_path / "out" / "keep" / source.name
        assert not where.is_symlink()
        assert where.stat().st_dev != shm_dir.stat().st_dev
        assert sha(where) == before[source]
        assert where.stat().st_mtime_ns == OLD_MTIME_NS
    assert read_journal(journal_path) == [
        {"from": source, "to": where, "sha256": before[source]} for source, where in zip(sources, moved)
    ]
    assert os.listdir(shm_dir) == []


def test_journal_appends_to_an_existing_file_and_creates_its_folder(tmp_path, photos):
    journal_path = tmp_path / "new" / "folder" / "undo.jsonl"
    move_all(photos[:2], [journal_path.parent / "keep"] * 2, journal_path)
    move_all(photos[2:3], [journal_path.parent / "trash"], journal_path)
    assert [entry["from"] for entry in read_journal(journal_path)] == photos[:3]


# --- name clashes --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["copy", "link", "move"])
def test_same_name_from_two_folders_gets_a_numbered_name(tmp_path, mode):
    first, second = tmp_path / "2023" / "IMG.jpg", tmp_path / "2024" / "IMG.jpg"
    for path, name in ((first, SIX_NAMES[0]), (second, SIX_NAMES[1])):
        path.parent.mkdir()
        shutil.copyfile(LIVEC_IMAGES / name, path)
    digests = {first: sha(first), second: sha(second)}
    assert digests[first] != digests[second]
    journal = UndoJournal(tmp_path / "undo.jsonl", tmp_path) if mode == "move" else None
    keep = tmp_path / "keep"
    assert sort_photo(first, keep, mode, digests[first], journal)[0] == keep / "IMG.jpg"
    assert sort_photo(second, keep, mode, digests[second], journal)[0] == keep / "IMG-1.jpg"
    if journal:
        journal.close()
    assert_intact({keep / "IMG.jpg": digests[first], keep / "IMG-1.jpg": digests[second]})
    if mode != "move":
        assert_intact(digests)
    assert [path.name for path in files_in(keep)] == ["IMG-1.jpg", "IMG.jpg"]


@pytest.mark.parametrize("mode", ["copy", "link", "move"])
def test_existing_unrelated_files_at_the_destination_are_never_overwritten(tmp_path, photos, mode):
    source = photos[0]
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    taken = keep / source.name
    shutil.copyfile(photos[1], taken)  # another photo under this name
    # Same size as the photo, one byte different: not the same photo, so not "already there".
    almost = bytearray(source.read_bytes())
    almost[len(almost) // 2] ^= 0xFF
    taken_too = keep / f"{source.stem}-1{source.suffix}"
    taken_too.write_bytes(bytes(almost))
    (keep / f"{source.stem}-2{source.suffix}").mkdir()  # a folder under the next name
    others = {taken: sha(taken), taken_too: sha(taken_too)}
    mtimes = {path: path.stat().st_mtime_ns for path in others}
    journal = UndoJournal(tmp_path / "undo.jsonl", source.parent) if mode == "move" else None
    where, action = sort_photo(source, keep, mode, digest, journal)
    if journal:
        journal.close()
    assert where == keep / f"{source.stem}-3{source.suffix}"
    assert action == {"copy": "copied", "link": "linked", "move": "moved"}[mode]
    assert sha(where) == digest
    assert_intact(others)
    assert {path: path.stat().st_mtime_ns for path in others} == mtimes
    assert os.path.lexists(source) == (mode != "move")


@pytest.mark.parametrize("mode, first_action", [("copy", "copied"), ("link", "linked")])
def test_copying_or_linking_the_same_photo_twice_reuses_the_destination(tmp_path, photos, mode, first_action):
    before = {path: sha(path) for path in photos}
    keep = tmp_path / "keep"
    first = [sort_photo(source, keep, mode, before[source], None) for source in photos]
    again = [sort_photo(source, keep, mode, before[source], None) for source in photos]
    assert first == [(keep / source.name, first_action) for source in photos]
    assert again == [(keep / source.name, "already there") for source in photos]
    assert [path.name for path in files_in(keep)] == sorted(SIX_NAMES)
    assert_intact(before)
    assert_intact({keep / path.name: digest for path, digest in before.items()})


def test_linking_twice_across_filesystems_reuses_the_symlink(tmp_path, shm_dir):
    sources = shm_photos(shm_dir)
    before = {path: sha(path) for path in sources}
    keep = tmp_path / "keep"
    assert {sort_photo(path, keep, "link", before[path], None)[1] for path in sources} == {"symlinked"}
    assert [sort_photo(path, keep, "link", before[path], None) for path in sources] == [
        (keep / path.name, "already there") for path in sources
    ]
    assert len(files_in(keep)) == len(sources)
    assert_intact(before)


def test_copy_after_an_earlier_copy_of_a_different_photo_is_not_already_there(tmp_path, photos):
    keep = tmp_path / "keep"
    renamed = tmp_path / "other" / photos[0].name  # a different photo with the same name
    renamed.parent.mkdir()
    shutil.copyfile(photos[1], renamed)
    assert sort_photo(photos[0], keep, "copy", sha(photos[0]), None) == (keep / photos[0].name, "copied")
    assert sort_photo(renamed, keep, "copy", sha(renamed), None) == (keep / f"{photos[0].stem}-1.jpg", "copied")
    assert_intact({keep / photos[0].name: sha(photos[0]), keep / f"{photos[0].stem}-1.jpg": sha(photos[1])})


def test_move_never_treats_an_identical_existing_file_as_already_there(tmp_path, photos):
    source = photos[0]
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    earlier_copy = keep / source.name
    shutil.copy2(source, earlier_copy)  # identical bytes and mtime, e.g. from an earlier --copy run
    journal_path = tmp_path / "undo.jsonl"
    (where,) = move_all([source], [keep], journal_path)
    assert where == keep / f"{source.stem}-1.jpg"
    assert not os.path.lexists(source)
    assert_intact({earlier_copy: digest, where: digest})
    assert read_journal(journal_path) == [{"from": source, "to": where, "sha256": digest}]
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored, report.problems) == (1, 0, [])
    assert_intact({source: digest, earlier_copy: digest})
    assert files_in(keep) == [earlier_copy]


# --- undo ----------------------------------------------------------------------------------------


def clashing_moves(tmp_path: Path, photos: list[Path]) -> tuple[dict[Path, str], Path]:
    """The six photos plus two same-named photos in subfolders, moved into keep/ and trash/."""
    for number, sub in enumerate(("a", "b/c")):
        path = tmp_path / "photos" / sub / photos[0].name
        path.parent.mkdir(parents=True)
        shutil.copyfile(photos[number + 1], path)
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        photos = [*photos, path]
    before = {path: sha(path) for path in photos}
    folders = [tmp_path / "out" / ("keep" if number % 3 else "trash") for number in range(len(photos))]
    journal_path = tmp_path / "out" / "undo.jsonl"
    moved = move_all(photos, folders, journal_path)
    assert len(set(moved)) == len(photos)
    assert_intact(dict(zip(moved, before.values())))
    assert all(not os.path.lexists(path) for path in photos)
    return before, journal_path


def test_undo_restores_every_moved_photo_and_empties_keep_and_trash(tmp_path, photos):
    before, journal_path = clashing_moves(tmp_path, photos)
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored, report.problems) == (len(before), 0, [])
    assert_intact(before)
    for path in before:
        assert path.stat().st_mtime_ns == OLD_MTIME_NS
        assert not path.is_symlink()
    assert files_in(tmp_path / "out" / "keep") == []
    assert files_in(tmp_path / "out" / "trash") == []


def test_undo_a_second_time_reports_all_already_restored_and_changes_nothing(tmp_path, photos):
    before, journal_path = clashing_moves(tmp_path, photos)
    undo_moves(journal_path)
    state = snapshot(tmp_path)
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored, report.problems) == (0, len(before), [])
    assert snapshot(tmp_path) == state
    assert_intact(before)


def test_undo_across_filesystems_copies_back_with_bytes_and_mtime(tmp_path, shm_dir):
    sources = shm_photos(shm_dir)
    before = {path: sha(path) for path in sources}
    journal_path = tmp_path / "undo.jsonl"
    move_all(sources, [tmp_path / "keep"] * len(sources), journal_path)
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored, report.problems) == (len(sources), 0, [])
    assert_intact(before)
    assert all(path.stat().st_mtime_ns == OLD_MTIME_NS for path in sources)
    assert files_in(tmp_path / "keep") == []


def test_undo_into_an_original_folder_that_was_removed_recreates_it(tmp_path):
    album = tmp_path / "photos" / "holiday"
    album.mkdir(parents=True)
    source = album / SIX_NAMES[0]
    shutil.copyfile(LIVEC_IMAGES / SIX_NAMES[0], source)
    digest = sha(source)
    journal_path = tmp_path / "undo.jsonl"
    move_all([source], [tmp_path / "keep"], journal_path)
    album.rmdir()  # empty after the move
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert_intact({source: digest})


def test_undo_when_the_original_path_is_taken_leaves_both_files_and_reports_it(tmp_path, photos):
    before = {path: sha(path) for path in photos}
    journal_path = tmp_path / "undo.jsonl"
    moved = move_all(photos[:2], [tmp_path / "keep"] * 2, journal_path)
    newcomer = photos[0]
    shutil.copyfile(photos[3], newcomer)  # another photo now has the first one's old name
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored) == (1, 0)
    assert len(report.problems) == 1
    path, reason = report.problems[0]
    assert path == photos[0]
    assert "another file" in reason and str(moved[0]) in reason
    assert_intact({moved[0]: before[photos[0]], newcomer: before[photos[3]], photos[1]: before[photos[1]]})
    assert files_in(tmp_path / "keep") == [moved[0]]


def test_undo_when_the_moved_photo_was_deleted_reports_it_missing(tmp_path, photos):
    before = {path: sha(path) for path in photos}
    journal_path = tmp_path / "undo.jsonl"
    moved = move_all(photos[:3], [tmp_path / "trash"] * 3, journal_path)
    moved[1].unlink()  # the user emptied part of the trash
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored) == (2, 0)
    assert len(report.problems) == 1
    path, reason = report.problems[0]
    assert path == photos[1]
    assert reason.startswith("missing") and str(moved[1]) in reason
    assert not os.path.lexists(photos[1])
    assert_intact({photos[0]: before[photos[0]], photos[2]: before[photos[2]]})


def test_undo_resolves_an_interrupted_move_where_both_names_are_one_file(tmp_path, photos):
    source = photos[0]
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    moved = keep / source.name
    # A move interrupted after the new name and the journal line, before the old name was removed.
    os.link(source, moved)
    journal = journal_of(tmp_path, source, moved, digest)
    report = undo_moves(journal.path)
    assert (report.restored, report.already_restored, report.problems) == (0, 1, [])
    assert_intact({source: digest})
    assert source.stat().st_nlink == 1
    assert files_in(keep) == []


def test_undo_of_an_interrupted_cross_filesystem_move_drops_only_the_identical_copy(tmp_path, shm_dir):
    (source,) = shm_photos(shm_dir, 1)
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    moved = keep / source.name
    shutil.copy2(source, moved)  # the verified copy was made, the original not yet removed
    journal = journal_of(tmp_path, source, moved, digest)
    report = undo_moves(journal.path)
    assert (report.restored, report.already_restored, report.problems) == (0, 1, [])
    assert_intact({source: digest})
    assert not moved.exists()


def test_undo_keeps_a_differing_copy_at_the_moved_name(tmp_path, shm_dir):
    (source,) = shm_photos(shm_dir, 1)
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    moved = keep / source.name
    moved.write_bytes(source.read_bytes() + b"edited")
    journal = journal_of(tmp_path, source, moved, digest)
    edited = sha(moved)
    report = undo_moves(journal.path)
    assert report.restored == 0 and len(report.problems) == 1
    assert_intact({source: digest, moved: edited})


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_undo_into_a_read_only_folder_reports_it_and_keeps_the_photo(tmp_path, photos):
    digest = sha(photos[0])
    journal_path = tmp_path / "undo.jsonl"
    (moved,) = move_all(photos[:1], [tmp_path / "keep"], journal_path)
    photos_folder = photos[0].parent
    photos_folder.chmod(0o555)
    try:
        report = undo_moves(journal_path)
    finally:
        photos_folder.chmod(0o755)
    assert report.restored == 0
    assert len(report.problems) == 1 and report.problems[0][1].startswith("cannot restore")
    assert_intact({moved: digest})


# --- the journal ---------------------------------------------------------------------------------


def test_read_journal_gives_from_to_and_digest_in_order(tmp_path, photos):
    journal_path = tmp_path / "undo.jsonl"
    digests = [file_digest(photo) for photo in photos]
    moved = move_all(photos, [tmp_path / "keep"] * len(photos), journal_path)
    assert read_journal(journal_path) == [
        {"from": source, "to": where, "sha256": digest} for source, where, digest in zip(photos, moved, digests)
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        "this is not json",
        '{"from": "/photos/a.jpg"}',
        '{"to": "/keep/a.jpg", "sha256": "00"}',
        '["/photos/a.jpg", "/keep/a.jpg"]',
        '"/photos/a.jpg"',
        "null",
        "42",
        '{"from": null, "to": "/keep/a.jpg"}',
        '{"from": "/photos/a.jpg", "to": 7}',
        '{"from": "/photos/a.jpg", "to": "/keep/a.jpg"',  # cut short
    ],
)
def test_garbage_journal_line_is_an_error_naming_its_line_and_moves_nothing(tmp_path, photos, garbage):
    before = {path: sha(path) for path in photos[:2]}
    journal_path = tmp_path / "undo.jsonl"
    moved = move_all(photos[:2], [tmp_path / "keep"] * 2, journal_path)
    with journal_path.open("a", encoding="ascii") as handle:
        handle.write("\n" + garbage + "\n")  # after the header and two records, line 4 is blank, line 5 the garbage
    with pytest.raises(KeeptrashError, match=r"line 5\b"):
        undo_moves(journal_path)
    with pytest.raises(KeeptrashError, match=r"line 5\b"):
        read_journal(journal_path)
    assert_intact(dict(zip(moved, before.values())))
    assert not any(os.path.lexists(path) for path in photos[:2])


def test_missing_journal_is_an_error(tmp_path):
    for path in (tmp_path / "undo-nothing.jsonl", tmp_path):  # nothing there, or a folder
        with pytest.raises(KeeptrashError, match="not found"):
            undo_moves(path)


def test_empty_journal_restores_nothing(tmp_path):
    (tmp_path / "undo.jsonl").write_text("", encoding="ascii")
    report = undo_moves(tmp_path / "undo.jsonl")
    assert (report.restored, report.already_restored, report.problems) == (0, 0, [])


# --- file names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("across_filesystems", [False, True], ids=["same-filesystem", "across-filesystems"])
def test_any_file_name_survives_move_and_undo_exactly(tmp_path, request, across_filesystems):
    folder = request.getfixturevalue("shm_dir") if across_filesystems else tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    sources = []
    for number, name in enumerate(UNICODE_NAMES):
        path = folder / name
        if number < len(SIX_NAMES):
            shutil.copyfile(LIVEC_IMAGES / SIX_NAMES[number], path)
        else:  # distinct photos made with Pillow for the rest
            Image.new("RGB", (64, 48), (number * 20, 255 - number * 20, 90)).save(path, quality=90)
        sources.append(path)
    before = {path: sha(path) for path in sources}
    assert len(set(before.values())) == len(sources)
    names_before = sorted(os.listdir(os.fsencode(folder)))
    journal_path = tmp_path / "out" / "undo.jsonl"
    moved = move_all(sources, [tmp_path / "out" / "keep"] * len(sources), journal_path)
    assert moved == [tmp_path / "out" / "keep" / name for name in UNICODE_NAMES]
    assert sorted(os.listdir(os.fsencode(tmp_path / "out" / "keep"))) == names_before
    assert os.listdir(os.fsencode(folder)) == []
    assert_intact(dict(zip(moved, before.values())))
    raw = journal_path.read_bytes()
    assert raw.isascii()
    assert rb"\udcff" in raw and rb"\udce9" in raw
    assert raw.count(b"\n") == 1 + len(sources)  # a header, then one line per photo: newlines in names are escaped
    assert [entry["from"] for entry in read_journal(journal_path)] == sources
    assert [entry["sha256"] for entry in read_journal(journal_path)] == list(before.values())
    report = undo_moves(journal_path)
    assert (report.restored, report.already_restored, report.problems) == (len(sources), 0, [])
    assert sorted(os.listdir(os.fsencode(folder))) == names_before
    assert_intact(before)
    assert files_in(tmp_path / "out" / "keep") == []


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_undecodable_file_name_copies_and_links_under_the_same_bytes(tmp_path, mode):
    source = tmp_path / "photos" / os.fsdecode(b"bad\xff.jpg")
    source.parent.mkdir()
    shutil.copyfile(LIVEC_IMAGES / SIX_NAMES[0], source)
    digest = sha(source)
    where, _ = sort_photo(source, tmp_path / "keep", mode, digest, None)
    assert os.listdir(os.fsencode(tmp_path / "keep")) == [b"bad\xff.jpg"]
    assert_intact({source: digest, where: digest})


# --- symlinks ------------------------------------------------------------------------------------


def test_move_of_a_symlink_moves_the_link_and_leaves_the_photo_alone(tmp_path, photos):
    real = photos[0]
    before = {path: sha(path) for path in photos}
    inode = real.stat().st_ino
    alias = tmp_path / "album" / "alias.jpg"
    alias.parent.mkdir()
    alias.symlink_to(real)
    journal_path = tmp_path / "undo.jsonl"
    (moved,) = move_all([alias], [tmp_path / "keep"], journal_path)
    assert moved == tmp_path / "keep" / "alias.jpg"
    assert moved.is_symlink() and os.readlink(moved) == str(real)
    assert not os.path.lexists(alias)
    assert real.stat().st_ino == inode and real.stat().st_nlink == 1 and not real.is_symlink()
    assert_intact(before)
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert alias.is_symlink() and os.readlink(alias) == str(real)
    assert files_in(tmp_path / "keep") == []
    assert real.stat().st_ino == inode and real.stat().st_nlink == 1
    assert_intact(before)


def test_move_of_a_symlink_across_filesystems_moves_the_link(tmp_path, photos, shm_dir):
    real = photos[0]
    before = {path: sha(path) for path in photos}
    alias = shm_dir / "alias.jpg"
    alias.symlink_to(real)
    journal_path = tmp_path / "undo.jsonl"
    (moved,) = move_all([alias], [tmp_path / "keep"], journal_path)
    assert moved.is_symlink() and os.readlink(moved) == str(real)
    assert not os.path.lexists(alias)
    assert real.stat().st_nlink == 1 and not real.is_symlink()
    assert_intact(before)
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert alias.is_symlink() and os.readlink(alias) == str(real)
    assert not os.path.lexists(moved)
    assert_intact(before)


def test_link_and_copy_of_an_absolute_symlink_give_the_photo(tmp_path, photos):
    real = photos[0]
    digest = sha(real)
    alias = tmp_path / "album" / "alias.jpg"
    alias.parent.mkdir()
    alias.symlink_to(real)
    linked, action = sort_photo(alias, tmp_path / "keep", "link", digest, None)
    assert action == "linked" and os.path.samefile(linked, real)
    copied, action = sort_photo(alias, tmp_path / "trash", "copy", digest, None)
    assert action == "copied" and not copied.is_symlink() and not os.path.samefile(copied, real)
    assert_intact({real: digest, linked: digest, copied: digest})
    assert alias.is_symlink() and os.readlink(alias) == str(real)
    assert real.stat().st_nlink <= 2


def test_file_digest_is_the_sha256_of_the_bytes(photos):
    for path in photos:
        assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- known bugs ----------------------------------------------------------------------------------


def test_undo_never_deletes_the_photo_when_its_original_path_is_a_symlink_to_it(tmp_path, photos):
    source = photos[0]
    digest = sha(source)
    journal_path = tmp_path / "undo.jsonl"
    (moved,) = move_all([source], [tmp_path / "keep"], journal_path)
    source.symlink_to(moved)  # e.g. a photo manager left a shortcut where the photo used to be
    report = undo_moves(journal_path)
    assert moved.is_file() and not moved.is_symlink(), "the only copy of the photo was deleted"
    assert_intact({moved: digest})
    assert [path for path, _ in report.problems] == [source]


def test_link_mode_skips_a_dangling_symlink_at_the_destination(tmp_path, photos):
    source = photos[0]
    keep = tmp_path / "keep"
    keep.mkdir()
    stale = keep / source.name
    stale.symlink_to(tmp_path / "drive" / "gone.jpg")  # left by an earlier --link from a drive since reorganised
    where, action = sort_photo(source, keep, "link", sha(source), None)
    assert (where, action) == (keep / f"{source.stem}-1.jpg", "linked")
    assert os.readlink(stale) == str(tmp_path / "drive" / "gone.jpg")


def test_undo_reports_a_dangling_symlink_at_the_original_path_and_goes_on(tmp_path, photos):
    before = {path: sha(path) for path in photos[:2]}
    journal_path = tmp_path / "undo.jsonl"
    moved = move_all(photos[:2], [tmp_path / "keep"] * 2, journal_path)
    photos[1].symlink_to(tmp_path / "nowhere.jpg")  # undo handles the last line first
    report = undo_moves(journal_path)
    assert report.restored == 1
    assert [path for path, _ in report.problems] == [photos[1]]
    assert_intact({photos[0]: before[photos[0]], moved[1]: before[photos[1]]})


def test_undo_does_not_move_a_different_photo_that_now_has_the_moved_to_name(tmp_path, photos):
    first, later = photos[0], tmp_path / "elsewhere" / photos[0].name
    later.parent.mkdir()
    shutil.copyfile(photos[1], later)
    digests = {first: sha(first), later: sha(later)}
    keep = tmp_path / "keep"
    move_all([first], [keep], tmp_path / "undo-1.jsonl")
    undo_moves(tmp_path / "undo-1.jsonl")
    first.unlink()  # the user decided to delete it after all
    move_all([later], [keep], tmp_path / "undo-2.jsonl")  # a later run: a different photo gets keep/<name>
    report = undo_moves(tmp_path / "undo-1.jsonl")  # "can be run again safely"
    assert report.restored == 0
    assert not os.path.lexists(first), "a photo that undo-1 never moved was put at undo-1's path"
    assert_intact({keep / first.name: digests[later]})


def test_link_of_a_relative_symlink_shows_the_photo_it_points_to(tmp_path, photos):
    real = photos[0]
    other = tmp_path / "other" / real.name  # a different photo with the same name as the link target
    other.parent.mkdir()
    shutil.copyfile(photos[1], other)
    digests = {real: sha(real), other: sha(other)}
    alias = real.parent / "alias.jpg"
    alias.symlink_to(real.name)  # relative: alias.jpg -> 100.jpg in the same folder
    keep = tmp_path / "keep"
    assert sort_photo(other, keep, "link", digests[other], None) == (keep / real.name, "linked")
    linked, action = sort_photo(alias, keep, "link", digests[real], None)
    assert_intact(digests)
    assert linked.exists(), "the link in keep/ is dangling"
    assert sha(linked) == digests[real], "the link in keep/ shows a different photo"


# --- found in review: long names, relative symlinks, read-only sources ------------------------------


def test_clashing_names_at_the_length_limit_are_shortened_not_refused(tmp_path, photos):
    long_name = "b" * 251 + ".jpg"  # 255 bytes: the longest name most filesystems allow
    first, second = tmp_path / "x" / long_name, tmp_path / "y" / long_name
    for source, photo in ((first, photos[0]), (second, photos[1])):
        source.parent.mkdir()
        shutil.copyfile(photo, source)
    digests = {first: sha(first), second: sha(second)}
    (one, _), (two, _) = (sort_photo(source, tmp_path / "keep", "copy", digests[source], None) for source in (first, second))
    assert one.name == long_name
    assert two.name.endswith("-1.jpg") and len(os.fsencode(two.name)) == 255
    assert_intact({one: digests[first], two: digests[second], **digests})


def test_moving_a_relative_symlink_keeps_it_pointing_at_the_photo_and_undo_restores_it(tmp_path, photos):
    links = tmp_path / "links"
    links.mkdir()
    link = links / "alias.jpg"
    link.symlink_to(os.path.relpath(photos[0], links))
    digest = sha(photos[0])
    journal_path = tmp_path / "undo.jsonl"
    (moved,) = move_all([link], [tmp_path / "keep"], journal_path)
    assert moved.is_symlink() and sha(moved) == digest
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert link.is_symlink() and sha(link) == digest
    assert_intact({photos[0]: digest})


@pytest.fixture
def read_only_photos(tmp_path, photos):
    """The photos folder seen through a read-only bind mount (root ignores permissions, not mount flags)."""
    view = tmp_path / "read-only"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(photos[0].parent), str(view)], capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode == 0:
        yield [view / photo.name for photo in photos]
        subprocess.run(["umount", str(view)], check=True)
        return
    if mounted:
        subprocess.run(["umount", str(view)], check=True)
    pytest.skip("cannot make a read-only bind mount here (needs root and mount permission)")


def test_a_photo_that_cannot_leave_a_read_only_folder_is_not_duplicated(tmp_path, read_only_photos):
    source = read_only_photos[0]
    digest = sha(source)
    journal = UndoJournal(tmp_path / "undo.jsonl", source.parent)
    with pytest.raises(OSError):
        sort_photo(source, tmp_path / "keep", "move", digest, journal)
    journal.close()
    assert list((tmp_path / "keep").iterdir()) == []
    assert_intact({source: digest})
    report = undo_moves(journal.path)
    assert (report.restored, report.already_restored, report.problems) == (0, 1, [])


# --- interrupted and concurrent runs (issue 12): real processes, a real SIGKILL, a real second filesystem -------------

KEEPTRASH = str(Path(sys.executable).parent / "keeptrash")
BIG_NAME = "big0.tif"


@pytest.fixture(scope="module")
def cull_model(tmp_path_factory) -> Path:
    """A tiny model made the way the train stage makes one, with a feature cache the `keeptrash` processes share."""
    cache = tmp_path_factory.mktemp("feature-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(cache))
        yield train_livec_model(10, 20, cache, tmp_path_factory.mktemp("model") / "model.cbm")


def run_keeptrash(*args, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([KEEPTRASH, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=300)
    assert result.returncode == expect, f"keeptrash {args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def library_with_a_big_photo(folder: Path) -> dict[Path, str]:
    """Two real photos and a 108 MB uncompressed TIFF of a real photo (6000 x 6000): big enough to kill mid-copy."""
    folder.mkdir()
    for name in SIX_NAMES[:2]:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
    with Image.open(LIVEC_IMAGES / SIX_NAMES[2]) as image:
        image.convert("RGB").resize((6000, 6000)).save(folder / BIG_NAME)
    return {path: sha(path) for path in folder.iterdir()}


def stop_mid_copy(command: list, watched: list[Path]) -> tuple[subprocess.Popen, str, int]:
    """Start command and SIGSTOP it as soon as a file about the big photo (a copy of it) in `watched` has some bytes.

    Returns the stopped process, the file's name and its size at that moment.
    """
    process = subprocess.Popen([*map(str, command)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for folder in watched:
            for entry in os.scandir(folder) if folder.is_dir() else ():
                if "big0" in entry.name and entry.is_file(follow_symlinks=False):
                    if entry.stat().st_size > 0:
                        process.send_signal(signal.SIGSTOP)
                        return process, entry.name, os.stat(entry.path).st_size
        if process.poll() is not None:
            pytest.fail(f"{command} ended before the big photo was copied: {process.stderr.read()}")
        time.sleep(0.0005)
    process.kill()
    pytest.fail("the big photo was never copied")


def kill_mid_copy(command: list, watched: list[Path], total: int) -> str:
    process, name, size = stop_mid_copy(command, watched)
    process.kill()  # SIGKILL: no clean-up handler runs
    process.wait()
    process.stderr.close()
    assert size < total, f"the kill was meant to land mid-copy ({name} already had all {total} bytes)"
    return name


def sorted_files(out: Path) -> list[Path]:
    return sorted(path for folder in (out / "keep", out / "trash") if folder.is_dir() for path in folder.iterdir())


def test_kill_during_a_cross_filesystem_move_leaves_no_partial_photo_and_the_rerun_finishes(tmp_path, cull_model):
    before = library_with_a_big_photo(tmp_path / "photos")
    big = tmp_path / "photos" / BIG_NAME
    with tiny_filesystem(tmp_path / "out", "400m") as out:
        command = [KEEPTRASH, "cull", tmp_path / "photos", "--model", cull_model, "--out", out, "--move", "--no-contact-sheet"]
        kill_mid_copy(command, [out / "keep", out / "trash"], big.stat().st_size)
        for path in sorted_files(out):
            if not path.name.startswith("."):
                assert sha(path) in before.values(), f"{path.name} under a photo's name is not a whole photo"
        assert_intact({big: before[big]})  # killed before the original could go
        run_keeptrash(*command[1:])  # the rerun (also: the killed run's lock died with it)
        assert [path.name for path in sorted_files(out) if "big0" in path.name] == [BIG_NAME], "partial or duplicate left"
        assert not any(path.name.startswith(".") for path in sorted_files(out)), "a temporary file was left"
        assert os.listdir(tmp_path / "photos") == []
        assert sorted(sha(path) for path in sorted_files(out)) == sorted(before.values())
        for journal in sorted(out.glob("undo-*.jsonl"), reverse=True):
            run_keeptrash("undo", journal)
        assert_intact(before)
        assert sorted_files(out) == []


def test_kill_during_a_cross_filesystem_undo_leaves_no_partial_photo_and_undo_resumes(tmp_path, cull_model):
    before = library_with_a_big_photo(tmp_path / "photos")
    photos = tmp_path / "photos"
    with tiny_filesystem(tmp_path / "out", "400m") as out:
        run_keeptrash("cull", photos, "--model", cull_model, "--out", out, "--move", "--no-contact-sheet")
        (journal,) = out.glob("undo-*.jsonl")
        (moved_big,) = [path for path in sorted_files(out) if path.name == BIG_NAME]
        kill_mid_copy([KEEPTRASH, "undo", journal], [photos], moved_big.stat().st_size)
        for path in photos.iterdir():
            if not path.name.startswith("."):
                assert sha(path) in before.values(), f"{path.name} in the photo folder is not a whole photo"
        assert_intact({moved_big: before[photos / BIG_NAME]})
        result = run_keeptrash("undo", journal)
        assert "problems 0" in result.stdout
        assert_intact(before)
        assert sorted(os.listdir(photos)) == sorted(path.name for path in before), "a temporary file was left"
        assert sorted_files(out) == []


def test_a_second_run_on_the_same_folders_is_refused_while_the_first_sorts(tmp_path, cull_model):
    before = library_with_a_big_photo(tmp_path / "photos")
    photos = tmp_path / "photos"
    with tiny_filesystem(tmp_path / "out", "400m") as out:
        command = [KEEPTRASH, "cull", photos, "--model", cull_model, "--out", out, "--move", "--no-contact-sheet"]
        more = tmp_path / "more-photos"
        more.mkdir()
        shutil.copyfile(LIVEC_IMAGES / SIX_NAMES[3], more / SIX_NAMES[3])
        first, _, _ = stop_mid_copy(command, [out / "keep", out / "trash"])
        try:
            # Other photos into the same output folder, and the same photos into another: both refused at once.
            for other_photos, other_out in ((more, out), (photos, tmp_path / "other-out")):
                second = run_keeptrash("cull", other_photos, "--model", cull_model, "--out", other_out, "--move", expect=2)
                (line,) = second.stderr.splitlines()
                assert line.startswith("keeptrash: error: ") and "another keeptrash run" in line, line
        finally:
            first.send_signal(signal.SIGCONT)
            code = first.wait(timeout=240)
            errors = first.stderr.read()
            first.stderr.close()
        assert code == 0, errors
        assert not (tmp_path / "other-out" / "keep").exists()
        assert_intact({more / SIX_NAMES[3]: sha(LIVEC_IMAGES / SIX_NAMES[3])})
        (journal,) = out.glob("undo-*.jsonl")
        assert sorted(sha(path) for path in sorted_files(out)) == sorted(before.values())
        assert "restored 3, already in place 0, problems 0" in run_keeptrash("undo", journal).stdout
        assert_intact(before)
        assert sorted_files(out) == []


def partial_name(name: str, digest: str) -> str:
    """The name sorting gives its temporary copy of a photo (named after the photo and its sha256)."""
    return f".{name}.{digest[:16]}{PARTIAL_SUFFIX}"


def test_a_partial_copy_a_killed_run_left_is_resumed_and_only_keeptrash_temporaries_are_cleaned(tmp_path, shm_dir):
    (source,) = shm_photos(shm_dir, 1)
    digest = sha(source)
    out = tmp_path / "out"
    keep = out / "keep"
    keep.mkdir(parents=True)
    data = source.read_bytes()
    partial = keep / partial_name(source.name, digest)
    partial.write_bytes(data[: len(data) // 2])  # what a kill mid-copy leaves
    resumed_inode = partial.stat().st_ino
    stale = keep / partial_name("since-deleted.jpg", "0" * 64)
    stale.write_bytes(b"the first half of a photo the user deleted since")
    strangers = {keep / "notes.keeptrash-partial": b"mine", keep / ".hidden.jpg": b"mine too", keep / "a.jpg": b"photo"}
    for path, content in strangers.items():
        path.write_bytes(content)
    assert sort_photo(source, keep, "copy", digest, None) == (keep / source.name, "copied")
    assert (keep / source.name).stat().st_ino == resumed_inode, "the partial copy was not resumed"
    assert_intact({keep / source.name: digest, source: digest})
    assert not partial.exists()
    remove_stale_partials(out / KEEP, out / TRASH)
    assert not stale.exists()
    assert {path: path.read_bytes() for path in strangers} == strangers


def test_a_partial_copy_with_wrong_bytes_is_not_trusted(tmp_path, shm_dir):
    (source,) = shm_photos(shm_dir, 1)
    digest = sha(source)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / partial_name(source.name, digest)).write_bytes(b"\0" * 70_000)  # e.g. zeros after a power cut
    journal = UndoJournal(tmp_path / "undo.jsonl", shm_dir)
    assert sort_photo(source, keep, "move", digest, journal) == (keep / source.name, "moved")
    journal.close()
    assert_intact({keep / source.name: digest})
    assert sorted(os.listdir(keep)) == [source.name]


@pytest.mark.parametrize("across_filesystems", [False, True], ids=["same-filesystem", "across-filesystems"])
def test_a_photo_changed_after_scoring_is_journaled_as_moved_and_undo_restores_it(tmp_path, request, across_filesystems):
    folder = request.getfixturevalue("shm_dir") if across_filesystems else tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    source = folder / SIX_NAMES[0]
    shutil.copyfile(LIVEC_IMAGES / SIX_NAMES[0], source)
    scored = sha(source)
    with source.open("ab") as handle:  # a sync tool or editor appends between scoring and sorting
        handle.write(b"appended after scoring")
    moved_bytes = sha(source)
    journal_path = tmp_path / "out" / "undo.jsonl"
    journal = UndoJournal(journal_path, folder)
    where, action = sort_photo(source, tmp_path / "out" / "keep", "move", scored, journal)
    journal.close()
    assert action == "moved (its bytes changed after scoring)"
    assert read_journal(journal_path) == [{"from": source, "to": where, "sha256": moved_bytes}]
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert_intact({source: moved_bytes})


def test_undo_finds_the_photos_beside_a_journal_whose_output_folder_was_renamed(tmp_path, photos):
    before, journal_path = clashing_moves(tmp_path, photos)
    (tmp_path / "out").rename(tmp_path / "culled 2024")
    report = undo_moves(tmp_path / "culled 2024" / journal_path.name)
    assert (report.restored, report.already_restored, report.problems) == (len(before), 0, [])
    assert_intact(before)
    assert files_in(tmp_path / "culled 2024" / "keep") == files_in(tmp_path / "culled 2024" / "trash") == []


def test_undo_still_reads_a_journal_of_absolute_paths(tmp_path, photos):
    """Journals written before paths became relative: one absolute (from, to, sha256) line per photo."""
    digest = sha(photos[0])
    moved = tmp_path / "out" / "keep" / photos[0].name
    moved.parent.mkdir(parents=True)
    photos[0].rename(moved)
    journal_path = tmp_path / "out" / "undo-20240101-120000.jsonl"
    journal_path.write_text(json.dumps({"from": str(photos[0]), "to": str(moved), "sha256": digest}) + "\n", encoding="ascii")
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert_intact({photos[0]: digest})


@pytest.mark.parametrize(
    "record",
    [
        {"from": "a.jpg", "to": "../elsewhere/a.jpg"},
        {"from": "a.jpg", "to": "notes/a.jpg"},
        {"from": "../elsewhere/a.jpg", "to": "keep/a.jpg"},
        {"from": "/etc/a.jpg", "to": "keep/a.jpg"},
        {"from": "a.jpg", "to": "/tmp/a.jpg"},
    ],
    ids=["to-leaves-the-output", "to-not-in-keep-or-trash", "from-leaves-the-culled-folder", "from-absolute", "to-absolute"],
)
def test_undo_refuses_a_journal_pointing_outside_what_cull_sorted_before_moving_anything(tmp_path, photos, record):
    before = {path: sha(path) for path in photos[:2]}
    journal_path = tmp_path / "out" / "undo.jsonl"
    moved = move_all(photos[:2], [tmp_path / "out" / "keep"] * 2, journal_path)
    with journal_path.open("a", encoding="ascii") as handle:
        handle.write(json.dumps({**record, "sha256": before[photos[0]]}) + "\n")
    with pytest.raises(KeeptrashError, match=r"line 4\b.*outside"):
        undo_moves(journal_path)
    assert_intact(dict(zip(moved, before.values())))


def test_undo_refuses_a_keep_folder_that_was_replaced_by_a_symlink_to_elsewhere(tmp_path, photos):
    digest = sha(photos[0])
    journal_path = tmp_path / "out" / "undo.jsonl"
    (moved,) = move_all(photos[:1], [tmp_path / "out" / "keep"], journal_path)
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "out" / "keep").rename(elsewhere)
    (tmp_path / "out" / "keep").symlink_to(elsewhere)
    with pytest.raises(KeeptrashError, match="outside"):
        undo_moves(journal_path)
    assert_intact({elsewhere / moved.name: digest})


def test_cull_move_refuses_a_photo_whose_folder_lies_outside_the_culled_folder(tmp_path, photos):
    """Reached through a symlinked folder (cull --follow-links): scored, never moved; a symlinked file's link moves."""
    culled = tmp_path / "culled"
    culled.mkdir()
    (culled / "linkdir").symlink_to(photos[0].parent)
    (culled / "alias.jpg").symlink_to(photos[1])
    before = {path: sha(path) for path in photos}
    journal = UndoJournal(tmp_path / "out" / "undo.jsonl", culled)
    with pytest.raises(SortRefused, match="outside"):
        sort_photo(culled / "linkdir" / photos[0].name, tmp_path / "out" / "keep", "move", before[photos[0]], journal)
    where, action = sort_photo(culled / "alias.jpg", tmp_path / "out" / "keep", "move", before[photos[1]], journal)
    journal.close()
    assert action == "moved" and where.is_symlink() and os.readlink(where) == str(photos[1])
    assert_intact(before)
    assert journal.moves == 1


def test_a_folder_that_cannot_be_locked_is_one_clear_error(tmp_path):
    with pytest.raises(KeeptrashError, match="gone: cannot open the folder to lock it"):
        with exclusive_folders(tmp_path, tmp_path / "gone"):
            pass
    with exclusive_folders(tmp_path):  # the first lock was let go
        with pytest.raises(KeeptrashError, match="another keeptrash run"):
            with exclusive_folders(tmp_path / "."):
                pass


def test_on_a_filesystem_without_hard_links_copies_are_renamed_into_place_and_undo_works(tmp_path, photos, monkeypatch):
    """exFAT and FAT drives refuse hard links (EPERM): the finished copy is renamed into place without replacing."""

    def refuse_hard_links(*args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", refuse_hard_links)
    before = {path: sha(path) for path in photos[:2]}
    keep = tmp_path / "out" / "keep"
    keep.mkdir(parents=True)
    (keep / photos[0].name).write_bytes(b"another photo under this name")
    assert sort_photo(photos[0], keep, "copy", before[photos[0]], None) == (keep / f"{photos[0].stem}-1.jpg", "copied")
    journal_path = tmp_path / "out" / "undo.jsonl"
    (moved,) = move_all(photos[1:2], [keep], journal_path)
    assert sorted(os.listdir(keep)) == sorted([photos[0].name, f"{photos[0].stem}-1.jpg", photos[1].name])
    assert (keep / photos[0].name).read_bytes() == b"another photo under this name"
    assert_intact({keep / f"{photos[0].stem}-1.jpg": before[photos[0]], moved: before[photos[1]]})
    report = undo_moves(journal_path)
    assert (report.restored, report.problems) == (1, [])
    assert_intact(before)
