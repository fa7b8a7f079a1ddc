"""Several servers, one service (issue 18, point 5): two real ``huggingtweets serve``
processes on different ports with the same ``--queue`` and ``--runs-dir``, and one real
``huggingtweets worker``. A job created on one server is listed and shown on the other,
followed there through its event stream (SSE) and cancelled from there; a model trained
through one is served by both (each loads it into its own model cache).

Redis is a real ``redis-server`` on a free loopback port (test_serve_queue's fixture
class); everything talks HTTP to the real servers, as a load balancer would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import ROOT  # noqa: E402
from test_serve_queue import (  # noqa: E402
    API,
    ENDED,
    TINY,
    RedisServer,
    free_port,
    huggingtweets_command,
    need_redis,
    start_worker,
    stop_process,
)

# Bounded waits, generous: these tests share two cores with other work (load average
# above 10 seen), and a server imports torch, transformers and gradio before it answers.
SERVER_START_S = 240
JOB_S = 240
LONG = {**TINY, "max_steps": 5000}  # long enough to follow, then cancelled


@dataclass
class Replica:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=httpx.Timeout(60.0))


@dataclass
class Service:
    a: Replica
    b: Replica
    runs_dir: Path
    worker_log: Path


def start_replica(queue: str, runs_dir: Path, log: Path) -> Replica:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HUGGINGTWEETS_API_TOKEN", "HUGGINGTWEETS_QUEUE")
    }
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    command = [*huggingtweets_command(), "serve", "--queue", queue, "--runs-dir", str(runs_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
    return Replica(f"http://127.0.0.1:{port}", process, log)


def wait_healthy(replica: Replica, deadline: float) -> None:
    while True:
        if replica.process.poll() is not None:
            pytest.fail(f"a server exited ({replica.process.returncode}):\n{tail(replica.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{replica.url}{API}/health", timeout=3).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"no {API}/health within {SERVER_START_S} s:\n{tail(replica.log)}")
        time.sleep(0.5)


def stop_replica(replica: Replica) -> None:
    process = replica.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):  # anything it left in its group
        os.killpg(process.pid, signal.SIGKILL)


def tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    need_redis()
    root = tmp_path_factory.mktemp("replicas")
    runs_dir = root / "runs"
    runs_dir.mkdir()
    redis = RedisServer(root / "redis")
    redis.start()
    worker = start_worker(redis.url, runs_dir, root / "worker.log")
    replicas = [start_replica(redis.url, runs_dir, root / f"serve-{n}.log") for n in "ab"]
    try:
        deadline = time.monotonic() + SERVER_START_S  # both start at once
        for replica in replicas:
            wait_healthy(replica, deadline)
        yield Service(*replicas, runs_dir=runs_dir, worker_log=root / "worker.log")
    finally:
        for replica in replicas:
            stop_replica(replica)
        stop_process(worker)
        redis.stop()
    # Stopped as asked, not killed nor interrupted: serve's normal end on Ctrl-C is exit
    # 0 after "Stopped." (cli/serve.py; 130 is Ctrl-C before it serves).
    for replica in replicas:
        assert replica.process.returncode == 0, tail(replica.log)
        assert tail(replica.log, 200).rstrip().endswith("Stopped."), tail(replica.log)


def wait_job(client: httpx.Client, job_id: str, until=None, timeout: float = JOB_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"{API}/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["state"] in ENDED or (until is not None and until(job)):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout} s: {job}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def prepared(service) -> list[str]:
    """Two runs prepared: romeo's job created on A, juliet's on B; both waited for on the
    other replica."""
    made = []
    for creator, source in ((service.a, "sample:romeo"), (service.b, "sample:juliet")):
        with creator.client() as http:
            answer = http.post(f"{API}/runs", json={"sources": [source]})
        assert answer.status_code == 202, answer.text
        made.append(answer.json())
    run_ids = []
    for job, other in zip(made, (service.b, service.a), strict=True):
        with other.client() as http:
            done = wait_job(http, job["id"])
        assert done["state"] == "succeeded", (done, tail(service.worker_log))
        run_ids.append(done["run_id"])
    return run_ids


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event, data) from a server-sent event stream's lines."""
    event, data = None, None
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line == "" and data is not None:
            yield event, data
            event, data = None, None


# -- the tests -------------------------------------------------------------------------------


