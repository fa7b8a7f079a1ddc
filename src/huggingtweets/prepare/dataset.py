"""prepare: posts → a clean, split, balanced dataset and huggingtweets' statistics.

Rules (the original's, by default): HTML entities decoded (in the text of platforms that
send them), URLs removed, whitespace collapsed; reposts dropped as ``retweets``; posts
with fewer than three words free of ``http``/``@``/``#`` dropped as ``short``. Beyond the
original, private posts are always dropped (``private``), posts longer than any platform
allows are dropped (``too_long``), and opt-in filters each have their own category.
Every post lands in exactly one category, so ``downloaded`` is always the sum of the
others.
"""

from __future__ import annotations

import functools
import html
import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import orjson

from huggingtweets.core import textrules
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import MAX_SEED, check_options, option
from huggingtweets.core.records import PUBLIC_VISIBILITIES, AccountPosts, Post, dump_jsonl
from huggingtweets.core.runs import (
    RunDir,
    Staging,
    check_writable_dir,
    replace_dir,
    training_lock,
)

if TYPE_CHECKING:
    from huggingtweets.collect.collection import Collection
    from huggingtweets.collect.registry import SourceOptions

STAGE = "prepare"

# Drop categories, in the order a post is tested against them. "retweets" holds every
# repost — X retweets, Mastodon boosts, Bluesky reposts — under the original's name, kept
# for compatibility with stats.json files and the cards (which show the platform's word).
CATEGORIES = (
    "private",
    "retweets",
    "replies",
    "too_long",
    "short",
    "below_min_words",
    "duplicates",
)
# X's long posts, the longest of any platform, hold at most 25,000 characters; the bound
# is four times that so that a real post's HTML entities ("&amp;") and URLs never reach
# it. A longer "post" is a damaged or hostile file: one 20 MB post would fill the dataset,
# the API's answers and a training block (counted as "too_long", before any cleaning).
MAX_POST_CHARS = 100_000
MIN_CHARS = 6_000  # the original refused to train on less text than this ...
WARN_CHARS = 40_000  # ... and warned below this
# The platforms whose text holds HTML entities ("&amp;"), decoded as the original decoded
# tweets: X (export and API) and plain files. Mastodon's sources already turned its HTML
# into text (entities included), Bluesky sends raw text and the sample is plain text:
# decoding those again would turn a written "&amp;" into "&".
ENTITY_PLATFORMS = frozenset({"x", "file"})


@dataclass
class PrepareOptions:
    allow_newlines: bool = option(False, help="Keep line breaks inside posts.")
    drop_replies: bool = option(False, help="Drop replies (counted as 'replies').")
    dedupe: bool = option(False, help="Drop repeated posts (counted as 'duplicates').")
    strip_mentions: bool = option(False, help="Remove @mentions from the text.")
    strip_hashtags: bool = option(False, help="Remove #hashtags from the text.")
    min_words: int = option(
        0,
        min=0,
        max=10_000,
        help="Drop posts with fewer words (counted as 'below_min_words'; 3 always applies).",
    )
    validation_split_percentage: float = option(
        10.0, min=0, max=100, max_open=True, help="Share of each account held out for evaluation."
    )
    seed: int = option(42, min=0, max=MAX_SEED, help="Seed of the split and sampling.")
    balance: bool = option(
        True,
        flag="--no-balance",
        help="Do not oversample smaller accounts up to the largest one.",
    )

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class AccountDataset:
    """One account's cleaned posts and the count of every category."""

    collected: AccountPosts
    counts: Counter
    kept: list[tuple[str, str]]  # (post id, cleaned text)
    edits: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)

    @property
    def handle(self) -> str:
        return self.collected.account.handle

    @functools.cached_property
    def kept_chars(self) -> int:
        return sum(map(len, (text for _, text in self.kept)))


@dataclass
class PrepareResult:
    run: RunDir
    stats: dict
    warnings: list[str]
    examples: list[tuple[str, str]]  # (handle, text) of a few kept posts


class CleanedPosts(msgspec.Struct):
    """What the rules make of some posts: the count of each drop category, the kept
    posts (id, cleaned text, language) in order, and the edits made."""

    counts: dict[str, int]
    kept: list[tuple[str, str, str | None]]
    edits: dict[str, int]


