"""The models behind ``huggingtweets serve``: loaded once, batched, bounded.

:class:`ModelService` keeps up to ``max_models`` generators loaded (least recently used
evicted) and runs every load and every forward pass on ONE worker thread of its own, so
torch is never called concurrently and the event loop never blocks.

Dynamic batching: requests wait in one queue; when the worker takes the first, it also
takes every waiting request for the same model with the same temperature and top-p
(the settings a forward pass shares), up to ``max_batch`` rows in all, and draws all
their rows in ONE sampling loop (:class:`_Loop`): prompts that differ are left-padded
under an attention mask, each row keeps its own prompt length, max_length and
min_length, and each request gets back exactly its own rows. The loop is continuous:
a row leaves it when its sample ends (at its first line), and between two steps waiting
requests of the same model and settings join in the rows set free (their prompts read
in one pass, their cache padded to the loop's or the loop's to theirs); a request is
answered as soon as its own rows are done, so nobody waits for another's longest
sample. An idle service waits ``batch_window_s`` before it starts a loop, to catch a
burst's first few. A request of more rows than ``max_batch`` runs alone (its rows are
never split), so ``max_batch=1`` serves requests one at a time.

Seeds: every request has one (its own, or a fresh one it is answered with), and its
rows draw their random numbers from a generator of their own seeded with it, never from
a stream shared with the batch: what else shares the pass changes no request's draws.
A request that gives a seed runs alone, so the same request gets the same samples every
time, exactly; sending back the seed of a batched answer draws its samples again, up to
the rounding of batched arithmetic (a padded or larger matrix product may round the
last bit differently, which can flip a near-tie between two candidates: rare, not
never). The API's draws are not the CLI's: ``generate --seed S`` draws from torch's
global stream in another order (a model our loop does not sample goes through
``Generator.generate``, which draws as the CLI does).

Memory stays bounded on a burst: at most ``max_queue`` requests wait (each at most 20
rows of at most 512 tokens, a prompt of at most 1,000 characters); beyond that
:class:`QueueFull` (the API answers 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import MAX_SEED, OptionError, check_options, option
from huggingtweets.generate.generator import (
    DEFAULT_PROMPT,
    DEFAULT_RETRIES,
    DEFAULT_TOP_K,
    MODELING_LOGGER,
    TOKENIZER_LOGGER,
    GenerateOptions,
    Generation,
    Generator,
    Sample,
    _hub_file,
    _token_ids,
    check_prompt,
    fast_sampling_supported,
    resolve_model_dir,
    top_candidates,
)
from huggingtweets.model.loading import context_length, first_line, hidden_library_notice

# The API's limits (issue 9): smaller than the CLI's, since anyone may send them.
MAX_REQUEST_SAMPLES = 20
MAX_REQUEST_LENGTH = 512
MAX_REQUEST_PROMPT = 1000
DEFAULT_REQUEST_SAMPLES = 10
# An idle worker waits this long for a burst's next requests before it starts a batch
# (a tiny model's batch of 20 takes ~100 ms on a CPU: 5 ms costs little, catches many).
BATCH_WINDOW_S = 0.005
PREVIEW_FILE = "preview.png"  # card.PREVIEW_FILE (card imports matplotlib: not here)


class UnknownModel(HuggingtweetsError):
    """A model name the server does not serve (the API answers 404)."""


class QueueFull(HuggingtweetsError):
    """Too many requests waiting (the API answers 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # whole seconds, for the Retry-After header


@dataclass
class GenerateRequest:
    """One ``POST /api/v1/generate``: checked as the CLI checks ``generate``'s options,
    within the API's tighter limits. A bad field raises :class:`OptionError` naming it."""

    model: str = option(help="A model the server serves (a run id or a model's name).")
    prompt: str = option(DEFAULT_PROMPT, help="The start of the posts.")
    n: int = option(DEFAULT_REQUEST_SAMPLES, min=1, max=MAX_REQUEST_SAMPLES, help="How many posts.")
    max_length: int | None = option(
        None, min=1, max=MAX_REQUEST_LENGTH, help="Max tokens, prompt included."
    )
    temperature: float | None = option(None, help="Sampling temperature.")
    top_p: float | None = option(None, help="Nucleus sampling mass.")
    seed: int | None = option(None, min=0, max=MAX_SEED, help="Seed for reproducible posts.")
    no_copies: bool = option(False, help="Draw again posts flagged as training posts.")

    def __post_init__(self) -> None:
        check_options(self)
        if not self.model.strip():
            raise OptionError("model", "must name a model (got an empty name)")
        if len(self.prompt) > MAX_REQUEST_PROMPT:
            raise OptionError(
                "prompt",
                f"must be at most {MAX_REQUEST_PROMPT:,} characters (got {len(self.prompt):,})",
            )
        try:
            check_prompt(self.prompt)
        except HuggingtweetsError as exc:
            raise OptionError("prompt", str(exc).removeprefix("the prompt ")) from None
        self.options()  # temperature and top-p within GenerateOptions' ranges

    def options(self) -> GenerateOptions:
        return GenerateOptions(
            num_return_sequences=self.n,
            max_length=self.max_length,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            no_copies=self.no_copies,
        )

    @property
    def batch_key(self) -> tuple | None:
        """What a forward pass shares (None: served alone, a request with a seed, so that
        it gets the same samples every time, exactly)."""
        return None if self.seed is not None else (self.temperature, self.top_p)


@dataclass
class _Job:
    request: GenerateRequest
    location: str  # what resolve() gave: a model folder, a run directory or a Hub id
    seed: int  # the request's, or a fresh one: its rows draw from a generator of it
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)

    @property
    def key(self) -> tuple | None:
        key = self.request.batch_key
        return None if key is None else (self.location, *key)


