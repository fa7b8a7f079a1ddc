"""The Redis backend of the job interface (:class:`RedisJobQueue`): job records, queue
positions, progress, events and cancel requests live in Redis; the jobs run through RQ in
``huggingtweets worker`` processes (serve.rq_worker), on this machine or others. A server
restart forgets nothing, any number of server replicas share the jobs, and a run's one
active job is claimed atomically (SET NX), so two replicas never both accept it.

Keys (all under ``huggingtweets:``): ``job:<id>`` a hash (the job), ``jobs`` a sorted set
(every job by creation), ``run:<run_id>`` the run's active job, ``events:<id>`` a capped
stream (one entry per change), ``cancel:<id>`` a cancel request the worker polls,
``alive:<id>`` the running job's heartbeat (a TTL: a killed worker lets it expire).
Nothing secret is stored: a job holds its options, sources and run name only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.errors import Busy, QueueFull, UnknownJob
from huggingtweets.serve.jobs import (
    ENDED,
    JOB_ID_RE,
    KEPT_JOBS,
    KINDS,
    MAX_WAITING_JOBS,
    JobQueue,
    JobWork,
    progress_after,
    utc_now,
)
from huggingtweets.serve.messages import one_line, server_words, without_root, without_upload_folder

PREFIX = "huggingtweets:"
JOB_FUNCTION = "huggingtweets.serve.rq_worker.run_job"  # what an RQ job calls
FORMAT = "1"  # a job's record format: a worker refuses (fails) a job of another one
QUEUE_NAMES = {kind: f"huggingtweets-{kind}" for kind in KINDS}
EVENTS_KEPT = 200  # each job's stream is capped (progress is also kept on the job)
ALIVE_TTL_S = 20  # a running job whose worker stopped is reported failed after this
RETRY_AFTER_S = 5
# A Redis that does not answer is a 503 within seconds, never a request that hangs.
SOCKET_TIMEOUT_S = 3.0
ENQUEUE_TRIES = 50  # a create that loses the count's race this often is a 503
EVENT_POLL_S = 2.0  # an event stream re-reads its job this often (positions, a dead worker)

# A job moves from one state to another only from the state it is in (a cancel and a
# worker taking the job at once: one of them wins).
_TRANSITION = """
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
# The run's claim is released only by the job that holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class QueueUnavailable(QueueFull):
    """Redis cannot be reached or refuses writes: 503 with Retry-After, one line."""

    kind = "queue_unavailable"


def check_queue_url(url: str) -> str:
    """``redis://HOST:PORT/DB`` (or rediss://, unix://) checked before any connection."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise HuggingtweetsError(
            f"--queue {one_line(url, 100)!r}: give a Redis URL such as redis://127.0.0.1:6379/0"
        )
    try:
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise HuggingtweetsError(f"--queue: {parts.netloc!r} has no valid port") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise HuggingtweetsError("--queue: the URL names no host (redis://HOST:PORT/DB)")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise HuggingtweetsError(f"--queue: the database {db!r} is not a number (redis://HOST/0)")
    return url.strip()


def connect(url: str, *, asynchronous: bool = False) -> Any:
    """A client with timeouts: a Redis that hangs is an error in seconds."""
    import redis
    import redis.asyncio

    module = redis.asyncio if asynchronous else redis
    return module.Redis.from_url(
        url,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S + EVENT_POLL_S,  # above a blocking read's wait
        health_check_interval=15,
        retry_on_timeout=False,
    )


def unavailable(exc: Exception) -> QueueUnavailable:
    """A Redis error as the one line a client sees (no host, no traceback)."""
    import redis.exceptions as rex

    said = str(exc)
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
        text = "the job queue (Redis) refuses this server's password"
    elif isinstance(exc, rex.ReadOnlyError):
        text = "the job queue (Redis) is a read-only replica: it accepts no jobs"
    elif isinstance(exc, rex.OutOfMemoryError) or said.startswith("OOM"):
        text = "the job queue (Redis) is out of memory (its maxmemory): it accepts no jobs"
    elif said.startswith("NOREPLICAS"):
        text = (
            "the job queue (Redis) refuses writes: too few of its replicas answer "
            "(its min-replicas-to-write)"
        )
    elif said.startswith("MISCONF"):
        text = "the job queue (Redis) refuses writes: it cannot save its data (see its log)"
    elif isinstance(exc, rex.InvalidResponse):
        text = "the job queue's address answers, but not as Redis: is it a Redis server?"
    elif isinstance(exc, rex.TimeoutError):
        text = "the job queue (Redis) did not answer in time"
    elif isinstance(exc, rex.ConnectionError) and "closed by server" in said:
        text = "the job queue's address closed the connection at once: is it a Redis server?"
    elif isinstance(exc, rex.ConnectionError):
        text = "the job queue (Redis) is not reachable"
    else:
        text = f"the job queue (Redis) answered an error: {one_line(str(exc), 200)}"
    return QueueUnavailable(f"{text}: try again in a few seconds", retry_after=RETRY_AFTER_S)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Any Redis failure inside becomes QueueUnavailable (503 + Retry-After)."""
    import redis.exceptions as rex

    try:
        yield
    except rex.RedisError as exc:
        raise unavailable(exc) from None


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}events:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def alive_key(job_id: str) -> str:
    return f"{PREFIX}alive:{job_id}"


