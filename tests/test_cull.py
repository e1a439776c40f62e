"""`keeptrash cull` on real, messy photo folders, with a real model trained on real LIVE-C features.

The model is small (60 trees on 60 photos) but made exactly as the train stage makes one, so
scoring reads its backbone, input size and threshold from the model file like it would for a user.
"""

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from catboost import CatBoostClassifier
from PIL import Image

from conftest import CHEAP_FEATURES, CULL_MODEL_PHOTOS, LIVEC_IMAGES, PARAMS_YAML, PHOTO_NAMES, copy_photos, train_livec_model
from keeptrash.cli import CSV_NAME
from keeptrash.cull.contact_sheet import render_contact_sheet, thumbnail_data_uri
from keeptrash.cull.scan import scan_folder
from keeptrash.cull.scoring import load_scoring_model, score_photos
from keeptrash.cull import KEEP
from keeptrash.errors import KeeptrashError
from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.features.runtimes import EXPORTS_FOLDER
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.store import CACHE_ENV
from keeptrash.io import spreadsheet_text

MAX_PIXELS = 300_000_000
ORIENTATION = 0x0112



def digests_of(folder: Path) -> dict[str, str]:
    """sha256 of every file below folder (not following symlinks), by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def save_jpeg(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=92, **options)
    return path


def livec(name: str) -> Image.Image:
    with Image.open(LIVEC_IMAGES / name) as image:
        return image.convert("RGB")


def rotated_with_exif(upright: Image.Image, path: Path) -> Path:
    """What a phone writes: pixels stored sideways plus EXIF orientation 6 ("rotate 90 CW to view")."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return save_jpeg(upright.transpose(Image.Transpose.ROTATE_90), path, exif=exif)


