"""Sharing runs and experiments through an S3 remote: real DVC with dvc-s3 against a real S3 server on 127.0.0.1
(tests/s3_server.py). A teammate's whole review path from a fresh clone, and the faults a team meets: wrong
credentials, a missing bucket, the server stopping mid-push."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dvc_repos import dvc, run
from s3_server import s3_server

BUCKET = "keeptrash-team"
REMOTE = "team"
EXPERIMENT = "fewer-trees"


def keeptrash(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keeptrash.cli", *args], cwd=repo, capture_output=True, text=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The S3 server, and the environment the dvc commands read credentials from: the server's access key and nothing
    from this machine's own AWS set-up."""
    no_aws_config = tmp_path_factory.mktemp("aws") / "absent"
    with s3_server() as server, pytest.MonkeyPatch.context() as patch:
        environment = {
            **server.credentials, "AWS_CONFIG_FILE": str(no_aws_config), "AWS_SHARED_CREDENTIALS_FILE": str(no_aws_config),
            "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1",
        }
        for name, value in environment.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def origin(pipeline_repo, s3, tmp_path_factory) -> Path:
    """The team's git repo: the demo run with the S3 remote committed in .dvc/config (its URL and endpoint, no
    credentials), then an experiment on it; the run's outputs pushed to S3 by `dvc push`."""
    repo = pipeline_repo
    dvc(repo, "remote", "add", "--default", REMOTE, f"s3://{BUCKET}/keeptrash")
    dvc(repo, "remote", "modify", REMOTE, "endpointurl", s3.endpoint)
    run(repo, "git", "add", ".dvc/config")
    run(repo, "git", "commit", "-qm", "S3 remote")
    # In a temporary copy of the repo as a queued one runs, but with no queue worker: under load one was seen never to
    # exit (its monitor thread died reading a half-written message), and the test waited on `dvc queue start` for it.
    dvc(repo, "exp", "run", "--temp", "--name", EXPERIMENT, "-S", "train.iterations=30")
    bare = tmp_path_factory.mktemp("origin") / "keeptrash.git"
    run(bare.parent, "git", "init", "-q", "--bare", str(bare))
    run(repo, "git", "remote", "add", "origin", str(bare))
    run(repo, "git", "push", "-q", "origin", "HEAD")
    assert "pushed" in dvc(repo, "push").stdout
    return bare


def clone(origin: Path, folder: Path) -> Path:
    run(folder.parent, "git", "clone", "-q", str(origin), str(folder))
    return folder


def stage_outputs(repo: Path) -> dict[str, bytes]:
    """Every file of the stages' outputs in dvc.lock, by path: the ones DVC caches are what `dvc push` sends and `dvc
    pull` brings back, the others (metrics, plots) come with git."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    files = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = repo / out["path"]
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    files[str(file.relative_to(repo))] = file.read_bytes()
    return files


def workspace(repo: Path) -> dict[str, str]:
    """Every file in repo, outputs and DVC's cache included, with its digest; not git's or DVC's own bookkeeping."""
    return {
        str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and path.relative_to(repo).parts[0] != ".git" and path.relative_to(repo).parts[:2] != (".dvc", "tmp")
    }


def whole_objects(s3, prefix: str) -> list[str]:
    """The bucket's objects under prefix, as bucket/key, each checked to hold the bytes its name (their MD5) says."""
    bucket, keys = s3.client("s3"), []
    for page in bucket.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = bucket.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            assert hashlib.md5(body).hexdigest() == "".join(item["Key"].split("/")[-2:]).removesuffix(".dir"), item["Key"]
            keys.append(f"{BUCKET}/{item['Key']}")
    return sorted(keys)


