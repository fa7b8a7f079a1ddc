"""Sources: where an account's posts come from, behind one small interface.

A source is named by a *spec* on the command line. Files and folders are recognised
from the path by the file formats registered with :func:`register_file_format` (an X
export, a Mastodon export, CSV / JSON Lines / text), tried in the order they registered;
everything else is looked up by prefix (``sample:romeo``, and live platforms such as
``bsky:``) or by a spelling a platform registers (``@user@instance``,
``https://x.com/name``). A new platform is one new module that calls
:func:`register_prefix` (and optionally :func:`register_spelling`) at import time; a new
file format is one new module that calls :func:`register_file_format`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from huggingtweets.collect.tree import DirTree, Tree, check_regular, open_tree
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.records import Collected, check_handle
from huggingtweets.core.runs import RunDir

if TYPE_CHECKING:
    from huggingtweets.collect.live.options import LiveOptions
    from huggingtweets.core.events import Reporter

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


def check_text_column(text_column: str | None) -> str | None:
    """``--text-column`` as given; an empty name is refused rather than ignored."""
    if text_column is not None and not text_column.strip():
        raise OptionError(
            "text_column", "is empty: name the column that holds the posts' text, or leave it out"
        )
    return text_column


class Source(abc.ABC):
    """One account's posts, from one place."""

    platform: ClassVar[str]
    # Read whole, every time (a file, the bundled sample), rather than fetched page by page
    # by its own collect(): such sources are read before anything is written.
    offline: ClassVar[bool] = False

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
    offline = True

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        check_text_column(options.text_column)  # refused before anything is read
        self.path = Path(spec).expanduser()
        file_format, self._input = _detect_file_format(self.path)
        self.format = file_format.name
        self.platform = file_format.platform
        self._reader = file_format.reader

    def read(self) -> Collected:
        try:
            return self._reader(self._input, self.options)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise HuggingtweetsError(
                f"cannot read {exc.filename or self.path}: {exc.strerror}"
            ) from None


class FileInput:
    """What a file format looks at: the path the user gave and, for a folder or a
    ``.zip`` (``archive``), its files; for a single file, the folder around it (so that an
    export's ``tweets.js`` finds ``account.js`` beside it). Opened when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name.lower()
        self.archive = path.is_dir() or self.name.endswith(".zip")

    @cached_property
    def tree(self) -> Tree:
        return open_tree(self.path) if self.archive else DirTree(self.path.parent, False)


@dataclass(frozen=True)
class FileFormat:
    name: str
    matches: Callable[[FileInput], bool]
    reader: Callable[[FileInput, SourceOptions], Collected]
    form: str
    platform: str
    suffixes: tuple[str, ...]
    folder: str | None


_FILE_FORMATS: list[FileFormat] = []


def register_file_format(
    name: str,
    matches: Callable[[FileInput], bool],
    reader: Callable[[FileInput, SourceOptions], Collected],
    form: str,
    *,
    platform: str = "file",
    suffixes: tuple[str, ...] = (),
    folder: str | None = None,
) -> None:
    """A kind of file (or folder, or ``.zip``) that a source can be.

    ``matches`` tells it from a :class:`FileInput`, ``reader`` reads it. ``form`` is how
    the help and errors show it ("an X export (.zip, folder or tweets.js)"), ``platform``
    the platform of the account it holds, ``suffixes`` the endings of its file names (a
    spec with one that does not exist is a missing file). A format that can be a folder or
    a ``.zip`` says what one is and lacks in ``folder`` ("an X/Twitter export (no
    data/tweets.js)"): only those are tried on folders and archives.
    """
    global _FILE_SUFFIXES
    _FILE_FORMATS.append(FileFormat(name, matches, reader, form, platform, suffixes, folder))
    _FILE_SUFFIXES += tuple(s for s in suffixes if s not in _FILE_SUFFIXES)


def file_formats() -> list[FileFormat]:
    return list(_FILE_FORMATS)


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _detect_file_format(path: Path) -> tuple[FileFormat, FileInput]:
    if not path.is_dir():
        check_regular(path)  # a named pipe or a device would block or never end
    given = FileInput(path)
    for file_format in _FILE_FORMATS:
        if (file_format.folder or not given.archive) and file_format.matches(given):
            return file_format, given
    if given.archive:
        kinds = [f.folder for f in _FILE_FORMATS if f.folder]
        raise HuggingtweetsError(f"{path}: not " + " nor ".join(kinds))
    raise HuggingtweetsError(
        f"{path}: unknown format; expected " + _or_list([f.form for f in _FILE_FORMATS])
    )


# -- the registry ---------------------------------------------------------------

SourceFactory = Callable[[str, SourceOptions], Source]
_PREFIXES: dict[str, SourceFactory] = {}
_SPELLINGS: list[Callable[[str], str | None]] = []
_FORMS: list[str] = []  # of the prefixed sources; the file formats come first


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
    file_forms = "a file or folder: " + ", ".join(f.form for f in _FILE_FORMATS)
    return [file_forms, *_FORMS]


# Endings of the files a source can be: a spec with one of these (or a "/") that does not
# exist is a missing file rather than an unknown kind of source. Filled by the formats.
_FILE_SUFFIXES: tuple[str, ...] = ()


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
