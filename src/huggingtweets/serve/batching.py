"""Continuous batching: the rows of several generate requests drawn in ONE sampling loop.

The model service (serve.models) takes the first waiting request and every waiting request
for the same model with the same temperature and top-p (the settings a forward pass
shares), up to ``max_batch`` rows in all; :class:`ContinuousBatch` draws all their rows in
one loop (:class:`_Loop`): prompts that differ are left-padded under an attention mask,
each row keeps its own prompt length, max_length and min_length, and each request gets
back exactly its own rows. The loop is continuous: a row leaves it when its sample ends
(at its first line), and between two steps waiting requests of the same model and
settings join in the rows set free (their prompts read in one pass, their cache padded to
the loop's or the loop's to theirs); a request is answered as soon as its own rows are
done, so nobody waits for another's longest sample.

Seeds: each request's rows draw their random numbers from a generator of their own seeded
with the request's seed, never from a stream shared with the batch: what else shares the
pass changes no request's draws (up to the rounding of batched arithmetic).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.generate.generator import (
    DEFAULT_RETRIES,
    TOKENIZER_LOGGER,
    GenerateOptions,
    Generation,
    Generator,
    Sample,
)
from huggingtweets.generate.sampling import DEFAULT_TOP_K, token_ids, top_candidates
from huggingtweets.model.loading import (
    MODELING_LOGGER,
    context_length,
    first_line,
    hidden_library_notice,
)
from huggingtweets.serve.messages import without_paths
from huggingtweets.serve.requests import GenerateRequest


@dataclass
class PendingRequest:
    request: GenerateRequest
    location: str  # what resolve() gave: a model folder, a run directory or a Hub id
    seed: int  # the request's, or a fresh one: its rows draw from a generator of it
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)

    @property
    def key(self) -> tuple | None:
        key = self.request.batch_key
        return None if key is None else (self.location, *key)


@dataclass
class PromptRows:
    """One request's share of a batch: its prompt's token ids and its rows."""

    ids: list[int]
    count: int
    max_length: int
    min_length: int
    rng: object  # the request's torch.Generator: its rows' random numbers


@dataclass
class EncodedPrompt:
    """A prompt as the model reads it (the prefix's and the prompt's tokens), its lengths
    as ``Generator._draw`` counts them, and how a row is decoded back."""

    prompt: str
    ids: list[int]
    decoded: str
    max_length: int
    min_length: int
    fixed: str | None = None  # a prompt with a line break: every sample is its first line

    @classmethod
    def encode(cls, generator: Generator, prompt: str, settings: dict) -> EncodedPrompt:
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
        decoded = generator.post_decoder.decode(ids)
        fixed = prompt.split("\n", 1)[0].rstrip() if "\n" in prompt else None
        return cls(prompt, ids, decoded, max_length, min_length, fixed)

    def text_of(self, generator: Generator, row) -> str:
        """A row decoded as ``Generator._draw`` decodes it: the prompt as given, then
        the continuation (no U+FFFD the model invented), cut at its first line."""
        decoder = generator.post_decoder
        return decoder.post(self.prompt, self.ids, self.decoded, row, first_line=True)


@dataclass
class _Task:
    """A request being drawn: its samples as they come."""

    job: PendingRequest
    settings: dict
    prompt: EncodedPrompt
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
    """``sampling.sample_continuations`` for rows of several prompts that join and leave: each
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
        self.eos = token_ids(config.eos_token_id)
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

    def admit(self, groups: list[tuple[object, list[int], PromptRows]] | list, attempt: int = 1):
        """``groups``: (owner, slots, rows) — or (task, slots) with the task's prompt."""
        torch = self._torch
        from transformers import DynamicCache

        specs = []
        for item in groups:
            if len(item) == 2:
                task, slots = item
                p = task.prompt
                item = (
                    task,
                    slots,
                    PromptRows(p.ids, len(slots), p.max_length, p.min_length, task.rng),
                )
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
                torch.empty((c, columns), dtype=torch.float32, device=self.device).exponential_(
                    generator=self.rngs[g]
                )
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


def sample_batch(model, groups: list[PromptRows], settings: dict, stops) -> list[list]:
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
    """``sampling.pick_tokens`` with the noise for the candidates drawn by ``noise(columns)``
    (each row's from its own request's generator)."""
    index, probs = top_candidates(scores, top_k, top_p)
    choice = (probs / noise(probs.shape[1]).to(probs.dtype)).argmax(-1, keepdim=True)
    return index.gather(-1, choice).squeeze(1)


def with_links(job: PendingRequest, generation: Generation) -> dict:
    """The generation as the API answers it: each sample with its share links (None for
    a flagged one: a training post is the person's own words)."""
    from huggingtweets.generate.share import ShareOptions, sample_links

    answer = generation.to_dict()
    links = sample_links(job.location, generation.samples, ShareOptions(share=True))
    for sample, link in zip(answer["samples"], links, strict=True):
        sample["share"] = link.to_dict() if link is not None else None
    return answer


class ModelBroken(HuggingtweetsError):
    """The server's model cannot be loaded or run (damaged, mismatched): the server's
    fault, not the client's (the API answers 500, naming the model, never its folder)."""


