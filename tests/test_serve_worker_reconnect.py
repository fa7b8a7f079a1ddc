"""A ``huggingtweets worker`` waits for Redis and reconnects (issue 18, point 4), with a real
redis-server and real worker processes: Redis killed (SIGKILL) under an idle worker and
started again on the same port and data (append-only file), and a worker started while
Redis is down. In both, the same worker process (its PID unchanged) runs a job created once
Redis is back, within a bounded wait, and says each outage in one line, with no traceback."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from test_serve_queue import API, ENDED, RedisServer, need_redis, start_worker, stop_process

from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.rq_worker import BACK, RECONNECT_MAX_S, WAITING

WAITING_LINE = WAITING.format(RECONNECT_MAX_S)
# A job created once Redis is back starts within the worker's longest back-off (5 s) and a
# prepare of one sample account takes a few seconds: 90 s leaves a shared 2-core machine room.
JOB_S = 90


def persistent_redis(folder: Path) -> RedisServer:
    """A real redis-server that keeps its data across a kill in an append-only file (each
    write synced), so that a restart on the same port finds the same queue."""
    need_redis()
    server = RedisServer(folder)
    server.start_args = ["--appendonly", "yes", "--appendfsync", "always"]
    return server


def kill(server: RedisServer) -> None:
    """The real server process killed (no shutdown, no save), as a crash would."""
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        seen = check()
        if seen:
            return seen
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.2)


def log_text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def run_one_prepare(client: TestClient, account: str) -> dict:
    answer = client.post(f"{API}/runs", json={"sources": [f"sample:{account}"]})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    return wait_until(
        lambda: (job := client.get(f"{API}/jobs/{job_id}").json())["state"] in ENDED and job,
        JOB_S,
        f"the prepare of {account}",
    )


def app_for(server: RedisServer, runs_dir: Path) -> TestClient:
    runs_dir.mkdir(exist_ok=True)
    return TestClient(create_app(ServeConfig(runs_dir=runs_dir, queue=server.url), ui=False))


def assert_one_line_per_outage(log: Path, outages: int) -> None:
    text = log_text(log)
    assert text.count(WAITING_LINE) == outages, text
    assert text.count(BACK) == outages, text
    assert "Traceback" not in text and "retrying in" not in text, text
    assert "quitting" not in text, text


def test_a_worker_waits_while_redis_is_down_and_goes_on_once_it_is_back(tmp_path):
    """Redis killed under an idle worker, then started again on the same port and data: the
    worker does not exit, the job it ran before is still there, and a job created after
    Redis is back is run by the same process."""
    server = persistent_redis(tmp_path / "redis")
    server.start()
    runs_dir, log = tmp_path / "runs", tmp_path / "worker.log"
    worker = start_worker(server.url, runs_dir, log)
    try:
        with app_for(server, runs_dir) as client:
            before = run_one_prepare(client, "romeo")
            assert before["state"] == "succeeded", before
            pid = worker.pid

            kill(server)
            wait_until(lambda: WAITING_LINE in log_text(log), 30, "the worker's waiting line")
            time.sleep(2 * RECONNECT_MAX_S)  # a few more tries: still waiting, not exited
            assert worker.poll() is None, log_text(log)

            server.start()  # the same port, the same data
            kept = client.get(f"{API}/jobs/{before['id']}")
            assert kept.status_code == 200 and kept.json()["state"] == "succeeded", kept.text
            after = run_one_prepare(client, "juliet")
            assert after["state"] == "succeeded", after
            assert worker.poll() is None and worker.pid == pid
            assert [job["id"] for job in client.get(f"{API}/jobs").json()].count(after["id"]) == 1
    finally:
        stop_process(worker)
        server.stop()
    assert_one_line_per_outage(log, 1)
    assert log_text(log).count(f"started with PID {pid}") == 1  # RQ's one loop went on


def test_a_worker_started_while_redis_is_down_waits_and_runs_jobs_once_it_is_up(tmp_path):
    server = persistent_redis(tmp_path / "redis")  # not started: nothing on its port
    runs_dir, log = tmp_path / "runs", tmp_path / "worker.log"
    runs_dir.mkdir()
    worker = start_worker(server.url, runs_dir, log)
    try:
        wait_until(lambda: WAITING_LINE in log_text(log), 60, "the worker's waiting line")
        time.sleep(2 * RECONNECT_MAX_S)
        assert worker.poll() is None, log_text(log)  # waits: does not exit
        pid = worker.pid

        server.start()
        with app_for(server, runs_dir) as client:
            job = run_one_prepare(client, "romeo")
        assert job["state"] == "succeeded", job
        assert worker.poll() is None and worker.pid == pid
    finally:
        stop_process(worker)
        server.stop()
    assert_one_line_per_outage(log, 1)
