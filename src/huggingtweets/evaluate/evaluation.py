"""The evaluate stage: does the bot sound like the account? → RUN_DIR/evaluation.json.

A validation loss means little to the person the bot imitates, so this stage answers in
their terms, with numbers that are computed, never estimated by a model of ours:

- the model writes N posts on its own (no prompt: the separator alone, its own sampling
  settings), checked by the memorization guard: how many copy a training post;
- those posts are compared with the held-out posts (``dataset/valid.jsonl``, which
  training never saw) by ``style.compare``: lengths, emoji, hashtags, mentions,
  questions, exclamations, capitals, languages, diversity, favourite words, and a "real
  or bot?" classifier;
- the perplexity of the base model and of the fine-tuned one on the held-out posts;
- for several accounts, the same for each account's held-out posts;
- for a cyborg trained with speaker tokens: the samples are written ``--as`` each account
  in turn (the same seed for each, so only the speaker differs), each account's posts are
  compared with its own samples, and a classifier of accounts trained on the held-out
  posts says how often a sample is attributed to the account it was written as
  (``attribution.attribution``; chance is 1/k).

It also draws ``model/evaluation.png``; the card shows both in "Does it sound like them?"
for as long as the model is the one evaluated (``model_fingerprint``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import MAX_SEED, check_options, option
from huggingtweets.core.records import iter_jsonl
from huggingtweets.core.runs import RunDir, write_json
from huggingtweets.evaluate.style import MIN_POSTS, compare
from huggingtweets.generate.generator import DRAW_BATCH, MAX_SAMPLES, GenerateOptions, Generator

STAGE = "evaluate"
FORMAT_VERSION = 1
DEFAULT_SAMPLES = 200
EXAMPLES = 5  # samples kept in evaluation.json, to read
_FINGERPRINT_BYTES = 1 << 16


@dataclass
class EvaluateOptions:
    """How to evaluate (``huggingtweets evaluate`` options)."""

    samples: int = option(
        DEFAULT_SAMPLES,
        min=MIN_POSTS,
        max=MAX_SAMPLES,
        help="Posts the model writes, to compare with the held-out posts.",
    )
    seed: int = option(42, min=0, max=MAX_SEED, help="Seed of the samples and the classifier.")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class EvaluateResult:
    path: Path  # evaluation.json
    picture: Path | None
    evaluation: dict
    generator: Generator  # the model as loaded, for the card or more samples


def evaluation_path(run: RunDir) -> Path:
    return run.evaluation_path


def model_fingerprint(model_dir: Path) -> str:
    """Which model was evaluated: the weights' sizes and their first and last bytes (and
    the guard's, whose key is new at every training), so retraining shows; a copied run
    keeps it. Reads 128 KiB a file, not gigabytes."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
            handle.seek(max(0, size - _FINGERPRINT_BYTES))
            digest.update(handle.read())
    return digest.hexdigest()


# Under about a minute for the default samples: the demo's tiny model (4M parameters)
# takes 40 s on a busy 2-core CPU, most of it sampling; sampling time grows with the size.
QUICK_PARAMETERS = {"cpu": 20_000_000, "gpu": 2_000_000_000}


def quick_to_evaluate(model_dir: Path) -> bool:
    """Whether ``evaluate`` with the default samples should take under about a minute
    here: what a pipeline runs after training unless told otherwise."""
    import torch
    from safetensors import safe_open

    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        if path.name == "memorization_guard.safetensors":
            continue
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():  # noqa: SIM118 (not a dict)
                total += math.prod(handle.get_slice(key).get_shape())
    return total <= QUICK_PARAMETERS["gpu" if torch.cuda.is_available() else "cpu"]


# -- the held-out posts ------------------------------------------------------------------


def held_out_posts(run: RunDir) -> dict[str, list[str]]:
    """Each account's held-out posts, in the accounts' order of ``stats.json``."""
    if not run.valid_path.exists():
        raise HuggingtweetsError(
            f"{run.root} has no dataset/valid.jsonl: run `huggingtweets prepare --out "
            f"{run.root}` and train first"
        )
    posts: dict[str, list[str]] = {}
    stats = _json_object(run.stats_path)
    accounts = stats.get("accounts")
    if isinstance(accounts, list):
        for account in accounts:
            if isinstance(account, dict) and isinstance(account.get("handle"), str):
                posts[account["handle"]] = []
    for line, row in iter_jsonl(run.valid_path):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise HuggingtweetsError(
                f"{run.valid_path}, line {line}: expected an object with a text string; "
                "prepare the run again"
            )
        posts.setdefault(str(row.get("handle") or "?"), []).append(text)
    return {handle: texts for handle, texts in posts.items() if texts}


