"""Benchmark: the Redis job queue (``serve --queue``) with 1 worker and with 2, in one run.

A real ``redis-server`` (free loopback port, no persistence), one real
``huggingtweets serve --queue`` process and real ``huggingtweets worker`` processes on one
runs directory. First ``2 × N`` runs are prepared from the bundled samples (through the
queue, not timed). Then two phases, each posting N tiny training jobs at once
(``POST /api/v1/runs/RUN/train``, base ``tiny``, ``--steps`` optimizer steps):

- ``1 worker``: the worker that prepared the runs, alone;
- ``2 workers``: a second one started and registered in Redis before the phase begins.

For each phase: jobs per minute (N ÷ the time from the first POST to the last job's end),
the time from each job's POST to its state "running" (median, min, max: with fewer
workers than jobs it is mostly waiting in the queue), each job's running time, the ratio
of the two phases' jobs per minute, and Redis's cost per job: ``INFO memory``'s
``used_memory`` before and after the phase ÷ N, the ``MEMORY USAGE`` of every key holding
a job's id (our job hash and event stream, RQ's job hash and result), the events each job
wrote to its stream, and the Redis commands per job (``INFO stats``, less the
benchmark's own polling). States are read straight from Redis every 50 ms (one pipelined
``HGET`` per job), so the server's HTTP polling does not weigh on the measurement.

    python benchmarks/queue_throughput.py [--jobs 8] [--steps 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate_throughput import cpu_model

ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"
ENDED = ("succeeded", "failed", "cancelled")
SAMPLES = ("romeo", "juliet", "mercutio")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HUGGINGTWEETS = str(Path(sys.executable).with_name("huggingtweets"))
POLL_S = 0.05
START_S = 300  # a server or worker importing torch on a busy machine
PHASE_S = 1800


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


class Processes:
    """Every process this benchmark starts, stopped at the end (the server by Ctrl-C, the
    workers by SIGTERM: RQ's warm shutdown)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "HUGGINGTWEETS_API_TOKEN"}
        env.update(GRADIO_ANALYTICS_ENABLED="False", HUGGINGTWEETS_EVALUATE="never")
        env.pop("HUGGINGTWEETS_QUEUE", None)
        log = (self.work / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work,
            start_new_session=True,
        )  # fmt: skip
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.started):  # the workers, the server, then Redis
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def start_redis(procs: Processes) -> tuple[str, object]:
    import redis

    port = free_port()
    procs.start(
        "redis",
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(procs.work)],
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return f"redis://127.0.0.1:{port}/0", client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start in 30 s") from None
            time.sleep(0.1)


