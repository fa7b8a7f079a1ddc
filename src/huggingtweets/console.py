"""Terminal output shared by the commands: one console, tables, warnings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .labels import stats_rows

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]Warning:[/yellow] {message}", markup=True, soft_wrap=True)


def stats_table(stats: dict) -> Table:
    table = Table(title="Training data")
    table.add_column("Data")
    for account in stats["accounts"]:
        table.add_column(account.get("display_name") or account["handle"], justify="right")
    for label, values in stats_rows(stats):
        table.add_row(label, *(f"{v:,}" for v in values))
    return table