def _json_object(path: Path) -> dict:
    """A JSON object from ``path``, or {} when there is none: stats.json and metrics.json
    are only hints here (the accounts' order, training's losses)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def check_enough(posts: dict[str, list[str]], run: RunDir) -> None:
    total = sum(map(len, posts.values()))
    if total < MIN_POSTS:
        raise HuggingtweetsError(
            f"{run.valid_path} holds {total} held-out post{'s' if total != 1 else ''}; telling "
            f"real posts from the bot's needs at least {MIN_POSTS}: prepare again with a "
            "larger --validation-split-percentage, or with more posts"
        )


# -- perplexity --------------------------------------------------------------------------


def held_out_loss(
    model,
    tokenizer,
    texts: list[str],
    block_size: int,
    batch: int = 4,
    speaker_ids: list[int] | None = None,
) -> float:
    """The mean loss per predicted token over ``texts`` packed as training packs them
    (the separator before each post, blocks of ``block_size``): what ``train`` reports as
    the validation loss, computed in fp32. ``speaker_ids``: each post's speaker token, as
    a speaker-token model was trained; given to the model, not counted as predicted (so
    that the loss is over the same tokens as the base model's)."""
    import torch
    import torch.nn.functional as F

    from huggingtweets.train.packing import collate_blocks, pack_blocks

    blocks, _ = pack_blocks(texts, tokenizer, block_size, speaker_ids)
    speakers = torch.tensor(sorted(set(speaker_ids or ())), dtype=torch.long)
    collate = collate_blocks(tokenizer.pad_token_id)
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(blocks), batch):
            rows = collate([{"input_ids": b} for b in blocks[start : start + batch]])
            rows = {k: v.to(model.device) for k, v in rows.items()}
            logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"])
            logits = logits.logits[:, :-1].float()
            labels = rows["labels"][:, 1:]
            if speaker_ids:
                labels = labels.masked_fill(torch.isin(labels, speakers.to(labels.device)), -100)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            ).item()
            count += int((labels != -100).sum())
    return total / count if count else float("nan")


def _perplexity(loss: float | None) -> float | None:
    return None if loss is None or not math.isfinite(loss) else math.exp(min(loss, 50.0))


def _local_base(run: RunDir, metrics: dict) -> Path | None:
    """The base model's folder when it is here without the network: the run's tiny base,
    a local folder, or a Hub model in the cache."""
    name = str(metrics.get("base_model") or "")
    kind = metrics.get("base_model_type")
    if kind == "tiny" or name == "tiny":
        folder = run.output_dir / "tiny-base"
        return folder if (folder / "config.json").exists() else None
    if kind == "local" or Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        return folder if (folder / "config.json").exists() else None
    if not name:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def perplexities(
    run: RunDir, generator: Generator, posts: dict[str, list[str]], metrics: dict, reporter
) -> dict[str, dict]:
    """Per group ("all" and each account): the base model's and the fine-tuned model's
    perplexity on the held-out posts. The base is loaded when it is here (the tiny base,
    a folder, the Hub cache); otherwise only the overall value training measured."""
    from huggingtweets.model.loading import context_length, load_causal_lm, load_tokenizer

    groups = {"all": [t for texts in posts.values() for t in texts]}
    if len(posts) > 1:
        groups.update(posts)
    block = (metrics.get("hyperparameters") or {}).get("block_size")
    context = context_length(generator.model.config) or 1024
    block = block if isinstance(block, int) and 8 <= block <= context else min(256, context)
    ids = _speaker_ids(generator, posts)
    tuned = {
        g: held_out_loss(
            generator.model,
            generator.tokenizer,
            t,
            block,
            speaker_ids=None if ids is None else [ids[h] for h in _handles(g, posts)],
        )
        for g, t in groups.items()
    }
    base: dict[str, float | None] = {g: None for g in groups}
    source = "not available"
    folder = _local_base(run, metrics)
    if folder is not None:
        reporter.info(STAGE, f"the base model's perplexity ({folder.name})")
        try:
            model = load_causal_lm(folder).to(generator.model.device).eval()
            tokenizer = load_tokenizer(folder)
        except HuggingtweetsError as exc:  # pickle-only weights, damaged files ...
            reporter.warning(STAGE, f"the base model could not be loaded again: {exc}")
        else:
            base = {g: held_out_loss(model, tokenizer, t, block) for g, t in groups.items()}
            source = "recomputed"
            del model
    if source != "recomputed" and isinstance(metrics.get("eval_loss_before"), int | float):
        base["all"] = float(metrics["eval_loss_before"])
        source = "metrics.json (eval_loss_before)"
    return {
        group: {
            "base": _perplexity(base[group]),
            "fine_tuned": _perplexity(tuned[group]),
            "base_loss": base[group],
            "fine_tuned_loss": tuned[group],
            "base_source": source if base[group] is not None else "not available",
        }
        for group in groups
    }


