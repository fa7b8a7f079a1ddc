"""What an update starts from and what it finds new (see update.py).

The run as it is (its dataset, metrics and prepare options), every account with its newest
posts (live ones fetched with ``--update`` into copies of their files outside the run, newer
exports read whole), and the dataset rebuilt by prepare's rules with the split kept stable.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter
from huggingtweets.core.options import OptionError, option_specs
from huggingtweets.core.records import AccountPosts, Post, iter_jsonl
from huggingtweets.core.runs import RunDir

T = TypeVar("T")
Key = tuple[str, str, str]  # (handle, post id, cleaned text): one post of a dataset


# -- the run as it is ----------------------------------------------------------------------


@dataclass
class Previous:
    """What the current model was made from."""

    stats: dict
    metrics: dict
    train: set[Key] = field(default_factory=set)
    valid: set[Key] = field(default_factory=set)


def read_json_object(path: Path, what: str) -> dict:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise HuggingtweetsError(f"{path} is missing: {what}") from None
    except OSError as exc:
        raise HuggingtweetsError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise HuggingtweetsError(f"{path} is not valid JSON: {what}") from None
    if not isinstance(data, dict):
        raise HuggingtweetsError(f"{path} is not a JSON object: {what}")
    return data


def read_previous(run: RunDir) -> Previous:
    """The run's dataset and metrics, or one line saying why it cannot be updated."""
    root = run.root
    if root.exists() and not root.is_dir():
        raise HuggingtweetsError(f"{root} is a file, not a run directory")
    if not root.is_dir():
        raise HuggingtweetsError(
            f"no run directory {root}: make a bot first (`huggingtweets train SOURCE... "
            f"--out {root}`), then update it"
        )
    if not (run.model_dir / "config.json").is_file():
        raise HuggingtweetsError(
            f"{root} has no trained model to update: run `huggingtweets train {root}` first"
        )
    train_first = f"train the run first (`huggingtweets train {root}`)"
    stats = read_json_object(run.stats_path, train_first)
    metrics = read_json_object(run.metrics_path, train_first)
    if not isinstance(stats.get("accounts"), list) or not stats["accounts"]:
        raise HuggingtweetsError(f"{run.stats_path} names no accounts: prepare the run again")
    previous = Previous(stats, metrics)
    for path, keys in ((run.train_path, previous.train), (run.valid_path, previous.valid)):
        for _, row in iter_jsonl(path):
            keys.add(row_key(row))
    return previous


def row_key(row: dict) -> Key:
    return (str(row.get("handle")), str(row.get("id")), str(row.get("text")))


def known_options(cls: type, saved: object) -> dict[str, Any]:
    """The options saved in a run's JSON (stats, metrics) that this version of ``cls``
    knows: a run made by another version still reads."""
    known = {spec.name for spec in option_specs(cls)}
    return {k: v for k, v in (saved if isinstance(saved, dict) else {}).items() if k in known}


def run_settings(cls: type[T], saved: object, path: Path, **changes: Any) -> T:
    """``cls`` with the options the run was made with, as ``path`` saved them (those this
    version knows), and ``changes``. A saved value refused is the run's setting, named with
    its file: not a flag (``--min-words``) the user never gave."""
    try:
        return cls(**{**known_options(cls, saved), **changes})
    except OptionError as exc:
        if exc.name in changes:  # a value of this update's, not the run's
            raise
        raise HuggingtweetsError(
            f"{path} records the run's setting {exc.name}, which {exc.problem}; was the file "
            "edited? Make the run again (`huggingtweets train SOURCE... --out` a new folder) "
            "to update it"
        ) from None


def prepare_options_of(previous: Previous, run: RunDir):
    """The prepare options the dataset was made with (those this version knows)."""
    from huggingtweets.prepare.dataset import PrepareOptions

    return run_settings(PrepareOptions, previous.stats.get("options"), run.stats_path)


def live_spec(run: RunDir, handle: str) -> str | None:
    """Where a live account was collected from (its state file says), else None."""
    path = run.state_path(handle)
    if not path.exists():
        return None
    try:
        state = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        state = None
    spec = state.get("source") if isinstance(state, dict) else None
    if not isinstance(spec, str) or not spec:
        raise HuggingtweetsError(
            f"{path} does not say where @{handle} was collected from; collect it again "
            f"(`huggingtweets collect SOURCE --update --out {run.root}`), then update"
        )
    return spec


# -- what is new ---------------------------------------------------------------------------