def sixteen_bit_grey_png(upright: Image.Image, path: Path) -> Path:
    grey = np.asarray(upright.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(path)  # mode I;16
    return path


def make_messy_folder(root: Path) -> dict[str, str]:
    """Real photos in the forms real libraries hold them, and the damaged files they also hold.

    Returns the expected outcome per file name: "scored" or the start of the skip reason.
    """
    names = sorted(os.listdir(LIVEC_IMAGES))[CULL_MODEL_PHOTOS : CULL_MODEL_PHOTOS + 6]
    for name in names:
        shutil.copyfile(LIVEC_IMAGES / name, root / name)
    upright = livec(names[0]).crop((0, 0, 500, 320))
    save_jpeg(upright, root / "upright.jpg")
    rotated_with_exif(upright, root / "phone-rotated.jpg")
    livec(names[1]).convert("L").save(root / "grey.jpg", quality=92)
    livec(names[2]).convert("CMYK").save(root / "cmyk.jpg", quality=92)
    sixteen_bit_grey_png(livec(names[3]), root / "scan-16bit.png")
    livec(names[4]).save(root / "scan.tiff")
    livec(names[5]).save(root / "web.webp", quality=90)
    livec(names[0]).save(root / "iphone.heic", quality=90)
    # A 48 MP panorama: over Pillow's own 89 MP guard only if mis-decoded; draft mode keeps it cheap.
    panorama = livec(names[1]).resize((16000, 3000))
    save_jpeg(panorama, root / "panorama.jpg")
    save_jpeg(livec(names[2]), root / "café – 日本語 📷.jpg")
    save_jpeg(livec(names[3]), root / os.fsdecode(b"bytes-\xff\xfe.jpg"))
    data = (LIVEC_IMAGES / names[4]).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.jpg").write_text("this is a text file with an image extension\n")
    (root / "empty.png").write_bytes(b"")
    (root / ".hidden.jpg").write_text("a macOS resource fork, not a photo")
    (root / "readme.txt").write_text("not an image extension")
    (root / "dangling.jpg").symlink_to(root / "no-such-file.jpg")
    os.mkfifo(root / "pipe.jpg")
    (root / "album").mkdir()
    save_jpeg(livec(names[5]), root / "album" / "nested.jpg")
    (root / "album" / "back-to-top").symlink_to(root)
    expected = {name: "scored" for name in names}
    expected |= {
        name: "scored"
        for name in ("upright.jpg", "phone-rotated.jpg", "grey.jpg", "cmyk.jpg", "scan-16bit.png", "scan.tiff", "web.webp",
                     "iphone.heic", "panorama.jpg", "café – 日本語 📷.jpg", os.fsdecode(b"bytes-\xff\xfe.jpg"), "nested.jpg")
    }
    expected |= {
        "truncated.jpg": "not a decodable image",
        "notes.jpg": "not a decodable image",
        "empty.png": "empty file",
        "dangling.jpg": "broken symlink",
        "pipe.jpg": "not a regular file",
        "back-to-top": "symlink loop",
    }
    return expected


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("library") / "Pictures 2024"
    root.mkdir()
    return root, make_messy_folder(root)


@pytest.fixture(scope="module")
def scored(messy_folder, model_path, cache_root):
    root, _ = messy_folder
    scan = scan_folder(root, recursive=True)
    scores, failed = score_photos(scan.photos, load_scoring_model(model_path), cache_root, MAX_PIXELS)
    return scan, scores, failed


def row_named(scores: pd.DataFrame, name: str) -> pd.Series:
    # Paths stay Path objects: some names are not UTF-8, which pandas' string columns cannot hold.
    return scores.iloc[[Path(path).name for path in scores["path"]].index(name)]


# --- scanning ----------------------------------------------------------------------------------


def test_scan_lists_photos_and_reports_links_and_special_files(messy_folder):
    root, expected = messy_folder
    scan = scan_folder(root, recursive=True)
    names = {path.name for path in scan.photos} | {path.name for path, _ in scan.skipped}
    assert names == set(expected)
    reasons = {path.name: reason for path, reason in scan.skipped}
    for name in ("dangling.jpg", "pipe.jpg", "back-to-top"):
        assert reasons[name].startswith(expected[name])
    assert ".hidden.jpg" not in names and "readme.txt" not in names
    assert scan_folder(root, recursive=True) == scan


def test_scan_without_recursion_stays_in_the_folder(messy_folder):
    root, _ = messy_folder
    scan = scan_folder(root, recursive=False)
    assert all(path.parent == root for path in scan.photos)
    assert "nested.jpg" not in {path.name for path in scan.photos}


def test_scan_scores_a_file_reached_twice_once(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", photos / "a.jpg")
    (photos / "b.jpg").symlink_to(photos / "a.jpg")
    os.link(photos / "a.jpg", photos / "c.jpg")
    (tmp_path / "alias").symlink_to(photos)
    scan = scan_folder(tmp_path, recursive=True, follow_links=True)
    assert scan.photos == [tmp_path / "alias" / "a.jpg"]
    assert scan.skipped == [
        (tmp_path / "alias" / "b.jpg", f"same file as {tmp_path / 'alias' / 'a.jpg'}"),
        (tmp_path / "alias" / "c.jpg", f"same file as {tmp_path / 'alias' / 'a.jpg'}"),
        (photos, f"already scanned as {tmp_path / 'alias'}"),
    ]
    # Without follow_links the symlinked folder is reported, not entered, and the photo is found where it lies.
    scan = scan_folder(tmp_path, recursive=True)
    assert scan.photos == [photos / "a.jpg"]
    assert scan.skipped == [
        (tmp_path / "alias", "symlinked folder not followed: pass --follow-links to score the photos in it"),
        (photos / "b.jpg", f"same file as {photos / 'a.jpg'}"),
        (photos / "c.jpg", f"same file as {photos / 'a.jpg'}"),
    ]


def test_scan_skips_the_output_folder_inside_the_library(tmp_path):
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", tmp_path / "a.jpg")
    out = tmp_path / "culled"
    (out / "keep").mkdir(parents=True)
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", out / "keep" / "a.jpg")
    scan = scan_folder(tmp_path, recursive=True, exclude=(out,))
    assert scan.photos == [tmp_path / "a.jpg"]


def test_scan_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KeeptrashError, match="not a folder"):
        scan_folder(tmp_path / "nowhere", recursive=True)


# --- scoring -----------------------------------------------------------------------------------


def test_every_photo_is_scored_or_skipped_with_its_reason(scored, messy_folder):
    _, expected = messy_folder
    scan, scores, failed = scored
    outcome = {Path(path).name: "scored" for path in scores["path"]}
    outcome |= {path.name: reason for path, reason in scan.skipped + failed}
    assert set(outcome) == set(expected)
    for name, want in expected.items():
        assert outcome[name].startswith(want), (name, outcome[name])
    assert scores["keep_probability"].between(0, 1).all()
    assert set(scores["decision"]) <= {"keep", "trash"}
    assert ((scores["keep_probability"] >= 0.5) == (scores["decision"] == "keep")).all()
    assert scores["reason"].str.len().gt(0).all()


def test_exif_rotated_photo_is_scored_upright(scored):
    _, scores, _ = scored
    upright, rotated = (row_named(scores, name) for name in ("upright.jpg", "phone-rotated.jpg"))
    assert (rotated["width"], rotated["height"]) == (upright["width"], upright["height"]) == (500, 320)
    # Same picture, re-encoded: the CNN sees the same upright image up to JPEG noise.
    assert rotated["keep_probability"] == pytest.approx(upright["keep_probability"], abs=0.1)
    assert rotated["exposure"] == pytest.approx(upright["exposure"], abs=0.01)


def test_sixteen_bit_scan_is_scaled_not_clipped(scored, messy_folder):
    root, _ = messy_folder
    _, scores, _ = scored
    row = row_named(scores, "scan-16bit.png")
    source = np.asarray(Image.open(root / "scan-16bit.png"), dtype=np.float64) / 65535
    # Pillow's own conversion clips every 16-bit value above 255 to white (exposure ~1).
    assert row["exposure"] == pytest.approx(source.mean(), abs=0.02)
    assert row["highlights_clipped"] < 0.5


def test_a_panorama_over_the_pixel_limit_is_skipped_with_the_reason(tmp_path, model_path, cache_root):
    panorama = save_jpeg(livec("100.jpg").resize((4000, 1000)), tmp_path / "pano.jpg")
    scores, failed = score_photos([panorama], load_scoring_model(model_path), cache_root, max_pixels=1_000_000)
    assert scores.empty
    assert failed[0][0] == panorama and failed[0][1].startswith("too large")


def test_model_threshold_and_features_come_from_the_model_file(model_path):
    model = load_scoring_model(model_path, batch_size=8)
    assert model.threshold == 0.5
    assert (model.features.backbone, model.features.pooling, model.features.resolution, model.features.batch_size) == (
        "efficientnet_lite0", CHEAP_FEATURES["pooling"], CHEAP_FEATURES["resolution"], 8
    )


def test_models_not_made_by_keeptrash_are_refused_clearly(tmp_path, model_path):
    with pytest.raises(KeeptrashError, match="model not found"):
        load_scoring_model(tmp_path / "none.cbm")
    (tmp_path / "garbage.cbm").write_bytes(b"not a model")
    with pytest.raises(KeeptrashError, match="not a CatBoost model"):
        load_scoring_model(tmp_path / "garbage.cbm")
    plain = CatBoostClassifier(iterations=2, verbose=False, allow_writing_files=False)
    plain.fit(np.random.default_rng(0).normal(size=(20, 3)), [0, 1] * 10)
    plain.save_model(str(tmp_path / "plain.cbm"))
    with pytest.raises(KeeptrashError, match="lacks backbone"):
        load_scoring_model(tmp_path / "plain.cbm")
    old = CatBoostClassifier()
    old.load_model(str(model_path))
    old.get_metadata()["preprocessing_version"] = str(PREPROCESSING_VERSION - 1)
    old.save_model(str(tmp_path / "old.cbm"))
    with pytest.raises(KeeptrashError, match="retrain it with dvc repro"):
        load_scoring_model(tmp_path / "old.cbm")


# --- contact sheet -----------------------------------------------------------------------------


def test_thumbnails_are_upright_jpegs(tmp_path):
    upright = livec("100.jpg").crop((0, 0, 500, 320))
    path = rotated_with_exif(upright, tmp_path / "rotated.jpg")
    uri = thumbnail_data_uri(path, MAX_PIXELS)
    assert uri.startswith("data:image/jpeg;base64,")
    thumbnail = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert thumbnail.size == (240, 154)
    assert thumbnail_data_uri(tmp_path / "missing.jpg", MAX_PIXELS) == ""


def test_contact_sheet_lists_every_photo_and_escapes_names(scored, tmp_path):
    scan, scores, failed = scored
    odd = tmp_path / "<script>alert(1)<\\script>.jpg"
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", odd)
    extra = scores.iloc[:1].assign(path=odd)
    page = render_contact_sheet(pd.concat([scores, extra]), scan.skipped + failed, 0.5, "test", MAX_PIXELS)
    assert page.count("<img ") == len(scores) + 1
    kept = int((pd.concat([scores, extra])["decision"] == "keep").sum())
    assert f"keep ({kept})" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert f"skipped ({len(scan.skipped) + len(failed)})" in page
    assert "bytes-\\xff\\xfe.jpg" in page
    # Most likely keep first: probabilities in each column never rise.
    shown = [float(text.split("</span>")[0]) for text in page.split('class="probability">')[1:]]
    keep_count = kept
    assert shown[:keep_count] == sorted(shown[:keep_count], reverse=True)
    assert shown[keep_count:] == sorted(shown[keep_count:], reverse=True)


# --- the command, end to end -------------------------------------------------------------------


def keeptrash(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "keeptrash"), *args]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if check and result.returncode != 0:
        pytest.fail(f"keeptrash {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def cull_in(folder: Path, photos: Path, model: Path, cache: Path) -> None:
    """`keeptrash cull` (a dry run) started in `folder`, with its own feature cache."""
    environment = os.environ | {CACHE_ENV: str(cache)}
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(photos), "--model", str(model), "--out", str(folder / "out")]
    result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, errors="replace")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("runtime", [None, "torch"])
