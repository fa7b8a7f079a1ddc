"""The ``huggingtweets`` command: a thin layer over the Python API.

Every option comes from a field of the stages' option dataclasses (cli_options.py); the
work is the library's (pipeline.py and the stages); here are only the words and the
drawing of progress events (console.py).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
from rich.markup import escape

from huggingtweets import __version__
from huggingtweets.cli.console import EventRenderer, console, err_console, stats_table, warn
from huggingtweets.cli.options import FLAGS, config_option, dataclass_options
from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import SourceOptions, accepted_forms, source_option_classes
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, cancel_on_sigint
from huggingtweets.core.options import OptionError
from huggingtweets.generate.share import ShareOptions
from huggingtweets.pipeline import EVALUATE_CHOICES, EVALUATE_ENV, default_evaluate
from huggingtweets.prepare.dataset import PrepareOptions
from huggingtweets.publish.hub import PushOptions
from huggingtweets.train.recipe import TrainOptions


def _redact(text: str) -> str:
    from huggingtweets.core.secrets import redact

    return redact(text)


# A field name of several words (min_length) inside a message: shown as its flag.
_FIELD_RE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def _error_line(exc: HuggingtweetsError) -> str:
    if isinstance(exc, OptionError):
        flag = FLAGS.get(exc.name, exc.name)
        problem = _FIELD_RE.sub(lambda m: FLAGS.get(m.group(0), m.group(0)), exc.problem)
        return f"{flag} {problem}"
    return str(exc)


class _Group(click.Group):
    """Turns the errors a user can act on into one line and an exit code, no traceback.
    Whatever is printed has every configured secret (tokens) blanked out."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HuggingtweetsError as exc:
            click.echo(_redact(f"Error: {_error_line(exc)}"), err=True)
            ctx.exit(2)
        except KeyboardInterrupt:  # Ctrl-C, or a cancelled run (events.Cancelled)
            click.echo(
                "Interrupted: nothing half-written was kept; run the command again to continue.",
                err=True,
            )
            ctx.exit(130)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                where = exc.filename or "while writing"
                message = f"the disk is full ({where}); free some space and run again"
            else:
                message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
            click.echo(_redact(f"Error: {message}"), err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="huggingtweets")
def cli() -> None:
    """Turn one to three social accounts into a small language model that writes like them.

    \b
    Pipeline:  collect → prepare → train (+ card) → generate
    Quick start (offline):  huggingtweets demo
    """


@contextlib.contextmanager
def _reporting(on_cancel: str | None = None) -> Iterator[Reporter]:
    """A reporter drawn on the terminal; Ctrl-C asks cooperative work (training, live
    collection) to stop at a safe point, and a second Ctrl-C stops at once."""
    renderer = EventRenderer()
    reporter = Reporter(renderer)

    def said() -> None:
        err_console.print(
            on_cancel or "\nStopping at the next safe point (Ctrl-C again to stop now)...",
            markup=False,
        )

    try:
        with cancel_on_sigint(reporter, said):
            yield reporter
    finally:
        renderer.close()


def _source_help() -> str:
    return "SOURCE is one of: " + "; ".join(accepted_forms()) + "."


def _with_source_help(command: click.Command) -> click.Command:
    command.help = inspect.cleandoc(command.help or "") + "\n\n" + _source_help()
    return command


_run_dir = click.option(
    "--out",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run directory to write (posts/, dataset/, model/ ...).",
)
_handle = click.option(
    "--handle",
    "handles",
    multiple=True,
    metavar="H",
    help="The account's handle, for sources that do not name it "
    "(repeat: one per source, in order).",
)