def collect_new(
    run: RunDir,
    scratch: RunDir,
    handles: list[str],
    sources: Sequence[str],
    source_handles: Sequence[str],
    source_options,
    reporter: Reporter,
) -> tuple[list[AccountPosts], set[str], bool, str | None]:
    """Every account of the run, with its newest posts: (accounts in the run's order, the
    handles whose posts/ files ``scratch`` holds anew, whether anything was asked for, the
    newest post of the exports given (UTC ISO), when dated).

    Live accounts are collected with ``--update`` into copies of their files in
    ``scratch`` (a folder outside the run), so that nothing of the run changes unless
    something new is found; files given as SOURCEs are read whole and added to the
    account's posts the run holds (see with_the_run_s_posts).
    """
    from huggingtweets.collect.live.base import LiveOptions
    from huggingtweets.collect.registry import SourceOptions, resolve

    source_options = source_options or SourceOptions()
    given = read_exports(run, handles, sources, source_handles, source_options, reporter)
    export_end = max(
        (p.created_at for a in given.values() for p in a.posts if p.created_at), default=None
    )
    live = replace(source_options.live or LiveOptions(), update=True)
    accounts, fresh, asked = [], set(), bool(given)
    for handle in handles:
        if handle in given:
            account_posts = with_the_run_s_posts(run, given[handle], reporter)
            accounts.append(account_posts)
            fresh.add(handle)
            scratch.write_collected(account_posts)
            continue
        spec = live_spec(run, handle)
        if spec is None:  # an account read from a file, no newer one given
            accounts.append(run.read_collected(handle))
            continue
        asked = True
        for path in (run.posts_path(handle), run.account_path(handle), run.state_path(handle)):
            if path.exists():
                shutil.copyfile(path, scratch.posts_dir / path.name)
        options = replace(source_options, handle=handle, live=live)
        reporter.raise_if_cancelled()
        accounts.append(resolve(spec, options).collect(scratch, reporter))
        fresh.add(handle)
    return accounts, fresh, asked, export_end


def with_the_run_s_posts(run: RunDir, export: AccountPosts, reporter: Reporter) -> AccountPosts:
    """The account's posts the run holds, each as it holds it, then the export's posts it
    lacks (by post id): an export adds posts, never takes any away, as a live account's
    update does. An export older than the run's data, or made after posts were deleted,
    leaves the run's other posts in posts/ and in the dataset. The profile is the
    export's, what it lacks taken from the run's."""
    handle = export.account.handle
    if not run.posts_path(handle).exists():
        return export
    held = run.read_collected(handle)
    held.posts = _made_private(held.posts, export)
    if export.positional_ids:  # numbered by line: told apart by their text
        added, lacking = _new_by_text(held.posts, export.posts)
    else:
        ids = {post.id for post in held.posts}
        lacking = len(ids - {post.id for post in export.posts})
        added = [p for p in export.posts if p.id not in ids]
    if lacking:
        reporter.info(
            "update",
            f"@{handle}: {lacking} of the run's posts ({run.posts_path(handle)}) are not in "
            "the export given: kept (an update adds posts, never removes any)",
        )
    ours = held.account.to_dict()
    account = msgspec.structs.replace(
        export.account,
        **{k: ours[k] for k, v in export.account.to_dict().items() if v is None and ours[k]},
    )
    return AccountPosts(account, held.posts + added)


def _made_private(held: list[Post], export: AccountPosts) -> list[Post]:
    """The run's posts, each one the export holds as private (followers-only, direct) while
    the run holds it as public taking the export's audience: the stricter one wins, so
    that it leaves the dataset (a post made private since, or marked so by hand)."""
    key = (lambda post: post.text) if export.positional_ids else (lambda post: post.id)
    private = {key(p): p.visibility for p in export.posts if p.is_private}
    return [
        msgspec.structs.replace(p, visibility=private[key(p)])
        if key(p) in private and not p.is_private
        else p
        for p in held
    ]


def _new_by_text(held: Sequence[Post], export: Sequence[Post]) -> tuple[list[Post], int]:
    """The export's posts the run lacks when the export numbers its posts by line (a .txt,
    a CSV or JSONL without ids): a newer file with posts added on top numbers the run's
    posts otherwise, so a post is the run's when the run holds its text (as many times as
    the export has it); those added are numbered after the run's. And how many of the
    run's posts the export lacks."""
    have = Counter(post.text for post in held)
    lacking = sum((have - Counter(post.text for post in export)).values())
    used = {post.id for post in held}
    number = max((int(i) for i in used if i.isdecimal()), default=0)
    seen: Counter[str] = Counter()
    added = []
    for post in export:
        seen[post.text] += 1
        if seen[post.text] <= have[post.text]:
            continue
        number += 1
        while str(number) in used:
            number += 1
        used.add(str(number))
        added.append(msgspec.structs.replace(post, id=str(number)))
    return added, lacking


