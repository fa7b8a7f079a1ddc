"""What the server says (issue 19), through the real API on the embedded backend: a
training process killed by a signal is reported by that signal (out of memory only as a
possibility, for SIGKILL), a dataset too small to hold validation posts is answered with
advice an API client can follow, a client's Hub id is never a folder that happens to be
where the worker runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from test_serve_api import Api

from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.messages import ended_text
from huggingtweets.train.options import MAX_STEPS

API = "/api/v1"
TINY = {"base_model": "tiny", "max_steps": 4, "per_device_train_batch_size": 2, "block_size": 32}


@pytest.fixture
def api(tmp_path) -> Iterator[Api]:
    runs_dir = tmp_path / "runs"
    with TestClient(create_app(ServeConfig(runs_dir=runs_dir), ui=False)) as client:
        yield Api(client, runs_dir)


def prepared(api: Api, body: dict | None = None, upload: tuple[str, bytes] | None = None) -> str:
    if upload is not None:
        answer = api.post(f"{API}/runs/upload", files={"file": upload}, data=body or {})
    else:
        answer = api.post(f"{API}/runs", json=body)
    assert answer.status_code == 202, answer.text
    done = api.wait(answer.json()["id"])
    assert done["state"] == "succeeded", done
    return done["run_id"]


def words(count: int, seed: str) -> str:
    """Plain words (no two posts alike), ``count`` characters of them."""
    text = " ".join(f"{seed}{n} said something" for n in range(count // 10 + 1))
    return text[:count].rstrip()


# -- a process killed by a signal ------------------------------------------------------------


def killed_child(sig: int) -> int:
    """The exit code of a real child process ended by ``sig``, as multiprocessing gives it
    (a negative exit code: the signal)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(child.pid, sig)
    return child.wait(10)


@pytest.mark.parametrize(
    ("sig", "said"),
    [
        (signal.SIGKILL, "killed by SIGKILL (the system may have run out of memory)"),
        (signal.SIGTERM, "stopped by SIGTERM"),
        (signal.SIGINT, "stopped by SIGINT"),
        (signal.SIGSEGV, "killed by SIGSEGV"),
    ],
)
def test_a_process_ended_by_a_signal_is_said_by_that_signal(sig, said):
    text = ended_text("the training process", killed_child(sig))
    assert text == f"the training process ended unexpectedly: {said}"
    assert ("memory" in text) == (sig == signal.SIGKILL)


def test_a_process_that_exits_by_itself_is_said_by_its_exit_code():
    code = subprocess.run([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode
    assert (
        ended_text("the job's process", code)
        == "the job's process ended unexpectedly (exit code 3)"
    )


def test_a_training_process_stopped_by_sigterm_is_said_stopped_not_out_of_memory(api):
    """The real worker process, killed from outside with SIGTERM while it trains: the job
    fails saying so."""
    run_id = prepared(api, {"sources": ["sample:romeo"]})
    job = api.post(f"{API}/runs/{run_id}/train", json={**TINY, "max_steps": MAX_STEPS}).json()
    running = api.wait(job["id"], lambda job: (job["progress"] or {}).get("step"))
    assert running["state"] == "running", running
    api.client.app.state.manager.queue.worker.process.terminate()  # SIGTERM
    failed = api.wait(job["id"])
    assert failed["state"] == "failed", failed
    assert failed["error"] == "the training process ended unexpectedly: stopped by SIGTERM"


# -- advice a client can follow -----------------------------------------------------------------


def test_a_dataset_without_validation_posts_is_answered_in_the_apis_words(api):
    """One long post: prepared (7,000 characters, enough to train), but none can be held
    out to measure the training. The failed training names what the API offers, not
    prepare's --validation-split-percentage (no field of the API)."""
    post = words(7_000, "solo")
    run_id = prepared(api, {"handle": "solo"}, upload=("one.txt", post.encode()))
    job = api.post(f"{API}/runs/{run_id}/train", json=TINY).json()
    failed = api.wait(job["id"])
    assert failed["state"] == "failed", failed
    error = failed["error"]
    assert error.startswith(f"{run_id}/dataset/valid.jsonl holds no posts"), error
    assert "validation_split_percentage" not in error and "--" not in error, error
    assert "create the run again (POST /api/v1/runs or /api/v1/runs/upload)" in error, error
    assert "two posts or more per account" in error, error


# -- a client's base model is a Hub id ----------------------------------------------------------


def test_a_hub_id_is_never_a_folder_where_the_worker_runs(tmp_path, monkeypatch):
    """A model folder named like the client's Hub id in the worker's working folder is
    not trained from: offline, the id is looked for in the Hugging Face cache only. A
    model the server was given as a relative folder is still trained from (the worker
    gets its absolute path)."""
    from huggingtweets.model.tiny import build_tiny_base

    here = tmp_path / "server-cwd"
    build_tiny_base([words(3_000, "decoy")], here / "served", vocab_size=300, context=64,
                    n_layer=1, n_head=2, n_embd=32)  # fmt: skip
    shutil.copytree(here / "served", here / "decoy-model")
    monkeypatch.chdir(here)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # inherited by the worker, started below
    config = ServeConfig(runs_dir=tmp_path / "runs", models=["served"])
    with TestClient(create_app(config, ui=False)) as client:
        api = Api(client, config.runs_dir)
        run_id = prepared(api, {"sources": ["sample:romeo"]})
        body = {**TINY, "base_model": "decoy-model", "max_steps": 1}
        job = api.post(f"{API}/runs/{run_id}/train", json=body)
        assert job.status_code == 202, job.text
        failed = api.wait(job.json()["id"])
        assert failed["state"] == "failed", failed
        assert "'decoy-model' is not in the Hugging Face cache" in failed["error"], failed
        assert 'use base_model "tiny" or a model this server serves' in failed["error"], failed
        assert not (api.runs_dir / run_id / "model").exists()
        served = api.post(f"{API}/runs/{run_id}/train", json={**body, "base_model": "served"})
        assert served.status_code == 202, served.text
        assert api.wait(served.json()["id"])["state"] == "succeeded"
    assert (api.runs_dir / run_id / "model" / "config.json").is_file()
