"""`huggingtweets sweep`: Optuna over tiny trainings, interrupted, resumed and promoted."""

from __future__ import annotations

import contextlib
import csv
import shutil
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from conftest import run_cli

pytest.importorskip("optuna")

from huggingtweets import Reporter, TrainOptions, prepare
from huggingtweets.sweep import (
    DEFAULT_SPACE,
    PruneOnEval,
    load_sweep_config,
    parse_space,
    sweep,
)
from huggingtweets.sweep.study import Search

# Small and quick: two optimizer steps a trial, the learning rate, schedule and warm-up
# searched, epochs and accumulation fixed (max_steps decides the length anyway).
CONFIG = """\
base_model: tiny
max_steps: 2
block_size: 64
per_device_train_batch_size: 8
parameters:
  learning_rate: {min: 1e-4, max: 3e-3, distribution: log_uniform_values}
  num_train_epochs: 1
  gradient_accumulation_steps: {value: 1}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("sweep") / "romeo"
    prepare(run, ["sample:romeo"])
    return run


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep-config") / "sweep.yaml"
    path.write_text(CONFIG)
    return path


def _rows(run: Path) -> list[dict]:
    with (run / "sweep" / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def swept(run_dir, config):
    """A sweep of 3 trials cancelled in the middle of its second trial (as Ctrl-C or a web
    app's stop button would), then run again with the CLI: it finishes the sweep."""
    options, space = load_sweep_config(config)
    seen = {"finished": 0, "train_starts": 0}
    reporter = Reporter()

    def cancel_in_trial_two(event) -> None:
        if event.stage == "sweep" and event.kind == "progress":
            seen["finished"] = event.step
        if event.stage == "train" and event.kind == "start":
            seen["train_starts"] += 1
        in_trial_two = seen["finished"] == 1 and event.stage == "train"
        if in_trial_two and event.kind == "progress" and (event.step or 0) >= 1:
            reporter.cancel()

    reporter.listeners.append(cancel_in_trial_two)
    with pytest.raises(KeyboardInterrupt):  # TrainingInterrupted, a Cancelled
        sweep(run_dir, 3, base=TrainOptions(**options), space=space, reporter=reporter)
    first = _rows(run_dir)
    trial0 = run_dir / "trials" / "0" / "metrics.json"
    trial0_written = trial0.stat().st_mtime_ns
    result = run_cli("sweep", run_dir, "--trials", "3", "--config", config)
    return SimpleNamespace(
        run=run_dir,
        first=first,
        seen=seen,
        trial0_unchanged=trial0.stat().st_mtime_ns == trial0_written,
        cli=result,
        rows=_rows(run_dir),
    )


def test_an_interrupted_sweep_resumes_without_repeating_finished_trials(swept):
    assert swept.seen["train_starts"] == 2  # trial 0, then trial 1 cut short
    assert [(r["trial"], r["state"], r["note"]) for r in swept.first] == [
        ("0", "complete", ""),
        ("1", "fail", "interrupted"),
    ]
    states = [(r["trial"], r["state"]) for r in swept.rows]
    assert states[:3] == [("0", "complete"), ("1", "fail"), ("2", "complete")]
    assert states[3][0] == "3" and states[3][1] in ("complete", "pruned")
    assert swept.trial0_unchanged  # trial 0 was not trained again
    retry = swept.rows[2]
    assert retry["note"] == "retry of trial 1"
    # the interrupted trial runs again with its own parameters
    for name in ("learning_rate", "lr_scheduler_type", "warmup_ratio"):
        assert retry[name] == swept.first[1][name]
    assert not (swept.run / "trials" / "1").exists()  # its partial checkpoints removed
    assert "trial 1 was interrupted: it runs again" in swept.cli.stderr


def test_the_best_trial_is_promoted_with_its_card(swept):
    finished = [r for r in swept.rows if r["state"] in ("complete", "pruned")]
    best = min(finished, key=lambda r: float(r["eval_loss"]))
    assert [r["trial"] for r in swept.rows if r["best"] == "True"] == [best["trial"]]
    summary = orjson.loads((swept.run / "sweep" / "results.json").read_bytes())
    assert summary["best_trial"] == int(best["trial"])
    assert len(summary["rows"]) == 4
    metrics = orjson.loads((swept.run / "metrics.json").read_bytes())
    assert metrics["eval_loss_after"] == pytest.approx(float(best["eval_loss"]))
    assert metrics["sweep"]["trial"] == int(best["trial"])
    model = swept.run / "model"
    trial_model = swept.run / "trials" / best["trial"] / "model"
    weights = "model.safetensors"
    assert (model / weights).read_bytes() == (trial_model / weights).read_bytes()
    assert (model / "README.md").is_file() and (model / "preview.png").is_file()
    assert f"Trial {best['trial']} promoted" in swept.cli.stdout


def test_the_sweep_picture(swept):
    from PIL import Image

    with Image.open(swept.run / "sweep" / "sweep.png") as picture:
        assert picture.format == "PNG"
        assert picture.size[0] > 2 * picture.size[1]  # three panels side by side


def test_a_finished_sweep_run_again_trains_nothing(swept, config):
    result = run_cli("sweep", swept.run, "--trials", "3", "--config", config, "--no-promote")
    assert "evaluating the base model" not in result.stderr
    assert len(_rows(swept.run)) == 4
    assert "(not promoted)" in result.stdout


# -- bad input: one line, exit 2, nothing trained ----------------------------------------


@pytest.mark.parametrize(
    ("yaml", "args", "says"),
    [
        ("", ("--trials", "0"), "--trials must be 1 or more (got 0)"),
        ("parameters: {momentum: {values: [0.9]}}", (), "unknown parameter 'momentum'"),
        ("parameters: {learning_rate: {min: 1e-3, max: 1e-5}}", (), "is empty (min > max)"),
        ("parameters: {gradient_accumulation_steps: {values: []}}", (), "values is empty"),
        ("parameters: {lr_scheduler_type: {values: [cosine, wavy]}}", (), "must be one of"),
        ("parameters: {learning_rate: {min: 0, max: 1e-3, log: true}}", (), "needs min > 0"),
        ("parameters: {learning_rate: {min: 1e-5, max: 5}}", (), "must be >0, <=1 (got 5)"),
        ("parameters: {warmup_ratio: {values: [0.1]}, warmup_steps: 3}", (), "not both"),
        ("report_to: wandb", (), "unknown option 'report_to'"),
    ],
)
def test_bad_sweep_input(run_dir, tmp_path, yaml, args, says):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml)
    argv = ["sweep", run_dir, "--config", config, *(args or ("--trials", "2"))]
    result = run_cli(*argv, expect=2)
    assert says in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_a_run_without_dataset_is_refused(tmp_path):
    result = run_cli("sweep", tmp_path / "nothing", "--trials", "2", expect=2)
    assert "has no dataset/" in result.stderr
    assert not (tmp_path / "nothing" / "sweep").exists()


