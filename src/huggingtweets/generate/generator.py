"""Generate posts from a trained model, with the original huggingtweets' settings.

The original sampled with ``pipeline("text-generation")`` and the model's
``task_specific_params["text-generation"]``: ``<|endoftext|>`` prepended to the prompt
(the separator every training post starts after), top-p 0.95, temperature 1, at most
160 and at least 10 tokens counting the prompt, and kept the first line of each sample.
We read the same settings from the model's config and do the same steps by hand, so the
memorization guard can check each sample and ``--no-copies`` can draw a flagged one again.

Sampling is our own loop over the model and its KV cache (``sampling.py``): each sample
stops at its first line break and leaves the batch at once. A model whose
generation_config.json asks for more (a repetition penalty, beams ...) goes through
``generate()``. A model of 50M parameters or more is sampled in bf16 where the hardware
computes it natively (``--precision``), a copy: the model itself stays as loaded.
"""

from __future__ import annotations

import contextlib
import copy
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import (
    MAX_SEED,
    OptionError,
    check_options,
    check_value,
    option,
    option_specs,
)
from huggingtweets.generate.sampling import fast_sampling_supported, sample_continuations
from huggingtweets.generate.text import PostDecoder, prompt_problem
from huggingtweets.model.loading import (
    MODELING_LOGGER,
    context_length,
    first_line,
    hidden_library_notice,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)
from huggingtweets.model.memorization import GUARD_FILE, CopyMatch, MemorizationGuard
from huggingtweets.model.speakers import Speaker, draw_speakers, find_speaker, model_speakers

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
MAX_RETRIES = 100
MAX_SAMPLES = 1000  # posts per call (see GenerateOptions.num_return_sequences)
DRAW_BATCH = 50  # samples drawn at once: memory stays that of 50, whatever -n is
MAX_LENGTH = 10_000  # tokens: a post is a few hundred at most (the original wrote 160)
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 1e3  # beyond it every token is as likely as any other
# The start of a post: X's longest posts have 25,000 characters. Longer prompts are
# refused before the tokenizer spends seconds on them only for the model to refuse them.
MAX_PROMPT_CHARS = 25_000
# Below this size a CPU samples fastest on one thread: each token's matrix products are
# too small to split, so threads only add fork/join overhead, and on a busy machine a
# descheduled thread stalls every step (tiny model, 20 samples on this 2-core box with
# other work running: 0.9 s on one thread, 19-34 s on two).
SINGLE_THREAD_BELOW = 50_000_000
SAMPLING_PRECISIONS = ("auto", "fp32", "bf16")
# bf16 halves the bytes a token reads and doubles the arithmetic, which pays where the
# matrices are large (GPT-2 small on one AVX512-BF16 core: 1.5× fp32 per token); below
# this size a token costs Python and kernel launches, and bf16 only adds conversions
# (the 3.7M demo model: 0.42 s for 10 samples in bf16, 0.29 s in fp32).
BF16_FROM = 50_000_000


def model_setting(name: str, **bounds_and_help: Any) -> Any:
    """An option that defaults to the model's own setting ``name`` (None until a model
    is loaded), else to the original's."""
    return option(
        None, default_help=f"the model's, else {DEFAULT_SETTINGS[name]}", **bounds_and_help
    )


