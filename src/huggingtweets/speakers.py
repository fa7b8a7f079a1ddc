"""Speakers in a cyborg: one special token per account, so a bot of 2-3 accounts can write
as one of them (``train --speaker-tokens``, ``generate --as HANDLE``).

Training puts the account's token (``<|@handle|>``) after the separator, before each of
its posts: ``<|endoftext|><|@romeo|>But soft, what light …``. Generation puts the chosen
account's token at the same place, after the prefix and before the prompt; decoding skips
special tokens, so it never shows. The speakers (handle, token, share of the training
posts) are recorded in ``config.json``'s ``task_specific_params["speakers"]``: the file
every copy of the model has, the Hub's included (pipelines only read their own task's
entry there, so the extra key changes nothing for them).

``attribution`` measures whether it works: a classifier trained on the accounts' real
held-out posts says whose each ``--as`` sample is.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import HuggingtweetsError
from .records import iter_jsonl

SPEAKERS_KEY = "speakers"  # in config.json's task_specific_params
MIN_ACCOUNTS = 2
# Held-out posts per account below which a classifier of accounts learns nothing worth
# reporting (the demo's sample holds 14 each).
MIN_ATTRIBUTION_POSTS = 5
_TOKEN_RE = re.compile(r"<\|@[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}\|>")  # records' handles


def speaker_token(handle: str) -> str:
    return f"<|@{handle}|>"


@dataclass(frozen=True)
class Speaker:
    handle: str
    token: str
    share: float  # of the training posts (rows, after balancing): what the model saw


def dataset_handles(path: Path) -> list[str]:
    """The account of every row of a dataset file, in order (``prepare`` writes it)."""
    handles = []
    for line_number, row in iter_jsonl(path):
        handle = row.get("handle") if isinstance(row, dict) else None
        if not isinstance(handle, str) or not handle:
            raise HuggingtweetsError(
                f"{path}, line {line_number}: speaker tokens need each post's account "
                "(a handle string); prepare the run again (huggingtweets prepare --out RUN_DIR)"
            )
        handles.append(handle)
    return handles


def training_speakers(handles: Sequence[str]) -> list[Speaker]:
    """One speaker per account of the training rows, in the order they first appear,
    with its share of the rows. One account is refused: a token that never changes tells
    the model nothing, and ``--as`` would have no one else to choose."""
    counts = Counter(handles)
    if len(counts) < MIN_ACCOUNTS:
        only = f" (@{next(iter(counts))})" if counts else ""
        raise HuggingtweetsError(
            f"--speaker-tokens needs a bot of 2-3 accounts; this dataset has "
            f"{len(counts)}{only}: leave the option out for one account"
        )
    total = len(handles)
    return [Speaker(h, speaker_token(h), counts[h] / total) for h in counts]


def add_speaker_tokens(tokenizer, model, speakers: Sequence[Speaker]) -> list[int]:
    """The speakers' tokens added to ``tokenizer`` as special tokens and to ``model``'s
    embeddings; returns their ids. Each new row starts as the mean of the old rows (the
    same for every speaker), so a row that differs after training was trained."""
    import torch

    tokenizer.add_special_tokens(
        {"additional_special_tokens": [s.token for s in speakers]},
        replace_extra_special_tokens=False,
    )
    ids = tokenizer.convert_tokens_to_ids([s.token for s in speakers])
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for layer in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
            weight = layer.weight
            if weight.shape[0] > old:  # an output layer tied to the input is the same tensor
                weight[ids] = weight[:old].mean(0, keepdim=True).to(weight.dtype)
    return ids


def record_speakers(config, speakers: Sequence[Speaker]) -> None:
    params = dict(getattr(config, "task_specific_params", None) or {})
    params[SPEAKERS_KEY] = [asdict(s) for s in speakers]
    config.task_specific_params = params


def model_speakers(config, tokenizer, name: str) -> list[Speaker]:
    """The speakers ``config.json`` records ([] for a model trained without speaker
    tokens), checked: a config.json is as untrusted as any input."""
    params = getattr(config, "task_specific_params", None)
    raw = params.get(SPEAKERS_KEY) if isinstance(params, dict) else None
    if raw is None:
        return []
    problem = f"{name}: its config.json's task_specific_params {SPEAKERS_KEY!r} is damaged"
    if not isinstance(raw, list):
        raise HuggingtweetsError(f"{problem} (not a list); train the model again")
    speakers = []
    vocabulary = tokenizer.get_vocab()
    for entry in raw:
        handle = entry.get("handle") if isinstance(entry, dict) else None
        token = entry.get("token") if isinstance(entry, dict) else None
        share = entry.get("share") if isinstance(entry, dict) else None
        if not (
            isinstance(handle, str)
            and isinstance(token, str)
            and token in vocabulary
            and isinstance(share, int | float)
            and math.isfinite(share)
            and share >= 0
        ):
            raise HuggingtweetsError(
                f"{problem} ({entry!r} is not a handle, a token of its tokenizer and a share); "
                "train the model again"
            )
        speakers.append(Speaker(handle, token, float(share)))
    return speakers


def find_speaker(speakers: Sequence[Speaker], wanted: str, name: str) -> Speaker:
    """The speaker ``wanted`` names (a leading "@" and the case do not matter, as on
    the platforms), or a one-line error listing the trained ones."""
    if not speakers:
        raise HuggingtweetsError(
            f"--as {wanted}: {name} was trained without speaker tokens, so it cannot write as "
            "one account; train it again with --speaker-tokens (2-3 accounts), or leave out --as"
        )
    key = wanted.removeprefix("@").casefold()
    for speaker in speakers:
        if speaker.handle.casefold() == key:
            return speaker
    known = ", ".join(f"@{s.handle}" for s in speakers)
    raise HuggingtweetsError(f"--as {wanted}: not one of {name}'s accounts; choose {known}")


def draw_speakers(speakers: Sequence[Speaker], count: int, seed: int) -> list[Speaker]:
    """Who writes each of ``count`` samples when no one is asked for: drawn with the
    accounts' shares of the training posts, under ``seed``.

    Drawn here rather than left to the model (which learnt to follow the separator with a
    speaker token) because a prompt comes after the token: the model never gets to choose
    before "My dream is". Same shares as the model's own choice, but every sample knows
    its speaker, and a seed gives the same mix. A ``random.Random`` of its own: the draws
    do not move torch's random numbers, which the sampling then uses as before.
    """
    rng = random.Random(f"speakers:{seed}")
    weights = [s.share for s in speakers]
    if not any(weights):
        weights = [1.0] * len(speakers)
    return rng.choices(list(speakers), weights=weights, k=count)


# -- does --as work? ---------------------------------------------------------------------


def attribution(
    real: Mapping[str, Sequence[str]], written: Mapping[str, Sequence[str]], seed: int
) -> dict:
    """How often a classifier of accounts, trained on their real held-out posts, gives
    each ``--as`` sample to the account it was written as.

    The same classifier as "real or bot?" (``style.real_or_bot``: logistic regression on
    TF-IDF character 1-4-grams), here with one class per account, its classes weighted so
    that the account with more held-out posts is not favoured; it never sees the samples
    it judges. Chance is 1/k for k accounts; the accuracy comes with its 95 % Wilson
    interval, and per account. ``real_accuracy``: the same classifier on the real held-out
    posts, cross-validated, the most the samples can score; with a few dozen held-out
    posts it is often near chance itself, and then the samples' figure says nothing.
    """
    from .style import wilson_interval

    handles = [h for h in written if written[h]]
    few = {h: len(real.get(h, ())) for h in handles if len(real.get(h, ())) < MIN_ATTRIBUTION_POSTS}
    if len(handles) < MIN_ACCOUNTS or few:
        why = (
            f"held-out posts of {', '.join(f'@{h} ({n})' for h, n in few.items())}: "
            f"a classifier of accounts needs at least {MIN_ATTRIBUTION_POSTS} of each"
            if few
            else "samples of fewer than 2 accounts"
        )
        return {"accounts": len(handles), "skipped": f"too few {why}"}
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = [t for h in handles for t in real[h]]
    labels = [h for h in handles for _ in real[h]]
    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced"),
    )
    folds = min(5, *(len(real[h]) for h in handles))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    on_real = cross_val_predict(classifier, texts, labels, cv=cv)
    real_right = sum(p == h for p, h in zip(on_real, labels, strict=True))
    real_low, real_high = wilson_interval(real_right, len(labels))
    classifier.fit(texts, labels)
    per_account, correct, total = {}, 0, 0
    for handle in handles:
        predicted = list(classifier.predict(list(written[handle])))
        right = sum(p == handle for p in predicted)
        low, high = wilson_interval(right, len(predicted))
        per_account[handle] = {
            "samples": len(predicted),
            "held_out": len(real[handle]),
            "accuracy": right / len(predicted),
            "ci_low": low,
            "ci_high": high,
        }
        correct, total = correct + right, total + len(predicted)
    low, high = wilson_interval(correct, total)
    chance = 1 / len(handles)
    if real_low <= chance:
        verdict = (
            "cannot judge: the classifier tells the accounts' own held-out posts apart no "
            "better than chance (more held-out posts would help)"
        )
    else:
        verdict = attribution_verdict(low, high, chance)
    return {
        "accounts": len(handles),
        "samples": total,
        "accuracy": correct / total,
        "chance": chance,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "real_accuracy": real_right / len(labels),
        "real_ci_low": real_low,
        "real_ci_high": real_high,
        "real_folds": folds,
        "per_account": per_account,
    }


def attribution_verdict(low: float, high: float, chance: float) -> str:
    """What a person should read into the accuracy's interval against chance."""
    if high < chance:
        return "worse than chance: the samples sound like the other accounts"
    if low <= chance:
        return "no better than chance: --as does not change whose voice it is"
    if (low + high) / 2 >= 0.9:
        return "each account's voice is recognised almost always"
    return "better than chance: --as mostly writes in the account's voice"


def card_speakers(model_dir: Path) -> dict | None:
    """What the card's "How to use" needs of a speaker-token model: its separator and its
    speakers, read from config.json (None for a model without speakers, or no config)."""
    import orjson

    try:
        config = orjson.loads((Path(model_dir) / "config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    params = config.get("task_specific_params") if isinstance(config, dict) else None
    raw = params.get(SPEAKERS_KEY) if isinstance(params, dict) else None
    if not isinstance(raw, list) or not raw:
        return None
    # Only tokens of our own making: shown unescaped, in code, they must hold no markup.
    speakers = [
        {"handle": e["handle"], "token": e["token"]}
        for e in raw
        if isinstance(e, dict)
        and isinstance(e.get("handle"), str)
        and _TOKEN_RE.fullmatch(str(e.get("token")))
        and e["token"] == speaker_token(e["handle"])
    ]
    if not speakers:
        return None
    generation = params.get("text-generation")
    prefix = generation.get("prefix") if isinstance(generation, dict) else None
    prefix = prefix if isinstance(prefix, str) else ""
    # A JSON string is a Python string literal too: quotes and backslashes escaped.
    literal = json.dumps(prefix + speakers[0]["token"])
    return {"speakers": speakers, "prefix_literal": literal}