def _source_options(command):
    """--text-column, the live options and every platform's own options (each source kind
    declares them: sources.register_options); the command receives one SourceOptions."""
    extra_classes = source_option_classes()

    @functools.wraps(command)
    def with_sources(*args, text_column, live_options, **kwargs):
        extra = {cls: kwargs.pop(f"extra_{cls.__name__}") for cls in extra_classes}
        if text_column is not None and not text_column.strip():
            raise OptionError("text_column", "is empty: name the field that holds the text")
        kwargs["source_options"] = SourceOptions(
            text_column=text_column, live=live_options, extra=extra
        )
        return command(*args, **kwargs)

    decorated = with_sources
    for cls in reversed(extra_classes):
        decorated = dataclass_options(cls, f"extra_{cls.__name__}")(decorated)
    decorated = dataclass_options(LiveOptions, "live_options")(decorated)
    FLAGS.setdefault("text_column", "--text-column")
    return click.option(
        "--text-column",
        metavar="NAME",
        help="CSV/JSONL: the field holding the text "
        "(default: the first of text, full_text, content, tweet).",
    )(decorated)


def _sources_given(options: SourceOptions) -> bool:
    """Whether any source option differs from its default (they need SOURCEs)."""
    return (
        options.text_column is not None
        or options.live != LiveOptions()
        or any(value != type(value)() for value in options.extra.values())
    )


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_run_dir
@_handle
@_source_options
def collect(sources, run_dir, handles, source_options):
    """Collect posts into RUN_DIR/posts/<handle>.jsonl (one normalized record a line).

    Live accounts are fetched page by page into RUN_DIR/posts/ as they arrive: an
    interrupted run (Ctrl-C, crash, rate limit with --no-wait) continues where it stopped
    when run again, and --update fetches only newer posts. Tokens come from the
    environment: X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN) for X; MASTODON_ACCESS_TOKEN
    (with MASTODON_INSTANCE) for Mastodon instances that require one.

    \b
    Examples:
      huggingtweets collect twitter-archive.zip --out runs/me
      huggingtweets collect data/tweets.js --handle smithjd --out runs/smithjd
      huggingtweets collect sample:romeo --out runs/romeo
      huggingtweets collect bsky:jay.bsky.team --out runs/jay
      huggingtweets collect @Gargron@mastodon.social --out runs/gargron
      X_BEARER_TOKEN=... huggingtweets collect x:dril --out runs/dril
      huggingtweets collect x:dril --update --out runs/dril
    """
    from huggingtweets.collect.collection import collect as collect_stage

    with _reporting() as reporter:
        collection = collect_stage(run_dir, sources, handles, source_options, reporter=reporter)
    for account_posts in collection.accounts:
        handle = account_posts.account.handle
        console.print(
            f"@{escape(handle)}: {len(account_posts.posts):,} posts → "
            f"{escape(str(collection.run.posts_path(handle)))}",
            soft_wrap=True,
        )


_with_source_help(collect)


@cli.command("prepare")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@_run_dir
@_handle
@dataclass_options(PrepareOptions, "options")
@_source_options
def prepare_cmd(sources, run_dir, handles, options, source_options):
    """Clean posts into a dataset: RUN_DIR/dataset/{train,valid}.jsonl and stats.json.

    Collects SOURCEs first; without SOURCE, uses what RUN_DIR/posts/ holds.
    Reposts, short posts and private posts are dropped and counted.

    \b
    Examples:
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
      huggingtweets prepare export.zip --handle me --dedupe --out runs/me
      huggingtweets prepare --out runs/me          # re-prepare collected posts
    """
    from huggingtweets.prepare.dataset import prepare

    if not sources and _sources_given(source_options):
        raise HuggingtweetsError("--text-column and the live options apply to SOURCEs: give some")
    with _reporting() as reporter:
        result = prepare(run_dir, sources, handles, options, source_options, reporter=reporter)
    print_prepare_result(result)


_with_source_help(prepare_cmd)


def print_prepare_result(result) -> None:
    """The table and a few kept posts (the warnings were shown as events)."""
    console.print(stats_table(result.stats))
    console.print("\n[bold]A few kept posts:[/bold]")
    for handle, text in result.examples:
        console.print(f"  @{escape(handle)}: {escape(text)}", soft_wrap=True)
    console.print(f"\nDataset written to {escape(str(result.run.dataset_dir))}")


