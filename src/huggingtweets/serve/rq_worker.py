"""The RQ side of the Redis backend: :func:`run_job` (what a worker runs for each job) and
:func:`run_worker` (``huggingtweets worker``).

A job carries only its id; the worker reads the job's record (serve.redis_queue) and
runs it as the embedded backend does: a prepare through jobs.prepare_job(), a train
through make_bot(), their events onto the job in Redis, a cancel request (a key polled
each second) onto the reporter, so training stops after its current step with its checkpoint.
Each job runs in a fresh work-horse process (RQ forks it): a job that crashes or uses up
the GPU's memory leaves the worker alive, and the memory is given back when it ends; a
job whose process is killed fails at once, naming the signal (:func:`horse_ended`). A
training runs in an empty folder of its own (serve.worker.in_empty_folder), so that a
client's Hub id is never a folder that happens to be where the worker was started.

A Redis that is down, restarting or loading its data is waited for, by the same process:
at start, while idle and when RQ's loop gives up on a lost connection, with a back-off of
at most RECONNECT_MAX_S, one line when it goes away and one when it answers again (RQ's
own line per try, with host and port, is folded into these).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.serve.jobs import JobWork, prepare_job
from huggingtweets.serve.messages import ended_text, error_text
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
from huggingtweets.serve.worker import in_empty_folder

log = logging.getLogger(__name__)

RUNS_DIR_ENV = "HUGGINGTWEETS_WORKER_RUNS_DIR"  # set by run_worker; inherited by each job
BEAT_S = 2.0  # heartbeat and cancel poll
RECONNECT_MAX_S = 5.0  # the longest wait between two tries to reach a Redis that is down
WAITING = "the job queue (Redis) is not reachable: waiting for it (a try every {:g} s at most)"
BACK = "the job queue (Redis) answers again: taking jobs"


def run_job(job_id: str) -> str:
    """Run the job ``job_id`` (RQ calls this): returns its end state. A job that cannot run
    (corrupt, of another version, its run folder not here) fails alone, in one line."""
    from rq import get_current_job

    client = get_current_job().connection
    store = JobStore(client, _runs_dir())
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
            with in_empty_folder():  # a client's Hub id is never a folder found here
                make_bot(run_dir, train=TrainOptions(**work.worker_options), reporter=reporter)
        else:
            if not runs_dir.is_dir() or (work.upload is not None and not work.upload.is_dir()):
                raise HuggingtweetsError(_unseen(work.run_id))
            prepare_job(run_dir, work, reporter)  # an overwrite's old model removed after
    except Cancelled:  # TrainingInterrupted too: stopped after a step, its checkpoint kept
        return ("cancelled", None)
    except Exception as exc:  # a job's failure is its state, not the worker's
        if not isinstance(exc, HuggingtweetsError):
            log.warning("job %s failed: %s", job_id, error_text(exc))
        return ("failed", error_text(exc))
    return ("succeeded", None)


def horse_ended(store: JobStore, job_id: str, status: int | None) -> None:
    """The job's own process (RQ's work horse) ended before the job did, killed or crashed
    (``status`` as waitpid gave it): the job fails now, saying how the process ended, not
    once its heartbeat has expired ("the worker stopped")."""
    exitcode = None if status is None else os.waitstatus_to_exitcode(status)
    error = ended_text("the job's process", exitcode)
    # Queued still when it died before run_job took the job: RQ will not run it again.
    if not store.finish(job_id, "running", "failed", error):
        store.finish(job_id, "queued", "failed", error)


def _runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV, "runs"))


def _unseen(run_id: str) -> str:
    return (
        f"this worker does not see the run folder {run_id!r} in its --runs-dir: give every "
        "server and worker the same runs directory (a shared file system)"
    )


def open_queue(url: str) -> Any:
    """A client to ``url`` that answers and accepts writes (HuggingtweetsError, one line)."""
    try:
        return _try_queue(url)
    except Exception as exc:
        raise HuggingtweetsError(str(unavailable(exc)).split(": try again")[0]) from None


def _try_queue(url: str) -> Any:
    client = connect(check_queue_url(url))
    try:
        client.set("huggingtweets:ping", "1", ex=60)
    except Exception:
        client.close()
        raise
    return client


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a Redis that is down, restarting or still loading its data (worth
    waiting for), not one that refuses this client (a password, writes) or is not Redis."""
    import redis.exceptions as rex

    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
        return False
    if isinstance(exc, rex.BusyLoadingError | rex.TimeoutError):
        return True
    return isinstance(exc, rex.ConnectionError) and "closed by server" not in str(exc)


