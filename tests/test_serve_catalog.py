"""What ``huggingtweets serve`` lists as models (issue 19, item 20): a model given at start
and a run of ``--runs-dir`` never share a name silently. Clients name a model by that name,
so one of the two would be hidden behind the other: the real command refuses it at start,
in one line naming both; a new run is never named as a given model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.serve.catalog import Catalog

TEXTS = ["O Romeo, Romeo! wherefore art thou Romeo?"] * 20


def _tiny_model(folder: Path) -> Path:
    from huggingtweets.model.tiny import build_tiny_base

    return build_tiny_base(TEXTS, folder, vocab_size=262, n_layer=1, n_embd=16)


def _serve(*args: object) -> tuple[int, str]:
    """The real ``huggingtweets serve`` on a free port: (its exit code, its stderr) when
    it refuses to start. Serving instead (its first line says so) fails the test."""
    server = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", "serve", "--port", "0", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = server.stdout.readline()  # "" once it exits; "Serving ..." once it serves
        if first.startswith("Serving huggingtweets on "):
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=60)
            pytest.fail(f"served both under one name: {first.strip()}")
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.returncode, stderr


@pytest.mark.parametrize("run_has", ["posts", "model"])
def test_a_given_model_and_a_run_of_one_name_are_refused_at_start(tmp_path, run_has):
    """A run not trained yet (its model would be hidden once trained) or trained."""
    model = _tiny_model(tmp_path / "models" / "romeo")
    runs_dir = tmp_path / "runs"
    run = runs_dir / "romeo"
    if run_has == "model":
        _tiny_model(run / "model")
    else:
        (run / "posts").mkdir(parents=True)
    code, stderr = _serve(model, "--runs-dir", runs_dir)
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert "'romeo'" in stderr and str(model) in stderr and str(run) in stderr, stderr
    assert "rename the model folder" in stderr, stderr


def test_a_given_hub_id_and_a_run_of_one_name_are_refused(tmp_path):
    (tmp_path / "runs" / "gpt2" / "dataset").mkdir(parents=True)
    with pytest.raises(HuggingtweetsError, match="'gpt2' names both the Hub model gpt2"):
        Catalog(tmp_path / "runs", ["gpt2"])


def test_a_runs_own_model_given_at_start_is_served_once(tmp_path):
    """``serve runs/romeo``: the run's own model, by the run's name (no shadow)."""
    runs_dir = tmp_path / "runs"
    _tiny_model(runs_dir / "romeo" / "model")
    for given in (runs_dir / "romeo", runs_dir / "romeo" / "model"):
        catalog = Catalog(runs_dir, [str(given)])
        assert catalog.model_names() == ["romeo"]


def test_a_new_run_is_never_named_as_a_given_model(tmp_path):
    """A run named after its accounts skips a given model's name; a run_id that is one is
    refused naming the field (for the API: no server path in the words)."""
    model = _tiny_model(tmp_path / "models" / "romeo")
    catalog = Catalog(tmp_path / "runs", [str(model)])
    assert catalog.new_run_id(["romeo"], set()) == "romeo-2"
    assert catalog.new_run_id(["juliet"], set()) == "juliet"
    assert catalog.is_given_model("romeo") and not catalog.is_given_model("juliet")
    with pytest.raises(OptionError) as refused:
        catalog.check_not_given_model("romeo")
    assert refused.value.name == "run_id" and "choose another run_id" in refused.value.problem
    assert str(tmp_path) not in str(refused.value)
    catalog.check_not_given_model("juliet")


def test_the_api_refuses_a_run_id_that_names_a_given_model(tmp_path):
    """POST /api/v1/runs with run_id a given model's name: 422 on body.run_id, no server
    path in the words, no job queued, no run folder made."""
    from fastapi.testclient import TestClient

    from huggingtweets.serve.api import create_app
    from huggingtweets.serve.config import ServeConfig

    model = _tiny_model(tmp_path / "models" / "romeo")
    runs_dir = tmp_path / "runs"
    app = create_app(ServeConfig(runs_dir=runs_dir, models=[str(model)]), ui=False)
    with TestClient(app) as client:
        body = {"sources": ["sample:romeo"], "run_id": "romeo"}
        answer = client.post("/api/v1/runs", json=body)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"][0]
        assert detail["loc"] == ["body", "run_id"], detail
        assert "choose another run_id" in detail["msg"], detail
        assert str(tmp_path) not in answer.text and "/models/" not in answer.text
        assert client.get("/api/v1/jobs").json() == []
        assert [model["id"] for model in client.get("/api/v1/models").json()] == ["romeo"]
    assert not (runs_dir / "romeo").exists()


def test_a_runs_huge_rows_are_measured_not_held(tmp_path):
    """Rows of several MB in a run's dataset (an older version's, or written by hand): the
    run's view shows each post cut to 500 characters with its exact length, whatever the
    row's escapes (\\n, \\", \\u00e9, surrogate pairs cut between two pieces) or order of
    fields; a row whose text does not start in its first 64 KiB is skipped; no row is
    held whole. Bound: the reader holds a piece of 64 KiB at a time and orjson's parse of
    it (1.5 MB at the peak here); 4 MB leaves a margin of 2.5, where reading each row
    whole peaked at 215 MB."""
    import json
    import tracemalloc

    import orjson

    run_dir = tmp_path / "runs" / "huge"
    (run_dir / "dataset").mkdir(parents=True)
    accounts = [{"handle": h, "kept": 3} for h in ("romeo", "juliet", "mercutio")]
    (run_dir / "dataset" / "stats.json").write_text(json.dumps({"accounts": accounts}))
    escaped = 'wherefore "art" \\ thou\n é😀 ' * 300_000  # JSON-escaped by json.dumps
    plain = "O happy dagger! é😀 " * 400_000  # UTF-8 as it is (orjson), text first
    lines = [
        json.dumps({"handle": "romeo", "id": "1", "text": escaped}).encode(),
        orjson.dumps({"text": plain, "id": "2", "handle": "juliet"}),
        json.dumps({"id": "x" * 8_000_000, "handle": "mercutio", "text": "hidden"}).encode(),
        json.dumps({"handle": "mercutio", "id": "4", "text": "A plague o' both houses!"}).encode(),
        json.dumps({"handle": "romeo", "id": "5", "text": "short"}).encode(),
    ]
    for line in lines:
        assert len(line) > 8_000_000 or len(line) < 100
    (run_dir / "dataset" / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    catalog = Catalog(tmp_path / "runs", [])
    catalog.run("huge")  # what it imports, loaded once
    tracemalloc.start()
    try:
        examples = catalog.run("huge")["examples"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak:,} bytes at the peak"
    assert examples == {
        "romeo": [
            f"{escaped[:500]}… [shortened: {len(escaped):,} characters in all]",
            "short",
        ],
        "juliet": [f"{plain[:500]}… [shortened: {len(plain):,} characters in all]"],
        "mercutio": ["A plague o' both houses!"],
    }
