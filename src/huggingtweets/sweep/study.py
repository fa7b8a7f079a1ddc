"""The search: an Optuna study in RUN_DIR/sweep/study.db, its trials run by the train stage,
pruned at the median, resumed after an interruption."""

from __future__ import annotations

import contextlib
import hashlib
import math
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import (
    OptionError,
    options_to_dict,
)
from huggingtweets.core.runs import RunDir
from huggingtweets.sweep.results import best_row, promote_trial, results_rows, write_results
from huggingtweets.sweep.space import STAGE, parse_space
from huggingtweets.train.recipe import TrainOptions

STUDY = "huggingtweets"
# Median pruning: after 2 finished trials, from a trial's first epoch.
PRUNE_AFTER_TRIALS = 2
PRUNE_FROM_EPOCH = 1


# -- the search -----------------------------------------------------------------------------


@dataclass
class SweepResult:
    run: RunDir
    rows: list[dict]  # one per trial, as in results.csv
    best: dict | None  # the best row, None when no trial finished
    promoted: bool
    results_csv: Path
    results_json: Path
    picture: Path


def sweep(
    run_dir: Path | str | RunDir,
    trials: int,
    *,
    base: TrainOptions | None = None,
    space: Mapping | None = None,
    promote: bool = True,
    reporter: Reporter | None = None,
) -> SweepResult:
    """Search hyper-parameters on RUN_DIR's dataset until ``trials`` trials are finished
    (see the module). ``base``: the options every trial starts from; ``space``: the
    ``parameters`` mapping (see :func:`parse_space`) over the default space."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise OptionError("trials", f"must be 1 or more (got {trials})")
    base = base or TrainOptions()
    if base.resume:
        raise OptionError("resume", "does not apply to a sweep: run the sweep again instead")
    if [n for n in base.report_to if n != "none"]:
        raise OptionError("report_to", "is not available for sweeps yet (it is for train)")
    params, fixed = parse_space(space)
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if not run.train_path.exists() or not run.valid_path.exists():
        raise HuggingtweetsError(
            f"{run.root} has no dataset/: run `huggingtweets prepare SOURCE... --out "
            f"{run.root}` first"
        )
    if base.base_model != "tiny":  # fail fast on a typo, before the study is created
        from huggingtweets.model.loading import resolve_model

        resolve_model(base.base_model)
    optuna = _import_optuna()
    folder = run.root / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder), _quiet(optuna):
        study = open_study(optuna, folder, base)
        retry_interrupted(optuna, study, run, reporter)
        search = Search(optuna, study, run, base, params, fixed, reporter)
        try:
            search.run_until(trials)
        finally:  # the table and picture, also of a sweep cut short
            rows = results_rows(study, run)
            paths = write_results(run, rows, study, trials)
        best = best_row(rows)
        promoted = False
        if promote and best is not None:
            promote_trial(run, best, reporter)
            promoted = True
    reporter.end(
        STAGE,
        f"best trial {best['trial']}: validation loss {best['eval_loss']:.4f}"
        if best
        else "no trial finished",
        best=best,
        promoted=promoted,
    )
    return SweepResult(run, rows, best, promoted, *paths)


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise HuggingtweetsError(
            "sweep needs Optuna: pip install 'huggingtweets[sweep]' (or optuna)"
        ) from None
    return optuna


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One sweep at a time per run: two would share trial folders and the study."""
    import fcntl

    with open(folder / "lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HuggingtweetsError(
                f"a sweep is already running on {folder.parent}: wait for it, or stop it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet(optuna) -> Iterator[None]:
    """Optuna's own log lines ("A new study created ...") stay off the terminal: the
    sweep reports as events. Restored afterwards."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


SQLITE_HEADER = b"SQLite format 3\x00"


def _study_problem(path: Path) -> str | None:
    """Why ``path`` cannot be this sweep's study (None: it can, or it is not there yet).
    Optuna would answer a damaged file with a long traceback, and a foreign or empty one
    by silently starting a new study over the trials already in trials/."""
    import sqlite3

    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return "it is not a file"
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return "it is empty"
    if header != SQLITE_HEADER:
        return "it is not an SQLite database"
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            names = (
                {row[0] for row in db.execute("SELECT study_name FROM studies")}
                if "studies" in tables
                else set()
            )
    except sqlite3.Error as exc:
        return f"it is damaged: {exc}"
    if STUDY not in names:
        return "it holds no huggingtweets sweep"
    return None


def _check_study_file(folder: Path) -> None:
    """A study.db that is not this sweep's: refused in one line (an empty one with no
    trial beside it, as a sweep stopped while creating it leaves, is started over)."""
    path = folder / "study.db"
    problem = _study_problem(path)
    trials = folder.parent / "trials"
    if problem is None and not path.exists():
        _check_no_orphan_trials(path, trials)
    if problem is None:
        return
    if problem == "it is empty" and not (trials.is_dir() and any(trials.iterdir())):
        path.unlink()
        return
    raise HuggingtweetsError(
        f"{path} is not a sweep study ({problem}): restore it, or delete it and {trials} to "
        "start the sweep over"
    )


def _check_no_orphan_trials(path: Path, trials: Path) -> None:
    """No study yet, but trials/ holds numbered trials (their study.db deleted or lost): a
    new study numbers its trials from 0, and would train over them."""
    numbered = (
        sorted((p.name for p in trials.iterdir() if p.name.isdecimal()), key=int)
        if trials.is_dir()
        else []
    )
    if numbered:
        shown = ", ".join(numbered[:5]) + (", ..." if len(numbered) > 5 else "")
        raise HuggingtweetsError(
            f"{trials} holds trials of a sweep ({shown}) whose study {path} is gone: a new "
            "sweep numbers its trials from 0 and would train over them; restore the study, "
            f"or move the numbered folders out of {trials} to start the sweep over"
        )


def dataset_fingerprint(run: RunDir) -> str:
    """What identifies the data a sweep's trials train and are validated on: a hash of
    dataset/train.jsonl and valid.jsonl (a moved run keeps it; another run, or the same
    one prepared again, has another)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in (run.train_path, run.valid_path):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\x00")
    return digest.hexdigest()


