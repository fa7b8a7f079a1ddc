"""The model card: ``RUN_DIR/model/README.md`` in the newer huggingtweets layout, and
``preview.png`` (its thumbnail).

Every string a user controls (names, handles, bios, posts, samples) is escaped for the
place it lands: YAML by a YAML writer (``huggingface_hub``'s card metadata), HTML in
the avatar block, Markdown (and the HTML that Markdown lets through) in the text and
tables, CSS in the avatar URLs. A display name cannot change the card's structure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import math
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import orjson
from markupsafe import Markup

from huggingtweets.card.labels import row_labels, stats_rows
from huggingtweets.card.preview import Person, avatar, draw_preview, initials_avatar, png_bytes
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.language import default_prompt, main_language
from huggingtweets.core.options import MAX_SEED, OptionError, check_options, option
from huggingtweets.core.records import check_handle, iter_jsonl
from huggingtweets.core.runs import GGUF_GLOB, MODELFILE, RunDir, atomic_write
from huggingtweets.core.secrets import contains_secret
from huggingtweets.generate.generator import (
    DEFAULT_PROMPT,
    DEFAULT_SETTINGS,
    MAX_SAMPLES,
    GenerateOptions,
    Generation,
    Generator,
    Sample,
)
from huggingtweets.model.loading import first_line
from huggingtweets.model.memorization import GUARD_FILE

CARD_FILE = "README.md"
PREVIEW_FILE = "preview.png"
LOSS_CURVE_FILE = "loss_curve.png"
AVATAR_SLOTS = 3  # the huggingtweets avatar block has three places
DEFAULT_CHECKED = 20  # samples drawn to measure the memorization rate
MAX_CARD_SAMPLES = 100  # samples shown: a card is read, not scrolled through

# -- escaping, one function per context ---------------------------------------------


def one_line(text: object) -> str:
    """Every whitespace run (newlines, tabs, U+2028 ...) as one space: a value can never
    start a new line, so never a new Markdown block, YAML key or ``---``."""
    return " ".join(str(text).split())


def html_text(text: object) -> Markup:
    """Text inside an HTML element or attribute."""
    return Markup(html.escape(one_line(text), quote=True))


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BLOCK_START = re.compile(r"^[#+=-]")  # heading, list item, setext underline
_MD_ORDERED = re.compile(r"^(\d+)([.)])(?=\s|$)")  # "1. " starts an ordered list


def md_text(text: object) -> Markup:
    """Text inside a Markdown paragraph, list item or table cell: emphasis, links, code,
    table pipes and block markers escaped, and ``<``, ``>``, ``&`` as entities (Markdown
    passes raw HTML through; an entity is no blockquote marker either)."""
    escaped = _MD_INLINE.sub(r"\\\1", one_line(text))
    escaped = _MD_ORDERED.sub(r"\1\\\2", _MD_BLOCK_START.sub(r"\\\g<0>", escaped))
    return Markup(html.escape(escaped, quote=False))


def css_url(url: str | None) -> str | None:
    """An http(s) URL safe inside ``url('…')`` in a style attribute, or None."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(one_line(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # Percent-encode quotes, parentheses, backslashes, spaces and angle brackets: none can
    # end the CSS string or the attribute.
    return urllib.parse.quote(parts.geturl(), safe=":/?#@!$&*+,;=%~._-[]")


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("huggingtweets.card", "templates"),
        autoescape=True,  # anything not given a context filter is at least HTML-escaped
        keep_trailing_newline=True,
        trim_blocks=True,  # a line holding only a {% tag %} leaves no line behind
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["html"] = html_text
    env.filters["md"] = md_text
    return env.get_template("model_card.md.j2")


# -- what the card says -------------------------------------------------------------


