"""The whole flow in one place: (collect →) prepare → train (→ evaluate) → card (→ push).

The CLI's ``train`` (through :func:`train_bot`, which reads its arguments), the demo, the
web app and a user's script all call :func:`make_bot`; none of them strings the stages
together itself. Options are data (the
stages' dataclasses), progress goes to one :class:`~huggingtweets.core.events.Reporter`, and
``reporter.cancel()`` stops the run at its next safe point.

    from huggingtweets import make_bot, TrainOptions
    make_bot("runs/rj", ["sample:romeo", "sample:juliet"], train=TrainOptions(base_model="tiny"))
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import SourceOptions
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Event, Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError, check_options, option
from huggingtweets.core.runs import RunDir, StagedOutputs, training_lock
from huggingtweets.prepare.dataset import PrepareOptions, PrepareResult, prepare
from huggingtweets.publish.hub import Pusher, PushOptions, PushResult
from huggingtweets.train.recipe import TrainOptions, TrainResult
from huggingtweets.train.recipe import train as train_stage

if TYPE_CHECKING:
    from huggingtweets.evaluate.evaluation import EvaluateOptions, EvaluateResult


@dataclass
class BotResult:
    run: RunDir
    prepared: PrepareResult | None  # None: trained on the dataset already in the run
    trained: TrainResult
    card: Path | None  # None: no card asked for, or not the main process
    pushed: PushResult | None = None  # None: not pushed (push=None), or not the main process
    evaluated: EvaluateResult | None = None  # None: not evaluated (see make_bot's evaluate)


EvaluateWhen = Literal["auto", "always", "never"]
EVALUATE_CHOICES: tuple[str, ...] = ("auto", "always", "never")
# The default of make_bot's and train's `evaluate` where none is given (a slow CI, or a
# sweep's many trials, can say never once).
EVALUATE_ENV = "HUGGINGTWEETS_EVALUATE"


def default_evaluate() -> EvaluateWhen:
    value = os.environ.get(EVALUATE_ENV, "auto").strip().lower() or "auto"
    if value not in EVALUATE_CHOICES:
        raise HuggingtweetsError(
            f"{EVALUATE_ENV}={value!r} is not one of {', '.join(EVALUATE_CHOICES)}"
        )
    return value  # type: ignore[return-value]


@dataclass
class BotOptions:
    """What the flow does around training: where the model goes, whether it is evaluated,
    whether it gets its card (``train`` options; make_bot's own arguments)."""

    output_dir: Path | None = option(
        None,
        metavar="DIRECTORY",
        help="Where model/ and metrics.json go [default: the run directory; e.g. "
        "RUN_DIR/trials/2 to keep several models of one dataset].",
    )
    card: bool = option(
        True, flag="--no-card", help="Do not write the model card (`huggingtweets card` later)."
    )
    # None: $HUGGINGTWEETS_EVALUATE, else auto (default_evaluate), read when the flow runs.
    evaluate: str | None = option(
        None,
        choices=EVALUATE_CHOICES,
        help="Run `huggingtweets evaluate` after training: auto when it should take under "
        "about a minute here (small models on a CPU) and there are enough held-out posts "
        f"[env {EVALUATE_ENV}; default auto].",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if (
            self.output_dir is not None
            and self.output_dir.exists()
            and not self.output_dir.is_dir()
        ):
            raise OptionError("output_dir", f"{self.output_dir} is a file: give a folder")


def source_options_given(options: SourceOptions | None) -> bool:
    """Whether any source option differs from its default (they need SOURCEs)."""
    if options is None:
        return False
    return (
        options.text_column is not None
        or (options.live is not None and options.live != LiveOptions())
        or any(value != type(value)() for value in options.extra.values())
    )


def train_bot(
    targets: Sequence[str | Path],
    out: Path | str | None = None,
    handles: Sequence[str] = (),
    *,
    train: TrainOptions | None = None,
    prepare_options: PrepareOptions | None = None,
    source_options: SourceOptions | None = None,
    options: BotOptions | None = None,
    push_options: PushOptions | None = None,
    reporter: Reporter | None = None,
) -> BotResult:
    """``huggingtweets train``'s flow, for scripts that take its arguments: ``targets`` is
    one prepared run directory, or SOURCEs to prepare into ``out`` first (with
    ``prepare_options``, ``handles`` and ``source_options``, which apply to SOURCEs only).
    ``push_options.push_to_hub`` publishes the model; its ``hub_model_id`` names the card's
    repository either way. Every combination is checked before any work, then
    :func:`make_bot` runs."""
    options = options or BotOptions()
    train = train or TrainOptions()
    push_options = push_options or PushOptions()
    # a bad $HUGGINGTWEETS_EVALUATE is said before anything else
    evaluate = options.evaluate or default_evaluate()
    run_dir, sources = _run_and_sources(targets, out, handles, source_options, prepare_options)
    if not push_options.push_to_hub and (
        push_options.hub_private_repo or push_options.hub_revision
    ):  # field names, shown as their flags by the CLI
        raise OptionError("hub_private_repo", "and hub_revision apply with push_to_hub")
    if push_options.push_to_hub and not options.card:
        raise HuggingtweetsError("--push-to-hub publishes the model with its card: drop --no-card")
    return make_bot(
        run_dir,
        sources,
        handles,
        prepare_options=prepare_options if sources else None,
        source_options=source_options if sources else None,
        train=train,
        card=options.card,
        repo_id=push_options.hub_model_id,
        push=push_options if push_options.push_to_hub else None,
        output_dir=options.output_dir,
        evaluate=evaluate,  # type: ignore[arg-type]  # one of EVALUATE_CHOICES, checked
        reporter=reporter,
    )


def _run_and_sources(
    targets: Sequence[str | Path],
    out: Path | str | None,
    handles: Sequence[str],
    source_options: SourceOptions | None,
    prepare_options: PrepareOptions | None,
) -> tuple[Path, tuple[str, ...]]:
    """(the run directory, the SOURCEs to prepare into it) of ``train``'s arguments."""
    if out is not None:
        return Path(out), tuple(str(target) for target in targets)
    if len(targets) != 1:
        raise HuggingtweetsError("give one RUN_DIR, or SOURCEs with --out RUN_DIR")
    if handles or source_options_given(source_options):
        raise HuggingtweetsError(
            "--handle, --text-column and the live options apply to SOURCEs: give them "
            "with --out RUN_DIR"
        )
    if prepare_options is not None and prepare_options != PrepareOptions(seed=prepare_options.seed):
        raise HuggingtweetsError(
            "prepare options apply to SOURCEs: give them with --out RUN_DIR, or run "
            "`huggingtweets prepare --out RUN_DIR ...` first"
        )
    run_dir = Path(targets[0])
    if not run_dir.is_dir():
        raise HuggingtweetsError(
            f"no run directory {run_dir}: to train on a SOURCE, add --out RUN_DIR"
        )
    return run_dir, ()


def _adapters_only(train: TrainOptions, card: bool, evaluate: str) -> str:
    """``save_adapters`` leaves no merged model, which the card and evaluate load: the card
    must be off, and evaluation, unless asked for (then refused), is skipped."""
    if not train.save_adapters:
        return evaluate
    if card:
        raise OptionError(
            "save_adapters",
            "keeps the adapters only, which the model card cannot read: turn the card off "
            "(--no-card), or merge them (leave --save-adapters out)",
        )
    if evaluate == "always":
        raise OptionError("save_adapters", "keeps the adapters only, which evaluate cannot read")
    return "never"


def make_bot(
    run_dir: Path | str,
    sources: Sequence[str] = (),
    handles: Sequence[str] = (),
    *,
    prepare_options: PrepareOptions | None = None,
    source_options: SourceOptions | None = None,
    train: TrainOptions | None = None,
    card: bool = True,
    repo_id: str | None = None,
    push: PushOptions | None = None,
    output_dir: Path | str | None = None,
    evaluate: EvaluateWhen | None = None,
    evaluate_options: EvaluateOptions | None = None,
    reporter: Reporter | None = None,
) -> BotResult:
    """Prepare ``sources`` into ``run_dir`` (or use its dataset when none are given),
    fine-tune, and write the model card.

    ``push``: then publish the model and its card on the Hub (push.py); the token and
    the repository are checked first, before anything is collected or trained.
    ``output_dir``: where model/ and metrics.json go (default ``run_dir``; a sweep gives
    each trial its own, e.g. RUN_DIR/trials/3).
    ``evaluate``: "auto" (the default, or $HUGGINGTWEETS_EVALUATE) runs ``evaluate`` after
    training when it should take under about a minute here (evaluate.quick_to_evaluate)
    and the run holds enough held-out posts, so that the card answers "does it sound like
    them?"; "always" runs it whatever it costs (too few posts is then an error); "never"
    skips it (``huggingtweets evaluate`` later); ``evaluate_options`` its samples and seed.
    Every option is checked before anything is
    collected, built or deleted: a typo must not cost a collection or a model load.
    """
    from huggingtweets.card.model_card import check_repo_id
    from huggingtweets.train.tracking import track

    reporter = reporter_or_silent(reporter)
    evaluate = evaluate or default_evaluate()
    if evaluate not in EVALUATE_CHOICES:
        raise HuggingtweetsError(f"evaluate must be one of {', '.join(EVALUATE_CHOICES)}")
    train_options = train or TrainOptions()
    evaluate = _adapters_only(train_options, card, evaluate)
    if repo_id is not None and card:
        check_repo_id(repo_id)
    run = RunDir(Path(run_dir)).with_output(output_dir)
    pusher = None
    if push is not None:  # the token and the Hub checked before any work (push.py)
        if not card:
            raise HuggingtweetsError("a pushed model is published with its card: keep card=True")
        pusher = Pusher.login(push, reporter)
    with training_lock(run.output_dir):  # one training at a time per output folder
        prepared, logged = _prepare_sources(
            run, sources, handles, prepare_options, source_options, train_options, reporter
        )
        if pusher is not None:  # the repository, named by the card too (default: handles)
            repo_id = pusher.choose_repo(run, repo_id)
        # --report-to wandb / tensorboard / mlflow: the runs, artifacts, samples (tracking.py)
        with track(run, train_options, reporter, prepare_options=logged) as tracker:
            trained, evaluated, card_path = _train_evaluate_card(
                run,
                tracker,
                reporter,
                card=card,
                repo_id=repo_id,
                evaluate=(evaluate, evaluate_options),
            )
    pushed = pusher.push(run) if pusher is not None and trained.main_process else None
    return BotResult(run, prepared, trained, card_path, pushed, evaluated)


def _prepare_sources(
    run: RunDir,
    sources: Sequence[str],
    handles: Sequence[str],
    prepare_options: PrepareOptions | None,
    source_options: SourceOptions | None,
    train_options: TrainOptions,
    reporter: Reporter,
) -> tuple[PrepareResult | None, dict | None]:
    """make_bot's prepare stage: (its result, or None without sources or in another
    process than the first; the prepare options to log)."""
    from huggingtweets.core.options import options_to_dict

    if not sources:
        if handles or source_options is not None:
            raise HuggingtweetsError("handles and source options apply to SOURCEs: give some")
        if not run.root.is_dir():
            raise HuggingtweetsError(
                f"no run directory {run.root}: give SOURCEs to prepare into it"
            )
        return None, None
    # The split and oversampling follow the training seed unless told otherwise.
    prepare_options = prepare_options or PrepareOptions(seed=train_options.seed)
    prepared = None
    with _main_process_first() as main:
        if main:  # under torchrun, one process prepares; the others wait for it
            # train SOURCE... --out RUN trains it again: model and dataset agree after.
            prepared = prepare(
                run,
                sources,
                handles,
                prepare_options,
                source_options,
                reporter=reporter,
                overwrite=True,
            )
    return prepared, options_to_dict(prepare_options)


def _train_evaluate_card(
    run: RunDir, tracker, reporter: Reporter, *, card: bool, repo_id: str | None, evaluate: tuple
) -> tuple[TrainResult, EvaluateResult | None, Path | None]:
    """Train, evaluate and write the card into a staging folder, then swap the model (its
    card inside), metrics.json and evaluation.json in together: a failure on the way
    leaves the previous ones as they were."""
    with StagedOutputs(run) as staged:
        trained = train_stage(
            run,
            tracker.train_options,
            reporter=reporter,
            callbacks=tracker.callbacks,
            save_into=staged.run,
        )
        tracker.trained(trained)  # before the card, which may link to the runs
        evaluated = card_path = None
        if trained.main_process:
            shown = _final_paths_shown(reporter, staged)
            evaluated = evaluate_after_training(staged.run, evaluate[0], shown, evaluate[1])
            if card:
                generator = evaluated.generator if evaluated is not None else None
                card_path = write_card_reporting(
                    staged.run, shown, repo_id=repo_id, generator=generator
                )
        staged.commit()
    if evaluated is not None:
        picture = evaluated.picture and staged.final_path(evaluated.picture)
        evaluated = replace(evaluated, path=staged.final_path(evaluated.path), picture=picture)
    card_path = card_path and staged.final_path(card_path)
    return replace(trained, run=run, model_dir=run.model_dir), evaluated, card_path


def _final_paths_shown(reporter: Reporter, staged: StagedOutputs) -> Reporter:
    """``reporter``, its messages naming the staged outputs where they will be (its
    cancellation shared)."""
    before, after = str(staged.run.output_dir), str(staged.final.output_dir)

    def shown(value):
        return value.replace(before, after) if isinstance(value, str) else value

    def forward(event: Event) -> None:
        data = {key: shown(value) for key, value in event.data.items()}
        reporter.emit(replace(event, message=shown(event.message), data=data))

    return Reporter(forward, cancel_event=reporter.cancel_event)


def evaluate_after_training(
    run: RunDir,
    when: EvaluateWhen,
    reporter: Reporter,
    options: EvaluateOptions | None = None,
) -> EvaluateResult | None:
    """``evaluate`` as make_bot's optional stage (see make_bot's ``evaluate``)."""
    if when == "never":
        return None
    from huggingtweets.evaluate.evaluation import (
        check_enough,
        evaluate,
        held_out_posts,
        quick_to_evaluate,
    )

    if when == "auto":
        if not quick_to_evaluate(run.model_dir):
            reporter.info(
                "evaluate",
                "skipped: the model is too large to evaluate in about a minute here; run "
                f"`huggingtweets evaluate {run.root}` when you have the time",
            )
            return None
        try:
            check_enough(held_out_posts(run), run)
        except HuggingtweetsError as too_few:
            reporter.info("evaluate", f"skipped: {too_few}")
            return None
    return evaluate(run, options, reporter=reporter)


def write_card_reporting(run: RunDir, reporter: Reporter, **card_arguments) -> Path:
    """``card.write_card`` as a stage: its start and end, and one warning when a picture
    had to leave characters out for want of a font (naming the package to install)."""
    from huggingtweets.card.fonts import missing_fonts, reset_missing_fonts
    from huggingtweets.card.model_card import write_card

    reporter.start("card", "writing the model card")
    reset_missing_fonts()
    path = write_card(run, **card_arguments)
    notice = missing_fonts()
    if notice:
        reporter.warning("card", notice)
    reporter.end("card", f"model card written to {path}", path=str(path))
    return path


@contextlib.contextmanager
def _main_process_first() -> Iterator[bool]:
    """Under ``torchrun`` / ``accelerate launch`` (WORLD_SIZE > 1) the main process runs the
    block first and the others wait for it; alone, the block simply runs. Yields whether
    this is the main process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield True
        return
    from accelerate import PartialState

    from huggingtweets.model.hardware import accelerator

    # Joins the process group Trainer will use (on a CPU, gloo: as TrainingArguments'
    # use_cpu sets it up; without cpu=True every CPU process would think it is the main).
    state = PartialState(cpu=accelerator() is None)
    with state.main_process_first():
        yield state.is_main_process