def _speaker_ids(generator: Generator, posts: dict[str, list[str]]) -> dict[str, int] | None:
    """Each account's speaker token id, when the model has one for every account."""
    tokens = {s.handle: s.token for s in getattr(generator, "speakers", ())}
    if not tokens or any(h not in tokens for h in posts):
        return None
    return {h: generator.tokenizer.convert_tokens_to_ids(tokens[h]) for h in posts}


def _handles(group: str, posts: dict[str, list[str]]) -> list[str]:
    """The account of each post of a group ("all": every account's, in order)."""
    if group != "all":
        return [group] * len(posts[group])
    return [h for h, texts in posts.items() for _ in texts]


# -- samples -----------------------------------------------------------------------------


def write_samples(
    generator: Generator,
    count: int,
    seed: int,
    reporter: Reporter,
    *,
    speaker: str | None = None,
    done: int = 0,
    total: int | None = None,
):
    """``count`` posts written by the model on its own, ``DRAW_BATCH`` at a time (a
    progress event each); reproducible under ``seed``. ``speaker``: written as that
    account; ``done`` of ``total``: where these samples stand in the progress."""
    samples, settings = [], None
    total = count if total is None else total
    reporter.progress(STAGE, done, total, message="writing posts")
    for number, start in enumerate(range(0, count, DRAW_BATCH)):
        reporter.raise_if_cancelled()
        size = min(DRAW_BATCH, count - start)
        options = GenerateOptions(
            num_return_sequences=size, seed=(seed + number) % MAX_SEED, speaker=speaker
        )
        generation = generator.write_posts(options)
        samples.extend(generation.samples)
        settings = generation.settings
        reporter.progress(STAGE, done + start + size, total, message="writing posts")
    return samples, settings


def write_samples_as_each(
    generator: Generator, handles: list[str], count: int, seed: int, reporter: Reporter
):
    """``count`` posts in all, written ``--as`` each account in turn, as many for each
    (the first get one more when it does not divide): the same seed for each account, so
    that only the speaker token differs between them. Returns ({handle: samples}, settings)."""
    by_speaker, settings, done = {}, None, 0
    for i, handle in enumerate(handles):
        size = count // len(handles) + (i < count % len(handles))
        by_speaker[handle], settings = write_samples(
            generator, size, seed, reporter, speaker=handle, done=done, total=count
        )
        done += size
    return by_speaker, settings


def _attribution(posts: dict[str, list[str]], by_speaker: dict[str, list[str]], seed: int):
    from huggingtweets.evaluate.attribution import attribution

    return {"written_as": "each account in turn (--as)", **attribution(posts, by_speaker, seed)}


def memorization(generator: Generator, samples) -> dict:
    if generator.guard is None:
        return {"checked": False}
    verbatim = sum(s.copy is not None and s.copy.kind == "verbatim" for s in samples)
    flagged = sum(s.flagged for s in samples)
    return {
        "checked": True,
        "total": len(samples),
        "flagged": flagged,
        "verbatim": verbatim,
        "runs": flagged - verbatim,
        "rate": flagged / len(samples) if samples else 0.0,
        "ngram": generator.guard.n,
    }


# -- the stage ---------------------------------------------------------------------------


