"""The RQ side of the Redis backend: :func:`run_job` (what a worker runs for each job) and
:func:`run_worker` (``huggingtweets worker``).

A job carries only its id; the worker reads the job's record (serve.redis_queue) and
runs it as the embedded backend does: a prepare through prepare(), a train through
make_bot(), their events onto the job in Redis, a cancel request (a key polled each
second) onto the reporter, so training stops after its current step with its checkpoint.
Each job runs in a fresh work-horse process (RQ forks it): a job that crashes or uses up
the GPU's memory leaves the worker alive, and the memory is given back when it ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.serve.jobs import JobWork
from huggingtweets.serve.messages import error_text
from huggingtweets.serve.redis_queue import (
    ALIVE_TTL_S,
    FORMAT,
    QUEUE_NAMES,
    JobStore,
    alive_key,
    cancel_key,
    check_queue_url,
    connect,
    job_key,
    unavailable,
    work_from_json,
)

log = logging.getLogger(__name__)

RUNS_DIR_ENV = "HUGGINGTWEETS_WORKER_RUNS_DIR"  # set by run_worker; inherited by each job
BEAT_S = 2.0  # heartbeat and cancel poll


def run_job(job_id: str) -> str:
    """Run the job ``job_id`` (RQ calls this): returns its end state. A job that cannot run
    (corrupt, of another version, its run folder not here) fails alone, in one line."""
    from rq import get_current_job

    client = get_current_job().connection
    store = JobStore(client, Path(os.environ.get(RUNS_DIR_ENV, "runs")))
    raw = client.hmget(job_key(job_id), "format", "work")
    try:
        if raw[0] != FORMAT.encode():
            raise ValueError(f"its record is of another format ({raw[0]!r}, not {FORMAT})")
        work = work_from_json(raw[1] or b"")
    except (ValueError, TypeError, KeyError) as exc:
        store.finish(job_id, "queued", "failed", f"the job cannot be read: {exc}")
        return "failed"
    client.set(alive_key(job_id), os.getpid(), ex=ALIVE_TTL_S)
    if not store.move(job_id, "queued", state="running"):
        return "cancelled"  # cancelled (or taken) before it started
    outcome = _run_beating(store, job_id, work)
    store.finish(job_id, "running", *outcome)
    if work.upload is not None:
        shutil.rmtree(work.upload, ignore_errors=True)
    return outcome[0]


def _run_beating(store: JobStore, job_id: str, work: JobWork) -> tuple[str, str | None]:
    """The job run beside a thread that keeps its heartbeat alive and reads cancel
    requests; a worker (the parent) that dies stops the job after its step."""
    reporter = Reporter(lambda event: _on_event(store, job_id, event))
    stop = threading.Event()
    parent = os.getppid()
    orphaned = threading.Event()

    def beat() -> None:
        while not stop.wait(BEAT_S):
            if os.getppid() != parent:  # the worker was killed: nobody ends this job
                orphaned.set()
                reporter.cancel()
                return
            try:
                store.client.set(alive_key(job_id), os.getpid(), ex=ALIVE_TTL_S)
                if store.client.exists(cancel_key(job_id)):
                    reporter.cancel()
            except Exception as exc:  # Redis away for a moment: the next beat tries again
                log.warning("job %s: %s", job_id, unavailable(exc))

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        outcome = _run(store.runs_dir, job_id, work, reporter)
    finally:
        stop.set()
        thread.join(BEAT_S + 1)
    return ("failed", "the worker stopped") if orphaned.is_set() else outcome


def _on_event(store: JobStore, job_id: str, event: Event) -> None:
    try:
        store.on_event(job_id, event.to_dict())
    except Exception as exc:  # an event lost while Redis is away; the job goes on
        log.warning("job %s: event not recorded: %s", job_id, unavailable(exc))


def _run(runs_dir: Path, job_id: str, work: JobWork, reporter: Reporter) -> tuple[str, str | None]:
    run_dir = runs_dir / work.run_id
    try:
        if work.kind == "train":
            from huggingtweets.pipeline import make_bot
            from huggingtweets.train.recipe import TrainOptions

            if not run_dir.is_dir():
                raise HuggingtweetsError(_unseen(work.run_id))
            make_bot(run_dir, train=TrainOptions(**work.worker_options), reporter=reporter)
        else:
            from huggingtweets.prepare.dataset import prepare

            if not runs_dir.is_dir() or (work.upload is not None and not work.upload.is_dir()):
                raise HuggingtweetsError(_unseen(work.run_id))
            prepare(run_dir, list(work.sources), list(work.handles), reporter=reporter)
    except Cancelled:  # TrainingInterrupted too: stopped after a step, its checkpoint kept
        return ("cancelled", None)
    except Exception as exc:  # a job's failure is its state, not the worker's
        if not isinstance(exc, HuggingtweetsError):
            log.warning("job %s failed: %s", job_id, error_text(exc))
        return ("failed", error_text(exc))
    return ("succeeded", None)


def _unseen(run_id: str) -> str:
    return (
        f"this worker does not see the run folder {run_id!r} in its --runs-dir: give every "
        "server and worker the same runs directory (a shared file system)"
    )


def open_queue(url: str) -> Any:
    """A client to ``url`` that answers and accepts writes (HuggingtweetsError, one line)."""
    client = connect(check_queue_url(url))
    try:
        client.set("huggingtweets:ping", "1", ex=60)
    except Exception as exc:
        raise HuggingtweetsError(str(unavailable(exc)).split(": try again")[0]) from None
    return client


def run_worker(url: str, runs_dir: Path, *, burst: bool = False, name: str | None = None) -> None:
    """Run jobs from the queue at ``url`` one at a time until stopped (Ctrl-C, SIGTERM:
    RQ's warm shutdown lets the current job end). Prepare jobs are taken first: they are
    short and a person waits on them."""
    from rq import Queue, Worker

    client = open_queue(url)
    os.environ[RUNS_DIR_ENV] = str(Path(runs_dir).resolve())
    queues = [Queue(QUEUE_NAMES[kind], connection=client) for kind in ("prepare", "train")]
    worker = Worker(queues, connection=client, name=name, job_monitoring_interval=5)
    worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