def test_a_job_created_on_one_server_is_listed_and_shown_on_the_other(service, prepared):
    romeo, juliet = prepared
    with service.a.client() as a, service.b.client() as b:
        listed_a, listed_b = a.get(f"{API}/jobs").json(), b.get(f"{API}/jobs").json()
        assert listed_a == listed_b  # one list: the jobs live in Redis, not in a server
        assert {job["run_id"] for job in listed_b} >= {romeo, juliet}
        for job in listed_a:
            assert b.get(f"{API}/jobs/{job['id']}").json() == job
        # The runs too: both servers read the same runs directory.
        assert {run["id"] for run in a.get(f"{API}/runs").json()} >= {romeo, juliet}
        assert (
            b.get(f"{API}/runs/{romeo}").json()["jobs"]
            == a.get(f"{API}/runs/{romeo}").json()["jobs"]
        )
        # A run's one active job, across servers: queued on A, a second refused on B.
        first = a.post(f"{API}/runs/{romeo}/train", json=LONG)
        assert first.status_code == 202, first.text
        busy = b.post(f"{API}/runs/{romeo}/train", json=TINY)
        assert busy.status_code == 409, busy.text
        cancelled = b.post(f"{API}/jobs/{first.json()['id']}/cancel").json()
        assert cancelled["state"] in ("cancelled", "running")
        assert wait_job(a, first.json()["id"])["state"] == "cancelled"


def test_a_training_is_followed_and_cancelled_from_the_other_server(service, prepared):
    romeo = prepared[0]
    with service.a.client() as a, service.b.client() as b:
        answer = a.post(f"{API}/runs/{romeo}/train", json=LONG)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        events: list[tuple[str, dict]] = []
        asked = False
        deadline = time.monotonic() + JOB_S
        # B's event stream of A's job: each change relayed from the worker through Redis.
        with b.stream("GET", f"{API}/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for event, data in sse_events(stream.iter_lines()):
                events.append((event, data))
                step = (data["progress"] or {}).get("step") or 0
                if not asked and data["state"] == "running" and step >= 2:
                    shown = b.post(f"{API}/jobs/{job_id}/cancel")  # from B too
                    assert shown.status_code == 200, shown.text
                    assert shown.json()["state"] in ("running", "cancelled")
                    asked = True
                if event == "end":
                    break
                assert time.monotonic() < deadline, f"no end in {JOB_S} s: {events[-3:]}"
        assert asked, events
        kinds = [event for event, _ in events]
        assert kinds[-1] == "end" and set(kinds[:-1]) == {"job"}, kinds
        steps = [
            data["progress"]["step"]
            for _, data in events
            if (data["progress"] or {}).get("stage") == "train" and data["progress"]["step"]
        ]
        assert len(steps) >= 2 and steps == sorted(steps), steps
        ended = events[-1][1]
        assert ended["state"] == "cancelled" and ended["error"] is None, ended
        assert ended["progress"]["step"] < LONG["max_steps"]
        # A sees what B did, and A's own stream of the ended job is its end at once.
        assert a.get(f"{API}/jobs/{job_id}").json() == ended
        with a.stream("GET", f"{API}/jobs/{job_id}/events") as stream:
            assert [event for event, _ in sse_events(stream.iter_lines())] == ["end"]
    # The training stopped after a step, with its checkpoint.
    assert list((service.runs_dir / romeo / "checkpoints").glob("checkpoint-*"))


def test_a_model_trained_through_one_server_is_served_by_both(service, prepared):
    juliet = prepared[1]
    with service.a.client() as a, service.b.client() as b:
        answer = b.post(f"{API}/runs/{juliet}/train", json=TINY)
        assert answer.status_code == 202, answer.text
        done = wait_job(a, answer.json()["id"])
        assert done["state"] == "succeeded", (done, tail(service.worker_log))
        for http in (a, b):
            assert juliet in {model["id"] for model in http.get(f"{API}/models").json()}
            assert http.get(f"{API}/runs/{juliet}").json()["has_model"] is True
            body = {"model": juliet, "prompt": "My dream is", "n": 3, "seed": 1}
            generated = http.post(f"{API}/generate", json=body, timeout=120)
            assert generated.status_code == 200, generated.text
            samples = generated.json()["samples"]
            assert len(samples) == 3
            assert all(sample["text"].startswith("My dream is") for sample in samples)