def clean_posts(posts: list[Post], options: PrepareOptions) -> CleanedPosts:
    """Apply every rule but --dedupe (which needs all the posts before it, and so runs in
    ``clean_account``) to ``posts``."""
    private = retweets = replies = too_long = short = below_min_words = 0
    mentions = hashtags = 0
    kept: list[tuple[str, str, str | None]] = []
    keep = kept.append
    min_words = max(options.min_words, textrules.SHORT_WORDS)
    # Local names: this loop runs once per post, 100,000 times for a large export.
    unescape, clean_and_count, entity_platforms = (
        html.unescape,
        textrules.clean_and_count,
        ENTITY_PLATFORMS,
    )
    allow_newlines = options.allow_newlines
    for post in posts:
        # Never, under any option, in a dataset; an unknown visibility counts as private.
        if post.visibility not in PUBLIC_VISIBILITIES:
            private += 1
        elif post.is_repost:
            retweets += 1
        elif options.drop_replies and post.is_reply:
            replies += 1
        elif len(post.text) > MAX_POST_CHARS:
            too_long += 1
        else:
            text = post.text
            if "&" in text and post.platform in entity_platforms:  # "&" first: it is rare
                text = unescape(text)
            text, words = clean_and_count(text, allow_newlines, stop_at=min_words)
            if words < textrules.SHORT_WORDS:
                short += 1
            elif words < min_words:
                below_min_words += 1
            else:
                if options.strip_mentions or options.strip_hashtags:
                    edited = text
                    if options.strip_mentions:
                        stripped = textrules.strip_mentions(edited)
                        mentions += stripped != edited
                        edited = stripped
                    if options.strip_hashtags:
                        stripped = textrules.strip_hashtags(edited)
                        hashtags += stripped != edited
                        edited = stripped
                    if edited != text:  # collapse the spaces a removed word leaves
                        text = textrules.clean_text(edited, allow_newlines)
                keep((post.id, text, post.lang))
    counts = {
        "private": private,
        "retweets": retweets,
        "replies": replies,
        "too_long": too_long,
        "short": short,
        "below_min_words": below_min_words,
    }
    edits = {}
    if options.strip_mentions:
        edits["mentions_stripped"] = mentions
    if options.strip_hashtags:
        edits["hashtags_stripped"] = hashtags
    return CleanedPosts(counts, kept, edits)


def clean_account(collected: AccountPosts, options: PrepareOptions) -> AccountDataset:
    cleaned = clean_posts(collected.posts, options)
    counts = +Counter(cleaned.counts)  # the categories with posts first, then the rest at 0
    counts.update({category: 0 for category in CATEGORIES})  # zero counts stay visible
    edits = +Counter(cleaned.edits)
    edits.update({key: 0 for key in cleaned.edits})
    kept = cleaned.kept
    if options.dedupe:
        seen: set[str] = set()
        unique = []
        for row in kept:
            key = " ".join(row[1].casefold().split())
            if key not in seen:
                seen.add(key)
                unique.append(row)
        counts["duplicates"] = len(kept) - len(unique)
        kept = unique
    counts["kept"] = len(kept)
    languages = Counter(lang for _, _, lang in kept if lang)
    return AccountDataset(collected, counts, [(i, t) for i, t, _ in kept], edits, languages)


def permutation(n: int, *key: object) -> list[int]:
    """A deterministic shuffle of range(n) for a seed and a purpose (numpy: Python's
    random.shuffle took half a second on 100,000 posts)."""
    seed = zlib.crc32(":".join(map(str, key)).encode())
    return np.random.default_rng(seed).permutation(n).tolist()