@dataclass
class _Rows:
    """One request's share of a batch: its prompt's token ids and its rows."""

    ids: list[int]
    count: int
    max_length: int
    min_length: int
    rng: object  # the request's torch.Generator: its rows' random numbers


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
        self._pending: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._batch_seconds = 0.5  # a running mean, for Retry-After
        # What the worker did: batches (forward passes of a sampling loop), requests, rows.
        self.counters = {"batches": 0, "requests": 0, "rows": 0, "largest_batch": 0, "loads": 0}
        self._worker = threading.Thread(target=self._work, name="huggingtweets-models", daemon=True)
        self._worker.start()

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
        job = _Job(request, location, seed)
        with self._cond:
            if self._closed:
                raise HuggingtweetsError("the model service is closed")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(
                    f"{len(self._pending)} generate requests are waiting already: try again "
                    "in a moment",
                    retry_after=self._retry_after(),
                )
            self._pending.append(job)
            self._cond.notify()
        return job.future

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

        return _hub_file(str(location), PREVIEW_FILE, bool(constants.HF_HUB_OFFLINE))

    def queued(self) -> int:
        with self._cond:
            return len(self._pending)

    def loaded(self) -> list[str]:
        """The locations of the models loaded, least recently used first."""
        with self._cond:
            return list(self._models)

    def close(self) -> None:
        """Stop the worker; requests still waiting get an error."""
        with self._cond:
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(HuggingtweetsError("the server is shutting down"))
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=30)

    # -- the worker thread --------------------------------------------------------------

    def _retry_after(self) -> int:
        batches = max(1, len(self._pending)) / max(1, self.max_batch // DEFAULT_REQUEST_SAMPLES)
        return max(1, math.ceil(batches * self._batch_seconds))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                if self.max_batch > 1 and self.batch_window_s > 0:
                    deadline = time.monotonic() + self.batch_window_s
                    while not self._closed and (left := deadline - time.monotonic()) > 0:
                        if self._rows_ready() >= self.max_batch:
                            break
                        self._cond.wait(left)
                batch = self._take()
            started = time.monotonic()
            self._serve(batch)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.monotonic() - started)

    def _rows_ready(self) -> int:
        first = self._pending[0]
        return sum(j.request.n for j in self._pending if j.key == first.key)

    def _take(self) -> list[_Job]:
        """The first waiting job and, when it can be batched, the jobs after it that
        share its model and settings, up to max_batch rows (never a job split)."""
        first = self._pending.popleft()
        batch, rows = [first], first.request.n
        if first.key is not None and self.max_batch > 1:
            for job in list(self._pending):
                if job.key == first.key and rows + job.request.n <= self.max_batch:
                    self._pending.remove(job)
                    batch.append(job)
                    rows += job.request.n
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _serve(self, batch: list[_Job]) -> None:
        if not batch:
            return
        try:
            generator = self._generator(batch[0].location)
            if not fast_sampling_supported(generator.model):
                for job in batch:  # generate() samples it: one request at a time
                    self._answer(job, self._alone, generator, job)
            else:
                self._batched(generator, batch)
        except Exception as exc:  # each caller gets its error, the worker lives
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(_as_error(exc, job))

    def _answer(self, job: _Job, produce: Callable, *args) -> None:
        try:
            job.future.set_result(produce(*args))
        except Exception as exc:  # the caller gets it
            job.future.set_exception(_as_error(exc, job))

    def _generator(self, location: str) -> Generator:
        version = model_version(location)
        with self._cond:
            cached = self._models.get(location)
            if cached is not None and self._versions.get(location) == version:
                self._models.move_to_end(location)
                return cached
            if cached is not None:  # trained again since (the web app's step 2): reload
                del self._models[location]
        generator = Generator.load(location)
        with self._cond:
            self._models[location] = generator
            self._versions[location] = version
            self.counters["loads"] += 1
            while len(self._models) > self.max_models:
                evicted, _ = self._models.popitem(last=False)  # least recently used
                self._versions.pop(evicted, None)
        return generator

    def _alone(self, generator: Generator, job: _Job) -> dict:
        request = job.request
        options = request.options()
        options.seed = job.seed
        generation = generator.generate(request.prompt, options)
        with self._cond:
            self.counters["batches"] += 1
        self._count([job], request.n)
        return _with_links(job, generation)

    def _batched(self, generator: Generator, batch: list[_Job]) -> None:
        """One sampling loop for ``batch``, which requests join while it runs: whenever
        rows leave it (their sample ended), waiting requests for the same model and
        settings take their places, up to max_batch rows; each request is answered as
        soon as its own rows are done. ``batch`` grows with the jobs that joined (so
        that an error reaches them all)."""
        import torch

        first = batch[0].request
        settings = {
            **generator.settings(GenerateOptions(temperature=first.temperature, top_p=first.top_p)),
            "allow_newlines": False,
        }
        model = generator._sampling_model("auto")
        loop = _Loop(model, settings, generator._line_break_ids())
        key = batch[0].key

        def admit(jobs: list[_Job]) -> None:
            groups = []
            for job in jobs:
                request = job.request
                try:
                    own = {**settings, **generator.settings(request.options())}
                    own["allow_newlines"] = False
                    prompt = _Prompt.encode(generator, request.prompt, own)
                except Exception as exc:  # this request only (a prompt too long)
                    job.future.set_exception(_as_error(exc, job))
                    continue
                rng = torch.Generator(device=model.device).manual_seed(job.seed)
                task = _Task(job, own, prompt, rng, [None] * request.n)
                if prompt.fixed is not None:  # a line break in the prompt: no sampling
                    for slot in range(request.n):
                        task.samples[slot] = Sample(prompt.fixed, generator._check(prompt.fixed))
                    self._finish(generator, task)
                else:
                    groups.append((task, list(range(request.n))))
            if groups:
                started = not loop.rows  # a sampling loop starts (else: rows join one)
                loop.admit(groups)
                self._count([g[0].job for g in groups], sum(len(g[1]) for g in groups))
                with self._cond:
                    self.counters["batches"] += started
                    owners = len({id(row.owner) for row in loop.rows})
                    self.counters["largest_batch"] = max(self.counters["largest_batch"], owners)

        padding_notice = "We strongly recommend passing in an `attention_mask`"
        with generator._threads(), hidden_library_notice(MODELING_LOGGER, padding_notice):
            admit(batch)
            while loop.rows:
                try:
                    finished = loop.step()
                except (ValueError, ArithmeticError) as exc:
                    raise HuggingtweetsError(
                        f"cannot sample from {generator.name}: {first_line(exc)}"
                    ) from None
                for row in finished:
                    task = row.owner
                    text = task.prompt.text_of(generator, row.ids + row.tokens)
                    task.samples[row.slot] = Sample(text, generator._check(text), row.attempt)
                    task.left -= 1
                    if task.left == 0:
                        again = self._finish(generator, task)
                        if again:
                            loop.admit([(task, again)], attempt=task.rounds + 1)
                            self._count([], len(again))
                free = self.max_batch - len(loop.rows)
                # Only unseeded requests join (key None: a seeded one runs alone).
                if loop.rows and free > 0 and loop.can_join and key is not None:
                    with self._cond:
                        joining = self._take_joining(key, free)
                    batch.extend(joining)
                    admit(joining)

    def _take_joining(self, key: tuple | None, free: int) -> list[_Job]:
        """Waiting jobs of ``key`` that fit in ``free`` rows (the lock held). None while
        the oldest waiting job is of another model or settings: the loop then drains and
        that job goes next (a stream of joiners never starves it)."""
        joining, rows = [], 0
        if self._pending and self._pending[0].key != key:
            return joining
        for job in list(self._pending):
            if job.key == key and rows + job.request.n <= free:
                self._pending.remove(job)
                if job.future.set_running_or_notify_cancel():
                    joining.append(job)
                    rows += job.request.n
        return joining

    def _finish(self, generator: Generator, task: _Task) -> list[int]:
        """A request whose rows are all drawn: answered, or (``no_copies``) the slots of
        its flagged samples, to draw again (up to ``Generator.generate``'s retries)."""
        request = task.job.request
        flagged = [i for i, s in enumerate(task.samples) if s is not None and s.flagged]
        if request.no_copies and flagged and task.rounds < DEFAULT_RETRIES and not task.fixed:
            task.rounds += 1
            task.left = len(flagged)
            return flagged
        generation = Generation(
            model=request.model,
            prompt=request.prompt,
            seed=task.job.seed,
            settings=task.settings,
            checked=generator.guard is not None,
            samples=task.samples,
        )
        self._answer(task.job, _with_links, task.job, generation)
        return []

    def _count(self, jobs: list[_Job], rows: int) -> None:
        with self._cond:
            self.counters["requests"] += len(jobs)
            self.counters["rows"] += rows