def test_cull_runs_the_backbone_with_the_configured_runtime(tmp_path, model_path, runtime):
    """Outside a repository the runtime params.yaml ships (onnxruntime: the exported model appears in the cache), inside
    one its params.yaml's features.runtime (torch: nothing is exported)."""
    photos = tmp_path / "photos"
    copy_photos(sorted(os.listdir(LIVEC_IMAGES))[200:202], photos)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    if runtime:
        params = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
        params["features"]["runtime"] = runtime
        (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    cull_in(workdir, photos, model_path, tmp_path / "cache")
    exported = sorted(path.suffix for path in (tmp_path / "cache" / EXPORTS_FOLDER).glob("*"))
    assert exported == ([] if runtime == "torch" else [".onnx"])
    assert len(pd.read_csv(workdir / "out" / CSV_NAME).dropna(subset=["keep_probability"])) == 2


@pytest.fixture
def library(tmp_path) -> Path:
    """A small library: 8 real photos in two folders, one with a clashing name, and one broken file."""
    root = tmp_path / "library"
    names = sorted(os.listdir(LIVEC_IMAGES))[100:108]
    for index, name in enumerate(names):
        folder = root / ("2023" if index % 2 else "2024")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
    shutil.copyfile(LIVEC_IMAGES / names[0], root / "2023" / "IMG_0001.jpg")
    shutil.copyfile(LIVEC_IMAGES / names[1], root / "2024" / "IMG_0001.jpg")
    (root / "2024" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "2024" / os.fsdecode(b"broken-\xff.jpg")).write_text("not an image")
    return root


def read_results(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "keeptrash.csv", keep_default_na=False)


def test_dry_run_changes_nothing_and_writes_csv_and_sheet(library, tmp_path, model_path, cache_root):
    before = digests_of(library)
    result = keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(tmp_path / "out"))
    assert digests_of(library) == before
    assert sorted(os.listdir(tmp_path / "out")) == [".keeptrash-cull.json", "contact_sheet.html", "keeptrash.csv"]
    table = read_results(tmp_path / "out")
    assert len(table) == 12
    skipped = table[table["decision"] == "skipped"]
    assert sorted(skipped["path"]) == [f"{library}/2024/broken-\\xff.jpg", f"{library}/2024/broken.jpg"]
    assert skipped["reason"].str.startswith("not a decodable image").all()
    assert {"keep_probability", "decision", "reason", "sharpness", "exposure", "noise"} <= set(table.columns)
    assert "scanned 12" in result.stdout and "skipped 2 (not a decodable image 2)" in result.stdout
    assert "images/s" in result.stdout and "dry run" in result.stdout


