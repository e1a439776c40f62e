"""The review loop as a person runs it: `keeptrash cull` writes the contact sheet, the person flips photos in a real
(headless) Chromium and exports their decisions, and the next `dvc repro` trains on them; and `--order uncertain`.

One pipeline repo (the module's copy of the session's demo pipeline, 48 rated demo photos) gives the model; the culled
folder holds renamed copies of some of its rated photos, so decisions can only find them by sha256.
"""

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from keeptrash.model.training import load_model
from dvc_repos import dvc, read_metrics, stages_run

CULLED = 8  # rated photos of the pipeline repo copied, renamed, into the folder culled
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests_below(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): sha256_of(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def culled(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`keeptrash cull --order uncertain` (the real console script) of renamed copies of CULLED rated photos and a
    broken file; the original path of each copy is in "originals" (copy name -> repo-relative path)."""
    root = tmp_path_factory.mktemp("holiday")
    folder = root / "holiday"
    folder.mkdir()
    ratings = pd.read_csv(pipeline_repo / "data/sample/livec/ratings.csv").head(CULLED)
    originals = {}
    for number, path in enumerate(ratings["path"], start=1):
        name = f"IMG_{number:04d}.jpg"
        shutil.copyfile(pipeline_repo / "data/sample/livec" / path, folder / name)
        originals[name] = f"data/sample/livec/{path}"
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    before = digests_below(folder)
    out = root / "out"
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(folder), "--model", str(pipeline_repo / "models/model.cbm"),
               "--out", str(out), "--order", "uncertain"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert digests_below(folder) == before
    threshold = load_model(pipeline_repo / "models/model.cbm")[1]["decision_threshold"]
    return {"folder": folder, "out": out, "before": before, "originals": originals, "threshold": threshold}


class _Cards(HTMLParser):
    """The cards of a contact sheet, in page order: data-* attributes of each figure.photo."""

    def __init__(self):
        super().__init__()
        self.cards = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "figure" and "photo" in attributes.get("class", "").split():
            self.cards.append(attributes)


def sheet_cards(out: Path) -> list[dict]:
    parser = _Cards()
    parser.feed((out / "contact_sheet.html").read_text(encoding="utf-8"))
    return parser.cards


# --- keeptrash cull --order uncertain ------------------------------------------------------------------------------


def test_order_uncertain_lists_photos_nearest_the_threshold_first(culled):
    table = pd.read_csv(culled["out"] / "keeptrash.csv", keep_default_na=False)
    scored = table[table["decision"] != "skipped"]
    assert len(scored) == CULLED and table["decision"].iloc[-1] == "skipped"  # skipped photos last, as always
    distances = (scored["keep_probability"].astype(float) - culled["threshold"]).abs().tolist()
    assert distances == sorted(distances)
    assert distances[0] < distances[-1]  # a real spread, or the check above says nothing
    # The sheet too: each column nearest the threshold first, and every card names its photo's sha256.
    probability = dict(zip(scored["sha256"], scored["keep_probability"].astype(float)))
    cards = sheet_cards(culled["out"])
    assert sorted(card["data-sha256"] for card in cards) == sorted(scored["sha256"])
    for decision in ("keep", "trash"):
        column = [abs(probability[card["data-sha256"]] - culled["threshold"]) for card in cards if card["data-model"] == decision]
        assert column == sorted(column), decision
    assert {card["data-path"] for card in cards} == {str(culled["folder"] / name) for name in culled["originals"]}


# --- the contact sheet in headless Chromium ------------------------------------------------------------------------


@pytest.fixture
def browser_page():
    """A fresh Chromium page (its own storage) that accepts downloads; skipped when chromium or playwright is absent."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: .ci/run installs Debian's chromium package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser.new_context(accept_downloads=True).new_page()
        finally:
            browser.close()


def verdicts(page) -> list[str]:
    return page.locator("figure.photo .verdict").all_inner_texts()


def export(page, target: Path, how: str = "button") -> list[dict]:
    with page.expect_download() as download:
        if how == "button":
            page.click("#export")
        else:
            page.keyboard.press("e")
    assert download.value.suggested_filename == "keeptrash-decisions.csv"
    download.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sheet_flips_by_click_and_keyboard_and_exports_only_the_decided_photos(culled, browser_page, tmp_path):
    page = browser_page
    cards = sheet_cards(culled["out"])
    page.goto((culled["out"] / "contact_sheet.html").as_uri())
    models = [card["data-model"] for card in cards]
    assert verdicts(page) == [f"{model} (model)" for model in models]
    assert "0 decided by you" in page.inner_text("#decided")
    flipped = {"keep": "trash", "trash": "keep"}

    page.locator("figure.photo").nth(2).click()  # selects and flips the third photo
    page.keyboard.press("j")  # the fourth
    page.keyboard.press("Space")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")  # the sixth: trash, whatever the model said
    page.keyboard.press("k")
    page.keyboard.press("p")  # the fifth: keep
    page.keyboard.press("u")  # ... and back to the model's decision
    shown = verdicts(page)
    assert shown[2] == f"{flipped[models[2]]} (you; model: {models[2]})"
    assert shown[3] == f"{flipped[models[3]]} (you; model: {models[3]})"
    assert shown[4] == f"{models[4]} (model)"
    assert shown[5] == ("trash (you, as the model)" if models[5] == "trash" else "trash (you; model: keep)")
    card = page.locator("figure.photo").nth(2)
    assert flipped[models[2]] in card.get_attribute("class").split() and "changed" in card.get_attribute("class").split()
    assert page.evaluate("document.activeElement.dataset.sha256") == cards[4]["data-sha256"]

    exported = export(page, tmp_path / "decisions.csv", how="key")
    assert [list(row) for row in exported] == [["path", "sha256", "decision"]] * 3
    assert {row["sha256"]: row["decision"] for row in exported} == {
        cards[2]["data-sha256"]: flipped[models[2]], cards[3]["data-sha256"]: flipped[models[3]], cards[5]["data-sha256"]: "trash",
    }
    assert {row["path"] for row in exported} == {cards[index]["data-path"] for index in (2, 3, 5)}

    page.reload()  # a reload keeps the decisions (localStorage)
    assert verdicts(page) == shown
    page.locator("figure.photo").nth(2).click()  # flipped back: it agrees with the model, and is still the person's decision
    assert verdicts(page)[2] == f"{models[2]} (you, as the model)"
    assert len(export(page, tmp_path / "again.csv")) == 3
    assert digests_below(culled["folder"]) == culled["before"]


# --- keeptrash review: the sheet served on 127.0.0.1, decisions written as they are made ------------------------


def test_review_serves_the_sheet_and_writes_each_decision_to_the_csv(culled, browser_page, tmp_path):
    decisions = tmp_path / "own" / "decisions" / "holiday.csv"
    command = [str(Path(sys.executable).parent / "keeptrash"), "review", str(culled["out"]), "--decisions", str(decisions)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", server.stdout.readline()).group(0)  # the token: see test_review_server
        cards = sheet_cards(culled["out"])
        page = browser_page
        page.goto(url)
        page.locator("figure.photo").nth(0).click()
        page.keyboard.press("j")
        page.keyboard.press("x")
        page.wait_for_function("document.getElementById('saved').textContent.startsWith('2 decisions saved')")
        with decisions.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        flipped = {"keep": "trash", "trash": "keep"}
        assert {row["sha256"]: row["decision"] for row in rows} == {
            cards[0]["data-sha256"]: flipped[cards[0]["data-model"]], cards[1]["data-sha256"]: "trash",
        }
        # A new browser (no memory of the first) resumes from the file the server holds.
        fresh = page.context.browser.new_context().new_page()
        fresh.goto(url)
        fresh.wait_for_function("document.getElementById('decided').textContent.startsWith('2 decided')")
        assert fresh.locator("figure.photo .verdict").nth(1).inner_text().startswith("trash (you")
        # The file wins over a browser's memory: edited by hand to one decision, the first browser shows just that one.
        decisions.write_text(f"path,sha256,decision\r\nx.jpg,{cards[1]['data-sha256']},keep\r\n", encoding="utf-8")
        page.reload()
        page.wait_for_function("document.getElementById('decided').textContent.startsWith('1 decided')")
        assert page.locator("figure.photo .verdict").nth(1).inner_text().startswith("keep (you")
        assert page.locator("figure.photo .verdict").nth(0).inner_text().endswith("(model)")
        # A request naming another host (DNS rebinding) and a post the labels stage could not read are refused.
        foreign = urllib.request.Request(url, headers={"Host": "photos.example"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(foreign, timeout=10)
        bad = urllib.request.Request(
            url.replace("/?", "/decisions?"), data=json.dumps({"decisions": [{"path": "a.jpg", "sha256": "abc", "decision": "keep"}]}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(bad, timeout=10)
        with decisions.open(newline="", encoding="utf-8") as handle:
            assert len(list(csv.DictReader(handle))) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert digests_below(culled["folder"]) == culled["before"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "{tmp}: no contact_sheet.html in it or in {name}-keeptrash; run keeptrash cull {tmp} first"),
        (["--port", "70000"], "keeptrash review: argument --port: '70000' is not a port number (0 to 65535)"),
    ],
)
def test_review_bad_input_is_one_clear_line(tmp_path, args, message):
    command = [str(Path(sys.executable).parent / "keeptrash"), "review", str(tmp_path), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keeptrash: error: ")
    assert message.format(tmp=tmp_path, name=tmp_path.name) in lines[0]


# --- the whole loop: flip two photos, export, dvc repro trains on them ---------------------------------------------


def test_two_flipped_photos_become_labels_and_the_next_repro_trains_on_them(pipeline_repo, culled, browser_page):
    page = browser_page
    cards = sheet_cards(culled["out"])
    labels_before = pd.read_parquet(pipeline_repo / "data/labels.parquet").set_index("path")["label"]
    label_of_card = [labels_before[culled["originals"][Path(card["data-path"]).name]] for card in cards]
    # Two photos the model and the current label agree on, so that flipping the model's decision changes the label.
    first, second = [index for index, card in enumerate(cards) if int(card["data-model"] == "keep") == label_of_card[index]][:2]
    page.goto((culled["out"] / "contact_sheet.html").as_uri())
    page.locator("figure.photo").nth(first).click()
    for _ in range(second - first):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    decisions_file = pipeline_repo / "data/own/decisions/holiday.csv"
    decisions_file.parent.mkdir(parents=True)
    exported = export(page, decisions_file)
    assert len(exported) == 2

    repo_photos = digests_below(pipeline_repo / "data/sample/livec/images")
    params = yaml.safe_load((pipeline_repo / "params.yaml").read_text())
    params["labels"]["own_decisions"] = ["data/own/decisions/holiday.csv"]
    (pipeline_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro = dvc(pipeline_repo, "repro")
    assert {"labels", "train", "benchmark"} <= stages_run(repro.stdout)

    # The two photos, found by sha256 under their names in the repo, now carry the person's decisions.
    labels_after = pd.read_parquet(pipeline_repo / "data/labels.parquet").set_index("path")["label"]
    name_of = {card["data-sha256"]: Path(card["data-path"]).name for card in cards}
    decided = {culled["originals"][name_of[row["sha256"]]]: int(row["decision"] == "keep") for row in exported}
    for path, label in decided.items():
        assert labels_before[path] != label and labels_after[path] == label, path
    others = labels_before.index.difference(list(decided))
    assert labels_after[others].equals(labels_before[others])
    summary = read_metrics(pipeline_repo, "labels")["own_decisions"]
    assert (summary["files"], summary["rows"], summary["applied"], summary["changed"], summary["unmatched"]) == (1, 2, 2, 2, 0)

    # The metrics move: the labels' and the model's.
    diff = json.loads(dvc(pipeline_repo, "metrics", "diff", "--json").stdout)
    assert "own_decisions.changed" in diff["metrics/labels.json"]
    assert diff.get("metrics/train.json") or diff.get("metrics/benchmark.json"), sorted(diff)
    assert digests_below(pipeline_repo / "data/sample/livec/images") == repo_photos
    assert digests_below(culled["folder"]) == culled["before"]
    # The decisions file is a dependency: editing it alone reruns the labels stage.
    assert "Data and pipelines are up to date" in dvc(pipeline_repo, "status").stdout
    decisions_file.write_text(decisions_file.read_text().splitlines()[0] + "\n", encoding="utf-8")
    assert "labels" in dvc(pipeline_repo, "status").stdout