def wait_for_queue(url: str, say: Callable[[str], None]) -> Any:
    """:func:`open_queue`, but a Redis that is down is waited for (``say`` one line when
    the wait starts, one when it answers); what waiting cannot mend (a wrong URL or
    password, a server that is not Redis, a Redis that refuses writes) is a
    HuggingtweetsError at once."""
    delay, waiting = 0.25, False
    while True:
        try:
            client = _try_queue(url)
        except Exception as exc:
            if not transient(exc):
                raise HuggingtweetsError(str(unavailable(exc)).split(": try again")[0]) from None
            if not waiting:
                say(WAITING.format(RECONNECT_MAX_S))
                waiting = True
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            continue
        if waiting:
            say(BACK)
        return client


class _Outages(logging.Filter):
    """On RQ's worker log: its line per failed try (host, port, "retrying in N seconds") is
    one line per outage; its "quitting" on a lost connection (with a traceback) is one line,
    and remembered, so that :func:`run_worker` waits and goes on instead."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False  # an outage is being waited for
        self.lost = False  # RQ's loop ended on a lost connection

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if "could not connect to Redis" in message:
            if self.down or record.threadName != "MainThread":  # its pubsub thread's tries
                return False
            self.down = True
            record.msg, record.args, record.levelno = WAITING.format(RECONNECT_MAX_S), (), 30
            record.levelname = "WARNING"
            return True
        error = record.exc_info[1] if record.exc_info else None
        if "quitting" in message and (
            "connection timeout" in message or (error is not None and transient(error))
        ):
            self.lost, self.down = True, True
            record.msg, record.args, record.exc_info = WAITING.format(RECONNECT_MAX_S), (), None
            record.exc_text = None
            return True
        return True

    def answered(self, log: logging.Logger) -> None:
        if self.down:
            self.down = False
            log.info(BACK)


def _worker_class() -> type:
    from rq import Worker

    class ReconnectingWorker(Worker):
        """RQ's worker with a bounded back-off while Redis is away, a line when it is back,
        and a record of a stop asked for by a signal (which may come during an outage)."""

        max_connection_wait_time = RECONNECT_MAX_S
        outages: _Outages
        stopping = False

        def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
            answer = super().heartbeat(*args, **kwargs)
            self.outages.answered(self.log)  # it answered: an outage is over
            return answer

        def request_stop(self, signum: Any, frame: Any) -> None:
            self.stopping = True
            super().request_stop(signum, frame)

        def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any):
            super().handle_work_horse_killed(job, retpid, ret_val, rusage)
            horse_ended(JobStore(self.connection, _runs_dir()), job.id, ret_val)

    return ReconnectingWorker


def run_worker(url: str, runs_dir: Path, *, burst: bool = False, name: str | None = None) -> None:
    """Run jobs from the queue at ``url`` one at a time until stopped (Ctrl-C, SIGTERM:
    RQ's warm shutdown lets the current job end). Prepare jobs are taken first: they are
    short and a person waits on them. A Redis that goes away is waited for, and the same
    process goes on once it answers."""
    from rq import Queue
    from rq.logutils import setup_loghandlers

    setup_loghandlers("INFO", name="rq.worker")
    say = logging.getLogger("rq.worker")
    outages = _Outages()
    say.addFilter(outages)
    os.environ[RUNS_DIR_ENV] = str(Path(runs_dir).resolve())
    worker_class = _worker_class()
    while True:
        client = wait_for_queue(url, say.warning if not outages.down else _quiet)
        outages.answered(say)
        queues = [Queue(QUEUE_NAMES[kind], connection=client) for kind in ("prepare", "train")]
        worker = worker_class(queues, connection=client, name=name, job_monitoring_interval=5)
        worker.outages = outages
        if outages.lost and name is not None:
            client.delete(worker.key)  # this process's own record, left by the lost loop
        outages.lost = False
        try:
            worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
        except Exception as exc:  # its teardown (RQ's register_death) with Redis away
            if not transient(exc):
                raise
            outages.lost = True
        if worker.stopping or not outages.lost:
            return
        _after_lost_loop(worker, say)


def _quiet(_line: str) -> None:
    """An outage already said (by RQ's loop, folded): nothing more to say."""


def _after_lost_loop(worker: Any, say: logging.Logger) -> None:
    """RQ's loop ended on a lost connection: its pubsub thread stopped, its signals back to
    the defaults, and a job it was running (its work horse) waited for, so this worker
    never runs two jobs at once."""
    with contextlib.suppress(Exception):
        worker.pubsub_thread.stop()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    horse = getattr(worker, "horse_pid", 0)
    if horse:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(horse, os.WNOHANG) == (0, 0):
                say.warning("waiting for the running job to end before taking another")
                os.waitpid(horse, 0)
