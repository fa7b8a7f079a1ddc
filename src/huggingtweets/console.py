"""Terminal output shared by the commands: one console, tables, warnings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .labels import stats_rows

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