def _write_samples(
    generator: Generator, posts: dict[str, list[str]], options: EvaluateOptions, reporter: Reporter
) -> tuple[list, dict[str, list[str]] | None, dict | None]:
    """(every sample, the non-empty ones by account when the model can be asked to write
    as each, the sampling settings)."""
    if len(posts) < 2 or _speaker_ids(generator, posts) is None:
        samples, settings = write_samples(generator, options.samples, options.seed, reporter)
        return samples, None, settings
    written, settings = write_samples_as_each(
        generator, list(posts), options.samples, options.seed, reporter
    )
    samples = [s for texts in written.values() for s in texts]
    by_speaker = {
        h: [s.text.strip() for s in texts if s.text.strip()] for h, texts in written.items()
    }
    return samples, by_speaker, settings


def _compare_groups(
    posts: dict[str, list[str]], bot: list[str], by_speaker: dict[str, list[str]] | None, seed: int
) -> list[dict]:
    """The style comparison of all held-out posts, then (several accounts) of each."""
    all_posts = [t for texts in posts.values() for t in texts]
    groups = [{"group": "all", "held_out": len(all_posts), **compare(all_posts, bot, seed)}]
    if len(posts) > 1:
        # Written as the account when the model can be asked to (by_speaker), else the mix.
        groups += [
            {
                "group": handle,
                "held_out": len(texts),
                **compare(texts, by_speaker[handle] if by_speaker else bot, seed),
            }
            for handle, texts in posts.items()
        ]
    return groups


def evaluate(
    run_dir: Path | str | RunDir,
    options: EvaluateOptions | None = None,
    *,
    output_dir: Path | str | None = None,
    generator: Generator | None = None,
    reporter: Reporter | None = None,
) -> EvaluateResult:
    """Write RUN_DIR/evaluation.json and model/evaluation.png for the trained model
    (``output_dir``: a trial's, as ``train`` takes it). ``generator`` reuses a model
    already loaded from this run."""
    options = options or EvaluateOptions()
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if output_dir is not None:
        run = run.with_output(output_dir)
    if not (run.model_dir / "config.json").exists():
        raise HuggingtweetsError(
            f"{run.output_dir} has no trained model: run `huggingtweets train {run.root}` first"
        )
    posts = held_out_posts(run)
    check_enough(posts, run)
    metrics = _json_object(run.metrics_path)
    started = time.perf_counter()
    reporter.start(STAGE, f"writing {options.samples} posts to compare", total=options.samples)
    if generator is None:
        generator = Generator.load(run.model_dir)
    samples, by_speaker, settings = _write_samples(generator, posts, options, reporter)
    bot = [s.text.strip() for s in samples if s.text.strip()]
    reporter.info(STAGE, "perplexity on the held-out posts")
    ppl = perplexities(run, generator, posts, metrics, reporter)
    reporter.info(STAGE, "style statistics and the real-or-bot classifier")
    groups = _compare_groups(posts, bot, by_speaker, options.seed)
    for group in groups:
        group["perplexity"] = ppl[group["group"]]
    evaluation = {
        "format": FORMAT_VERSION,
        "model_fingerprint": model_fingerprint(run.model_dir),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": options.seed,
        "samples": len(samples),
        "empty_samples": len(samples) - len(bot),
        "settings": {k: v for k, v in (settings or {}).items() if k != "prefix"},
        "held_out": groups[0]["held_out"],
        "accounts": list(posts),
        "groups": groups,
        "memorization": memorization(generator, samples),
        **({"speakers": _attribution(posts, by_speaker, options.seed)} if by_speaker else {}),
        "examples": [s.text.strip() for s in samples if not s.flagged][:EXAMPLES],
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = evaluation_path(run)
    write_json(path, evaluation)
    from huggingtweets.evaluate.report import plot_evaluation

    picture = run.evaluation_picture_path
    plot_evaluation(evaluation, picture)
    reporter.end(STAGE, f"evaluation written to {path}", path=str(path), evaluation=evaluation)
    return EvaluateResult(path, picture, evaluation, generator)


def read_evaluation(run: RunDir) -> dict | None:
    """evaluation.json when it evaluated the model now in model/, else None (a model
    trained since, a file of another format, a damaged one)."""
    path = evaluation_path(run)
    if not path.exists() or not (run.model_dir / "config.json").exists():
        return None
    try:
        evaluation = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(evaluation, dict) or evaluation.get("format") != FORMAT_VERSION:
        return None
    if evaluation.get("model_fingerprint") != model_fingerprint(run.model_dir):
        return None
    return evaluation