@cli.command()
@click.argument("targets", nargs=-1, required=True, metavar="RUN_DIR | SOURCE...")
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With SOURCEs: the run directory to prepare them into, then train.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where model/ and metrics.json go [default: the run directory; e.g. "
    "RUN_DIR/trials/2 to keep several models of one dataset].",
)
@_handle
@config_option(TrainOptions, PrepareOptions, PushOptions, LiveOptions, *source_option_classes())
@dataclass_options(TrainOptions, "options")
@dataclass_options(PrepareOptions, "prepare_options", exclude=("seed",))
@_source_options
@click.option(
    "--no-card", is_flag=True, help="Do not write the model card (`huggingtweets card` later)."
)
@click.option(
    "--evaluate",
    "evaluate_when",
    type=click.Choice(EVALUATE_CHOICES),
    envvar=EVALUATE_ENV,
    show_envvar=True,
    default="auto",
    show_default=True,
    help="Run `huggingtweets evaluate` after training: auto when it should take under about "
    "a minute here (small models on a CPU) and there are enough held-out posts.",
)
@dataclass_options(PushOptions, "push_options")  # --push-to-hub, --repo-id (the card's too)
def train(
    targets,
    run_dir,
    output_dir,
    handles,
    options,
    prepare_options,
    source_options,
    no_card,
    evaluate_when,
    push_options,
):
    """Fine-tune a language model on a prepared run: RUN_DIR/model/ and metrics.json.

    With SOURCEs and --out, runs prepare first (with the prepare and source options
    given here). The defaults are the original huggingtweets' recipe (gpt2, learning rate
    1.372e-4, 4 epochs, cosine, AdamW); the best epoch by validation loss is kept. Ctrl-C
    stops after a checkpoint: continue with --resume. --config FILE takes any of these
    options from YAML or JSON (field names: num_train_epochs, lora, dedupe ...).

    \b
    Examples:
      huggingtweets train runs/me                         # gpt2 from the Hub
      huggingtweets train runs/me --base-model tiny       # offline, seconds
      huggingtweets train sample:romeo sample:juliet --out runs/rj --base-model tiny
      huggingtweets train runs/me --base-model ./my-model --lora --precision bf16
      huggingtweets train runs/me --config sweep-3.yaml --output-dir runs/me/trials/3
      huggingtweets train runs/me --resume
      huggingtweets train runs/me --evaluate never
      huggingtweets train runs/me --push-to-hub --hub-model-id me/me-bot
      accelerate launch -m huggingtweets train runs/me --report-to wandb
    """
    from huggingtweets.pipeline import make_bot
    from huggingtweets.train.recipe import TrainingInterrupted

    sources: tuple[str, ...] = ()
    prepare_options = replace(prepare_options, seed=options.seed)
    if run_dir is None:
        if len(targets) != 1:
            raise HuggingtweetsError("give one RUN_DIR, or SOURCEs with --out RUN_DIR")
        if handles or _sources_given(source_options):
            raise HuggingtweetsError(
                "--handle, --text-column and the live options apply to SOURCEs: give them "
                "with --out RUN_DIR"
            )
        if prepare_options != PrepareOptions(seed=options.seed):
            raise HuggingtweetsError(
                "prepare options apply to SOURCEs: give them with --out RUN_DIR, or run "
                "`huggingtweets prepare --out RUN_DIR ...` first"
            )
        run_dir = Path(targets[0])
        if not run_dir.is_dir():
            raise HuggingtweetsError(
                f"no run directory {run_dir}: to train on a SOURCE, add --out RUN_DIR"
            )
        source_options = None
    else:
        sources = targets
    push = push_options if push_options.push_to_hub else None
    if push is None and (push_options.hub_private_repo or push_options.hub_revision):
        raise HuggingtweetsError("--private and --revision apply with --push-to-hub")
    if push is not None and no_card:
        raise HuggingtweetsError("--push-to-hub publishes the model with its card: drop --no-card")
    try:
        with _reporting(
            "\nStopping after this step and saving a checkpoint (Ctrl-C again to stop now)..."
        ) as reporter:
            reporter.listeners.append(_print_stage_results)
            result = make_bot(
                run_dir,
                sources,
                handles,
                prepare_options=prepare_options if sources else None,
                source_options=source_options,
                train=options,
                card=not no_card,
                repo_id=push_options.hub_model_id,
                push=push,
                output_dir=output_dir,
                evaluate=evaluate_when,
                reporter=reporter,
            )
    except TrainingInterrupted as stop:
        where = f"last checkpoint {stop.checkpoint}" if stop.checkpoint else "no checkpoint yet"
        output = output_dir or run_dir
        click.echo(
            f"Interrupted ({where}); {Path(output) / 'model'} was not touched. To continue, "
            "run the same command again with --resume (without it, training starts over).",
            err=True,
        )
        raise SystemExit(130) from None
    if not result.trained.main_process:  # accelerate launch / torchrun: the first reports
        return
    _print_training(result.trained.metrics)
    if result.evaluated is not None:
        from huggingtweets.cli.evaluate import print_verdict

        print_verdict(result.evaluated.evaluation, result.evaluated.path)
    if result.card is not None:
        console.print(
            f"Model card written to {escape(str(result.card))} (+ preview.png)", soft_wrap=True
        )
    console.print(
        f"Model written to {escape(str(result.trained.model_dir))}. Next:", soft_wrap=True
    )
    target = result.trained.model_dir if output_dir else run_dir
    if result.pushed is not None:
        console.print(f"Pushed to {escape(result.pushed.url)}", soft_wrap=True)
        target = result.pushed.repo_id
    console.print(
        f'  huggingtweets generate {escape(str(target))} "My dream is" -n 5', soft_wrap=True
    )


