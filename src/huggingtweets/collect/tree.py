"""Read an export the same way whether it is a folder or a ``.zip`` of that folder.

What is read is bounded, so that a zip bomb or a damaged file fails in seconds with one
line instead of filling memory (a 1 MB archive can inflate to 1 GB):

- a file of posts (``tweets.js``, ``outbox.json``, ``note-tweet.js``) may be up to
  :data:`MAX_FILE_BYTES` (2 GiB); a real export holds about 1.4 KB of JSON a post, so
  this admits some 1.5 million posts in one file, where a heavy account's ``tweets.js``
  is a few hundred MB;
- a file that names the account (``account.js``, ``profile.js``, ``actor.json``,
  ``protected-history.js``: a few KB in real exports) up to :data:`MAX_SMALL_FILE_BYTES`
  (16 MiB);
- an archive entry over 1 MiB may not inflate more than :data:`MAX_RATIO` (100) times its
  compressed size: JSON exports deflate about 10 times, runs of one byte 1,000 times.

Sizes are checked as declared (before anything is inflated) and as actually read.
Only regular files are read: a named pipe or a device would block or never end. A folder
is walked up to :data:`MAX_TREE_ENTRIES` entries (an X export holds a few thousand files):
``prepare /`` or a home folder fails in a second instead of walking the whole disk.
"""

from __future__ import annotations

import abc
import mmap
import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from huggingtweets.core.errors import HuggingtweetsError

MAX_FILE_BYTES = 2 << 30
MAX_SMALL_FILE_BYTES = 16 << 20
MAX_RATIO = 100
_RATIO_FROM = 1 << 20  # smaller entries may be as repetitive as they like
_CHUNK = 8 << 20
MAX_TREE_ENTRIES = 100_000


def decode_utf8(data: bytes | bytearray, name: str) -> str:
    """Decode UTF-8 (a BOM is allowed), naming the file and offset when it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HuggingtweetsError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8"
        ) from None


def _size_text(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def too_large(where: str, size: int, limit: int) -> HuggingtweetsError:
    return HuggingtweetsError(
        f"{where} is {_size_text(size)}, more than such a file ever holds (at most "
        f"{_size_text(limit)} is read); is this the right file?"
    )


def check_regular(path: Path, where: str | None = None) -> os.stat_result:
    """``path``'s status; refuses anything but a regular file (a named pipe, a device)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise HuggingtweetsError(f"file not found: {where or path}") from None
    if not stat.S_ISREG(status.st_mode):
        raise HuggingtweetsError(
            f"{where or path} is not a regular file (a named pipe, socket or device cannot "
            "be read as posts); save its content to a file and give that"
        )
    return status


def read_file_bounded(path: Path, limit: int = MAX_FILE_BYTES, where: str | None = None) -> bytes:
    """A regular file's bytes, refused when larger than ``limit``."""
    where = where or str(path)
    size = check_regular(path, where).st_size
    if size > limit:
        raise too_large(where, size, limit)
    with path.open("rb") as handle:
        data = handle.read(limit + 1)  # it may have grown since
    if len(data) > limit:
        raise too_large(where, max(len(data), path.stat().st_size), limit)
    return data


class Tree(abc.ABC):
    """A read-only set of files addressed by POSIX relative paths."""

    label: str

    @abc.abstractmethod
    def names(self) -> list[str]: ...

    @abc.abstractmethod
    def read_bytes(self, name: str, limit: int = MAX_FILE_BYTES) -> bytes | bytearray:
        """The file's bytes; refused when more than ``limit``."""

    def read_buffer(self, name: str, limit: int = MAX_FILE_BYTES) -> bytearray | mmap.mmap:
        """The file's bytes, mapped rather than copied where the tree can (a folder's file)."""
        return bytearray(self.read_bytes(name, limit))

    def read_text(self, name: str, limit: int = MAX_FILE_BYTES) -> str:
        return decode_utf8(self.read_bytes(name, limit), f"{self.label}:{name}")

    def find(self, basename: str) -> str | None:
        """The shallowest file called ``basename`` (exports nest files under data/)."""
        hits = [n for n in self.names() if PurePosixPath(n).name == basename]
        return min(hits, key=lambda n: (n.count("/"), n)) if hits else None

    def find_all(self, predicate) -> list[str]:
        return sorted(n for n in self.names() if predicate(PurePosixPath(n).name))


