"""Review artefacts in a real DVC repo: metrics/summary.json, `keeptrash report` between git revisions and
experiments, and the `dvc plots` pages drawn by headless Chromium with no network."""

import json
import runpy
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO
from dvc_repos import build_pipeline_repo, dvc, read_metrics, run, run_queue, set_params, with_its_feature_cache

# Enough photos for a test split of about 40, and features good enough (multi-level pooling, at a
# lower resolution to stay cheap) that a broken model is told apart from noise.
PHOTOS = 200
REVIEW_FEATURES = {"features__pooling": "multilevel", "features__resolution": 384}


def keeptrash(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "keeptrash.cli", *args], cwd=repo, capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"keeptrash {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def review_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commit 1: the baseline run. Commit 2: a deliberately broken model (one tree of depth 1 on the embedding's first
    principal component alone: no ridge score, no image statistics, which alone rank photos well). Then a queued
    experiment on commit 2 named 'restored' that puts the baseline's training settings back."""
    repo = build_pipeline_repo(tmp_path_factory.mktemp("review"), photos=PHOTOS, **REVIEW_FEATURES)
    with with_its_feature_cache(repo):
        run(repo, "git", "tag", "baseline")
        set_params(repo, train__iterations=1, train__depth=1, train__ridge_score=False, train__feature_set="cnn", train__pca_components=1)
        dvc(repo, "repro")
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-qm", "broken model")
        run(repo, "git", "tag", "broken")
        dvc(repo, "exp", "run", "--queue", "--name", "restored", "-S", "train.iterations=60", "-S", "train.depth=2", "-S", "train.ridge_score=true",
            "-S", "train.feature_set=stats")
        run_queue(repo, jobs=1)
        assert "Success" in dvc(repo, "queue", "status").stdout
        yield repo


# --- metrics/summary.json: the headline first ---------------------------------------------------------------

def test_summary_is_the_headline_with_intervals(review_repo):
    train, benchmark = (read_metrics(review_repo, name) for name in ("train", "benchmark"))
    summary = read_metrics(review_repo, "summary")["headline"]
    assert len(summary) <= 16
    assert summary["overfitting_gap"] == train["overfitting_gap"]
    assert summary["overfitting_verdict"] == train["overfitting_verdict"]
    for name in ("accuracy", "balanced_accuracy", "roc_auc", "spearman"):
        low, high = benchmark["ci95"][name]
        assert low <= summary[f"test_{name}"] <= high, name
        assert summary[f"test_{name}_95ci"] == f"{low:.3f} to {high:.3f}"
    low, high = (float(value) for value in summary["overfitting_gap_95ci"].split(" to "))
    assert low <= summary["overfitting_gap"] <= high
    diff = json.loads(dvc(review_repo, "metrics", "diff", "baseline", "broken", "--targets", "metrics/summary.json", "--json").stdout)
    assert list(diff) == ["metrics/summary.json"]
    assert diff["metrics/summary.json"]["headline.test_roc_auc"]["new"] < diff["metrics/summary.json"]["headline.test_roc_auc"]["old"]
    # Its columns in `dvc exp show` are the headline ones only, and no other file's are renamed by them.
    columns = dvc(review_repo, "exp", "show", "--csv", "--drop", ".*", "--keep", r"Experiment|headline\.").stdout.splitlines()[0].split(",")
    assert columns == ["Experiment", *(f"headline.{key}" for key in summary)]
    assert {"overfitting_gap", "test_accuracy"} <= set(dvc(review_repo, "exp", "show", "--csv").stdout.splitlines()[0].split(","))