@dataclass
class GenerateOptions:
    """How to sample. ``None`` means: the model's own setting (``task_specific_params``),
    else the original's."""

    # Every sample of a call is drawn in batches of DRAW_BATCH and held in memory with its
    # guard check; a thousand posts is more than anyone reads from one command, and on a
    # CPU already takes minutes with gpt2 (-n 100000000 would run for weeks).
    num_return_sequences: int = option(
        5, min=1, max=MAX_SAMPLES, flag=("-n", "--num"), help="How many posts."
    )
    # tokens, counting the prompt (not the prefix); the model's context caps it too
    max_length: int | None = model_setting(
        "max_length", min=1, max=MAX_LENGTH, help="Max tokens, prompt included."
    )
    min_length: int | None = model_setting(
        "min_length", min=0, max=MAX_LENGTH, help="Min tokens, prompt included."
    )
    top_p: float | None = model_setting(
        "top_p", min=0, min_open=True, max=1, help="Nucleus sampling mass."
    )
    # Below MIN_TEMPERATURE, logits divided by it overflow to infinity (sampling fails);
    # long before that, sampling is greedy decoding in all but name.
    temperature: float | None = model_setting(
        "temperature", min=MIN_TEMPERATURE, max=MAX_TEMPERATURE, help="Sampling temperature."
    )
    seed: int | None = option(
        None,
        min=0,
        max=MAX_SEED,
        help="Seed for reproducible samples.",
        default_help="a fresh one, printed",
    )
    allow_newlines: bool = option(False, help="Keep whole samples, not their first line.")
    no_copies: bool = option(
        False,
        help="Draw again samples the memorization guard flags as copies of training posts.",
    )
    retries: int = option(
        DEFAULT_RETRIES,
        min=0,
        max=MAX_RETRIES,
        help="With --no-copies: how many rounds of drawing again.",
    )
    trust_pickle: bool = option(
        False, help="Allow weights in pickle form (can run arbitrary code)."
    )
    precision: str = option(
        "auto",
        choices=SAMPLING_PRECISIONS,
        help="auto: bf16 for models of 50M parameters and more where the hardware computes "
        "it natively (CPUs with AVX512-BF16/AMX, recent GPUs), else fp32.",
    )
    as_pipeline: bool = option(
        False,
        help="Draw exactly what pipeline('text-generation') draws for the seed (fp32, and "
        "random numbers for the whole vocabulary at every token: slower).",
    )
    # A model trained with --speaker-tokens (speakers.py); without it, such a model mixes
    # its accounts, each sample's drawn with their shares of the training posts.
    speaker: str | None = option(
        None,
        flag="--as",
        metavar="HANDLE",
        help="Write as this account of a cyborg trained with --speaker-tokens.",
        default_help="each post by one of its accounts, in their shares of the training posts",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise OptionError(
                "min_length",
                f"({self.min_length}) is above max_length ({self.max_length}): a sample "
                "cannot be longer than its maximum",
            )
        if self.as_pipeline and self.precision == "bf16":
            raise OptionError(
                "precision", "must be fp32 or auto with as_pipeline (it samples in fp32)"
            )


@dataclass(frozen=True)
class Sample:
    text: str
    copy: CopyMatch | None = None  # set when the memorization guard flags the sample
    attempts: int = 1  # 1 + how many times --no-copies drew this sample again
    speaker: str | None = None  # the account it was written as (speaker-token models)

    @property
    def flagged(self) -> bool:
        return self.copy is not None

    def to_dict(self) -> dict:
        data = {
            "text": self.text,
            "flagged": self.flagged,
            "copy": None
            if self.copy is None
            else {**asdict(self.copy), "why": self.copy.describe()},
            "attempts": self.attempts,
        }
        if self.speaker is not None:
            data["speaker"] = self.speaker
        return data


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


def hub_file(repo_id: str, name: str, local_files_only: bool) -> Path | None:
    """A file published beside a Hub model, when the Hub (or the cache) has one."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, name, local_files_only=local_files_only))
    except (EntryNotFoundError, LocalEntryNotFoundError, OSError):
        return None  # none published, or offline with none cached


def _hub_guard(repo_id: str, local_files_only: bool) -> MemorizationGuard | None:
    """The guard published beside a Hub model: without one, samples go unchecked."""
    path = hub_file(repo_id, GUARD_FILE, local_files_only)
    return MemorizationGuard.load(path.parent) if path is not None else None


CARD_HEAD_BYTES = 64 * 1024  # the front matter is the card's first lines
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def card_language(card: Path | None) -> str | None:
    """The language a model card's front matter declares (``language: ja``), or None.

    Only a hint for the default prompt: a card that is missing, damaged or odd says
    nothing rather than stopping generation."""
    if card is None:
        return None
    import yaml

    try:
        with open(card, "rb") as handle:
            head = handle.read(CARD_HEAD_BYTES).decode("utf-8", errors="replace")
        match = _FRONT_MATTER.match(head)
        meta = yaml.safe_load(match[1]) if match else None
    except (OSError, yaml.YAMLError):
        return None
    language = meta.get("language") if isinstance(meta, dict) else None
    if isinstance(language, list):
        language = language[0] if language else None
    return language if isinstance(language, str) and language.strip() else None


def check_prompt(prompt: str, *, allow_newlines: bool = False) -> None:
    """A prompt the CLI, the library and the API all refuse (text.prompt_problem's rule:
    the server answers 422 with the same words)."""
    if not isinstance(prompt, str):
        raise HuggingtweetsError(f"the prompt must be text (got {type(prompt).__name__})")
    if not prompt.strip():
        raise HuggingtweetsError(
            'the prompt is empty: give the start of a post, e.g. "My dream is"'
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise HuggingtweetsError(
            f"the prompt is {len(prompt):,} characters long: give the start of a post "
            f"(at most {MAX_PROMPT_CHARS:,} characters)"
        )
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes the terminal could not decode
        raise HuggingtweetsError(
            "the prompt is not valid text (bytes that are not UTF-8): check the terminal's encoding"
        ) from None
    problem = prompt_problem(prompt, allow_newlines=allow_newlines)
    if problem is not None:
        raise HuggingtweetsError(f"the prompt {problem}")


TOKENIZER_LOGGER = "transformers.tokenization_utils_base"


class Generator:
    """A loaded model, its tokenizer, settings and memorization guard: load once, sample
    many times (the CLI, the card and the demo share it)."""

    def __init__(
        self,
        model,
        tokenizer,
        guard: MemorizationGuard | None,
        name: str,
        *,
        language: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.guard = guard
        self.name = name
        self.language = language  # what the model card declares, for a default prompt
        params = getattr(model.config, "task_specific_params", None)
        params = params.get("text-generation") if isinstance(params, dict) else None
        params = params if isinstance(params, dict) else {}
        self.model_settings = {k: params.get(k, v) for k, v in DEFAULT_SETTINGS.items()}
        self._line_breaks = None  # token ids whose text holds a line break
        self._bf16_model = None  # a bf16 copy for sampling (self.model stays as loaded)
        self._post_decoder = None
        self.speakers = model_speakers(model.config, tokenizer, name)  # [] but for a cyborg

    @classmethod
    def load(cls, model_or_run: str | Path, *, trust_pickle: bool = False) -> Generator:
        import torch

        where = resolve_model_dir(model_or_run)
        resolved = resolve_model(where)
        tokenizer = load_tokenizer(resolved)
        # strict: a weight that config.json lacks or leaves unused would be random noise
        model = load_causal_lm(resolved, trust_pickle=trust_pickle, strict=True)
        model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        location = Path(resolved.location)
        if location.is_dir():  # a local folder, or the cache's snapshot of a Hub model
            guard = MemorizationGuard.load(location)
            card = location / "README.md"
        else:
            guard = _hub_guard(resolved.location, resolved.local_files_only)
            card = hub_file(resolved.location, "README.md", resolved.local_files_only)
        return cls(model, tokenizer, guard, str(model_or_run), language=card_language(card))

    @property
    def post_decoder(self) -> PostDecoder:
        """Token ids → the text shown, with no U+FFFD the model invented (text.py)."""
        if self._post_decoder is None:
            self._post_decoder = PostDecoder(self.tokenizer)
        return self._post_decoder

    def settings(self, options: GenerateOptions) -> dict:
        """The settings a call samples with: the options given, else the model's own
        (checked as the options are: a config.json is as untrusted as any input)."""
        chosen = dict(self.model_settings)
        specs = {spec.name: spec for spec in option_specs(GenerateOptions)}
        for key in ("max_length", "min_length", "top_p", "temperature"):
            value = getattr(options, key)
            if value is not None:
                chosen[key] = value
                continue
            try:
                chosen[key] = check_value(specs[key], chosen[key])
            except OptionError as exc:
                raise HuggingtweetsError(
                    f"{self.name}: its config.json's task_specific_params give text-generation "
                    f"{key} = {chosen[key]!r}, which {exc.problem.split(' (got')[0]}; give "
                    f"{key} yourself or fix the file"
                ) from None
        if not isinstance(chosen["prefix"], str | None):
            raise HuggingtweetsError(
                f"{self.name}: its config.json's task_specific_params give text-generation "
                f"prefix = {chosen['prefix']!r}, which is not text; fix the file"
            )
        return chosen

    def _draw(
        self, prompt: str, count: int, settings: dict, how: GenerateOptions | None = None
    ) -> list[str]:
        """``count`` samples of ``prompt`` (prompt included), each cut at its first line
        break unless ``settings["allow_newlines"]`` (a prompt is one line unless so:
        ``check_prompt``); drawn ``DRAW_BATCH`` at a time, with ``how``'s precision and
        draws (``as_pipeline``); decoded with no U+FFFD the model invented (text.py)."""
        how = how or GenerateOptions(precision="fp32")
        prefix = settings["prefix"] or ""
        tokenizer = self.tokenizer
        # Prompts past the model's length are refused just below, with our own message.
        long_notice = "Token indices sequence length is longer than the specified maximum"
        with hidden_library_notice(TOKENIZER_LOGGER, long_notice):
            prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            encoded = tokenizer(prefix + prompt, return_tensors="pt", add_special_tokens=False)
        prefix_len = len(prefix_ids) if prefix else 0
        input_ids = encoded["input_ids"].to(self.model.device)
        # Like the pipeline: lengths count the prompt but not the prefix.
        max_length = settings["max_length"] + prefix_len
        context = context_length(self.model.config)
        if context:
            max_length = min(max_length, context)
        if input_ids.shape[1] >= max_length:
            raise HuggingtweetsError(
                f"the prompt is {input_ids.shape[1] - prefix_len} tokens long, the model writes "
                f"at most {max_length - prefix_len} (max_length, and the model's context of "
                f"{context or 'unknown'} tokens): use a shorter prompt"
            )
        min_length = min(settings["min_length"] + prefix_len, max_length)
        texts = []
        decoder = self.post_decoder
        decoded_prompt = decoder.decode(input_ids[0])
        for start in range(0, count, DRAW_BATCH):
            rows = self._sample(
                input_ids,
                min(DRAW_BATCH, count - start),
                settings,
                max_length,
                min_length,
                precision="fp32" if how.as_pipeline else how.precision,
                as_pipeline=how.as_pipeline,
            )
            first_line = not settings["allow_newlines"]
            for row in rows:
                texts.append(
                    decoder.post(prompt, input_ids[0], decoded_prompt, row, first_line=first_line)
                )
        return texts

    def _sample(
        self,
        input_ids,
        count: int,
        settings: dict,
        max_length: int,
        min_length: int,
        *,
        precision: str = "fp32",
        as_pipeline: bool = False,
    ):
        """``count`` rows of token ids, the prompt's included: a list of 1-D tensors of
        their own lengths (our loop) or one 2-D tensor (``generate()``)."""
        model = self._sampling_model(precision)
        # Without an attention mask (generate() drops an all-ones one), the model warns that
        # none was given: the <|endoftext|> prefix is also the pad token. It is not padding.
        padding_notice = "We strongly recommend passing in an `attention_mask`"
        with hidden_library_notice(MODELING_LOGGER, padding_notice):
            if not fast_sampling_supported(model):
                return self._generate_rows(
                    model, input_ids, count, settings, max_length, min_length
                )
            stops = () if settings["allow_newlines"] else self._line_break_ids()
            try:
                return sample_continuations(
                    model, input_ids, count, settings, max_length, min_length, stops, as_pipeline
                )
            except (ValueError, ArithmeticError) as exc:
                raise HuggingtweetsError(
                    f"cannot sample from {self.name}: {first_line(exc)}"
                ) from None

    def _generate_rows(self, model, input_ids, count, settings, max_length, min_length):
        import torch

        try:
            with torch.inference_mode():
                return model.generate(
                    input_ids=input_ids.expand(count, -1),
                    attention_mask=torch.ones_like(input_ids).expand(count, -1),
                    do_sample=True,
                    top_p=settings["top_p"],
                    temperature=settings["temperature"],
                    max_length=max_length,
                    min_length=min_length,
                    pad_token_id=self._pad_id(),
                )
        except (ValueError, TypeError, ArithmeticError) as exc:
            # The settings we pass are checked: what is left is the model's own
            # generation_config.json (num_beams 0, a negative top_k ...).
            raise HuggingtweetsError(
                f"cannot sample from {self.name} with its generation settings "
                f"(generation_config.json): {first_line(exc)}"
            ) from None

    def _pad_id(self) -> int | None:
        for candidate in (
            self.model.generation_config.pad_token_id,
            self.tokenizer.pad_token_id,
            self.tokenizer.eos_token_id,
        ):
            if candidate is not None:
                return candidate
        return None

    def _line_break_ids(self) -> list[int]:
        """Tokens whose text holds a line break (a sample ends at its first); special
        tokens are left out, as decoding skips them."""
        if self._line_breaks is None:
            tokenizer = self.tokenizer
            special = set(tokenizer.all_special_ids)
            ids = range(len(tokenizer))
            texts = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False)
            self._line_breaks = [
                i for i, t in zip(ids, texts, strict=True) if "\n" in t and i not in special
            ]
        return self._line_breaks

    def _sampling_model(self, precision: str):
        """The model to sample with: itself, or a bf16 copy of it (made once) where bf16
        is asked for or, with ``auto``, computed natively. ``self.model`` stays as loaded,
        for what measures it (evaluate's perplexities)."""
        import torch

        from huggingtweets.model.hardware import native_bf16

        model = self.model
        wanted = precision == "bf16" or (
            precision == "auto"
            and native_bf16(model.device.type)
            and model.num_parameters() >= BF16_FROM
        )
        if not wanted or model.dtype != torch.float32:
            return model
        if self._bf16_model is None:
            clone = copy.deepcopy(model).to(torch.bfloat16).eval()
            if clone.device.type == "cpu" and hasattr(clone, "set_attn_implementation"):
                # The CPU's fused attention is slow in bf16 for one new token at a time:
                # plain attention is 1.2-1.5× faster per token with GPT-2 small (fp32:
                # no difference, so the model as loaded keeps its own).
                with contextlib.suppress(ValueError, ImportError):
                    clone.set_attn_implementation("eager")
            self._bf16_model = clone
        return self._bf16_model

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
        check_prompt(prompt, allow_newlines=options.allow_newlines)
        if options.no_copies and self.guard is None:
            raise HuggingtweetsError(
                f"{self.name} has no memorization guard ({GUARD_FILE}), so --no-copies cannot "
                "check its samples; retrain it with huggingtweets, or leave out --no-copies"
            )
        seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        settings = {**self.settings(options), "allow_newlines": options.allow_newlines}
        with self._threads():
            return self._generate(prompt, options, seed, settings)

    def write_posts(self, options: GenerateOptions | None = None) -> Generation:
        """Whole posts from the separator alone, no prompt: what the model writes when left
        to itself (``evaluate`` compares them with the real posts)."""
        options = options or GenerateOptions()
        seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        settings = {**self.settings(options), "allow_newlines": options.allow_newlines}
        if not settings["prefix"]:
            raise HuggingtweetsError(f"{self.name} has no separator (prefix) to start posts from")
        with self._threads():
            return self._generate("", options, seed, settings)

    def _generate(self, prompt: str, options: GenerateOptions, seed: int, settings: dict):
        import torch

        voices = self._voices(options, seed)
        torch.manual_seed(seed)
        samples = [
            Sample(t, self._check(t), speaker=v.handle if v else None)
            for t, v in zip(self._draw_as(prompt, voices, settings, options), voices, strict=True)
        ]
        if options.no_copies:
            for _ in range(options.retries):
                flagged = [i for i, s in enumerate(samples) if s.flagged]
                if not flagged:
                    break
                again = [voices[i] for i in flagged]
                redrawn = self._draw_as(prompt, again, settings, options)
                for i, text in zip(flagged, redrawn, strict=True):
                    samples[i] = Sample(
                        text, self._check(text), samples[i].attempts + 1, samples[i].speaker
                    )
        return Generation(
            model=self.name,
            prompt=prompt,
            seed=seed,
            settings=settings,
            checked=self.guard is not None,
            samples=samples,
        )

    def _voices(self, options: GenerateOptions, seed: int) -> list[Speaker | None]:
        """Who writes each sample: the account ``--as`` names, else (a cyborg trained with
        speaker tokens) one drawn per sample under the seed, else nobody in particular."""
        count = options.num_return_sequences
        if options.speaker is not None:
            return [find_speaker(self.speakers, options.speaker, self.name)] * count
        if not self.speakers:
            return [None] * count
        return list(draw_speakers(self.speakers, count, seed))

    def _draw_as(
        self, prompt: str, voices: list[Speaker | None], settings: dict, how: GenerateOptions
    ) -> list[str]:
        """``_draw`` for each speaker's samples, the speaker's token after the prefix (so
        that lengths count the prompt alone, as the pipeline counts them); in order."""
        if all(v is None for v in voices):
            return self._draw(prompt, len(voices), settings, how)
        texts: list[str] = [""] * len(voices)
        for voice in dict.fromkeys(voices):  # each speaker once, in order of first sample
            where = [i for i, v in enumerate(voices) if v == voice]
            prefix = (settings["prefix"] or "") + (voice.token if voice else "")
            drawn = self._draw(prompt, len(where), {**settings, "prefix": prefix}, how)
            for i, text in zip(where, drawn, strict=True):
                texts[i] = text
        return texts


def generate(
    model_or_run: str | Path, prompt: str = DEFAULT_PROMPT, options: GenerateOptions | None = None
) -> list[Sample]:
    """Samples of ``prompt`` from a run directory, a model folder or a Hub id."""
    options = options or GenerateOptions()
    check_prompt(prompt, allow_newlines=options.allow_newlines)
    generator = Generator.load(model_or_run, trust_pickle=options.trust_pickle)
    return generator.generate(prompt, options).samples
