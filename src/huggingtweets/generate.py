"""Generate posts from a trained model, with the original huggingtweets' settings.

The original sampled with ``pipeline("text-generation")`` and the model's
``task_specific_params["text-generation"]``: ``<|endoftext|>`` prepended to the prompt
(the separator every training post starts after), top-p 0.95, temperature 1, at most
160 and at least 10 tokens counting the prompt, and kept the first line of each sample.
We read the same settings from the model's config and do the same steps by hand, so the
memorization guard can check each sample and ``--no-copies`` can draw a flagged one again.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import HuggingtweetsError
from .memorization import GUARD_FILE, CopyMatch, MemorizationGuard
from .models import (
    context_length,
    hidden_library_notice,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)

# The original's settings (its task_specific_params["text-generation"], which train
# writes into every model), used when a model's config does not carry its own.
DEFAULT_SETTINGS = {
    "prefix": "<|endoftext|>",
    "max_length": 160,
    "min_length": 10,
    "top_p": 0.95,
    "temperature": 1.0,
}
DEFAULT_PROMPT = "My dream is"
DEFAULT_RETRIES = 5
# Below this size a CPU samples fastest on one thread: each token's matrix products are
# too small to split, so threads only add fork/join overhead, and on a busy machine a
# descheduled thread stalls every step (tiny model, 20 samples on this 2-core box with
# other work running: 0.9 s on one thread, 19-34 s on two).
SINGLE_THREAD_BELOW = 50_000_000


@dataclass
class GenerateOptions:
    """How to sample. ``None`` means: the model's own setting (``task_specific_params``),
    else the original's."""

    num_return_sequences: int = 5
    max_length: int | None = None  # tokens, counting the prompt (not the prefix)
    min_length: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None  # None: a fresh random seed, reported in the result
    allow_newlines: bool = False  # keep the whole sample, not only its first line
    no_copies: bool = False  # draw flagged samples again, up to ``retries`` rounds
    retries: int = DEFAULT_RETRIES
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        if self.num_return_sequences < 1:
            raise HuggingtweetsError(
                f"-n must be at least 1 (got {self.num_return_sequences}): how many posts to write"
            )
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise HuggingtweetsError(
                f"--top-p must be in (0, 1] (got {self.top_p}); the original used 0.95"
            )
        if self.temperature is not None and not self.temperature > 0:
            raise HuggingtweetsError(
                f"--temperature must be above 0 (got {self.temperature}); the original used 1.0"
            )
        if self.max_length is not None and self.max_length < 1:
            raise HuggingtweetsError(f"--max-length must be at least 1 (got {self.max_length})")
        if self.min_length is not None and self.min_length < 0:
            raise HuggingtweetsError(f"--min-length must be 0 or more (got {self.min_length})")
        if self.retries < 0:
            raise HuggingtweetsError(f"--retries must be 0 or more (got {self.retries})")


@dataclass(frozen=True)
class Sample:
    text: str
    copy: CopyMatch | None = None  # set when the memorization guard flags the sample
    attempts: int = 1  # 1 + how many times --no-copies drew this sample again

    @property
    def flagged(self) -> bool:
        return self.copy is not None

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "flagged": self.flagged,
            "copy": None
            if self.copy is None
            else {**asdict(self.copy), "why": self.copy.describe()},
            "attempts": self.attempts,
        }


@dataclass
class Generation:
    """The samples of one call, and what produced them (enough to reproduce them)."""

    model: str
    prompt: str
    seed: int
    settings: dict
    checked: bool  # False: the model has no memorization guard, samples were not checked
    samples: list[Sample] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        return sum(s.flagged for s in self.samples)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "seed": self.seed,
            "settings": self.settings,
            "checked": self.checked,
            "flagged": self.flagged if self.checked else None,
            "samples": [s.to_dict() for s in self.samples],
        }


def resolve_model_dir(model_or_run: str | Path) -> str | Path:
    """A run directory → its ``model/`` folder; a model folder as is; anything else is
    taken as a Hub id (``models.resolve_model`` says what is wrong with it)."""
    path = Path(model_or_run).expanduser()
    if not path.is_dir():
        return str(model_or_run)
    if (path / "config.json").exists():
        return path
    if (path / "model").is_dir() or (path / "dataset").is_dir() or (path / "posts").is_dir():
        model_dir = path / "model"
        if not (model_dir / "config.json").exists():
            raise HuggingtweetsError(
                f"{path} has no trained model yet: run `huggingtweets train {path}` first"
            )
        return model_dir
    raise HuggingtweetsError(
        f"{path} is neither a run directory nor a model folder (no config.json, no model/)"
    )


