"""The Redis backend's faults, with a real redis-server and real ``huggingtweets worker``
processes: Redis stopped (503 + Retry-After at once, served again once it is back), two
servers accepting one run at once (one wins), a worker that does not see the run folder,
a corrupt job, a wrong URL or password at start, a worker killed with SIGKILL, a job's
own process killed with SIGKILL, and a Hub id beside a folder of that name."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from conftest import run_cli
from fastapi.testclient import TestClient
from test_serve_queue import (
    API,
    ENDED,
    TINY,
    RedisServer,
    free_port,
    need_redis,
    start_worker,
    stop_process,
)

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.train.options import MAX_STEPS


@pytest.fixture
def redis_server(tmp_path):
    need_redis()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def client_for(server: RedisServer, runs_dir: Path) -> TestClient:
    runs_dir.mkdir(exist_ok=True)
    return TestClient(create_app(ServeConfig(runs_dir=runs_dir, queue=server.url), ui=False))


def wait_for(get, until, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {job}"
        time.sleep(0.2)


DOWN_REQUESTS = (
    ("GET", f"{API}/jobs", None),
    ("POST", f"{API}/runs", {"sources": ["sample:romeo"]}),
    ("GET", f"{API}/jobs/0123456789abcdef", None),
)


def test_redis_down_is_503_at_once_and_served_again_when_back(redis_server, tmp_path):
    """At once by events, not the clock: with Redis stopped a connect is refused on the
    spot, so a request can only be slow by waiting for a timeout or by trying again. The
    message says it was refused ("not reachable"; a timeout says "did not answer in
    time"), and, with a listener on Redis's port that counts connections and closes each
    at once, every request makes one connection: no retry, no reconnect loop."""

    def answered_503(answer) -> str:
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        detail = answer.json()["detail"][0]
        assert detail["type"] == "queue_unavailable"
        assert "Redis" in detail["msg"] and "\n" not in detail["msg"]
        assert str(redis_server.port) not in detail["msg"]
        return detail["msg"]

    with client_for(redis_server, tmp_path / "runs") as client:
        assert client.get(f"{API}/jobs").status_code == 200
        redis_server.stop()
        for method, path, body in DOWN_REQUESTS:
            msg = answered_503(client.request(method, path, json=body))
            assert "not reachable" in msg, (method, path, msg)
        listener = NotRedis(b"", port=redis_server.port)
        try:
            for method, path, body in DOWN_REQUESTS:
                before = listener.connections
                answered_503(client.request(method, path, json=body))
                assert listener.connections - before == 1, (method, path, listener.connections)
        finally:
            listener.close()
        redis_server.start()  # the same port: the server reconnects by itself
        answer = client.get(f"{API}/jobs")
        assert answer.status_code == 200 and answer.json() == []


def test_two_servers_accepting_one_run_at_once_one_wins(redis_server, tmp_path):
    runs_dir = tmp_path / "runs"
    with client_for(redis_server, runs_dir) as one, client_for(redis_server, runs_dir) as two:
        for round_ in range(10):
            body = {"sources": ["sample:romeo"], "run_id": f"same-{round_}"}
            barrier = threading.Barrier(2)
            answers: list = [None, None]

            def post(i: int, client: TestClient, body=body, barrier=barrier, answers=answers):
                barrier.wait()
                answers[i] = client.post(f"{API}/runs", json=body)

            threads = [threading.Thread(target=post, args=(i, c)) for i, c in enumerate((one, two))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [202, 409], [answer.text for answer in answers]
        # Both servers list the same ten jobs (no worker runs: still queued, in order).
        listed = one.get(f"{API}/jobs").json()
        assert listed == two.get(f"{API}/jobs").json() and len(listed) == 10
        assert sorted(job["position"] for job in listed) == list(range(1, 11))


def test_a_worker_that_does_not_see_the_run_fails_it_in_one_line(redis_server, tmp_path):
    with client_for(redis_server, tmp_path / "runs") as client:
        (tmp_path / "runs" / "romeo" / "dataset").mkdir(parents=True)
        (tmp_path / "runs" / "romeo" / "dataset" / "train.jsonl").write_text('{"text": "x"}\n')
        job = client.post(f"{API}/runs/romeo/train", json=TINY).json()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        worker = start_worker(redis_server.url, elsewhere, tmp_path / "worker.log")
        try:
            get = lambda: client.get(f"{API}/jobs/{job['id']}").json()  # noqa: E731
            failed = wait_for(get, lambda j: j["state"] in ("failed", "succeeded"), 60)
        finally:
            stop_process(worker)
    assert failed["state"] == "failed", failed
    assert "'romeo'" in failed["error"] and "same runs directory" in failed["error"]
    assert "\n" not in failed["error"] and str(tmp_path) not in failed["error"]
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def test_a_corrupt_job_fails_alone_and_the_worker_goes_on(redis_server, tmp_path):
    import redis

    with client_for(redis_server, tmp_path / "runs") as client:
        bad = client.post(f"{API}/runs", json={"sources": ["sample:romeo"]}).json()
        good = client.post(f"{API}/runs", json={"sources": ["sample:juliet"]}).json()
        store = redis.Redis.from_url(redis_server.url)
        store.hset(f"huggingtweets:job:{bad['id']}", mapping={"format": "99", "work": "{"})
        store.close()
        worker = start_worker(redis_server.url, tmp_path / "runs", tmp_path / "worker.log")
        try:
            ended = [
                wait_for(
                    lambda job=job: client.get(f"{API}/jobs/{job['id']}").json(),
                    lambda j: j["state"] in ("failed", "succeeded"),
                    90,
                )
                for job in (bad, good)
            ]
        finally:
            stop_process(worker)
    assert ended[0]["state"] == "failed" and "cannot be read" in ended[0]["error"], ended[0]
    assert ended[1]["state"] == "succeeded", ended[1]


def test_serve_and_worker_refuse_a_bad_queue_in_one_line(tmp_path):
    need_redis()
    wrong = RedisServer(tmp_path / "locked")
    wrong.start_args = ["--requirepass", "right-password-0123456789"]
    wrong.start()
    try:
        cases = [
            ("foo://x", "give a Redis URL"),
            ("redis://127.0.0.1:notaport/0", "no valid port"),
            (f"redis://127.0.0.1:{wrong.port}/0", "password"),
            (f"redis://:wrong-password@127.0.0.1:{wrong.port}/0", "password"),
        ]
        for url, words in cases:
            for command in ("worker", "serve"):
                result = run_cli(command, "--queue", url, "--runs-dir", tmp_path / "r", expect=2)
                assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
                assert "wrong-password" not in result.stderr
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    finally:
        wrong.stop()


class NotRedis:
    """A loopback TCP server that is not Redis: it answers ``banner`` (another protocol's
    greeting; nothing: a server that closes at once) and closes the connection. It counts
    the connections it accepted (``connections``)."""

    def __init__(self, banner: bytes, port: int = 0) -> None:
        self.banner, self.connections = banner, 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a stopped Redis's port
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed: the test is over
            while True:
                conn, _ = self.sock.accept()
                self.connections += 1  # before the close the client waits for
                with conn:
                    conn.settimeout(2)
                    with contextlib.suppress(OSError):
                        conn.recv(4096)
                        conn.sendall(self.banner)

    def close(self) -> None:
        self.sock.close()


REFUSES_WRITES = {
    "read-only": (["--replicaof", "127.0.0.1", "{dead}"], "read-only replica"),
    "out of memory": (["--maxmemory", "1", "--maxmemory-policy", "noeviction"], "out of memory"),
    "no replicas": (["--min-replicas-to-write", "1"], "too few of its replicas answer"),
}


def test_serve_and_worker_refuse_what_is_not_redis_or_refuses_writes(tmp_path):
    """At start: one line, exit 2, for a server that speaks another protocol (SSH, HTTP)
    and for a Redis that refuses writes (a read-only replica, out of memory, too few
    replicas). At once, by events: the words come from the server's answer (no timeout
    was waited for: that says "did not answer in time"), and each start opens one
    connection and, on a Redis, tries one write: no retry, no reconnect loop."""
    import redis

    need_redis()
    cases, stop = [], []
    try:
        for banner in (b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"):
            fake = NotRedis(banner)
            stop.append(fake.close)
            cases.append((fake.url, "is it a Redis server?", lambda fake=fake: (fake.connections,)))
        for name, (args, words) in REFUSES_WRITES.items():
            server = RedisServer(tmp_path / name.replace(" ", "-"))
            server.start_args = [arg.format(dead=free_port()) for arg in args]
            server.start()
            stop.append(server.stop)
            admin = redis.Redis.from_url(server.url)  # one connection, opened before counting
            stop.append(admin.close)
            cases.append((server.url, words, lambda admin=admin: _connections_and_refusals(admin)))
        for url, words, counts in cases:
            for command in ("worker", "serve"):
                before = counts()
                result = run_cli(command, "--queue", url, "--runs-dir", tmp_path / "r", expect=2)
                grew = [now - was for now, was in zip(counts(), before, strict=True)]
                assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
                assert set(grew) == {1}, (command, url, grew)  # one connection (one write)
    finally:
        for close in reversed(stop):
            close()


def _connections_and_refusals(admin) -> tuple[int, int]:
    """Redis's own counts: connections accepted, commands refused (READONLY, OOM,
    NOREPLICAS: each refused command adds one to its rejected_calls)."""
    refused = sum(stats.get("rejected_calls", 0) for stats in admin.info("commandstats").values())
    return admin.info("stats")["total_connections_received"], refused


def test_a_redis_that_stops_accepting_writes_is_503_with_the_reason(redis_server, tmp_path):
    """While running: Redis made to refuse writes (out of memory, too few replicas, a
    read-only replica) makes a create 503 + Retry-After naming why; reads still answer,
    and once Redis accepts writes again the same server creates jobs again."""
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    dead = str(free_port())
    refusals = [
        ({"maxmemory": "1", "maxmemory-policy": "noeviction"}, {"maxmemory": "0"}, "out of memory"),
        ({"min-replicas-to-write": "1"}, {"min-replicas-to-write": "0"}, "too few of its replicas"),
        (("127.0.0.1", dead), ("NO", "ONE"), "read-only replica"),
    ]
    with client_for(redis_server, tmp_path / "runs") as client:
        for n, (refuse, accept, words) in enumerate(refusals):
            if isinstance(refuse, dict):
                admin.execute_command("CONFIG", "SET", *[x for kv in refuse.items() for x in kv])
            else:
                admin.execute_command("REPLICAOF", *refuse)
            body = {"sources": ["sample:romeo"], "run_id": f"r{n}"}
            answer = client.post(f"{API}/runs", json=body)
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            detail = answer.json()["detail"][0]
            assert detail["type"] == "queue_unavailable" and words in detail["msg"], detail
            assert "\n" not in detail["msg"] and "Traceback" not in answer.text
            assert client.get(f"{API}/jobs").status_code == 200  # reading still works
            if isinstance(accept, dict):
                admin.execute_command("CONFIG", "SET", *[x for kv in accept.items() for x in kv])
            else:
                admin.execute_command("REPLICAOF", *accept)
            answer = client.post(f"{API}/runs", json=body)
            assert answer.status_code == 202, answer.text
        assert len(client.get(f"{API}/jobs").json()) == len(refusals)
    admin.close()


def test_a_killed_worker_is_reported_its_checkpoint_kept_and_resumed(redis_server, tmp_path):
    """kill -9 of the worker (and of its job's process) during training: the job is
    reported failed within 60 s, its checkpoint kept; a resume with other options is
    refused naming one (422), and a resume with the same options, run by a new worker,
    continues from that checkpoint (metrics.json's resumed_from names it)."""
    from huggingtweets.train.resume import last_checkpoint

    runs_dir = tmp_path / "runs"
    log = tmp_path / "worker.log"
    with client_for(redis_server, runs_dir) as client:
        job = client.post(f"{API}/runs", json={"sources": ["sample:romeo"]}).json()
        worker = start_worker(redis_server.url, runs_dir, log)
        try:
            get = lambda job_id: client.get(f"{API}/jobs/{job_id}").json()  # noqa: E731
            assert wait_for(lambda: get(job["id"]), lambda j: j["state"] != "queued", 60)
            prepared = wait_for(lambda: get(job["id"]), lambda j: j["state"] != "running", 60)
            assert prepared["state"] == "succeeded", prepared
            run_id = prepared["run_id"]
            # Two epochs of 7 steps: killed after the first epoch's checkpoint, with the
            # second's steps still to run (polled every 0.2 s).
            options = {"base_model": "tiny", "epochs": 2, "per_device_train_batch_size": 32}
            options["block_size"] = 32
            train = client.post(f"{API}/runs/{run_id}/train", json=options).json()
            checkpoints = runs_dir / run_id / "checkpoints"
            training = wait_for(
                lambda: get(train["id"]),
                lambda j: j["state"] in ENDED or last_checkpoint(checkpoints),
                300,
            )
            assert training["state"] == "running", training
            worker.send_signal(signal.SIGKILL)  # the worker and the job's own process:
            _kill_horse(redis_server.url, train["id"])  # nothing is left to say it ended
            killed = time.monotonic()
            worker.wait(10)
            kept = last_checkpoint(checkpoints)
            failed = wait_for(lambda: get(train["id"]), lambda j: j["state"] != "running", 60)
            took = time.monotonic() - killed
            assert failed["state"] == "failed" and failed["error"] == "the worker stopped"
            assert kept is not None and last_checkpoint(checkpoints) == kept
            assert not (runs_dir / run_id / "metrics.json").exists()

            other = client.post(
                f"{API}/runs/{run_id}/train", json={**options, "epochs": 3, "resume": True}
            )
            assert other.status_code == 422, other.text
            detail = other.json()["detail"][0]
            assert detail["loc"][-1] == "num_train_epochs", detail
            assert f"the interrupted run's 2 ({kept.name})" in detail["msg"], detail

            worker = start_worker(redis_server.url, runs_dir, log)
            again = client.post(f"{API}/runs/{run_id}/train", json={**options, "resume": True})
            assert again.status_code == 202, again.text
            resumed = wait_for(lambda: get(again.json()["id"]), lambda j: j["state"] in ENDED, 300)
        finally:
            stop_process(worker)
    assert resumed["state"] == "succeeded", resumed
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["resumed_from"] == kept.name
    assert metrics["global_steps"] > int(kept.name.removeprefix("checkpoint-"))
    assert metrics["epochs_run"] == 2.0
    assert "Traceback" not in log.read_text()
    print(f"killed worker reported failed after {took:.1f} s; resumed from {kept.name}")


def _kill_horse(url: str, job_id: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    pid = client.get(f"huggingtweets:alive:{job_id}")  # the job's process (RQ's work horse)
    client.close()
    if pid:
        with contextlib.suppress(ProcessLookupError):  # already gone with its parent
            os.kill(int(pid), signal.SIGKILL)


def test_a_killed_job_process_is_reported_by_its_signal_and_the_worker_goes_on(
    redis_server, tmp_path
):
    """SIGKILL of the job's own process (RQ's work horse) alone, the worker alive: the job
    fails at once (not once its heartbeat expires) saying what ended it, and the same
    worker runs the next job."""
    runs_dir = tmp_path / "runs"
    log = tmp_path / "worker.log"
    with client_for(redis_server, runs_dir) as client:
        worker = start_worker(redis_server.url, runs_dir, log)
        try:
            get = lambda job_id: client.get(f"{API}/jobs/{job_id}").json()  # noqa: E731
            job = client.post(f"{API}/runs", json={"sources": ["sample:romeo"]}).json()
            prepared = wait_for(lambda: get(job["id"]), lambda j: j["state"] in ENDED, 90)
            assert prepared["state"] == "succeeded", prepared
            run_id = prepared["run_id"]
            train = client.post(
                f"{API}/runs/{run_id}/train", json={**TINY, "max_steps": MAX_STEPS}
            ).json()
            wait_for(
                lambda: get(train["id"]),
                lambda j: j["state"] in ENDED or (j["progress"] or {}).get("step"),
                300,
            )
            _kill_horse(redis_server.url, train["id"])
            failed = wait_for(lambda: get(train["id"]), lambda j: j["state"] != "running", 60)
            assert failed["state"] == "failed", failed
            # Said by its signal, so not by the heartbeat's expiry ("the worker stopped"):
            # the job failed when its process died, not once the heartbeat ran out.
            assert failed["error"] == (
                "the job's process ended unexpectedly: killed by SIGKILL (the system may have "
                "run out of memory)"
            )
            again = client.post(f"{API}/runs/{run_id}/train", json=TINY).json()
            ended = wait_for(lambda: get(again["id"]), lambda j: j["state"] in ENDED, 300)
            assert ended["state"] == "succeeded", ended
            assert worker.poll() is None
        finally:
            stop_process(worker)


def test_a_hub_id_is_never_a_folder_where_the_worker_runs(redis_server, tmp_path, monkeypatch):
    """A model folder named like the client's Hub id where ``huggingtweets worker`` was
    started is not trained from: offline, the id is looked for in the cache only."""
    from huggingtweets.model.tiny import build_tiny_base

    here = tmp_path / "worker-cwd"
    build_tiny_base(["a few words to learn a tokenizer from, " * 50], here / "decoy-model",
                    vocab_size=300, context=64, n_layer=1, n_head=2, n_embd=32)  # fmt: skip
    monkeypatch.chdir(here)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the worker started below inherits both
    runs_dir = tmp_path / "runs"
    with client_for(redis_server, runs_dir) as client:
        worker = start_worker(redis_server.url, runs_dir, tmp_path / "worker.log")
        try:
            get = lambda job_id: client.get(f"{API}/jobs/{job_id}").json()  # noqa: E731
            job = client.post(f"{API}/runs", json={"sources": ["sample:romeo"]}).json()
            prepared = wait_for(lambda: get(job["id"]), lambda j: j["state"] in ENDED, 90)
            assert prepared["state"] == "succeeded", prepared
            body = {**TINY, "base_model": "decoy-model", "max_steps": 1}
            train = client.post(f"{API}/runs/{prepared['run_id']}/train", json=body).json()
            failed = wait_for(lambda: get(train["id"]), lambda j: j["state"] in ENDED, 300)
        finally:
            stop_process(worker)
    assert failed["state"] == "failed", failed
    assert "'decoy-model' is not in the Hugging Face cache" in failed["error"], failed
    assert not (runs_dir / prepared["run_id"] / "model").exists()


# -- limits and secrets: the same with Redis as without -------------------------------------

API_TOKEN = "redis-limits-api-token-0123456789abcdef"
HUB_TOKEN = "hf_redislimitshubtoken0123456789abcdef"


def test_the_waiting_bound_holds_across_servers_at_once(redis_server, tmp_path):
    """Three replicas, 45 creates at once (no worker runs them): exactly MAX_WAITING_JOBS
    (32) are queued, the others are 503 with Retry-After; the count and the enqueue are
    one transaction, so no two replicas both take the last place."""
    from huggingtweets.serve.jobs import MAX_WAITING_JOBS

    runs_dir = tmp_path / "runs"
    clients = [client_for(redis_server, runs_dir) for _ in range(3)]
    per_client, answers = 15, []
    barrier = threading.Barrier(len(clients) * per_client)
    lock = threading.Lock()

    def post(client: TestClient, n: int) -> None:
        barrier.wait()
        answer = client.post(f"{API}/runs", json={"sources": ["sample:romeo"], "run_id": f"r{n}"})
        with lock:
            answers.append(answer)

    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(client)
        threads = [
            threading.Thread(target=post, args=(client, i * per_client + k))
            for i, client in enumerate(clients)
            for k in range(per_client)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        listed = clients[0].get(f"{API}/jobs").json()
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(202) == MAX_WAITING_JOBS, codes
    assert codes.count(503) == len(threads) - MAX_WAITING_JOBS, codes
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1
            detail = answer.json()["detail"][0]
            assert detail["type"] == "queue_full" and "waiting already" in detail["msg"]
    assert len(listed) == MAX_WAITING_JOBS
    assert sorted(job["position"] for job in listed) == list(range(1, MAX_WAITING_JOBS + 1))


def test_the_upload_limit_and_the_token_rule_hold_with_redis(redis_server, tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    config = ServeConfig(runs_dir=runs_dir, queue=redis_server.url, max_upload_bytes=1000)
    with TestClient(create_app(config, ui=False)) as client:
        answer = client.post(f"{API}/runs/upload", files={"file": ("big.txt", b"w" * 1001)})
        assert answer.status_code == 413 and answer.json()["detail"][0]["loc"] == ["body", "file"]
        assert client.get(f"{API}/jobs").json() == []  # nothing queued
    public = ServeConfig(runs_dir=runs_dir, queue=redis_server.url, host="0.0.0.0")
    with pytest.raises(HuggingtweetsError, match="HUGGINGTWEETS_API_TOKEN"):
        create_app(public, ui=False)
    public.token = API_TOKEN
    with TestClient(create_app(public, ui=False)) as client:
        body = {"sources": ["sample:romeo"]}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            for method, path in (("GET", f"{API}/jobs"), ("POST", f"{API}/runs")):
                answer = client.request(method, path, headers=headers, json=body)
                assert answer.status_code == 401, (method, path, headers)
        good = {"Authorization": f"Bearer {API_TOKEN}"}
        assert client.post(f"{API}/runs", headers=good, json=body).status_code == 202
        assert len(client.get(f"{API}/jobs", headers=good).json()) == 1


def test_nothing_secret_is_stored_in_redis(redis_server, tmp_path, monkeypatch):
    """A prepare and a training run by a worker, the server and the worker both with
    HUGGINGTWEETS_API_TOKEN and HF_TOKEN set: no key and no value in Redis holds either
    (RQ's compressed job data read uncompressed too)."""
    import zlib

    import redis

    monkeypatch.setenv("HUGGINGTWEETS_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    config = ServeConfig(runs_dir=runs_dir, queue=redis_server.url, host="0.0.0.0")
    config.token = API_TOKEN
    worker = start_worker(redis_server.url, runs_dir, tmp_path / "worker.log")
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        with TestClient(create_app(config, ui=False)) as client:
            get = lambda job_id: client.get(f"{API}/jobs/{job_id}", headers=good).json()  # noqa: E731
            job = client.post(f"{API}/runs", headers=good, json={"sources": ["sample:romeo"]})
            done = wait_for(lambda: get(job.json()["id"]), lambda j: j["state"] in ENDED, 120)
            assert done["state"] == "succeeded", done
            train = client.post(f"{API}/runs/{done['run_id']}/train", headers=good, json=TINY)
            trained = wait_for(lambda: get(train.json()["id"]), lambda j: j["state"] in ENDED, 300)
            assert trained["state"] == "succeeded", trained
    finally:
        stop_process(worker)
    store = redis.Redis.from_url(redis_server.url)
    seen: list[bytes] = []
    for key in store.scan_iter(count=1000):
        seen.append(key)
        kind = store.type(key).decode()
        if kind == "string":
            seen.append(store.get(key))
        elif kind == "hash":
            seen.extend(b for pair in store.hgetall(key).items() for b in pair)
        elif kind == "list":
            seen.extend(store.lrange(key, 0, -1))
        elif kind == "set":
            seen.extend(store.smembers(key))
        elif kind == "zset":
            seen.extend(member for member, _ in store.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            for _, fields in store.xrange(key):
                seen.extend(b for pair in fields.items() for b in pair)
        else:
            raise AssertionError(f"a key of a type this test does not read: {key!r} {kind}")
    store.close()
    assert len(seen) > 20 and any(b"rq:job:" in value for value in seen)  # RQ's keys read too
    for value in list(seen):
        with contextlib.suppress(zlib.error):
            seen.append(zlib.decompress(value))  # RQ's job data (a compressed pickle)
    for secret in (API_TOKEN, HUB_TOKEN):
        found = [value[:200] for value in seen if secret.encode() in value]
        assert not found, f"{secret[:8]}... stored in Redis: {found}"
