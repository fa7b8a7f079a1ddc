"""Messages as the server's clients see them: one line, secrets blanked, in the server's
words, and without the paths where the server keeps its files."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.secrets import redact

# The command line's words in the readers' messages, as the server's clients say it (the
# longer phrases first: they hold the shorter ones). Advice a client cannot follow through
# the API (a flag of `prepare`, a folder on the server) is said as what the API offers.
SERVER_WORDS = {
    # train.recipe: a dataset without validation posts (the server prepares with its
    # default split: only more posts can mend it).
    "prepare again with two posts or more per account and a --validation-split-percentage "
    "above 0": "create the run again (POST /api/v1/runs or /api/v1/runs/upload) from two "
    "posts or more per account",
    # model.loading: a Hub id that cannot be had offline.
    "use a local model folder (to train: --base-model tiny)": 'use base_model "tiny" or a '
    "model this server serves",
    "pass --handle YOUR_HANDLE": "give the account's handle (the handle field)",
    "--base-model tiny": 'base_model "tiny"',
    "--handle": "handle",
    "--out": "run_id",
}
# Any other flag that is a field of the API's bodies (a training option, a generate
# field): the field's name ("--speaker-tokens" -> speaker_tokens). Other flags stay.
FLAG_RE = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b")
GENERATE_FIELDS = frozenset({"n", "prompt", "max_length", "temperature", "top_p", "seed"})


def server_words(text: str) -> str:
    """A message in the API's words: its fields where the command line has flags."""
    for cli, server in SERVER_WORDS.items():
        text = text.replace(cli, server)

    def field(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        return name if name in _api_fields() else match.group(0)

    return FLAG_RE.sub(field, text)


def _api_fields() -> frozenset[str]:
    from huggingtweets.core.options import option_specs
    from huggingtweets.train.options import TrainOptions

    return GENERATE_FIELDS | {spec.name for spec in option_specs(TrainOptions)} | {"no_copies"}


def without_upload_folder(text: str, folder: Path) -> str:
    """An upload's messages name the file alone: its temporary folder on the server
    (as "FOLDER/name", "FOLDER:name" or "FOLDER: name") is not the client's business."""
    for place in {str(folder.resolve()), str(folder)}:
        for joint in (os.sep, ": ", ":"):
            text = text.replace(place + joint, "")
        text = text.replace(place, "the upload")
    return text


def without_root(text: str, root: Path) -> str:
    """Paths under ``root`` (runs_dir) shown relative to it."""
    for place in {str(root.resolve()), str(root)}:
        text = text.replace(place + os.sep, "")
    return text


# An absolute path left in a message (a cache's snapshot, a library's temporary file): not
# a URL's path ("https://host/a/b": its slashes follow a name or "//").
ABSOLUTE_PATH_RE = re.compile(r"(?<![\w:/.~-])(?:/[^\s/:'\"()]+)+/?")


def without_paths(text: str, places: dict[str, str]) -> str:
    """``text`` with each place (a folder on the server) said as its name for the client
    (``places``: folder -> words), and any other absolute path as its last part."""
    for place, words in places.items():
        for spelled in {place, str(Path(place).resolve())}:
            text = text.replace(spelled + os.sep, words + "/" if words else "")
            text = text.replace(spelled, words)
    return ABSOLUTE_PATH_RE.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def one_line(text: object, limit: int = 500) -> str:
    """A message as one line, secrets blanked (errors and events may quote a server)."""
    line = " ".join(redact(str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# Signals that stop a process on purpose (someone or something asked it to end); by name,
# as not every system has all of them.
STOP_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"})


def ended_text(what: str, exitcode: int | None) -> str:
    """Why ``what`` (a process) ended before its job did, from its exit code (a negative
    one is the signal that ended it, as multiprocessing says it): only what is known. Out
    of memory is a possibility for SIGKILL alone (the kernel's OOM killer sends it)."""
    text = f"{what} ended unexpectedly"
    if exitcode is None:
        return text
    if exitcode >= 0:
        return f"{text} (exit code {exitcode})"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        return f"{text}: killed by signal {-exitcode}"
    if name == "SIGKILL":
        return f"{text}: killed by SIGKILL (the system may have run out of memory)"
    if name in STOP_SIGNALS:
        return f"{text}: stopped by {name}"
    return f"{text}: killed by {name}"


def error_text(exc: BaseException) -> str:
    """What a failed job shows: the one line a user can act on, never a traceback."""
    if isinstance(exc, HuggingtweetsError):
        return one_line(str(exc))
    if isinstance(exc, MemoryError):
        return "out of memory: choose a smaller base model or batch size"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return one_line(f"{exc.strerror}{where}")
    return one_line(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