def _hub_guard(repo_id: str, local_files_only: bool) -> MemorizationGuard | None:
    """The guard published beside a Hub model, when the Hub (or the cache) has one."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(repo_id, GUARD_FILE, local_files_only=local_files_only)
    except (EntryNotFoundError, LocalEntryNotFoundError, OSError):
        return None  # none published, or offline with none cached: samples go unchecked
    return MemorizationGuard.load(Path(path).parent)


def check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise HuggingtweetsError(
            'the prompt is empty: give the start of a post, e.g. "My dream is"'
        )


MODELING_LOGGER = "transformers.modeling_utils"


class Generator:
    """A loaded model, its tokenizer, settings and memorization guard: load once, sample
    many times (the CLI, the card and the demo share it)."""

    def __init__(self, model, tokenizer, guard: MemorizationGuard | None, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.guard = guard
        self.name = name
        params = (getattr(model.config, "task_specific_params", None) or {}).get(
            "text-generation", {}
        )
        self.model_settings = {k: params.get(k, v) for k, v in DEFAULT_SETTINGS.items()}

    @classmethod
    def load(cls, model_or_run: str | Path, *, trust_pickle: bool = False) -> Generator:
        import torch

        where = resolve_model_dir(model_or_run)
        resolved = resolve_model(where)
        tokenizer = load_tokenizer(resolved)
        model = load_causal_lm(resolved, trust_pickle=trust_pickle)
        model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        location = Path(resolved.location)
        if location.is_dir():  # a local folder, or the cache's snapshot of a Hub model
            guard = MemorizationGuard.load(location)
        else:
            guard = _hub_guard(resolved.location, resolved.local_files_only)
        return cls(model, tokenizer, guard, str(model_or_run))

    def settings(self, options: GenerateOptions) -> dict:
        chosen = dict(self.model_settings)
        for key in ("max_length", "min_length", "top_p", "temperature"):
            value = getattr(options, key)
            if value is not None:
                chosen[key] = value
        return chosen

    def _draw(self, prompt: str, count: int, settings: dict) -> list[str]:
        """``count`` samples of ``prompt`` (prompt included), each cut at its first line
        break unless ``settings["allow_newlines"]``."""
        import torch

        prefix = settings["prefix"] or ""
        tokenizer = self.tokenizer
        prefix_len = len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
        encoded = tokenizer(prefix + prompt, return_tensors="pt", add_special_tokens=False)
        input_ids = encoded["input_ids"].to(self.model.device)
        # Like the pipeline: lengths count the prompt but not the prefix.
        max_length = settings["max_length"] + prefix_len
        context = context_length(self.model.config)
        if context:
            max_length = min(max_length, context)
        if input_ids.shape[1] >= max_length:
            raise HuggingtweetsError(
                f"the prompt is {input_ids.shape[1] - prefix_len} tokens long, the model writes "
                f"at most {max_length - prefix_len}: use a shorter prompt or a larger --max-length"
            )
        min_length = min(settings["min_length"] + prefix_len, max_length)
        # generate() drops an all-ones attention mask, then the model warns that none was
        # given because the <|endoftext|> prefix is also the pad token: it is not padding.
        padding_notice = "We strongly recommend passing in an `attention_mask`"
        with torch.inference_mode(), hidden_library_notice(MODELING_LOGGER, padding_notice):
            output = self.model.generate(
                input_ids=input_ids.expand(count, -1),
                attention_mask=torch.ones_like(input_ids).expand(count, -1),
                do_sample=True,
                top_p=settings["top_p"],
                temperature=settings["temperature"],
                max_length=max_length,
                min_length=min_length,
                pad_token_id=self._pad_id(),
            )
        texts = []
        for row in output[:, input_ids.shape[1] :]:
            text = prompt + tokenizer.decode(row, skip_special_tokens=True)
            if not settings["allow_newlines"]:
                text = text.split("\n", 1)[0]
            texts.append(text.rstrip())
        return texts

    def _pad_id(self) -> int | None:
        for candidate in (
            self.model.generation_config.pad_token_id,
            self.tokenizer.pad_token_id,
            self.tokenizer.eos_token_id,
        ):
            if candidate is not None:
                return candidate
        return None

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        import torch

        small = self.model.num_parameters() < SINGLE_THREAD_BELOW
        if self.model.device.type != "cpu" or not small:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _check(self, text: str) -> CopyMatch | None:
        return self.guard.check(text) if self.guard is not None else None

    def generate(self, prompt: str, options: GenerateOptions | None = None) -> Generation:
        options = options or GenerateOptions()
        check_prompt(prompt)
        if options.no_copies and self.guard is None:
            raise HuggingtweetsError(
                f"{self.name} has no memorization guard ({GUARD_FILE}), so --no-copies cannot "
                "check its samples; retrain it with huggingtweets, or leave out --no-copies"
            )
        seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        settings = {**self.settings(options), "allow_newlines": options.allow_newlines}
        with self._threads():
            return self._generate(prompt, options, seed, settings)

    def _generate(self, prompt: str, options: GenerateOptions, seed: int, settings: dict):
        import torch

        torch.manual_seed(seed)
        samples = [
            Sample(t, self._check(t))
            for t in self._draw(prompt, options.num_return_sequences, settings)
        ]
        if options.no_copies:
            for _ in range(options.retries):
                flagged = [i for i, s in enumerate(samples) if s.flagged]
                if not flagged:
                    break
                for i, text in zip(
                    flagged, self._draw(prompt, len(flagged), settings), strict=True
                ):
                    samples[i] = Sample(text, self._check(text), samples[i].attempts + 1)
        return Generation(
            model=self.name,
            prompt=prompt,
            seed=seed,
            settings=settings,
            checked=self.guard is not None,
            samples=samples,
        )


def generate(
    model_or_run: str | Path, prompt: str = DEFAULT_PROMPT, options: GenerateOptions | None = None
) -> list[Sample]:
    """Samples of ``prompt`` from a run directory, a model folder or a Hub id."""
    options = options or GenerateOptions()
    check_prompt(prompt)
    generator = Generator.load(model_or_run, trust_pickle=options.trust_pickle)
    return generator.generate(prompt, options).samples
