"""Sources: where an account's posts come from, behind one small interface.

A source is named by a *spec* on the command line. Files and folders are recognised
from the path (an X export, a Mastodon export, CSV / JSON Lines / text); everything else
is looked up by prefix (``sample:romeo``, and live platforms such as ``bsky:``) or by a
spelling a platform registers (``@user@instance``, ``https://x.com/name``). A new
platform is one new module that calls :func:`register_prefix` (and optionally
:func:`register_spelling`) at import time.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import HuggingtweetsError
from ..records import Collected, check_handle
from ..runs import RunDir
from . import files, mastodon_export, sample, x_export
from .tree import DirTree, open_tree

if TYPE_CHECKING:
    from ..events import Reporter
    from .live import LiveOptions

T = TypeVar("T")


@dataclass
class SourceOptions:
    handle: str | None = None  # overrides (or supplies) the account's handle
    text_column: str | None = None  # CSV / JSONL: which field holds the text
    live: LiveOptions | None = None  # live accounts: --update, --no-wait, time-outs
    # The options that sources declare for themselves (register_options), by class: a
    # source reads its own with ``options.get(ItsOptions)``.
    extra: dict[type, Any] = field(default_factory=dict)

    def get(self, cls: type[T]) -> T:
        """This source kind's own options: those given, else the class's defaults."""
        value = self.extra.get(cls)
        return value if value is not None else cls()


class Source(abc.ABC):
    """One account's posts, from one place."""

    platform: ClassVar[str]

    def __init__(self, spec: str, options: SourceOptions) -> None:
        self.spec = spec
        self.options = options

    @abc.abstractmethod
    def read(self) -> Collected:
        """The account and all its posts, in memory."""

    def collect(self, run: RunDir, reporter: Reporter | None = None) -> Collected:
        """Collect into ``run``'s posts/ folder, reporting progress to ``reporter`` (stage
        ``"collect"``). Live sources override this to cache page by page and resume (and
        stop between pages when the reporter is cancelled); a file is simply read and
        written atomically."""
        collected = self.read()
        run.write_collected(collected)
        return collected

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class FileSource(Source):
    """A file or folder on disk; the format is recognised from the path and contents."""

    platform = "file"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.path = Path(spec).expanduser()
        self.format, self._read = _detect_file_format(self.path)
        self.platform = {"x-export": "x", "mastodon-export": "mastodon"}.get(self.format, "file")

    def read(self) -> Collected:
        try:
            return self._read(self.options)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise HuggingtweetsError(
                f"cannot read {exc.filename or self.path}: {exc.strerror}"
            ) from None


def _detect_file_format(path: Path) -> tuple[str, Callable[[SourceOptions], Collected]]:
    name = path.name.lower()
    if not path.exists():
        raise HuggingtweetsError(f"file not found: {path}")
    if path.is_dir() or name.endswith(".zip"):
        tree = open_tree(path)
        if x_export.looks_like_export(tree):
            return "x-export", lambda o: x_export.read_x_export(tree, o.handle)
        if mastodon_export.looks_like_export(tree):
            return "mastodon-export", lambda o: mastodon_export.read_mastodon_export(tree, o.handle)
        raise HuggingtweetsError(
            f"{path}: not an X/Twitter export (no data/tweets.js) nor a Mastodon export "
            "(no outbox.json)"
        )
    # A single file of an export: read the folder around it, so that account.js,
    # note-tweet.js or actor.json beside it are found too.
    if x_export.is_tweet_file(name):
        return "x-export", lambda o: x_export.read_x_export(DirTree(path.parent, False), o.handle)
    if name == "outbox.json":
        return "mastodon-export", lambda o: mastodon_export.read_mastodon_export(
            DirTree(path.parent, False), o.handle
        )
    if name.endswith(".csv"):
        return "csv", lambda o: files.read_csv(path, o.handle, o.text_column)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl", lambda o: files.read_jsonl(path, o.handle, o.text_column)
    if name.endswith(".txt"):
        return "text", lambda o: files.read_text(path, o.handle)
    raise HuggingtweetsError(
        f"{path}: unknown format; expected an X export (.zip, folder or tweets.js), a Mastodon "
        "export (.zip, folder or outbox.json), .csv, .jsonl or .txt"
    )


class SampleSource(Source):
    platform = "sample"

    def read(self) -> Collected:
        return sample.read_sample(self.spec.split(":", 1)[1], self.options.handle)


# -- the registry ---------------------------------------------------------------

SourceFactory = Callable[[str, SourceOptions], Source]
_PREFIXES: dict[str, SourceFactory] = {}
_SPELLINGS: list[Callable[[str], str | None]] = []
_FORMS: list[str] = [
    "a file or folder: X export (.zip, folder, tweets.js), Mastodon export "
    "(.zip, folder, outbox.json), .csv, .jsonl, .txt"
]


def register_prefix(prefix: str, factory: SourceFactory, form: str) -> None:
    """``prefix`` such as ``"bsky:"``; ``form`` is how the help and errors show it."""
    _PREFIXES[prefix] = factory
    _FORMS.append(form)


_OPTION_CLASSES: list[type] = []


def register_options(cls: type) -> None:
    """An options dataclass (fields declared with ``options.option``) that a kind of source
    reads through ``SourceOptions.get(cls)``; the CLI offers its fields as flags on
    ``collect``, ``prepare`` and ``train``, so a new platform needs no edit elsewhere."""
    if cls not in _OPTION_CLASSES:
        _OPTION_CLASSES.append(cls)


def source_option_classes() -> list[type]:
    return list(_OPTION_CLASSES)


def register_spelling(normalize: Callable[[str], str | None]) -> None:
    """Map another spelling (``@user@host``, a profile URL) to a prefixed spec, or None."""
    _SPELLINGS.append(normalize)


def accepted_forms() -> list[str]:
    return list(_FORMS)


# Endings of the files a source can be: a spec with one of these (or a "/") that does not
# exist is a missing file rather than an unknown kind of source.
_FILE_SUFFIXES = (".zip", ".js", ".json", ".csv", ".jsonl", ".ndjson", ".txt")


def resolve(spec: str, options: SourceOptions | None = None) -> Source:
    """The source a spec names; refuses anything unrecognised with the accepted forms."""
    options = options or SourceOptions()
    if options.handle is not None:  # refused before anything is read or fetched
        options.handle = check_handle(options.handle)
    for prefix, factory in _PREFIXES.items():
        if spec.startswith(prefix):
            return factory(spec, options)
    if Path(spec).expanduser().exists():
        return FileSource(spec, options)
    for normalize in _SPELLINGS:
        normalized = normalize(spec)
        if normalized is not None:
            return resolve(normalized, options)
    if "://" not in spec and ("/" in spec or spec.lower().endswith(_FILE_SUFFIXES)):
        raise HuggingtweetsError(f"file not found: {spec}")
    raise HuggingtweetsError(
        f"{spec!r} is neither a file here nor an account in an accepted form; accepted: "
        + "; ".join(accepted_forms())
    )


def read_source(spec: str, handle: str | None = None, text_column: str | None = None) -> Collected:
    """Read one source into memory (Python API)."""
    return resolve(spec, SourceOptions(handle, text_column)).read()


register_prefix(
    "sample:", SampleSource, "sample:SPEAKER (bundled tiny Shakespeare, e.g. sample:romeo)"
)

# Live platforms register themselves, in the order the help lists them (their client
# libraries load only when a source is used).
from . import x_api, bluesky, mastodon_api  # noqa: E402, F401, I001
