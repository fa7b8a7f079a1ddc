"""Speakers in a cyborg: one special token per account, so a bot of 2-3 accounts can write
as one of them (``train --speaker-tokens``, ``generate --as HANDLE``).

Training puts the account's token (``<|@handle|>``) after the separator, before each of
its posts: ``<|endoftext|><|@romeo|>But soft, what light …``. Generation puts the chosen
account's token at the same place, after the prefix and before the prompt; decoding skips
special tokens, so it never shows. The speakers (handle, token, share of the training
posts) are recorded in ``config.json``'s ``task_specific_params["speakers"]``: the file
every copy of the model has, the Hub's included (pipelines only read their own task's
entry there, so the extra key changes nothing for them).

``evaluate.attribution`` measures whether it works: a classifier trained on the accounts'
real held-out posts says whose each ``--as`` sample is.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import iter_jsonl

SPEAKERS_KEY = "speakers"  # in config.json's task_specific_params
MIN_ACCOUNTS = 2
# Held-out posts per account below which a classifier of accounts learns nothing worth
# reporting (the demo's sample holds 14 each).
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
