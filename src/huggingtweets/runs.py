"""The run directory: the contract between pipeline stages, and safe writes into it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from .records import (
    Account,
    Collected,
    check_handle,
    dump_jsonl,
    read_posts,
    without_private_text,
)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash, Ctrl-C or full disk leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files (mkdtemp 0700 folders) whatever the umask: what is
        # renamed into place gets what a plain open() would give (a model is meant to be
        # read by others: a web server, a colleague).
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """Build a folder under a temporary name; swap it in whole only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())  # as in atomic_open
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json(path: Path, obj: object) -> None:
    atomic_write(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (see DESIGN.md): every stage reads and writes here."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def posts_dir(self) -> Path:
        return self.root / "posts"

    def posts_path(self, handle: str) -> Path:
        return self.posts_dir / f"{check_handle(handle)}.jsonl"

    def account_path(self, handle: str) -> Path:
        return self.posts_dir / f"{check_handle(handle)}.account.json"

    def state_path(self, handle: str) -> Path:
        """Where a live collection of ``handle`` continues (see sources/live.py)."""
        return self.posts_dir / f"{check_handle(handle)}.state.json"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def train_path(self) -> Path:
        return self.dataset_dir / "train.jsonl"

    @property
    def valid_path(self) -> Path:
        return self.dataset_dir / "valid.jsonl"

    @property
    def stats_path(self) -> Path:
        return self.dataset_dir / "stats.json"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.json"

    # -- posts/ ---------------------------------------------------------------

    def write_collected(self, collected: Collected) -> Path:
        """Write one account's posts and profile (atomically) and return the posts path.
        A private post's text is not written: it is never to be trained on."""
        handle = collected.account.handle
        path = self.posts_path(handle)
        atomic_write(path, dump_jsonl(without_private_text(collected.posts)))
        write_json(self.account_path(handle), collected.account.to_dict())
        return path

    def collected_handles(self) -> list[str]:
        return sorted(p.name[: -len(".jsonl")] for p in self.posts_dir.glob("*.jsonl"))

    def read_collected(self, handle: str) -> Collected:
        posts = read_posts(self.posts_path(handle))
        account_path = self.account_path(handle)
        if account_path.exists():
            account = Account.read(account_path)
        else:
            platform = posts[0].platform if posts else "file"
            account = Account(platform=platform, handle=handle)
        return Collected(account, posts)
