"""The models behind ``huggingtweets serve``: loaded once, batched, bounded.

:class:`ModelService` keeps up to ``max_models`` generators loaded (least recently used
evicted) and runs every forward pass on ONE worker thread of its own, so no two sampling
loops share torch at once and the event loop never blocks.

Loads run on a loader thread of their own, one at a time (transformers' from_pretrained
swaps globals while it builds a model: two at once in one process are not safe): a slow
load (a big model, a slow disk) never holds up the models that are loaded. A request for a
model that is not loaded (or whose files changed since: a run trained again) waits in the
queue while the loader loads it, and is answered once it is loaded, or with the load's
error (ModelBroken, naming the model) if it cannot be; a client that leaves meanwhile frees
its place in the queue. At most ``max_models`` models stay loaded and one more is being
loaded (a sampling loop still drawing from a model evicted meanwhile keeps it until the
loop ends).

Dynamic batching: requests wait in one queue; when the worker takes the first, it also
takes every waiting request for the same model with the same temperature and top-p, up to
``max_batch`` rows in all, and draws all their rows in one continuous sampling loop
(serve.batching), which waiting requests join as rows leave it. An idle service waits
``batch_window_s`` before it starts a loop, to catch a burst's first few. A request of
more rows than ``max_batch`` runs alone (its rows are never split), so ``max_batch=1``
serves requests one at a time.

Seeds: every request has one (its own, or a fresh one it is answered with). A request
that gives a seed runs alone, so the same request gets the same samples every time,
exactly; sending back the seed of a batched answer draws its samples again, up to the
rounding of batched arithmetic (a padded or larger matrix product may round the last bit
differently, which can flip a near-tie between two candidates: rare, not never). The
API's draws are not the CLI's: ``generate --seed S`` draws from torch's global stream in
another order (a model our loop does not sample goes through ``Generator.generate``,
which draws as the CLI does).

Memory stays bounded on a burst: at most ``max_queue`` requests wait, each within
:class:`~huggingtweets.serve.requests.GenerateRequest`'s limits; beyond that
:class:`QueueFull` (the API answers 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.generate.generator import Generator, hub_file, resolve_model_dir
from huggingtweets.generate.sampling import fast_sampling_supported
from huggingtweets.serve.batching import (
    ContinuousBatch,
    ModelBroken,
    PendingRequest,
    answer,
    as_error,
    load_error,
    settle,
    with_links,
)
from huggingtweets.serve.errors import QueueFull, UnknownModel
from huggingtweets.serve.requests import DEFAULT_REQUEST_SAMPLES, GenerateRequest

__all__ = [
    "GenerateRequest",
    "ModelBroken",
    "ModelService",
    "QueueFull",
    "ShuttingDown",
    "UnknownModel",
    "model_version",
]

# An idle worker waits this long for a burst's next requests before it starts a batch
# (a tiny model's batch of 20 takes ~100 ms on a CPU: 5 ms costs little, catches many).
BATCH_WINDOW_S = 0.005
PREVIEW_FILE = "preview.png"  # card.PREVIEW_FILE (card imports matplotlib: not here)
SHUTDOWN_RETRY_S = 10  # a server stopping: when a client may try again (a restart)


class ShuttingDown(QueueFull):
    """The server is stopping (Ctrl-C): requests waiting or running are answered 503 at
    once, with Retry-After, rather than held until the server is gone."""

    kind = "shutting_down"

    def __init__(self) -> None:
        super().__init__(
            "the server is shutting down: try again when it is back",
            retry_after=SHUTDOWN_RETRY_S,
        )


def model_version(location: str) -> tuple:
    """A local model folder's files as (name, size, mtime): a training swaps in a new
    folder (runs.replace_dir), so a model retrained since it was cached shows here. A Hub
    id: () (a revision is fixed once downloaded)."""
    folder = Path(location)
    if not folder.is_dir():
        return ()
    version = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json"):
            with contextlib.suppress(OSError):  # removed while listed: the next call sees it
                stat = path.stat()
                version.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(version)


class ModelService:
    def __init__(
        self,
        resolve: Callable[[str], str],
        *,
        max_models: int = 2,
        max_batch: int = 20,
        max_queue: int = 64,
        batch_window_s: float = BATCH_WINDOW_S,
    ) -> None:
        if max_models < 1 or max_batch < 1 or max_queue < 1:
            raise HuggingtweetsError("max_models, max_batch and max_queue must be 1 or more")
        self._resolve = resolve
        self.max_models = max_models
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.batch_window_s = batch_window_s
        self._models: collections.OrderedDict[str, Generator] = collections.OrderedDict()
        self._versions: dict[str, tuple] = {}  # each cached model's files as loaded
        self._pending: collections.deque[PendingRequest] = collections.deque()
        self._loads: collections.deque[str] = collections.deque()  # locations to load, in turn
        self._loading: set[str] = set()  # waiting to be loaded or being loaded
        self._cond = threading.Condition()  # one lock for all of it; wait/notify_all
        self._closed = False
        self._stopping = False  # stop(): every request answered ShuttingDown
        self._serving: list[PendingRequest] = []  # the batch the worker is drawing
        self._batch_seconds = 0.5  # a running mean, for Retry-After
        # count_tokens' tokenizers: its own (a fast tokenizer is not shared across threads)
        self._tokenizers: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self._tokenizers_lock = threading.Lock()
        # What the worker did: batches (forward passes of a sampling loop), requests, rows.
        self.counters = {"batches": 0, "requests": 0, "rows": 0, "largest_batch": 0, "loads": 0}
        self._worker = threading.Thread(target=self._work, name="huggingtweets-models", daemon=True)
        self._worker.start()
        self._loader = threading.Thread(
            target=self._load_loop, name="huggingtweets-loads", daemon=True
        )
        self._loader.start()

    # -- the API --------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> dict:
        """``Generation.to_dict()`` of the request's samples, each with its share links."""
        job = self.submit(request)
        return await asyncio.wrap_future(job)

    def generate_sync(self, request: GenerateRequest, timeout: float | None = None) -> dict:
        """The same, for callers without an event loop (a thread, a script)."""
        return self.submit(request).result(timeout)

    def submit(self, request: GenerateRequest) -> concurrent.futures.Future:
        """Queue the request; its future gets the answer. Raises UnknownModel (via
        ``resolve``) or QueueFull at once, before anything waits."""
        location = str(self._resolve(request.model))
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        job = PendingRequest(request, location, seed)
        with self._cond:
            if self._closed or self._stopping:
                raise ShuttingDown()
            self._drop_cancelled()
            if len(self._pending) >= self.max_queue:
                raise QueueFull(
                    f"{len(self._pending)} generate requests are waiting already: try again "
                    "in a moment",
                    retry_after=self._retry_after(),
                )
            self._pending.append(job)
            self._cond.notify_all()
        return job.future

    def count_tokens(self, name: str, texts: list[str]) -> list[int]:
        """How many tokens each text is for model ``name`` (no special tokens), as the
        OpenAI-style route counts a prompt and a completion. Raises UnknownModel at once.
        The tokenizer is one of this method's own (the worker's is never shared across
        threads), loaded once per model version; call it off the event loop."""
        from huggingtweets.model.loading import load_tokenizer, resolve_model

        location = str(self._resolve(name))
        version = model_version(location)
        with self._tokenizers_lock:
            cached = self._tokenizers.get(location)
            if cached is None or cached[0] != version:
                try:
                    tokenizer = load_tokenizer(resolve_model(resolve_model_dir(location)))
                except Exception as exc:  # the server's model is at fault
                    raise load_error(exc, name, location) from None
                cached = self._tokenizers[location] = (version, tokenizer)
            self._tokenizers.move_to_end(location)
            while len(self._tokenizers) > self.max_models:
                self._tokenizers.popitem(last=False)
            tokenizer = cached[1]
            return [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]

    def preview_path(self, name: str) -> Path | None:
        """The model's preview picture (``preview.png``, as the card draws it), or None."""
        try:
            location = resolve_model_dir(str(self._resolve(name)))
        except HuggingtweetsError:
            return None
        folder = Path(location)
        if folder.is_dir():
            picture = folder / PREVIEW_FILE
            return picture if picture.is_file() else None
        from huggingface_hub import constants

        return hub_file(str(location), PREVIEW_FILE, bool(constants.HF_HUB_OFFLINE))

    def queued(self) -> int:
        with self._cond:
            return len(self._pending)

    def loaded(self) -> list[str]:
        """The locations of the models loaded, least recently used first."""
        with self._cond:
            return list(self._models)

    def stop(self) -> None:
        """The server is stopping: every request waiting or being drawn is answered
        ShuttingDown now (503), new ones too; the worker's loop ends at its next step."""
        with self._cond:
            self._stopping = True
            waiting = list(self._pending)
            self._pending.clear()
            serving = list(self._serving)
            self._cond.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                settle(job, error=ShuttingDown())
        for job in serving:
            settle(job, error=ShuttingDown())

    def close(self) -> None:
        """Stop the worker and the loader; requests still waiting get ShuttingDown. A load
        cannot be interrupted: close waits for one in progress (30 s at most, with the
        worker's last step), and drops what it loads."""
        self.stop()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + 30
        for thread in (self._worker, self._loader):
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- the worker thread --------------------------------------------------------------

    def _retry_after(self) -> int:
        batches = max(1, len(self._pending)) / max(1, self.max_batch // DEFAULT_REQUEST_SAMPLES)
        return max(1, math.ceil(batches * self._batch_seconds))

    def _work(self) -> None:
        while True:
            with self._cond:
                taken = self._next_batch()
            if taken is None:
                return
            started = time.monotonic()
            self._serve(*taken)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.monotonic() - started)

    def _next_batch(self) -> tuple[list[PendingRequest], Generator] | None:
        """(Under the lock.) The next batch of a loaded model and that model, once there
        is one; the loads the waiting requests need are started meanwhile. None: closed."""
        while not self._closed:
            first = self._first_ready()
            if first is None:
                self._cond.wait()
                continue
            if self.max_batch > 1 and self.batch_window_s > 0:
                deadline = time.monotonic() + self.batch_window_s
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    if self._rows_ready(first) >= self.max_batch:
                        break
                    self._cond.wait(left)
            generator = self._models.get(first.location)
            if self._closed or generator is None or first not in self._pending:
                continue  # stopped, evicted by a load meanwhile, or given up: look again
            self._models.move_to_end(first.location)
            return self._take(first), generator
        return None

    def _first_ready(self) -> PendingRequest | None:
        """(Under the lock.) The oldest waiting request whose model is loaded, as its files
        are now; the load of each other waiting request's model is started (a model
        trained again since it was loaded is loaded again)."""
        self._drop_cancelled()
        fresh: dict[str, bool] = {}
        for job in self._pending:
            location = job.location
            if location in self._loading:
                continue
            if location not in fresh:
                cached = location in self._models
                fresh[location] = cached and self._versions[location] == model_version(location)
                if not fresh[location]:
                    self._start_load(location)
            if fresh[location]:
                return job
        return None

    def _drop_cancelled(self) -> None:
        """(Under the lock.) Requests whose callers gave up (a closed connection) leave the
        queue: waiting for a model's load, they would hold its places."""
        if any(job.future.cancelled() for job in self._pending):
            self._pending = collections.deque(j for j in self._pending if not j.future.cancelled())

    def _rows_ready(self, first: PendingRequest) -> int:
        if first.key is None:
            return first.request.n
        return sum(j.request.n for j in self._pending if j.key == first.key)

    def _take(self, first: PendingRequest) -> list[PendingRequest]:
        """``first`` and, when it can be batched, the jobs after it that share its model
        and settings, up to max_batch rows (never a job split)."""
        self._pending.remove(first)
        batch, rows = [first], first.request.n
        if first.key is not None and self.max_batch > 1:
            for job in list(self._pending):
                if job.key == first.key and rows + job.request.n <= self.max_batch:
                    self._pending.remove(job)
                    batch.append(job)
                    rows += job.request.n
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _serve(self, batch: list[PendingRequest], generator: Generator) -> None:
        if not batch:
            return
        with self._cond:
            self._serving = batch  # the loop extends it with the requests that join
        try:
            self._draw(batch, generator)
        finally:
            with self._cond:
                self._serving = []

    def _draw(self, batch: list[PendingRequest], generator: Generator) -> None:
        try:
            if not fast_sampling_supported(generator.model):
                for job in batch:  # generate() samples it: one request at a time
                    if not job.future.done():  # (answered already: the server stopping)
                        answer(job, self._alone, generator, job)
            else:
                ContinuousBatch(
                    generator,
                    batch[0].request,
                    max_batch=self.max_batch,
                    take_joining=self._take_joining,
                    record=self._record,
                    stopped=lambda: self._stopping,
                ).run(batch)
        except Exception as exc:  # each caller gets its error, the worker lives
            for job in batch:
                settle(job, error=as_error(exc, job))

    # -- the loader thread --------------------------------------------------------------

    def _start_load(self, location: str) -> None:
        """(Under the lock.) Queue the model's load; a stale copy is dropped first."""
        self._models.pop(location, None)
        self._versions.pop(location, None)
        self._loading.add(location)
        self._loads.append(location)
        self._cond.notify_all()

    def _load_loop(self) -> None:
        while True:
            with self._cond:
                while not self._loads and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                location = self._loads.popleft()
            try:
                version = model_version(location)
                generator = Generator.load(location)
            except Exception as exc:  # the server's model is at fault: its requests told
                with self._cond:
                    failed = [job for job in self._pending if job.location == location]
                    for job in failed:
                        self._pending.remove(job)
                for job in failed:
                    if job.future.set_running_or_notify_cancel():
                        settle(job, error=load_error(exc, job.request.model, location))
            else:
                self._loaded(location, version, generator)
            finally:
                with self._cond:
                    self._loading.discard(location)
                    self._cond.notify_all()

    def _loaded(self, location: str, version: tuple, generator: Generator) -> None:
        with self._cond:
            if self._closed:
                return
            self._models[location] = generator
            self._versions[location] = version
            self.counters["loads"] += 1
            while len(self._models) > self.max_models:
                evicted, _ = self._models.popitem(last=False)  # least recently used
                self._versions.pop(evicted, None)

    def _alone(self, generator: Generator, job: PendingRequest) -> dict:
        request = job.request
        options = request.options()
        options.seed = job.seed
        generation = generator.generate(request.prompt, options)
        self._record(requests=1, rows=request.n, batches=1)
        return with_links(job, generation)

    def _record(
        self, *, requests: int = 0, rows: int = 0, batches: int = 0, batch_size: int = 0
    ) -> None:
        with self._cond:
            self.counters["requests"] += requests
            self.counters["rows"] += rows
            self.counters["batches"] += batches
            self.counters["largest_batch"] = max(self.counters["largest_batch"], batch_size)

    def _take_joining(self, key: tuple | None, free: int) -> list[PendingRequest]:
        """Waiting jobs of ``key`` that fit in ``free`` rows. None while the oldest waiting
        job (of a model not being loaded) is of another model or settings: the loop then
        drains and that job goes next (a stream of joiners never starves it)."""
        joining, rows = [], 0
        with self._cond:
            oldest = next((j for j in self._pending if j.location not in self._loading), None)
            if self._stopping or (oldest is not None and oldest.key != key):
                return joining
            for job in list(self._pending):
                if job.key == key and rows + job.request.n <= free:
                    self._pending.remove(job)
                    if job.future.set_running_or_notify_cancel():
                        joining.append(job)
                        rows += job.request.n
        return joining
