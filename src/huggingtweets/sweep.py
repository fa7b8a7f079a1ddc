"""``huggingtweets sweep``: a hyper-parameter search over the train stage, with Optuna.

The original tuned its recipe with a W&B sweep (``dev/sweep.yaml``); its space is the
default here: learning rate log-uniform between e^-14 and e^-6, 1 to 10 epochs, a
constant / linear / cosine schedule, 0, 10 or 20 % of the steps as warm-up, gradient
accumulation 1, 4 or 8. Each trial is one ``train(run, options, output_dir=
RUN_DIR/trials/<n>)`` on the run's dataset; the objective is the best validation loss
(the checkpoint train keeps). A trial whose validation loss after an epoch is worse than
the median of the earlier trials' at that epoch stops early (Optuna's median pruner).

The study lives in ``RUN_DIR/sweep/study.db`` (SQLite): running the same command again
after Ctrl-C, a crash or ``kill -9`` continues it. Finished trials are never repeated; a
trial that was interrupted is run again with the same parameters. ``--trials N`` is the
number of finished trials wanted in all, so a larger N later extends the search.

Written: ``RUN_DIR/sweep/results.csv`` and ``results.json`` (one row per trial) and
``sweep.png`` (the loss by trial and epoch, and the parameters' importances). At the end
the best trial is promoted: its model/ (with a fresh card) and metrics.json become the
run's own. Progress is reported as events (stage "sweep", and "train" for each trial).

    from huggingtweets.sweep import sweep
    sweep("runs/me", 20, base=TrainOptions(base_model="tiny"), space={
        "learning_rate": {"min": 1e-4, "max": 3e-3, "distribution": "log_uniform_values"},
    })
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from transformers import TrainerCallback

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import (
    OptionError,
    check_value,
    load_config_file,
    option_specs,
    options_to_dict,
)
from huggingtweets.core.runs import RunDir, atomic_open, atomic_write, replace_dir, write_json
from huggingtweets.train.recipe import TrainOptions

STAGE = "sweep"
STUDY = "huggingtweets"
# Options a sweep may search over; warmup_ratio is the sweep's own (warm-up as a share of
# the optimizer steps, turned into warmup_steps for each trial).
SEARCHABLE = (
    "learning_rate",
    "num_train_epochs",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
    "block_size",
    "dropout",
    "lora",
    "lora_r",
    "lora_alpha",
    "early_stopping_patience",
)
# W&B's distribution names (the original's sweep.yaml), with Optuna's meaning.
DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "log_uniform")
# Median pruning: after 2 finished trials, from a trial's first epoch.
PRUNE_AFTER_TRIALS = 2
PRUNE_FROM_EPOCH = 1


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a range (``low``..``high``, log-scaled or not, whole
    numbers or not) or a list of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return f"{self.name} in {list(self.choices)}"
        kind = "log-uniform" if self.log else "uniform"
        kind = ("whole, " if self.integer else "") + kind
        return f"{self.name} {self.low:g}..{self.high:g} ({kind})"


DEFAULT_SPACE = {
    "learning_rate": Param("learning_rate", math.exp(-14), math.exp(-6), log=True),
    "num_train_epochs": Param("num_train_epochs", 1, 10, integer=True),
    "lr_scheduler_type": Param("lr_scheduler_type", choices=("constant", "linear", "cosine")),
    "warmup_ratio": Param("warmup_ratio", choices=(0.0, 0.1, 0.2)),
    "gradient_accumulation_steps": Param("gradient_accumulation_steps", choices=(1, 4, 8)),
}


# -- the space, from data -------------------------------------------------------------------


def _spec(name: str):
    return next(s for s in option_specs(TrainOptions) if s.name == name)


def _check(name: str, value: Any, where: str) -> Any:
    """A value of parameter ``name`` as its option checks it (numbers written as text in
    YAML, such as 1e-5, read as numbers)."""
    if name == "warmup_ratio":
        value = _number(value, name, where)
        if not 0 <= value < 1:
            raise HuggingtweetsError(f"{where}: warmup_ratio must be >=0, <1 (got {value:g})")
        return float(value)
    spec = _spec(name)
    if spec.kind in (int, float) and isinstance(value, str):
        value = _number(value, name, where)
        if spec.kind is int and float(value).is_integer():
            value = int(value)
    try:
        return check_value(spec, value)
    except OptionError as exc:
        raise HuggingtweetsError(f"{where}: {exc.problem}") from None


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        raise HuggingtweetsError(f"{where}: expected a number (got {value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HuggingtweetsError(f"{where}: expected a number (got {value!r})") from None
    if not math.isfinite(number):
        raise HuggingtweetsError(f"{where}: expected a finite number (got {value!r})")
    return int(number) if isinstance(value, int) else number


def parse_space(data: Mapping | None, *, source: str = "sweep config") -> tuple[dict, dict]:
    """(parameters searched, parameters fixed) from a ``parameters:`` mapping over the
    default space. Each entry is ``{values: [...]}``, ``{min: A, max: B}`` (with
    ``distribution: uniform | int_uniform | log_uniform_values | log_uniform`` (the last,
    as in W&B, takes e-exponents), or ``log: true``), or a single value (fixed)."""
    space = dict(DEFAULT_SPACE)
    fixed: dict[str, Any] = {}
    if data is None:
        return space, fixed
    if not isinstance(data, Mapping):
        raise HuggingtweetsError(f"{source}: parameters must be a mapping of option names")
    for raw_name, spec in data.items():
        name = str(raw_name).replace("-", "_")
        where = f"{source}: parameters.{name}"
        if name not in SEARCHABLE:
            raise HuggingtweetsError(
                f"{source}: unknown parameter {raw_name!r}; known: {', '.join(SEARCHABLE)}"
            )
        space.pop(name, None)
        fixed.pop(name, None)
        if not isinstance(spec, Mapping):
            fixed[name] = _check(name, spec, where)
        elif set(spec) == {"value"}:
            fixed[name] = _check(name, spec["value"], where)
        else:
            space[name] = _param(name, spec, where)
    given = {str(name).replace("-", "_") for name in data}
    if {"warmup_ratio", "warmup_steps"} <= given:
        raise HuggingtweetsError(f"{source}: give warmup_ratio or warmup_steps, not both")
    if "warmup_steps" in given:  # it replaces the default warm-up ratio
        space.pop("warmup_ratio", None)
    return space, fixed


def _param(name: str, spec: Mapping, where: str) -> Param:
    unknown = sorted(set(map(str, spec)) - {"values", "min", "max", "distribution", "log"})
    if unknown:
        raise HuggingtweetsError(
            f"{where}: unknown key {unknown[0]!r} (use values, or min and max with "
            "distribution or log)"
        )
    if "values" in spec:
        if set(spec) != {"values"}:
            raise HuggingtweetsError(f"{where}: values cannot be combined with a range")
        values = spec["values"]
        if not isinstance(values, list | tuple) or not values:
            raise HuggingtweetsError(f"{where}: values is empty: give at least one")
        checked = tuple(dict.fromkeys(_check(name, v, where) for v in values))
        return Param(name, choices=checked)
    if "min" not in spec or "max" not in spec:
        raise HuggingtweetsError(f"{where}: give values, or both min and max")
    kind = _spec(name).kind if name != "warmup_ratio" else float
    if kind not in (int, float):
        raise HuggingtweetsError(f"{where}: takes values: [...], not a range")
    distribution = spec.get("distribution")
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise HuggingtweetsError(
            f"{where}: unknown distribution {distribution!r}; one of {', '.join(DISTRIBUTIONS)}"
        )
    low = _number(spec["min"], name, where)
    high = _number(spec["max"], name, where)
    if distribution == "log_uniform":  # W&B's: the bounds are exponents of e
        low, high = math.exp(low), math.exp(high)
    if low > high:
        raise HuggingtweetsError(f"{where}: the range {low:g}..{high:g} is empty (min > max)")
    log = bool(spec.get("log")) or distribution in ("log_uniform", "log_uniform_values")
    if distribution is None:
        integer = isinstance(low, int) and isinstance(high, int)
    else:
        integer = distribution == "int_uniform"
    if kind is int and not integer:
        if distribution is not None:
            raise HuggingtweetsError(f"{where}: a whole number: use int_uniform")
        integer = True
    if log and low <= 0:
        raise HuggingtweetsError(f"{where}: a log scale needs min > 0 (got {low:g})")
    for bound in (low, high):
        _check(name, int(bound) if integer else float(bound), where)
    return Param(name, float(low), float(high), integer=integer, log=log)


def load_sweep_config(path: Path) -> tuple[dict[str, Any], dict | None]:
    """(train options, parameters) from a YAML or JSON file: train's option names at the
    top (``base_model: tiny``) and the search space under ``parameters:``."""
    data = load_config_file(Path(path))
    space = data.pop("parameters", None)
    names = {spec.name for spec in option_specs(TrainOptions)}
    for key in data:
        if key not in names or key in ("resume", "report_to"):
            known = ", ".join(sorted(names - {"resume", "report_to"}))
            raise HuggingtweetsError(f"{path}: unknown option {key!r}; known: parameters, {known}")
    return data, space


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
    with _locked(folder), _quiet(optuna):
        study = _open_study(optuna, folder, base)
        _retry_interrupted(optuna, study, run, reporter)
        search = _Search(optuna, study, run, base, params, fixed, reporter)
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
def _locked(folder: Path) -> Iterator[None]:
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
    if problem is None:
        return
    trials = folder.parent / "trials"
    if problem == "it is empty" and not (trials.is_dir() and any(trials.iterdir())):
        path.unlink()
        return
    raise HuggingtweetsError(
        f"{path} is not a sweep study ({problem}): restore it, or delete it and {trials} to "
        "start the sweep over"
    )


def _open_study(optuna, folder: Path, base: TrainOptions):
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


def _retry_interrupted(optuna, study, run: RunDir, reporter: Reporter) -> None:
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


class _Search:
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
    from huggingtweets.train.packing import pack_blocks, read_texts
    from huggingtweets.train.recipe import DEFAULT_BLOCK_SIZE

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


# -- results ----------------------------------------------------------------------------


def _trial_metrics(run: RunDir, number: int) -> dict:
    path = run.root / "trials" / str(number) / "metrics.json"
    try:
        metrics = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def results_rows(study, run: RunDir) -> list[dict]:
    """One row per trial: its state, losses, parameters and where its model is."""
    names = list(dict.fromkeys(name for t in study.trials for name in t.params))
    rows = []
    for trial in study.trials:
        metrics = _trial_metrics(run, trial.number)
        state = trial.state.name.lower()
        loss = metrics.get("eval_loss_after") if state in ("complete", "pruned") else None
        options = trial.user_attrs.get("options") or {}
        note = []
        if trial.user_attrs.get("retry_of") is not None:
            note.append(f"retry of trial {trial.user_attrs['retry_of']}")
        if trial.user_attrs.get("interrupted"):
            note.append("interrupted")
        if trial.user_attrs.get("diverged"):
            note.append("diverged")
        elif state == "pruned" and trial.intermediate_values:
            note.append(f"pruned after epoch {max(trial.intermediate_values)}")
        output = run.root / "trials" / str(trial.number)
        rows.append(
            {
                "trial": trial.number,
                "state": state,
                "eval_loss": loss,
                "perplexity": metrics.get("perplexity_after") if loss is not None else None,
                "eval_loss_before": metrics.get("eval_loss_before"),
                "best_epoch": metrics.get("best_epoch"),
                "epochs_run": metrics.get("epochs_run"),
                **{name: trial.params.get(name) for name in names},
                "warmup_steps": options.get("warmup_steps"),
                "train_seconds": (metrics.get("timings") or {}).get("train_seconds"),
                "output": str(output.relative_to(run.root)),
                "has_model": (output / "model" / "config.json").exists(),
                "best": False,
                "note": "; ".join(note),
            }
        )
    best = best_row(rows)
    for row in rows:
        row["best"] = best is not None and row["trial"] == best["trial"]
    return rows


def best_row(rows: list[dict]) -> dict | None:
    """The finished trial with the lowest validation loss whose model is there."""
    candidates = [
        r
        for r in rows
        if r["state"] in ("complete", "pruned")
        and r["has_model"]
        and isinstance(r["eval_loss"], int | float)
        and math.isfinite(r["eval_loss"])
    ]
    return min(candidates, key=lambda r: (r["eval_loss"], r["trial"]), default=None)


def write_results(run: RunDir, rows: list[dict], study, trials: int) -> tuple[Path, Path, Path]:
    folder = run.root / "sweep"
    csv_path, json_path, picture = (
        folder / "results.csv",
        folder / "results.json",
        folder / "sweep.png",
    )
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["trial"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, text.getvalue())
    best = best_row(rows)
    write_json(
        json_path,
        {
            "study": str(folder / "study.db"),
            "trials_asked": trials,
            "best_trial": best["trial"] if best else None,
            "base_options": study.user_attrs.get("base_options"),
            "rows": rows,
        },
    )
    with atomic_open(picture) as handle:
        plot_sweep(study, rows, handle)
    return csv_path, json_path, picture


PANEL_SIZE = (5.0, 4.4)  # inches, one of the picture's three panels
PANEL_DPI = 100


def plot_sweep(study, rows: list[dict], out) -> None:
    """The sweep as one picture of three panels, each drawn by Optuna's own
    ``optuna.visualization.matplotlib``: the validation loss by trial (best so far as a
    line, the loss before training dashed), by epoch for every trial, and the
    parameters' importances (Optuna's PED-ANOVA evaluator); a title line above them."""
    from PIL import Image, ImageDraw, ImageFont

    panels = [Image.open(io.BytesIO(png)) for png in _optuna_panels(study, rows)]
    title_height = 36
    width = sum(panel.width for panel in panels)
    height = max(panel.height for panel in panels) + title_height
    picture = Image.new("RGB", (width, height), "white")
    x = 0
    for panel in panels:
        picture.paste(panel, (x, title_height))
        x += panel.width
    font = ImageFont.load_default(size=18)
    ImageDraw.Draw(picture).text(
        (width // 2, title_height // 2), _sweep_title(rows), fill="black", font=font, anchor="mm"
    )
    picture.save(out, format="PNG")


def _optuna_panels(study, rows: list[dict]) -> list[bytes]:
    """The three panels as PNG files. Optuna draws through pyplot and sets its "ggplot"
    style globally: rc_context puts the caller's style back, and each figure is closed."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")  # as evaluate/report.py: no window, any thread
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pngs = []
    with matplotlib.rc_context(), warnings.catch_warnings():
        # Optuna marks its matplotlib plots experimental; their interface is pinned by use here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna_plots.plot_optimization_history(study, target_name="validation loss")
        befores = {round(r["eval_loss_before"], 6) for r in rows if _finite(r["eval_loss_before"])}
        if len(befores) == 1:
            history.axhline(befores.pop(), ls="--", color="#777777", label="before training")
            history.legend(loc="upper right", fontsize=8)
        by_epoch = optuna_plots.plot_intermediate_values(study)
        by_epoch.set(xlabel="epoch", ylabel="validation loss")
        if len(by_epoch.lines) > 12:  # a legend of more trials hides the lines
            by_epoch.get_legend().remove()
        importance = _importance_axes(study, len(complete))
        for axes in (history, by_epoch, importance):
            figure = axes.get_figure()
            figure.set_size_inches(*PANEL_SIZE)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=PANEL_DPI)
            plt.close(figure)
            pngs.append(buffer.getvalue())
    return pngs