def run_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


JOBS_KEY = f"{PREFIX}jobs"


def rq_queue_key(kind: str) -> str:
    return f"rq:queue:{QUEUE_NAMES[kind]}"


def work_to_json(work: JobWork) -> str:
    data = asdict(work)
    data["upload"] = str(work.upload) if work.upload is not None else None
    return json.dumps(data)


def work_from_json(text: str | bytes) -> JobWork:
    """The job's work as stored (ValueError/TypeError/KeyError when corrupt)."""
    data = json.loads(text)
    kind, run_id = data["kind"], data["run_id"]
    if kind not in KINDS or not isinstance(run_id, str):
        raise ValueError(f"not a job kind: {kind!r}")
    upload = data.get("upload")
    return JobWork(
        kind,
        run_id,
        options=dict(data.get("options") or {}),
        worker_options=dict(data.get("worker_options") or {}),
        sources=tuple(data.get("sources") or ()),
        handles=tuple(data.get("handles") or ()),
        upload=Path(upload) if upload else None,
        overwrite=data.get("overwrite") is True,
    )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _json(value: bytes | str | None, default: Any) -> Any:
    try:
        return json.loads(value) if value else default
    except ValueError:
        return default


class JobStore:
    """The job records in Redis, as the server and the worker both change them."""

    def __init__(self, client: Any, runs_dir: Path) -> None:
        self.client = client
        self.runs_dir = Path(runs_dir)
        self._transition = client.register_script(_TRANSITION)
        self._release = client.register_script(_RELEASE)

    def changed(self, pipe: Any, job_id: str, kind: str = "change") -> None:
        pipe.xadd(events_key(job_id), {"kind": kind}, maxlen=EVENTS_KEPT, approximate=True)

    def move(self, job_id: str, start: str, **fields: str) -> bool:
        """``job_id`` from state ``start`` to ``fields`` (state, ...): False if it was not
        in ``start`` (someone else moved it first)."""
        args = [start, *[item for pair in fields.items() for item in pair]]
        moved = bool(self._transition(keys=[job_key(job_id)], args=args))
        if moved:
            pipe = self.client.pipeline()
            self.changed(pipe, job_id)
            pipe.execute()
        return moved

    def finish(self, job_id: str, start: str, state: str, error: str | None = None) -> bool:
        """End the job (from ``start``): its state, its public error, its run released."""
        raw = self.client.hmget(job_key(job_id), "work", "run_id")
        text = self.public_error(raw[0], error) if state == "failed" else ""
        fields = {"state": state, "error": text, "finished": utc_now()}
        if not self.move(job_id, start, **fields):
            return False
        self._release(keys=[run_key(_text(raw[1]) or "")], args=[job_id])
        self.client.delete(cancel_key(job_id), alive_key(job_id))
        return True

    def public_error(self, work_json: bytes | None, error: str | None) -> str:
        """One line, an upload named by its file name, other paths relative to runs_dir."""
        text = server_words(one_line(error or "failed"))
        with contextlib.suppress(ValueError, TypeError, KeyError):
            work = work_from_json(work_json or b"")
            if work.upload is not None:
                text = without_upload_folder(text, work.upload)
        return without_root(text, self.runs_dir)

    def on_event(self, job_id: str, payload: dict) -> None:
        """A reporter's event (Event.to_dict()) onto the job: its progress, a warning."""
        raw = self.client.hmget(job_key(job_id), "state", "progress", "warnings")
        if _text(raw[0]) in ENDED:
            return
        message = without_root(payload.get("message") or "", self.runs_dir)
        payload = {**payload, "message": message}
        fields = {"progress": json.dumps(progress_after(_json(raw[1], None), payload))}
        warnings = _json(raw[2], [])
        if payload.get("kind") == "warning" and len(warnings) < 20:
            fields["warnings"] = json.dumps([*warnings, one_line(message)])
        pipe = self.client.pipeline()
        pipe.hset(job_key(job_id), mapping=fields)
        self.changed(pipe, job_id)
        pipe.execute()


