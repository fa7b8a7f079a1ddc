"""A run's files stay consistent: the end of training changes the model, metrics.json and
the card together or not at all; a trained run's dataset is not replaced behind its
model's back; one training at a time per output folder."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from huggingtweets import TrainOptions, make_bot
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run with a tiny model, its metrics and its card."""
    run = tmp_path_factory.mktemp("consistency") / "romeo"
    options = TrainOptions(base_model="tiny", max_steps=2)
    make_bot(run, ["sample:romeo"], train=options, evaluate="never")
    return run


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to / run.name)
    return to / run.name


def _outputs(run: Path) -> dict[str, bytes]:
    """Every byte of model/ and metrics.json."""
    files = {p.relative_to(run).as_posix(): p.read_bytes() for p in (run / "model").rglob("*")}
    files["metrics.json"] = (run / "metrics.json").read_bytes()
    return files


def _hidden(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith("."))


# -- item 6: early_stopping_patience bounded; model, metrics and card together ----------


def test_early_stopping_patience_has_an_upper_bound(trained_run):
    with pytest.raises(OptionError, match=r"must be >=1, <=1000 \(got 1001\)"):
        TrainOptions(early_stopping_patience=1001)
    result = run_cli(
        "train", trained_run, "--base-model", "tiny", "--early-stopping", 2**70, expect=2
    )
    assert "--early-stopping must be >=1, <=1000" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("train", "--help")
    assert "[>=1, <=1000]" in " ".join(result.stdout.split())


def test_a_failure_while_saving_the_metrics_changes_nothing(trained_run, tmp_path, monkeypatch):
    run = _copy(trained_run, tmp_path)
    before = _outputs(run)
    recipe = importlib.import_module("huggingtweets.train.recipe")  # `train` is the function

    def disk_full(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recipe, "write_json", disk_full)
    with pytest.raises(OSError, match="No space left"):
        make_bot(run, train=TrainOptions(base_model="tiny", max_steps=2, seed=7), evaluate="never")
    assert _outputs(run) == before
    assert _hidden(run) == []


def test_a_failure_while_writing_the_card_changes_nothing(trained_run, tmp_path, monkeypatch):
    run = _copy(trained_run, tmp_path)
    before = _outputs(run)
    import huggingtweets.card.model_card as model_card

    def broken(*args, **kwargs):
        raise HuggingtweetsError("cannot draw the preview")

    monkeypatch.setattr(model_card, "write_card", broken)
    with pytest.raises(HuggingtweetsError, match="cannot draw the preview"):
        make_bot(run, train=TrainOptions(base_model="tiny", max_steps=2, seed=7), evaluate="never")
    assert _outputs(run) == before
    assert _hidden(run) == []


def test_a_successful_training_changes_model_metrics_and_card_together(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    before = _outputs(run)
    bot = make_bot(
        run, train=TrainOptions(base_model="tiny", max_steps=2, seed=7), evaluate="never"
    )
    after = _outputs(run)
    assert after["model/model.safetensors"] != before["model/model.safetensors"]
    assert after["metrics.json"] != before["metrics.json"] and b'"seed": 7' in after["metrics.json"]
    assert after["model/README.md"] != before["model/README.md"]
    assert bot.card == run / "model" / "README.md" and bot.trained.model_dir == run / "model"
    assert _hidden(run) == []


# -- item 8: a trained run's dataset is not replaced by other accounts' posts -------------


def test_prepare_sources_into_a_trained_run_is_refused_without_overwrite(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    stats = (run / "dataset" / "stats.json").read_bytes()
    result = run_cli("prepare", "sample:juliet", "--out", run, expect=2)
    assert "already has a trained model" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (run / "dataset" / "stats.json").read_bytes() == stats
    assert sorted(p.name for p in (run / "posts").glob("*.jsonl")) == ["romeo.jsonl"]
    run_cli("prepare", "--out", run)  # its own posts again: allowed
    run_cli("prepare", "sample:juliet", "--out", run, "--overwrite")
    assert '"juliet"' in (run / "dataset" / "stats.json").read_text()


def test_a_trial_model_counts_as_trained(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    (run / "trials" / "1").mkdir(parents=True)
    shutil.move(run / "model", run / "trials" / "1" / "model")
    result = run_cli("prepare", "sample:juliet", "--out", run, expect=2)
    assert "already has a trained model" in result.stderr


def test_the_api_refuses_a_trained_run_id_with_409(trained_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from huggingtweets.serve.api import create_app
    from huggingtweets.serve.config import ServeConfig

    runs = tmp_path / "runs"
    runs.mkdir()
    run = _copy(trained_run, runs)
    stats = (run / "dataset" / "stats.json").read_bytes()
    with TestClient(create_app(ServeConfig(runs_dir=runs), ui=False)) as client:
        answer = client.post("/api/v1/runs", json={"sources": ["sample:juliet"], "run_id": "romeo"})
        assert answer.status_code == 409, answer.text
        assert "already has a trained model" in answer.text and str(tmp_path) not in answer.text
        assert client.get("/api/v1/jobs").json() == []
    assert (run / "dataset" / "stats.json").read_bytes() == stats


# -- item 10: one training at a time per output folder ------------------------------------


def test_a_second_training_of_a_run_is_refused_until_the_first_ends(trained_run, tmp_path):
    """Two real processes: the second `train` (and a `prepare`) of a run being trained is
    refused in one line naming it; once the first is killed (-9), the OS has released the
    lock and training goes on."""
    run = _copy(trained_run, tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", "train", str(run), "--base-model", "tiny",
         "--max-steps", "100000", "--no-card"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(run.glob(f".outputs.{first.pid}.*")):  # made once the lock is held
            assert first.poll() is None and time.monotonic() < deadline, "train did not start"
            time.sleep(0.05)
        result = run_cli("train", run, "--base-model", "tiny", "--max-steps", 1, expect=2)
        assert f"{run} is being trained by another process" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        result = run_cli("prepare", "--out", run, expect=2)
        assert "is being trained by another process" in result.stderr
    finally:
        first.kill()
        first.wait(timeout=30)
    run_cli("train", run, "--base-model", "tiny", "--max-steps", 1, "--no-card")
    assert (run / "model" / "model.safetensors").is_file() and _hidden(run) == []