def _check_study_dataset(study, path: Path, run: RunDir) -> None:
    """A study records the dataset (and the run) it was made for; one made for another
    dataset (copied from another run, or the run prepared again since) is refused: its
    trials, their losses and trials/ folders, are not this run's."""
    fingerprint = dataset_fingerprint(run)
    stored = study.user_attrs.get("dataset")
    if stored is None:  # a new study (or one from before studies recorded it)
        study.set_user_attr("dataset", fingerprint)
        study.set_user_attr("run", str(run.root.resolve()))
        return
    if stored == fingerprint:
        return
    origin = study.user_attrs.get("run")
    if origin == str(run.root.resolve()):  # made here: this run was prepared again since
        raise HuggingtweetsError(
            f"{path} is the study of a sweep over this run's dataset as it was before "
            f"{run.dataset_dir} was prepared again: its trials trained on the old posts; to "
            f"sweep the new dataset, move {path.parent} and {run.root / 'trials'} aside (or "
            "delete them)"
        )
    made = f"it was made in {origin}" if origin else "it was made elsewhere"
    raise HuggingtweetsError(
        f"{path} is the study of a sweep over another dataset than {run.root / 'dataset'} "
        f"({made}; copied from another run, or this run was prepared again since): put it "
        f"back where it came from, or delete it and {run.root / 'trials'} to start the "
        "sweep over here"
    )