def start_server(procs: Processes, queue: str, runs: Path) -> str:
    import httpx

    port = free_port()
    procs.start(
        "serve",
        [HUGGINGTWEETS, "serve", "--queue", queue, "--runs-dir", str(runs), "--port", str(port)],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_S
    while True:
        try:
            if httpx.get(f"{url}{API}/health", timeout=3).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or procs.started[-1].poll() is not None:
            raise SystemExit(f"the server did not start:\n{tail(procs.work / 'serve.log')}")
        time.sleep(0.5)


def start_worker(procs: Processes, queue: str, runs: Path, client, name: str) -> None:
    """A worker, once it is registered in Redis (its start-up is not timed)."""
    from rq import Worker

    procs.start(name, [HUGGINGTWEETS, "worker", "--queue", queue, "--runs-dir", str(runs),
                       "--name", name])  # fmt: skip
    deadline = time.monotonic() + START_S
    while name not in {worker.name for worker in Worker.all(connection=client)}:
        if time.monotonic() > deadline or procs.started[-1].poll() is not None:
            raise SystemExit(f"worker {name} did not start:\n{tail(procs.work / f'{name}.log')}")
        time.sleep(0.2)


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def watch(client, posted: dict[str, float], timeout: float) -> tuple[dict, dict, int]:
    """Poll each job's state in Redis until all have ended: (running at, ended at, the
    commands this polling sent)."""
    running: dict[str, float] = {}
    ended: dict[str, float] = {}
    commands = 0
    deadline = time.monotonic() + timeout
    while len(ended) < len(posted):
        pipe = client.pipeline(transaction=False)
        ids = [job_id for job_id in posted if job_id not in ended]
        for job_id in ids:
            pipe.hget(f"huggingtweets:job:{job_id}", "state")
        states = pipe.execute()
        commands += len(ids)
        now = time.monotonic()
        for job_id, raw in zip(ids, states, strict=True):
            state = (raw or b"").decode()
            if state in ("running", *ENDED):
                running.setdefault(job_id, now)
            if state in ENDED:
                ended[job_id] = now
                if state != "succeeded":
                    error = client.hget(f"huggingtweets:job:{job_id}", "error")
                    raise SystemExit(f"job {job_id} {state}: {error!r}")
        if now > deadline:
            raise SystemExit(f"{len(posted) - len(ended)} jobs not ended in {timeout:.0f} s")
        time.sleep(POLL_S)
    return running, ended, commands


def job_keys_memory(client, job_id: str) -> dict[str, int]:
    """MEMORY USAGE of each key holding the job's id, by the key's name with the id
    replaced by ``<id>``."""
    sizes = {}
    for key in client.scan_iter(match=f"*{job_id}*", count=1000):
        size = client.memory_usage(key, samples=0) or 0
        sizes[key.decode().replace(job_id, "<id>")] = size
    return sizes


def phase(http, client, url: str, runs: list[str], steps: int, workers: int) -> dict:
    body = {"base_model": "tiny", "max_steps": steps, "per_device_train_batch_size": 2,
            "block_size": 32}  # fmt: skip
    client.memory_purge()
    memory_before = client.info("memory")["used_memory"]
    commands_before = client.info("stats")["total_commands_processed"]
    load_before = load_average()
    posted: dict[str, float] = {}
    for run_id in runs:
        answer = http.post(f"{url}{API}/runs/{run_id}/train", json=body)
        if answer.status_code != 202:
            raise SystemExit(f"POST train {run_id}: {answer.status_code} {answer.text}")
        posted[answer.json()["id"]] = time.monotonic()
    running, ended, polled = watch(client, posted, PHASE_S)
    commands = client.info("stats")["total_commands_processed"] - commands_before - polled
    client.memory_purge()
    memory_after = client.info("memory")["used_memory"]
    first, last = min(posted.values()), max(ended.values())
    waits = [running[j] - posted[j] for j in posted]
    runtimes = [ended[j] - running[j] for j in posted]
    keys = [job_keys_memory(client, job_id) for job_id in posted]
    per_key: dict[str, list[int]] = {}
    for sizes in keys:
        for key, size in sizes.items():
            per_key.setdefault(key, []).append(size)
    events = [client.xlen(f"huggingtweets:events:{job_id}") for job_id in posted]
    return {
        "workers": workers,
        "jobs": len(runs),
        "seconds": last - first,
        "jobs_per_minute": 60 * len(runs) / (last - first),
        "post_to_running_s": {**spread(waits), "each": [round(w, 2) for w in waits]},
        "running_s": spread(runtimes),
        "redis_used_memory_per_job_bytes": (memory_after - memory_before) / len(runs),
        "memory_usage_per_job_bytes": statistics.median(sum(s.values()) for s in keys),
        "memory_usage_by_key_bytes": {k: statistics.median(v) for k, v in sorted(per_key.items())},
        "events_per_job": statistics.median(events),
        "redis_commands_per_job": commands / len(runs),
        "load_average": f"{load_before} → {load_average()}",
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def prepare_runs(http, client, url: str, count: int) -> list[str]:
    """``count`` runs prepared from the bundled samples through the queue (not timed)."""
    posted = {}
    run_ids = [f"bench-{i:03d}" for i in range(count)]
    for i, run_id in enumerate(run_ids):
        body = {"sources": [f"sample:{SAMPLES[i % len(SAMPLES)]}"], "run_id": run_id}
        answer = http.post(f"{url}{API}/runs", json=body)
        if answer.status_code != 202:
            raise SystemExit(f"POST runs: {answer.status_code} {answer.text}")
        posted[answer.json()["id"]] = time.monotonic()
    watch(client, posted, PHASE_S)
    return run_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="training jobs per phase (N)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per job")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temporary)")
    args = parser.parse_args()
    import httpx

    work = args.work or Path(tempfile.mkdtemp(prefix="queue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    procs = Processes(work)
    print(f"CPU: {cpu_model()}; load average {load_average()}")
    try:
        queue, client = start_redis(procs)
        print(f"redis-server {client.info('server')['redis_version']}")
        url = start_server(procs, queue, runs)
        start_worker(procs, queue, runs, client, "bench-worker-1")
        with httpx.Client(timeout=60) as http:
            run_ids = prepare_runs(http, client, url, 2 * args.jobs)
            results = [phase(http, client, url, run_ids[: args.jobs], args.steps, 1)]
            start_worker(procs, queue, runs, client, "bench-worker-2")
            results.append(phase(http, client, url, run_ids[args.jobs :], args.steps, 2))
    finally:
        procs.stop()
    for result in results:
        waits, running = result["post_to_running_s"], result["running_s"]
        print(
            f"{result['workers']} worker(s): {result['jobs']} jobs in {result['seconds']:.1f} s"
            f" = {result['jobs_per_minute']:.2f} jobs/min; POST → running median "
            f"{waits['median']:.1f} s ({waits['min']:.1f}–{waits['max']:.1f}); running median "
            f"{running['median']:.1f} s ({running['min']:.1f}–{running['max']:.1f}); "
            f"load average {result['load_average']}"
        )
        print(
            f"  Redis per job: used_memory +{result['redis_used_memory_per_job_bytes']:.0f} B;"
            f" MEMORY USAGE of its keys {result['memory_usage_per_job_bytes']:.0f} B "
            f"{result['memory_usage_by_key_bytes']}; {result['events_per_job']} events; "
            f"{result['redis_commands_per_job']:.0f} commands"
        )
    ratio = results[1]["jobs_per_minute"] / results[0]["jobs_per_minute"]
    print(f"2 workers / 1 worker: {ratio:.2f}× the jobs per minute")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"cpu": cpu_model(), "steps": args.steps, "phases": results, "ratio": ratio}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
