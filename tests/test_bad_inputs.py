"""The bad-input suite (issue 4): the pipeline stages and `keeptrash cull` / `keeptrash undo` fed damaged inputs.

Every bad input must end in one of two ways, and no input file may change or vanish:

- a one-line error: exit code 2, stderr exactly one line "keeptrash: error: ..." that names the offending file or
  param, and no traceback anywhere;
- a recorded skip while the run goes on: a download-manifest row with status corrupt or missing and a reason, or a
  row of the cull CSV with decision "skipped" and a reason.

Images that are unusual but fine (CMYK, 16-bit, EXIF-rotated, PNG bytes under a .jpg name) must be scored, not
skipped. Each case runs in its own temporary folder through a real entry point: a stage
(`python -m keeptrash.stages.<name>`) or the `keeptrash` console script in a subprocess, or, for cheap cases, the
same main() called in this process (a subprocess costs ~2 s of torch import; see execute_in_process). The runs are
independent, so the module starts them all at once on a thread pool and the tests then inspect the finished runs.
A full disk is a 64 KiB tmpfs (needs root; skipped otherwise).
"""

import contextlib
import copy
import errno
import hashlib
import importlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import multivolumefile
import numpy as np
import pandas as pd
import py7zr
import pytest
import yaml
from catboost import CatBoostClassifier
from PIL import Image

from conftest import AVA_TXT, CHEAP_FEATURES, LIVEC_IMAGES, PARAMS_YAML, REPO, train_livec_model
from keeptrash.metadata.ava import build_metadata
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.store import CACHE_ENV
from keeptrash.io import write_table
from keeptrash.raw import DECODE_CACHE_ENV
from raw_files import write_dng

PYTHON = sys.executable
KEEPTRASH = str(Path(sys.executable).parent / "keeptrash")
ERROR_PREFIX = "keeptrash: error: "
# A run that reads a FIFO or follows a loop would hang: fail it instead.
TIMEOUT_SECONDS = 240
WORKERS = max(2, os.cpu_count() or 2)
# The tiny cull model is trained on these LIVE-C photos (both classes); the libraries below reuse them, so their
# features come from the cache.
TRAINING = pd.read_csv(REPO / "data" / "sample" / "livec" / "labels.csv").sort_values("file").head(10)
TRAINING_NAMES = TRAINING["file"].tolist()
ORIENTATION = 0x0112
ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"


# --- running things and checking that inputs stay as they were --------------------------------------------------


def describe(path: Path) -> tuple:
    """One directory entry, without following symlinks or opening anything but regular files (FIFOs would block)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return ("symlink", os.readlink(path))
    if stat.S_ISREG(mode):
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    if stat.S_ISDIR(mode):
        return ("folder",)
    if stat.S_ISFIFO(mode):
        return ("fifo",)
    return ("other", stat.S_IFMT(mode))


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every entry at and below roots: a file by its sha256, a symlink by its target, anything else by its type."""
    entries = {}
    for root in roots:
        if not os.path.lexists(root):
            entries[str(root)] = ("absent",)
            continue
        entries[str(root)] = describe(root)
        if stat.S_ISDIR(os.lstat(root).st_mode):
            for folder, folders, files in os.walk(root):
                for name in folders + files:
                    entries[os.path.join(folder, name)] = describe(Path(folder, name))
    return entries


@dataclass
class Run:
    commands: list[list[str]]
    cwd: Path
    # Files and folders that must be byte-for-byte the same afterwards (a whole case folder: nothing added either).
    inputs: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    # Call the command's own main() in this process instead of a subprocess (see execute_in_process).
    in_process: bool = False


@dataclass
class Outcome:
    run: Run | None = None
    results: list[subprocess.CompletedProcess] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    skip: str = ""  # the environment cannot host this case (no tmpfs)
    setup_error: str = ""

    @property
    def last(self) -> subprocess.CompletedProcess:
        return self.results[-1]