def test_copy_sorts_by_decision_and_a_second_run_adds_no_duplicates(library, tmp_path, model_path, cache_root):
    out = tmp_path / "out"
    before = digests_of(library)
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), "--copy")
    assert digests_of(library) == before
    table = read_results(out)
    scored = table[table["decision"] != "skipped"]
    for _, row in scored.iterrows():
        target = Path(row["sorted_to"])
        assert target.parent == out / row["decision"]
        assert hashlib.sha256(target.read_bytes()).hexdigest() == row["sha256"]
    assert sorted(Path(path).name for path in scored["sorted_to"] if "IMG_0001" in path) == ["IMG_0001-1.jpg", "IMG_0001.jpg"] or (
        out / "keep" / "IMG_0001.jpg"
    ).exists() and (out / "trash" / "IMG_0001.jpg").exists()
    copies = digests_of(out / "keep") | {f"trash/{k}": v for k, v in digests_of(out / "trash").items()}
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), "--copy")
    assert (digests_of(out / "keep") | {f"trash/{k}": v for k, v in digests_of(out / "trash").items()}) == copies
    assert set(read_results(out).loc[lambda t: t["decision"] != "skipped", "action"]) == {"already there"}


def test_link_makes_hard_links(library, tmp_path, model_path, cache_root):
    out = tmp_path / "out"
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), "--link")
    scored = read_results(out).query("decision != 'skipped'")
    assert set(scored["action"]) == {"linked"}
    for _, row in scored.iterrows():
        assert os.path.samefile(row["path"], row["sorted_to"])