def as_error(exc: BaseException, job: PendingRequest) -> BaseException:
    """What a request's caller gets: one line without the server's paths; a failure that
    is not a refusal of the request (a library's, a bug) is the model's (ModelBroken)."""
    name = job.request.model
    message = without_paths(first_line(exc), {job.location: name})
    if isinstance(exc, HuggingtweetsError) and type(exc) is not HuggingtweetsError:
        error: BaseException = exc  # a refusal of its own kind (OptionError, QueueFull ...)
    elif isinstance(exc, HuggingtweetsError):
        error = HuggingtweetsError(message)
    else:
        error = ModelBroken(f"the server's model {name!r} cannot generate: {message}")
    if error is not exc:
        with contextlib.suppress(Exception):
            error.__cause__ = exc
    return error


def load_error(exc: BaseException, name: str, location: str) -> ModelBroken:
    """A served model (``name``, at ``location``) that does not load: the server's model
    is at fault."""
    message = without_paths(first_line(exc), {location: name})
    message = message.removesuffix("; download or train it again")
    error = ModelBroken(f"the server's model {name!r} cannot be loaded: {message}")
    with contextlib.suppress(Exception):
        error.__cause__ = exc
    return error


# What the loop tells its service: requests=, rows=, batches= added, batch_size= a maximum.
Record = Callable[..., None]


class ContinuousBatch:
    """One sampling loop for a batch, which requests join while it runs: whenever rows
    leave it (their sample ended), waiting requests for the same model and settings take
    their places, up to ``max_batch`` rows; each request is answered as soon as its own
    rows are done. ``take_joining(key, free)`` hands over waiting requests that fit."""

    def __init__(
        self,
        generator: Generator,
        first: GenerateRequest,
        *,
        max_batch: int,
        take_joining: Callable[[tuple, int], list[PendingRequest]],
        record: Record,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self.stopped = stopped  # the server shutting down: the loop ends at its next step
        self.generator = generator
        self.max_batch = max_batch
        self.take_joining = take_joining
        self.record = record
        self.settings = {
            **generator.settings(GenerateOptions(temperature=first.temperature, top_p=first.top_p)),
            "allow_newlines": False,
        }
        self.model = generator._sampling_model("auto")
        self.loop = _Loop(self.model, self.settings, generator._line_break_ids())

    def run(self, batch: list[PendingRequest]) -> None:
        """Draw ``batch``; it grows with the requests that joined (so that an error
        reaches them all)."""
        generator, loop, key = self.generator, self.loop, batch[0].key
        padding_notice = "We strongly recommend passing in an `attention_mask`"
        with generator._threads(), hidden_library_notice(MODELING_LOGGER, padding_notice):
            self.admit(batch)
            while loop.rows and not self.stopped():
                try:
                    finished = loop.step()
                except (ValueError, ArithmeticError) as exc:
                    raise HuggingtweetsError(
                        f"cannot sample from {generator.name}: {first_line(exc)}"
                    ) from None
                for row in finished:
                    self._row_done(row)
                free = self.max_batch - len(loop.rows)
                # Only unseeded requests join (key None: a seeded one runs alone).
                if loop.rows and free > 0 and loop.can_join and key is not None:
                    joining = self.take_joining(key, free)
                    batch.extend(joining)
                    self.admit(joining)

    def admit(self, jobs: list[PendingRequest]) -> None:
        import torch

        generator, groups = self.generator, []
        for job in jobs:
            request = job.request
            try:
                own = {**self.settings, **generator.settings(request.options())}
                own["allow_newlines"] = False
                prompt = EncodedPrompt.encode(generator, request.prompt, own)
            except Exception as exc:  # this request only (a prompt too long)
                settle(job, error=as_error(exc, job))
                continue
            rng = torch.Generator(device=self.model.device).manual_seed(job.seed)
            task = _Task(job, own, prompt, rng, [None] * request.n)
            if prompt.fixed is not None:  # a line break in the prompt: no sampling
                for slot in range(request.n):
                    task.samples[slot] = Sample(prompt.fixed, generator._check(prompt.fixed))
                self._finish(task)
            else:
                groups.append((task, list(range(request.n))))
        if groups:
            started = not self.loop.rows  # a sampling loop starts (else: rows join one)
            self.loop.admit(groups)
            owners = len({id(row.owner) for row in self.loop.rows})
            self.record(
                requests=len(groups),
                rows=sum(len(g[1]) for g in groups),
                batches=int(started),
                batch_size=owners,
            )

    def _row_done(self, row: _Row) -> None:
        task = row.owner
        text = task.prompt.text_of(self.generator, row.ids + row.tokens)
        task.samples[row.slot] = Sample(text, self.generator._check(text), row.attempt)
        task.left -= 1
        if task.left == 0:
            again = self._finish(task)
            if again:
                self.loop.admit([(task, again)], attempt=task.rounds + 1)
                self.record(rows=len(again))

    def _finish(self, task: _Task) -> list[int]:
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
            checked=self.generator.guard is not None,
            samples=task.samples,
        )
        answer(task.job, with_links, task.job, generation)
        return []


def answer(job: PendingRequest, produce: Callable, *args: object) -> None:
    """The request's future gets what ``produce(*args)`` returns, or its error (unless it
    was answered meanwhile: the server shutting down answers every request at once)."""
    try:
        result = produce(*args)
    except Exception as exc:  # the caller gets it
        settle(job, error=as_error(exc, job))
        return
    settle(job, result=result)


def settle(job: PendingRequest, *, result: object = None, error: BaseException | None = None):
    """Set the request's answer, unless it has one already."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