def default_repo_id(handles: list[str]) -> str:
    """``huggingtweets/<handles joined by ->``, as the original named its models, with the
    characters the Hub refuses in a name (Mastodon's ``@``) turned into ``-``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(handles))
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-.")[:96].strip("-.")
    return f"huggingtweets/{name or 'bot'}"


# A token pasted in place of the id would be printed and written into the card (its front
# matter, its snippet): refused, and never repeated in the message.
SECRET_IN_ID = (
    "holds a configured secret (a token pasted in place of the repository id?): give OWNER/NAME"
)


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if contains_secret(repo_id):
        raise HuggingtweetsError(f"the repository id {SECRET_IN_ID}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HuggingtweetsError(
            f"{repo_id!r} is not a valid Hugging Face model id: use owner/name with letters, "
            "digits, '-', '_' and '.'"
        ) from None
    return repo_id


def _parameters(model_dir: Path) -> int:
    """Parameters of the model, read from the safetensors headers (no weights loaded)."""
    from safetensors import SafetensorError, safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        if path.name == GUARD_FILE:
            continue
        try:
            with safe_open(str(path), framework="numpy") as handle:
                for key in handle.keys():  # noqa: SIM118 (not a dict: no __iter__)
                    total += math.prod(handle.get_slice(key).get_shape())
        except SafetensorError as exc:
            raise HuggingtweetsError(
                f"{path} is damaged or incomplete ({first_line(exc)}); train again"
            ) from None
    return total


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


@dataclass(frozen=True)
class BaseModel:
    kind: str  # "tiny", "hub" or "local"
    name: str  # the Hub id; the folder's name for a local base
    parameters: str


def base_model(metrics: dict, model_dir: Path) -> BaseModel:
    name = str(metrics.get("base_model") or "")
    kind = metrics.get("base_model_type")
    if kind not in ("tiny", "hub", "local"):
        kind = "tiny" if name == "tiny" else "hub" if name else "local"
    if kind == "hub":
        try:
            check_repo_id(name)
        except HuggingtweetsError:
            kind = "local"
    if kind == "local":
        # Only the folder's name: a full path would publish the trainer's directories.
        name = Path(name).name or "a local model"
    return BaseModel(kind, name, _human(_parameters(model_dir)))


_HYPERPARAMETER_NAMES = {
    "learning_rate": "Learning rate",
    "num_train_epochs": "Epochs",
    "lr_scheduler_type": "Schedule",
    "warmup_steps": "Warm-up steps",
    "optimizer": "Optimizer",
    "per_device_train_batch_size": "Batch size (per device)",
    "gradient_accumulation_steps": "Gradient accumulation",
    "block_size": "Block size (tokens)",
    "precision": "Precision",
    "lora": "LoRA",
    "early_stopping_patience": "Early stopping patience",
    "weight_decay": "Weight decay",
    "dropout": "Dropout",
    "max_steps": "Max steps",
    "goldfish_k": "Goldfish loss (1 in k tokens left out)",
}


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    return str(value)


def hyperparameter_rows(metrics: dict) -> list[tuple[str, str]]:
    params = dict(metrics.get("hyperparameters") or {})
    max_steps = params.get("max_steps")
    if not isinstance(max_steps, int | float) or max_steps <= 0:  # -1: the epochs decide
        params.pop("max_steps", None)
    rows = [
        (_HYPERPARAMETER_NAMES.get(k, k.replace("_", " ")), _value(v)) for k, v in params.items()
    ]
    if metrics.get("seed") is not None:
        rows.append(("Seed", _value(metrics["seed"])))
    return rows


def evaluation_rows(metrics: dict) -> list[tuple[str, str, str]]:
    rows = []
    for name, key, digits in (("Loss", "eval_loss", 4), ("Perplexity", "perplexity", 2)):
        before, after = metrics.get(f"{key}_before"), metrics.get(f"{key}_after")
        if before is None and after is None:
            continue
        show = [("—" if v is None else f"{float(v):,.{digits}f}") for v in (before, after)]
        rows.append((name, *show))
    return rows


def fact_lines(metrics: dict) -> list[str]:
    facts = []
    if metrics.get("best_epoch") is not None:
        run = metrics.get("epochs_run") or (metrics.get("hyperparameters") or {}).get(
            "num_train_epochs"
        )
        of = f" of {_value(float(run))} run" if _is_number(run) and run else ""
        facts.append(f"Best checkpoint: epoch {_value(float(metrics['best_epoch']))}{of}")
    if metrics.get("train_tokens"):
        facts.append(f"Training tokens per epoch: {int(metrics['train_tokens']):,}")
    if metrics.get("device"):
        facts.append(f"Trained on: {_value(metrics['device'])}")
    seconds = (metrics.get("timings") or {}).get("train_seconds")
    if isinstance(seconds, int | float):
        facts.append(f"Training time: {seconds:,.0f} s")
    return facts


def data_dates(stats: dict) -> dict[str, str] | None:
    """The first and last days of the posts trained on (``update`` records them in
    stats.json), or None when not known."""
    dates = stats.get("dates")
    if not isinstance(dates, dict):
        return None
    first, last = dates.get("first"), dates.get("last")
    if not (isinstance(first, str) and isinstance(last, str)):
        return None
    return {"first": first[:10], "last": last[:10]}


def update_summary(metrics: dict) -> str | None:
    """What ``huggingtweets update`` did last, in a sentence, or None if never run."""
    updates = metrics.get("updates")
    last = updates[-1] if isinstance(updates, list) and updates else None
    if not isinstance(last, dict) or not all(
        _is_number(last.get(k)) for k in ("new_train", "replayed")
    ):
        return None
    times = "once" if len(updates) == 1 else f"{len(updates)} times"
    when = f", the latest on {last['at'][:10]}" if isinstance(last.get("at"), str) else ""
    return (
        f"Kept up to date ({times}{when}): the previous version of this model went on "
        f"training on {int(last['new_train']):,} new posts and {int(last['replayed']):,} "
        'older ones (replayed so as not to forget them); "before training" below is that '
        "previous version. Earlier versions are kept in the run's history/ folder."
    )


# -- samples and the memorization rate -----------------------------------------------


@dataclass
class CardSamples:
    shown: list[Sample]
    generation: Generation | None
    ngram: int | None = None  # the memorization guard's run length, when it checked


def draw_samples(
    generator: Generator, shown: int, checked: int, seed: int, prompt: str = DEFAULT_PROMPT
) -> CardSamples:
    """``checked`` samples measure the memorization rate; the card shows ``shown`` of them,
    those the guard did not flag first (flagged ones are marked if they must be shown)."""
    if shown <= 0:
        return CardSamples([], None)
    options = GenerateOptions(num_return_sequences=max(shown, checked), seed=seed)
    generation = generator.generate(prompt, options)
    ordered = sorted(generation.samples, key=lambda s: s.flagged)  # stable: unflagged first
    ngram = generator.guard.n if generator.guard is not None else None
    return CardSamples(ordered[:shown], generation, ngram)


def memorization_summary(samples: CardSamples) -> dict:
    generation = samples.generation
    if generation is None or not generation.checked or samples.ngram is None:
        return {"checked": False}
    total, flagged = len(generation.samples), generation.flagged
    return {
        "checked": True,
        "total": total,
        "flagged": flagged,
        "rate": f"{flagged / total:.0%}",
        "ngram": samples.ngram,
    }


# -- writing -------------------------------------------------------------------------


def _read_json(path: Path, missing: str) -> dict:
    """A JSON object from ``path``: anything else is one line saying what it is."""
    if not path.exists():
        raise HuggingtweetsError(missing)
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise HuggingtweetsError(f"{path} is not valid JSON ({exc}); run the stage again") from None
    if not isinstance(data, dict):
        raise HuggingtweetsError(
            f"{path} holds {_json_kind(data)}, not a JSON object; run the stage again"
        )
    return data


def _json_kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# metrics.json fields the card computes with, and what each must be.
_METRIC_NUMBERS = (
    "eval_loss_before",
    "eval_loss_after",
    "perplexity_before",
    "perplexity_after",
    "best_epoch",
    "epochs_run",
    "train_tokens",
)
_METRIC_OBJECTS = ("hyperparameters", "timings")


def _check_metrics(metrics: dict, path: Path) -> dict:
    """``metrics.json`` as the card reads it: numbers where it computes, objects where it
    looks inside (a hand-edited or foreign file must not end in a traceback)."""
    for key in _METRIC_NUMBERS:
        value = metrics.get(key)
        if value is not None and not _is_number(value):
            raise HuggingtweetsError(
                f"{path}: {key} must be a number, not {_json_kind(value)} ({value!r:.40}); "
                "fix the file or train again"
            )
    for key in _METRIC_OBJECTS:
        value = metrics.get(key)
        if value is not None and not isinstance(value, dict):
            raise HuggingtweetsError(
                f"{path}: {key} must be a JSON object, not {_json_kind(value)}; fix the file "
                "or train again"
            )
    return metrics


def _check_stats(stats: object, path: Path) -> dict:
    """``stats.json`` as the card needs it: a list of accounts with valid handles (a
    handle lands in file names, URLs and the preview picture)."""
    accounts = stats.get("accounts") if isinstance(stats, dict) else None
    if not accounts or not isinstance(accounts, list):
        raise HuggingtweetsError(f"{path} lists no accounts; run `huggingtweets prepare` again")
    categories = stats.get("categories", ["retweets", "short", "kept"])  # as stats_rows
    try:
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise HuggingtweetsError(f"categories must be a list of names ({categories!r:.60})")
        for account in accounts:
            handle = account.get("handle") if isinstance(account, dict) else None
            if not isinstance(handle, str):
                raise HuggingtweetsError(f"an account without a handle ({account!r:.60})")
            check_handle(handle)
            if not isinstance(account.get("platform"), str):
                raise HuggingtweetsError(f"account {handle!r} has no platform name")
            for key in ("downloaded", *categories):
                count = account.get(key, 0)
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise HuggingtweetsError(
                        f"account {handle!r}: {key} must be a count of posts (got {count!r:.40})"
                    )
    except HuggingtweetsError as exc:
        raise HuggingtweetsError(
            f"{path}: {exc}; fix the file or run `huggingtweets prepare` again"
        ) from None
    return stats


def _kept_texts(run: RunDir) -> Iterator[str]:
    """The kept posts' texts, each once (training rows repeat posts to balance accounts),
    in the dataset's shuffled order: its first posts are a fair sample of all."""
    seen: set[tuple[str, str]] = set()
    for path in (run.train_path, run.valid_path):
        if not path.exists():
            continue
        for _, row in iter_jsonl(path):
            key = (repr(row.get("handle")), repr(row.get("id")))  # any JSON value, hashable
            if isinstance(row.get("text"), str) and key not in seen:
                seen.add(key)
                yield row["text"]


