"""What the server lists: the runs under ``runs_dir``, the models it serves, and the
uploads it keeps until their job has read them.

Every name a client gives is checked here before it becomes a path: a run id is a plain
folder name, a model is a run with a model/ or one given at start (no arbitrary paths),
an upload a plain file name of a known ending, saved size-bounded in a folder of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.runs import RunDir
from huggingtweets.serve.errors import UnknownModel, UnknownRun, UploadTooLarge
from huggingtweets.serve.messages import one_line

# A run id is a plain folder name under runs_dir: letters, digits, '.', '_', '-', never
# starting with a dot (no '.', '..', hidden folders or temporaries) or a dash (a command's
# option, "-rf"), no separator at all.
RUN_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
# Names a run cannot have: the API's own words under /runs/ (POST /api/v1/runs/upload).
RESERVED_RUN_IDS = frozenset({"upload"})
# An uploaded file's name: a plain name too (spaces allowed, as browsers send them), and
# one of the endings an export or a posts file has (the formats recognise the rest).
# (\w: letters and digits of any script, and "_").
UPLOAD_NAME_RE = re.compile(r"[\w()+,=\-][\w ._()+,=\-]{0,199}")
UPLOAD_SUFFIXES = (".zip", ".csv", ".jsonl", ".ndjson", ".json", ".txt", ".js")
UPLOADS_DIR = ".uploads"  # under runs_dir; a dot name, so never a run
# Hub ids as the Hub spells them (owner/name or a bare name such as gpt2).
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
# The kept posts a run's view shows (GET /runs/{id}, the page's table): at most this many
# per account, each cut to this many characters, ending with a marker saying how long it
# was (one 20 MB row is not a 20 MB answer; prepare keeps posts of up to 100,000
# characters, older datasets or hand-written ones any). A row is read at most
# ROW_PIECE_BYTES at a time: a longer one is measured piece by piece, never held whole.
MAX_EXAMPLES = 4
MAX_EXAMPLE_CHARS = 500
ROW_PIECE_BYTES = 1 << 16
_TEXT_KEY = re.compile(rb'"text"\s*:\s*"')
_LONGEST_ESCAPE = 12  # a surrogate pair, \uD83D\uDE00: one character


def check_run_id(run_id: object, name: str = "run_id") -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise OptionError(
            name,
            "must be a plain folder name: letters, digits, '.', '_' or '-', not starting "
            "with '.' or '-', at most 100 characters",
        )
    if run_id in RESERVED_RUN_IDS:
        raise OptionError(name, f"{run_id!r} is reserved by the API: choose another name")
    return run_id


def is_run_id(name: str) -> bool:
    return bool(RUN_ID_RE.fullmatch(name)) and name not in RESERVED_RUN_IDS


def given_models(models: list[str]) -> dict[str, str]:
    """name -> local folder or Hub id, for the models named at start. A folder is named by
    its folder name (a run's, or the model folder's); a Hub id by itself."""
    from huggingtweets.generate.generator import resolve_model_dir

    given: dict[str, str] = {}
    for spec in models:
        path = Path(spec).expanduser()
        if path.is_dir():
            resolved = Path(resolve_model_dir(path))  # one line when it is not a model
            path = path.resolve()
            # A run's model/ folder goes by the run's name ("model" names nothing).
            name = path.parent.name if path.name == "model" else path.name
            _serve_as(given, name, str(resolved), spec)
        elif HUB_ID_RE.fullmatch(spec) and ".." not in spec:
            _serve_as(given, spec, spec, spec)
        else:
            raise HuggingtweetsError(
                f"{spec}: neither a run directory, a model folder nor a Hub id"
            )
    return given


def _serve_as(given: dict[str, str], name: str, location: str, spec: str) -> None:
    """One name, one model: a second model of a name already served is refused."""
    if given.get(name, location) != location:
        raise HuggingtweetsError(
            f"{spec}: another model given is served as {name!r} already; clients name a "
            "model by its folder's name: give one of them, or rename a folder"
        )
    given[name] = location


def run_name_words(sources: list[str]) -> list[str]:
    """The account names in ``sources`` (x:NAME -> NAME), to name a new run after."""
    words = []
    for spec in sources:
        parts = [p for p in re.split(r"[:/@]", spec) if p]
        words.append(parts[-1] if parts else "")
    return words


class Catalog:
    """The runs under ``runs_dir`` and the models given at start. A model given at start
    and a run are never of one name (one would hide the other): refused at start, and a
    new run's name is never a given model's."""

    def __init__(self, runs_dir: Path, models: list[str]) -> None:
        self.runs_dir = Path(runs_dir)
        self.given = given_models(models)
        self._refuse_runs_behind_given_models()

    def _refuse_runs_behind_given_models(self) -> None:
        """A model given at start and a run in runs_dir of one name: clients name a model
        by that name, so one of them would be hidden. Refused, in one line naming both,
        unless the model given is that run's own (``serve runs/demo``)."""
        for name, location in self.given.items():
            run = self.runs_dir / name
            if not is_run_id(name) or not is_run_folder(run):
                continue
            model = Path(location)
            if model.is_dir() and model.resolve() == (run / "model").resolve():
                continue
            given = f"the model folder {model}" if model.is_dir() else f"the Hub model {location}"
            raise HuggingtweetsError(
                f"{name!r} names both {given} and the run {run} in --runs-dir, and clients "
                "name a model by that name: rename the model folder (a folder is served by "
                "its name) or the run's folder, or give another --runs-dir"
            )

    def is_given_model(self, name: str) -> bool:
        """Whether ``name`` is a model given at start (not a run of runs_dir)."""
        return name in self.given

    def check_not_given_model(self, run_id: str, field: str = "run_id") -> None:
        """Refuse (OptionError on ``field``) a new run named as a model given at start:
        the model would hide the run's (no server path in the words: a client reads them)."""
        if self.is_given_model(run_id):
            raise OptionError(
                field,
                f"{run_id!r} is the name of a model this server was given at start: a run "
                "of that name would be hidden behind it; choose another run_id",
            )

    # -- models -------------------------------------------------------------------------

    def run_model_dir(self, run_id: str) -> Path | None:
        if not is_run_id(run_id):
            return None
        model_dir = self.runs_dir / run_id / "model"
        return model_dir if (model_dir / "config.json").is_file() else None

    def model_path(self, name: str) -> str:
        """A model name (a run id with a model/, or a model given at start) -> its local
        folder or Hub id. Nothing else can be loaded: no arbitrary paths."""
        if not isinstance(name, str):
            raise UnknownModel("the model must be a name (see GET /api/v1/runs)")
        if name in self.given:
            return self.given[name]
        model_dir = self.run_model_dir(name)
        if model_dir is None:
            known = ", ".join(self.model_names()[:10]) or "none yet: train a run first"
            raise UnknownModel(f"unknown model {one_line(name, 100)!r}; known: {known}")
        return str(model_dir)

    def model_names(self) -> list[str]:
        names = list(self.given)
        names += [r["id"] for r in self.runs() if r["has_model"] and r["id"] not in self.given]
        return names

    def models(self) -> list[dict[str, Any]]:
        """The models served, as ``model_names`` orders them: each with its kind ("run", a
        run's model; "folder" or "hub", given at start) and when its model was written
        (ISO 8601; None for a Hub id)."""
        found = []
        for name in self.model_names():
            location = Path(self.given.get(name) or self.runs_dir / name / "model")
            kind = "run" if name not in self.given else "folder" if location.is_dir() else "hub"
            created = None
            with contextlib.suppress(OSError):  # removed while listed
                if kind != "hub":
                    stamp = (location / "config.json").stat().st_mtime
                    created = dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat("T", "seconds")
            found.append({"id": name, "kind": kind, "created": created})
        return found

    def base_model_path(self, base: str) -> str:
        """A base model a training may start from: a served model (its path), else a Hub id.
        Decided by the name's form alone (a Hub id, OWNER/NAME or a bare name such as gpt2;
        anything path-like refused): the answer never says what exists on the server."""
        if base in self.given:  # a folder as an absolute path: jobs run in a folder of
            location = self.given[base]  # their own (serve.worker)
            return str(Path(location).resolve()) if Path(location).is_dir() else location
        model_dir = self.run_model_dir(base)
        if model_dir is not None:
            return str(model_dir.resolve())
        if not HUB_ID_RE.fullmatch(base) or ".." in base:
            raise OptionError(
                "base_model",
                "must be 'tiny', a model this server serves (a run id) or a Hub id "
                "(OWNER/NAME); paths on the server are not accepted",
            )
        return base

    # -- runs ---------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        check_run_id(run_id)
        path = self.runs_dir / run_id
        # A symlink could lead anywhere on the server; runs are real folders.
        if path.is_symlink() or not path.is_dir():
            raise UnknownRun(f"unknown run {run_id!r}")
        return path

    def runs(self) -> list[dict]:
        """The runs in runs_dir (folders holding posts/, dataset/ or model/), newest first."""
        if not self.runs_dir.is_dir():
            return []
        found = []
        for path in self.runs_dir.iterdir():
            if not is_run_id(path.name) or not is_run_folder(path):
                continue
            with contextlib.suppress(OSError):  # removed while being listed
                found.append(run_summary(path))
        return sorted(found, key=lambda r: (r["created"], r["id"]), reverse=True)

    def run(self, run_id: str) -> dict:
        """A run's summary, the statistics table (the card's rows) and a few kept posts
        per account."""
        path = self.run_dir(run_id)
        summary = run_summary(path)
        run = RunDir(path)
        stats = read_stats(run)
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
            "statistics": statistics(stats, summary["handles"]),
            "examples": examples(run, summary["handles"]),
        }

    def new_run_id(self, words: list[str], taken: set[str]) -> str:
        """A free run id made of ``words``: no folder of that name, none in ``taken``."""
        base = "-".join(w for w in words if w)[:80].strip(".-") or "run"
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip(".-") or "run"
        for n in range(1, 10_000):
            candidate = base if n == 1 else f"{base}-{n}"
            free = candidate not in taken and candidate not in RESERVED_RUN_IDS
            free = free and not self.is_given_model(candidate)  # it would hide the run
            if free and not (self.runs_dir / candidate).exists():
                return candidate
        raise HuggingtweetsError(f"too many runs named {base}-N; choose a run_id")

    # -- uploads ------------------------------------------------------------------------

    def new_upload_folder(self) -> Path:
        """A folder of the upload's own (an export's tweets.js looks for its account.js
        beside it: nothing else may be there)."""
        uploads = self.runs_dir / UPLOADS_DIR
        uploads.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))