def _foreign_sqlite(path: Path) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('not a study')")
        db.commit()


def _truncated_study(path: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="huggingtweets", storage=f"sqlite:///{path}")
    for _ in range(20):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("learning_rate", 1e-4, 1e-3))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda path: path.mkdir(), "it is not a file"),
        (lambda path: path.write_bytes(b""), "it is empty"),
        (lambda path: path.write_bytes(b"\x00garbage" * 100), "it is not an SQLite database"),
        (_foreign_sqlite, "it holds no huggingtweets sweep"),
        (_truncated_study, "it is damaged: database disk image is malformed"),
    ],
    ids=["directory", "empty", "not-sqlite", "foreign", "truncated"],
)
def test_a_study_db_that_is_not_the_sweep_s_is_refused_in_one_line(run_dir, tmp_path, make, says):
    """Not a traceback, and not a new study trained over the trials already there."""
    run = tmp_path / "run"
    shutil.copytree(run_dir / "dataset", run / "dataset")
    (run / "trials" / "0").mkdir(parents=True)
    (run / "sweep").mkdir()
    study = run / "sweep" / "study.db"
    make(study)
    kept = study.read_bytes() if study.is_file() else None
    result = run_cli("sweep", run, "--trials", "1", "--base-model", "tiny", expect=2)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{study} is not a sweep study ({says}" in result.stderr
    assert "delete it and " in result.stderr and str(run / "trials") in result.stderr
    assert (study.read_bytes() if study.is_file() else None) == kept
    assert [p.name for p in (run / "trials").iterdir()] == ["0"]


def test_a_study_copied_from_another_run_is_refused_a_moved_run_is_not(swept, tmp_path, config):
    """The copied study's trials trained on another dataset: run on, its table would put
    that run's losses beside this run's trial folders. A whole run moved keeps its study."""
    other = tmp_path / "juliet"
    prepare(other, ["sample:juliet"])
    (other / "sweep").mkdir()
    study = other / "sweep" / "study.db"
    shutil.copyfile(swept.run / "sweep" / "study.db", study)
    kept = study.read_bytes()
    result = run_cli("sweep", other, "--trials", "5", "--config", config, expect=2)
    assert result.stderr == (
        f"Error: {study} is the study of a sweep over another dataset than {other / 'dataset'} "
        f"(it was made in {swept.run.resolve()}; copied from another run, or this run was "
        "prepared again since): put it back where it came from, or delete it and "
        f"{other / 'trials'} to start the sweep over here\n"
    )
    assert study.read_bytes() == kept and not (other / "trials").exists()

    moved = tmp_path / "moved"
    shutil.copytree(swept.run, moved)
    result = run_cli("sweep", moved, "--trials", "3", "--config", config, "--no-promote")
    assert "evaluating the base model" not in result.stderr  # nothing trained again
    assert len(_rows(moved)) == 4


def test_trials_without_their_study_are_not_trained_over(run_dir, tmp_path):
    """study.db deleted (or lost) while trials/ holds a sweep's trials: a new study numbers
    its trials from 0 again, and trial 0 would be trained into trials/0, the old one's
    model gone. Refused in one line; a folder of another name in trials/ is no trial."""
    run = tmp_path / "run"
    shutil.copytree(run_dir / "dataset", run / "dataset")
    (run / "trials" / "0" / "model").mkdir(parents=True)
    (run / "trials" / "0" / "metrics.json").write_text('{"eval_loss_after": 3.0}')
    (run / "trials" / "mine").mkdir()  # not a sweep's: no number
    tiny = ("--base-model", "tiny", "--max-steps", "1")
    result = run_cli("sweep", run, "--trials", "1", *tiny, expect=2)
    assert result.stderr == (
        f"Error: {run / 'trials'} holds trials of a sweep (0) whose study "
        f"{run / 'sweep' / 'study.db'} is gone: a new sweep numbers its trials from 0 and "
        "would train over them; restore the study, or move the numbered folders out of "
        f"{run / 'trials'} to start the sweep over\n"
    )
    assert (run / "trials" / "0" / "metrics.json").read_text() == '{"eval_loss_after": 3.0}'
    assert not (run / "sweep" / "study.db").exists()


def test_a_run_prepared_again_says_so_not_copied_from_elsewhere(run_dir, tmp_path):
    """The study was made in this very run, whose dataset changed since: not "put it back
    where it came from" (it is there); the old study and trials are to be moved aside,
    nothing of them lost."""
    import optuna

    from huggingtweets.sweep.study import open_study

    run = tmp_path / "run"
    shutil.copytree(run_dir / "dataset", run / "dataset")
    (run / "sweep").mkdir()
    open_study(optuna, run / "sweep", TrainOptions(base_model="tiny"))
    valid = run / "dataset" / "valid.jsonl"
    valid.write_text("".join(valid.read_text().splitlines(keepends=True)[1:]))  # prepared again
    study = run / "sweep" / "study.db"
    kept = study.read_bytes()
    result = run_cli("sweep", run, "--trials", "1", "--base-model", "tiny", expect=2)
    assert result.stderr == (
        f"Error: {study} is the study of a sweep over this run's dataset as it was before "
        f"{run / 'dataset'} was prepared again: its trials trained on the old posts; to sweep "
        f"the new dataset, move {run / 'sweep'} and {run / 'trials'} aside (or delete them)\n"
    )
    assert study.read_bytes() == kept


def test_an_empty_study_db_without_trials_starts_over(run_dir, tmp_path):
    """A sweep stopped while creating its study leaves an empty file and no trial."""
    import optuna

    from huggingtweets.sweep.study import open_study

    shutil.copytree(run_dir / "dataset", tmp_path / "dataset")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "study.db").write_bytes(b"")
    study = open_study(optuna, tmp_path / "sweep", TrainOptions(base_model="tiny"))
    assert study.trials == [] and (tmp_path / "sweep" / "study.db").stat().st_size > 0