def _people(stats: dict) -> list[Person]:
    return [
        Person(a["handle"], one_line(a.get("display_name") or a["handle"]), a.get("avatar_url"))
        for a in stats["accounts"]
    ]


def _avatar_urls(people: list[Person], model_dir: Path, repo_id: str) -> list[str]:
    """Each account's avatar URL; an account without one gets its initials picture, saved
    beside the card and linked where the Hub will serve it."""
    urls = []
    for i, person in enumerate(people, 1):
        url = css_url(person.avatar_url)
        if url is None:
            name = f"avatar-{i}.png"
            atomic_write(model_dir / name, png_bytes(initials_avatar(person, 184)))
            url = f"https://huggingface.co/{repo_id}/resolve/main/{name}"
        urls.append(url)
    return urls


def render_card(
    stats: dict,
    metrics: dict,
    model_dir: Path,
    *,
    repo_id: str,
    samples: CardSamples,
    avatar_urls: list[str],
    language: str | None,
    scorecard: dict | None = None,
) -> str:
    from huggingface_hub import ModelCardData

    from huggingtweets.model.speakers import card_speakers

    people = _people(stats)
    handles = [p.handle for p in people]
    base = base_model(metrics, model_dir)
    data = ModelCardData(
        language=language,
        thumbnail=f"https://huggingface.co/{repo_id}/resolve/main/{PREVIEW_FILE}",
        tags=["huggingtweets"],
        widget=[{"text": default_prompt(language)}],
        # The Hub validates base_model against its models: only a Hub base is named.
        base_model=base.name if base.kind == "hub" else None,
        pipeline_tag="text-generation",
        library_name="transformers",
    )
    front_matter = data.to_yaml(
        original_order=["language", "thumbnail", "tags", "widget", "base_model", "pipeline_tag"]
    )
    posts_word = row_labels({a["platform"] for a in stats["accounts"]})["kept"]
    posts_word = posts_word.removesuffix(" kept").lower()
    return _template().render(
        front_matter=front_matter,
        avatars=[{"url": u} for u in avatar_urls]
        + [{"url": ""}] * (AVATAR_SLOTS - len(avatar_urls)),
        label="🤖 AI CYBORG 🤖" if len(people) > 1 else "🤖 AI BOT 🤖",
        names=" & ".join(p.name for p in people),
        handles="-".join(handles),
        at_handles=" & ".join(f"@{h}" for h in handles),
        posts_word=posts_word,
        column_names=[p.name for p in people],
        rows=stats_rows(stats),
        base=base,
        hyperparameters=hyperparameter_rows(metrics),
        evaluation=evaluation_rows(metrics),
        facts=fact_lines(metrics),
        dates=data_dates(stats),
        update=update_summary(metrics),
        loss_curve=(model_dir / LOSS_CURVE_FILE).exists(),
        shown=samples.shown,
        prompt=default_prompt(language),
        seed=samples.generation.seed if samples.generation else None,
        memorization=memorization_summary(samples),
        guard=(model_dir / GUARD_FILE).exists(),
        repo_id=repo_id,
        scorecard=scorecard,  # evaluate's "Does it sound like them?", when evaluated
        speakers=card_speakers(model_dir),  # a cyborg trained with --speaker-tokens
        wandb=wandb_links(metrics),
        local=run_locally(model_dir, default_prompt(language)),  # after export --gguf
    )


