"""Terminal output shared by the commands: one console, tables, warnings, the progress
bars, and what several commands print (samples, an evaluation, the data's table)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from huggingtweets.card.labels import stats_rows

# No ":name:" emoji codes: names and posts are printed, and a post that says ":fire:" must
# be shown as written. (Markup stays on for our own styling; user text is escaped or Text.)
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


def warn(message: str) -> None:
    """``message`` is rich markup: escape (rich.markup.escape) any user text inside it."""
    err_console.print(f"[yellow]Warning:[/yellow] {message}", markup=True, soft_wrap=True)


def stats_table(stats: dict) -> Table:
    table = Table(title="Training data")
    table.add_column("Data")
    for account in stats["accounts"]:
        # A display name is anyone's text ("Jane [she/her]"): Text, never markup.
        name = account.get("display_name") or account["handle"]
        table.add_column(Text(str(name)), justify="right")
    for label, values in stats_rows(stats):
        table.add_row(label, *(f"{v:,}" for v in values))
    return table


_UNITS = {"train": "step", "collect": "post", "sweep": "trial", "evaluate": "post"}


class EventRenderer:
    """Draws a run's events on the terminal: a progress bar (ETA included) per stage that
    counts, warnings in yellow, other notes dimmed. User text is shown as written."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, event) -> None:
        from tqdm.auto import tqdm

        from huggingtweets.core.secrets import redact

        key = event.stage + ":" + str(event.data.get("account", ""))
        bar = self.bars.get(key)
        if event.kind == "warning":
            self._write(bar, redact(f"Warning: {event.message}"), style="yellow")
        elif event.kind == "info":
            self._write(bar, redact(event.message), style="dim" if bar is None else None)
        elif event.kind in ("start", "progress") and event.total:
            if bar is None:
                label = event.data.get("account") or event.stage
                bar = self.bars[key] = tqdm(
                    total=event.total,
                    initial=event.step or 0,
                    desc=str(label),
                    unit=_UNITS.get(event.stage, "step"),
                    dynamic_ncols=True,
                )
            if event.total != bar.total:
                bar.total = event.total
            if event.step is not None:
                bar.update(event.step - bar.n)
            if event.loss is not None:
                epoch = event.data.get("epoch")
                postfix = {"loss": f"{event.loss:.3f}"}
                if epoch is not None:
                    postfix["epoch"] = f"{epoch:.2f}"
                bar.set_postfix(postfix, refresh=False)
        elif event.kind == "end" and bar is not None:
            bar.close()
            del self.bars[key]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    @staticmethod
    def _write(bar, message: str, style: str | None) -> None:
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            err_console.print(Text(message, style=style or ""), soft_wrap=True)


def print_stats_after_prepare(event) -> None:
    """A reporter's listener: after prepare, its table, before training starts."""
    if event.stage == "prepare" and event.kind == "end" and "stats" in event.data:
        console.print(stats_table(event.data["stats"]))


def print_samples(result, links=None) -> None:
    """A generation's posts, numbered; a copy of a training post marked; share links."""
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


def print_verdict(evaluation: dict, path: Path) -> None:
    """After training: the real-or-bot verdict of all accounts together, in one line."""
    from huggingtweets.evaluate.report import card_section

    section = card_section(evaluation, Path("/nonexistent"))
    if section["classifier"]:
        _, accuracy, interval, verdict, _ = section["classifier"][0]
        console.print(
            f"Does it sound like them? A classifier tells real from bot {accuracy} of the time "
            f"(95 % interval {interval}; 50 %: it cannot): {escape(verdict)}. More in "
            f"{escape(str(path))}",
            soft_wrap=True,
        )


def _percent(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def print_evaluation(evaluation: dict) -> None:
    """An evaluation (evaluation.json) in full: the style table, the classifiers'
    verdicts, the perplexities, the speakers and the memorization rate."""
    from huggingtweets.evaluate.report import card_section

    section = card_section(evaluation, Path("/nonexistent"))
    table = Table(title=f"{evaluation['samples']} bot posts vs {evaluation['held_out']} real")
    for column in ("", "real", "bot"):
        table.add_column(column, justify="left" if not column else "right")
    for name, real, bot in section["style"]:
        table.add_row(escape(name), escape(real), escape(bot))
    console.print(table)
    console.print(
        f"Lengths apart by {section['wasserstein']} words on average (KS {section['ks']}); "
        f"top-{section['top_words'][1]} words shared: {section['top_words'][0]}"
    )
    for who, accuracy, interval, verdict, each in section["classifier"]:
        console.print(
            f"Real or bot? ({escape(who)}, {each} of each): {accuracy} "
            f"(95 % interval {interval}): {escape(verdict)}"
        )
    _print_perplexities(evaluation["groups"])
    _print_speakers(section.get("speakers"))
    memo = evaluation["memorization"]
    if memo.get("checked"):
        console.print(
            f"Memorization: {memo['flagged']} of {memo['total']} samples "
            f"({_percent(memo['rate'])}) copy a training post or share {memo['ngram']}+ "
            "words with one"
        )


def _print_perplexities(groups: list[dict]) -> None:
    from huggingtweets.evaluate.report import who as who_label

    for group in groups:
        p = group["perplexity"]
        base = "—" if p["base"] is None else f"{p['base']:,.1f}"
        console.print(
            f"Perplexity on the held-out posts ({escape(who_label(group['group']))}): "
            f"base model {base} → fine-tuned {p['fine_tuned']:,.1f}"
        )


def _print_speakers(speakers: dict | None) -> None:
    if speakers and "accuracy" in speakers:
        console.print(
            f"Written --as each account, attributed to it by a classifier of the accounts: "
            f"{speakers['accuracy']} of {speakers['samples']} (95 % interval "
            f"{speakers['interval']}; chance {speakers['chance']}; real posts "
            f"{speakers['real_accuracy']}): {escape(speakers['verdict'])}"
        )
    elif speakers:
        console.print(f"Speakers: {escape(speakers['skipped'])}")