# -- the parts -----------------------------------------------------------------------------


def test_the_space_reads_wandb_style_and_yaml_numbers():
    space, fixed = parse_space(
        {
            "learning_rate": {"min": -14, "max": -6, "distribution": "log_uniform"},
            "num_train_epochs": {"min": 1, "max": 3},
            "per_device_train_batch_size": {"values": ["2", 4]},
            "dropout": "1e-1",
            "lr_scheduler_type": {"value": "linear"},
        }
    )
    lr = space["learning_rate"]
    assert lr.log and lr.low == pytest.approx(8.315e-7, rel=1e-3)
    assert space["num_train_epochs"].integer
    assert space["per_device_train_batch_size"].choices == (2, 4)
    assert fixed == {"dropout": 0.1, "lr_scheduler_type": "linear"}
    assert set(space) == {*DEFAULT_SPACE} - {"lr_scheduler_type"} | {"per_device_train_batch_size"}


def test_warm_up_ratio_and_constant_schedule_become_train_options(run_dir):
    search = Search(None, None, None, TrainOptions(max_steps=10), {}, {}, Reporter())
    options = search.trial_options({"lr_scheduler_type": "constant", "warmup_ratio": 0.2})
    assert (options.lr_scheduler_type, options.warmup_steps) == ("constant_with_warmup", 2)
    options = search.trial_options({"lr_scheduler_type": "constant", "warmup_ratio": 0.0})
    assert (options.lr_scheduler_type, options.warmup_steps) == ("constant", 0)
    assert search.trial_options({"num_train_epochs": 3}).num_train_epochs == 3.0