def open_study(optuna, folder: Path, base: TrainOptions):
    _check_study_file(folder)
    path = folder / "study.db"
    try:
        study = optuna.create_study(
            study_name=STUDY,
            storage=f"sqlite:///{path.resolve()}",
            direction="minimize",
            load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_FROM_EPOCH
            ),
        )
    except Exception as exc:  # damage the quick check above did not reach
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "sqlite3"):
            raise
        raise HuggingtweetsError(
            f"{path} is not a sweep study (it is damaged: {str(exc).splitlines()[0]}): "
            f"restore it, or delete it and {folder.parent / 'trials'} to start the sweep over"
        ) from None
    _check_study_dataset(study, path, RunDir(folder.parent))
    options = options_to_dict(base)
    stored = study.user_attrs.get("base_options")
    if stored is None:
        study.set_user_attr("base_options", options)
    elif stored != options:
        changed = sorted(k for k in set(stored) | set(options) if stored.get(k) != options.get(k))
        raise HuggingtweetsError(
            f"{folder} holds a sweep with other train options ({', '.join(changed)}): run it "
            f"with the same ones, or delete {folder} and {folder.parent / 'trials'} to start over"
        )
    # Seeded by how far the study got, so that a resumed sweep does not draw its first
    # trials' parameters again.
    study.sampler = optuna.samplers.TPESampler(seed=(base.seed + len(study.trials)) % 2**32)
    return study


def retry_interrupted(optuna, study, run: RunDir, reporter: Reporter) -> None:
    """Trials cut short (Ctrl-C, a crash, kill -9: still "running" in the study, as this
    process holds the lock) are queued again with their parameters."""
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        stale = trial.state == state.RUNNING
        if stale:  # its process is gone
            study._storage.set_trial_state_values(trial._trial_id, state=state.FAIL)
        if not (stale or trial.user_attrs.get("interrupted")) or trial.number in retried:
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        shutil.rmtree(run.root / "trials" / str(trial.number), ignore_errors=True)
        reporter.info(STAGE, f"trial {trial.number} was interrupted: it runs again")