def check_posts_hold_the_dataset(
    run: RunDir, previous: Previous, accounts: Sequence[AccountPosts]
) -> None:
    """Refuse an update whose posts (the run's posts/ files, with the exports given and the
    live posts fetched) lack posts of the run's dataset: the dataset is rebuilt from them,
    so a posts/ file cut short, removed or replaced would drop those posts from it."""
    held = {(a.account.handle, p.id) for a in accounts for p in a.posts}
    lost: dict[str, int] = {}
    for handle, post_id, _ in previous.train | previous.valid:
        if (handle, post_id) not in held:
            lost[handle] = lost.get(handle, 0) + 1
    if lost:
        handle, count = next(iter(lost.items()))
        raise HuggingtweetsError(
            f"{run.posts_path(handle)} lacks {count} of @{handle}'s posts that the run's "
            "dataset holds (cut short, removed or replaced?): the update rebuilds the dataset "
            "from posts/ and the export, and would drop them; restore the file from a copy, "
            "or give an export that holds them too; nothing changed"
        )


def read_exports(
    run: RunDir,
    handles: list[str],
    sources: Sequence[str],
    source_handles: Sequence[str],
    source_options,
    reporter: Reporter,
) -> dict[str, AccountPosts]:
    """The newer exports given as SOURCEs, read whole, by the run's handle each holds;
    refused where one is a live account or not one of the run's accounts."""
    from huggingtweets.collect.collection import resolve_all
    from huggingtweets.collect.live.base import LiveSource

    given: dict[str, AccountPosts] = {}
    if not sources:
        return given
    resolved = resolve_all(sources, source_handles, source_options)
    for source in resolved:
        if isinstance(source, LiveSource):
            raise HuggingtweetsError(
                f"{source.spec} is a live account: live accounts are updated without a "
                f"SOURCE (`huggingtweets update {run.root}`); give only newer exports"
            )
    for source in resolved:
        reporter.raise_if_cancelled()
        account_posts = source.read()
        if not account_posts.posts:
            raise HuggingtweetsError(f"no posts found in {source.spec}")
        handle = account_posts.account.handle
        if (
            handle not in handles
            and len(handles) == len(resolved) == 1
            and not (source_handles or account_posts.account.platform != "file")
        ):
            # A plain file's handle comes from its name, which a newer file may not
            # share: with one account on each side, it is that account.
            reporter.info(
                "update",
                f"{source.spec} read as @{handles[0]}'s posts (its name says @{handle}; give "
                "--handle to say whose they are if that is wrong)",
            )
            handle = handles[0]
            account_posts.account = msgspec.structs.replace(account_posts.account, handle=handle)
        if handle not in handles:
            raise HuggingtweetsError(
                f"{source.spec} holds @{handle}'s posts, but {run.root} is the bot of "
                f"{', '.join('@' + h for h in handles)}: give a newer export of the same "
                "account (or --handle to say which it is)"
            )
        if handle in given:
            raise HuggingtweetsError(f"two SOURCEs hold @{handle}'s posts: give one")
        if live_spec(run, handle) is not None:
            raise HuggingtweetsError(
                f"@{handle} is collected live: its new posts are fetched by `huggingtweets "
                f"update {run.root}` itself; give only exports of accounts read from files"
            )
        given[handle] = account_posts
    return given


@dataclass
class NewDataset:
    """The dataset rebuilt, each post on its side of the split from before."""

    stats: dict
    train_rows: list[dict]  # balanced and shuffled, as prepare writes them
    valid_rows: list[dict]
    new_train: list[dict]  # the new posts among the training ones (once each)
    new_valid: list[dict]
    old_train: list[dict]  # the training posts from before (once each), to replay
    since: str | None  # the newest post of the previous dataset (UTC ISO), when dated
    dates: dict | None  # {"first", "last"} of the dataset's posts now
    dropped_new: int  # new posts the rules dropped (reposts, short ...)
    dropped_by: dict[str, int] = field(default_factory=dict)  # of them, by category


# What prepare counts as dropped, each a category of stats.json.
DROP_CATEGORIES = (
    "retweets",
    "short",
    "private",
    "replies",
    "too_long",
    "below_min_words",
    "duplicates",
)


