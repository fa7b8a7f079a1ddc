"""Read an export the same way whether it is a folder or a ``.zip`` of that folder."""

from __future__ import annotations

import abc
import mmap
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import HuggingtweetsError


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (a BOM is allowed), naming the file and offset when it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HuggingtweetsError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8"
        ) from None


class Tree(abc.ABC):
    """A read-only set of files addressed by POSIX relative paths."""

    label: str

    @abc.abstractmethod
    def names(self) -> list[str]: ...

    @abc.abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    def read_buffer(self, name: str) -> bytearray | mmap.mmap:
        """The file's bytes in a buffer that may be changed in place (the file is not)."""
        return bytearray(self.read_bytes(name))

    def read_text(self, name: str) -> str:
        return decode_utf8(self.read_bytes(name), f"{self.label}:{name}")

    def find(self, basename: str) -> str | None:
        """The shallowest file called ``basename`` (exports nest files under data/)."""
        hits = [n for n in self.names() if PurePosixPath(n).name == basename]
        return min(hits, key=lambda n: (n.count("/"), n)) if hits else None

    def find_all(self, predicate) -> list[str]:
        return sorted(n for n in self.names() if predicate(PurePosixPath(n).name))


class DirTree(Tree):
    """A folder; with ``recursive=False`` only the files directly in it (the folder around
    a single file the user named, which may be a large one such as Downloads)."""

    def __init__(self, root: Path, recursive: bool = True) -> None:
        self.root = root
        self.label = str(root)
        self.recursive = recursive
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            paths = self.root.rglob("*") if self.recursive else self.root.iterdir()
            self._names = sorted(p.relative_to(self.root).as_posix() for p in paths if p.is_file())
        return self._names

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def read_buffer(self, name: str) -> bytearray | mmap.mmap:
        # A private mapping: the file's pages are shared with the page cache until written
        # to, so a 100 MB tweets.js is neither copied when read nor when split in two.
        with (self.root / name).open("rb") as handle:
            if not handle.seek(0, 2):
                return bytearray()  # an empty file cannot be mapped
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)


class ZipTree(Tree):
    """A zip archive, validated when opened: corrupt archives and entries that would
    point outside the archive (``../x``, absolute paths) are refused up front."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
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

    def read_bytes(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
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


def open_tree(path: Path) -> Tree:
    if path.is_dir():
        return DirTree(path)
    return ZipTree(path)