def _print_stage_results(event) -> None:
    """After prepare: its table and examples, before training starts."""
    if event.stage == "prepare" and event.kind == "end" and "stats" in event.data:
        console.print(stats_table(event.data["stats"]))


def _print_training(m: dict) -> None:
    console.print(
        f"Validation loss {m['eval_loss_before']:.4f} → {m['eval_loss_after']:.4f}, "
        f"perplexity {m['perplexity_before']:,.2f} → {m['perplexity_after']:,.2f} "
        f"(best epoch {m['best_epoch']:g} of {m.get('epochs_run', 0):g} run)"
    )
    console.print(
        f"{m['timings']['train_seconds']:.0f} s, {m['timings']['tokens_per_second']:,.0f} "
        f"tokens/s on {escape(m['device'])}"
    )


_with_source_help(train)


@cli.command()
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many speakers to list, those with the most speeches first.",
)
def samples(top):
    """List the speakers of the bundled tiny-Shakespeare sample (use as sample:NAME).

    \b
    Examples:
      huggingtweets samples --top 5
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
    """
    from huggingtweets.collect.sample import speakers

    for handle, count in speakers().most_common(top):
        console.print(f"sample:{handle}  ({count} speeches)")


def _generate_options(command):
    """GenerateOptions' fields as flags (their help and bounds are on the fields)."""
    from huggingtweets.generate.generator import GenerateOptions

    return dataclass_options(GenerateOptions, "options")(command)


@cli.command()
@click.argument("model_or_run", metavar="MODEL_OR_RUN")
@click.argument("prompt", required=False)
@_generate_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (samples, seed...).")
@dataclass_options(ShareOptions, "share_options")
def generate(model_or_run, prompt, options, as_json, share_options):
    """Write posts that start with PROMPT, from a run directory, model folder or Hub id.

    The original huggingtweets' settings: "<|endoftext|>" before the prompt, top-p 0.95,
    temperature 1, 10 to 160 tokens, first line only. Each sample is checked by the
    memorization guard saved beside the model; copies of training posts are marked.
    Without PROMPT: "My dream is" in the model's language (from its card).

    \b
    Examples:
      huggingtweets generate runs/romeo-juliet "My dream is" -n 10
      huggingtweets generate runs/romeo-juliet "O Romeo" --seed 1 --no-copies
      huggingtweets generate runs/romeo-juliet/model "I think" --json
      huggingtweets generate huggingtweets/dril "My dream is"
      huggingtweets generate runs/romeo-juliet "O Romeo" --share --instance mastodon.online
    """
    import orjson

    from huggingtweets.generate.generator import Generator, check_prompt

    if prompt is not None:
        check_prompt(prompt)
    with err_console.status("Loading the model…"):
        generator = Generator.load(model_or_run, trust_pickle=options.trust_pickle)
    if prompt is None:
        prompt = _default_prompt(generator)
    num = options.num_return_sequences
    with err_console.status(f"Writing {num} post{'s' if num > 1 else ''}…"):
        result = generator.generate(prompt, options)
    links = None
    if share_options.share:  # X, Bluesky and Mastodon compose links (share.py)
        from huggingtweets.generate.share import sample_links

        links = sample_links(model_or_run, result.samples, share_options)
    if as_json:
        data = result.to_dict()
        for sample, link in zip(data["samples"], links or (), strict=False):
            sample["share"] = link.to_dict() if link is not None else None
        click.echo(orjson.dumps(data).decode())
        return
    _print_samples(result, links)
    _print_guard_summary(result, options.no_copies)