def test_move_then_undo_restores_every_photo_byte_for_byte(library, tmp_path, model_path, cache_root):
    out = tmp_path / "out"
    before = digests_of(library)
    result = keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), "--move")
    journal = next(out.glob("undo-*.jsonl"))
    assert f"keeptrash undo {journal}" in result.stdout
    broken = {key: value for key, value in before.items() if "broken" in key}
    assert digests_of(library) == broken
    moved = digests_of(out / "keep") | digests_of(out / "trash")
    assert sorted(moved.values()) == sorted(value for key, value in before.items() if key not in broken)
    result = keeptrash("undo", str(journal))
    assert "restored 10" in result.stdout
    assert digests_of(library) == before
    # A side no photo was sorted to has no folder at all.
    assert not [path for side in ("keep", "trash") for path in (out / side).glob("*")]
    again = keeptrash("undo", str(journal))
    assert "restored 0, already in place 10, problems 0" in again.stdout
    assert digests_of(library) == before


def test_threshold_option_overrides_the_model(library, tmp_path, model_path, cache_root):
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(tmp_path / "out"), "--threshold", "0")
    assert set(read_results(tmp_path / "out").query("decision != 'skipped'")["decision"]) == {"keep"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cull", "{tmp}/nowhere"], "nowhere: not a folder"),
        (["cull", "{library}", "--model", "{tmp}/none.cbm"], "none.cbm: model not found"),
        (["cull", "{library}", "--threshold", "1.5"], "1.5 is not between 0 and 1"),
        (["cull", "{library}", "--copy", "--move"], "not allowed with argument"),
        (["undo", "{tmp}/undo.jsonl"], "undo manifest not found"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, library, tmp_path, model_path, cache_root):
    filled = [arg.format(tmp=tmp_path, library=library) for arg in args]
    if filled[0] == "cull" and "--model" not in filled:
        filled += ["--model", str(model_path)]
    before = digests_of(library)
    result = keeptrash(*filled, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert digests_of(library) == before


# --- the contact sheet in a real browser ------------------------------------------------------


def solid_photo(colour: tuple[int, int, int], path: Path) -> Path:
    """A real JPEG of one saturated colour with a little texture, so its thumbnail is easy to find on screen."""
    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(np.array(colour, dtype=np.int16) + rng.integers(-6, 7, size=(300, 400, 3)), 0, 255).astype(np.uint8)
    return save_jpeg(Image.fromarray(pixels), path)


def test_contact_sheet_renders_thumbnails_in_headless_chromium(tmp_path, model_path, cache_root):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: .ci/run installs Debian's chromium package (apt-get install chromium)")
    folder = tmp_path / "colours"
    folder.mkdir()
    solid_photo((0, 40, 230), folder / "blue.jpg")
    solid_photo((250, 200, 0), folder / "yellow.jpg")
    for name in sorted(os.listdir(LIVEC_IMAGES))[200:204]:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
    out = tmp_path / "out"
    keeptrash("cull", str(folder), "--model", str(model_path), "--out", str(out))
    screenshot = tmp_path / "sheet.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--window-size=1400,2000", f"--screenshot={screenshot}", (out / "contact_sheet.html").as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    blue_area = ((blue > 190) & (red < 50) & (green < 80)).sum()
    yellow_area = ((red > 210) & (green > 160) & (blue < 50)).sum()
    # Each thumbnail is 240 x 180 pixels on screen; nothing else on the page is either colour.
    assert blue_area > 0.9 * 240 * 180
    assert yellow_area > 0.9 * 240 * 180


# --- found in review: loops, unusable --out, --out inside the folder, extreme strips --------------


def test_a_symlink_to_itself_is_reported_and_the_run_goes_on(tmp_path):
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", tmp_path / "a.jpg")
    (tmp_path / "selfloop").symlink_to(tmp_path / "selfloop")
    for recursive in (False, True):
        scan = scan_folder(tmp_path, recursive=recursive)
        assert scan.photos == [tmp_path / "a.jpg"]
        assert scan.skipped == [(tmp_path / "selfloop", "symlink loop or unreadable entry")]


def test_any_depth_of_nesting_is_walked(tmp_path):
    folders = [tmp_path / "d"]
    for _ in range(1100):  # deeper than Python's recursion limit
        folders.append(folders[-1] / "d")
    for folder in folders:
        os.mkdir(folder)
    shutil.copyfile(LIVEC_IMAGES / "100.jpg", folders[-1] / "deep.jpg")
    try:
        assert scan_folder(tmp_path, recursive=True).photos == [folders[-1] / "deep.jpg"]
    finally:
        # shutil.rmtree (and so pytest's own clean-up) recurses once per level and would fail here.
        (folders[-1] / "deep.jpg").unlink()
        for folder in reversed(folders):
            os.rmdir(folder)


def test_an_unusable_out_fails_in_one_line_before_any_scoring(library, tmp_path, model_path, cache_root):
    (tmp_path / "a-file").write_text("not a folder")
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "sub"):
        result = keeptrash("cull", str(library), "--model", str(model_path), "--out", str(out), check=False)
        assert result.returncode == 2
        assert result.stderr.strip().startswith("keeptrash: error:") and "cannot create the output folder" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "extracting" not in result.stderr


def test_out_inside_the_folder_is_not_rescored_on_the_next_run(library, tmp_path, model_path, cache_root):
    before = digests_of(library)
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(library), "--move")
    second = keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(library), "--move")
    assert "scanned 2," in second.stdout  # only the two broken files are left outside keep/ and trash/
    sorted_files = digests_of(library / "keep") | {f"t/{k}": v for k, v in digests_of(library / "trash").items()}
    assert sorted(sorted_files.values()) == sorted(v for k, v in before.items() if "broken" not in k)
    journals = sorted(library.glob("undo-*.jsonl"))
    assert len(journals) == 1  # the second run moved nothing, so it left no journal
    keeptrash("undo", str(journals[0]))
    outputs = (".csv", ".html", ".jsonl", ".keeptrash-cull.json")
    assert {k: v for k, v in digests_of(library).items() if not k.endswith(outputs)} == before