def _importance_axes(study, completed: int):
    """Optuna's importance plot, or a panel saying why there is none."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    why = "needs 2 or more\ncompleted trials"  # with fewer, PED-ANOVA calls all equal
    if completed >= 2:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        try:
            axes = plot_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError) as exc:  # e.g. no parameter varied
            from huggingtweets.model.loading import first_line

            why = f"not computed:\n{first_line(exc)}"
        else:
            axes.set_xlabel(f"importance (PED-ANOVA, {completed} completed trials)")
            return axes
    axes = plt.figure().add_subplot()
    axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    axes.set_title("Hyperparameter Importances")
    axes.set_axis_off()
    return axes


def _sweep_title(rows: list[dict]) -> str:
    count = sum(r["state"] == "complete" for r in rows)
    pruned = sum(r["state"] == "pruned" for r in rows)
    title = f"Sweep: {count} completed and {pruned} pruned trials"
    if len(rows) > count + pruned:
        title += f" ({len(rows) - count - pruned} failed or interrupted)"
    best = best_row(rows)
    if best is not None:
        title += f"; best: trial {best['trial']}, validation loss {best['eval_loss']:.4f}"
    return title


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def promote_trial(run: RunDir, best: dict, reporter: Reporter) -> None:
    """The best trial's model (with a card written for it) and metrics.json become the
    run's: the folder is swapped in whole, then metrics.json replaced."""
    from huggingtweets.pipeline import write_card_reporting

    trial = RunDir(run.root).trial(str(best["trial"]))
    reporter.info(STAGE, f"promoting trial {best['trial']} to {run.root / 'model'}")
    write_card_reporting(trial, reporter)
    with replace_dir(RunDir(run.root).model_dir) as tmp:
        shutil.copytree(trial.model_dir, tmp, dirs_exist_ok=True)
    metrics = _trial_metrics(run, best["trial"])
    metrics["sweep"] = {
        "trial": best["trial"],
        "results": "sweep/results.csv",
        "params": {k: v for k, v in best.items() if k in SEARCHABLE},
    }
    write_json(RunDir(run.root).metrics_path, metrics)