def test_summary_puts_the_cross_validation_of_the_train_stage_beside_each_figure(review_repo):
    train_file = review_repo / "metrics/train.json"
    train = json.loads(train_file.read_text())
    spreads = {"accuracy": (0.71, 0.04), "balanced_accuracy": (0.69, 0.05), "roc_auc": (0.77, 0.035), "spearman": (0.41, 0.06), "overfitting_gap": (4.25, 2.5)}
    train["cv"] = {"folds": 5, "repeats": 2, **{name: {"mean": mean, "sd": sd} for name, (mean, sd) in spreads.items()}}
    train_file.write_text(json.dumps(train))
    try:
        result = dvc(review_repo, "repro", "--single-item", "benchmark")
        assert "Running stage 'benchmark'" in result.stdout  # metrics/train.json is one of its deps
        summary = read_metrics(review_repo, "summary")["headline"]
    finally:
        run(review_repo, "git", "checkout", "--", ".")
        dvc(review_repo, "checkout")
    assert summary["test_roc_auc_cv"] == "0.770 ± 0.035"
    assert summary["test_spearman_cv"] == "0.410 ± 0.060"
    assert summary["overfitting_gap_cv"] == "4.2 ± 2.5"
    assert len(summary) <= 16


# --- keeptrash report -----------------------------------------------------------------------------------------

VERDICT = 4  # the headline table's cells after the figure's name: base, new, change, interval, verdict, [CV mean ± sd]
# The figure whose verdict the tests check. The broken model is a single split, two probabilities: ROC AUC's
# paired interval on 41 photos full of ties stays wide however far it falls, while the ranking against people's
# ratings is told apart (-0.6 here, the interval wholly below zero).
SPEARMAN = "Test Spearman vs people's ratings"


def headline_rows(report: str) -> dict[str, list[str]]:
    """The headline table's cells by figure name."""
    rows = {}
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| Test ") or line.startswith("| Overfitting gap"):
            rows[cells[0]] = cells[1:]
    return rows


def assert_png_is_a_picture(path: Path) -> None:
    """Not blank: a real share of the image is neither background white nor a single colour."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    ink = (pixels < 235).any(axis=2)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200, path
    assert ink.mean() > 0.02, path
    assert saturated.sum() > 300, path  # the coloured lines of each revision, or photos
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, path


def test_report_finds_the_broken_model_worse_between_git_revisions(review_repo, tmp_path):
    out = tmp_path / "report"
    result = keeptrash(review_repo, "report", "--base", "baseline", "--new", "broken", "--out", str(out))
    assert "report: wrote" in result.stdout
    report = (out / "report.md").read_text()
    rows = headline_rows(report)
    assert rows[SPEARMAN][VERDICT] == "**worse**"
    base_cv, new_cv = rows["Test ROC AUC"][VERDICT + 1].split(" → ")  # both revisions cross-validated in train
    assert float(base_cv.split(" ± ")[0]) > float(new_cv.split(" ± ")[0])
    assert "\n**broken is worse than baseline on " in report and SPEARMAN in report.split("\n")[2]
    base, new, change = (float(cell) for cell in rows["Test ROC AUC"][:3])
    assert change == pytest.approx(new - base, abs=0.0011) and change < 0
    low, high = (float(value) for value in rows["Test ROC AUC"][3].split(" to "))
    assert low <= change <= high
    spearman_change = float(rows[SPEARMAN][2])
    low, high = (float(value) for value in rows[SPEARMAN][3].split(" to "))
    assert low <= spearman_change <= high < 0
    baseline_auc = json.loads(run(review_repo, "git", "show", "baseline:metrics/benchmark.json").stdout)["roc_auc"]
    assert base == pytest.approx(baseline_auc, abs=0.0006)
    assert rows["Overfitting gap (points, train − validation accuracy)"][VERDICT].startswith("**none")
    assert "Both revisions scored the same" in report
    links = [line[line.index("](") + 2 : -1] for line in report.splitlines() if line.startswith("![")]
    assert {"learning_curve.png", "roc.png", "calibration.png", "degradation.png", "changed_decisions.png"} <= set(links)
    for link in links:
        assert_png_is_a_picture(out / link)
    changed = [line for line in report.splitlines() if line.startswith("| own:") or line.startswith("| ava:")]
    assert changed and all(line.count("(keep)") + line.count("(trash)") == 2 for line in changed)


def test_report_of_a_revision_against_itself_is_within_noise_everywhere(review_repo, tmp_path):
    out = tmp_path / "report"
    keeptrash(review_repo, "report", "--base", "HEAD", "--out", str(out))  # the workspace is HEAD, reproduced
    report = (out / "report.md").read_text()
    rows = headline_rows(report)
    for name in ("Test accuracy", "Test balanced accuracy", "Test ROC AUC", "Test Spearman vs people's ratings"):
        assert rows[name][2] == "+0.000" and rows[name][3] == "+0.000 to +0.000" and rows[name][VERDICT] == "**within noise**", name
    assert "## Decisions that changed (0 of" in report
    assert not (out / "changed_decisions.png").exists()


def test_report_on_a_queued_experiment_finds_it_better(review_repo, tmp_path):
    out = tmp_path / "report"
    keeptrash(review_repo, "report", "--base", "broken", "--new", "restored", "--out", str(out))
    report = (out / "report.md").read_text()
    assert report.startswith("# keeptrash review: restored against broken")
    assert headline_rows(report)[SPEARMAN][VERDICT] == "**better**"
    assert_png_is_a_picture(out / "roc.png")


def test_report_of_an_unknown_revision_is_one_clear_line(review_repo, tmp_path):
    result = keeptrash(review_repo, "report", "--base", "no-such-revision", "--out", str(tmp_path / "r"), check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "keeptrash: error: 'no-such-revision': neither a git revision nor an experiment name; see `git log` or `dvc exp show`"
    ]
    assert not (tmp_path / "r").exists()


# --- dvc plots pages with no network --------------------------------------------------------------------------

class MarkCounter(HTMLParser):
    """Data marks Vega drew into each plot's SVG: paths, lines and rects inside its role-mark groups."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[bool] = []
        self.marks: dict[str, int] = {}
        self.plot = None

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "div" and "vega-embed" in classes:
            self.plot = attributes["id"]
            self.marks[self.plot] = 0
        elif tag == "g":
            self.groups.append("role-mark" in classes)
        elif tag in ("path", "line", "rect") and any(self.groups) and len(attributes.get("d") or "drawn") > 4:
            self.marks[self.plot] += 1

    def handle_endtag(self, tag) -> None:
        if tag == "g" and self.groups:
            self.groups.pop()