def test_an_extreme_strip_is_scored_from_its_middle(tmp_path, model_path, cache_root):
    strip = np.asarray(livec("100.jpg").resize((40000, 10)))
    Image.fromarray(strip).save(tmp_path / "strip.png")
    scores, failed = score_photos([tmp_path / "strip.png"], load_scoring_model(model_path), cache_root, MAX_PIXELS)
    assert failed == []
    assert (scores.iloc[0]["width"], scores.iloc[0]["height"]) == (40000, 10)


def test_a_model_on_principal_components_scores_and_explains_photos(messy_folder, tmp_path, cache_root):
    root, _ = messy_folder
    path = train_livec_model(CULL_MODEL_PHOTOS, 30, cache_root, tmp_path / "pca.cbm", pca_components=8)
    model = load_scoring_model(path)
    assert list(model.classifier.feature_names_[:8]) == [f"pca_{i:03d}" for i in range(8)]
    photos = [root / name for name in ("upright.jpg", "phone-rotated.jpg", "grey.jpg", "cmyk.jpg")]
    scores, failed = score_photos(photos, model, cache_root, MAX_PIXELS)
    assert failed == [] and len(scores) == 4 and scores["keep_probability"].between(0, 1).all()
    assert not scores["reason"].str.contains("pca_").any()  # components are summed into "image content"