@dataclass
class _Prompt:
    """A prompt as the model reads it (the prefix's and the prompt's tokens), its lengths
    as ``Generator._draw`` counts them, and how a row is decoded back."""

    prompt: str
    ids: list[int]
    decoded: str
    max_length: int
    min_length: int
    fixed: str | None = None  # a prompt with a line break: every sample is its first line

    @classmethod
    def encode(cls, generator: Generator, prompt: str, settings: dict) -> _Prompt:
        tokenizer = generator.tokenizer
        prefix = settings["prefix"] or ""
        long_notice = "Token indices sequence length is longer than the specified maximum"
        with hidden_library_notice(TOKENIZER_LOGGER, long_notice):
            prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            ids = tokenizer(prefix + prompt, add_special_tokens=False)["input_ids"]
        prefix_len = len(prefix_ids) if prefix else 0
        max_length = settings["max_length"] + prefix_len
        context = context_length(generator.model.config)
        if context:
            max_length = min(max_length, context)
        if len(ids) >= max_length:
            raise OptionError(
                "prompt",
                f"is {len(ids) - prefix_len} tokens long, the model writes at most "
                f"{max_length - prefix_len} (max_length, and the model's context of "
                f"{context or 'unknown'} tokens): use a shorter prompt",
            )
        min_length = min(settings["min_length"] + prefix_len, max_length)
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        fixed = prompt.split("\n", 1)[0].rstrip() if "\n" in prompt else None
        return cls(prompt, ids, decoded, max_length, min_length, fixed)

    def text_of(self, generator: Generator, row) -> str:
        """A row decoded as ``Generator._draw`` decodes it: the prompt as given, then
        the continuation, cut at its first line."""
        tokenizer = generator.tokenizer
        whole = tokenizer.decode(row, skip_special_tokens=True)
        if whole.startswith(self.decoded):
            text = self.prompt + whole[len(self.decoded) :]
        else:
            text = self.prompt + tokenizer.decode(row[len(self.ids) :], skip_special_tokens=True)
        return text.split("\n", 1)[0].rstrip()