def test_a_teammate_pulls_the_run_and_an_experiment_from_s3_and_reviews_it(pipeline_repo, origin, s3, tmp_path):
    dvc(pipeline_repo, "exp", "push", "origin", EXPERIMENT)  # the experiment's git ref and its outputs

    teammate = clone(origin, tmp_path / "teammate")
    dvc(teammate, "pull")
    pulled = stage_outputs(teammate)
    assert "models/model.cbm" in pulled and "data/test_predictions.parquet" in pulled
    assert pulled == stage_outputs(pipeline_repo)
    assert "Data and pipelines are up to date" in dvc(teammate, "status").stdout

    dvc(teammate, "exp", "pull", "origin", EXPERIMENT)
    assert EXPERIMENT in dvc(teammate, "exp", "list", "--name-only").stdout.split()
    out = tmp_path / "report"
    result = keeptrash(teammate, "report", "--base", "HEAD", "--new", EXPERIMENT, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "report.md").read_text().startswith(f"# keeptrash review: {EXPERIMENT} against HEAD")


def test_wrong_credentials_are_named_and_the_clone_is_left_as_it_was(pipeline_repo, origin, tmp_path, monkeypatch):
    teammate = clone(origin, tmp_path / "teammate")
    before = workspace(teammate)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-teams-secret")
    pull = dvc(teammate, "pull", check=False)
    assert pull.returncode != 0
    assert "Forbidden: An error occurred (403)" in pull.stderr and "failed to pull data from the cloud" in pull.stderr, pull.stderr
    assert workspace(teammate) == before
    push = dvc(pipeline_repo, "push", check=False)
    assert push.returncode != 0 and "The request signature we calculated does not match" in push.stderr, push.stderr


def test_a_report_on_a_revision_not_pulled_reads_it_from_s3_and_a_refusal_is_one_clear_line(origin, tmp_path, monkeypatch):
    teammate = clone(origin, tmp_path / "teammate")
    before = workspace(teammate)
    report = ("report", "--base", "HEAD", "--new", "HEAD", "--out", str(tmp_path / "report"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-teams-secret")
    refused = keeptrash(teammate, *report)
    assert refused.returncode == 2
    assert refused.stderr.startswith("keeptrash: error: HEAD: cannot read data/test_predictions.parquet") and "Forbidden" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert workspace(teammate) == before
    monkeypatch.undo()
    assert keeptrash(teammate, *report).returncode == 0  # the outputs streamed from the remote, none pulled
    assert workspace(teammate) == before


def test_a_missing_bucket_is_named_and_the_clone_is_left_as_it_was(pipeline_repo, origin, tmp_path):
    teammate = clone(origin, tmp_path / "teammate")
    for repo in (teammate, pipeline_repo):
        dvc(repo, "remote", "modify", "--local", REMOTE, "url", "s3://no-such-bucket/keeptrash")
    before = workspace(teammate)
    try:
        for repo, command in ((teammate, "pull"), (pipeline_repo, "push")):
            result = dvc(repo, command, check=False)
            assert result.returncode != 0
            assert "The specified bucket does not exist" in result.stderr, result.stderr
    finally:
        dvc(pipeline_repo, "remote", "modify", "--local", "--unset", REMOTE, "url")
    assert workspace(teammate) == before


def test_a_push_cut_off_by_the_server_stopping_resumes_without_sending_again_what_arrived(pipeline_repo, origin, s3):
    dvc(pipeline_repo, "remote", "modify", "--local", REMOTE, "url", f"s3://{BUCKET}/interrupted")
    try:
        mark = len(s3.stored_puts)
        s3.stop_after_puts(3)
        cut = dvc(pipeline_repo, "push", check=False)
        assert s3.stopped.is_set()
        assert cut.returncode != 0
        assert "failed to push data to the cloud" in cut.stderr and "Could not connect to the endpoint URL" in cut.stderr, cut.stderr
        not_sent = int(re.search(r"(\d+) files failed to upload", cut.stderr).group(1))
        arrived = s3.stored_puts[mark:]
        assert len(arrived) == 3
        s3.start()
        assert whole_objects(s3, "interrupted/") == sorted(arrived)
        mark = len(s3.stored_puts)
        assert f"{not_sent} files pushed" in dvc(pipeline_repo, "push").stdout
        resumed = s3.stored_puts[mark:]
        assert len(set(resumed)) == len(resumed) == not_sent
        assert not set(resumed) & set(arrived)
        assert "in sync" in dvc(pipeline_repo, "status", "--cloud").stdout
    finally:
        dvc(pipeline_repo, "remote", "modify", "--local", "--unset", REMOTE, "url")