def test_a_model_with_a_ridge_score_scores_and_explains_photos(messy_folder, tmp_path, cache_root):
    root, _ = messy_folder
    path = train_livec_model(CULL_MODEL_PHOTOS, 30, cache_root, tmp_path / "ridge.cbm", ridge_score=True)
    model = load_scoring_model(path)
    assert model.classifier.feature_names_[0] == "ridge_score"
    photos = [root / name for name in ("upright.jpg", "phone-rotated.jpg", "grey.jpg", "cmyk.jpg")]
    scores, failed = score_photos(photos, model, cache_root, MAX_PIXELS)
    assert failed == [] and len(scores) == 4 and scores["keep_probability"].between(0, 1).all()
    assert not scores["reason"].str.contains("ridge_score").any()  # the embedding's verdict counts as "image content"


def test_a_regress_model_scores_photos_with_its_calibrated_keep_probability(messy_folder, tmp_path, cache_root):
    root, _ = messy_folder
    path = train_livec_model(CULL_MODEL_PHOTOS, 30, cache_root, tmp_path / "regress.cbm", ridge_score=True, objective="regress")
    model = load_scoring_model(path)
    photos = [root / name for name in ("upright.jpg", "phone-rotated.jpg", "grey.jpg", "cmyk.jpg")]
    scores, failed = score_photos(photos, model, cache_root, MAX_PIXELS)
    assert failed == [] and len(scores) == 4
    assert model.classifier.get_all_params()["loss_function"] == "RMSE"
    assert scores["keep_probability"].between(0, 1).all()
    assert ((scores["keep_probability"] >= model.threshold) == (scores["decision"] == KEEP)).all()