class DirTree(Tree):
    """A folder; with ``recursive=False`` only the files directly in it (the folder around
    a single file the user named, which may be a large one such as Downloads). Only
    regular files are listed: a named pipe or a device among them is not an export file.
    """

    def __init__(self, root: Path, recursive: bool = True) -> None:
        self.root = root
        self.label = str(root)
        self.recursive = recursive
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(self._walk())
        return self._names

    def _walk(self) -> list[str]:
        """The regular files' names (symbolic links to files included, as ``is_file``
        says), relative to the root; links to folders are not followed (no cycles)."""
        names: list[str] = []
        seen = 0

        def unreadable(error: OSError) -> None:
            raise HuggingtweetsError(
                f"cannot read the folder {error.filename} ({error.strerror}); give the "
                "export's own folder or its .zip"
            )

        try:
            for folder, subfolders, files in os.walk(self.root, onerror=unreadable):
                seen += len(subfolders) + len(files)
                if seen > MAX_TREE_ENTRIES:
                    raise HuggingtweetsError(
                        f"{self.root} holds more than {MAX_TREE_ENTRIES:,} files and folders: "
                        "not an export; give the export's own folder or its .zip"
                    )
                relative = Path(folder).relative_to(self.root)
                names += [
                    (relative / name).as_posix() for name in files if Path(folder, name).is_file()
                ]
                if not self.recursive:
                    break
        except RecursionError:  # os.walk recurses per folder before Python 3.12
            raise HuggingtweetsError(f"{self.root} nests folders too deeply") from None
        return names

    def read_bytes(self, name: str, limit: int = MAX_FILE_BYTES) -> bytes:
        return read_file_bounded(self.root / name, limit, f"{self.label}:{name}")

    def read_buffer(self, name: str, limit: int = MAX_FILE_BYTES) -> bytearray | mmap.mmap:
        # A read-only mapping: the file's pages are the page cache's, so a 100 MB tweets.js
        # is not copied when read.
        where = f"{self.label}:{name}"
        size = check_regular(self.root / name, where).st_size
        if size > limit:
            raise too_large(where, size, limit)
        with (self.root / name).open("rb") as handle:
            if not size:
                return bytearray()  # an empty file cannot be mapped
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        if len(mapped) > limit:  # it grew since
            raise too_large(where, len(mapped), limit)
        return mapped


class ZipTree(Tree):
    """A zip archive, validated when opened: corrupt archives and entries that would
    point outside the archive (``../x``, absolute paths) are refused up front. Entries are
    inflated in bounded chunks into one buffer of their declared size, never past it."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        check_regular(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise HuggingtweetsError(
                f"{path} is not a readable zip archive ({exc}); download the export again"
            ) from None
        self._names = []
        for info in self._zip.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise HuggingtweetsError(
                    f"{path} contains an entry pointing outside the archive ({name!r}); "
                    "refusing to read it"
                )
            if not info.is_dir():
                self._names.append(name)
        self._names.sort()

    def names(self) -> list[str]:
        return self._names

    def read_bytes(self, name: str, limit: int = MAX_FILE_BYTES) -> bytearray:
        return self.read_buffer(name, limit)

    def read_buffer(self, name: str, limit: int = MAX_FILE_BYTES) -> bytearray:
        where = f"{self.label}:{name}"
        info = self._zip.getinfo(name)
        size = info.file_size
        if size > limit:
            raise too_large(where, size, limit)
        if size > _RATIO_FROM and size > MAX_RATIO * max(info.compress_size, 1):
            raise HuggingtweetsError(
                f"{where} would inflate {_size_text(info.compress_size)} of the archive to "
                f"{_size_text(size)}, more than {MAX_RATIO} times, as no real export does "
                "(a zip bomb?); refusing to read it"
            )
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        try:
            with self._zip.open(info) as entry:
                while chunk := entry.read(min(_CHUNK, size - got + 1)):
                    if got + len(chunk) > size:  # zipfile stops at the declared size; still
                        raise zipfile.BadZipFile("more data than the archive declares")
                    view[got : got + len(chunk)] = chunk
                    got += len(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise HuggingtweetsError(
                f"{self.label}: cannot read {name} ({exc}); the archive is corrupt or "
                "truncated, download the export again"
            ) from None
        except RuntimeError:  # zipfile's word for an entry that needs a password
            raise HuggingtweetsError(
                f"{self.label}: {name} is password-protected; extract the archive with its "
                "password and give the folder instead"
            ) from None
        if got != size:
            raise HuggingtweetsError(
                f"{self.label}: cannot read {name} (it holds {got:,} bytes where the archive "
                f"declares {size:,}); the archive is corrupt or truncated, download the "
                "export again"
            )
        return buffer


def open_tree(path: Path) -> Tree:
    if path.is_dir():
        return DirTree(path)
    return ZipTree(path)