class Search:
    """The loop: ask Optuna for parameters, train, tell it the validation loss."""

    def __init__(self, optuna, study, run, base, params, fixed, reporter) -> None:
        self.optuna, self.study, self.run = optuna, study, run
        self.base, self.params, self.fixed, self.reporter = base, params, fixed, reporter
        self._blocks: dict[int | None, int] = {}

    def finished(self) -> list:
        done = (self.optuna.trial.TrialState.COMPLETE, self.optuna.trial.TrialState.PRUNED)
        return self.study.get_trials(deepcopy=False, states=done)

    def run_until(self, trials: int) -> None:
        reporter = self.reporter
        done = len(self.finished())
        reporter.start(STAGE, f"{trials} trials ({done} done)", total=trials)
        reporter.progress(STAGE, min(done, trials), trials, loss=self._best_loss())
        for param in self.params.values():
            reporter.info(STAGE, f"searching {param.describe()}")
        while len(self.finished()) < trials:
            reporter.raise_if_cancelled()
            self._trial()
            reporter.progress(STAGE, len(self.finished()), trials, loss=self._best_loss())

    def _best_loss(self) -> float | None:
        values = [t.value for t in self.finished() if t.value is not None]
        return min(values) if values else None

    def _trial(self) -> None:
        from huggingtweets.train.recipe import train

        optuna, study = self.optuna, self.study
        trial = study.ask()
        values = {name: param.suggest(trial) for name, param in self.params.items()}
        options = self.trial_options({**self.fixed, **values})
        trial.set_user_attr("options", options_to_dict(options))
        shown = ", ".join(f"{k}={_show(v)}" for k, v in values.items())
        self.reporter.info(STAGE, f"trial {trial.number}: {shown}")
        pruning = PruneOnEval(trial)
        try:
            result = train(
                self.run,
                options,
                output_dir=self.run.root / "trials" / str(trial.number),
                reporter=self.reporter,
                callbacks=[pruning],
            )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, cancel: run again on resume
                trial.set_user_attr("interrupted", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        loss = float(result.metrics["eval_loss_after"])
        if not math.isfinite(loss):
            trial.set_user_attr("diverged", True)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif pruning.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, loss)
        how = "pruned, " if pruning.pruned else ""
        self.reporter.info(STAGE, f"trial {trial.number}: {how}validation loss {loss:.4f}")

    def trial_options(self, values: dict[str, Any]) -> TrainOptions:
        """The base options with a trial's values: the schedule named as transformers
        names a constant one with warm-up, the warm-up ratio as a number of steps."""
        values = dict(values)
        ratio = values.pop("warmup_ratio", None)
        if "num_train_epochs" in values:
            values["num_train_epochs"] = float(values["num_train_epochs"])
        options = replace(self.base, **values)
        if ratio:
            steps = max(1, round(ratio * self._optimizer_steps(options)))
            options = replace(options, warmup_steps=steps)
        if options.lr_scheduler_type == "constant" and options.warmup_steps:
            options = replace(options, lr_scheduler_type="constant_with_warmup")
        return options

    def _optimizer_steps(self, options: TrainOptions) -> int:
        """How many optimizer steps the trial will take (as Trainer counts them, in one
        process), from the number of training blocks its tokenizer makes."""
        if options.max_steps > 0:
            return options.max_steps
        if options.block_size not in self._blocks:
            self._blocks[options.block_size] = _train_blocks(self.run, options)
        batches = math.ceil(self._blocks[options.block_size] / options.per_device_train_batch_size)
        per_epoch = max(math.ceil(batches / options.gradient_accumulation_steps), 1)
        return math.ceil(options.num_train_epochs * per_epoch)


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _train_blocks(run: RunDir, options: TrainOptions) -> int:
    """The number of blocks train packs the training posts into, with the base model's
    tokenizer (for ``tiny``: the one train builds from the same posts and seed)."""
    import tempfile

    from transformers import AutoConfig

    from huggingtweets.model.loading import context_length, load_tokenizer, resolve_model
    from huggingtweets.train.options import DEFAULT_BLOCK_SIZE
    from huggingtweets.train.packing import pack_blocks, read_texts

    texts = read_texts(run.train_path)
    with tempfile.TemporaryDirectory() as tmp:
        if options.base_model == "tiny":
            from transformers.utils import logging as hf_logging

            from huggingtweets.model.tiny import build_tiny_base

            shown = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # saving draws a bar; progress is events
            try:
                resolved = resolve_model(build_tiny_base(texts, Path(tmp), seed=options.seed))
            finally:
                if shown:
                    hf_logging.enable_progress_bar()
        else:
            resolved = resolve_model(options.base_model)
        tokenizer = load_tokenizer(resolved)
        config = AutoConfig.from_pretrained(
            resolved.location, local_files_only=resolved.local_files_only
        )
    context = context_length(config) or min(tokenizer.model_max_length, 1024)
    block_size = options.block_size or min(DEFAULT_BLOCK_SIZE, context)
    return len(pack_blocks(texts, tokenizer, block_size)[0])


class PruneOnEval(TrainerCallback):
    """Each epoch's validation loss reported to the Optuna trial; when the pruner finds
    it bad, training stops after that epoch (the model so far is kept and saved)."""

    def __init__(self, trial) -> None:
        self.trial = trial
        self.pruned = False
        self.training = False
        self.reported: set[int] = set()

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # Not the evaluations before and after training, which train.py runs itself.
        if not self.training or not metrics or "eval_loss" not in metrics:
            return
        epoch = max(1, math.ceil((state.epoch or 0) - 1e-6))
        if epoch in self.reported:
            return
        self.reported.add(epoch)
        self.trial.report(float(metrics["eval_loss"]), step=epoch)
        if self.trial.should_prune():
            self.pruned = True
            control.should_training_stop = True