def _dropped_by(stats: dict, before: dict) -> dict[str, int]:
    """How many more posts each rule dropped than it did when the run was prepared."""
    counts = {}
    olds = {a.get("handle"): a for a in before.get("accounts", []) if isinstance(a, dict)}
    for category in DROP_CATEGORIES:
        more = 0
        for account in stats["accounts"]:
            old = olds.get(account["handle"], {}).get(category, 0)
            more += max(0, account.get(category, 0) - (old if isinstance(old, int) else 0))
        if more:
            counts[category] = more
    return counts


def rebuild_dataset(
    accounts: list[AccountPosts],
    previous: Previous,
    known: Mapping[tuple[str, str], str | None],
    options,
) -> NewDataset:
    """prepare's rules on every post, then the split kept stable: a post seen before stays
    where it was; a new one whose text the model trained on (or held out) goes there too;
    any other new one where prepare's own split puts it. ``known``: (handle, id) of the
    posts collected before, with their times (UTC ISO, or None), to count the new ones that
    the rules drop and to date the run's newest post (not an older export's)."""
    from huggingtweets.prepare.dataset import balance, build_dataset, permutation

    stats, train_rows, valid_rows, _, _ = build_dataset(accounts, options)
    old_train_texts = {(h, t) for h, _, t in previous.train}
    old_valid_texts = {(h, t) for h, _, t in previous.valid}
    handles = [a.account.handle for a in accounts]
    train: dict[str, list[dict]] = {h: [] for h in handles}
    valid: dict[str, list[dict]] = {h: [] for h in handles}
    new_train, new_valid, old_train = [], [], []
    seen: set[Key] = set()
    for side, rows in (("train", train_rows), ("valid", valid_rows)):
        for row in rows:
            key = row_key(row)
            if key in seen:  # copies made to balance several accounts
                continue
            seen.add(key)
            text_key = (key[0], key[2])
            if key in previous.train:
                train[key[0]].append(row)
                old_train.append(row)
            elif key in previous.valid:
                valid[key[0]].append(row)
            elif text_key in old_valid_texts:
                valid[key[0]].append(row)
                new_valid.append(row)
            elif text_key in old_train_texts or side == "train":
                train[key[0]].append(row)
                new_train.append(row)
            else:
                valid[key[0]].append(row)
                new_valid.append(row)
    pairs = {h: [(r["id"], r["text"]) for r in rows] for h, rows in train.items()}
    balanced = balance(pairs, options.seed) if options.balance and len(handles) > 1 else pairs
    rows = [{"handle": h, "id": i, "text": t} for h, items in balanced.items() for i, t in items]
    rows = [rows[i] for i in permutation(len(rows), options.seed, "train")]
    for account in stats["accounts"]:
        handle = account["handle"]
        account["split"].update(
            train=len(train[handle]), valid=len(valid[handle]), train_rows=len(balanced[handle])
        )
    times = {
        (a.account.handle, p.id): p.created_at for a in accounts for p in a.posts if p.created_at
    }
    kept = [(r["handle"], r["id"]) for side in (train, valid) for rs in side.values() for r in rs]
    dates = date_range(times.get(k) for k in kept)
    if dates is not None:
        stats["dates"] = dates
        for account in stats["accounts"]:
            handle = account["handle"]
            mine = date_range(times.get(k) for k in kept if k[0] == handle)
            if mine is not None:
                account["dates"] = mine
    before = date_range(
        known.get(k[:2]) or times.get(k[:2]) for k in previous.train | previous.valid
    )
    ids = {(h, p.id) for a in accounts for h in [a.account.handle] for p in a.posts}
    dropped_new = len(ids - known.keys() - {k[:2] for k in seen})
    return NewDataset(
        stats,
        rows,
        [r for h in handles for r in valid[h]],
        new_train,
        new_valid,
        old_train,
        before["last"] if before else None,
        dates,
        dropped_new,
        _dropped_by(stats, previous.stats),
    )


def date_range(times) -> dict | None:
    """The first and last of some UTC ISO times (None ignored), or None without any."""
    known = [t for t in times if t]
    return {"first": min(known), "last": max(known)} if known else None


def replayed_posts(data: NewDataset, share: float, seed: int) -> list[dict]:
    """round(share × new training posts) of the older training posts, drawn under ``seed``."""
    count = min(len(data.old_train), round(share * len(data.new_train)))
    return random.Random(f"{seed}:replay").sample(data.old_train, count)