@dataclass
class _Task:
    """A request being drawn: its samples as they come."""

    job: _Job
    settings: dict
    prompt: _Prompt
    rng: object  # its torch.Generator
    samples: list
    rounds: int = 0  # no_copies: rounds of drawing flagged samples again
    left: int = -1  # rows still being drawn

    def __post_init__(self) -> None:
        self.left = len(self.samples)

    @property
    def fixed(self) -> bool:
        return self.prompt.fixed is not None


@dataclass
class _Row:
    owner: object  # its _Task (or whatever the caller gave)
    slot: int  # which of the owner's samples it is
    group: int  # its admission's number: rows of one admission share a generator
    ids: list[int]  # the prompt's tokens (the prefix's included)
    attempt: int = 1
    tokens: list[int] = field(default_factory=list)


class _Loop:
    """``generate._sample_fast`` for rows of several prompts that join and leave: each
    row continues its prompt and stops at a line break, end-of-text or its own
    max_length, and leaves at once; new rows join between steps. Prompts are read once
    each, left-padded under an attention mask (positions counted from each prompt's
    first real token); rows that join later are padded on the left to the cache's
    length (or the cache to theirs). Same temperature and top-p for all; each
    admission's rows draw their random numbers from its own generator, so a request
    draws what it would draw alone."""

    def __init__(self, model, settings: dict, stops) -> None:
        import torch
        from transformers.cache_utils import DynamicLayer

        config = model.generation_config
        self.model = model
        self.settings = settings
        self.eos = _token_ids(config.eos_token_id)
        self.top_k = DEFAULT_TOP_K if config.top_k is None else int(config.top_k)
        self.device = model.device
        forward = inspect.signature(type(model).forward).parameters
        self.cache_name = "cache" if "cache" in forward else "past_key_values"
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        self.stops = list(stops)
        self.rows: list[_Row] = []
        self.rngs: dict[int, object] = {}
        self.cache = self.mask = self.position = self.logits = self.ends = None
        self.prompt_len = self.min_length = self.limit = self.group = None
        self._groups = 0
        self._plain_layer = DynamicLayer
        self.can_join = True  # False for caches of other layer kinds (sliding windows)
        self._torch = torch

    def admit(self, groups: list[tuple[object, list[int], _Rows]] | list, attempt: int = 1):
        """``groups``: (owner, slots, rows) — or (task, slots) with the task's prompt."""
        torch = self._torch
        from transformers import DynamicCache

        specs = []
        for item in groups:
            if len(item) == 2:
                task, slots = item
                p = task.prompt
                item = (task, slots, _Rows(p.ids, len(slots), p.max_length, p.min_length, task.rng))
            specs.append(item)
        device = self.device
        longest = max(len(r.ids) for _, _, r in specs)
        pad = self.eos[0] if self.eos else 0
        prompts = torch.tensor(
            [[pad] * (longest - len(r.ids)) + r.ids for _, _, r in specs], device=device
        )
        mask = torch.tensor(
            [[0] * (longest - len(r.ids)) + [1] * len(r.ids) for _, _, r in specs], device=device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            out = self.model(
                input_ids=prompts,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{self.cache_name: cache},
                **self.extra,
            )
            logits = out.logits[:, -1].float()
            del out
        counts = torch.tensor([len(slots) for _, slots, _ in specs], device=device)
        which = torch.repeat_interleave(torch.arange(len(specs), device=device), counts)
        cache.batch_select_indices(which)
        rows, groups_of_rows = [], []
        for owner, slots, spec in specs:
            number = self._groups
            self._groups += 1
            self.rngs[number] = spec.rng
            for slot in slots:
                rows.append(_Row(owner, slot, number, list(spec.ids), attempt))
                groups_of_rows.append(number)
        new = {
            "mask": mask[which],
            "position": positions[which, -1],
            "logits": logits[which],
            "prompt_len": torch.tensor([len(s[2].ids) for s in specs], device=device)[which],
            "min_length": torch.tensor([s[2].min_length for s in specs], device=device)[which],
            "limit": torch.tensor([s[2].max_length - len(s[2].ids) for s in specs], device=device)[
                which
            ],
            "group": torch.tensor(groups_of_rows, device=device),
        }
        if self.ends is None:
            vocab = logits.shape[-1]
            self.ends = torch.zeros(vocab, dtype=torch.bool, device=device)
            self.ends[[i for i in [*self.stops, *self.eos] if i < vocab]] = True
            self.can_join = all(type(layer) is self._plain_layer for layer in cache.layers)
        if not self.rows:
            self.cache = cache
            for name, value in new.items():
                setattr(self, name, value)
        else:
            self._join(cache, new)
        self.rows.extend(rows)

    def _join(self, cache, new: dict) -> None:
        """The new rows' cache and state appended to the running ones, the shorter
        padded on the left (masked) to the longer's length."""
        torch = self._torch
        from torch.nn.functional import pad

        old_len, new_len = self.mask.shape[1], new["mask"].shape[1]
        length = max(old_len, new_len)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            for name in ("keys", "values"):
                a = pad(getattr(mine, name), (0, 0, length - old_len, 0))
                b = pad(getattr(theirs, name), (0, 0, length - new_len, 0))
                setattr(mine, name, torch.cat([a, b]))
        self.mask = torch.cat(
            [pad(self.mask, (length - old_len, 0)), pad(new["mask"], (length - new_len, 0))]
        )
        for name in ("position", "logits", "prompt_len", "min_length", "limit", "group"):
            setattr(self, name, torch.cat([getattr(self, name), new[name]]))
        self._trim()

    def _trim(self) -> None:
        """Cache columns that are padding for every row dropped: without it a loop that
        rows keep joining would attend over ever more padding (the cache as long as the
        loop is old, not as its longest row)."""
        first = int(self.mask.any(0).to(self._torch.int8).argmax())
        if first == 0:
            return
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]

    def _noise(self, columns: int):
        """Exponential noise for the rows' candidates, each admission's rows from its
        own generator (rows stay in admission order as others leave)."""
        torch = self._torch
        present, counts = torch.unique_consecutive(self.group, return_counts=True)
        return torch.cat(
            [
                torch.empty((c, columns), device=self.device).exponential_(generator=self.rngs[g])
                for g, c in zip(present.tolist(), counts.tolist(), strict=True)
            ]
        )

    def step(self) -> list[_Row]:
        """One token for every row; returns the rows that ended (they left)."""
        torch = self._torch
        scores = self.logits
        temperature = self.settings["temperature"]
        if temperature != 1.0:
            scores = scores / temperature
        done_tokens = torch.tensor([len(r.tokens) for r in self.rows], device=self.device)
        if self.eos:
            early = (self.prompt_len + done_tokens) < self.min_length
            if bool(early.any()):
                scores = scores.clone() if scores is self.logits else scores
                banned = early.nonzero().squeeze(1)
                scores[banned[:, None], torch.tensor(self.eos, device=self.device)] = -float("inf")
        token = _pick_own(scores, self.top_k, self.settings["top_p"], self._noise)
        for row, t in zip(self.rows, token.tolist(), strict=True):
            row.tokens.append(t)
        done = self.ends[token] | (done_tokens + 1 >= self.limit)
        finished = [row for row, d in zip(self.rows, done.tolist(), strict=True) if d]
        if finished:
            keep = (~done).nonzero().squeeze(1)
            self.rows = [row for row, d in zip(self.rows, done.tolist(), strict=True) if not d]
            if not self.rows:
                self.cache = self.mask = self.logits = None
                return finished
            self.cache.batch_select_indices(keep)
            token = token[keep]
            for name in ("mask", "position", "prompt_len", "min_length", "limit", "group"):
                setattr(self, name, getattr(self, name)[keep])
            if self.can_join:
                self._trim()
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.position = self.position + 1
        with torch.inference_mode():
            out = self.model(
                input_ids=token[:, None],
                attention_mask=self.mask,
                position_ids=self.position[:, None],
                use_cache=True,
                **{self.cache_name: self.cache},
            )
            self.logits = out.logits[:, -1].float()
            del out
        return finished