def _default_prompt(generator) -> str:
    """ "My dream is" in the language the model's card declares, where one is known."""
    from huggingtweets.generate.generator import DEFAULT_PROMPT

    try:
        from huggingtweets.core.language import default_prompt
    except ImportError:  # pragma: no cover - language.default_prompt lands with issue 13
        return DEFAULT_PROMPT
    return default_prompt(getattr(generator, "language", None))


def _card_options(command):
    from huggingtweets.card.model_card import CardOptions

    return dataclass_options(CardOptions, "options")(command)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@_card_options
def card(run_dir, options):
    """Write the model card RUN_DIR/model/README.md and its picture preview.png.

    The huggingtweets layout: avatars, "🤖 AI BOT 🤖" (or CYBORG for several accounts),
    the training-data table from dataset/stats.json, base model and hyper-parameters,
    loss and perplexity before → after, sample posts and their memorization rate.

    \b
    Examples:
      huggingtweets card runs/romeo-juliet
      huggingtweets card runs/me --repo-id my-name/me-bot --samples 8
    """
    from huggingtweets.core.runs import RunDir
    from huggingtweets.pipeline import write_card_reporting

    with _reporting() as reporter, err_console.status("Writing the model card…"):
        path = write_card_reporting(RunDir(run_dir), reporter, options=options)
    console.print(f"Model card written to {escape(str(path))}", soft_wrap=True)
    console.print(f"Preview picture: {escape(str(path.with_name('preview.png')))}", soft_wrap=True)


@cli.command()
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="The run directory to write.",
)
@click.option(
    "--epochs",
    type=float,
    default=None,
    help="Training epochs at most (default 12, stopping early once the validation loss "
    "rises; fewer for a quicker, rougher bot).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of every stage.")