_HOW_TO = re.compile(r'^huggingtweets generate (\S+) "(.*)" -n 5$', re.MULTILINE)


def _code_literal(text: str) -> Markup:
    """A Python string literal that no backtick in it can end a code block with."""
    return Markup(orjson.dumps(text).decode().replace("`", "\\u0060"))


def _modelfile_gguf(model_dir: Path, names: list[str]) -> str | None:
    """The GGUF file model/'s Ollama Modelfile is made FROM (the last one exported)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (model_dir / MODELFILE).read_text(encoding="utf-8").splitlines():
            if line.startswith("FROM ./") and line[7:] in names:
                return line[7:]
    return None


def run_locally(model_dir: Path, prompt: str) -> dict | None:
    """The "Run it locally" section's facts, when a GGUF was exported beside the model:
    its files and the model's own sampling settings (config.json, else the original's)."""
    names = sorted(p.name for p in model_dir.glob(GGUF_GLOB))
    if not names:
        return None
    settings = dict(DEFAULT_SETTINGS)
    try:
        params = orjson.loads((model_dir / "config.json").read_bytes())["task_specific_params"]
        settings.update(params["text-generation"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    numbers = {k: settings[k] for k in ("max_length", "top_p", "temperature")}
    if not isinstance(settings["prefix"], str) or not all(
        _is_number(v) and math.isfinite(v) and v > 0 for v in numbers.values()
    ):  # a config.json edited by hand: the original's settings, as generate falls back
        settings = dict(DEFAULT_SETTINGS)
        numbers = {k: settings[k] for k in numbers}
    return {
        "gguf": names,
        "modelfile": _modelfile_gguf(model_dir, names),
        "start": _code_literal(settings["prefix"] + prompt),
        "prompt": _code_literal(prompt),
        "max_tokens": int(numbers["max_length"]),
        "top_p": float(numbers["top_p"]),
        "temperature": float(numbers["temperature"]),
    }


def update_run_locally(model_dir: Path) -> bool:
    """Write the card's "Run it locally" section again (after an export), the rest of the
    card as it was; False when model/ has no card of this layout to update."""
    path = model_dir / CARD_FILE
    card = path.read_text(encoding="utf-8") if path.exists() else ""
    match = _HOW_TO.search(card)
    end = card.find("\n## Limitations and bias\n")
    if match is None or end < 0:
        return False
    repo_id, prompt = match[1], html.unescape(match[2])
    template = _template()
    context = {"local": run_locally(model_dir, prompt), "repo_id": repo_id, "prompt": prompt}
    section = "".join(template.blocks["run_locally"](template.new_context(context)))
    start = card.find("\n## Run it locally\n")
    atomic_write(path, card[: start if 0 <= start < end else end] + section + card[end:])
    return True


def wandb_links(metrics: dict) -> dict[str, str]:
    """The W&B pages of this model's lineage, as the seeds link them: only when W&B was
    used online (an offline run has no pages yet), and only https URLs."""
    tracking = metrics.get("tracking")
    wandb = tracking.get("wandb") if isinstance(tracking, dict) else None
    if not isinstance(wandb, dict):
        return {}
    return {
        key: url
        for key in ("data_url", "run_url", "model_url")
        if isinstance(url := wandb.get(key), str)
        and url.startswith("https://")
        and not any(c in url for c in ' ()<>"\n')
    }


@dataclass
class CardOptions:
    """What the card shows (``huggingtweets card`` options)."""

    # Each shown sample is one of the max(samples, checked) drawn in one call: the bound
    # keeps that call, and the card, a reasonable size.
    samples: int = option(
        5,
        min=0,
        max=MAX_CARD_SAMPLES,
        help="Sample generations shown on the card (0: none, the model is not loaded).",
    )
    seed: int = option(42, min=0, max=MAX_SEED, help="Seed of the samples.")
    repo_id: str | None = option(
        None,
        metavar="OWNER/NAME",
        help="The model's Hub id, for the how-to-use snippet and picture links.",
        default_help="huggingtweets/<handles joined by ->",
    )
    checked: int = option(
        DEFAULT_CHECKED,
        min=0,
        max=MAX_SAMPLES,
        cli=False,
        help="Samples drawn to measure the memorization rate (the shown ones among them).",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.repo_id is not None:
            if contains_secret(self.repo_id):
                raise OptionError("repo_id", SECRET_IN_ID)
            try:
                check_repo_id(self.repo_id)
            except HuggingtweetsError:
                raise OptionError(
                    "repo_id",
                    "must be a Hugging Face model id: owner/name with letters, digits, '-', "
                    f"'_' and '.' (got {self.repo_id!r})",
                ) from None


def _read_run(run: RunDir) -> tuple[dict, dict]:
    """(the dataset's statistics, the training metrics or {}), checked; a run without a
    dataset or a trained model is refused."""
    stats = _check_stats(
        _read_json(
            run.stats_path,
            f"{run.root} has no dataset: run `huggingtweets prepare SOURCE... --out {run.root}` "
            "first",
        ),
        run.stats_path,
    )
    if not (run.model_dir / "config.json").exists():
        raise HuggingtweetsError(
            f"{run.root} has no trained model yet: run `huggingtweets train {run.root}` first"
        )
    metrics = (
        _check_metrics(_read_json(run.metrics_path, ""), run.metrics_path)
        if run.metrics_path.exists()
        else {}
    )
    return stats, metrics


def _write_preview(
    stats: dict, drawn: CardSamples, model_dir: Path, repo_id: str, language: str | None
) -> list[str]:
    """Draw preview.png (the accounts' avatars and one sample); return the avatars' URLs."""
    people = _people(stats)[:AVATAR_SLOTS]
    avatar_urls = _avatar_urls(people, model_dir, repo_id)
    # The fullest sample that fits the picture's four lines (about 40 words), not a copy.
    candidates = [s for s in drawn.shown if not s.flagged] or drawn.shown
    preview_post = (
        max(candidates, key=lambda s: min(len(s.text.split()), 40)).text if candidates else None
    )
    picture = draw_preview(
        _people(stats), preview_post, avatars=[avatar(p, 150) for p in people], language=language
    )
    atomic_write(model_dir / PREVIEW_FILE, png_bytes(picture))
    return avatar_urls


def write_card(
    run_dir: Path | str | RunDir,
    options: CardOptions | None = None,
    *,
    samples: int | None = None,
    seed: int | None = None,
    repo_id: str | None = None,
    checked: int | None = None,
    generator: Generator | None = None,
) -> Path:
    """Write ``RUN_DIR/model/README.md`` and ``preview.png``; return the card's path.

    ``options.samples`` generations are shown (0: none, and the model is not loaded),
    drawn from ``max(samples, checked)`` that measure the memorization rate. The keyword
    arguments set single options (over ``options``). ``generator`` reuses a model already
    loaded from this run.
    """
    given = {"samples": samples, "seed": seed, "repo_id": repo_id, "checked": checked}
    given = {key: value for key, value in given.items() if value is not None}
    options = dataclasses.replace(options or CardOptions(), **given)
    samples, seed, repo_id, checked = (
        options.samples,
        options.seed,
        options.repo_id,
        options.checked,
    )
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    stats, metrics = _read_run(run)
    model_dir = run.model_dir
    handles = [a["handle"] for a in stats["accounts"]]
    repo_id = check_repo_id(repo_id or default_repo_id(handles))

    if samples > 0 and generator is None:
        generator = Generator.load(model_dir)
    language = main_language(stats, _kept_texts(run))  # the samples' prompt follows it
    drawn = (
        draw_samples(generator, samples, checked, seed, default_prompt(language))
        if samples > 0
        else CardSamples([], None)
    )

    avatar_urls = _write_preview(stats, drawn, model_dir, repo_id, language)
    card = render_card(
        stats,
        metrics,
        model_dir,
        repo_id=repo_id,
        samples=drawn,
        avatar_urls=avatar_urls,
        language=language,
        scorecard=_scorecard(run),
    )
    path = model_dir / CARD_FILE
    atomic_write(path, card)
    return path


def _scorecard(run: RunDir) -> dict | None:
    """evaluate's results for the card, when evaluation.json is of the model in model/."""
    from huggingtweets.evaluate.evaluation import read_evaluation
    from huggingtweets.evaluate.report import card_section

    evaluation = read_evaluation(run)
    if evaluation is None:
        return None
    try:
        return card_section(evaluation, run.model_dir)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):  # edited by hand
        raise HuggingtweetsError(
            f"{run.output_dir / 'evaluation.json'} is damaged: run `huggingtweets evaluate "
            f"{run.root}` again, or delete it"
        ) from None