def execute(run: Run, base_env: dict[str, str]) -> Outcome:
    """Run the commands one after another in subprocesses (stopping at the first failure), inputs hashed around them."""
    before = snapshot(*run.inputs)
    results = []
    for command in run.commands:
        try:
            result = subprocess.run(
                command, cwd=run.cwd, env={**base_env, **run.env}, capture_output=True, text=True,
                errors="replace", timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            result = subprocess.CompletedProcess(command, -9, "", f"timed out after {TIMEOUT_SECONDS} s (a hang)")
        results.append(result)
        if result.returncode != 0:
            break
    return Outcome(run, results, before, snapshot(*run.inputs))


def execute_in_process(run: Run, env: dict[str, str]) -> Outcome:
    """The command's own main() (a stage's, or keeptrash.cli's) in this process, in the run's folder, output captured.

    This is what `python -m keeptrash.stages.X` or the `keeptrash` script runs, minus the interpreter start (which
    costs a torch import, ~2 s, per case): exits_cleanly turns a KeeptrashError into the one line and exit 2 just as
    in a subprocess, and anything else escapes it and is recorded as the traceback a user would see.
    It changes the working folder, sys.argv and the environment, so it is only called from the main thread.
    """
    (command,) = run.commands
    if command[0] == KEEPTRASH:
        module, argv = "keeptrash.cli", ["keeptrash", *command[1:]]
    else:
        module, argv = command[-1], [command[-1]]
    before = snapshot(*run.inputs)
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    previous = os.getcwd()
    os.chdir(run.cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", argv)
            for name, value in {**env, **run.env}.items():
                patch.setenv(name, value)
            try:
                importlib.import_module(module).main()
            except SystemExit as exit:
                code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(previous)
    result = subprocess.CompletedProcess(command, code, stdout.getvalue(), stderr.getvalue())
    return Outcome(run, [result], before, snapshot(*run.inputs))


def shown(result: subprocess.CompletedProcess) -> str:
    command = " ".join(map(str, result.args))
    return f"{command}\nexit {result.returncode}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"


def assert_one_line_error(result: subprocess.CompletedProcess, names: tuple[str, ...]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, shown(result)
    assert result.returncode == 2, shown(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"stderr must be exactly one line:\n{shown(result)}"
    assert lines[0].startswith(ERROR_PREFIX), shown(result)
    for name in names:
        assert name in lines[0], f"the error should name {name!r}: {lines[0]}"


def assert_inputs_unchanged(outcome: Outcome, outputs_allowed: bool = False) -> None:
    """Every entry is as it was (sha256 of files, symlink targets) and none is gone; nothing new unless allowed."""
    paths = set(outcome.before) if outputs_allowed else set(outcome.before) | set(outcome.after)
    changed = sorted(path for path in paths if outcome.before.get(path) != outcome.after.get(path))
    assert not changed, f"changed, removed or left behind: {changed[:10]}"


def finished(outcomes: dict[str, Outcome], run_id: str) -> Outcome:
    outcome = outcomes[run_id]
    if outcome.skip:
        pytest.skip(outcome.skip)
    if outcome.setup_error:
        pytest.fail(f"setting up {run_id} failed:\n{outcome.setup_error}")
    return outcome


# --- building inputs -----------------------------------------------------------------------------------------------


class Skip(Exception):
    """This case cannot be set up here; the reason is shown as the test's skip reason."""


@dataclass
class Context:
    root: Path
    cache: Path
    params: dict  # the repo's params.yaml at the start of the run
    images: dict[str, bytes] = field(default_factory=dict)
    metadata_parquet: Path | None = None
    model: Path | None = None
    plain_model: Path | None = None
    mounts: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, CACHE_ENV: str(self.cache), DECODE_CACHE_ENV: str(self.root / "raw-decodes")}

    def mount_tmpfs(self, folder: Path, fill: bool, options: str = "size=64k") -> None:
        """A 64 KiB tmpfs (or one with other mount options) at folder, filled to the last byte when asked: a full disk."""
        folder.mkdir(parents=True, exist_ok=True)
        try:
            command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            raise Skip(f"cannot run mount to make a full disk: {error}") from None
        if result.returncode != 0:
            raise Skip(f"cannot mount a 64 KiB tmpfs to play a full disk (needs root): {result.stderr.strip()}")
        self.mounts.append(folder)
        if fill:
            handle = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(handle, b"\0" * 4096)
            except OSError as error:
                assert error.errno == errno.ENOSPC
            finally:
                os.close(handle)


def livec(name: str) -> Image.Image:
    with Image.open(LIVEC_IMAGES / name) as image:
        return image.convert("RGB")


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def make_images() -> dict[str, bytes]:
    """The regular files of the bad-photo folder (name -> bytes), made from real LIVE-C photos."""
    colour, upright = livec(TRAINING_NAMES[1]), livec(TRAINING_NAMES[2]).crop((0, 0, 500, 320))
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # what phones write: pixels stored sideways, "rotate 90 CW to view"
    whole = (LIVEC_IMAGES / TRAINING_NAMES[0]).read_bytes()
    grey16 = Image.fromarray(np.asarray(colour.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    assert grey16.mode == "I;16"
    # 20000 x 20000 = 400 MP, over both the pipeline's and the cull's pixel limit, yet ~50 kB on disk.
    bomb = encoded(Image.new("1", (20000, 20000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    return {
        "control-rgb.jpg": (LIVEC_IMAGES / TRAINING_NAMES[1]).read_bytes(),
        "control-upright.jpg": encoded(upright, "JPEG", quality=92),
        "truncated.jpg": whole[: len(whole) // 3],
        "empty.jpg": b"",
        "notes.jpg": b"holiday notes: buy film, charge batteries\n",
        "page.png": b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n",
        "bomb.png": bomb,
        "cmyk.jpg": encoded(colour.convert("CMYK"), "JPEG", quality=92),
        "scan-16bit.png": encoded(grey16, "PNG"),
        "phone-rotated.jpg": encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=exif),
        "really-a-png.jpg": encoded(livec(TRAINING_NAMES[3]), "PNG"),
        "one-pixel.png": encoded(Image.new("RGB", (1, 1), (200, 120, 40)), "PNG"),
    }


def populate_bad_folder(folder: Path, images: dict[str, bytes], file_loop: bool) -> None:
    """The bad photos, the two controls, and the special entries: a folder, a FIFO and symlinks named like photos."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (folder / name).write_bytes(data)
    (folder / "folder.jpg").mkdir()
    shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[4], folder / "folder.jpg" / "inside.jpg")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "dangling.jpg").symlink_to("no-such-photo.jpg")
    (folder / "loop").symlink_to(".")  # a folder that contains itself
    if file_loop:
        (folder / "loop-a.jpg").symlink_to("loop-b.jpg")
        (folder / "loop-b.jpg").symlink_to("loop-a.jpg")


def ava_lines() -> list[str]:
    with AVA_TXT.open(encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(20)]


def replace_field(line: str, index: int, value: str) -> str:
    fields = line.split()
    fields[index] = value
    return " ".join(fields)


def stage_folder(folder: Path, ctx: Context, changes: dict | None = None) -> Path:
    """A working folder for the stages: the repo's params.yaml, pointed at small real AVA inputs in inp/.

    labels: no AVA photos, own photos from data/own (empty keep/ and trash/), no ratings CSV. `changes` maps
    "section.key" to a new value (or None to delete the key; "section" alone with None deletes the section).
    """
    inp = folder / "inp"
    inp.mkdir(parents=True)
    lines = ava_lines()
    (inp / "AVA.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copyfile(REPO / "data" / "ava" / "tags.txt", inp / "tags.txt")
    shutil.copyfile(REPO / "data" / "ava" / "challenges.txt", inp / "challenges.txt")
    ids = [line.split()[1] for line in lines]
    (inp / "train.jpgl").write_text("\n".join(ids[:5]) + "\n", encoding="utf-8")
    (inp / "test.jpgl").write_text("\n".join(ids[5:8]) + "\n", encoding="utf-8")
    (folder / "data" / "own" / "keep").mkdir(parents=True)
    (folder / "data" / "own" / "trash").mkdir()
    params = copy.deepcopy(ctx.params)
    params["metadata"].update(
        votes_files=["inp/AVA.txt"], tags_file="inp/tags.txt", challenges_file="inp/challenges.txt",
        official_train_list="inp/train.jpgl", official_test_list="inp/test.jpgl",
    )
    params["labels"].update(max_ava=0, ava_pool="all", own_dir="data/own", rated_own_csv="")
    params["download"].update(source="folder", folder="data/own")
    params["features"].update(batch_size=16, device="cpu", **CHEAP_FEATURES)
    for name, value in (changes or {}).items():
        section, _, key = name.partition(".")
        if not key:
            del params[section]
        elif value is None:
            del params[section][key]
        else:
            params[section][key] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


def stage(name: str) -> list[str]:
    return [PYTHON, "-m", f"keeptrash.stages.{name}"]


def write_input(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def library(folder: Path, names=TRAINING_NAMES[:2]) -> Path:
    photos = folder / "photos"
    photos.mkdir(parents=True)
    for name in names:
        shutil.copyfile(LIVEC_IMAGES / name, photos / name)
    return photos


# --- cases that must end in one clear line -------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCase:
    id: str
    build: Callable[[Path, Context], Run]
    # The error line must contain each of these: the file (and line) or param, and what is wrong with it.
    names: tuple[str, ...]
    needs_model: bool = False
    # Call the command's main() in this process rather than in a subprocess (see execute_in_process).
    in_process: bool = False
    # Extra checks after the error (for example that the photos named on stdout were left in place).
    check: Callable[[Outcome], None] | None = None
    # When the run succeeds instead: the checks that it handled the input exactly (else the case fails).
    if_accepted: Callable[[Outcome], None] | None = None


def metadata_case(lines: Callable[[list[str]], list[str]] | None = None, files: dict | None = None, **changes):
    """Run the metadata stage on inp/AVA.txt with its 20 real lines edited by `lines`, plus extra files in inp/."""

    def build(folder: Path, ctx: Context) -> Run:
        stage_folder(folder, ctx, changes)
        if lines is not None:
            write_input(folder / "inp" / "AVA.txt", "\n".join(lines(ava_lines())) + "\n")
        for name, content in (files or {}).items():
            write_input(folder / "inp" / name, content)
        return Run([stage("metadata")], folder, [folder])

    return build


def edit_line(number: int, edit: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        lines[number - 1] = edit(lines[number - 1])
        return lines

    return apply


def zero_votes(line: str) -> str:
    fields = line.split()
    return " ".join(fields[:2] + ["0"] * 10 + fields[12:])


def duplicate_first_id(lines: list[str]) -> list[str]:
    # Line 21: the id of line 1 again, with different votes.
    return lines + [replace_field(replace_field(lines[0], 0, "999"), 6, "99")]


def exact_huge_vote_count(outcome: Outcome) -> None:
    table = pd.read_parquet(outcome.run.cwd / "data" / "metadata.parquet").set_index("image_id")
    assert table.loc["953417", "votes_1"] == 3_000_000_000, "the vote count was stored wrapped around"
    assert table.loc["953417", "n_votes"] == 3_000_000_124


def params_case(stage_name: str, edit: Callable[[Path], None]):
    def build(folder: Path, ctx: Context) -> Run:
        stage_folder(folder, ctx)
        edit(folder / "params.yaml")
        return Run([stage(stage_name)], folder, [folder])

    return build


def set_param(section: str, key: str | None, value) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        if key is None:
            del params[section]
        else:
            params[section][key] = value
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    return edit


def break_yaml(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\ntrain:\n", "\ntrain:\n  depth: [6, 8\n", 1), encoding="utf-8")


def latin1_comment(path: Path) -> None:
    # A comment saved by an editor in Latin-1: "réglages" with a bare 0xe9 byte.
    path.write_bytes(b"# r\xe9glages\n" + path.read_bytes())


def labels_case(ratings: str | bytes | None = None, **changes):
    """Run the labels stage on a real (small) metadata table, with a ratings CSV in data/rated/ when given."""

    def build(folder: Path, ctx: Context) -> Run:
        settings = {"labels.rated_own_csv": "data/rated/ratings.csv"} if ratings is not None else {}
        stage_folder(folder, ctx, settings | changes)
        shutil.copyfile(ctx.metadata_parquet, folder / "data" / "metadata.parquet")
        if ratings is not None:
            write_input(folder / "data" / "rated" / "ratings.csv", ratings)
            library(folder / "data" / "rated", TRAINING_NAMES[:2])  # data/rated/photos/<name>
        return Run([stage("labels")], folder, [folder])

    return build


def decisions_case(text: str | None, listed: str = "data/own/decisions/mine.csv", **changes):
    """Run the labels stage with labels.own_decisions = [listed], that file holding text (none when text is None)."""

    def build(folder: Path, ctx: Context) -> Run:
        stage_folder(folder, ctx, {"labels.own_decisions": [listed]} | changes)
        shutil.copyfile(ctx.metadata_parquet, folder / "data" / "metadata.parquet")
        library(folder / "data" / "own" / "keep", TRAINING_NAMES[:2])
        if text is not None:
            write_input(folder / listed, text)
        return Run([stage("labels")], folder, [folder])

    return build


def cull_case(*args: str, model: Callable[[Path, Context], Path] | None = None):
    """`keeptrash cull FOLDER ARGS` on a small library; {photos}, {folder} and {model} in args are filled in."""

    def build(folder: Path, ctx: Context) -> Run:
        photos = library(folder)
        model_path = model(folder, ctx) if model else ctx.model
        filled = [arg.format(photos=photos, folder=folder, model=model_path) for arg in args]
        command = [KEEPTRASH, "cull", *filled]
        if "--model" not in filled:
            command += ["--model", str(model_path)]
        if "--out" not in filled:
            command += ["--out", str(folder / "out")]
        return Run([command], folder, [folder, ctx.model])

    return build


def garbage_model(folder: Path, ctx: Context) -> Path:
    path = folder / "garbage.cbm"
    path.write_text("this is a shopping list, not a model\n", encoding="utf-8")
    return path


def half_model(folder: Path, ctx: Context) -> Path:
    path = folder / "half.cbm"
    data = ctx.model.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def undo_case(state: str):
    """A journal from an earlier `cull --move` of photos/a.jpg to out/keep/a.jpg, then something went wrong.

    corrupt: a second journal line is garbage (a valid record precedes it, so nothing may move before the check);
    changed: the photo at out/keep/a.jpg was edited since the move (its bytes no longer match the journal);
    taken: a different photo now has the original name photos/a.jpg.
    """

    def build(folder: Path, ctx: Context) -> Run:
        original, moved = folder / "photos" / "a.jpg", folder / "out" / "keep" / "a.jpg"
        original.parent.mkdir(parents=True)
        moved.parent.mkdir(parents=True)
        shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[0], moved)
        digest = hashlib.sha256(moved.read_bytes()).hexdigest()
        record = json.dumps({"from": str(original), "to": str(moved), "sha256": digest})
        journal = folder / "out" / "undo-20240101-120000.jsonl"
        if state == "corrupt":
            journal.write_text(record + "\n{\"from\": \"/tmp/x.jpg\", \"to\": \n", encoding="ascii")
        else:
            journal.write_text(record + "\n", encoding="ascii")
        if state == "changed":
            shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[1], moved)
        if state == "taken":
            shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[1], original)
        return Run([[KEEPTRASH, "undo", str(journal)]], folder, [folder])

    return build


def stdout_names(*words: str) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        for word in words:
            assert word.format(folder=outcome.run.cwd) in outcome.last.stdout, shown(outcome.last)

    return check


def full_disk_stage(folder: Path, ctx: Context) -> Run:
    stage_folder(folder, ctx)
    ctx.mount_tmpfs(folder / "data", fill=True)
    return Run([stage("metadata")], folder, [folder])


def full_disk_cull_out(folder: Path, ctx: Context) -> Run:
    photos = library(folder)
    ctx.mount_tmpfs(folder / "out", fill=True)
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out")]
    return Run([command], folder, [folder, ctx.model])


def full_disk_cache(folder: Path, ctx: Context) -> Run:
    photos = library(folder)
    ctx.mount_tmpfs(folder / "cache", fill=True)
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out")]
    return Run([command], folder, [photos, ctx.model], env={CACHE_ENV: str(folder / "cache")})


def only_empty_folders_besides_filler(folder: str) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        root = outcome.run.cwd / folder
        files = [path for path in root.rglob("*") if not path.is_dir() and path.name != "filler"]
        assert not files, f"left behind on the full disk: {files}"
        out = outcome.run.cwd / "out"
        assert not out.exists() or not any(path.is_file() for path in out.rglob("*")), "nothing was scored: no output"

    return check


# --- issue 12 (training data, parsers, params, model metadata): builders for the cases at the end of ERROR_CASES ---

SAMPLE_AVA = REPO / "data" / "sample" / "ava" / "images"
# For cases whose run must succeed and record the input: no error line can contain this.
MUST_SUCCEED = ("(this run must succeed and record what it found)",)


def alias_bomb(path: Path) -> None:
    """Aliases of aliases, nine at each of 8 levels (43 million values once expanded), used as train.depth."""
    lines = ['lol0: &lol0 "lol"'] + [
        f"lol{level}: &lol{level} [{', '.join([f'*lol{level - 1}'] * 9)}]" for level in range(1, 9)
    ]
    text = path.read_text(encoding="utf-8").replace("\ntrain:\n", "\ntrain:\n  depth: *lol8\n", 1)
    path.write_text("\n".join(lines) + "\n" + text.replace("  depth: 2\n", "", 1), encoding="utf-8")


def tampered_model(field: str, value: str) -> Callable[[Path, Context], Path]:
    """The tiny trained model with one metadata field edited, as a hand or a broken copy might."""

    def build(folder: Path, ctx: Context) -> Path:
        model = CatBoostClassifier()
        model.load_model(str(ctx.model))
        model.get_metadata()[field] = value
        path = folder / "tampered.cbm"
        model.save_model(str(path))
        return path

    return build


def stages_case(names: tuple[str, ...], setup: Callable[[Path], list[Path]], **changes):
    """The given stages in order on the small real metadata table; setup(folder) adds inputs, returns what must not change."""

    def build(folder: Path, ctx: Context) -> Run:
        stage_folder(folder, ctx, changes)
        shutil.copyfile(ctx.metadata_parquet, folder / "data" / "metadata.parquet")
        inputs = setup(folder)
        return Run([stage(name) for name in names], folder, [*inputs, folder / "params.yaml"])

    return build


def truncated_volumes(folder: Path) -> list[Path]:
    """The shipped AVA photos as a 7z in ~150 kB volumes, the last one cut short (an interrupted download)."""
    archives = folder / "inp" / "archives"
    archives.mkdir()
    with multivolumefile.open(archives / "AVA_dataset.7z", mode="wb", volume=150_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            for photo in sorted(SAMPLE_AVA.glob("*.jpg")):
                seven_zip.write(photo, f"AVA_dataset/images/{photo.name}")
    last = sorted(archives.iterdir())[-1]
    last.write_bytes(last.read_bytes()[:100])
    return [archives]


def sparse_ava_folder(folder: Path) -> list[Path]:
    """A 30 GB sparse <id>.jpg for every AVA id (only its size is checked: the harness must not hash it either)."""
    images = folder / "inp" / "ava"
    images.mkdir()
    for line in ava_lines():
        subprocess.run(["truncate", "-s", "30G", str(images / f"{line.split()[1]}.jpg")], check=True)
    return []


def sparse_files_recorded_too_large(outcome: Outcome) -> None:
    manifest = pd.read_parquet(outcome.run.cwd / "data" / "manifest.parquet")
    assert len(manifest) == 5 and (manifest["status"] == "corrupt").all(), manifest
    assert manifest["reason"].str.startswith("too large: 32212254720 bytes").all(), manifest["reason"].tolist()
    sizes = {path.stat().st_size for path in (outcome.run.cwd / "inp" / "ava").iterdir()}
    assert sizes == {30 * 1024**3}


def linked_folder_in_own_dir(folder: Path) -> list[Path]:
    elsewhere = library(folder / "elsewhere")
    keep = folder / "data" / "own" / "keep"
    (keep / "holiday.jpg").symlink_to(elsewhere, target_is_directory=True)
    shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[2], keep / "fine.jpg")
    return [folder / "data" / "own", elsewhere]


def linked_folder_recorded(outcome: Outcome) -> None:
    manifest = pd.read_parquet(outcome.run.cwd / "data" / "manifest.parquet").set_index("path")
    row = manifest.loc["data/own/keep/holiday.jpg"]
    assert row["status"] == "corrupt" and "symlink to a folder" in row["reason"], row["reason"]
    assert manifest.loc["data/own/keep/fine.jpg", "status"] == "ok"


def rated_photos_copied_into_trash(folder: Path) -> list[Path]:
    """The issue's case: rated photos copied under new names into own_dir/trash (and rated as keep)."""
    rated = folder / "data" / "rated"
    library(rated, TRAINING_NAMES[:3])
    ratings = "".join(f"photos/{name},{score}\n" for name, score in zip(TRAINING_NAMES[:3], (80, 80, 20)))
    write_input(rated / "ratings.csv", "path,score\n" + ratings)
    for name in TRAINING_NAMES[:2]:
        shutil.copyfile(LIVEC_IMAGES / name, folder / "data" / "own" / "trash" / f"copy-of-{name}")
    return [folder / "data" / "own", rated]


def duplicates_labelled_once(outcome: Outcome) -> None:
    data = outcome.run.cwd / "data"
    labels = pd.read_parquet(data / "labels.parquet").set_index("path")
    contents = [hashlib.sha256((outcome.run.cwd / path).read_bytes()).hexdigest() for path in labels.index]
    assert len(set(contents)) == len(contents) == 3  # each photo once, so in one split
    assert {path: labels.loc[path, "label"] for path in labels.index if "copy-of-" in path} == {
        f"data/own/trash/copy-of-{name}": 0 for name in TRAINING_NAMES[:2]
    }  # the folder label decided over the rating
    summary = json.loads((outcome.run.cwd / "metrics" / "labels.json").read_text(encoding="utf-8"))
    assert summary["duplicates"] == {"rows_dropped": 2, "conflicts_settled_by_folder": 2, "conflicting_photos_dropped": 0}
    assert "the folder label decides over the rating" in outcome.last.stdout


def raw_own_photos(folder: Path) -> list[Path]:
    """Own photos shot in RAW: a DNG with an embedded preview, one without (decoded), and one cut short."""
    keep, trash = folder / "data" / "own" / "keep", folder / "data" / "own" / "trash"
    write_dng(livec(TRAINING_NAMES[3]).resize((1200, 1200)), keep / "IMG_0001.DNG", preview_side=1024)
    write_dng(livec(TRAINING_NAMES[4]).resize((1200, 1200)), trash / "IMG_0002.dng", preview_side=None)
    cut = write_dng(livec(TRAINING_NAMES[5]), trash / "IMG_0003.nef.dng", preview_side=None)
    cut.write_bytes(cut.read_bytes()[:3000])
    return [folder / "data" / "own"]


def raw_own_photos_used(outcome: Outcome) -> None:
    manifest = pd.read_parquet(outcome.run.cwd / "data" / "manifest.parquet").set_index("path")
    assert manifest.loc[["data/own/keep/IMG_0001.DNG", "data/own/trash/IMG_0002.dng"], "status"].eq("ok").all()
    assert manifest.loc["data/own/keep/IMG_0001.DNG", "width"] == 1200
    cut = manifest.loc["data/own/trash/IMG_0003.nef.dng"]
    assert cut["status"] == "corrupt" and "LibRaw: " in cut["reason"] and "\n" not in cut["reason"], cut["reason"]
    features = pd.read_parquet(outcome.run.cwd / "data" / "features.parquet")
    own = manifest[manifest["source"] == "own"]
    assert set(own.loc[own["status"] == "ok", "key"]) <= set(features["key"])


ERROR_CASES = [
    # AVA metadata, through the metadata stage.
    ErrorCase("ava-wrong-column-count", metadata_case(edit_line(3, lambda line: " ".join(line.split()[:14]))),
              ("inp/AVA.txt:3", "expected 15 columns")),
    ErrorCase("ava-non-numeric-votes", metadata_case(edit_line(2, lambda line: replace_field(line, 5, "many")),),
              ("inp/AVA.txt:2", "whole numbers", "many"), in_process=True),
    ErrorCase("ava-negative-votes", metadata_case(edit_line(2, lambda line: replace_field(line, 7, "-3"))),
              ("inp/AVA.txt:2", "must not be negative"), in_process=True),
    ErrorCase("ava-all-zero-votes", metadata_case(edit_line(4, zero_votes)), ("inp/AVA.txt:4", "zero"),
              in_process=True),
    ErrorCase("ava-duplicate-id-conflicting-votes", metadata_case(duplicate_first_id),
              ("inp/AVA.txt:21", "duplicate image id 953417"), in_process=True),
    ErrorCase(
        "ava-conflicting-votes-across-files",
        metadata_case(files={"AVA.json": json.dumps([{"image_id": "953417", "label": [1] * 10}])},
                      **{"metadata.votes_files": ["inp/AVA.txt", "inp/AVA.json"]}),
        ("image id 953417", "inp/AVA.txt:1", "inp/AVA.json"), in_process=True,
    ),
    ErrorCase("ava-unknown-tag-id", metadata_case(edit_line(1, lambda line: replace_field(line, 12, "999"))),
              ("inp/tags.txt", "tag id 999"), in_process=True),
    ErrorCase("ava-unknown-challenge-id", metadata_case(edit_line(1, lambda line: replace_field(line, 14, "99999"))),
              ("inp/challenges.txt", "challenge id 99999"), in_process=True),
    ErrorCase(
        "ava-empty-file", metadata_case(files={"AVA.txt": ""}), ("inp/AVA.txt",),
    ),
    ErrorCase("ava-not-utf8",
              metadata_case(files={"AVA.txt": "\n".join(ava_lines()[:4]).encode() + b"\n5 95\xe9417 0\n"}),
              ("inp/AVA.txt", "not UTF-8"), in_process=True),
    ErrorCase("ava-missing-file", metadata_case(**{"metadata.votes_files": ["inp/AVA-full.txt"]}),
              ("inp/AVA-full.txt", "not found"), in_process=True),
    ErrorCase(
        "ava-json-malformed",
        metadata_case(files={"AVA.json": '[{"image_id": "953417", "label": [0, 0, 0, 5, 32,'},
                      **{"metadata.votes_files": ["inp/AVA.json"]}),
        ("inp/AVA.json", "not valid JSON"), in_process=True,
    ),
    ErrorCase(
        "ava-vote-count-over-int32", metadata_case(edit_line(1, lambda line: replace_field(line, 2, "3000000000"))),
        ("inp/AVA.txt:1",), if_accepted=exact_huge_vote_count,
    ),
    ErrorCase(
        "ava-vote-count-over-int64",
        metadata_case(edit_line(1, lambda line: replace_field(line, 2, "99999999999999999999"))), ("inp/AVA.txt:1",),
    ),
    # params.yaml, each through a different stage: every stage checks the whole file first.
    ErrorCase("params-wrong-type", params_case("train", set_param("train", "depth", "six")),
              ("params.yaml", "train.depth", "'six'")),
    ErrorCase("params-out-of-range", params_case("labels", set_param("labels", "max_ava", -5)),
              ("params.yaml", "labels.max_ava", "-5")),
    ErrorCase("params-unknown-backbone", params_case("features", set_param("features", "backbone", "vgg16")),
              ("params.yaml", "features.backbone", "vgg16")),
    ErrorCase("params-missing-section", params_case("download", set_param("download", None, None)),
              ("params.yaml", "section 'download'")),
    ErrorCase("params-invalid-yaml", params_case("metadata", break_yaml), ("params.yaml", "not valid YAML")),
    ErrorCase(
        "params-not-utf8", params_case("metadata", latin1_comment), ("params.yaml",),
    ),
    # labels: the own-photos folder and the ratings CSV.
    ErrorCase("own-photos-folder-missing", labels_case(**{"labels.own_dir": "data/photos-of-mine"}),
              ("data/photos-of-mine", "labels.own_dir"), in_process=True),
    ErrorCase("ratings-csv-missing-columns", labels_case("file,rating\nphotos/100.jpg,70\n"),
              ("data/rated/ratings.csv", "'score'"), in_process=True),
    ErrorCase("ratings-csv-non-numeric-score",
              labels_case(f"path,score\nphotos/{TRAINING_NAMES[0]},70\nphotos/{TRAINING_NAMES[1]},very good\n"),
              ("data/rated/ratings.csv:3", "'very good'"), in_process=True),
    ErrorCase(
        "ratings-csv-empty-file", labels_case(""), ("data/rated/ratings.csv",),
    ),
    ErrorCase("ratings-csv-missing-file", labels_case(**{"labels.rated_own_csv": "data/rated/ratings-2024.csv"}),
              ("data/rated/ratings-2024.csv", "not found"), in_process=True),
    # keeptrash cull and undo.
    ErrorCase("cull-folder-missing", cull_case("{folder}/no-such-folder"), ("no-such-folder", "not a folder"),
              needs_model=True, in_process=True),
    ErrorCase("cull-out-is-a-file", lambda folder, ctx: _out_is_a_file(folder, ctx), ("results", "output folder"),
              needs_model=True),
    ErrorCase("cull-model-missing", cull_case("{photos}", "--model", "{folder}/none.cbm"),
              ("none.cbm", "model not found"), needs_model=True, in_process=True),
    ErrorCase("cull-model-not-a-model", cull_case("{photos}", model=garbage_model),
              ("garbage.cbm", "not a CatBoost model"), needs_model=True),
    ErrorCase("cull-model-truncated", cull_case("{photos}", model=half_model), ("half.cbm", "not a CatBoost model"),
              needs_model=True),
    ErrorCase("cull-model-not-from-keeptrash", cull_case("{photos}", model=lambda folder, ctx: ctx.plain_model),
              ("plain.cbm", "lacks backbone"), needs_model=True),
    ErrorCase(
        "cull-threshold-out-of-range", cull_case("{photos}", "--threshold", "1.5"), ("--threshold", "1.5"),
        needs_model=True,
    ),
    # Cull's flags build the feature settings through params.yaml's declarations, so an out-of-range one reads the same.
    ErrorCase(
        "cull-batch-size-out-of-range", cull_case("{photos}", "--batch-size", "5000"),
        ("keeptrash cull", "features.batch_size", "1 to 4096", "5000"), needs_model=True,
    ),
    ErrorCase("undo-corrupt-manifest", undo_case("corrupt"), ("undo-20240101-120000.jsonl", "line 2"),
              in_process=True),
    ErrorCase("undo-photo-changed-since-move", undo_case("changed"), ("1 photos or sidecars could not be restored",),
              in_process=True,
              check=stdout_names("{folder}/photos/a.jpg", "{folder}/out/keep/a.jpg is no longer the photo moved")),
    ErrorCase("undo-original-name-taken", undo_case("taken"), ("1 photos or sidecars could not be restored",), in_process=True,
              check=stdout_names("{folder}/photos/a.jpg", "another file now has this name")),
    # A full disk (a 64 KiB tmpfs filled to the last byte).
    ErrorCase("disk-full-stage-output", full_disk_stage, ("data/metadata.parquet", ENOSPC_TEXT)),
    ErrorCase("disk-full-cull-out", full_disk_cull_out, ("contact_sheet.html", ENOSPC_TEXT), needs_model=True),
    # Cull runs the backbone on ONNX Runtime, so the first thing it writes into the cache is the exported model.
    ErrorCase("disk-full-feature-cache", full_disk_cache, ("cache/exported/", ".onnx", ENOSPC_TEXT), needs_model=True,
              check=only_empty_folders_besides_filler("cache")),
    # issue 12 (training data, parsers, params, model metadata).
    ErrorCase("ava-image-id-2-to-the-70", metadata_case(edit_line(1, lambda line: replace_field(line, 1, str(2**70)))),
              ("inp/AVA.txt:1", f"image id {2**70}"), in_process=True),
    ErrorCase("params-yaml-alias-bomb", params_case("metadata", alias_bomb), ("params.yaml", "aliases")),
    ErrorCase("ratings-csv-path-outside-its-folder", labels_case("path,score\n../../../etc/shadow,50\n"),
              ("data/rated/ratings.csv:2", "'../../../etc/shadow'", "labels.allow_paths_outside_csv"), in_process=True),
    ErrorCase("ratings-csv-nan-score", labels_case(f"path,score\nphotos/{TRAINING_NAMES[0]},nan\n"),
              ("data/rated/ratings.csv:2", "'nan', which is not a number"), in_process=True),
    ErrorCase(
        "labels-identical-photos-rated-and-in-trash",
        stages_case(("labels",), rated_photos_copied_into_trash, **{"labels.rated_own_csv": "data/rated/ratings.csv"}),
        MUST_SUCCEED, in_process=True, if_accepted=duplicates_labelled_once,
    ),
    ErrorCase(
        "own-dir-raw-photos", stages_case(("labels", "download", "features"), raw_own_photos), MUST_SUCCEED,
        if_accepted=raw_own_photos_used,
    ),
    ErrorCase(
        "own-dir-jpg-symlink-to-a-folder", stages_case(("labels", "download"), linked_folder_in_own_dir), MUST_SUCCEED,
        if_accepted=linked_folder_recorded,
    ),
    # A rule of download.source fails the first stage that runs (labels), not the download stage after it.
    ErrorCase(
        "download-mega-without-url",
        stages_case(("labels", "download"), lambda folder: [], **{"download.source": "mega", "download.mega_url": "",
                                                                    "download.archives_dir": "inp/archives"}),
        ("params.yaml", "download.mega_url is empty", "public MEGA folder link"),
    ),
    ErrorCase(
        "archives-last-volume-truncated",
        stages_case(("labels", "download"), truncated_volumes, **{"labels.max_ava": 5, "download.source": "archives",
                                                                   "download.archives_dir": "inp/archives"}),
        ("inp/archives/AVA_dataset.7z.0", "damaged or incomplete 7z archive", "fetch again"),
    ),
    ErrorCase(
        "download-folder-30gb-sparse-jpg",
        stages_case(("labels", "download"), sparse_ava_folder, **{"labels.max_ava": 5, "download.folder": "inp/ava"}),
        MUST_SUCCEED, if_accepted=sparse_files_recorded_too_large,
    ),
    ErrorCase("model-metadata-threshold-not-a-number", cull_case("{photos}", model=tampered_model("decision_threshold", "abc")),
              ("tampered.cbm", "decision_threshold", "'abc'"), needs_model=True, in_process=True),
    ErrorCase("model-metadata-threshold-nan", cull_case("{photos}", model=tampered_model("decision_threshold", "nan")),
              ("tampered.cbm", "decision_threshold", "'nan'"), needs_model=True, in_process=True),
    ErrorCase("model-metadata-threshold-2.5", cull_case("{photos}", model=tampered_model("decision_threshold", "2.5")),
              ("tampered.cbm", "decision_threshold", "'2.5'"), needs_model=True, in_process=True),
    ErrorCase("model-metadata-resolution-500px", cull_case("{photos}", model=tampered_model("resolution", "500px")),
              ("tampered.cbm", "resolution", "'500px'"), needs_model=True, in_process=True),
    ErrorCase("model-metadata-resolution-negative", cull_case("{photos}", model=tampered_model("resolution", "-5")),
              ("tampered.cbm", "resolution", "'-5'"), needs_model=True, in_process=True),
]


def _out_is_a_file(folder: Path, ctx: Context) -> Run:
    photos = library(folder)
    (folder / "results").write_text("my notes, not an output folder\n", encoding="utf-8")
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "results")]
    return Run([command], folder, [folder, ctx.model])


# --- images: through the pipeline (own photos) and through keeptrash cull ------------------------------------------


@dataclass(frozen=True)
class ImageCase:
    id: str
    name: str  # the entry in the photo folder
    # "skipped", "scored", "folder" (a folder named like a photo: the photos in it count) or "loop" (a folder loop)
    outcome: str
    reason: str = ""  # what the cull CSV's reason must say
    manifest_reason: str = ""  # what the manifest's reason must say ("" = any reason)
    like: str = ""  # the control photo showing the same picture: exposure must agree
    size: tuple[int, int] | None = None  # upright width, height


IMAGE_CASES = [
    ImageCase("truncated-jpeg", "truncated.jpg", "skipped", "not a decodable image", "not a decodable image"),
    ImageCase("empty-file", "empty.jpg", "skipped", "empty file", "empty file"),
    ImageCase("text-named-jpg", "notes.jpg", "skipped", "not a decodable image", "not a decodable image"),
    ImageCase("html-named-png", "page.png", "skipped", "not a decodable image", "not a decodable image"),
    ImageCase("decompression-bomb-png", "bomb.png", "skipped", "too large", "too large"),
    ImageCase("cmyk-jpeg", "cmyk.jpg", "scored", like="control-rgb.jpg", size=(500, 500)),
    ImageCase("16bit-grey-png", "scan-16bit.png", "scored", like="control-rgb.jpg", size=(500, 500)),
    ImageCase("exif-rotated-jpeg", "phone-rotated.jpg", "scored", like="control-upright.jpg", size=(500, 320)),
    ImageCase("png-bytes-named-jpg", "really-a-png.jpg", "scored", size=(500, 500)),
    ImageCase(
        "one-pixel-png", "one-pixel.png", "scored", size=(1, 1),
    ),
    ImageCase("directory-named-jpg", "folder.jpg", "folder"),
    ImageCase("fifo-named-jpg", "pipe.jpg", "skipped", "not a regular file"),
    ImageCase("broken-symlink", "dangling.jpg", "skipped", "broken symlink"),
    ImageCase("symlink-loop-file", "loop-a.jpg", "skipped", "symlink loop"),
    ImageCase("symlink-loop-folder", "loop", "loop", "symlink loop"),
]


def pipeline_run(folder: Path, ctx: Context) -> Run:
    """labels -> download -> features on own photos that include every bad one, plus a ratings CSV."""
    stage_folder(folder, ctx, {"labels.rated_own_csv": "data/rated/ratings.csv"})
    shutil.copyfile(ctx.metadata_parquet, folder / "data" / "metadata.parquet")  # the metadata stage has its own cases
    populate_bad_folder(folder / "data" / "own" / "keep", ctx.images, file_loop=True)
    library(folder / "data" / "rated", TRAINING_NAMES[5:7])
    ratings = f"path,score\nphotos/{TRAINING_NAMES[5]},70\nphotos/{TRAINING_NAMES[6]},30\nphotos/not-there.jpg,55\n"
    write_input(folder / "data" / "rated" / "ratings.csv", ratings)
    inputs = [folder / "data" / "own", folder / "data" / "rated", folder / "params.yaml"]
    return Run([stage(name) for name in ("labels", "download", "features")], folder, inputs)


def cull_folder_run(file_loop: bool):
    def build(folder: Path, ctx: Context) -> Run:
        photos = folder / "photos"
        if file_loop:
            photos.mkdir()
            (photos / "loop-a.jpg").symlink_to("loop-b.jpg")
            (photos / "loop-b.jpg").symlink_to("loop-a.jpg")
            shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[7], photos / "fine.jpg")
        else:
            populate_bad_folder(photos, ctx.images, file_loop=False)
        command = [KEEPTRASH, "cull", str(photos), "-r", "--model", str(ctx.model), "--out", str(folder / "out")]
        return Run([command], folder, [photos, ctx.model])

    return build


def full_disk_copy(folder: Path, ctx: Context) -> Run:
    # 39 kB, 42 kB and 83 kB: the first copy fits the 64 KiB disk, the next two run out of space part-way.
    photos = library(folder, [TRAINING_NAMES[3], TRAINING_NAMES[5], "102.jpg"])
    ctx.mount_tmpfs(folder / "out", fill=False)
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out"),
               "--copy", "--no-contact-sheet"]
    return Run([command], folder, [photos, ctx.model])


# --- sorting safety (issue 12): undo refuses a journal pointing outside its output, symlinked folders are not
# followed into a move, photo-like formats are listed, no inode left is one line, a renamed output still undoes -------


def tampered_journal(identical_from: bool):
    """A real journal line (photos/a.jpg moved to out/keep/a.jpg), then a hand-edited one naming a file that no cull
    sorted: victim/secret.txt, outside the output folder, to be "restored" to elsewhere/stolen.txt. With
    identical_from, stolen.txt already holds the same bytes (old undo then deleted secret.txt as a leftover copy)."""

    def build(folder: Path, ctx: Context) -> Run:
        original, moved = folder / "photos" / "a.jpg", folder / "out" / "keep" / "a.jpg"
        original.parent.mkdir(parents=True)
        moved.parent.mkdir(parents=True)
        shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[0], moved)
        secret, stolen = folder / "victim" / "secret.txt", folder / "elsewhere" / "stolen.txt"
        write_input(secret, "account numbers\n")
        if identical_from:
            write_input(stolen, "account numbers\n")
        records = [
            {"from": str(original), "to": str(moved), "sha256": hashlib.sha256(moved.read_bytes()).hexdigest()},
            {"from": str(stolen), "to": str(secret), "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()},
        ]
        journal = folder / "out" / "undo-20240101-120000.jsonl"
        journal.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="ascii")
        return Run([[KEEPTRASH, "undo", str(journal)]], folder, [folder])

    return build


def journal_restoring_outside(folder: Path, ctx: Context) -> Run:
    """A journal in today's format whose record would restore a photo to ../elsewhere, outside the culled folder."""
    moved = folder / "out" / "keep" / "a.jpg"
    moved.parent.mkdir(parents=True)
    (folder / "photos").mkdir()
    shutil.copyfile(LIVEC_IMAGES / TRAINING_NAMES[0], moved)
    header = {"keeptrash_undo": 2, "culled": str(folder / "photos")}
    record = {"from": "../elsewhere/a.jpg", "to": "keep/a.jpg", "sha256": hashlib.sha256(moved.read_bytes()).hexdigest()}
    journal = folder / "out" / "undo-20240101-120000.jsonl"
    journal.write_text(json.dumps(header) + "\n" + json.dumps(record) + "\n", encoding="ascii")
    return Run([[KEEPTRASH, "undo", str(journal)]], folder, [folder])


ERROR_CASES.extend([
    ErrorCase("undo-journal-moves-a-file-outside-the-output", tampered_journal(identical_from=False),
              ("undo-20240101-120000.jsonl", "line 2", "outside"), in_process=True),
    ErrorCase("undo-journal-deletes-a-file-outside-the-output", tampered_journal(identical_from=True),
              ("undo-20240101-120000.jsonl", "line 2", "outside"), in_process=True),
    ErrorCase("undo-journal-restores-outside-the-culled-folder", journal_restoring_outside,
              ("undo-20240101-120000.jsonl", "line 2", "outside"), in_process=True),
])


SHA = "9e08017c357b378ee948b867b9756467f0b5ddef40435362ed96f823e67f4e29"
ERROR_CASES.extend([
    # issue 16: decisions exported from the contact sheet (labels.own_decisions).
    ErrorCase("decisions-file-missing", decisions_case(None, "data/own/decisions/2026-11.csv"),
              ("data/own/decisions/2026-11.csv", "not found", "labels.own_decisions"), in_process=True),
    ErrorCase("decisions-file-outside-own-dir", decisions_case(f"path,sha256,decision\na.jpg,{SHA},keep\n", "inp/mine.csv"),
              ("inp/mine.csv", "inside labels.own_dir"), in_process=True),
    ErrorCase("decisions-file-missing-sha256-column", decisions_case("path,decision\na.jpg,keep\n"),
              ("data/own/decisions/mine.csv", "missing sha256"), in_process=True),
    ErrorCase("decisions-file-short-sha256", decisions_case(f"path,sha256,decision\na.jpg,{SHA},keep\nb.jpg,{SHA[:12]},trash\n"),
              ("data/own/decisions/mine.csv:3", "sha256", repr(SHA[:12])), in_process=True),
    ErrorCase("decisions-file-unknown-decision", decisions_case(f"path,sha256,decision\na.jpg,{SHA},skipped\n"),
              ("data/own/decisions/mine.csv:2", "keep or trash", "'skipped'"), in_process=True),
    ErrorCase("decisions-file-empty", decisions_case(""), ("data/own/decisions/mine.csv", "empty"), in_process=True),
    ErrorCase("decisions-file-binary", decisions_case(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"),
              ("data/own/decisions/mine.csv",), in_process=True),
    ErrorCase("decisions-param-not-a-list", decisions_case(None, **{"labels.own_decisions": "data/own/decisions/mine.csv"}),
              ("params.yaml", "labels.own_decisions", "a list of strings"), in_process=True),
])


def symlinked_folder_move(follow_links: bool):
    """`cull -r --move` of a folder holding photos, photos/linkdir -> elsewhere/photos and photos/alias.jpg -> a photo
    in elsewhere: nothing in elsewhere may move, with or without --follow-links."""

    def build(folder: Path, ctx: Context) -> Run:
        photos = library(folder)
        elsewhere = library(folder / "elsewhere", TRAINING_NAMES[2:4])
        (photos / "linkdir").symlink_to(elsewhere, target_is_directory=True)
        (photos / "alias.jpg").symlink_to(elsewhere / TRAINING_NAMES[2])
        command = [KEEPTRASH, "cull", str(photos), "-r", "--move", "--no-contact-sheet", "--model", str(ctx.model),
                   "--out", str(folder / "out"), *(["--follow-links"] if follow_links else [])]
        return Run([command], folder, [folder / "elsewhere", ctx.model])

    return build


def photo_like_formats(folder: Path, ctx: Context) -> Run:
    """GIF, AVIF and BMP photos Pillow decodes, and a camera RAW file it cannot."""
    photos = folder / "photos"
    photos.mkdir()
    picture = livec(TRAINING_NAMES[0])
    for name, format in (("anim.gif", "GIF"), ("phone.avif", "AVIF"), ("scan.bmp", "BMP")):
        (photos / name).write_bytes(encoded(picture, format))
    (photos / "camera.cr2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(4096))
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out"), "--no-contact-sheet"]
    return Run([command], folder, [photos, ctx.model])


def inodes_exhausted_copy(folder: Path, ctx: Context) -> Run:
    """--copy of 8 photos onto a tmpfs with room for 8 inodes: its root, keep/, trash/ and 5 copies; none for the CSV."""
    photos = library(folder, TRAINING_NAMES[:8])
    ctx.mount_tmpfs(folder / "out", fill=False, options="nr_inodes=8")
    command = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out"), "--copy",
               "--no-contact-sheet"]
    return Run([command], folder, [photos, ctx.model])


def undo_after_renaming_the_output(folder: Path, ctx: Context) -> Run:
    """cull --move, then the user renames the output folder, then undo with the journal at its new place."""
    photos = library(folder)
    cull = [KEEPTRASH, "cull", str(photos), "--model", str(ctx.model), "--out", str(folder / "out"), "--move"]
    undo = ["sh", "-c", f'exec "{KEEPTRASH}" undo "{folder}"/renamed/undo-*.jsonl']
    return Run([cull, ["mv", str(folder / "out"), str(folder / "renamed")], undo], folder, [photos, ctx.model])


SORTING_SAFETY_RUNS = {
    "cull-move-symlinked-folder": (symlinked_folder_move(follow_links=False), True, False),
    "cull-move-follow-links": (symlinked_folder_move(follow_links=True), True, False),
    "cull-photo-like-formats": (photo_like_formats, True, False),
    "cull-copy-no-inodes-left": (inodes_exhausted_copy, True, False),
    "undo-after-renaming-the-output": (undo_after_renaming_the_output, True, False),
}


def succeeded(outcomes, run_id: str) -> Outcome:
    outcome = finished(outcomes, run_id)
    for result in outcome.results:
        assert result.returncode == 0 and "Traceback" not in result.stderr, shown(result)
    return outcome


@pytest.mark.parametrize("run_id", ["cull-move-symlinked-folder", "cull-move-follow-links"])
def test_cull_move_never_moves_a_photo_from_outside_the_named_folder(run_id, outcomes):
    outcome = succeeded(outcomes, run_id)
    assert_inputs_unchanged(outcome)  # elsewhere/: every photo and name as it was
    folder = outcome.run.cwd
    photos, elsewhere = folder / "photos", folder / "elsewhere" / "photos"
    assert sorted(os.listdir(photos)) == ["linkdir"], "the photos in the named folder were to be moved"
    (alias,) = [path for path in (folder / "out").glob("*/alias.jpg")]
    assert alias.is_symlink() and os.readlink(alias) == str(elsewhere / TRAINING_NAMES[2]), "only the link moves"
    table = pd.read_csv(folder / "out" / "keeptrash.csv", dtype=str, keep_default_na=False).set_index("path")
    if run_id == "cull-move-symlinked-folder":
        assert "not followed" in table.loc[str(photos / "linkdir"), "reason"]
        assert not any(path.startswith(str(photos / "linkdir") + "/") for path in table.index)
    else:
        # linkdir/<first> is the photo alias.jpg points to, so it is listed once, as the link; the other is scored.
        assert table.loc[str(photos / "linkdir" / TRAINING_NAMES[2]), "reason"].startswith("same file as")
        row = table.loc[str(photos / "linkdir" / TRAINING_NAMES[3])]
        assert row["decision"] in ("keep", "trash")
        assert row["action"].startswith("not sorted") and "outside" in row["action"], row["action"]


def test_cull_lists_photo_like_formats_scored_or_skipped_with_a_reason(outcomes):
    outcome = succeeded(outcomes, "cull-photo-like-formats")
    assert_inputs_unchanged(outcome)
    table = pd.read_csv(outcome.run.cwd / "out" / "keeptrash.csv", dtype=str, keep_default_na=False)
    table = table.set_index(table["path"].map(lambda path: Path(path).name))
    assert sorted(table.index) == ["anim.gif", "camera.cr2", "phone.avif", "scan.bmp"]
    for name in ("anim.gif", "phone.avif", "scan.bmp"):
        assert table.loc[name, "decision"] in ("keep", "trash"), table.loc[name].to_dict()
        assert float(table.loc[name, "width"]) == 500
    assert table.loc["camera.cr2", "decision"] == "skipped"
    assert "not a decodable image" in table.loc["camera.cr2", "reason"]


def test_cull_copy_with_no_inodes_left_ends_in_one_line_and_leaves_only_whole_copies(outcomes):
    outcome = finished(outcomes, "cull-copy-no-inodes-left")
    assert_inputs_unchanged(outcome)
    out = outcome.run.cwd / "out"
    originals = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (outcome.run.cwd / "photos").iterdir()}
    left = [path for path in out.rglob("*") if path.is_file() and path.name not in ("keeptrash.csv", ".keeptrash-cull.json")]
    assert left and all(hashlib.sha256(path.read_bytes()).hexdigest() in originals for path in left), left
    assert len(left) < len(originals), "the inodes were meant to run out"
    assert not any(path.name.startswith(".") for path in left), "a temporary file was left"
    if outcome.last.returncode != 0:
        assert_one_line_error(outcome.last, ("keeptrash.csv", ENOSPC_TEXT))
        return
    # Or there was an inode left for the CSV, which records which copies failed.
    table = pd.read_csv(out / "keeptrash.csv", dtype=str, keep_default_na=False)
    assert (table["action"] == f"not sorted: {ENOSPC_TEXT}").sum() == len(originals) - len(left), shown(outcome.last)


def test_undo_finds_the_photos_after_the_output_folder_was_renamed(outcomes):
    outcome = succeeded(outcomes, "undo-after-renaming-the-output")
    assert_inputs_unchanged(outcome)  # every photo back, byte for byte, under its own name
    assert f"restored {len(TRAINING_NAMES[:2])}, already in place 0, problems 0" in outcome.last.stdout


# id -> (build, needs the trained model, runs in this process)
# The slowest first: the pool runs them in this order.
RUNS: dict[str, tuple[Callable[[Path, Context], Run], bool, bool]] = {
    "pipeline": (pipeline_run, False, False),
    "cull-folder": (cull_folder_run(file_loop=False), True, False),
    "disk-full-cull-copy": (full_disk_copy, True, False),
    "cull-symlink-loop-file": (cull_folder_run(file_loop=True), True, False),
    **SORTING_SAFETY_RUNS,
    **{case.id: (case.build, case.needs_model, case.in_process) for case in ERROR_CASES},
}


# --- the shared, expensive part: every run at once -------------------------------------------------------------------


def train_tiny_model(folder: Path, cache: Path) -> Path:
    return train_livec_model(len(TRAINING_NAMES), 20, cache, folder / "model.cbm")


def plain_catboost_model(folder: Path) -> Path:
    """A real CatBoost model that keeptrash did not make: no backbone or threshold in its metadata."""
    model = CatBoostClassifier(iterations=2, verbose=False, allow_writing_files=False)
    model.fit(np.random.default_rng(0).normal(size=(20, 3)), [0, 1] * 10)
    path = folder / "plain.cbm"
    model.save_model(str(path))
    return path


def small_metadata_table(folder: Path) -> Path:
    """data/metadata.parquet for the labels cases, from the same small real inputs as stage_folder's."""
    ctx = Context(folder, folder, yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8")))
    inputs = stage_folder(folder / "stage", ctx) / "inp"
    table = build_metadata(
        [inputs / "AVA.txt"], inputs / "tags.txt", inputs / "challenges.txt", inputs / "train.jpgl",
        inputs / "test.jpgl",
    )
    path = folder / "metadata.parquet"
    write_table(path, table)
    return path


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad-inputs")
    shared = root / "shared"
    shared.mkdir()
    params = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    ctx = Context(root=root, cache=root / "feature-cache", params=params)
    ctx.images = make_images()
    ctx.metadata_parquet = small_metadata_table(shared)
    ctx.plain_model = plain_catboost_model(shared)
    futures: dict[str, Future | Outcome] = {}
    try:
        with ThreadPoolExecutor(WORKERS) as pool:

            def start(run_id: str, build: Callable[[Path, Context], Run], in_process: bool) -> None:
                folder = root / run_id
                folder.mkdir()
                try:
                    run = build(folder, ctx)
                except Skip as skip:
                    futures[run_id] = Outcome(skip=str(skip))
                except Exception:
                    futures[run_id] = Outcome(setup_error=traceback.format_exc())
                else:
                    run.in_process = in_process
                    if in_process:
                        futures[run_id] = execute_in_process(run, ctx.env())
                    else:
                        futures[run_id] = pool.submit(execute, run, ctx.env())

            # Subprocesses first: they run on the pool while this thread does the in-process cases and trains the model.
            for wanted in ((False, False), (False, True)):
                for run_id, (build, needs_model, in_process) in RUNS.items():
                    if (needs_model, in_process) == wanted:
                        start(run_id, build, in_process)
            ctx.model = train_tiny_model(shared, ctx.cache)
            for run_id, (build, needs_model, in_process) in RUNS.items():
                if needs_model:
                    start(run_id, build, in_process)
            results = {run_id: item.result() if isinstance(item, Future) else item for run_id, item in futures.items()}
        yield results
    finally:
        for mount in reversed(ctx.mounts):
            subprocess.run(["umount", str(mount)], capture_output=True)


# --- the tests -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in ERROR_CASES])
def test_bad_input_ends_in_one_clear_line(case: ErrorCase, outcomes):
    outcome = finished(outcomes, case.id)
    if case.if_accepted is not None and outcome.last.returncode == 0:
        assert_inputs_unchanged(outcome, outputs_allowed=True)
        case.if_accepted(outcome)
        return
    assert_one_line_error(outcome.last, case.names)
    assert_inputs_unchanged(outcome)  # for whole case folders this also means no output, partial or not, was left
    if case.check is not None:
        case.check(outcome)


def pipeline_tables(outcomes) -> tuple[pd.DataFrame, pd.DataFrame]:
    outcome = finished(outcomes, "pipeline")
    for result in outcome.results:
        assert result.returncode == 0 and "Traceback" not in result.stderr, shown(result)
    assert len(outcome.results) == 3
    assert_inputs_unchanged(outcome)
    data = outcome.run.cwd / "data"
    manifest = pd.read_parquet(data / "manifest.parquet").set_index("path")
    return manifest, pd.read_parquet(data / "features.parquet").set_index("key")


OWN = "data/own/keep"


@pytest.mark.parametrize("image", [pytest.param(image, id=image.id) for image in IMAGE_CASES])
def test_pipeline_records_or_uses_each_bad_own_photo(image: ImageCase, outcomes):
    manifest, features = pipeline_tables(outcomes)
    path = f"{OWN}/{image.name}"
    if image.outcome == "skipped":
        assert path in manifest.index, f"{path} is in no manifest row: {sorted(manifest.index)}"
        row = manifest.loc[path]
        assert row["status"] in ("corrupt", "missing")
        assert row["reason"] and image.manifest_reason in row["reason"], row["reason"]
        assert row["key"] not in features.index
    elif image.outcome == "scored":
        row = manifest.loc[path]
        assert (row["status"], row["reason"]) == ("ok", "")
        assert row["sha256"] == hashlib.sha256((outcomes["pipeline"].run.cwd / path).read_bytes()).hexdigest()
        stats = features.loc[row["key"]]
        assert np.isfinite(stats["exposure"]) and np.isfinite(stats.filter(like="cnn_")).all()
        assert (stats["width"], stats["height"]) == image.size  # upright, EXIF orientation applied
        if image.like:
            control = features.loc[manifest.loc[f"{OWN}/{image.like}", "key"]]
            assert stats["exposure"] == pytest.approx(control["exposure"], abs=0.02)
    elif image.outcome == "folder":
        # A folder named like a photo is a folder: the photos in it are used, the folder itself is no photo.
        assert path not in manifest.index
        assert manifest.loc[f"{path}/inside.jpg", "status"] == "ok"
    else:
        # A folder linking to itself is not followed (or the stage would never end) and yields no photo twice.
        assert not any(name.startswith(f"{path}/") for name in manifest.index)
        assert manifest.index.is_unique


def test_pipeline_records_a_rated_photo_that_does_not_exist(outcomes):
    """ratings-csv-path-not-found: a ratings CSV row whose photo is not there is recorded missing, the rest used."""
    manifest, features = pipeline_tables(outcomes)
    row = manifest.loc["data/rated/photos/not-there.jpg"]
    assert (row["status"], row["reason"]) == ("missing", "file not found")
    for name in TRAINING_NAMES[5:7]:
        assert manifest.loc[f"data/rated/photos/{name}", "status"] == "ok"
        assert manifest.loc[f"data/rated/photos/{name}", "key"] in features.index


def cull_table(outcomes, run_id: str) -> tuple[pd.DataFrame, Path]:
    outcome = finished(outcomes, run_id)
    assert outcome.last.returncode == 0 and "Traceback" not in outcome.last.stderr, shown(outcome.last)
    assert_inputs_unchanged(outcome)
    photos = outcome.run.cwd / "photos"
    table = pd.read_csv(outcome.run.cwd / "out" / "keeptrash.csv", dtype={"path": str, "decision": str, "reason": str})
    table.index = [Path(path).relative_to(photos).as_posix() for path in table["path"]]
    assert table.index.is_unique
    return table, photos


@pytest.mark.parametrize("image", [pytest.param(image, id=image.id) for image in IMAGE_CASES])
def test_cull_skips_with_a_reason_or_scores_each_bad_photo(image: ImageCase, outcomes):
    table, photos = cull_table(outcomes, "cull-symlink-loop-file" if image.id == "symlink-loop-file" else "cull-folder")
    if image.outcome in ("skipped", "loop"):
        row = table.loc[image.name]
        assert row["decision"] == "skipped"
        assert image.reason in row["reason"], row["reason"]
        assert pd.isna(row["keep_probability"])
    elif image.outcome == "scored":
        row = table.loc[image.name]
        assert row["decision"] in ("keep", "trash")
        assert 0.0 <= row["keep_probability"] <= 1.0
        assert row["sha256"] == hashlib.sha256((photos / image.name).read_bytes()).hexdigest()
        assert row["reason"] and "nan" not in row["reason"].lower(), row["reason"]
        unmeasured = [name for name in STAT_NAMES if not np.isfinite(row[name])]
        # Sharpness and noise need 3 x 3 pixels; below that they are honestly left empty.
        expected_unmeasured = ["sharpness", "noise"] if min(image.size) < 3 else []
        assert unmeasured == expected_unmeasured, f"statistics that could not be measured: {unmeasured}"
        assert (row["width"], row["height"]) == image.size  # upright, EXIF orientation applied
        if image.like:
            assert row["exposure"] == pytest.approx(table.loc[image.like, "exposure"], abs=0.02)
    else:
        assert image.name not in table.index
        assert table.loc[f"{image.name}/inside.jpg", "decision"] in ("keep", "trash")
    if image.id == "symlink-loop-file":
        assert table.loc["fine.jpg", "decision"] in ("keep", "trash")  # the run went on


def test_cull_on_a_disk_that_fills_up_leaves_only_whole_copies(outcomes):
    """disk-full-cull-copy: --copy onto a 64 KiB disk; a copy cut short must vanish, and the run must say so."""
    outcome = finished(outcomes, "disk-full-cull-copy")
    assert_inputs_unchanged(outcome)
    photos, out = outcome.run.cwd / "photos", outcome.run.cwd / "out"
    originals = {hashlib.sha256(path.read_bytes()).hexdigest() for path in photos.iterdir()}
    left = [path for path in out.rglob("*") if path.is_file() and path.name not in ("keeptrash.csv", ".keeptrash-cull.json")]
    assert all(hashlib.sha256(path.read_bytes()).hexdigest() in originals for path in left), "a partial copy was left"
    assert len(left) < len(originals), "the disk was meant to fill up"
    result = outcome.last
    if result.returncode != 0:
        assert_one_line_error(result, ("keeptrash.csv", ENOSPC_TEXT))
        return
    # Or the run went on and recorded, per photo, which copies failed for lack of space.
    assert "Traceback" not in result.stderr, shown(result)
    table = pd.read_csv(out / "keeptrash.csv", dtype=str, keep_default_na=False)
    assert len(table) == len(originals)
    assert set(table["action"]) <= {"copied", f"not sorted: {ENOSPC_TEXT}"}
    assert (table["action"] == f"not sorted: {ENOSPC_TEXT}").sum() == len(originals) - len(left)
    for _, row in table[table["action"] == "copied"].iterrows():
        assert hashlib.sha256(Path(row["sorted_to"]).read_bytes()).hexdigest() == row["sha256"]
