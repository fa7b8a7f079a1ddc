"""``huggingtweets generate``: posts from a trained bot (see generate/)."""

from __future__ import annotations

import click

from huggingtweets.cli.console import err_console, print_samples, warn
from huggingtweets.cli.options import dataclass_options
from huggingtweets.generate.generator import GenerateOptions
from huggingtweets.generate.share import ShareOptions


@click.command("generate")
@click.argument("model_or_run", metavar="MODEL_OR_RUN")
@click.argument("prompt", required=False)
@dataclass_options(GenerateOptions, "options")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (samples, seed...).")
@dataclass_options(ShareOptions, "share_options")
def generate_command(
    model_or_run: str,
    prompt: str | None,
    options: GenerateOptions,
    as_json: bool,
    share_options: ShareOptions,
) -> None:
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
        check_prompt(prompt, allow_newlines=options.allow_newlines)
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
    print_samples(result, links)
    _print_guard_summary(result, options.no_copies)


def _default_prompt(generator) -> str:
    """ "My dream is" in the language the model's card declares, where one is known."""
    from huggingtweets.core.language import default_prompt

    return default_prompt(getattr(generator, "language", None))


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