def demo(run_dir, epochs, seed):
    """The whole pipeline offline in a few minutes: a ROMEO & JULIET cyborg.

    Two speakers of the bundled tiny-Shakespeare sample as two accounts, the tiny model
    trained from scratch on their lines: prepare → train → card → five posts.

    \b
    Examples:
      huggingtweets demo
      huggingtweets demo --out /tmp/demo --epochs 2
    """
    import os
    import time

    # Before torch loads OpenMP: waiting threads sleep instead of spinning. On a machine
    # busy with other work, spinning threads stall each step (measured on this 2-core
    # box beside one busy process: 0.97 s/step spinning, 0.45 s passive; 0.30 vs 0.33 s
    # when idle), which took the demo from about 1 minute to over 5.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from huggingtweets.demo import DEMO_EPOCHS, DEMO_SAMPLES, DEMO_SOURCES, run_demo

    epochs = DEMO_EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    stages = {
        "prepare": " ".join(DEMO_SOURCES),
        "train": f"the tiny model, up to {epochs:g} epochs",
        "evaluate": "does it sound like them?",
        "card": "",
        "generate": f"{DEMO_SAMPLES} posts for “My dream is”",
    }
    if default_evaluate() == "never":  # $HUGGINGTWEETS_EVALUATE; the tiny model is quick
        del stages["evaluate"]
    headers = {
        stage: f"[bold]{i}/{len(stages)} {stage}[/bold]  {what}".rstrip()
        for i, (stage, what) in enumerate(stages.items(), 1)
    }

    def show(event) -> None:
        if event.kind == "start" and event.stage in headers:
            console.rule(headers.pop(event.stage))
        elif event.kind == "end" and event.stage == "prepare" and "stats" in event.data:
            console.print(stats_table(event.data["stats"]))
        elif event.kind == "end" and event.stage == "card" and "path" in event.data:
            console.print(
                f"Model card written to {escape(str(event.data['path']))} (+ preview.png)",
                soft_wrap=True,
            )

    with _reporting() as reporter:
        reporter.listeners.insert(0, show)
        result = run_demo(run_dir, epochs=epochs, seed=seed, reporter=reporter)
    m = result.metrics
    console.print(
        f"Validation loss {m['eval_loss_before']:.3f} → {m['eval_loss_after']:.3f} "
        f"(perplexity {m['perplexity_before']:,.0f} → {m['perplexity_after']:,.1f}), "
        f"best epoch {m['best_epoch']:g} of {m.get('epochs_run', epochs):g} run, "
        f"{m['timings']['train_seconds']:.0f} s on {escape(m['device'])}",
        soft_wrap=True,
    )
    if result.evaluation is not None:
        from huggingtweets.cli.evaluate import print_verdict

        print_verdict(result.evaluation, result.run_dir / "evaluation.json")
    _print_samples(result.generation)
    elapsed = time.perf_counter() - started
    console.rule()
    where = escape(str(result.run_dir))
    console.print(f"Done in {elapsed:.0f} s. Your bot is in {where}. Next:", soft_wrap=True)
    console.print(f'  huggingtweets generate {where} "O Romeo" -n 10', soft_wrap=True)
    console.print(f"  less {escape(str(result.card))}", soft_wrap=True)


def _print_samples(result, links=None) -> None:
    for i, sample in enumerate(result.samples, 1):
        console.print(f"{i}. {escape(sample.text)}", soft_wrap=True)
        if sample.speaker:  # a model trained with --speaker-tokens: whose voice it drew
            console.print(f"   as @{escape(sample.speaker)}", style="dim")
        if sample.copy is not None:
            console.print(f"   [yellow]⚠ copy: {sample.copy.describe()}[/yellow]")
        if links is not None and links[i - 1] is None:
            console.print("   no share links: it copies a training post", style="dim")
        elif links is not None:
            for platform, url in links[i - 1].to_dict().items():
                console.print(f"   {platform}: {escape(url)}", soft_wrap=True, style="dim")


def _print_guard_summary(result, no_copies: bool) -> None:
    if not result.checked:
        warn("this model has no memorization guard: samples were not checked for copies")
    elif no_copies and result.flagged:
        warn(
            f"{result.flagged} of {len(result.samples)} samples still copy training posts "
            f"after {max(s.attempts for s in result.samples) - 1} more draws (see ⚠)"
        )
    elif no_copies:
        redrawn = sum(s.attempts > 1 for s in result.samples)
        err_console.print(f"No copies of training posts ({redrawn} sample(s) drawn again).")
    elif result.flagged:
        warn(
            f"{result.flagged} of {len(result.samples)} samples copy training posts "
            "(marked ⚠); --no-copies draws them again"
        )
    err_console.print(f"seed {result.seed}", style="dim")


from huggingtweets.cli.evaluate import evaluate_command  # noqa: E402  (it uses this module's helpers)

cli.add_command(evaluate_command)

from huggingtweets.cli.push import push  # noqa: E402

cli.add_command(push)

from huggingtweets.cli.sweep import sweep  # noqa: E402

cli.add_command(sweep)

from huggingtweets.cli.update import update_command  # noqa: E402

cli.add_command(update_command)

from huggingtweets.cli.serve import serve  # noqa: E402

cli.add_command(serve)


def main() -> None:
    cli(prog_name="huggingtweets")
