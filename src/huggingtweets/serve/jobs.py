"""The web app's runs and jobs: what ``huggingtweets serve`` knows and is doing.

A :class:`JobManager` owns one folder of runs (``ServeConfig.runs_dir``) and the jobs that
fill it: a *prepare* job collects and prepares posts into a run (in a thread of the server:
it waits on files and the network), a *train* job runs :func:`pipeline.make_bot` on a run
in ONE worker process, one job at a time, the others queued with their position. Both
report through :class:`events.Reporter`; their progress is kept on the job, so that a page
reload, a second tab or an API client sees the same job. Cancelling reaches the worker's
reporter (training stops after the current step, with its checkpoint).

This module is the library side: the HTTP API (serve_api.py) and the UI (serve_ui.py) are
two front-ends over it, and it imports neither FastAPI nor Gradio.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import multiprocessing
import os
import re
import secrets
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.core.options import OptionError, option_specs
from huggingtweets.core.runs import RunDir

log = logging.getLogger(__name__)

# A run id is a plain folder name under runs_dir: letters, digits, '.', '_', '-', never
# starting with a dot (no '.', '..', hidden folders or temporaries), no separator at all.
RUN_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
# Names a run cannot have: the API's own words under /runs/ (POST /api/v1/runs/upload).
RESERVED_RUN_IDS = frozenset({"upload"})
JOB_ID_RE = re.compile(r"[0-9a-f]{16}")
# An uploaded file's name: a plain name too (spaces allowed, as browsers send them), and
# one of the endings an export or a posts file has (the formats recognise the rest).
# (\w: letters and digits of any script, and "_").
UPLOAD_NAME_RE = re.compile(r"[\w()+,=\-][\w ._()+,=\-]{0,199}")
UPLOAD_SUFFIXES = (".zip", ".csv", ".jsonl", ".ndjson", ".json", ".txt", ".js")
# The API's words for where files go (the web page says it its own way: serve_ui).
UPLOAD_HINT = "upload files and exports (POST /api/v1/runs/upload)"
UPLOADS_DIR = ".uploads"  # under runs_dir; a dot name, so never a run
# Hub ids as the Hub spells them (owner/name or a bare name such as gpt2).
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
ENDED = ("succeeded", "failed", "cancelled")
KEPT_JOBS = 200  # finished jobs remembered (the oldest are forgotten first)
# Jobs waiting per queue (prepare, train); one more is a 503. Each waiting upload keeps
# its file (up to max_upload_bytes) on disk: without a bound, a client fills the disk.
MAX_WAITING_JOBS = 32
PREPARE_THREADS = 2
EXAMPLES_PER_ACCOUNT = 4
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Training options a remote client may not set: a base in pickle form runs code on the
# server, so it is for the server's own user (the CLI), never a web form.
SERVER_ONLY_OPTIONS = ("trust_pickle",)


@dataclass
class ServeConfig:
    runs_dir: Path = Path("runs")
    models: list[str] = field(default_factory=list)  # RUN_DIRs / model folders / Hub ids
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None  # HUGGINGTWEETS_API_TOKEN (read from the env by the CLI)
    max_batch: int = 20  # samples per forward pass (serve_models); 1 = no batching
    max_queue: int = 64  # queued generate requests before 503 (serve_models)
    max_models: int = 2  # models kept loaded (serve_models)
    max_upload_bytes: int = 512 * 2**20

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __repr__(self) -> str:  # the token never reaches a log through a repr
        token = "***" if self.token else None
        return (
            f"ServeConfig(runs_dir={self.runs_dir!r}, models={self.models!r}, "
            f"host={self.host!r}, port={self.port}, token={token}, max_batch={self.max_batch}, "
            f"max_queue={self.max_queue}, max_models={self.max_models}, "
            f"max_upload_bytes={self.max_upload_bytes})"
        )


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS


class UnknownRun(HuggingtweetsError):
    """No run of that id (404)."""


class UnknownJob(HuggingtweetsError):
    """No job of that id (404)."""


class UploadTooLarge(OptionError):
    """An upload over ServeConfig.max_upload_bytes (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__("file", f"is larger than the server's limit of {limit:,} bytes")


class Busy(HuggingtweetsError):
    """The run already has a job queued or running (409)."""


def check_run_id(run_id: object, name: str = "run_id") -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise OptionError(
            name,
            "must be a plain folder name: letters, digits, '.', '_' or '-', not starting "
            "with '.', at most 100 characters",
        )
    if run_id in RESERVED_RUN_IDS:
        raise OptionError(name, f"{run_id!r} is reserved by the API: choose another name")
    return run_id


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def prompt_problem(prompt: str) -> str | None:
    """What is wrong with a prompt that passes generate's own checks, or None: one with
    nothing to see (only spaces, newlines, control or format characters such as RTL
    marks is as blank as an empty one), of more than one line, or with a control
    character (a NUL...) that would come back in every post and its share links."""
    if not any(char.isprintable() and not char.isspace() for char in prompt):
        return "needs a visible character (not only spaces, control or format marks)"
    if any(char in prompt for char in "\n\r\u2028\u2029\x85"):
        # The posts come back cut at their first line break: all of them "" or the
        # prompt's first line, never what was asked for.
        return "must be one line: a post ends at its first line break"
    controls = [c for c in prompt if unicodedata.category(c) == "Cc" and c != "\t"]
    if controls:
        return f"contains a control character (U+{ord(controls[0]):04X}): remove it"
    return None


# The command line's words in the readers' messages, as the server's clients say it.
SERVER_WORDS = {
    "pass --handle YOUR_HANDLE": "give the account's handle (the handle field)",
    "--handle": "handle",
    "--out": "run_id",
}


def _server_words(text: str) -> str:
    for cli, server in SERVER_WORDS.items():
        text = text.replace(cli, server)
    return text


def _without_upload_folder(text: str, folder: Path) -> str:
    """An upload's messages name the file alone: its temporary folder on the server
    (as "FOLDER/name", "FOLDER:name" or "FOLDER: name") is not the client's business."""
    for place in {str(folder.resolve()), str(folder)}:
        for joint in (os.sep, ": ", ":"):
            text = text.replace(place + joint, "")
        text = text.replace(place, "the upload")
    return text


def _one_line(text: str, limit: int = 500) -> str:
    """A message as one line, secrets blanked (errors and events may quote a server)."""
    from huggingtweets.core.secrets import redact

    line = " ".join(redact(str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _error_text(exc: BaseException) -> str:
    """What a failed job shows: the one line a user can act on, never a traceback."""
    if isinstance(exc, HuggingtweetsError):
        return _one_line(str(exc))
    if isinstance(exc, MemoryError):
        return "out of memory: choose a smaller base model or batch size"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return _one_line(f"{exc.strerror}{where}")
    return _one_line(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


# -- jobs -------------------------------------------------------------------------


@dataclass
class _Job:
    id: str
    run_id: str
    kind: str  # "prepare" | "train"
    options: dict[str, Any] = field(default_factory=dict)  # as given (a served model by name)
    worker_options: dict[str, Any] = field(default_factory=dict)  # its path on the server
    sources: list[str] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    upload: Path | None = None  # the uploaded file's temporary folder, removed at the end
    state: str = "queued"
    progress: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    created: str = field(default_factory=_now)
    finished: str | None = None
    reporter: Reporter | None = None  # a prepare job's (a train job's is in the worker)
    version: int = 0
    watchers: set[Callable[[], None]] = field(default_factory=set)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _progress(previous: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The job's progress after ``event`` (an Event.to_dict()): a new stage starts afresh;
    notes (info, warning) change the message only; the last loss stays shown."""
    data = event.get("data") or {}
    kind = event.get("kind")
    fresh = previous is None or previous.get("stage") != event.get("stage") or kind == "start"
    base = dict.fromkeys(("step", "total", "loss", "eta", "epoch")) if fresh else dict(previous)
    progress = {"stage": event.get("stage"), **base, "message": (previous or {}).get("message")}
    if kind in ("start", "progress"):
        for key in ("step", "total"):
            if isinstance(event.get(key), int):
                progress[key] = event[key]
        # A diverged loss (nan, inf) is no JSON number: shown as unknown.
        for key in ("eta", "loss"):
            if _finite(event.get(key)):
                progress[key] = float(event[key])
    epoch = data.get("epoch")
    if _finite(epoch):
        progress["epoch"] = float(epoch)
    if event.get("message"):
        progress["message"] = _one_line(event["message"])
    if kind == "end":
        progress["eta"] = 0.0
        if progress.get("total") is not None:
            progress["step"] = progress["total"]
    return progress


class JobManager:
    """Runs under ``config.runs_dir``, the models given at start, and the jobs."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.runs_dir = Path(config.runs_dir)
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._train_queue: list[_Job] = []
        self._prepare_queue: list[_Job] = []
        self._running_train: _Job | None = None
        self._closed = False
        self._wake = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        # The worker process and what talks to it (made when the first training starts).
        self._mp = multiprocessing.get_context("spawn")
        self._worker = None
        self._tasks = None
        self._results = None
        self._cancel_event = None
        self._given = self._given_models(config.models)

    # -- models -----------------------------------------------------------------

    @staticmethod
    def _given_models(models: list[str]) -> dict[str, str]:
        """name -> local folder or Hub id, for the models named at start. A folder is
        named by its folder name (a run's, or the model folder's); a Hub id by itself."""
        from huggingtweets.generate.generator import resolve_model_dir

        given: dict[str, str] = {}
        for spec in models:
            path = Path(spec).expanduser()
            if path.is_dir():
                resolved = Path(resolve_model_dir(path))  # one line when it is not a model
                path = path.resolve()
                # A run's model/ folder goes by the run's name ("model" names nothing).
                name = path.parent.name if path.name == "model" else path.name
                given[name] = str(resolved)
            elif HUB_ID_RE.fullmatch(spec) and ".." not in spec:
                given[spec] = spec
            else:
                raise HuggingtweetsError(
                    f"{spec}: neither a run directory, a model folder nor a Hub id"
                )
        return given

    def _run_model_dir(self, run_id: str) -> Path | None:
        if not RUN_ID_RE.fullmatch(run_id) or run_id in RESERVED_RUN_IDS:
            return None
        model_dir = self.runs_dir / run_id / "model"
        return model_dir if (model_dir / "config.json").is_file() else None

    def model_path(self, name: str) -> str:
        """A model name (a run id with a model/, or a model given at start) -> its local
        folder or Hub id. Nothing else can be loaded: no arbitrary paths."""
        from huggingtweets.serve.models import UnknownModel

        if not isinstance(name, str):
            raise UnknownModel("the model must be a name (see GET /api/v1/runs)")
        if name in self._given:
            return self._given[name]
        model_dir = self._run_model_dir(name)
        if model_dir is None:
            known = ", ".join(self.model_names()[:10]) or "none yet: train a run first"
            raise UnknownModel(f"unknown model {_one_line(name, 100)!r}; known: {known}")
        return str(model_dir)

    def model_names(self) -> list[str]:
        names = list(self._given)
        names += [r["id"] for r in self.runs() if r["has_model"] and r["id"] not in self._given]
        return names

    # -- runs ---------------------------------------------------------------------

    def _run_dir(self, run_id: str) -> Path:
        check_run_id(run_id)
        path = self.runs_dir / run_id
        # A symlink could lead anywhere on the server; runs are real folders.
        if path.is_symlink() or not path.is_dir():
            raise UnknownRun(f"unknown run {run_id!r}")
        return path

    @staticmethod
    def _read_stats(run: RunDir) -> dict | None:
        try:
            stats = orjson.loads(run.stats_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        accounts = stats.get("accounts") if isinstance(stats, dict) else None
        if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
            return None
        return stats

    def _summary(self, path: Path) -> dict[str, Any]:
        run = RunDir(path)
        stats = self._read_stats(run)
        handles = [str(a.get("handle")) for a in stats["accounts"]] if stats else []
        if not handles:
            with contextlib.suppress(OSError):
                handles = run.collected_handles()
        posts = None
        if stats:
            with contextlib.suppress(TypeError, ValueError):
                posts = sum(int(a.get("kept", 0)) for a in stats["accounts"])
        stamp_of = run.stats_path if run.stats_path.exists() else path
        created = dt.datetime.fromtimestamp(stamp_of.stat().st_mtime, dt.UTC)
        return {
            "id": path.name,
            "handles": handles,
            "has_model": (run.model_dir / "config.json").is_file(),
            "posts": posts,
            "created": created.isoformat(timespec="seconds"),
        }

    def runs(self) -> list[dict]:
        """The runs in runs_dir (folders holding posts/, dataset/ or model/), newest first."""
        if not self.runs_dir.is_dir():
            return []
        found = []
        for path in self.runs_dir.iterdir():
            if not RUN_ID_RE.fullmatch(path.name) or path.name in RESERVED_RUN_IDS:
                continue
            if path.is_symlink() or not path.is_dir():
                continue
            if not any((path / part).is_dir() for part in ("posts", "dataset", "model")):
                continue
            with contextlib.suppress(OSError):  # removed while being listed
                found.append(self._summary(path))
        return sorted(found, key=lambda r: (r["created"], r["id"]), reverse=True)

    def run(self, run_id: str) -> dict:
        """A run's summary, the statistics table (the card's rows) and a few kept posts
        per account."""
        from huggingtweets.card.labels import stats_rows

        path = self._run_dir(run_id)
        summary = self._summary(path)
        run = RunDir(path)
        stats = self._read_stats(run)
        statistics = []
        if stats:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                handles = summary["handles"]
                for label, values in stats_rows(stats):
                    statistics.append(
                        {
                            "label": label,
                            "values": dict(zip(handles, values, strict=True)),
                            "total": sum(values),
                        }
                    )
        accounts = [
            {
                "handle": str(a.get("handle")),
                "display_name": a.get("display_name")
                if isinstance(a.get("display_name"), str)
                else None,
                "platform": str(a.get("platform", "")),
            }
            for a in (stats or {}).get("accounts", [])
        ]
        return {
            **summary,
            "accounts": accounts,
            "statistics": statistics,
            "examples": self._examples(run, summary["handles"]),
            "jobs": [j for j in self.jobs() if j["run_id"] == run_id],
        }

    @staticmethod
    def _examples(run: RunDir, handles: list[str]) -> dict[str, list[str]]:
        """The first few kept posts of each account (the training rows are shuffled once,
        deterministically, by prepare): read line by line, stopping when there are enough."""
        examples: dict[str, list[str]] = {h: [] for h in handles}
        if not run.train_path.is_file():
            return examples
        with contextlib.suppress(OSError), run.train_path.open("rb") as rows:
            for line in rows:
                try:
                    row = orjson.loads(line)
                    handle, text = row["handle"], row["text"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                texts = examples.get(handle)
                if texts is not None and len(texts) < EXAMPLES_PER_ACCOUNT and text not in texts:
                    texts.append(text)
                if all(len(t) >= EXAMPLES_PER_ACCOUNT for t in examples.values()):
                    break
        return examples

    def _new_run_id(self, words: list[str]) -> str:
        base = "-".join(w for w in words if w)[:80].strip(".-") or "run"
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip(".-") or "run"
        with self._lock:
            taken = {j.run_id for j in self._jobs.values()}
            for n in range(1, 10_000):
                candidate = base if n == 1 else f"{base}-{n}"
                free = candidate not in taken and candidate not in RESERVED_RUN_IDS
                if free and not (self.runs_dir / candidate).exists():
                    return candidate
        raise HuggingtweetsError(f"too many runs named {base}-N; choose a run_id")

    def _active_job(self, run_id: str) -> _Job | None:
        for job in self._jobs.values():
            if job.run_id == run_id and job.state not in ENDED:
                return job
        return None

    @staticmethod
    def _check_room(queue: list[_Job]) -> None:
        from huggingtweets.serve.models import QueueFull

        if len(queue) >= MAX_WAITING_JOBS:
            kind = queue[0].kind
            raise QueueFull(
                f"{len(queue)} {kind} jobs are waiting already: try again once some have run",
                retry_after=30,
            )

    def _check_idle(self, run_id: str) -> None:
        job = self._active_job(run_id)
        if job is not None:
            raise Busy(f"run {run_id!r} already has a {job.kind} job {job.state} ({job.id})")

    # -- creating runs (prepare jobs) -------------------------------------------------

    @staticmethod
    def _check_sources(sources: list[str], handles: list[str]) -> None:
        """Accounts only (x:, bsky:, mastodon:, sample: and the spellings the platforms
        register). A path would let any client of the server read the server's files
        (and learn which exist): files and exports come as uploads instead."""
        from huggingtweets.collect import registry as source_registry
        from huggingtweets.collect.collection import resolve_all

        if not isinstance(sources, list | tuple) or not all(isinstance(s, str) for s in sources):
            raise OptionError("sources", "must be a list of account names")
        if not isinstance(handles, list | tuple) or not all(isinstance(h, str) for h in handles):
            raise OptionError("handles", "must be a list of handles")
        for spec in sources:
            prefixed = any(spec.startswith(p) for p in source_registry._PREFIXES)
            spelled = any(normalize(spec) for normalize in source_registry._SPELLINGS)
            if not (prefixed or spelled):
                raise OptionError(
                    "sources",
                    f"{_one_line(spec, 100)!r} is not an account: give x:NAME, bsky:NAME, "
                    f"mastodon:@user@host or sample:NAME; {UPLOAD_HINT}",
                )
        # The accounts alone first: an error then is theirs (an X handle too long is a
        # source's, though its message says "handle"); only then with the handles given.
        for name, given in (("sources", []), ("handles", list(handles))):
            if name == "handles" and not given:
                break
            try:
                resolve_all(list(sources), given)
            except OptionError:
                raise
            except HuggingtweetsError as exc:
                raise OptionError(name, str(exc)) from None

    @staticmethod
    def _spec_words(sources: list[str]) -> list[str]:
        words = []
        for spec in sources:
            parts = [p for p in re.split(r"[:/@]", spec) if p]
            words.append(parts[-1] if parts else "")
        return words

    def create_run(
        self, sources: list[str], handles: list[str] = (), *, run_id: str | None = None
    ) -> dict:
        """A job that collects ``sources`` (accounts) and prepares them into a run:
        ``run_id``, or a new one named after the accounts."""
        sources, handles = list(sources), list(handles)
        self._check_sources(sources, handles)
        with self._lock:
            self._check_open()
            if run_id is None:
                run_id = self._new_run_id(handles or self._spec_words(sources))
            else:
                check_run_id(run_id)
                if (self.runs_dir / run_id).is_symlink():
                    raise OptionError("run_id", "names a link, not a run folder")
                self._check_idle(run_id)
            self._check_room(self._prepare_queue)
            job = _Job(self._job_id(), run_id, "prepare", sources=sources, handles=handles)
            return self._enqueue_prepare(job)

    def create_run_from_upload(
        self, filename: str, data: bytes | Path | IO[bytes], handles: list[str] = ()
    ) -> dict:
        """A job that prepares an uploaded export or posts file into a new run. The file
        is kept, size-bounded, in a folder of its own (an export's tweets.js looks for its
        account.js beside it: nothing else may be there) until the job ends; the readers
        bound what they unpack (no path escape, no zip bomb), as for the CLI."""
        from huggingtweets.collect.collection import resolve_all
        from huggingtweets.core.records import check_handle

        name = self._check_upload_name(filename)
        handles = list(handles)
        if not all(isinstance(h, str) for h in handles):
            raise OptionError("handle", "must be text")
        if len(handles) > 1:
            raise OptionError("handle", "one file is one account: give at most one handle")
        for handle in handles:
            try:
                check_handle(handle)
            except HuggingtweetsError as exc:
                raise OptionError("handle", str(exc)) from None
        with self._lock:  # before the file is written, and again when it is queued
            self._check_open()
            self._check_room(self._prepare_queue)
        uploads = self.runs_dir / UPLOADS_DIR
        uploads.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
        try:
            path = folder / name
            self._save_bounded(data, path)
            if path.stat().st_size == 0:  # refused now, not as a job that fails later
                raise OptionError("file", f"{name} is empty: choose the export or posts file")
            try:  # the format recognised now: "not an export" is the client's error
                resolve_all([str(path)], handles)
            except HuggingtweetsError as exc:
                problem = _server_words(_without_upload_folder(str(exc), folder))
                raise OptionError("file", problem) from None
            with self._lock:
                self._check_open()
                self._check_room(self._prepare_queue)
                run_id = self._new_run_id(handles or [Path(name).stem])
                job = _Job(
                    self._job_id(),
                    run_id,
                    "prepare",
                    sources=[str(path)],
                    handles=handles,
                    upload=folder,
                )
                return self._enqueue_prepare(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @staticmethod
    def _check_upload_name(filename: object) -> str:
        if not isinstance(filename, str) or not UPLOAD_NAME_RE.fullmatch(filename):
            raise OptionError(
                "file",
                "needs a plain file name (letters, digits, spaces, '.', '_', '-'; no folders, "
                "not starting with '.')",
            )
        if not filename.lower().endswith(UPLOAD_SUFFIXES):
            raise OptionError(
                "file",
                f"{filename!r}: expected an X or Mastodon export (.zip, tweets.js, "
                "outbox.json) or a posts file (.csv, .jsonl, .txt)",
            )
        return filename

    def _save_bounded(self, data: bytes | Path | IO[bytes], path: Path) -> None:
        limit = self.config.max_upload_bytes
        too_large = UploadTooLarge(limit)
        if isinstance(data, bytes | bytearray):
            if len(data) > limit:
                raise too_large
            path.write_bytes(data)
            return
        with contextlib.ExitStack() as stack:
            if isinstance(data, str | Path):
                data = stack.enter_context(Path(data).open("rb"))
            written = 0
            with path.open("wb") as out:
                while chunk := data.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        raise too_large
                    out.write(chunk)

    def _enqueue_prepare(self, job: _Job) -> dict:
        self._remember(job)
        self._prepare_queue.append(job)
        self._start_thread("prepare", self._prepare_loop, PREPARE_THREADS)
        self._wake.notify_all()
        return self._snapshot(job)

    def _prepare_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._prepare_queue:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._prepare_queue.pop(0)
                job.state = "running"
                job.reporter = Reporter(lambda event, job=job: self._on_event(job, event))
                self._changed(job, *self._prepare_queue)
            self._run_prepare(job)

    def _run_prepare(self, job: _Job) -> None:
        from huggingtweets.prepare.dataset import prepare

        try:
            prepare(self.runs_dir / job.run_id, job.sources, job.handles, reporter=job.reporter)
        except Cancelled:
            self._finish(job, "cancelled")
        except Exception as exc:  # a job's failure is its state, not the server's
            if not isinstance(exc, HuggingtweetsError):
                log.warning("prepare job %s failed: %s", job.id, _error_text(exc))
            self._finish(job, "failed", _error_text(exc))
        else:
            self._finish(job, "succeeded")
        finally:
            if job.upload is not None:
                shutil.rmtree(job.upload, ignore_errors=True)

    # -- training (the worker process) ---------------------------------------------------

    def check_train_options(self, options: dict) -> tuple[dict, dict]:
        """The training options checked as TrainOptions checks them (errors name the
        field), with "epochs" accepted for num_train_epochs (the form's word) and a base
        model that the server may load: 'tiny', a model it serves (by name), or a Hub id.
        Returns (the options as given, the options for the worker: a served model's name
        replaced by its path, which the client need not see)."""
        from huggingtweets.train.recipe import TrainOptions

        if not isinstance(options, dict):
            raise OptionError("options", "must be a mapping of training option names to values")
        options = dict(options)
        if "epochs" in options:
            if "num_train_epochs" in options:
                raise OptionError("epochs", "is num_train_epochs: give one of them")
            options["num_train_epochs"] = options.pop("epochs")
        known = {spec.name for spec in option_specs(TrainOptions)}
        for name in options:
            if name not in known:
                raise OptionError(
                    str(name)[:100], f"is not a training option; known: {', '.join(sorted(known))}"
                )
        for name in SERVER_ONLY_OPTIONS:
            if options.get(name):
                raise OptionError(name, "cannot be set through the server (it can run code)")
        report_to = options.get("report_to")
        if report_to not in (None, "none", [], ["none"]):
            # W&B, MLflow ... would log with the server's owner's credentials, to their
            # accounts: a tracker is for the server's own user (`train --report-to`).
            raise OptionError(
                "report_to", "cannot be set through the server (it reports with its owner's logins)"
            )
        for_worker = dict(options)
        base = options.get("base_model", "gpt2")
        if isinstance(base, str) and base != "tiny":
            for_worker["base_model"] = self._base_model_path(base)
        TrainOptions(**for_worker)  # every check, each naming its field
        return options, for_worker

    def _base_model_path(self, base: str) -> str:
        if base in self._given:
            return self._given[base]
        model_dir = self._run_model_dir(base)
        if model_dir is not None:
            return str(model_dir.resolve())
        if not HUB_ID_RE.fullmatch(base) or ".." in base or Path(base).expanduser().exists():
            raise OptionError(
                "base_model",
                "must be 'tiny', a model this server serves (a run id) or a Hub id "
                "(OWNER/NAME); paths on the server are not accepted",
            )
        return base

    def start_training(self, run_id: str, options: dict) -> dict:
        """Queue a training of ``run_id`` (TrainOptions fields); checked before queueing."""
        path = self._run_dir(run_id)
        options, for_worker = self.check_train_options(options)
        if not RunDir(path).train_path.is_file():
            raise OptionError(
                "run_id", f"run {run_id!r} has no dataset yet: create it from accounts first"
            )
        with self._lock:
            self._check_open()
            self._check_idle(run_id)
            self._check_room(self._train_queue)
            job = _Job(self._job_id(), run_id, "train", options=options, worker_options=for_worker)
            self._remember(job)
            self._train_queue.append(job)
            self._start_thread("train", self._train_loop, 1)
            self._wake.notify_all()
            return self._snapshot(job)

    def _ensure_worker(self):
        if self._worker is not None and self._worker.is_alive():
            return self._worker
        if self._worker is not None:  # died (killed, out of memory): a fresh one
            self._worker.join(timeout=1)
            for end in (self._tasks, self._results):
                end.close()
        # Pipes, not queues: once the worker's ends are closed here, a worker that dies
        # (even halfway through a message) is an EOF to the reader, never a read that
        # waits forever; and a server that dies is an EOF to the worker, which then ends.
        task_reader, self._tasks = self._mp.Pipe(duplex=False)
        self._results, result_writer = self._mp.Pipe(duplex=False)
        self._cancel_event = self._mp.Event()
        self._worker = self._mp.Process(
            target=_worker_main,
            args=(task_reader, result_writer, self._cancel_event),
            name="huggingtweets-train",
            daemon=True,
        )
        try:
            self._worker.start()
        except BaseException:
            # Never started: forgotten, so that the next job (and close) does not wait on
            # a process that does not exist.
            self._worker = None
            for end in (self._tasks, self._results):
                end.close()
            raise
        finally:
            task_reader.close()
            result_writer.close()
        return self._worker

    def _train_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._train_queue:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._train_queue.pop(0)
                try:
                    worker = self._ensure_worker()
                except (OSError, RuntimeError) as exc:  # no process to be had: this job fails
                    self._changed(*self._train_queue)
                    self._finish(job, "failed", f"cannot start the training process: {exc}")
                    continue
                self._cancel_event.clear()  # under the lock: a cancel() now is not lost
                job.state = "running"
                self._running_train = job
                self._changed(job, *self._train_queue)
                task = (job.id, str(self.runs_dir / job.run_id), job.worker_options)
                # A worker gone already is an EOF below: the job fails as it died.
                with contextlib.suppress(OSError):
                    self._tasks.send(task)
            try:
                self._follow_worker(job, worker)
            finally:
                with self._lock:
                    self._running_train = None

    def _follow_worker(self, job: _Job, worker) -> None:
        while True:
            try:
                if not self._results.poll(0.5):
                    continue
                kind, job_id, payload = self._results.recv()
            except (EOFError, OSError):  # the worker's end is closed: it has died
                worker.join(5)
                if self._closed:  # ended by close(), after its grace time
                    self._finish(job, "cancelled")
                else:
                    self._finish(
                        job,
                        "failed",
                        f"the training process ended unexpectedly (exit code {worker.exitcode}"
                        "; out of memory?)",
                    )
                return
            if job_id != job.id:
                continue
            if kind == "event":
                self._on_event(job, payload)
            elif kind == "done":
                state, error = payload
                self._finish(job, state, error)
                return

    # -- job bookkeeping ------------------------------------------------------------

    def _job_id(self) -> str:
        return secrets.token_hex(8)

    def _check_open(self) -> None:
        if self._closed:
            raise HuggingtweetsError("the server is shutting down")

    def _start_thread(self, kind: str, target: Callable[[], None], count: int) -> None:
        alive = [t for t in self._threads if t.is_alive() and t.name.startswith(kind)]
        for n in range(len(alive), count):
            # Daemon threads: a live collection stuck on a slow server must not keep the
            # process alive once the server has been told to stop.
            thread = threading.Thread(target=target, name=f"{kind}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _remember(self, job: _Job) -> None:
        self._jobs[job.id] = job
        ended = [j for j in self._jobs.values() if j.state in ENDED]
        for old in ended[: max(0, len(self._jobs) - KEPT_JOBS)]:
            del self._jobs[old.id]

    def _changed(self, *jobs: _Job) -> None:
        for job in jobs:
            job.version += 1
            for wake in list(job.watchers):
                wake()

    def _on_event(self, job: _Job, event: Event | dict) -> None:
        payload = event.to_dict() if isinstance(event, Event) else event
        with self._lock:
            if job.state in ENDED:
                return
            payload = {**payload, "message": self._without_root(payload.get("message") or "")}
            job.progress = _progress(job.progress, payload)
            if payload.get("kind") == "warning" and len(job.warnings) < 20:
                job.warnings.append(_one_line(payload["message"]))
            self._changed(job)

    def _without_root(self, message: str) -> str:
        """Paths in a message shown relative to runs_dir: where the server keeps its
        files is not its clients' business."""
        for root in {str(self.runs_dir.resolve()), str(self.runs_dir)}:
            message = message.replace(root + os.sep, "")
        return message

    def _finish(self, job: _Job, state: str, error: str | None = None) -> None:
        with self._lock:
            job.state = state
            job.error = self._public_error(job, error) if state == "failed" else None
            job.finished = _now()
            job.reporter = None
            self._changed(job)

    def _public_error(self, job: _Job, error: str | None) -> str:
        """A failed job's error as its clients see it: one line, an upload named by its
        file name, other paths relative to runs_dir (where the server keeps its files is
        not their business)."""
        text = _server_words(_one_line(error or "failed"))
        if job.upload is not None:
            text = _without_upload_folder(text, job.upload)
        return self._without_root(text)

    def _position(self, job: _Job) -> int | None:
        for waiting in (self._train_queue, self._prepare_queue):
            if job in waiting:
                return waiting.index(job) + 1
        return None

    def _snapshot(self, job: _Job) -> dict:
        return {
            "id": job.id,
            "run_id": job.run_id,
            "kind": job.kind,
            "state": job.state,
            "position": self._position(job),
            "progress": dict(job.progress) if job.progress is not None else None,
            "error": job.error,
            "warnings": list(job.warnings),
            "options": dict(job.options),
            "created": job.created,
            "finished": job.finished,
        }

    def _get(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise UnknownJob(f"unknown job {_one_line(str(job_id), 100)!r}")
        return job

    def job(self, job_id: str) -> dict:
        with self._lock:
            return self._snapshot(self._get(job_id))

    def jobs(self) -> list[dict]:
        """Every job remembered, newest first."""
        with self._lock:
            return [self._snapshot(j) for j in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> dict:
        """A queued job leaves the queue; a running one is asked to stop at its next safe
        point (training: after the current step, with its checkpoint); an ended one stays
        as it ended."""
        with self._lock:
            job = self._get(job_id)
            if job.state == "queued":
                for waiting in (self._train_queue, self._prepare_queue):
                    if job in waiting:
                        waiting.remove(job)
                        self._changed(*waiting)
                if job.upload is not None:
                    shutil.rmtree(job.upload, ignore_errors=True)
                self._finish(job, "cancelled")
            elif job.state == "running":
                if job.kind == "train" and self._cancel_event is not None:
                    self._cancel_event.set()
                elif job.reporter is not None:
                    job.reporter.cancel()
                job.progress = {**(job.progress or _progress(None, {})), "message": "cancelling"}
                self._changed(job)
            return self._snapshot(job)

    async def subscribe(
        self, job_id: str, *, heartbeat: float | None = None
    ) -> AsyncIterator[dict]:
        """The job's snapshot now, then each time it changes, until it ends (the last
        snapshot is the ended one). ``heartbeat``: also yield the unchanged snapshot after
        that many quiet seconds (keeps an event stream's connection alive)."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(changed.set)

        with self._lock:
            job = self._get(job_id)
            job.watchers.add(wake)
        try:
            seen = -1
            while True:
                changed.clear()
                with self._lock:
                    version, snapshot = job.version, self._snapshot(job)
                if version != seen:
                    seen = version
                    yield snapshot
                if snapshot["state"] in ENDED:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), heartbeat)
                except TimeoutError:
                    yield snapshot
        finally:
            with self._lock:
                job.watchers.discard(wake)

    def close(self, timeout: float = 30.0) -> None:
        """Stop: queued jobs are cancelled, a running training is asked to stop (it keeps
        its checkpoint) and given ``timeout`` seconds before its process is ended."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for job in self._train_queue + self._prepare_queue:
                if job.upload is not None:  # a file no job will read: not left on disk
                    shutil.rmtree(job.upload, ignore_errors=True)
                self._finish(job, "cancelled")
            self._train_queue.clear()
            self._prepare_queue.clear()
            for job in self._jobs.values():
                if job.state == "running" and job.reporter is not None:
                    job.reporter.cancel()
            if self._cancel_event is not None:
                self._cancel_event.set()
            self._wake.notify_all()
            worker, tasks = self._worker, self._tasks
        if worker is not None:
            with contextlib.suppress(OSError, ValueError):
                tasks.send(None)  # ends the worker's loop once its job has stopped
            worker.join(timeout)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        for thread in self._threads:
            if thread.name.startswith("train"):
                thread.join(5)
        with self._lock:
            for job in self._jobs.values():
                if job.state == "running" and job.kind == "train":
                    self._finish(job, "cancelled")


# -- the worker process -----------------------------------------------------------------


def _worker_main(tasks, results, cancel_event) -> None:
    """The training process: one job at a time from ``tasks``; its events, then its end
    ("done", state, one-line error), go back on ``results``. Ctrl-C in the server's
    terminal reaches this process too: ignored here, the server cancels it properly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()  # events may come from several threads of a training
    server_gone = threading.Event()

    def send(message: tuple) -> None:
        with lock:
            if server_gone.is_set():
                return
            try:
                results.send(message)
            except OSError:  # a broken pipe: the server died (kill -9); nobody follows
                server_gone.set()  # this training any more: it stops after this step,
                cancel_event.set()  # keeping its checkpoint (train --resume continues)

    while not server_gone.is_set():
        try:
            task = tasks.recv()
        except EOFError:  # the server is gone
            return
        if task is None:
            return
        job_id, run_dir, options = task
        send(("done", job_id, _train_job(job_id, run_dir, options, send, cancel_event)))


def _train_job(job_id: str, run_dir: str, options: dict, send, cancel_event):
    from huggingtweets.pipeline import make_bot
    from huggingtweets.train.recipe import TrainOptions

    def listener(event: Event) -> None:
        send(("event", job_id, event.to_dict()))

    reporter = Reporter(listener, cancel_event=cancel_event)
    try:
        make_bot(run_dir, train=TrainOptions(**options), reporter=reporter)
    except Cancelled:  # TrainingInterrupted too: stopped after a step, its checkpoint kept
        return ("cancelled", None)
    except Exception as exc:
        if not isinstance(exc, HuggingtweetsError):
            import traceback

            from huggingtweets.core.secrets import redact

            log.error("training job %s failed:\n%s", job_id, redact(traceback.format_exc()))
        return ("failed", _error_text(exc))
    return ("succeeded", None)
