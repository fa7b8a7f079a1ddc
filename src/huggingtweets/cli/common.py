"""What every command shares: the group that turns errors into one line, the progress
reporter, and the options several commands take (--out, --handle, the source options).

Commands (cli/<command>.py) import only this module, console.py and options.py; main.py
lists them on the group.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from click.core import ParameterSource

from huggingtweets.cli.console import EventRenderer, err_console
from huggingtweets.cli.options import FLAGS, config_value_error, dataclass_options
from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import SourceOptions, accepted_forms, source_option_classes
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, cancel_on_sigint
from huggingtweets.core.options import OptionError
from huggingtweets.core.secrets import redact

# A field name of several words (min_length) inside a message: shown as its flag.
_FIELD_RE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def error_line(exc: HuggingtweetsError) -> str:
    """The error as the user typed it: an option's field names shown as their flags."""
    if isinstance(exc, OptionError):
        flag = FLAGS.get(exc.name, exc.name)
        problem = _FIELD_RE.sub(lambda m: FLAGS.get(m.group(0), m.group(0)), exc.problem)
        return f"{flag} {problem}"
    return str(exc)


def os_error_line(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        where = exc.filename or "while writing"
        return f"the disk is full ({where}); free some space and run again"
    if isinstance(exc, IsADirectoryError) and (exc.filename2 or exc.filename):
        # os.replace(temporary, target): the target, second, is the user's path
        where = exc.filename2 or exc.filename
        return f"{where} is a folder where a file belongs: move it out of the way and run again"
    return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)


class CommandGroup(click.Group):
    """Turns the errors a user can act on into one line and an exit code, no traceback.
    Whatever is printed has every configured secret (tokens) blanked out."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HuggingtweetsError as exc:
            click.echo(redact(f"Error: {error_line(exc)}"), err=True)
            ctx.exit(2)
        except KeyboardInterrupt:  # Ctrl-C, or a cancelled run (events.Cancelled)
            click.echo(
                "Interrupted: nothing half-written was kept; run the command again to continue.",
                err=True,
            )
            ctx.exit(130)
        except OSError as exc:
            click.echo(redact(f"Error: {os_error_line(exc)}"), err=True)
            ctx.exit(1)


@contextlib.contextmanager
def reporting(on_cancel: str | None = None) -> Iterator[Reporter]:
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


def interrupted(message: str) -> SystemExit:
    """What a command raises after a training stopped on Ctrl-C: ``message`` says what
    was kept and how to continue; the exit code is the shell's for SIGINT."""
    click.echo(message, err=True)
    return SystemExit(130)


run_dir_option = click.option(
    "--out",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run directory to write (posts/, dataset/, model/ ...).",
)
handle_option = click.option(
    "--handle",
    "handles",
    multiple=True,
    metavar="H",
    help="The account's handle, for sources that do not name it "
    "(repeat: one per source, in order).",
)


def source_options(command: Callable) -> Callable:
    """--text-column, the live options and every platform's own options (each source kind
    declares them: sources.register_options); the command receives one SourceOptions,
    and its help ends with the SOURCE forms the registry accepts."""
    extra_classes = source_option_classes()

    @functools.wraps(command)
    def with_sources(*args, text_column, live_options, **kwargs):
        extra = {cls: kwargs.pop(f"extra_{cls.__name__}") for cls in extra_classes}
        ctx = click.get_current_context()
        if text_column is None:  # not given: train's --config may hold it
            text_column = ctx.meta.get("huggingtweets.config", {}).get("text_column")
        try:
            if text_column is not None and not isinstance(text_column, str):
                raise OptionError(
                    "text_column", f"must be text, a field's name (got {text_column!r})"
                )
            if text_column is not None and not text_column.strip():
                raise OptionError("text_column", "is empty: name the field that holds the text")
        except OptionError as exc:
            if ctx.get_parameter_source("text_column") not in (None, ParameterSource.DEFAULT):
                raise  # the flag's value
            raise config_value_error(ctx, exc) from None
        kwargs["source_options"] = SourceOptions(
            text_column=text_column, live=live_options, extra=extra
        )
        return command(*args, **kwargs)

    source_help = "SOURCE is one of: " + "; ".join(accepted_forms()) + "."
    with_sources.__doc__ = inspect.cleandoc(command.__doc__ or "") + "\n\n" + source_help
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
