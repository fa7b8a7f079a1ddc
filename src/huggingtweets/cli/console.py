"""Terminal output shared by the commands: one console, tables, warnings."""

from __future__ import annotations

import sys

from rich.console import Console
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
