"""update: a bot that keeps up with its accounts' new posts.

    from huggingtweets.update import update_bot, UpdateOptions
    update_bot("runs/me", ["twitter-archive-2025.zip"], options=UpdateOptions(replay=0.5))

1. **collect** only what is new: a live account (posts/<handle>.state.json names where it
   was collected from) fetches the posts newer than those it holds (``collect --update``);
   an account read from a file takes a newer export of the same account, given again.
2. **prepare** again with the run's own prepare options (kept in dataset/stats.json), each
   post held on the side of the split it was on before: a post the model trained on never
   becomes a held-out one, nor a held-out post a training one.
3. **train** the current model (model/, not the original base) on the new posts plus a
   replayed share of older ones, so that it does not forget them.
4. a fresh **evaluation** when the run had one (or when it is quick here), and the **card**
   rewritten with the data's date range.

The previous model/ (with its card), metrics.json, evaluation.json and stats.json are kept
under history/<UTC date-time>/. Nothing of the run is touched until there is something new
to train on (new posts are read and compared in a temporary folder elsewhere); the new model
is then built in a temporary folder inside the run and swapped in at the end, so a Ctrl-C
or a failure leaves the previous model in place. New posts are written to posts/ as soon as
they are known to be new, so that what was fetched is not fetched again; an update stopped
after that finds them there and trains on them the next time.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import orjson

from .errors import HuggingtweetsError
from .events import Reporter, reporter_or_silent
from .options import MAX_SEED, check_options, option, option_specs, options_to_dict
from .records import AccountPosts, iter_jsonl
from .runs import (
    RunDir,
    Staging,
    _tmp_prefix,
    check_writable_dir,
    remove_stale_temporaries,
    write_json,
)

STAGE = "update"
HISTORY_DIR = "history"
EVALUATE_WHEN = ("auto", "always", "never")

Key = tuple[str, str, str]  # (handle, post id, cleaned text): one post of a dataset


@dataclass
class UpdateOptions:
    """How to update (``huggingtweets update`` options)."""

    num_train_epochs: float = option(
        2.0,
        min=0,
        min_open=True,
        max=100_000,
        flag=("--epochs", "--num-train-epochs"),
        help="Passes over the new posts (and the replayed ones).",
    )
    replay: float = option(
        0.5,
        min=0,
        max=100,
        help="Older training posts trained on again, as a share of the new ones (0.5: half "
        "as many as there are new posts; 0: none), so that the bot does not forget them.",
    )
    learning_rate: float | None = option(
        None,
        min=0,
        min_open=True,
        max=1,
        help="Peak learning rate.",
        default_help="the one the model was trained with",
    )
    seed: int = option(
        42, min=0, max=MAX_SEED, help="Seed of the replayed posts' draw and of training."
    )
    evaluate: str = option(
        "auto",
        choices=EVALUATE_WHEN,
        help="Evaluate the new model: auto = when the run had an evaluation, or when it "
        "takes under a minute here.",
    )

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class UpdateResult:
    run: RunDir
    updated: bool  # False: nothing new, nothing changed
    message: str  # what happened, in one line
    new_posts: int = 0  # new posts kept by the rules (training and held out)
    new_train: int = 0
    new_valid: int = 0
    replayed: int = 0
    since: str | None = None  # the newest post before this update (UTC ISO), when dated
    dates: dict | None = None  # {"first", "last"} of the posts in the dataset now
    history: Path | None = None  # where the previous model was kept
    metrics: dict | None = None
    evaluation: dict | None = None
    card: Path | None = None


# -- the run as it is ----------------------------------------------------------------------


@dataclass
class _Previous:
    """What the current model was made from."""

    stats: dict
    metrics: dict
    train: set[Key] = field(default_factory=set)
    valid: set[Key] = field(default_factory=set)


def _read_json(path: Path, what: str) -> dict:
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


def _read_previous(run: RunDir) -> _Previous:
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
    stats = _read_json(run.stats_path, train_first)
    metrics = _read_json(run.metrics_path, train_first)
    if not isinstance(stats.get("accounts"), list) or not stats["accounts"]:
        raise HuggingtweetsError(f"{run.stats_path} names no accounts: prepare the run again")
    previous = _Previous(stats, metrics)
    for path, keys in ((run.train_path, previous.train), (run.valid_path, previous.valid)):
        for _, row in iter_jsonl(path):
            keys.add(_key(row))
    return previous


def _key(row: dict) -> Key:
    return (str(row.get("handle")), str(row.get("id")), str(row.get("text")))


def _prepare_options(previous: _Previous):
    """The prepare options the dataset was made with (those this version knows)."""
    from .prepare import PrepareOptions

    saved = previous.stats.get("options")
    known = {spec.name for spec in option_specs(PrepareOptions)}
    given = {k: v for k, v in (saved if isinstance(saved, dict) else {}).items() if k in known}
    return PrepareOptions(**given)


def _live_spec(run: RunDir, handle: str) -> str | None:
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


def _collect_new(
    run: RunDir,
    scratch: RunDir,
    handles: list[str],
    sources: Sequence[str],
    source_handles: Sequence[str],
    source_options,
    reporter: Reporter,
) -> tuple[list[AccountPosts], set[str], bool]:
    """Every account of the run, with its newest posts: (accounts in the run's order, the
    handles whose posts/ files ``scratch`` holds anew, whether anything was asked for).

    Live accounts are collected with ``--update`` into copies of their files in
    ``scratch`` (a folder outside the run), so that nothing of the run changes unless
    something new is found; files given as SOURCEs are read whole.
    """
    from .collect import resolve_all
    from .sources import SourceOptions, resolve
    from .sources.live import LiveOptions, LiveSource

    source_options = source_options or SourceOptions()
    given: dict[str, AccountPosts] = {}
    if sources:
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
                handle = handles[0]
                account_posts.account = msgspec.structs.replace(
                    account_posts.account, handle=handle
                )
            if handle not in handles:
                raise HuggingtweetsError(
                    f"{source.spec} holds @{handle}'s posts, but {run.root} is the bot of "
                    f"{', '.join('@' + h for h in handles)}: give a newer export of the same "
                    "account (or --handle to say which it is)"
                )
            if handle in given:
                raise HuggingtweetsError(f"two SOURCEs hold @{handle}'s posts: give one")
            if _live_spec(run, handle) is not None:
                raise HuggingtweetsError(
                    f"@{handle} is collected live: its new posts are fetched by `huggingtweets "
                    f"update {run.root}` itself; give only exports of accounts read from files"
                )
            given[handle] = account_posts
    live = replace(source_options.live or LiveOptions(), update=True)
    accounts, fresh, asked = [], set(), bool(given)
    for handle in handles:
        if handle in given:
            accounts.append(given[handle])
            fresh.add(handle)
            scratch.write_collected(given[handle])
            continue
        spec = _live_spec(run, handle)
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
    return accounts, fresh, asked


@dataclass
class _Dataset:
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


def _rebuild(
    accounts: list[AccountPosts], previous: _Previous, known: set[tuple[str, str]], options
) -> _Dataset:
    """prepare's rules on every post, then the split kept stable: a post seen before stays
    where it was; a new one whose text the model trained on (or held out) goes there too;
    any other new one where prepare's own split puts it. ``known``: (handle, id) of the
    posts collected before, to count the new ones that the rules drop."""
    from .prepare import balance, build_dataset, permutation

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
            key = _key(row)
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
    dates = _date_range(times.get(k) for k in kept)
    if dates is not None:
        stats["dates"] = dates
        for account in stats["accounts"]:
            handle = account["handle"]
            mine = _date_range(times.get(k) for k in kept if k[0] == handle)
            if mine is not None:
                account["dates"] = mine
    before = _date_range(times.get(k[:2]) for k in previous.train | previous.valid)
    ids = {(h, p.id) for a in accounts for h in [a.account.handle] for p in a.posts}
    dropped_new = len(ids - known - {k[:2] for k in seen})
    return _Dataset(
        stats,
        rows,
        [r for h in handles for r in valid[h]],
        new_train,
        new_valid,
        old_train,
        before["last"] if before else None,
        dates,
        dropped_new,
    )


def _date_range(times) -> dict | None:
    """The first and last of some UTC ISO times (None ignored), or None without any."""
    known = [t for t in times if t]
    return {"first": min(known), "last": max(known)} if known else None


def _replayed(data: _Dataset, share: float, seed: int) -> list[dict]:
    """round(share × new training posts) of the older training posts, drawn under ``seed``."""
    count = min(len(data.old_train), round(share * len(data.new_train)))
    return random.Random(f"{seed}:replay").sample(data.old_train, count)


# -- the update ----------------------------------------------------------------------------


def update_bot(
    run_dir: Path | str | RunDir,
    sources: Sequence[str] = (),
    *,
    handles: Sequence[str] = (),
    options: UpdateOptions | None = None,
    source_options=None,
    reporter: Reporter | None = None,
) -> UpdateResult:
    """Bring the bot in ``run_dir`` up to date with its accounts' new posts (see the
    module's help). ``sources``: newer exports of the accounts read from files (live
    accounts need none); ``handles`` apply to them in order. ``source_options``: the
    live and platform options (service URLs, time-outs), as ``collect`` takes them.

    Returns ``updated=False`` (and changes nothing) when there is nothing new to train on.
    """
    options = options or UpdateOptions()
    reporter = reporter_or_silent(reporter)
    sources = [sources] if isinstance(sources, str | Path) else [str(s) for s in sources]
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    previous = _read_previous(run)
    prepare_options = _prepare_options(previous)
    handles_in_run = [str(a.get("handle")) for a in previous.stats["accounts"]]
    known = {
        (handle, post.id)
        for handle in handles_in_run
        if run.posts_path(handle).exists()
        for post in run.read_collected(handle).posts
    }
    reporter.start(STAGE, f"updating {run.root}")
    with tempfile.TemporaryDirectory(prefix="huggingtweets-update-") as tmp:
        scratch = RunDir(Path(tmp))
        scratch.posts_dir.mkdir()
        accounts, fresh, asked = _collect_new(
            run, scratch, handles_in_run, sources, handles, source_options, reporter
        )
        reporter.start("prepare", "cleaning, splitting (as before), balancing")
        data = _rebuild(accounts, previous, known, prepare_options)
        reporter.end("prepare", "dataset rebuilt", stats=data.stats)
        new = len(data.new_train) + len(data.new_valid)
        if not data.new_train:
            if not asked:
                raise HuggingtweetsError(
                    f"{run.root} was made from a file: give the newer export: "
                    f"huggingtweets update {run.root} NEW.zip"
                )
            message = _nothing_new(data, new, run)
            reporter.end(STAGE, message, updated=False)
            return UpdateResult(run, False, message, new, 0, new, since=data.since)
        # From here on the run changes: new posts first (so that they are not fetched
        # again), then the model, swapped in at the end.
        check_writable_dir(run.root)
        run.remove_stale_temporaries()
        staging = Staging()
        try:
            for handle in fresh:
                for path in (
                    scratch.posts_path(handle),
                    scratch.account_path(handle),
                    scratch.state_path(handle),
                ):
                    if path.exists():
                        staging.write(run.posts_dir / path.name, path.read_bytes())
            staging.commit()
        finally:
            staging.discard()
    return _train_and_swap(run, previous, data, options, reporter)


def _nothing_new(data: _Dataset, new: int, run: RunDir) -> str:
    """What an update with nothing to train on says (it changes nothing)."""
    if data.since:
        since = f"since {data.since[:10]} {data.since[11:16]} UTC"
    else:  # undated posts (plain text files): the last training
        when = datetime.fromtimestamp(run.metrics_path.stat().st_mtime, timezone.utc)
        since = f"since the last training ({when:%Y-%m-%d %H:%M} UTC)"
    if new:  # a post or two, which the split held out
        return (
            f"{new} new post{'s' if new > 1 else ''} {since}, all held out for evaluation: "
            "nothing to train on yet, nothing changed"
        )
    if data.dropped_new:
        return (
            f"no new posts {since} ({data.dropped_new} new ones were all dropped by the "
            "rules: reposts, short posts ...): nothing changed"
        )
    return f"no new posts {since}: nothing changed"


@contextlib.contextmanager
def _stage_folder(run: RunDir) -> Iterator[Path]:
    """A temporary folder inside the run (same file system: renames), always removed; a
    killed process's is removed by the next run (runs.remove_stale_temporaries)."""
    folder = Path(tempfile.mkdtemp(prefix=_tmp_prefix(STAGE), dir=run.root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _train_options(previous: _Previous, run: RunDir, options: UpdateOptions):
    """The options the model was trained with, on the current model as the base."""
    from .train import TrainOptions

    saved = previous.metrics.get("options")
    known = {spec.name for spec in option_specs(TrainOptions)}
    given = {k: v for k, v in (saved if isinstance(saved, dict) else {}).items() if k in known}
    learning_rate = options.learning_rate
    if learning_rate is None:
        used = (previous.metrics.get("hyperparameters") or {}).get("learning_rate")
        learning_rate = used if isinstance(used, int | float) and 0 < used <= 1 else None
    given.update(
        base_model=str(run.model_dir.resolve()),
        num_train_epochs=options.num_train_epochs,
        max_steps=-1,
        learning_rate=learning_rate,
        seed=options.seed,
        resume=False,
        keep_checkpoints=False,
        report_to=["none"],
        trust_pickle=False,  # the run's model is safetensors, as train saved it
        early_stopping_patience=None,
    )
    return TrainOptions(**given)


def _train_and_swap(
    run: RunDir, previous: _Previous, data: _Dataset, options: UpdateOptions, reporter: Reporter
) -> UpdateResult:
    from .memorization import build_guard
    from .records import dump_jsonl
    from .train import train

    replayed = _replayed(data, options.replay, options.seed)
    with _stage_folder(run) as stage:
        # The update's own data: the new and the replayed posts to train on, every
        # held-out post (old and new) to choose the best epoch by.
        fit_run = RunDir(stage / "fit", output=stage / "out")
        fit_rows = data.new_train + replayed
        fit_rows = [
            fit_rows[i]
            for i in random.Random(options.seed).sample(range(len(fit_rows)), len(fit_rows))
        ]
        fit_run.dataset_dir.mkdir(parents=True)
        fit_run.train_path.write_bytes(dump_jsonl(fit_rows))
        fit_run.valid_path.write_bytes(dump_jsonl(data.valid_rows))
        # The whole dataset, as prepare would write it: what evaluate and the card read.
        new_run = RunDir(stage, output=stage / "out")
        new_run.dataset_dir.mkdir()
        new_run.train_path.write_bytes(dump_jsonl(data.train_rows))
        new_run.valid_path.write_bytes(dump_jsonl(data.valid_rows))
        new_run.stats_path.write_bytes(orjson.dumps(data.stats, option=orjson.OPT_INDENT_2) + b"\n")
        reporter.info(
            STAGE,
            f"training the current model on {len(data.new_train)} new posts and "
            f"{len(replayed)} older ones",
        )
        trained = train(fit_run, _train_options(previous, run, options), reporter=reporter)
        # The guard knows every post the model has ever trained on, not this round's only.
        build_guard(list(dict.fromkeys(r["text"] for r in data.train_rows)), new_run.model_dir)
        now = datetime.now(timezone.utc)
        metrics = _metrics(trained.metrics, previous, data, replayed, options, now)
        write_json(new_run.metrics_path, metrics)
        evaluation = _evaluate(run, new_run, previous, options, reporter)
        card = _write_card(run, new_run, reporter, evaluation)
        reporter.raise_if_cancelled()
        history = _swap(run, new_run, stage, now, reporter)
    card_path = run.model_dir / card.name if card is not None else None
    message = (
        f"{len(data.new_train) + len(data.new_valid)} new posts "
        f"({len(data.new_train)} trained on with {len(replayed)} older ones, "
        f"{len(data.new_valid)} held out); the previous model is kept in {history}"
    )
    reporter.end(STAGE, message, updated=True, history=str(history))
    return UpdateResult(
        run,
        True,
        message,
        len(data.new_train) + len(data.new_valid),
        len(data.new_train),
        len(data.new_valid),
        len(replayed),
        data.since,
        data.dates,
        history,
        metrics,
        evaluation,
        card_path,
    )


def _metrics(
    trained: dict,
    previous: _Previous,
    data: _Dataset,
    replayed: list[dict],
    options: UpdateOptions,
    now: datetime,
) -> dict:
    """train's metrics of this round, naming the original base (not the folder trained
    from, a temporary path) and the updates so far."""
    metrics = dict(trained)
    for key in ("base_model", "base_model_type"):
        if key in previous.metrics:
            metrics[key] = previous.metrics[key]
    if isinstance(metrics.get("options"), dict):
        metrics["options"] = {
            **metrics["options"],
            "base_model": previous.metrics.get("base_model", metrics["options"]["base_model"]),
        }
    updates = previous.metrics.get("updates")
    entry = {
        "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "new_posts": len(data.new_train) + len(data.new_valid),
        "new_train": len(data.new_train),
        "new_valid": len(data.new_valid),
        "replayed": len(replayed),
        "previous_newest_post": data.since,
        "dates": data.dates,
        "options": options_to_dict(options),
    }
    metrics["updates"] = [*(updates if isinstance(updates, list) else []), entry]
    return metrics


def _evaluate(
    run: RunDir, new_run: RunDir, previous: _Previous, options: UpdateOptions, reporter: Reporter
) -> dict | None:
    """evaluate the new model as the previous one was (its samples and seed)."""
    from .evaluate import (
        EvaluateOptions,
        evaluate,
        evaluation_path,
        held_out_posts,
        quick_to_evaluate,
    )
    from .style import MIN_POSTS

    try:
        before = orjson.loads(evaluation_path(run).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        before = None
    had = isinstance(before, dict)
    if options.evaluate == "never" or (
        options.evaluate == "auto" and not had and not quick_to_evaluate(new_run.model_dir)
    ):
        return None
    if options.evaluate == "auto" and not had:
        held_out = sum(map(len, held_out_posts(new_run).values()))
        if held_out < MIN_POSTS:  # said, not fatal: the run was never evaluated
            reporter.info(
                STAGE,
                f"not evaluated: {held_out} held-out posts, fewer than the {MIN_POSTS} that "
                "telling real posts from the bot's needs",
            )
            return None
    settings = {}
    if had:
        for name in ("samples", "seed"):
            if isinstance(before.get(name), int) and not isinstance(before.get(name), bool):
                settings[name] = before[name]
    try:
        evaluate_options = EvaluateOptions(**settings)
    except HuggingtweetsError:  # an evaluation.json edited by hand
        evaluate_options = EvaluateOptions()
    # evaluate compares with the base model: the run's tiny base, found beside metrics.
    tiny_base = run.output_dir / "tiny-base"
    if previous.metrics.get("base_model_type") == "tiny" and (tiny_base / "config.json").exists():
        _link_tree(tiny_base, new_run.output_dir / "tiny-base")
    result = evaluate(new_run, evaluate_options, reporter=reporter)
    shutil.rmtree(new_run.output_dir / "tiny-base", ignore_errors=True)
    return result.evaluation


def _write_card(
    run: RunDir, new_run: RunDir, reporter: Reporter, evaluation: dict | None
) -> Path | None:
    from .cli_evaluate import card_repo_id
    from .pipeline import write_card_reporting

    repo_id = card_repo_id(run.model_dir / "README.md")
    return write_card_reporting(new_run, reporter, repo_id=repo_id)


def _link_tree(source: Path, target: Path) -> None:
    """``target`` a copy of ``source`` made of hard links where the file system allows
    (instant, no space), else of copies. Safe for model folders: every stage replaces
    their files whole (a new file renamed in), never writes into one in place."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def history_name(now: datetime) -> str:
    """history/<UTC date-time>: sortable, and a valid file name everywhere (no colons)."""
    return now.strftime("%Y-%m-%dT%H%M%SZ")


def _swap(run: RunDir, new_run: RunDir, stage: Path, now: datetime, reporter: Reporter) -> Path:
    """Keep the previous model in history/, then put the new one in its place.

    The history entry is complete (under a temporary name, renamed) before anything of
    the run is replaced, so at every instant the previous model is in model/ or in
    history/. The renames run as cooperative work: a Ctrl-C waits for them to finish."""
    history_root = run.root / HISTORY_DIR
    history_root.mkdir(exist_ok=True)
    remove_stale_temporaries(history_root)  # an entry a killed update left half-made
    name = history_name(now)
    target, n = history_root / name, 1
    while target.exists():
        n += 1
        target = history_root / f"{name}-{n}"
    keep = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target.name), dir=history_root))
    try:
        _link_tree(run.model_dir, keep / "model")
        for path in (run.metrics_path, run.output_dir / "evaluation.json", run.stats_path):
            if path.exists():
                shutil.copy2(path, keep / path.name)
        keep.chmod(0o777 & ~_umask())
        os.replace(keep, target)
    except BaseException:
        shutil.rmtree(keep, ignore_errors=True)
        raise
    with reporter.cooperative():
        old = stage / "previous"
        old.mkdir()
        os.replace(run.model_dir, old / "model")
        os.replace(new_run.model_dir, run.model_dir)
        os.replace(new_run.metrics_path, run.metrics_path)
        evaluation = new_run.output_dir / "evaluation.json"
        if evaluation.exists():
            os.replace(evaluation, run.output_dir / "evaluation.json")
        else:  # the previous model's, kept in history/: it says nothing of this one
            with contextlib.suppress(FileNotFoundError):
                os.replace(run.output_dir / "evaluation.json", old / "evaluation.json")
        # The dataset last: until it is in place, the next update sees these posts as new.
        os.replace(run.dataset_dir, old / "dataset")
        os.replace(new_run.dataset_dir, run.dataset_dir)
    reporter.info(STAGE, f"the previous model is kept in {target}")
    return target


def _umask() -> int:
    from .runs import current_umask

    return current_umask()