def snapshot_of(job_id: str, data: dict, position: int | None) -> dict:
    """A job's hash as the API's Job (a corrupt field shown as empty, never a 500)."""
    fields = {_text(k): v for k, v in data.items()}
    work: dict = _json(fields.get("work"), {})
    if not isinstance(work, dict):
        work = {}
    state = _text(fields.get("state")) or "failed"
    return {
        "id": job_id,
        "run_id": _text(fields.get("run_id")) or str(work.get("run_id", "")),
        "kind": work.get("kind") if work.get("kind") in KINDS else "prepare",
        "state": state,
        "position": position if state == "queued" else None,
        "progress": _json(fields.get("progress"), None),
        "error": _text(fields.get("error")) or None,
        "warnings": _json(fields.get("warnings"), []),
        "options": work.get("options") if isinstance(work.get("options"), dict) else {},
        "created": _text(fields.get("created")) or "",
        "finished": _text(fields.get("finished")) or None,
    }


def _kind_of(data: dict) -> str:
    work = _json(data.get(b"work"), {})
    kind = work.get("kind") if isinstance(work, dict) else None
    return kind if kind in KINDS else "prepare"


class RedisJobQueue(JobQueue):
    """Jobs in Redis, run by RQ workers (``huggingtweets worker``)."""

    def __init__(self, url: str, runs_dir: Path) -> None:
        from rq import Queue

        self.url = check_queue_url(url)
        self.runs_dir = Path(runs_dir)
        self.client = connect(self.url)
        self.store = JobStore(self.client, self.runs_dir)
        self.queues = {
            kind: Queue(name, connection=self.client) for kind, name in QUEUE_NAMES.items()
        }

    def ping(self) -> None:
        """Raise QueueUnavailable (its one line) unless Redis answers and accepts writes."""
        with redis_errors():
            self.client.set(f"{PREFIX}ping", "1", ex=60)

    # -- the interface ----------------------------------------------------------------

    def create(self, work: JobWork) -> dict:
        job_id = secrets.token_hex(8)
        with redis_errors():
            # The record first (listed nowhere yet), then the run's claim: a claim always
            # names a job that exists, so a claim without one is stale, never too new.
            self.client.hset(job_key(job_id), mapping=self._record(work))
            try:
                self._claim(work.run_id, job_id)
            except BaseException:
                self.client.delete(job_key(job_id))
                raise
            try:
                self._enqueue(job_id, work)
            except BaseException:
                self.client.delete(job_key(job_id))
                self.store._release(keys=[run_key(work.run_id)], args=[job_id])
                raise
            self._forget_old()
            return self.get(job_id)

    def _claim(self, run_id: str, job_id: str) -> None:
        """The run's one active job, taken atomically (SET NX); a claim left by a job that
        has ended (a server killed halfway) is taken over."""
        for _ in range(2):
            if self.client.set(run_key(run_id), job_id, nx=True):
                return
            holder = _text(self.client.get(run_key(run_id))) or ""
            data = self.client.hgetall(job_key(holder)) if holder else {}
            if data and _text(data.get(b"state")) not in ENDED:
                raise Busy(
                    f"run {run_id!r} already has a {_kind_of(data)} job "
                    f"{_text(data.get(b'state'))} ({holder})"
                )
            self.store._release(keys=[run_key(run_id)], args=[holder])
        raise Busy(f"run {run_id!r} already has a job queued or running")

    def _record(self, work: JobWork) -> dict:
        return {
            "format": FORMAT,
            "work": work_to_json(work),
            "run_id": work.run_id,
            "state": "queued",
            "created": utc_now(),
        }

    def _enqueue(self, job_id: str, work: JobWork) -> None:
        """Count the waiting jobs and enqueue this one in one transaction (WATCH the RQ
        queue's list, MULTI, EXEC): replicas that both see 31 waiting never both add
        one; whoever loses the race counts again. QueueFull when the bound is reached."""
        import redis.exceptions as rex

        key = rq_queue_key(work.kind)
        for attempt in range(ENQUEUE_TRIES):
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    self._check_waiting(work.kind, pipe.llen(key))
                    pipe.multi()
                    pipe.zadd(JOBS_KEY, {job_id: time.time()})
                    self.store.changed(pipe, job_id)
                    # RQ's own job has the same id; it carries only that id (the record
                    # is ours). Queued on the pipeline: saved and pushed by EXEC.
                    self.queues[work.kind].enqueue_call(
                        JOB_FUNCTION,
                        args=(job_id,),
                        job_id=job_id,
                        timeout=-1,  # a training takes what it takes; cancel stops it
                        result_ttl=3600,
                        failure_ttl=7 * 86400,
                        pipeline=pipe,
                    )
                    pipe.execute()
                    return
                except rex.WatchError:  # the queue changed meanwhile: count again
                    time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        raise QueueUnavailable(
            f"too many {work.kind} jobs are being created at once: try again in a few seconds",
            retry_after=RETRY_AFTER_S,
        )

    def _forget_old(self) -> None:
        """Ended jobs past KEPT_JOBS are forgotten, the oldest first."""
        extra = self.client.zcard(JOBS_KEY) - KEPT_JOBS
        if extra <= 0:
            return
        for raw in self.client.zrange(JOBS_KEY, 0, extra - 1):
            job_id = _text(raw)
            if _text(self.client.hget(job_key(job_id), "state")) in (*ENDED, None):
                pipe = self.client.pipeline()
                pipe.zrem(JOBS_KEY, job_id)
                pipe.delete(job_key(job_id), events_key(job_id))
                pipe.execute()

    def check_room(self, kind: str) -> None:
        with redis_errors():
            waiting = self.client.llen(rq_queue_key(kind))
        self._check_waiting(kind, waiting)

    def _check_waiting(self, kind: str, waiting: int) -> None:
        if waiting >= MAX_WAITING_JOBS:
            raise QueueFull(
                f"{waiting} {kind} jobs are waiting already: try again once some have run",
                retry_after=30,
            )

    def get(self, job_id: str) -> dict:
        with redis_errors():
            return self._snapshot(self._id(job_id))

    def list(self) -> list[dict]:
        with redis_errors():
            ids = [_text(raw) for raw in self.client.zrevrange(JOBS_KEY, 0, -1)]
            pipe = self.client.pipeline()
            for job_id in ids:
                pipe.hgetall(job_key(job_id))
            records = pipe.execute()
            pairs = zip(ids, records, strict=True)
            return [self._checked(job_id, data) for job_id, data in pairs if data]

    def position(self, job_id: str) -> int | None:
        return self.get(job_id)["position"]

    async def events(self, job_id: str, *, heartbeat: float | None = None) -> AsyncIterator[dict]:
        client = connect(self.url, asynchronous=True)
        try:
            async for snapshot in self._follow(client, self._id(job_id), heartbeat):
                yield snapshot
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing lost
                await client.aclose()

    async def _follow(self, client: Any, job_id: str, heartbeat: float | None):
        import redis.exceptions as rex

        last_id, last, quiet = "0", None, 0.0
        while True:
            try:
                snapshot = await asyncio.to_thread(self.get, job_id)
                if snapshot != last or (heartbeat is not None and quiet >= heartbeat):
                    last, quiet = snapshot, 0.0
                    yield snapshot
                if snapshot["state"] in ENDED:
                    return
                wait = EVENT_POLL_S if heartbeat is None else min(EVENT_POLL_S, heartbeat)
                started = time.monotonic()
                read = await client.xread({events_key(job_id): last_id}, block=int(wait * 1000))
                for _, entries in read or []:
                    last_id = entries[-1][0]
                quiet += time.monotonic() - started
            except rex.RedisError:
                # Redis away mid-stream: the stream ends; the client reconnects later.
                return

    def cancel(self, job_id: str) -> dict:
        job_id = self._id(job_id)
        with redis_errors():
            snapshot = self._snapshot(job_id)
            if snapshot["state"] == "queued":
                self.queues[snapshot["kind"]].remove(job_id)
                if self.store.finish(job_id, "queued", "cancelled"):
                    self._remove_upload(job_id)
            if self._snapshot(job_id)["state"] == "running":
                self.client.set(cancel_key(job_id), "1", ex=7 * 86400)
                progress = snapshot["progress"] or progress_after(None, {})
                pipe = self.client.pipeline()
                pipe.hset(
                    job_key(job_id),
                    "progress",
                    json.dumps({**progress, "message": "cancelling"}),
                )
                self.store.changed(pipe, job_id)
                pipe.execute()
            return self._snapshot(job_id)

    def _remove_upload(self, job_id: str) -> None:
        import shutil

        raw = self.client.hget(job_key(job_id), "work")
        with contextlib.suppress(ValueError, TypeError, KeyError):
            work = work_from_json(raw or b"")
            if work.upload is not None:
                shutil.rmtree(work.upload, ignore_errors=True)

    def uploads_in_use(self) -> set[str]:
        """The names of the upload folders that queued or running jobs will read (a
        worker, on this machine or another, may still take them)."""
        with redis_errors():
            ids = [_text(raw) for raw in self.client.zrange(JOBS_KEY, 0, -1)]
            pipe = self.client.pipeline()
            for job_id in ids:
                pipe.hmget(job_key(job_id), "state", "work")
            records = pipe.execute()
        names = set()
        for state, raw in records:
            if raw is None or _text(state) in ENDED:
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):  # a job nobody can run
                work = work_from_json(raw)
                if work.upload is not None:
                    names.add(work.upload.name)
        return names

    def close(self, timeout: float = 30.0) -> None:
        # The jobs live on in Redis and in the workers: a restarted server finds them.
        with contextlib.suppress(Exception):  # a Redis gone already: nothing to close
            self.client.close()

    # -- reading ----------------------------------------------------------------------

    def _id(self, job_id: str) -> str:
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            raise UnknownJob(f"unknown job {one_line(str(job_id), 100)!r}")
        return job_id

    def _snapshot(self, job_id: str) -> dict:
        data = self.client.hgetall(job_key(job_id))
        if not data:
            raise UnknownJob(f"unknown job {job_id!r}")
        return self._checked(job_id, data)

    def _checked(self, job_id: str, data: dict) -> dict:
        """The snapshot, after a running job whose worker stopped (its heartbeat expired:
        kill -9, a machine gone) is failed, and its run released."""
        state = _text(data.get(b"state"))
        if state == "running" and not self.client.exists(alive_key(job_id)):
            if self.store.finish(job_id, "running", "failed", "the worker stopped"):
                self._remove_upload(job_id)  # its worker, which would have, is gone
            data = self.client.hgetall(job_key(job_id))
        position = None
        if _text(data.get(b"state")) == "queued":
            found = self.client.lpos(rq_queue_key(_kind_of(data)), job_id)
            position = None if found is None else found + 1
        return snapshot_of(job_id, data, position)
