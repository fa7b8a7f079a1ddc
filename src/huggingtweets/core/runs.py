"""The run directory: the contract between pipeline stages, and safe writes into it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import (
    Account,
    AccountPosts,
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


# Temporaries are named ".<name>.<pid>.<random>[.tmp]": the pid tells a later run whether
# the process that made one is gone (kill -9, power cut), so that it can be cleaned up.
_TMP_RE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}(?:\.tmp)?")


def temporary_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries that a killed process left in ``folder`` (not recursive);
    those of a process still running are left alone. Returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            match = _TMP_RE.fullmatch(entry.name)
            if match is None or _alive(int(match["pid"])):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash, Ctrl-C or full disk leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
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
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for a library that opens the file by name itself
    (gguf's writer); renamed over ``path`` only on success, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # as in atomic_open
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
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
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(path.name), dir=path.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())  # as in atomic_open
        yield tmp
        _plain_permissions(tmp)
        if path.exists():
            old = Path(
                tempfile.mkdtemp(prefix=temporary_prefix(path.name + ".old"), dir=path.parent)
            )
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _plain_permissions(folder: Path) -> None:
    """Files made by libraries through their own temporary files (safetensors writes
    model.safetensors 0600) get what a plain write gives under the umask, as ours do."""
    mode = 0o666 & ~current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)


# What a training changes in its output folder, together (see StagedOutputs): the model
# with its card, metrics.json, and evaluate's results (of the old model: removed).
TRAINED_OUTPUTS = ("model", "metrics.json", "evaluation.json")
# What the stages read beside those outputs: linked into the staging folder.
_READ_BESIDE = ("tiny-base",)


class StagedOutputs:
    """A training's outputs written under a temporary folder beside them (``self.run``
    writes there; ``self.final`` is the run they belong to), swapped in together by
    :meth:`commit`: a failure while saving, evaluating or writing the card leaves the
    previous model, metrics and card as they were. A context manager: what was not
    committed is removed on exit (a killed process's, by the next run's clean-up)."""

    def __init__(self, run: RunDir) -> None:
        self.final = run
        run.output_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=temporary_prefix("outputs"), dir=run.output_dir))
        for name in _READ_BESIDE:
            os.symlink(Path("..") / name, folder / name)
        self.run = run.with_output(folder)

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.run.output_dir, ignore_errors=True)

    def final_path(self, path: Path) -> Path:
        """Where a staged ``path`` lands once committed."""
        return self.final.output_dir / Path(path).relative_to(self.run.output_dir)

    def commit(self) -> bool:
        """Swap the staged outputs in (renames only); False, changing nothing, when no
        model was staged (another process of a multi-GPU run saved it)."""
        staged, final = self.run.output_dir, self.final.output_dir
        if not (staged / "model").is_dir():
            return False
        old = Path(tempfile.mkdtemp(prefix="old", dir=staged))
        for name in TRAINED_OUTPUTS:
            if (final / name).exists() or (final / name).is_symlink():
                os.replace(final / name, old / name)
            if (staged / name).exists():
                os.replace(staged / name, final / name)
        return True


_held: dict[tuple[Path, int], int] = {}  # (folder, thread): how deep, in this process


@contextlib.contextmanager
def training_lock(folder: Path) -> Iterator[None]:
    """One training at a time per output folder (two would overwrite each other's
    checkpoints, model and metrics): an exclusive flock on the folder itself (no lock
    file is left in the run), released by the OS if the process dies; taken again in
    the same thread, it just goes on. Under torchrun the first process holds it for all;
    a folder not made yet has nothing to guard. Refused in one line naming the folder."""
    folder = Path(folder)
    key = (folder.resolve(), threading.get_ident())
    if key in _held or os.environ.get("RANK", "0") != "0" or not folder.is_dir():
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise HuggingtweetsError(f"cannot open {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HuggingtweetsError(
                f"{folder} is being trained by another process: wait for it to end, or stop it"
            ) from None
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
    finally:
        os.close(fd)  # releases the lock


class Staging:
    """Files written under temporary names now and renamed into place together later, so
    that several files (posts/ and dataset/) change together or not at all."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def write(self, path: Path, data: bytes) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent
        )
        try:
            os.chmod(tmp, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._pending.append((Path(tmp), path))

    def commit(self) -> None:
        """Rename every staged file into place (renames in one folder do not fail for
        want of space)."""
        while self._pending:
            tmp, path = self._pending.pop(0)
            os.replace(tmp, path)

    def discard(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending = []


def check_writable_dir(path: Path) -> None:
    """Create ``path`` (and parents) or say in one line why it cannot be: under a file,
    on a read-only or virtual file system (/proc), without permission."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=temporary_prefix("probe")):
            pass
    except FileExistsError:
        raise HuggingtweetsError(f"cannot use {path} as a run directory: it is a file") from None
    except NotADirectoryError:
        raise HuggingtweetsError(
            f"cannot create {path}: a part of that path is a file, not a folder"
        ) from None
    except OSError as exc:
        raise HuggingtweetsError(
            f"cannot write into {path}: {exc.strerror or exc}; choose another --out"
        ) from None


def atomic_write(path: Path, data: bytes | str) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json(path: Path, obj: object) -> None:
    atomic_write(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


EVALUATION_FILE = "evaluation.json"  # in the run (or trial) folder, beside metrics.json
EVALUATION_PICTURE = "evaluation.png"  # in model/, beside the card that shows it
# What ``export --gguf`` writes into model/ (pushed, and named on the card).
GGUF_GLOB = "model-*.gguf"
MODELFILE = "Modelfile"  # Ollama's recipe for it


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (see DESIGN.md): every stage reads and writes here."""

    root: Path
    # Where train writes its model/, metrics.json and checkpoints/: the run itself by
    # default, or a trial's own folder (RUN_DIR/trials/<name>/), so that sweeps and the
    # web app can train several models on one dataset.
    output: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.output is not None:
            object.__setattr__(self, "output", Path(self.output))

    def with_output(self, output: Path | str | None) -> RunDir:
        return RunDir(self.root, Path(output) if output is not None else None)

    def trial(self, name: str) -> RunDir:
        """The run with its outputs in RUN_DIR/trials/<name>/."""
        return self.with_output(self.root / "trials" / check_handle(name))

    @property
    def output_dir(self) -> Path:
        return self.output if self.output is not None else self.root

    @property
    def checkpoints_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def remove_stale_temporaries(self) -> list[Path]:
        """What killed processes left half-written in this run (see atomic_open)."""
        folders = [self.root, self.posts_dir, self.output_dir]
        return [p for folder in dict.fromkeys(folders) for p in remove_stale_temporaries(folder)]

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
        return self.output_dir / "model"

    def gguf_path(self, quantize: str = "f16") -> Path:
        """Where ``export --gguf`` writes the model for llama.cpp and Ollama (pushed too)."""
        return self.model_dir / f"model-{quantize}.gguf"

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.json"

    @property
    def evaluation_path(self) -> Path:
        return self.output_dir / EVALUATION_FILE

    @property
    def evaluation_picture_path(self) -> Path:
        return self.model_dir / EVALUATION_PICTURE

    # -- posts/ ---------------------------------------------------------------

    def write_collected(self, collected: AccountPosts, staging: Staging | None = None) -> Path:
        """Write one account's posts and profile (atomically, or staged to be committed
        with other files) and return the posts path. A private post's text is not
        written: it is never to be trained on."""
        handle = collected.account.handle
        path = self.posts_path(handle)
        posts = dump_jsonl(without_private_text(collected.posts))
        account = orjson.dumps(collected.account.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        if staging is None:
            atomic_write(path, posts)
            atomic_write(self.account_path(handle), account)
        else:
            staging.write(path, posts)
            staging.write(self.account_path(handle), account)
        return path

    def collected_handles(self) -> list[str]:
        return sorted(p.name[: -len(".jsonl")] for p in self.posts_dir.glob("*.jsonl"))

    def read_collected(self, handle: str) -> AccountPosts:
        posts = read_posts(self.posts_path(handle))
        account_path = self.account_path(handle)
        if account_path.exists():
            account = Account.read(account_path)
            if account.handle != handle:
                # The file's name is the handle: one edited into account.json must not
                # name (or escape) other paths, nor disagree with posts/.
                raise HuggingtweetsError(
                    f"{account_path} names the account {account.handle!r}, but the file is "
                    f"{handle!r}'s; fix or delete it and collect again"
                )
        else:
            platform = posts[0].platform if posts else "file"
            account = Account(platform=platform, handle=handle)
        return AccountPosts(account, posts)
