"""The ``huggingtweets`` command: a thin layer over the Python API."""

from __future__ import annotations

import errno
import functools
import inspect
from pathlib import Path

import click
from rich.markup import escape

from . import __version__
from .console import console, err_console, stats_table, warn
from .errors import HuggingtweetsError
from .prepare import PrepareOptions, prepare
from .sources import accepted_forms


class _Group(click.Group):
    """Turns the errors a user can act on into one line and an exit code, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HuggingtweetsError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
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
            click.echo(f"Error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="huggingtweets")
def cli() -> None:
    """Turn one to three social accounts into a small language model that writes like them.

    \b
    Pipeline:  collect → prepare → train (+ card) → generate
    Quick start (offline):  huggingtweets demo
    """


def _source_help() -> str:
    return "SOURCE is one of: " + "; ".join(accepted_forms()) + "."


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
_text_column = click.option(
    "--text-column",
    metavar="NAME",
    help="CSV/JSONL: the field holding the text "
    "(default: the first of text, full_text, content, tweet).",
)

_LIVE_OPTIONS = [
    click.option(
        "--update",
        is_flag=True,
        help="Live accounts: fetch only posts newer than the newest one collected.",
    ),
    click.option(
        "--no-wait",
        is_flag=True,
        help="Live accounts: on a rate limit, stop (run again later to continue) "
        "instead of waiting for the reset.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        help="Live accounts: time-out of every request.",
    ),
    click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=5,
        show_default=True,
        help="Live accounts: retries of a request after a 5xx, time-out or dropped "
        "connection (exponential back-off).",
    ),
    click.option(
        "--x-api-url",
        metavar="URL",
        help="X API base URL [env HUGGINGTWEETS_X_API_URL; default https://api.twitter.com].",
    ),
    click.option(
        "--bsky-service",
        metavar="URL",
        help="Bluesky AppView [env HUGGINGTWEETS_BSKY_SERVICE; default "
        "https://public.api.bsky.app].",
    ),
    click.option(
        "--mastodon-url",
        metavar="URL",
        help="Mastodon API base URL when it is not https://INSTANCE "
        "[env HUGGINGTWEETS_MASTODON_URL].",
    ),
]


def _live_options(command):
    """Adds the live-account options; the command receives them as one ``live`` argument
    (a LiveOptions). Put it nearest the function, below the other decorators."""

    @functools.wraps(command)
    def with_live(
        *args, update, no_wait, timeout, retries, x_api_url, bsky_service, mastodon_url, **kwargs
    ):
        from .sources.live import LiveOptions

        live = LiveOptions(
            update=update,
            wait=not no_wait,
            timeout=timeout,
            retries=retries,
            x_api_url=x_api_url,
            bsky_service=bsky_service,
            mastodon_url=mastodon_url,
        )
        return command(*args, live=live, **kwargs)

    for option in reversed(_LIVE_OPTIONS):
        with_live = option(with_live)
    return with_live


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_run_dir
@_handle
@_text_column
@_live_options
def collect(sources, run_dir, handles, text_column, live):
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
    from .collect import collect as collect_sources

    for collected in collect_sources(sources, run_dir, handles, text_column, live):
        console.print(
            f"@{escape(collected.account.handle)}: {len(collected.posts):,} posts → "
            f"{escape(str(Path(run_dir) / 'posts' / (collected.account.handle + '.jsonl')))}"
        )


collect.help = inspect.cleandoc(collect.help or "") + "\n\n" + _source_help()


@cli.command()
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@_run_dir
@_handle
@_text_column
@click.option("--allow-newlines", is_flag=True, help="Keep line breaks inside posts.")
@click.option("--drop-replies", is_flag=True, help="Drop replies (counted as 'replies').")
@click.option("--dedupe", is_flag=True, help="Drop repeated posts (counted as 'duplicates').")
@click.option("--strip-mentions", is_flag=True, help="Remove @mentions from the text.")
@click.option("--strip-hashtags", is_flag=True, help="Remove #hashtags from the text.")
@click.option(
    "--min-words",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Drop posts with fewer words (counted as 'below_min_words'; 3 always applies).",
)
@click.option(
    "--validation-split-percentage",
    type=click.FloatRange(0, 100, max_open=True),
    default=10.0,
    show_default=True,
    help="Share of each account held out for evaluation.",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of the split and sampling."
)
@click.option(
    "--no-balance", is_flag=True, help="Do not oversample smaller accounts up to the largest one."
)
@_live_options
def prepare_cmd(
    sources,
    run_dir,
    handles,
    text_column,
    live,
    allow_newlines,
    drop_replies,
    dedupe,
    strip_mentions,
    strip_hashtags,
    min_words,
    validation_split_percentage,
    seed,
    no_balance,
):
    """Clean posts into a dataset: RUN_DIR/dataset/{train,valid}.jsonl and stats.json.

    Collects SOURCEs first; without SOURCE, uses what RUN_DIR/posts/ holds.
    Reposts, short posts and private posts are dropped and counted.

    \b
    Examples:
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
      huggingtweets prepare export.zip --handle me --dedupe --out runs/me
      huggingtweets prepare --out runs/me          # re-prepare collected posts
    """
    options = PrepareOptions(
        allow_newlines=allow_newlines,
        drop_replies=drop_replies,
        dedupe=dedupe,
        strip_mentions=strip_mentions,
        strip_hashtags=strip_hashtags,
        min_words=min_words,
        validation_split_percentage=validation_split_percentage,
        seed=seed,
        balance=not no_balance,
    )
    result = prepare(run_dir, sources, handles, options, text_column, live)
    print_prepare_result(result)


prepare_cmd.help = inspect.cleandoc(prepare_cmd.help or "") + "\n\n" + _source_help()
cli.add_command(prepare_cmd, name="prepare")


def print_prepare_result(result) -> None:
    console.print(stats_table(result.stats))
    for message in result.warnings:
        warn(escape(message))
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
@_handle
@_text_column
@click.option(
    "--base-model",
    default="gpt2",
    show_default=True,
    metavar="ID|PATH|tiny",
    help="A Hugging Face causal LM id, a local model folder, or 'tiny' (built offline "
    "from the run's own posts).",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow a base whose weights are only in pickle form (*.bin, *.pt): they can run code.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="[default: 1.372e-4, the original's; 1e-3 for tiny]",
)
@click.option(
    "--num-train-epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
)
@click.option(
    "--max-steps",
    type=int,
    default=-1,
    help="Stop after this many optimizer steps (overrides the epochs when > 0).",
)
@click.option("--lr-scheduler-type", default="cosine", show_default=True)
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--per-device-train-batch-size", type=click.IntRange(min=1), default=4, show_default=True
)
@click.option(
    "--gradient-accumulation-steps", type=click.IntRange(min=1), default=1, show_default=True
)
@click.option(
    "--block-size",
    type=click.IntRange(min=8),
    help="Tokens per training block [default: 256, or the model's context if shorter].",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 where the hardware computes it natively (recent GPUs, CPUs with "
    "AVX512-BF16/AMX), fp16 on older GPUs, else fp32.",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Dropout while training (attention dropout halves the speed on a CPU).",
)
@click.option("--keep-base-dropout", is_flag=True, help="Keep the base model's own dropout.")
@click.option("--lora", is_flag=True, help="Train LoRA adapters (peft), merged on save.")
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--early-stopping",
    "early_stopping",
    type=click.IntRange(min=1),
    is_flag=False,
    flag_value=2,
    default=None,
    metavar="[PATIENCE]",
    help="Stop when the validation loss has not improved for PATIENCE epochs (default 2).",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."
)
@click.option("--keep-checkpoints", is_flag=True, help="Keep RUN_DIR/checkpoints/ after success.")
@click.option(
    "--no-card", is_flag=True, help="Do not write the model card (`huggingtweets card` later)."
)
@click.option(
    "--repo-id",
    metavar="OWNER/NAME",
    help="The Hub id the card's snippet names [default: huggingtweets/<handles>].",
)
@click.option(
    "--report-to",
    "report_to",
    multiple=True,
    metavar="NAME",
    help="Where Trainer reports: none (default), wandb, tensorboard, mlflow ... (repeat).",
)
def train(targets, run_dir, handles, text_column, no_card, repo_id, **kwargs):
    """Fine-tune a language model on a prepared run: RUN_DIR/model/ and metrics.json.

    With SOURCEs and --out, runs prepare first. The defaults are the original
    huggingtweets' recipe (gpt2, learning rate 1.372e-4, 4 epochs, cosine, AdamW); the
    best epoch by validation loss is kept. Ctrl-C stops after a checkpoint: continue
    with --resume.

    \b
    Examples:
      huggingtweets train runs/me                         # gpt2 from the Hub
      huggingtweets train runs/me --base-model tiny       # offline, seconds
      huggingtweets train sample:romeo sample:juliet --out runs/rj --base-model tiny
      huggingtweets train runs/me --base-model ./my-model --lora --precision bf16
      huggingtweets train runs/me --resume
      accelerate launch -m huggingtweets train runs/me --report-to wandb
    """
    from .card import check_repo_id
    from .train import TrainingInterrupted, TrainOptions
    from .train import train as train_run

    if repo_id is not None and not no_card:
        check_repo_id(repo_id)  # now, not after the training it would otherwise follow
    # Options are checked first: a typo must not cost a collection or a model load.
    report_to = [n.strip() for name in kwargs.pop("report_to") for n in name.split(",")]
    early_stopping = kwargs.pop("early_stopping")
    if kwargs.pop("keep_base_dropout"):
        kwargs["dropout"] = None
    options = TrainOptions(
        **kwargs,
        early_stopping_patience=early_stopping,
        report_to=[n for n in report_to if n] or ["none"],
    )
    if run_dir is None:
        if len(targets) != 1:
            raise HuggingtweetsError("give one RUN_DIR, or SOURCEs with --out RUN_DIR")
        if handles or text_column:
            raise HuggingtweetsError(
                "--handle and --text-column apply to SOURCEs: give them with --out RUN_DIR"
            )
        run_dir = Path(targets[0])
        if not run_dir.is_dir():
            raise HuggingtweetsError(
                f"no run directory {run_dir}: to train on a SOURCE, add --out RUN_DIR"
            )
    else:
        prepared = prepare(
            run_dir, targets, handles, PrepareOptions(seed=options.seed), text_column
        )
        print_prepare_result(prepared)
    console.print(f"Training on {escape(str(run_dir))} from {escape(options.base_model)}…")
    try:
        result = train_run(run_dir, options)
    except TrainingInterrupted as stop:
        where = f"last checkpoint {stop.checkpoint}" if stop.checkpoint else "no checkpoint yet"
        click.echo(
            f"Interrupted ({where}); {run_dir / 'model'} was not touched. To continue, run "
            "the same command again with --resume (without it, training starts over).",
            err=True,
        )
        raise SystemExit(130) from None
    if not result.main_process:  # accelerate launch / torchrun: the first process reports
        return
    m = result.metrics
    console.print(
        f"Validation loss {m['eval_loss_before']:.4f} → {m['eval_loss_after']:.4f}, "
        f"perplexity {m['perplexity_before']:,.2f} → {m['perplexity_after']:,.2f} "
        f"(best epoch {m['best_epoch']:g})"
    )
    console.print(
        f"{m['timings']['train_seconds']:.0f} s, {m['timings']['tokens_per_second']:,.0f} "
        f"tokens/s on {escape(m['device'])}"
    )
    if not no_card:
        from .card import write_card

        card_path = write_card(run_dir, repo_id=repo_id)
        console.print(
            f"Model card written to {escape(str(card_path))} (+ preview.png)", soft_wrap=True
        )
    console.print(f"Model written to {escape(str(result.model_dir))}. Next:", soft_wrap=True)
    console.print(
        f'  huggingtweets generate {escape(str(run_dir))} "My dream is" -n 5', soft_wrap=True
    )


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
    from .sources.sample import speakers

    for handle, count in speakers().most_common(top):
        console.print(f"sample:{handle}  ({count} speeches)")


@cli.command()
@click.argument("model_or_run", metavar="MODEL_OR_RUN")
@click.argument("prompt", default="My dream is")
@click.option("-n", "--num", "num", type=int, default=5, show_default=True, help="How many posts.")
@click.option("--seed", type=int, help="Seed for reproducible samples (default: a fresh one).")
@click.option("--top-p", type=float, help="Nucleus sampling mass (model's setting, else 0.95).")
@click.option("--temperature", type=float, help="Sampling temperature (model's, else 1.0).")
@click.option("--max-length", type=int, help="Max tokens, prompt included (model's, else 160).")
@click.option("--min-length", type=int, help="Min tokens, prompt included (model's, else 10).")
@click.option("--allow-newlines", is_flag=True, help="Keep whole samples, not their first line.")
@click.option(
    "--no-copies",
    is_flag=True,
    help="Draw again samples the memorization guard flags as copies of training posts.",
)
@click.option(
    "--retries",
    type=int,
    default=5,
    show_default=True,
    help="With --no-copies: how many rounds of drawing again.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (samples, seed...).")
@click.option(
    "--trust-pickle", is_flag=True, help="Allow weights in pickle form (can run arbitrary code)."
)
def generate(
    model_or_run,
    prompt,
    num,
    seed,
    top_p,
    temperature,
    max_length,
    min_length,
    allow_newlines,
    no_copies,
    retries,
    as_json,
    trust_pickle,
):
    """Write posts that start with PROMPT, from a run directory, model folder or Hub id.

    The original huggingtweets' settings: "<|endoftext|>" before the prompt, top-p 0.95,
    temperature 1, 10 to 160 tokens, first line only. Each sample is checked by the
    memorization guard saved beside the model; copies of training posts are marked.

    \b
    Examples:
      huggingtweets generate runs/romeo-juliet "My dream is" -n 10
      huggingtweets generate runs/romeo-juliet "O Romeo" --seed 1 --no-copies
      huggingtweets generate runs/romeo-juliet/model "I think" --json
      huggingtweets generate huggingtweets/dril "My dream is"
    """
    import orjson

    from .generate import GenerateOptions, Generator, check_prompt

    options = GenerateOptions(
        num_return_sequences=num,
        max_length=max_length,
        min_length=min_length,
        top_p=top_p,
        temperature=temperature,
        seed=seed,
        allow_newlines=allow_newlines,
        no_copies=no_copies,
        retries=retries,
        trust_pickle=trust_pickle,
    )
    check_prompt(prompt)
    with err_console.status("Loading the model…"):
        generator = Generator.load(model_or_run, trust_pickle=trust_pickle)
    with err_console.status(f"Writing {num} post{'s' if num > 1 else ''}…"):
        result = generator.generate(prompt, options)
    if as_json:
        click.echo(orjson.dumps(result.to_dict()).decode())
        return
    _print_samples(result)
    _print_guard_summary(result, no_copies)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--samples",
    type=int,
    default=5,
    show_default=True,
    help="Sample generations shown on the card (0: none, the model is not loaded).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the samples.")
@click.option(
    "--repo-id",
    metavar="OWNER/NAME",
    help="The model's Hub id, for the how-to-use snippet and picture links "
    "(default: huggingtweets/<handles joined by ->).",
)
def card(run_dir, samples, seed, repo_id):
    """Write the model card RUN_DIR/model/README.md and its picture preview.png.

    The huggingtweets layout: avatars, "🤖 AI BOT 🤖" (or CYBORG for several accounts),
    the training-data table from dataset/stats.json, base model and hyper-parameters,
    loss and perplexity before → after, sample posts and their memorization rate.

    \b
    Examples:
      huggingtweets card runs/romeo-juliet
      huggingtweets card runs/me --repo-id my-name/me-bot --samples 8
    """
    from .card import write_card

    if samples < 0:
        raise HuggingtweetsError(f"--samples must be 0 or more (got {samples})")
    with err_console.status("Writing the model card…"):
        path = write_card(run_dir, samples=samples, seed=seed, repo_id=repo_id)
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
    from .demo import DEMO_EPOCHS, DEMO_SAMPLES, DEMO_SOURCES, run_demo

    epochs = DEMO_EPOCHS if epochs is None else epochs
    if epochs <= 0:
        raise HuggingtweetsError(f"--epochs must be above 0 (got {epochs})")
    started = time.perf_counter()
    console.rule(f"[bold]1/4 prepare[/bold]  {' '.join(DEMO_SOURCES)}")

    def on_stage(name, result):
        if name == "prepare":
            console.print(stats_table(result.stats))
            console.rule(f"[bold]2/4 train[/bold]  the tiny model, up to {epochs:g} epochs")
        elif name == "train":
            m = result.metrics
            console.print(
                f"Validation loss {m['eval_loss_before']:.3f} → {m['eval_loss_after']:.3f} "
                f"(perplexity {m['perplexity_before']:,.0f} → {m['perplexity_after']:,.1f}), "
                f"best epoch {m['best_epoch']:g} of {m.get('epochs_run', epochs):g} run, "
                f"{m['timings']['train_seconds']:.0f} s on {escape(m['device'])}",
                soft_wrap=True,
            )
            console.rule("[bold]3/4 card[/bold]")
        elif name == "card":
            console.print(
                f"Model card written to {escape(str(result))} (+ preview.png)", soft_wrap=True
            )
            console.rule(f"[bold]4/4 generate[/bold]  {DEMO_SAMPLES} posts for “My dream is”")
        elif name == "generate":
            _print_samples(result)

    result = run_demo(run_dir, epochs=epochs, seed=seed, on_stage=on_stage)
    elapsed = time.perf_counter() - started
    console.rule()
    where = escape(str(result.run_dir))
    console.print(f"Done in {elapsed:.0f} s. Your bot is in {where}. Next:", soft_wrap=True)
    console.print(f'  huggingtweets generate {where} "O Romeo" -n 10', soft_wrap=True)
    console.print(f"  less {escape(str(result.card))}", soft_wrap=True)


def _print_samples(result) -> None:
    for i, sample in enumerate(result.samples, 1):
        console.print(f"{i}. {escape(sample.text)}", soft_wrap=True)
        if sample.copy is not None:
            console.print(f"   [yellow]⚠ copy: {sample.copy.describe()}[/yellow]")


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


def main() -> None:
    cli(prog_name="huggingtweets")