def split(
    kept: list[tuple[str, str]], percentage: float, seed: int, handle: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Deterministic train / validation split of one account (at least one validation post
    when the percentage is not 0 and there are two posts or more)."""
    order = permutation(len(kept), seed, handle)
    n_valid = round(len(kept) * percentage / 100)
    if percentage > 0 and len(kept) >= 2:
        n_valid = max(1, n_valid)
    valid_ids = set(order[:n_valid])
    train = [kept[i] for i in range(len(kept)) if i not in valid_ids]
    valid = [kept[i] for i in sorted(valid_ids)]
    return train, valid


def balance(train: dict[str, list], seed: int) -> dict[str, list]:
    """Oversample each smaller account up to the character length of the largest, as the
    original did for several accounts, so that a cyborg speaks with every voice."""
    chars = {h: sum(len(t) for _, t in rows) for h, rows in train.items()}
    target = max(chars.values(), default=0)
    out = {}
    for handle, rows in train.items():
        if not rows or chars[handle] >= target:
            out[handle] = list(rows)
            continue
        copies, rest = divmod(target, chars[handle])
        extra = [rows[i] for i in permutation(len(rows), seed, "balance", handle)]
        picked, total = [], 0
        for row in extra:
            if total >= rest:
                break
            picked.append(row)
            total += len(row[1])
        out[handle] = list(rows) * copies + picked
    return out


# The order of the rows in tables and cards: the original's first, then ours.
COUNT_KEYS = (
    "retweets",
    "short",
    *(c for c in CATEGORIES if c not in ("retweets", "short")),
    "kept",
)


def _account_stats(data: AccountDataset, n_train: int, n_valid: int, train_rows: int) -> dict:
    """One account's entry of stats.json. Its only top-level numbers are ``downloaded``
    and the categories, so that ``downloaded == sum(categories)`` can be checked."""
    account = data.collected.account
    return {
        "handle": account.handle,
        "platform": account.platform,
        "display_name": account.display_name,
        "avatar_url": account.avatar_url,
        "description": account.description,
        "downloaded": len(data.collected.posts),
        **{key: data.counts[key] for key in COUNT_KEYS},
        "split": {
            "train": n_train,
            "valid": n_valid,
            "train_rows": train_rows,  # after oversampling for balance
            "kept_chars": data.kept_chars,
        },
        "languages": dict(data.languages.most_common()),
        "edits": dict(data.edits),
    }


def build_dataset(collected: Sequence[AccountPosts], options: PrepareOptions):
    """Clean, check, split and balance.

    Returns (stats, train rows, valid rows, warnings, a few kept posts as examples).
    """
    handles = [c.account.handle for c in collected]
    duplicates = {h for h in handles if handles.count(h) > 1}
    if duplicates:
        raise HuggingtweetsError(
            f"account {sorted(duplicates)[0]!r} is given twice; pass each account once "
            "(or give one of them another --handle)"
        )
    datasets = [clean_account(c, options) for c in collected]
    warnings = []
    for data in datasets:
        chars, kept = data.kept_chars, data.counts["kept"]
        detail = (
            f"@{data.handle}: {kept} posts kept of {len(data.collected.posts)} "
            f"({chars:,} characters)"
        )
        if chars < MIN_CHARS:
            raise HuggingtweetsError(
                f"{detail}, fewer than the {MIN_CHARS:,} characters needed to train; "
                "add more posts or loosen the filters"
            )
        if chars < WARN_CHARS:
            warnings.append(
                f"{detail}: under {WARN_CHARS:,} characters, the bot may copy its posts "
                "rather than write like it"
            )
    train, valid, sizes = {}, {}, {}
    for data in datasets:
        train[data.handle], valid[data.handle] = split(
            data.kept, options.validation_split_percentage, options.seed, data.handle
        )
        sizes[data.handle] = (len(train[data.handle]), len(valid[data.handle]))
    if options.balance and len(datasets) > 1:
        train = balance(train, options.seed)
    train_rows = [
        {"handle": h, "id": post_id, "text": text}
        for h, rows in train.items()
        for post_id, text in rows
    ]
    # Shuffled once, deterministically, so that packed training blocks mix the voices.
    train_rows = [train_rows[i] for i in permutation(len(train_rows), options.seed, "train")]
    valid_rows = [
        {"handle": h, "id": post_id, "text": text}
        for h, rows in valid.items()
        for post_id, text in rows
    ]
    stats = {
        "accounts": [_account_stats(d, *sizes[d.handle], len(train[d.handle])) for d in datasets],
        "categories": list(COUNT_KEYS),
        "options": asdict(options),
    }
    return stats, train_rows, valid_rows, warnings, _examples(datasets, options.seed)


def _examples(datasets: list[AccountDataset], seed: int, total: int = 8) -> list[tuple[str, str]]:
    """A few kept posts to show (the original showed eight), every account taking turns."""
    rng = random.Random(seed)
    per_account = -(-total // len(datasets))
    picks = [rng.sample(d.kept, min(per_account, len(d.kept))) for d in datasets]
    turns = [
        (d.handle, rows[i][1])
        for i in range(per_account)
        for d, rows in zip(datasets, picks, strict=True)
        if i < len(rows)
    ]
    return turns[:total]


def write_dataset(
    run: RunDir, stats: dict, train_rows: list, valid_rows: list, staging: Staging | None = None
) -> None:
    """dataset/ swapped in whole; ``staging`` (posts/ files) committed just before, so that
    posts/ and dataset/ change together or, on any failure before, neither changes."""
    with replace_dir(run.dataset_dir) as tmp:
        (tmp / "train.jsonl").write_bytes(dump_jsonl(train_rows))
        (tmp / "valid.jsonl").write_bytes(dump_jsonl(valid_rows))
        (tmp / "stats.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")
        if staging is not None:
            staging.commit()


def prepare_collected(
    collected: Sequence[AccountPosts],
    run_dir: Path | str,
    options: PrepareOptions | None = None,
    *,
    reporter: Reporter | None = None,
) -> PrepareResult:
    """The prepare stage on accounts already in memory (posts/ is not written here)."""
    return _prepare(
        collected, RunDir(Path(run_dir)), options or PrepareOptions(), reporter_or_silent(reporter)
    )


def _prepare(
    collected: Sequence[AccountPosts],
    run: RunDir,
    options: PrepareOptions,
    reporter: Reporter,
    collection: Collection | None = None,
) -> PrepareResult:
    from huggingtweets.collect.collection import MAX_ACCOUNTS

    if len(collected) > MAX_ACCOUNTS:
        raise HuggingtweetsError(
            f"{len(collected)} accounts in {run.posts_dir}: a bot is made of 1 to "
            f"{MAX_ACCOUNTS} accounts; remove the others from posts/ or use another --out"
        )
    reporter.start(STAGE, "cleaning, splitting, balancing")
    stats, train_rows, valid_rows, warnings, examples = build_dataset(collected, options)
    reporter.raise_if_cancelled()
    for message in warnings:
        reporter.warning(STAGE, message)
    # Only now that every check has passed do the files' posts replace those in posts/,
    # together with the dataset: a prepare that fails (too little text, a full disk)
    # leaves both as they were.
    check_writable_dir(run.root)
    run.remove_stale_temporaries()
    staging = Staging()
    try:
        if collection is not None:
            collection.stage(staging)
        write_dataset(run, stats, train_rows, valid_rows, staging)
    finally:
        staging.discard()
    reporter.end(STAGE, f"dataset written to {run.dataset_dir}", stats=stats)
    return PrepareResult(run, stats, warnings, examples)


@dataclass
class PrepareTarget:
    """How ``prepare SOURCE...`` treats the run it writes into (the prepare command's
    options beside PrepareOptions, which say what the dataset holds)."""

    overwrite: bool = option(
        False,
        help="Prepare SOURCEs into a run that already has a trained model (its model and "
        "card describe the old posts until it is trained again).",
    )

    def __post_init__(self) -> None:
        check_options(self)


def trained_models(run: RunDir) -> list[Path]:
    """The model folders trained on ``run``'s dataset: its own and its trials'."""
    folders = [run.root / "model", *sorted((run.root / "trials").glob("*/model"))]
    return [folder for folder in folders if folder.is_dir()]


def check_not_trained(run: RunDir) -> None:
    """Refuse to collect other posts into a run that has a trained model: its dataset
    would no longer be what its model, metrics and card describe."""
    models = trained_models(run)
    if models:
        raise HuggingtweetsError(
            f"{run.root} already has a trained model ({models[0]}): preparing SOURCEs into "
            "it would replace the posts its model and card describe; choose another --out, "
            "or give --overwrite and train it again"
        )


def prepare(
    run_dir: Path | str | RunDir,
    sources: Sequence[str] = (),
    handles: Sequence[str] = (),
    options: PrepareOptions | None = None,
    source_options: SourceOptions | None = None,
    *,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """collect (when ``sources`` are given; ``source_options``: text column, live options)
    then prepare; without sources, prepare what ``run_dir/posts/`` already holds.
    ``sources`` into a run with a trained model are refused unless ``overwrite``."""
    from huggingtweets.collect.collection import collect, load_collected

    options = options or PrepareOptions()
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if handles and not sources:
        raise HuggingtweetsError("--handle needs a SOURCE to apply to")
    with training_lock(run.root):  # not under a training of this run
        if not sources:
            return _prepare(load_collected(run), run, options, reporter)
        if not overwrite:
            check_not_trained(run)  # before anything is collected
        collection = collect(
            run, sources, handles, source_options, reporter=reporter, write_files=False
        )
        return _prepare(collection.accounts, run, options, reporter, collection)