def is_run_folder(path: Path) -> bool:
    """A run: a real folder (no symlink, it could lead anywhere) holding posts/, dataset/
    or model/."""
    if path.is_symlink() or not path.is_dir():
        return False
    return any((path / part).is_dir() for part in ("posts", "dataset", "model"))


def read_stats(run: RunDir) -> dict | None:
    try:
        stats = orjson.loads(run.stats_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    accounts = stats.get("accounts") if isinstance(stats, dict) else None
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        return None
    return stats


def run_summary(path: Path) -> dict[str, Any]:
    run = RunDir(path)
    stats = read_stats(run)
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


def statistics(stats: dict | None, handles: list[str]) -> list[dict]:
    """The card's statistics rows, one value per account."""
    from huggingtweets.card.labels import stats_rows

    rows: list[dict] = []
    if stats:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            for label, values in stats_rows(stats):
                rows.append(
                    {
                        "label": label,
                        "values": dict(zip(handles, values, strict=True)),
                        "total": sum(values),
                    }
                )
    return rows


def shortened(text: str, length: int | None = None) -> str:
    """``text`` cut to MAX_EXAMPLE_CHARS characters, ending with a marker saying how long
    it was: ``length`` characters in all (``text`` may then be its start only)."""
    length = len(text) if length is None else length
    if length <= MAX_EXAMPLE_CHARS:
        return text
    return f"{text[:MAX_EXAMPLE_CHARS]}… [shortened: {length:,} characters in all]"


def examples(run: RunDir, handles: list[str]) -> dict[str, list[str]]:
    """The first few kept posts of each account (the training rows are shuffled once,
    deterministically, by prepare), each shortened: read a row at a time, a piece at a
    time, stopping when there are enough. A row that is not a post is skipped."""
    from huggingtweets.collect.collection import MAX_ACCOUNTS

    found: dict[str, list[str]] = {h: [] for h in handles[:MAX_ACCOUNTS]}
    if not run.train_path.is_file():
        return found
    with contextlib.suppress(OSError), run.train_path.open("rb") as rows:
        while not all(len(texts) >= MAX_EXAMPLES for texts in found.values()):
            line = _Line(rows)
            head = line.piece()
            if not head:
                break
            post = _post(head) if line.ended else _long_post(head, line)
            line.skip()
            texts = found.get(post[0]) if post is not None else None
            if texts is not None and len(texts) < MAX_EXAMPLES and post[1] not in texts:
                texts.append(post[1])
    return found


class _Line:
    """One row of a dataset, read a piece (at most ROW_PIECE_BYTES) at a time."""

    def __init__(self, rows: IO[bytes]) -> None:
        self.rows, self.ended = rows, False

    def piece(self) -> bytes:
        """The row's next piece; b"" once it has ended."""
        if self.ended:
            return b""
        piece = self.rows.readline(ROW_PIECE_BYTES)
        self.ended = len(piece) < ROW_PIECE_BYTES or piece.endswith(b"\n")
        return piece

    def skip(self) -> None:
        while self.piece():
            pass


def _post(line: bytes) -> tuple[str, str] | None:
    """(handle, its text shortened) of a whole row; None for a row of another kind."""
    try:
        row = orjson.loads(line)
        handle, text = row["handle"], row["text"]
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return None
    if not isinstance(handle, str) or not isinstance(text, str):
        return None
    return handle, shortened(text)


def _long_post(head: bytes, line: _Line) -> tuple[str, str] | None:
    """(handle, its text shortened) of a row longer than a piece, its text measured piece
    by piece (the marker's length is exact) and its other fields read before and after it
    (each within a piece); None for a row this cannot read."""
    key = _TEXT_KEY.search(head)
    if key is None:
        return None
    try:
        fields = orjson.loads(head[: key.start()].rstrip().rstrip(b",") + b"}")
        start, length, after = _measure_string(head[key.end() :], line)
        after += line.piece()
        if not line.ended or not isinstance(fields, dict):
            return None
        fields.update(orjson.loads(b"{" + after.lstrip().lstrip(b",")))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    handle = fields.get("handle")
    return (handle, shortened(start, length)) if isinstance(handle, str) else None


def _measure_string(buffer: bytes, line: _Line) -> tuple[str, int, bytes]:
    """A JSON string's start (MAX_EXAMPLE_CHARS characters at most), its length in
    characters and what follows it in its last piece; ``buffer``, the string's first
    bytes after its opening quote, then the line's pieces. ValueError when it does not end
    (or is no JSON string)."""
    start, length = "", 0
    while True:
        end = _string_end(buffer)
        if end >= 0:
            text, rest = orjson.loads(b'"' + buffer[: end + 1]), b""
        else:
            text, rest = _decoded_start(buffer)
        start += text[: MAX_EXAMPLE_CHARS - len(start)]
        length += len(text)
        if end >= 0:
            return start, length, buffer[end + 1 :]
        piece = line.piece()
        if not piece:
            raise ValueError("the row ends inside its text")
        buffer = rest + piece


def _string_end(body: bytes) -> int:
    """Where the JSON string whose body starts ``body`` ends: its first quote after an
    even number of backslashes (``body`` starts at a character, never inside an escape);
    -1 when not in ``body``."""
    quote = body.find(b'"')
    while quote >= 0:
        run = quote
        while run > 0 and body[run - 1] == 0x5C:  # the backslashes before it
            run -= 1
        if (quote - run) % 2 == 0:
            return quote
        quote = body.find(b'"', quote + 1)
    return -1


def _decoded_start(body: bytes) -> tuple[str, bytes]:
    """The characters of a JSON string's body cut anywhere (inside an escape or a UTF-8
    character), and the bytes left over to read with the next piece."""
    for cut in range(len(body), max(len(body) - _LONGEST_ESCAPE, 0) - 1, -1):
        try:
            return orjson.loads(b'"' + body[:cut] + b'"'), body[cut:]
        except orjson.JSONDecodeError:
            continue
    raise ValueError("not a JSON string")


def check_upload_name(filename: object) -> str:
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


def save_bounded(data: bytes | Path | IO[bytes], path: Path, limit: int) -> None:
    """``data`` written to ``path``, refused (UploadTooLarge) past ``limit`` bytes."""
    if isinstance(data, bytes | bytearray):
        if len(data) > limit:
            raise UploadTooLarge(limit)
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
                    raise UploadTooLarge(limit)
                out.write(chunk)
