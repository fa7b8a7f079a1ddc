"""One contract for both job backends of ``huggingtweets serve``: the embedded one (jobs in
the server) and Redis + RQ (jobs in Redis, run by a real ``huggingtweets worker``
process). The same tests, through the real API: create, list, queue position, progress
events, cancel, failure, and (Redis) a server restart that forgets nothing.

Redis is a real ``redis-server`` started here on a free loopback port (no persistence);
without it (or without rq/redis-py) the Redis half is skipped, naming what is missing,
unless HUGGINGTWEETS_REQUIRE_REDIS=1 (then it fails)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from test_serve_api import Api as ServeApi

from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.train.options import MAX_STEPS

API = "/api/v1"
ENDED = ("succeeded", "failed", "cancelled")
TINY = {"base_model": "tiny", "max_steps": 4, "per_device_train_batch_size": 2, "block_size": 32}
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def need_redis() -> None:
    """Skip (or fail, under HUGGINGTWEETS_REQUIRE_REDIS=1) naming what is missing."""
    missing = [name for name in ("rq", "redis") if not _importable(name)]
    if not Path(REDIS_SERVER).is_file():
        missing.append("redis-server (Debian package redis-server)")
    if not missing:
        return
    message = f"missing for the Redis queue tests: {', '.join(missing)}"
    if os.environ.get("HUGGINGTWEETS_REQUIRE_REDIS") == "1":
        pytest.fail(message)
    pytest.skip(f"{message} (set HUGGINGTWEETS_REQUIRE_REDIS=1 to fail instead)")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on 127.0.0.1 (no snapshots, no AOF), stoppable and restartable
    on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None
        self.start_args: list[str] = []  # more redis-server options (--requirepass ...)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        command += self.start_args
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start in 10 s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def huggingtweets_command() -> list[str]:
    return [str(Path(sys.executable).with_name("huggingtweets"))]


def start_worker(url: str, runs_dir: Path, log: Path) -> subprocess.Popen:
    """A real ``huggingtweets worker`` process (its output in ``log``)."""
    command = [*huggingtweets_command(), "worker", "--queue", url, "--runs-dir", str(runs_dir)]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Api(ServeApi):
    """test_serve_api's client (calls, waits), and how to make a second app (a restart, a
    replica) over the same jobs."""

    backend: str = "embedded"
    queue: str | None = None

    def config(self) -> ServeConfig:
        return ServeConfig(runs_dir=self.runs_dir, queue=self.queue)


@pytest.fixture(scope="module", params=["embedded", "redis"])
def api(request, tmp_path_factory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp(f"queue-{request.param}")
    runs_dir = root / "runs"
    runs_dir.mkdir()
    worker = None
    queue = None
    if request.param == "redis":
        queue = request.getfixturevalue("redis_server").url
        worker = start_worker(queue, runs_dir, root / "worker.log")
    try:
        app = create_app(ServeConfig(runs_dir=runs_dir, queue=queue), ui=False)
        with TestClient(app) as client:
            yield Api(client, runs_dir, backend=request.param, queue=queue)
    finally:
        if worker is not None:
            stop_process(worker)


def prepared(api: Api, source: str) -> str:
    answer = api.post(f"{API}/runs", json={"sources": [source]})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["kind"] == "prepare" and job["state"] in ("queued", "running", "succeeded")
    done = api.wait(job["id"])
    assert done["state"] == "succeeded", done
    return done["run_id"]


@pytest.fixture(scope="module")
def runs(api) -> list[str]:
    return [prepared(api, f"sample:{name}") for name in ("romeo", "juliet", "mercutio")]


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


# -- the contract ----------------------------------------------------------------------------


def test_a_created_job_is_listed_and_shown_with_its_run(api, runs):
    listed = api.get(f"{API}/jobs").json()
    prepares = [job for job in listed if job["kind"] == "prepare"]
    assert {job["run_id"] for job in prepares} >= set(runs)
    assert all(job["state"] == "succeeded" and job["position"] is None for job in prepares)
    created = [job["created"] for job in listed]
    assert created == sorted(created, reverse=True)  # newest first
    run = api.get(f"{API}/runs/{runs[0]}").json()
    assert [job["run_id"] for job in run["jobs"]] == [runs[0]]
    shown = api.get(f"{API}/jobs/{run['jobs'][0]['id']}").json()
    assert shown == run["jobs"][0]


def test_progress_reaches_the_event_stream_to_the_end(api, runs):
    job = api.post(f"{API}/runs/{runs[0]}/train", json=TINY)
    assert job.status_code == 202, job.text
    stream = api.get(f"{API}/jobs/{job.json()['id']}/events")  # answered once ended
    assert stream.status_code == 200
    events = sse_events(stream.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"job"}, kinds
    ended = events[-1][1]
    assert ended["state"] == "succeeded" and ended["error"] is None, ended
    steps = [
        event["progress"]["step"]
        for _, event in events
        if (event["progress"] or {}).get("stage") == "train" and event["progress"]["step"]
    ]
    assert steps == sorted(steps) and steps[-1] == TINY["max_steps"], steps
    assert (api.runs_dir / runs[0] / "model" / "config.json").is_file()
    assert api.get(f"{API}/runs/{runs[0]}").json()["has_model"] is True


def test_queue_positions_and_cancel(api, runs):
    romeo, juliet, mercutio = runs
    # As many steps as a training may have (years of them): it runs until it is cancelled,
    # so the positions below are taken behind it whatever the machine's speed.
    long = api.post(f"{API}/runs/{romeo}/train", json={**TINY, "max_steps": MAX_STEPS}).json()
    running = api.wait(long["id"], lambda job: (job["progress"] or {}).get("step"))
    assert running["state"] == "running" and running["position"] is None, running
    busy = api.post(f"{API}/runs/{romeo}/train", json=TINY)
    assert busy.status_code == 409 and busy.json()["detail"][0]["loc"] == ["path", "run_id"]
    second = api.post(f"{API}/runs/{juliet}/train", json=TINY).json()
    third = api.post(f"{API}/runs/{mercutio}/train", json=TINY).json()
    assert (second["position"], third["position"]) == (1, 2)
    cancelled = api.post(f"{API}/jobs/{second['id']}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["position"] is None
    assert api.get(f"{API}/jobs/{third['id']}").json()["position"] == 1
    assert api.post(f"{API}/jobs/{third['id']}/cancel").json()["state"] == "cancelled"
    asked = api.post(f"{API}/jobs/{long['id']}/cancel").json()
    assert asked["state"] in ("running", "cancelled")
    stopped = api.wait(long["id"])
    assert stopped["state"] == "cancelled" and stopped["error"] is None, stopped
    assert stopped["progress"]["step"] < MAX_STEPS
    assert list((api.runs_dir / romeo / "checkpoints").glob("checkpoint-*"))
    for job in (second, third):  # never started: no progress
        assert api.get(f"{API}/jobs/{job['id']}").json()["progress"] is None
    # The run is free again once its job has ended.
    again = api.post(f"{API}/runs/{juliet}/train", json=TINY)
    assert again.status_code == 202, again.text
    assert api.wait(again.json()["id"])["state"] == "succeeded"


def test_a_failed_job_says_why_in_one_line(api):
    answer = api.post(
        f"{API}/runs/upload",
        files={"file": ("few.txt", b"one two three four\nfive six seven eight\n")},
    )
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["id"])
    assert job["state"] == "failed", job
    assert "6,000 characters" in job["error"] and "\n" not in job["error"]
    assert str(api.runs_dir) not in job["error"]
    assert not any((api.runs_dir / ".uploads").iterdir())  # the upload removed by the job


def test_a_restarted_server_finds_every_job(api, runs):
    if api.backend == "embedded":
        pytest.skip("the embedded queue keeps its jobs in the server: a restart forgets them")
    before = api.get(f"{API}/jobs").json()
    assert before
    with TestClient(create_app(api.config(), ui=False)) as client:
        after = client.get(f"{API}/jobs").json()
        assert after == before
        shown = client.get(f"{API}/jobs/{before[0]['id']}").json()
        assert shown == before[0]
        # A job created on the new server is seen on the first (another replica).
        job = client.post(f"{API}/runs/{runs[2]}/train", json=TINY).json()
    assert api.wait(job["id"])["state"] == "succeeded"


# -- overwrite: a trained run's dataset replaced ---------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (its path in the folder -> its bytes)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def trained_copy(api, runs, request) -> Path:
    """A run with a trained model (a copy of runs[0], trained when no test has yet), its
    own per test: a model, its card, metrics and a checkpoint of the old dataset."""
    model = api.runs_dir / runs[0] / "model"
    if not (model / "config.json").is_file():
        job = api.post(f"{API}/runs/{runs[0]}/train", json=TINY).json()
        assert api.wait(job["id"])["state"] == "succeeded"
    name = request.node.name.split("[")[0].removeprefix("test_")[:60].replace("_", "-")
    copy = shutil.copytree(api.runs_dir / runs[0], api.runs_dir / name)
    (copy / "checkpoints" / "checkpoint-2").mkdir(parents=True, exist_ok=True)
    assert (copy / "model" / "README.md").is_file() and (copy / "metrics.json").is_file()
    return copy


def test_an_overwrite_whose_prepare_fails_loses_nothing(api, trained_copy):
    """overwrite: true, but the new accounts cannot make a dataset (too little text): the
    job fails, and the run is as it was, model, card and dataset included."""
    before = _files(trained_copy)
    body = {"sources": ["sample:titus"], "run_id": trained_copy.name, "overwrite": True}
    answer = api.post(f"{API}/runs", json=body)
    assert answer.status_code == 202, answer.text
    failed = api.wait(answer.json()["id"])
    assert failed["state"] == "failed" and "6,000 characters" in failed["error"], failed
    assert _files(trained_copy) == before
    run = api.get(f"{API}/runs/{trained_copy.name}").json()
    assert run["has_model"] is True and run["handles"] == ["romeo"], run


def test_an_overwrite_replaces_the_dataset_then_removes_the_old_model(api, trained_copy):
    """While the run has a job running, a second request is refused (409) and nothing
    changes; once free, the new accounts' dataset, and nothing trained on the old one."""
    run_id = trained_copy.name
    long = api.post(f"{API}/runs/{run_id}/train", json={**TINY, "max_steps": MAX_STEPS}).json()
    api.wait(long["id"], lambda job: job["state"] == "running")
    before = _files(trained_copy / "model")
    body = {"sources": ["sample:juliet"], "run_id": run_id, "overwrite": True}
    busy = api.post(f"{API}/runs", json=body)
    assert busy.status_code == 409 and busy.json()["detail"][0]["loc"] == ["body", "run_id"]
    api.post(f"{API}/jobs/{long['id']}/cancel")
    assert api.wait(long["id"])["state"] == "cancelled"
    assert _files(trained_copy / "model") == before

    answer = api.post(f"{API}/runs", json=body)
    assert answer.status_code == 202, answer.text
    queued = api.post(f"{API}/runs", json=body)  # the first one queued or running: 409
    job = api.wait(answer.json()["id"])
    assert job["state"] == "succeeded", job
    if queued.status_code != 409:  # only once the first had ended (a fast machine)
        assert queued.status_code == 202, queued.text
        assert api.wait(queued.json()["id"])["state"] == "succeeded"
    run = api.get(f"{API}/runs/{run_id}").json()
    assert run["handles"] == ["juliet"] and run["has_model"] is False, run
    left = {"model", "metrics.json", "evaluation.json", "checkpoints", "trials", "sweep"}
    assert left & {path.name for path in trained_copy.iterdir()} == set()
    assert not [path.name for path in trained_copy.iterdir() if path.name.startswith(".")]
