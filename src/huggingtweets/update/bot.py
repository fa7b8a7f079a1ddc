"""update: a bot that keeps up with its accounts' new posts.

    from huggingtweets.update.bot import update_bot, UpdateOptions
    update_bot("runs/me", ["twitter-archive-2025.zip"], options=UpdateOptions(replay=0.5))

1. **collect** only what is new: a live account (posts/<handle>.state.json names where it
   was collected from) fetches the posts newer than those it holds (``collect --update``);
   an account read from a file takes a newer export of the same account, given again,
   whose posts are added to those the run holds: an update never drops a post (an older
   export, or one made after posts were deleted, leaves the run's other posts as they are).
2. **prepare** again with the run's own prepare options (kept in dataset/stats.json), each
   post held on the side of the split it was on before: a post the model trained on never
   becomes a held-out one, nor a held-out post a training one.
3. **train** the current model (model/, not the original base) on the new posts plus a
   replayed share of older ones, so that it does not forget them.
4. a fresh **evaluation** when the run had one (or when it is quick here), and the **card**
   rewritten with the data's date range.

The previous model/ (with its card), metrics.json, evaluation.json and stats.json are kept
under history/<UTC date-time>/. Nothing of the run is touched until there is something new
to train on (new posts are read and compared in a temporary folder elsewhere), except that
posts an export makes private (followers-only, direct) leave the dataset at once, trained on
or not (posts/ takes their new audience; the model is not retrained: it says so); the new model
is then built in a temporary folder inside the run and swapped in at the end, so a Ctrl-C
or a failure leaves the previous model in place. New posts are written to posts/ as soon as
they are known to be new, so that what was fetched is not fetched again; an update stopped
after that finds them there and trains on them the next time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Reporter, reporter_or_silent
from huggingtweets.core.options import (
    MAX_SEED,
    check_options,
    option,
    options_to_dict,
)
from huggingtweets.core.records import AccountPosts
from huggingtweets.core.runs import (
    RunDir,
    Staging,
    check_writable_dir,
    remove_stale_temporaries,
    temporary_prefix,
    write_json,
)
from huggingtweets.pipeline import EVALUATE_CHOICES
from huggingtweets.train.recipe import TrainingInterrupted, TrainOptions
from huggingtweets.update.data import (
    Key,
    NewDataset,
    Previous,
    check_posts_hold_the_dataset,
    collect_new,
    prepare_options_of,
    read_previous,
    rebuild_dataset,
    replayed_posts,
    row_key,
    run_settings,
)

STAGE = "update"
HISTORY_DIR = "history"


def train_option(name: str, default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """TrainOptions' field ``name`` (its range, help and flag) for another options class,
    with a default of its own and what else ``changes`` names: one definition of the bounds."""
    (train_field,) = (f for f in dataclasses.fields(TrainOptions) if f.name == name)
    default = train_field.default if default is dataclasses.MISSING else default
    return option(default, **{**train_field.metadata["option"], **changes})


@dataclass
class UpdateOptions:
    """How to update (``huggingtweets update`` options)."""

    num_train_epochs: float = train_option(
        "num_train_epochs",
        2.0,
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
    learning_rate: float | None = train_option(
        "learning_rate", default_help="the one the model was trained with"
    )
    seed: int = option(
        42, min=0, max=MAX_SEED, help="Seed of the replayed posts' draw and of training."
    )
    evaluate: str = option(
        "auto",
        choices=EVALUATE_CHOICES,
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

    Returns ``updated=False`` when there is nothing new to train on (see _drop_private).
    One process only: not meant to run under ``torchrun`` / ``accelerate launch``.
    """
    options = options or UpdateOptions()
    reporter = reporter_or_silent(reporter)
    sources = [sources] if isinstance(sources, str | Path) else [str(s) for s in sources]
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    previous = read_previous(run)
    prepare_options = prepare_options_of(previous, run)
    train_options = _train_options(previous, run, options)  # the run's own, checked now
    handles_in_run = [str(a.get("handle")) for a in previous.stats["accounts"]]
    known = {
        (handle, post.id): post.created_at
        for handle in handles_in_run
        if run.posts_path(handle).exists()
        for post in run.read_collected(handle).posts
    }
    reporter.start(STAGE, f"updating {run.root}")
    with tempfile.TemporaryDirectory(prefix="huggingtweets-update-") as tmp:
        scratch = RunDir(Path(tmp))
        scratch.posts_dir.mkdir()
        accounts, fresh, asked, export_end = collect_new(
            run, scratch, handles_in_run, sources, handles, source_options, reporter
        )
        check_posts_hold_the_dataset(run, previous, accounts)  # before the run changes
        reporter.start("prepare", "cleaning, splitting (as before), balancing")
        data = rebuild_dataset(accounts, previous, known, prepare_options)
        reporter.end("prepare", "dataset rebuilt", stats=data.stats)
        new = len(data.new_train) + len(data.new_valid)
        if not data.new_train:
            if not asked:
                raise _no_newer_source(run, previous)
            older = _older_export(export_end, sources, data.since)
            message = _nothing_new(data, new, run, prepare_options, older)
            message = _drop_private(run, scratch, data, previous, accounts, message, reporter)
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
            with reporter.cooperative():  # a Ctrl-C waits for the renames: all or none
                staging.commit()
        finally:
            staging.discard()
    model = os.stat(run.model_dir).st_ino
    try:
        reporter.raise_if_cancelled()
        return _train_and_swap(run, previous, data, options, train_options, reporter)
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted):
            raise
        with contextlib.suppress(OSError):
            if os.stat(run.model_dir).st_ino == model:  # not swapped yet
                raise UpdateInterrupted() from exc
        raise