class _Trial:
    def __init__(self, prune: bool) -> None:
        self.prune, self.reports = prune, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune


@pytest.mark.parametrize("prune", [True, False])
def test_pruning_stops_training_after_a_bad_epoch(prune):
    trial = _Trial(prune)
    callback = PruneOnEval(trial)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_evaluate(None, SimpleNamespace(epoch=0), control, metrics={"eval_loss": 9.0})
    assert trial.reports == []  # the evaluation before training is not a trial's step
    callback.on_train_begin(None, None, control)
    callback.on_evaluate(None, SimpleNamespace(epoch=1.0), control, metrics={"eval_loss": 5.0})
    assert trial.reports == [(1, 5.0)]
    assert control.should_training_stop is prune and callback.pruned is prune


def test_the_study_s_own_median_pruner_prunes_a_bad_trial(run_dir, tmp_path):
    """The sweep's real study and MedianPruner, fed real per-epoch losses through
    PruneOnEval (the Trainer stubbed: milliseconds): after the start-up trials, a trial
    worse than their median at an epoch is pruned there; one as good is not."""
    import optuna

    from huggingtweets.sweep.study import PRUNE_AFTER_TRIALS, open_study

    shutil.copytree(run_dir / "dataset", tmp_path / "dataset")  # the study records it
    (tmp_path / "sweep").mkdir()
    study = open_study(optuna, tmp_path / "sweep", TrainOptions(base_model="tiny"))
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)

    def train(losses: list[float]) -> tuple[PruneOnEval, list[int]]:
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
        callback = PruneOnEval(trial)
        control = SimpleNamespace(should_training_stop=False)
        callback.on_train_begin(None, None, control)
        epochs = []
        for epoch, loss in enumerate(losses, 1):
            state = SimpleNamespace(epoch=float(epoch))
            callback.on_evaluate(None, state, control, metrics={"eval_loss": loss})
            epochs.append(epoch)
            if control.should_training_stop:
                break
        callback.on_train_end(None, None, control)
        if callback.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, losses[-1])
        return callback, epochs

    for _ in range(PRUNE_AFTER_TRIALS):  # the start-up trials are never pruned
        callback, epochs = train([3.0, 2.5, 2.0])
        assert not callback.pruned and epochs == [1, 2, 3]
    callback, epochs = train([2.9, 2.4, 1.9])
    assert not callback.pruned and epochs == [1, 2, 3]
    callback, epochs = train([6.0, 5.0, 4.0])
    assert callback.pruned and epochs == [1]  # stopped after its first, bad epoch
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.PRUNED) == 1
    assert study.get_trials()[-1].intermediate_values == {1: 6.0}