def marks_drawn_offline(page: Path, profile: Path) -> dict[str, int]:
    """Open the page in headless Chromium with no network; each plot div's drawn marks."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", page.as_uri(),
    ]
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-n", *command]  # a network namespace with no interfaces up
    else:
        command += ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]  # every request to a closed port
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    counter = MarkCounter()
    counter.feed(dom)
    return counter.marks


def plot_ids(repo: Path) -> int:
    return len(yaml.safe_load((repo / "dvc.yaml").read_text())["plots"])


def test_plots_pages_draw_every_plot_with_no_network(review_repo, tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed: .ci/run installs Debian's chromium package (apt-get install chromium)")
    show, diff = tmp_path / "show", tmp_path / "diff"
    dvc(review_repo, "plots", "show", "-o", str(show))
    dvc(review_repo, "plots", "diff", "baseline", "broken", "-o", str(diff))
    for page in (show, diff):
        html = (page / "index.html").read_text()
        assert "cdn.jsdelivr.net" not in html and "<script src=" not in html
        marks = marks_drawn_offline(page / "index.html", tmp_path / f"profile-{page.name}")
        assert len(marks) == plot_ids(review_repo), marks
        assert all(count > 0 for count in marks.values()), marks
    # The control: DVC's own page, which loads Vega from a CDN, draws nothing in the same browser.
    default_page = tmp_path / "cdn_page.html"
    from dvc_render.html import PAGE_HTML

    default_page.write_text(PAGE_HTML)
    dvc(review_repo, "plots", "show", "--html-template", str(default_page), "-o", str(tmp_path / "cdn"))
    assert "cdn.jsdelivr.net" in (tmp_path / "cdn/index.html").read_text()
    assert marks_drawn_offline(tmp_path / "cdn/index.html", tmp_path / "profile-cdn") == {}


def test_committed_plots_template_is_what_the_pinned_vl_convert_builds():
    namespace = runpy.run_path(str(REPO / "scripts/build_plots_template.py"))
    assert (REPO / ".dvc/plots_offline.html").read_text(encoding="utf-8") == namespace["page"]()
    pinned = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("vl-convert-python==")]
    assert pinned and pinned[0].split("==")[1] in (REPO / ".dvc/plots_offline.html").read_text(encoding="utf-8")[:2000]


# --- CI: the command the pull-request workflow runs -----------------------------------------------------------

def test_the_ci_review_script_reproduces_the_base_and_writes_the_report(review_repo, tmp_path):
    workflow = (REPO / ".github/workflows/review.yml").read_text()
    commands = "\n".join(step.get("run", "") for step in yaml.safe_load(workflow)["jobs"]["report"]["steps"])
    assert 'bash scripts/review.sh "origin/${{ github.base_ref }}" report' in commands
    assert "cml comment create --target=pr report/report.md" in commands
    out = tmp_path / "report"
    result = subprocess.run(["bash", str(REPO / "scripts/review.sh"), "baseline", str(out)], cwd=review_repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (out / "report.md").read_text()
    assert report.startswith("# keeptrash review: workspace against review-base")
    assert headline_rows(report)[SPEARMAN][VERDICT] == "**worse**"
    assert_png_is_a_picture(out / "roc.png")
    # Back where it started: on the branch, nothing modified, the temporary tag gone.
    assert run(review_repo, "git", "symbolic-ref", "--short", "HEAD").stdout.strip() == "master"
    assert run(review_repo, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""
    assert "review-base" not in run(review_repo, "git", "tag").stdout.split()
    assert "Data and pipelines are up to date" in dvc(review_repo, "status").stdout


def test_the_ci_review_script_refuses_uncommitted_changes(review_repo, tmp_path):
    params = review_repo / "params.yaml"
    original = params.read_text()
    params.write_text(original + "\n")
    try:
        result = subprocess.run(["bash", str(REPO / "scripts/review.sh"), "baseline", str(tmp_path / "r")], cwd=review_repo, capture_output=True, text=True)
    finally:
        params.write_text(original)
    assert result.returncode == 1
    assert result.stderr.strip() == "review: commit or stash your changes first (git status)"


# --- sharing results through a DVC remote ---------------------------------------------------------------------

def test_a_teammate_pulls_the_run_and_an_experiment_from_a_local_remote_and_reviews_it(review_repo, tmp_path):
    storage, origin, teammate = tmp_path / "dvc-storage", tmp_path / "origin.git", tmp_path / "teammate"
    run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    run(review_repo, "git", "remote", "add", "origin", str(origin))
    dvc(review_repo, "remote", "add", "--local", "--default", "shared", str(storage))
    try:
        run(review_repo, "git", "push", "-q", "origin", "master", "--tags")
        dvc(review_repo, "push")
        dvc(review_repo, "exp", "push", "origin", "restored")  # the experiment's git ref and its outputs
    finally:
        run(review_repo, "git", "remote", "remove", "origin")
        dvc(review_repo, "remote", "remove", "--local", "shared")

    run(tmp_path, "git", "clone", "-q", str(origin), str(teammate))
    dvc(teammate, "remote", "add", "--local", "--default", "shared", str(storage))
    dvc(teammate, "pull")
    assert "Data and pipelines are up to date" in dvc(teammate, "status").stdout
    assert "Running stage" not in dvc(teammate, "repro").stdout  # nothing is recomputed
    assert (teammate / "models/model.cbm").read_bytes() == (review_repo / "models/model.cbm").read_bytes()
    assert (teammate / "data/test_predictions.parquet").read_bytes() == (review_repo / "data/test_predictions.parquet").read_bytes()

    dvc(teammate, "exp", "pull", "origin", "restored")
    assert "restored" in dvc(teammate, "exp", "list", "--name-only").stdout.split()
    out = tmp_path / "report"
    keeptrash(teammate, "report", "--base", "HEAD", "--new", "restored", "--out", str(out))
    report = (out / "report.md").read_text()
    assert headline_rows(report)[SPEARMAN][VERDICT] == "**better**"
    assert_png_is_a_picture(out / "changed_decisions.png")