class UpdateInterrupted(Cancelled):
    """Stopped (Ctrl-C) after the new posts were written to posts/, before the new model
    was in place: model/ is the previous model; the next update trains on the posts."""


def _no_newer_source(run: RunDir, previous: Previous) -> HuggingtweetsError:
    """Why an update of a run made from files (or the bundled sample) needs a SOURCE."""
    accounts = previous.stats["accounts"]
    if all(a.get("platform") == "sample" for a in accounts):
        samples = ", ".join(f"sample:{a.get('handle')}" for a in accounts)
        return HuggingtweetsError(
            f"{run.root} was made from the bundled sample ({samples}), which never has new "
            "posts: there is nothing to update it with (update is for a bot made from an "
            "account's own posts: a live account, or a newer export of it)"
        )
    return HuggingtweetsError(
        f"{run.root} was made from a file: give the newer export: "
        f"huggingtweets update {run.root} NEW.zip"
    )


def _older_export(newest: str | None, sources: Sequence[str], since: str | None) -> str:
    """What to add when the exports given end (``newest``, their newest post) before the
    run's newest post: an older export than the one the run was made from."""
    if not sources or since is None or newest is None or newest >= since:
        return ""
    which = sources[0] if len(sources) == 1 else "the exports given"
    return (
        f", the run's newest post ({which} ends at {newest[:10]} {newest[11:16]} UTC: an "
        "older export than the run's? give one made after it)"
    )


def _nothing_new(data: NewDataset, new: int, run: RunDir, prepare_options, older: str = "") -> str:
    """What an update with nothing to train on says (it changes nothing); ``older``: what
    an export older than the run's adds (see _older_export)."""
    if data.since:
        since = f"since {data.since[:10]} {data.since[11:16]} UTC{older}"
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
            f"rules the run was prepared with: {_drops(data, prepare_options)}): nothing changed"
        )
    return f"no new posts {since}: nothing changed"


def _made_private(previous: Previous, accounts: Sequence[AccountPosts]) -> set[Key]:
    """The posts of the run's dataset that the posts now (the exports given) hold as
    private (followers-only, direct): they must leave the dataset."""
    private = {(a.account.handle, p.id) for a in accounts for p in a.posts if p.is_private}
    return {key for key in previous.train | previous.valid if key[:2] in private}


def _private_left(run: RunDir, previous: Previous, private: set[Key], nothing_new: str) -> str:
    """What an update with nothing to train on says (``nothing_new``: "... nothing
    changed") when posts made private left the dataset."""
    count, trained = len(private), len({k[:2] for k in private & previous.train})
    left = (
        f"{nothing_new.removesuffix('nothing changed')}the model is unchanged; "
        f"{count} post{'s' if count > 1 else ''} the export marks followers-only or direct "
        f"left the dataset (kept in {run.posts_dir} as private)"
    )
    if not trained:
        return f"{left}; the model was never trained on them (they were held out)"
    # train's default base is gpt2: name the run's own, or the retrained bot changes base
    base = previous.metrics.get("base_model")
    again = f" --base-model {shlex.quote(base)}" if isinstance(base, str) and base else ""
    return (
        f"{left}; the current model was trained on {'them' if trained == count else trained}"
        f"{'' if trained == count else ' of them'} and still holds what it learned: only "
        f"training it again from the dataset removes that: huggingtweets train {run.root}{again}"
    )