def test_a_trial_left_running_by_a_killed_sweep_runs_again(run_dir, tmp_path):
    """kill -9 leaves a trial "running" in the study: the next sweep fails it and queues
    its parameters again (its partial checkpoints are removed)."""
    import optuna

    from huggingtweets.core.runs import RunDir
    from huggingtweets.sweep.study import open_study, retry_interrupted

    run = RunDir(tmp_path / "run")
    shutil.copytree(run_dir / "dataset", run.dataset_dir)  # the study records it
    folder = run.root / "sweep"
    folder.mkdir(parents=True)
    study = open_study(optuna, folder, TrainOptions(base_model="tiny"))
    left = study.ask()  # never told: as after kill -9
    left.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
    (run.root / "trials" / "0" / "checkpoints").mkdir(parents=True)
    events = []
    retry_interrupted(optuna, study, run, Reporter(events.append))
    first, queued = study.get_trials()
    assert first.state == optuna.trial.TrialState.FAIL
    assert queued.state == optuna.trial.TrialState.WAITING
    assert queued.user_attrs["retry_of"] == 0
    again = study.ask()
    value = again.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
    assert value == left.params["learning_rate"]
    assert not (run.root / "trials" / "0").exists()
    assert [e.message for e in events] == ["trial 0 was interrupted: it runs again"]


def test_one_sweep_at_a_time(run_dir):
    from huggingtweets.sweep.study import locked

    (run_dir / "sweep").mkdir(exist_ok=True)
    with locked(run_dir / "sweep"):
        result = run_cli("sweep", run_dir, "--trials", "1", "--base-model", "tiny", expect=2)
    assert "a sweep is already running on" in result.stderr


def test_an_option_given_for_a_searched_parameter_fixes_it(run_dir, tmp_path, monkeypatch):
    """`--num-train-epochs 2` (or `learning_rate:` at the config's top level) is not
    searched; a parameter the config's `parameters:` names stays searched unless a flag
    is given for it (flags win)."""
    import huggingtweets.sweep as sweep_module
    from huggingtweets.core.errors import HuggingtweetsError

    seen = {}

    def fake_sweep(run, trials, *, base, space, promote, reporter):
        seen.update(base=base, space=space)
        raise HuggingtweetsError("stop here")

    monkeypatch.setattr(sweep_module, "sweep", fake_sweep)
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "learning_rate: 0.002\nparameters:\n  warmup_ratio: {values: [0.0, 0.5]}\n"
        "  gradient_accumulation_steps: {values: [1, 2]}\n"
    )
    run_cli(
        "sweep", run_dir, "--trials", "2", "--config", config, "--num-train-epochs", "2",
        "--gradient-accumulation-steps", "4", expect=2,
    )  # fmt: skip
    space, fixed = parse_space(seen["space"])
    assert set(space) == {"lr_scheduler_type", "warmup_ratio"}
    assert fixed == {
        "learning_rate": 0.002,
        "num_train_epochs": 2.0,
        "gradient_accumulation_steps": 4,
    }
    assert space["warmup_ratio"].choices == (0.0, 0.5)