def test_cull_never_replaces_or_writes_through_what_a_person_put_in_out(library, tmp_path, model_path, cache_root):
    """A person's own keeptrash.csv, a contact_sheet.html that links to a photo elsewhere, a keep/ that links to a
    folder elsewhere: each refused in one line before any scoring, nothing written or moved. A rerun into cull's own
    output replaces its own files; once the person edits one, it is theirs."""
    elsewhere = tmp_path / "elsewhere"
    photo = copy_photos([PHOTO_NAMES[0]], elsewhere)[0]
    planted = {
        "own-csv": lambda out: (out / CSV_NAME).write_text("my own notes\n"),
        "linked-sheet": lambda out: (out / "contact_sheet.html").symlink_to(photo),
        "linked-keep": lambda out: (out / "keep").symlink_to(elsewhere, target_is_directory=True),
    }
    before, elsewhere_before = digests_of(library), digests_of(elsewhere)
    for case, plant in planted.items():
        out = tmp_path / case
        out.mkdir()
        plant(out)
        out_before = sorted(os.listdir(out))
        result = keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), "--move", check=False)
        assert result.returncode == 2, case
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"keeptrash: error: {out}/"), (case, result.stderr)
        assert sorted(os.listdir(out)) == out_before, case
        assert digests_of(library) == before and digests_of(elsewhere) == elsewhere_before, case
    assert (tmp_path / "own-csv" / CSV_NAME).read_text() == "my own notes\n"
    out = tmp_path / "out"
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out))
    keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out))  # its own files: replaced
    with (out / CSV_NAME).open("a") as csv:
        csv.write("my note\n")
    result = keeptrash("cull", str(library), "-r", "--model", str(model_path), "--out", str(out), check=False)
    assert result.returncode == 2 and f"{out}/{CSV_NAME}: exists and is not a file keeptrash cull wrote" in result.stderr
    assert (out / CSV_NAME).read_text().endswith("my note\n")


FORMULA_NAMES = ("=HYPERLINK(1).jpg", "+1+2.jpg", "-2+3.jpg", "@SUM(A1).jpg", "\tTab.jpg", "\rCR.jpg")


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(tmp_path, model_path, cache_root):
    """`keeptrash cull .` lists photos by names relative to the folder, so a name is a cell's start."""
    photos = tmp_path / "photos"
    for name, source in zip((*FORMULA_NAMES, "plain.jpg"), sorted(os.listdir(LIVEC_IMAGES))):
        copy_photos([source], photos)
        (photos / source).rename(photos / name)
    (photos / "=broken.jpg").write_bytes(b"not a photo")  # a skipped row carries its path too
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", ".", "--model", str(model_path), "--out", str(tmp_path / "out")]
    assert subprocess.run(command, cwd=photos, capture_output=True).returncode == 0
    with (tmp_path / "out" / CSV_NAME).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    written = {row["path"]: row for row in rows}
    names = (*FORMULA_NAMES, "=broken.jpg")
    assert set(written) == {"'" + name for name in names} | {"plain.jpg"}
    assert {spreadsheet_text(cell) for cell in written} == {*names, "plain.jpg"}
    assert written["'=broken.jpg"]["decision"] == "skipped"
    # Numbers stay numbers: no numeric cell is quoted, negative ones included.
    numeric = ("keep_probability", *STAT_NAMES)
    scored = [row for row in rows if row["decision"] != "skipped"]
    assert all(not row[column].startswith("'") and float(row[column]) == float(row[column]) for row in scored for column in numeric)
    assert any(row[column].startswith("-") for row in scored for column in numeric)  # e.g. a log10 sharpness