def sample_batch(model, groups: list[_Rows], settings: dict, stops) -> list[list]:
    """Each group's ``count`` rows continuing its prompt, all in one sampling loop
    (:class:`_Loop`); per group, its rows as lists of token ids, the prompt's included."""
    loop = _Loop(model, settings, stops)
    result: list[list] = [[None] * g.count for g in groups]
    loop.admit([(i, list(range(g.count)), g) for i, g in enumerate(groups)])
    while loop.rows:
        for row in loop.step():
            result[row.owner][row.slot] = row.ids + row.tokens
    return result


def _pick_own(scores, top_k: int, top_p: float, noise: Callable):
    """``generate._pick`` with the noise for the candidates drawn by ``noise(columns)``
    (each row's from its own request's generator)."""
    index, probs = top_candidates(scores, top_k, top_p)
    choice = (probs / noise(probs.shape[1]).to(probs.dtype)).argmax(-1, keepdim=True)
    return index.gather(-1, choice).squeeze(1)


def _with_links(job: _Job, generation: Generation) -> dict:
    """The generation as the API answers it: each sample with its share links (None for
    a flagged one: a training post is the person's own words)."""
    from huggingtweets.generate.share import ShareOptions, sample_links

    answer = generation.to_dict()
    links = sample_links(job.location, generation.samples, ShareOptions(share=True))
    for sample, link in zip(answer["samples"], links, strict=True):
        sample["share"] = link.to_dict() if link is not None else None
    return answer


def _as_error(exc: BaseException, job: _Job) -> BaseException:
    if isinstance(exc, HuggingtweetsError):
        return exc
    # A bug or a library's failure: the caller gets one line, the API a 4xx/5xx of A's.
    error = HuggingtweetsError(f"cannot generate with {job.request.model}: {first_line(exc)}")
    with contextlib.suppress(Exception):
        error.__cause__ = exc
    return error