def _drop_private(
    run: RunDir,
    scratch: RunDir,
    data: NewDataset,
    previous: Previous,
    accounts: Sequence[AccountPosts],
    nothing_new: str,
    reporter: Reporter,
) -> str:
    """With nothing to train on, the posts the exports make private still leave the
    dataset now: posts/ takes the exports' audience, and the dataset is rebuilt without
    them (every other post on its side of the split; new held-out posts stay new, for
    the update that trains), swapped in whole. The model is not touched. What the update
    says: ``nothing_new`` ("... nothing changed") when none was made private."""
    private = _made_private(previous, accounts)
    if not private:
        return nothing_new
    from huggingtweets.core.records import dump_jsonl

    check_writable_dir(run.root)
    run.remove_stale_temporaries()
    new = {row_key(r) for r in data.new_valid}
    valid_rows = [r for r in data.valid_rows if row_key(r) not in new]
    stats = data.stats
    for account in stats["accounts"]:
        handle = account["handle"]
        account["split"]["valid"] = sum(r["handle"] == handle for r in valid_rows)
    with _stage_folder(run) as stage:
        dataset = RunDir(stage).dataset_dir
        dataset.mkdir()
        (dataset / run.train_path.name).write_bytes(dump_jsonl(data.train_rows))
        (dataset / run.valid_path.name).write_bytes(dump_jsonl(valid_rows))
        write_json(dataset / run.stats_path.name, stats)
        staging = Staging()
        try:
            for path in scratch.posts_dir.iterdir():  # the accounts given or fetched anew
                if not path.is_file():
                    continue
                staging.write(run.posts_dir / path.name, path.read_bytes())
            with reporter.cooperative():  # a Ctrl-C waits for the renames: all or none
                staging.commit()
                os.replace(run.dataset_dir, stage / "previous")
                os.replace(dataset, run.dataset_dir)
        finally:
            staging.discard()
    return _private_left(run, previous, private, nothing_new)


# What each drop category of prepare says, with the run's setting that made it drop posts.
_DROP_WORDS = {
    "retweets": "reposts",
    "short": "too short",
    "private": "private",
    "replies": "replies (the run drops replies)",
    "too_long": "too long",
    "duplicates": "repeats (the run drops duplicates)",
}


def _drops(data: NewDataset, prepare_options) -> str:
    """The new posts dropped, by rule, the run's settings named: "2 reposts, 3 under the
    run's min_words of 6" (not a flag the user of update never gave)."""
    parts = []
    for category, count in data.dropped_by.items():
        if category == "below_min_words":
            words = f"under the run's min_words of {prepare_options.min_words}"
        else:
            words = _DROP_WORDS.get(category, category.replace("_", " "))
        parts.append(f"{count} {words}")
    return ", ".join(parts) or "reposts, short posts ..."


@contextlib.contextmanager
def _stage_folder(run: RunDir) -> Iterator[Path]:
    """A temporary folder inside the run (same file system: renames), always removed; a
    killed process's is removed by the next run (runs.remove_stale_temporaries)."""
    folder = Path(tempfile.mkdtemp(prefix=temporary_prefix(STAGE), dir=run.root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _train_options(previous: Previous, run: RunDir, options: UpdateOptions):
    """The options the model was trained with, on the current model as the base."""
    learning_rate = options.learning_rate
    if learning_rate is None:
        used = (previous.metrics.get("hyperparameters") or {}).get("learning_rate")
        learning_rate = used if isinstance(used, int | float) and 0 < used <= 1 else None
    return run_settings(
        TrainOptions,
        previous.metrics.get("options"),
        run.metrics_path,
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


def _train_and_swap(
    run: RunDir,
    previous: Previous,
    data: NewDataset,
    options: UpdateOptions,
    train_options: TrainOptions,
    reporter: Reporter,
) -> UpdateResult:
    from huggingtweets.core.records import dump_jsonl
    from huggingtweets.model.memorization import build_guard
    from huggingtweets.train.recipe import train

    replayed = replayed_posts(data, options.replay, options.seed)
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
        trained = train(fit_run, train_options, reporter=reporter)
        # The guard knows every post the model has ever trained on, not this round's only.
        build_guard(list(dict.fromkeys(r["text"] for r in data.train_rows)), new_run.model_dir)
        now = datetime.now(timezone.utc)
        metrics = _metrics(trained.metrics, previous, data, replayed, options, now)
        write_json(new_run.metrics_path, metrics)
        evaluation = _evaluate(run, new_run, previous, options, reporter)
        card = _write_card(run, new_run, reporter)
        reporter.raise_if_cancelled()
        history = _swap(run, new_run, stage, now, reporter)
    card_path = run.model_dir / card.name
    new = len(data.new_train) + len(data.new_valid)
    message = (
        f"{new} new post{'s' if new > 1 else ''} "
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
    previous: Previous,
    data: NewDataset,
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
    run: RunDir, new_run: RunDir, previous: Previous, options: UpdateOptions, reporter: Reporter
) -> dict | None:
    """evaluate the new model as the previous one was (its samples and seed)."""
    from huggingtweets.evaluate.evaluation import (
        EvaluateOptions,
        evaluate,
        evaluation_path,
        held_out_posts,
        quick_to_evaluate,
    )
    from huggingtweets.evaluate.style import MIN_POSTS

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


def _write_card(run: RunDir, new_run: RunDir, reporter: Reporter) -> Path:
    """The new model's card, for the Hub id the previous card was written for."""
    from huggingtweets.pipeline import write_card_reporting
    from huggingtweets.publish.hub import card_repo_id

    return write_card_reporting(new_run, reporter, repo_id=card_repo_id(run.model_dir))


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
    keep = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), dir=history_root))
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
    from huggingtweets.core.runs import current_umask

    return current_umask()
