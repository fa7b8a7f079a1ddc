"""The training process of the embedded job queue: ONE process that trains, one job at a
time, started when the first training starts (and again after it died).

Pipes, not queues: once the worker's ends are closed here, a worker that dies (even
halfway through a message) is an EOF to the reader, never a read that waits forever; and a
server that dies is an EOF to the worker, which then ends. Cancelling sets an event that
the worker's reporter reads: training stops after the current step, with its checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.serve.messages import error_text

log = logging.getLogger(__name__)

Outcome = tuple[str, str | None]  # (the job's end state, its one-line error)


class TrainingWorker:
    """The server's side of the training process: start it, give it a job, follow the job's
    events to its end, cancel it, stop it."""

    def __init__(self, context: Any = None) -> None:
        self.context = context or multiprocessing.get_context("spawn")
        self.process: Any = None
        self._tasks: Any = None
        self._results: Any = None
        self._cancel: Any = None

    def start(self) -> None:
        """A live process (a fresh one when it died: killed, out of memory)."""
        if self.process is not None and self.process.is_alive():
            return
        if self.process is not None:
            self.process.join(timeout=1)
            self._close_pipes()
        task_reader, self._tasks = self.context.Pipe(duplex=False)
        self._results, result_writer = self.context.Pipe(duplex=False)
        self._cancel = self.context.Event()
        self.process = self.context.Process(
            target=worker_main,
            args=(task_reader, result_writer, self._cancel),
            name="huggingtweets-train",
            daemon=True,
        )
        try:
            self.process.start()
        except BaseException:
            # Never started: forgotten, so that the next job (and stop) does not wait on a
            # process that does not exist.
            self.process = None
            self._close_pipes()
            raise
        finally:
            task_reader.close()
            result_writer.close()

    def _close_pipes(self) -> None:
        for end in (self._tasks, self._results):
            end.close()

    def submit(self, job_id: str, run_dir: str, options: dict) -> None:
        """Give the started process a job (a cancel from before is forgotten)."""
        self._cancel.clear()
        # A worker gone already is an EOF in follow(): the job fails as it died.
        with contextlib.suppress(OSError):
            self._tasks.send((job_id, run_dir, options))

    def follow(self, job_id: str, on_event: Callable[[dict], None]) -> Outcome | None:
        """The job's events to ``on_event`` until it ends: its outcome, or None when the
        process died."""
        while True:
            try:
                if not self._results.poll(0.5):
                    continue
                kind, sender, payload = self._results.recv()
            except (EOFError, OSError):  # the worker's end is closed: it has died
                self.process.join(5)
                return None
            if sender != job_id:
                continue
            if kind == "event":
                on_event(payload)
            elif kind == "done":
                state, error = payload
                return state, error

    @property
    def exitcode(self) -> int | None:
        return None if self.process is None else self.process.exitcode

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def stop(self, timeout: float) -> None:
        """Ask the running job to stop and the process to end; after ``timeout`` seconds it
        is terminated, then killed."""
        self.cancel()
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._tasks.send(None)  # ends the worker's loop once its job has stopped
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def worker_main(tasks: Any, results: Any, cancel_event: Any) -> None:
    """The training process: one job at a time from ``tasks``; its events, then its end
    ("done", state, one-line error), go back on ``results``. Ctrl-C in the server's
    terminal reaches this process too: ignored here, the server cancels it properly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()  # events may come from several threads of a training
    server_gone = threading.Event()

    def send(message: tuple) -> None:
        with lock:
            if server_gone.is_set():
                return
            try:
                results.send(message)
            except OSError:  # a broken pipe: the server died (kill -9); nobody follows
                server_gone.set()  # this training any more: it stops after this step,
                cancel_event.set()  # keeping its checkpoint (train --resume continues)

    while not server_gone.is_set():
        try:
            task = tasks.recv()
        except EOFError:  # the server is gone
            return
        if task is None:
            return
        job_id, run_dir, options = task
        send(("done", job_id, train_job(job_id, run_dir, options, send, cancel_event)))


def train_job(
    job_id: str, run_dir: str, options: dict, send: Callable[[tuple], None], cancel_event: Any
) -> Outcome:
    from huggingtweets.pipeline import make_bot
    from huggingtweets.train.recipe import TrainOptions

    def listener(event: Event) -> None:
        send(("event", job_id, event.to_dict()))

    reporter = Reporter(listener, cancel_event=cancel_event)
    try:
        with in_empty_folder():
            make_bot(run_dir, train=TrainOptions(**options), reporter=reporter)
    except Cancelled:  # TrainingInterrupted too: stopped after a step, its checkpoint kept
        return ("cancelled", None)
    except Exception as exc:
        if not isinstance(exc, HuggingtweetsError):
            import traceback

            from huggingtweets.core.secrets import redact

            log.error("training job %s failed:\n%s", job_id, redact(traceback.format_exc()))
        return ("failed", error_text(exc))
    return ("succeeded", None)


@contextlib.contextmanager
def in_empty_folder() -> Iterator[None]:
    """A job run in an empty working folder of its own: a client's base model, a Hub id
    ("gpt2", "org/name"), is then never taken for a folder of that name where the worker
    was started (the model's resolution and transformers' from_pretrained both look in the
    working folder first). What a job is given is absolute: its run folder, a served
    model's folder."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="huggingtweets-job-") as empty:
        os.chdir(empty)
        try:
            yield
        finally:
            os.chdir(before)
