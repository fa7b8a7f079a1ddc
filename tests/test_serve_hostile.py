"""Hostile input against ``huggingtweets serve``: ids that try to leave their folder,
uploads that are empty, bombs, links or badly named, JSON that is deep, huge or not
JSON, prompts with nothing to see, forged Host headers, tokens in the wrong place, a
worker process that cannot start, and event streams whose clients come and go. Each
must get one clear 4xx naming the field (or a job that fails in one line), never a 5xx,
a traceback, a path on the server or a secret, and the server must go on serving."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")

import test_serve_api
from conftest import run_cli
from exports import deflated, deflated_run, write_raw_zip
from fastapi.testclient import TestClient
from test_serve_api import API, API_TOKEN, SECRETS, Api, _error, _upload

from huggingtweets.core.options import OptionError
from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.jobs import JobRecord, JobWork

MULTIPART = "multipart/form-data"
PAGE_FILES_ENV = "GRADIO_TEMP_DIR"  # where Gradio keeps the page's files
UNKNOWN_MODEL = "no-such-model"  # prompts checked before the model is looked for
# The API tests' fixtures (a server of this module's own, module scope; a prepared run).
api = test_serve_api.api
romeo = test_serve_api.romeo


def _ended(api: Api, answer) -> dict:
    assert answer.status_code == 202, answer.text
    return api.wait(answer.json()["id"], timeout=60)


# -- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ident", "status"),
    [
        # No route: ".." is resolved by the client (runs/.. is /api/v1/), and an encoded
        # slash makes two segments where the route has one.
        ("..", 404),
        ("%2E%2E%2Fromeo", 404),
        # One segment that is not an id: refused by the path's own check, naming it.
        *[(ident, 422) for ident in ("%2e%2e", "%00", "romeo%00", "romeo%0a")],
        *[(ident, 422) for ident in ("a" * 101, "a" * 5000)],
        *[(ident, 422) for ident in ("r%D0%BEme%D0%BE", "%EF%BD%92omeo")],  # Cyrillic o's; ｒ
    ],
)
def test_ids_that_are_not_ids_are_4xx(api, romeo, ident, status):
    for method, path, name in (
        ("GET", f"{API}/runs/{ident}", "run_id"),
        ("POST", f"{API}/runs/{ident}/train", "run_id"),
        ("GET", f"{API}/jobs/{ident}", "job_id"),
        ("GET", f"{API}/jobs/{ident}/events", "job_id"),
        ("POST", f"{API}/jobs/{ident}/cancel", "job_id"),
    ):
        answer = api.call(method, path, json={"base_model": "tiny"} if "train" in path else None)
        loc = ["path", name] if status == 422 else []  # a 404 of no route names nothing
        assert _error(answer, status)["loc"] == loc, (path, answer.text)
    assert api.get(f"{API}/runs/{romeo}").status_code == 200  # the look-alikes hit nothing


# -- uploads ----------------------------------------------------------------------------------


def test_an_empty_upload_is_refused_at_once(api):
    jobs_before = len(api.get(f"{API}/jobs").json())
    for name in ("posts.txt", "export.zip"):
        error = _error(_upload(api, name, b""), 422)
        assert error["loc"] == ["body", "file"] and name in error["msg"], error
    assert len(api.get(f"{API}/jobs").json()) == jobs_before
    assert not any((api.runs_dir / ".uploads").iterdir())


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("outbox.json", b"{}"),  # the Mastodon reader names the folder it reads
        ("tweets.js", b"window.YTD.tweets.part0 = [[1]]"),
        ("posts.jsonl", b"[" * 5000),
        ("posts.csv", b"\xff\xfe\x00 not utf-8"),
    ],
)
def test_a_failed_uploads_error_does_not_say_where_the_server_keeps_it(api, name, data):
    job = _ended(api, _upload(api, name, data, handle="bob"))
    assert job["state"] == "failed" and "\n" not in job["error"], job
    assert name in job["error"], job["error"]
    for where in (str(api.runs_dir), ".uploads", "upload-", "/tmp"):
        assert where not in job["error"], job["error"]


def test_an_export_without_its_account_asks_for_the_form_field_not_a_flag(api):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # an X export with no data/account.js
        archive.writestr("data/tweets.js", "window.YTD.tweets.part0 = []")
    # A zip is read in the job (the upload's route only checks it is one): 202, then failed.
    job = _ended(api, _upload(api, "export.zip", buffer.getvalue()))
    assert job["state"] == "failed", job
    problem = job["error"]
    assert "export.zip has no account.js" in problem and "handle field" in problem, problem
    assert "--" not in problem, problem


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entry = zipfile.ZipInfo("data/tweets.js")
        entry.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        archive.writestr(entry, "/etc/passwd")
    return buffer.getvalue()


def test_bombs_links_and_escapes_in_zips_fail_in_one_line(api, tmp_path):
    bomb = write_raw_zip(tmp_path / "bomb.zip", [("data/tweets.js", *deflated_run(b"a", 3000))])
    escape = write_raw_zip(tmp_path / "escape.zip", [("../../evil.js", *deflated(b"x = []"))])
    # An entry that leaves the archive: refused by the upload's route, before any job.
    jobs_before = len(api.get(f"{API}/jobs").json())
    error = _error(_upload(api, "escape.zip", escape.read_bytes(), handle="bob"), 422)
    assert error["loc"] == ["body", "file"], error
    assert "escape.zip" in error["msg"] and "outside the archive" in error["msg"], error
    assert len(api.get(f"{API}/jobs").json()) == jobs_before
    # A bomb (3 GB inflated from 3 MB) and a link: taken (202), refused by the reader in
    # the job, in one line.
    bombed = _ended(api, _upload(api, "bomb.zip", bomb.read_bytes(), handle="bob"))
    assert bombed["state"] == "failed" and "\n" not in bombed["error"], bombed
    assert "bomb.zip:data/tweets.js" in bombed["error"], bombed["error"]
    assert "more than such a file ever holds" in bombed["error"], bombed["error"]
    linked = _ended(api, _upload(api, "link.zip", _symlink_zip(), handle="bob"))
    assert linked["state"] == "failed" and "\n" not in linked["error"], linked
    # The link's own text ("/etc/passwd") read as the file: not JSON; not followed.
    assert "invalid JSON in link.zip:data/tweets.js" in linked["error"], linked["error"]
    assert "root:" not in linked["error"]
    assert not (tmp_path.parent / "evil.js").exists() and not (api.runs_dir / "evil.js").exists()
    assert not any((api.runs_dir / ".uploads").iterdir())  # every upload's folder removed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"files": {"file": ("a/b.txt", b"w x y z\n")}}, "file"),
        ({"files": {"file": ("a\x00b.txt", b"w x y z\n")}}, "file"),
        ({"files": {"file": ("a\nb.txt", b"w x y z\n")}}, "file"),
        ({"files": {"file": ("a\\b.txt", b"w x y z\n")}}, "file"),
        ({"files": {"file": ("x" * 500 + ".txt", b"w x y z\n")}}, "file"),
        ({"files": {"file": ("posts.txt\r\nX-Evil: 1", b"w x y z\n")}}, "file"),
        ({"files": {"other": ("a.txt", b"w x y z\n")}, "data": {"handle": "bob"}}, "other"),
        ({"data": {"handle": "bob"}}, "file"),  # not multipart: no file part at all
        ({"files": [("file", ("a.txt", b"w\n")), ("file", ("b.txt", b"w\n"))]}, "file"),
        ({"content": b"junk", "headers": {"content-type": MULTIPART}}, "file"),
        ({"content": b"junk", "headers": {"content-type": MULTIPART + "; boundary=z"}}, "file"),
    ],
)
def test_badly_formed_uploads_are_422_naming_the_field(api, kwargs, field):
    jobs_before = len(api.get(f"{API}/jobs").json())
    error = _error(api.post(f"{API}/runs/upload", **kwargs), 422)
    assert error["loc"] == ["body", field], error
    assert len(api.get(f"{API}/jobs").json()) == jobs_before


# -- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ("[" * 100_000 + "]" * 100_000, 422, ["body"]),
        ('{"model": ' + "[" * 5000 + "]" * 5000 + "}", 422, ["body"]),
        ('{"model": "x", "n": ' + "9" * 5000 + "}", 422, ["body"]),
        ('{"model": "x", "seed": 18446744073709551616}', 422, ["body", "seed"]),
        ('{"model": "x", "temperature": NaN}', 422, ["body", "temperature"]),
        ('{"model": "x", "temperature": Infinity}', 422, ["body", "temperature"]),
        ('{"model": "x", "top_p": -Infinity}', 422, ["body", "top_p"]),
        ('{"model": "x", "no_copies": 1}', 422, ["body", "no_copies"]),
        ('{"model": "x", "n": true}', 422, ["body", "n"]),
        ('{"model": "x", "n": 2.5}', 422, ["body", "n"]),
        ('{"model": "x", "max_length": "64"}', 422, ["body", "max_length"]),
        ('{"model": 5}', 422, ["body", "model"]),
        ("null", 422, ["body"]),
        ("", 422, ["body"]),
        ('{"model": "' + "a" * (10 << 20) + '"}', 413, ["body"]),
    ],
)
def test_hostile_json_is_4xx_naming_the_field(api, body, status, loc):
    answer = api.post(
        f"{API}/generate", content=body.encode(), headers={"content-type": "application/json"}
    )
    error = _error(answer, status)
    assert error["loc"][: len(loc)] == loc, error
    assert len(answer.content) < 2000  # the input is not echoed back


@pytest.mark.parametrize(
    "prompt",
    [
        *("\n\n\n", "\t \r\n", "\x00\x01\x02", "\u200f\u200f", "\u200b", "\ufeff", "\u202e"),
        *("My\x00dream", "My\x1bdream"),  # something to see, and a control character
        *("My\ndream", "\n My dream", "My dream\r\n", "My\u2028dream"),  # cut at the break
    ],
)
def test_prompts_with_nothing_to_see_line_breaks_or_control_characters_are_422(api, prompt):
    answer = api.post(f"{API}/generate", json={"model": UNKNOWN_MODEL, "prompt": prompt})
    error = _error(answer, 422)
    assert error["loc"] == ["body", "prompt"], error


@pytest.mark.parametrize(
    "prompt", ["x" * 1000, "😀", "<script>alert(1)</script>", "مرحبا\u200f world", "a\tb"]
)
def test_prompts_that_are_odd_but_fine_reach_the_model_lookup(api, prompt):
    answer = api.post(f"{API}/generate", json={"model": UNKNOWN_MODEL, "prompt": prompt})
    assert _error(answer, 404)["loc"] == ["body", "model"]  # valid: only the model is unknown
    too_long = api.post(f"{API}/generate", json={"model": UNKNOWN_MODEL, "prompt": "x" * 1001})
    assert _error(too_long, 422)["loc"] == ["body", "prompt"]


@pytest.mark.parametrize(
    "model", ["gpt2", "openai-community/gpt2", "/etc", "../runs/x", "C:\\x", ".uploads", "upload"]
)
def test_models_that_are_hub_ids_or_paths_fail_fast(api, model, monkeypatch):
    """Looked up among the served models only: no connection is even tried (the
    TestClient's server is in this process, so every socket it would open is seen here)."""
    tried: list[object] = []

    def refused(where):
        def connect(self, address, *args):
            tried.append((where, address))
            raise OSError(f"no network in this test ({address!r})")

        return connect

    monkeypatch.setattr(socket.socket, "connect", refused("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refused("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refused("dns")(None, host))
    answer = api.post(f"{API}/generate", json={"model": model, "n": 1})
    assert _error(answer, 404)["loc"] == ["body", "model"]
    assert tried == [], tried


# -- training and jobs ------------------------------------------------------------------------


def test_a_run_named_in_the_body_that_is_busy_is_409_at_the_body(api, romeo):
    queue = api.client.app.state.manager.queue
    holder = JobRecord("0" * 16, JobWork("prepare", romeo))  # holds the run, never runs
    with queue._lock:
        queue._remember(holder)
    try:
        again = api.post(f"{API}/runs", json={"sources": ["sample:romeo"], "run_id": romeo})
        assert _error(again, 409)["loc"] == ["body", "run_id"]
        train = api.post(f"{API}/runs/{romeo}/train", json={"base_model": "tiny"})
        assert _error(train, 409)["loc"] == ["path", "run_id"]
    finally:
        queue.cancel(holder.id)
    cancelled = api.post(f"{API}/jobs/{holder.id}/cancel")  # ended already: nothing to do
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


def test_an_account_that_is_wrong_is_named_as_a_source_not_a_handle(api):
    for body, loc in (
        ({"sources": ["x:" + "a" * 40]}, ["body", "sources"]),  # "an X handle is 1 to 15..."
        ({"sources": ["sample:romeo"], "handles": ["romeo", "juliet"]}, ["body", "handles"]),
    ):
        assert _error(api.post(f"{API}/runs", json=body), 422)["loc"] == loc, body


def test_a_worker_that_cannot_start_fails_each_job_and_the_server_goes_on(tmp_path):
    from huggingtweets.prepare.dataset import prepare

    prepare(tmp_path / "runs" / "romeo", ["sample:romeo"])
    app = create_app(ServeConfig(runs_dir=tmp_path / "runs"), ui=False)
    manager = app.state.manager

    class NoProcess:  # as when the system has no processes left to give
        def __init__(self, *args, **kwargs) -> None:
            pass

        def start(self) -> None:
            raise OSError(11, "Resource temporarily unavailable")

        def is_alive(self) -> bool:
            return False

        def join(self, timeout=None) -> None:
            raise AssertionError("can only join a started process")

    worker = manager.queue.worker
    spawn = worker.context  # the process-wide spawn context: not to be changed itself
    worker.context = SimpleNamespace(Process=NoProcess, Pipe=spawn.Pipe, Event=spawn.Event)
    with TestClient(app) as client:
        local = Api(client, tmp_path / "runs")
        for _ in range(2):  # the second job must not wait on the first's dead worker
            job = _ended(local, local.post(f"{API}/runs/romeo/train", json={"base_model": "tiny"}))
            assert job["state"] == "failed" and "\n" not in job["error"], job
            assert "cannot start the training process" in job["error"]
        assert local.get(f"{API}/health").status_code == 200
    # (leaving the with block closed the manager: no error)


def test_waiting_jobs_are_bounded_and_their_uploads_removed_at_close(tmp_path, monkeypatch):
    import huggingtweets.serve.jobs as serve_jobs

    monkeypatch.setattr(serve_jobs, "MAX_WAITING_JOBS", 2)
    runs_dir = tmp_path / "runs"
    app = create_app(ServeConfig(runs_dir=runs_dir), ui=False)
    manager = app.state.manager
    monkeypatch.setattr(manager.queue, "_start_threads", lambda *args: None)  # nothing runs them
    uploads = runs_dir / ".uploads"
    posts = b"to be or not to be that is the question\n" * 200
    with TestClient(app) as client:
        local = Api(client, runs_dir)
        queued = [local.post(f"{API}/runs/upload", files={"file": ("bard.txt", posts)})]
        queued.append(local.post(f"{API}/runs", json={"sources": ["sample:romeo"]}))
        assert [answer.status_code for answer in queued] == [202, 202]
        assert len(list(uploads.iterdir())) == 1  # the waiting upload's file
        for full in (
            local.post(f"{API}/runs", json={"sources": ["sample:romeo"]}),
            local.post(f"{API}/runs/upload", files={"file": ("more.txt", posts)}),
        ):
            assert _error(full, 503)["type"] == "queue_full"
            assert int(full.headers["retry-after"]) >= 1
        assert len(list(uploads.iterdir())) == 1  # the refused one was not kept
        assert len(local.get(f"{API}/jobs").json()) == 2
    assert manager.job(queued[0].json()["id"])["state"] == "cancelled"
    assert not list(uploads.iterdir())  # closing removed the file no job will read


# -- uploads left on disk (item 9) ------------------------------------------------------------

POSTS = b"to be or not to be that is the question\n" * 200
# `huggingtweets serve` whose prepare jobs start and never end (a collection that hangs).
HELD_SERVE = """
import importlib, threading
dataset = importlib.import_module("huggingtweets.prepare.dataset")
dataset.prepare = lambda *args, **kwargs: threading.Event().wait()
from huggingtweets.cli.main import main
main()
"""


@pytest.fixture
def held_prepare(monkeypatch):
    """This process's prepare jobs start, then hold (a collection still reading) until the
    test ends: the event they set once started."""
    started, release = threading.Event(), threading.Event()

    def held(*args, **kwargs) -> None:
        started.set()
        release.wait(300)

    monkeypatch.setattr(importlib.import_module("huggingtweets.prepare.dataset"), "prepare", held)
    yield started
    release.set()


def _upload_folders(runs_dir: Path, kind: str = "upload-") -> list[Path]:
    """The uploads' folders (or, ``kind`` "page-", the page's: each a server's)."""
    uploads = runs_dir / ".uploads"
    return sorted(uploads.glob(f"{kind}*")) if uploads.is_dir() else []


def _running(api: Api, answer) -> dict:
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["id"], lambda job: job["state"] == "running", timeout=60)
    assert job["state"] == "running", job
    return job


def test_an_upload_is_removed_when_its_server_stops_mid_prepare(tmp_path, held_prepare):
    runs_dir = tmp_path / "runs"
    with TestClient(create_app(ServeConfig(runs_dir=runs_dir), ui=False)) as client:
        local = Api(client, runs_dir)
        _running(local, _upload(local, "bard.txt", POSTS))
        assert held_prepare.is_set() and len(_upload_folders(runs_dir)) == 1
    assert _upload_folders(runs_dir) == []  # stopped mid-prepare: its upload went with it


def _serve_process(runs_dir: Path, *, held: bool = False, page_files: Path | None = None):
    """``huggingtweets serve`` on a free port (its prepare jobs held, or not): (process, URL).
    The page's files go where serve puts them, or to ``page_files`` (GRADIO_TEMP_DIR)."""
    import os
    import subprocess
    import sys

    command = (
        [sys.executable, "-c", HELD_SERVE] if held else [sys.executable, "-m", "huggingtweets"]
    )
    env = {key: value for key, value in os.environ.items() if key != PAGE_FILES_ENV}
    if page_files is not None:
        env[PAGE_FILES_ENV] = str(page_files)
    server = subprocess.Popen(
        [*command, "serve", "--port", "0", "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    first = server.stdout.readline()  # printed once the app is made: its start is done
    if not first.startswith("Serving huggingtweets on "):
        server.kill()
        server.wait()
        pytest.fail(f"the server did not start: {first!r}")
    return server, first.split(" on ", 1)[1].split()[0]


def _serving(http) -> None:
    """Until the real server answers its health (uvicorn serving, its Ctrl-C handled)."""
    import httpx

    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if http.get(f"{API}/health").status_code == 200:
                return
        assert time.monotonic() < deadline, "no /health within 60 s"
        time.sleep(0.1)


def test_uploads_a_killed_server_left_are_removed_at_the_next_start(tmp_path, held_prepare):
    """A real server killed (-9) mid-prepare leaves its upload on disk; the next real
    start removes it, and only it: the upload of a server still running beside them (this
    process's, mid-prepare too) is held by that server."""
    import signal

    import httpx

    runs_dir = tmp_path / "runs"
    with TestClient(create_app(ServeConfig(runs_dir=runs_dir), ui=False)) as client:
        live = Api(client, runs_dir)
        _running(live, _upload(live, "live.txt", POSTS))
        [live_folder] = _upload_folders(runs_dir)
        killed, url = _serve_process(runs_dir, held=True)
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                remote = Api(http, runs_dir)
                _running(remote, _upload(remote, "bard.txt", POSTS))
        finally:
            killed.kill()
            killed.wait()
        assert len(_upload_folders(runs_dir)) == 2  # the killed server's is left
        restarted, restarted_url = _serve_process(runs_dir)
        try:
            assert _upload_folders(runs_dir) == [live_folder]
            with httpx.Client(base_url=restarted_url, timeout=30) as http:
                _serving(http)  # Ctrl-C once it serves: a normal end (exit 0, "Stopped.")
        finally:
            restarted.send_signal(signal.SIGINT)
            stopped = restarted.wait(60), restarted.stdout.read()
        assert stopped[0] == 0 and stopped[1].rstrip().endswith("Stopped."), stopped


def _page_upload(http, name: str) -> Path:
    """A file uploaded through the page's own route (as the page's file field sends it):
    where its server keeps it."""
    _serving(http)
    answer = http.post("/gradio_api/upload", files={"files": (name, POSTS)})
    assert answer.status_code == 200, answer.text
    [stored] = answer.json()
    assert Path(stored).is_file(), stored
    return Path(stored)


def _page_folders(runs_dir: Path) -> list[Path]:
    """The page's folders under ``runs_dir``, as their files name them (resolved)."""
    return _upload_folders(runs_dir.resolve(), "page-")


def test_the_pages_files_a_killed_server_left_are_removed_at_the_next_start(tmp_path):
    """The page's files (an upload not collected yet) are kept in a folder of their
    server's under runs_dir/.uploads. A server killed (-9) leaves its folder; the next
    start removes it, never the folder of a server still running beside them, and a
    server's own goes when it stops. A GRADIO_TEMP_DIR set by the user is used as is."""
    import signal

    import httpx

    pytest.importorskip("gradio")
    runs_dir, chosen = tmp_path / "runs", tmp_path / "chosen"
    servers = []
    try:
        for _ in range(2):
            servers.append(_serve_process(runs_dir))
        stored = []
        for name, (_, url) in zip(("live.txt", "killed.txt"), servers, strict=True):
            with httpx.Client(base_url=url, timeout=30) as http:
                stored.append(_page_upload(http, name))
        live_file, killed_file = stored  # each in its server's folder: <it>/<hash>/<name>
        assert _page_folders(runs_dir) == sorted(f.parent.parent for f in stored)
        killed = servers.pop()[0]
        killed.kill()
        killed.wait()
        assert killed_file.is_file()  # left by the kill
        servers.append(_serve_process(runs_dir, page_files=chosen))  # the next start
        assert not killed_file.exists() and not killed_file.parent.parent.exists()
        assert live_file.is_file()  # its server holds it
        with httpx.Client(base_url=servers[-1][1], timeout=30) as http:
            assert _page_upload(http, "chosen.txt").is_relative_to(chosen.resolve())
        assert _page_folders(runs_dir) == [live_file.parent.parent]  # none for chosen
    finally:
        for server, _ in servers:
            server.send_signal(signal.SIGINT)
        stopped = [(server.wait(60), server.stdout.read()) for server, _ in servers]
    assert all(code == 0 and out.rstrip().endswith("Stopped.") for code, out in stopped), stopped
    assert _page_folders(runs_dir) == []  # each server's went with it


def test_at_shutdown_the_pages_folder_goes_even_when_the_jobs_uploads_are_unknown(tmp_path):
    from huggingtweets.serve.catalog import Catalog
    from huggingtweets.serve.manager import Uploads

    uploads = Uploads(Catalog(tmp_path / "runs", []))
    upload, page = uploads.new(), uploads.new_page_folder()
    uploads.close(None)  # Redis away: a job may still read the upload, never the page's
    assert upload.is_dir() and not page.exists()


def test_with_redis_a_queued_jobs_upload_outlives_a_restart_and_a_stale_one_does_not(tmp_path):
    """Jobs in Redis outlive the server: a queued upload stays over a stop and a start (a
    worker will read it), while one that no job names (a server killed as it wrote it)
    is removed at the start; cancelled, the queued one goes too."""
    import tempfile

    from test_serve_queue import RedisServer, need_redis

    need_redis()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    runs_dir = tmp_path / "runs"
    config = ServeConfig(runs_dir=runs_dir, queue=redis.url)
    try:
        with TestClient(create_app(config, ui=False)) as client:  # no worker: it waits
            job = _upload(Api(client, runs_dir), "bard.txt", POSTS).json()
            assert job["state"] == "queued", job
        queued = _upload_folders(runs_dir)
        assert len(queued) == 1
        stale = Path(tempfile.mkdtemp(prefix="upload-", dir=runs_dir / ".uploads"))
        (stale / "half.txt").write_bytes(POSTS[:100])
        with TestClient(create_app(config, ui=False)) as client:
            assert _upload_folders(runs_dir) == queued
            cancelled = client.post(f"{API}/jobs/{job['id']}/cancel").json()
            assert cancelled["state"] == "cancelled"
            assert _upload_folders(runs_dir) == []
    finally:
        redis.stop()


# -- headers, token, methods --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("localhost:7860", True),
        ("127.0.0.1", True),
        ("[::1]:7860", True),
        ("localhost:80@evil.example", False),
        ("localhost:x", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("evil.example", False),
        ("", False),
    ],
)
def test_on_loopback_only_loopback_host_headers_are_served(api, host, served):
    answer = api.get(f"{API}/runs", headers={"host": host})
    if served:
        assert answer.status_code == 200, answer.text
    else:
        assert _error(answer, 400)["loc"] == ["header", "host"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:7860", True),
        ("http://127.0.0.1:7860", True),
        ("http://[::1]:7860", True),
        ("https://evil.example", False),
        ("http://localhost.evil.example", False),
        ("null", False),  # a sandboxed frame or a file:// page
        ("http://localhost:port", False),
    ],
)
def test_on_loopback_api_requests_from_other_sites_pages_are_refused(api, origin, allowed):
    # A form on any web page can post a file to localhost without asking first.
    jobs_before = len(api.get(f"{API}/jobs").json())
    empty = {"file": ("posts.txt", b"")}
    answer = api.post(f"{API}/runs/upload", files=empty, headers={"origin": origin})
    if allowed:
        assert _error(answer, 422)["loc"] == ["body", "file"]  # reached the route (empty)
    else:
        assert _error(answer, 403)["loc"] == ["header", "origin"]
    assert len(api.get(f"{API}/jobs").json()) == jobs_before


def test_off_loopback_the_token_must_be_the_bearer_header(tmp_path):
    config = ServeConfig(runs_dir=tmp_path / "runs", host="0.0.0.0", token=API_TOKEN)
    with TestClient(create_app(config, ui=False)) as client:
        refused = [
            {},
            {"authorization": ""},
            {"authorization": "Bearer "},
            {"authorization": "Bearer"},
            {"authorization": f"Basic {API_TOKEN}"},
            {"authorization": f"Bearer {API_TOKEN}x"},
            {"authorization": f"Bearer {API_TOKEN[:-1]}"},
        ]
        for headers in refused:
            answer = client.get(f"{API}/runs", headers=headers)
            assert _error(answer, 401)["loc"] == ["header", "authorization"], headers
            assert API_TOKEN not in answer.text
        for query in (f"token={API_TOKEN}", f"access_token={API_TOKEN}"):
            assert client.get(f"{API}/runs?{query}").status_code == 401
        ok = client.get(f"{API}/runs", headers={"authorization": f"Bearer {API_TOKEN}"})
        assert ok.status_code == 200


def test_methods_a_route_does_not_have_are_405(api, romeo):
    for method, path in (
        ("PUT", "/runs"),
        ("DELETE", f"/runs/{romeo}"),
        ("PATCH", "/jobs"),
        ("TRACE", "/health"),
        ("GET", "/generate"),
        ("GET", f"/runs/{romeo}/train"),
    ):
        answer = api.call(method, API + path)
        assert answer.status_code == 405, (method, path, answer.text)
        assert method not in answer.headers["allow"]


# -- event streams ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real server (uvicorn on a free loopback port, in a thread): (port, manager)."""
    import uvicorn

    runs_dir = tmp_path_factory.mktemp("served") / "runs"
    app = create_app(ServeConfig(runs_dir=runs_dir), ui=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", timeout_keep_alive=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        yield listener.getsockname()[1], app.state.manager
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` raw and read the answer until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(request)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := client.recv(65536):
                answer += chunk
                if answer.startswith(b"HTTP/1.1 4") and b"\r\n\r\n{" in answer:
                    break  # the whole error came (its JSON is one short chunk)
    return answer


def _health(port: int) -> bytes:
    return _exchange(port, f"GET {API}/health HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())


def test_event_streams_end_with_their_clients(served):
    """200 clients at once on a real server, then gone mid-stream: each stream's watcher
    of the job is dropped (no task or callback is left behind), and the server serves on."""
    port, manager = served
    queue = manager.queue
    job = JobRecord("1" * 16, JobWork("prepare", "romeo"))  # queued as long as the test wants
    with queue._lock:
        queue._remember(job)
    try:
        request = f"GET {API}/jobs/{job.id}/events HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        clients = []
        for _ in range(200):
            client = socket.create_connection(("127.0.0.1", port), timeout=20)
            client.sendall(request)
            clients.append(client)
        for client in clients:  # each has its first event
            seen = b""
            while b"data: " not in seen:
                chunk = client.recv(4096)
                assert chunk, seen
                seen += chunk
            assert b"200 OK" in seen and b'"state": "queued"' in seen
        assert len(job.watchers) == 200
        for client in clients:
            client.close()
        deadline = time.monotonic() + 15
        while job.watchers:
            assert time.monotonic() < deadline, f"{len(job.watchers)} streams left behind"
            time.sleep(0.05)
        assert b"200 OK" in _health(port)
    finally:
        queue.cancel(job.id)


def test_bodies_whose_length_lies_are_refused_and_the_server_serves_on(served):
    port, _ = served
    head = f"POST {API}/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    big = b'{"model": "' + b"a" * (2 << 20) + b'"}'
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(big[i : i + 65536]), big[i : i + 65536])
        for i in range(0, len(big), 65536)
    )
    for lie, status in (
        (b"Content-Length: 999999999\r\n\r\n{}", b"413"),  # refused before it is read
        (b"Content-Length: 99999999999999999999999999\r\n\r\n{}", b"400"),  # not HTTP
        (b"Content-Length: -1\r\n\r\n{}", b"400"),
        (b"Content-Length: 2\r\nContent-Length: 9\r\n\r\n{}", b"400"),
        (b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n", b"413"),  # no length
    ):
        answer = _exchange(port, head.encode() + lie)
        assert answer.startswith(b"HTTP/1.1 " + status), (lie[:60], answer[:200])
        assert b"Traceback" not in answer
    # A body shorter than its length, then the client gone: nothing to answer, no harm.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(head.encode() + b'Content-Length: 100\r\n\r\n{"model"')
    assert b"200 OK" in _health(port)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_serve_names_its_own_flag_for_a_runs_folder_it_cannot_write():
    result = run_cli("serve", "--runs-dir", "/proc/self/runs", expect=2)
    assert "--runs-dir" in result.stderr and "--out" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- the page's words -----------------------------------------------------------------------------


def test_the_page_says_upload_the_file_below_where_the_api_names_its_route(api):
    pytest.importorskip("gradio")
    from huggingtweets.serve.ui import error_text, status_html

    manager = api.client.app.state.manager
    for typed in ("/etc/passwd", "C:\\Users\\me\\tweets.js", "<b>bold</b>"):
        with pytest.raises(OptionError) as refused:
            manager.create_run([typed])
        page = status_html(error_text(refused.value), "error")
        assert "upload the file below" in page and "/api/v1" not in page, page
        assert "<b>" not in page  # the typed text is text, not HTML
        answer = api.post(f"{API}/runs", json={"sources": [typed]})
        assert "POST /api/v1/runs/upload" in _error(answer, 422)["msg"]  # the API's own words


def test_no_answer_held_a_secret_or_a_server_path(api):
    # (After the tests above; a failed upload's job and the lists, in case it runs alone.)
    api.wait(_upload(api, "outbox.json", b"{}", handle="bob").json()["id"], timeout=60)
    api.get(f"{API}/jobs")
    api.get(f"{API}/runs")
    for answer in api.answers:
        for secret in SECRETS.values():
            assert secret not in answer
        assert json.dumps(str(api.runs_dir))[1:-1] not in answer
    assert not list(Path(api.runs_dir).glob(".uploads/*"))


# -- the page's own routes (round 3) ------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The app with its web page mounted (loopback): a TestClient."""
    pytest.importorskip("gradio")
    runs_dir = tmp_path_factory.mktemp("page") / "runs"
    with TestClient(create_app(ServeConfig(runs_dir=runs_dir))) as client:
        yield client


def test_on_loopback_the_pages_own_routes_refuse_other_sites_pages(page):
    evil = {"origin": "https://evil.example"}
    for method, path, kwargs in (
        ("POST", "/gradio_api/upload", {"files": {"files": ("posts.txt", b"stored?")}}),
        ("POST", "/gradio_api/queue/join", {"json": {"data": [], "fn_index": 0}}),
        ("GET", "/gradio_api/file=/etc/passwd", {}),
        ("GET", "/config", {}),
        ("GET", "/", {}),
    ):
        answer = page.request(method, path, headers=evil, **kwargs)
        assert _error(answer, 403)["loc"] == ["header", "origin"], (path, answer.text)
    # The page itself is same-origin: its requests carry a loopback Origin, or none.
    for headers in ({}, {"origin": "http://127.0.0.1:7860"}, {"origin": "http://localhost"}):
        assert page.get("/config", headers=headers).status_code == 200, headers
    local = {"origin": "http://localhost:7860"}
    stored = page.post("/gradio_api/upload", files={"files": ("p.txt", b"x")}, headers=local)
    assert stored.status_code == 200, stored.text


def test_the_pages_json_routes_take_small_bodies_and_never_echo_them(page):
    marker = "ECHOED-" + "z" * 1000
    big = json.dumps({"data": [marker * 2000], "fn_index": 0, "session_hash": "s"})
    for path in ("/gradio_api/queue/join", "/gradio_api/run/predict", "/gradio_api/reset"):
        answer = page.post(path, content=big, headers={"content-type": "application/json"})
        assert answer.status_code == 413, (path, answer.status_code)
        assert marker not in answer.text
    # A small body that is not what the route wants: 422 without the body in it, naming
    # the body (no JSON type said) or each wrong field of it.
    wrong = json.dumps({"data": marker, "fn_index": marker, "session_hash": [marker]})
    fields = [["body", "data"], ["body", "fn_index"], ["body", "session_hash"]]
    for headers, locs in (({}, [["body"]]), ({"content-type": "application/json"}, fields)):
        answer = page.post("/gradio_api/queue/join", content=wrong, headers=headers)
        assert answer.status_code == 422 and marker not in answer.text, answer.text[:300]
        said = sorted(error["loc"] for error in answer.json()["detail"])
        assert said == sorted(locs), (headers, said)


def _base_model_answer(manager, base: str) -> str:
    try:
        manager.check_train_options({"base_model": base})
    except OptionError as exc:
        assert exc.name == "base_model", exc
        return "refused: " + exc.problem
    return "accepted"


def test_a_base_models_answer_does_not_depend_on_what_exists_on_the_server(
    api, tmp_path, monkeypatch
):
    manager = api.client.app.state.manager
    monkeypatch.chdir(tmp_path)  # the server's working folder: these exist there
    for folder in ("existing", "owner/existing", "deep/er/existing"):
        (tmp_path / folder).mkdir(parents=True)
    answers = {}
    for there, not_there, expected in (
        ("existing", "missing", "accepted"),  # a bare Hub id (as gpt2 is)
        ("owner/existing", "owner/missing", "accepted"),  # OWNER/NAME
        ("./existing", "./missing", "refused"),
        ("deep/er/existing", "deep/er/missing", "refused"),
        (str(tmp_path / "existing"), str(tmp_path / "missing"), "refused"),
        ("~/existing", "~/missing", "refused"),
        ("existing/", "missing/", "refused"),
    ):
        answers[there] = _base_model_answer(manager, there)
        assert answers[there] == _base_model_answer(manager, not_there), (there, not_there)
        assert answers[there].startswith(expected), (there, answers[there])
    assert "paths on the server are not accepted" in answers["./existing"]
    assert _base_model_answer(manager, "tiny") == "accepted"


# -- a damaged served model ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("damaged-config", b"{not json"),
        ("damaged-weights", b'{"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2}'),
    ],
)
def test_a_damaged_served_model_is_the_servers_fault_and_names_no_server_path(api, name, config):
    model = api.runs_dir / name / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_bytes(config)
    (model / "model.safetensors").write_bytes(b"\x00" * 64)  # truncated weights
    answer = api.post(f"{API}/generate", json={"model": name, "prompt": "Hi", "n": 1})
    error = _error(answer, 500)
    assert error["type"] == "model_broken" and name in error["msg"], error
    assert "\n" not in error["msg"]
    for where in (str(api.runs_dir), str(api.runs_dir.resolve()), "/tmp", "model.safetensors"):
        assert where not in answer.text, answer.text
    assert api.get(f"{API}/health").status_code == 200  # the server serves on


def test_a_damaged_served_model_is_a_server_error_on_the_openai_route_too(api):
    model = api.runs_dir / "damaged-v1" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_bytes(b"{not json")
    answer = api.post("/v1/completions", json={"model": "damaged-v1", "prompt": "Hi"})
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "model_broken", error
    assert str(api.runs_dir) not in answer.text and "/tmp" not in answer.text, answer.text


def test_a_runs_dataset_rows_of_the_wrong_kind_are_skipped(api, romeo):
    import shutil

    from huggingtweets.core.runs import RunDir

    copy = shutil.copytree(api.runs_dir / romeo, api.runs_dir / "odd-rows")
    train = RunDir(copy).train_path
    handle = api.get(f"{API}/runs/{romeo}").json()["handles"][0]
    odd = [
        {"handle": [handle], "text": "a list for a handle"},
        {"handle": {"h": 1}, "text": "a mapping for a handle"},
        {"handle": handle, "text": 42},
        {"handle": handle, "text": None},
        {"handle": handle, "text": ["a", "list"]},
        [handle, "a row that is a list"],
        "a row that is text",
        7,
    ]
    lines = [json.dumps(row) for row in odd]
    train.write_text("\n".join(lines) + "\n" + train.read_text(encoding="utf-8"))
    answer = api.get(f"{API}/runs/odd-rows")
    assert answer.status_code == 200, answer.text
    examples = answer.json()["examples"][handle]
    assert examples and all(isinstance(text, str) for text in examples), examples
    assert examples == api.get(f"{API}/runs/{romeo}").json()["examples"][handle]


def test_a_huge_post_in_a_runs_dataset_is_shortened_in_the_runs_answer(api, romeo):
    """Item 19: one 20 MB post (a dataset of an older version, or written by hand) in the
    run's training rows: GET /runs/{id} answers a few posts per account, each cut and
    saying how long it was, not 20 MB."""
    import shutil

    from huggingtweets.core.runs import RunDir

    copy = shutil.copytree(api.runs_dir / romeo, api.runs_dir / "huge-post")
    train = RunDir(copy).train_path
    huge = "wherefore art thou " * 1_100_000  # 20,900,000 characters
    rows = [{"handle": "romeo", "id": "1", "text": huge}]
    rows += [{"handle": "romeo", "id": str(n), "text": f"post {n} " * 200} for n in range(2, 12)]
    lines = [json.dumps(row) for row in rows]
    train.write_text("\n".join(lines) + "\n" + train.read_text(encoding="utf-8"))
    answer = api.get(f"{API}/runs/huge-post")
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.content) < 20_000, len(answer.content)
    examples = answer.json()["examples"]["romeo"]
    assert len(examples) == 4, len(examples)  # as many as of a run of short posts
    assert examples[0] == huge[:500] + "… [shortened: 20,900,000 characters in all]"
    assert examples[1].startswith("post 2 post 2") and examples[1].endswith(
        f"… [shortened: {len('post 2 ' * 200):,} characters in all]"
    )
    assert all(len(text) < 560 for text in examples), [len(text) for text in examples]


# -- the server's words (round 3) ----------------------------------------------------------------


def test_server_errors_name_the_apis_fields_not_cli_flags():
    from huggingtweets.serve.messages import server_words

    said = server_words(
        "--speaker-tokens needs a bot of 2-3 accounts; offline, use a local model folder "
        "(to train: --base-model tiny), or lower --block-size; see --out"
    )
    assert "--" not in said, said
    for field in ("speaker_tokens", 'base_model "tiny"', "block_size", "run_id"):
        assert field in said, said
    assert server_words("leave out --as") == "leave out --as"  # no field of the API: as it is


def test_a_run_id_in_the_body_is_named_at_the_body(api):
    answer = api.post(f"{API}/runs", json={"sources": ["sample:romeo"], "run_id": "upload"})
    assert _error(answer, 422)["loc"] == ["body", "run_id"], answer.text


@pytest.mark.parametrize("ident", ["-rf", "--help", "-"])
def test_a_run_id_cannot_begin_with_a_dash(api, ident):
    from huggingtweets.serve.catalog import check_run_id

    with pytest.raises(OptionError):
        check_run_id(ident)
    answer = api.post(f"{API}/runs", json={"sources": ["sample:romeo"], "run_id": ident})
    assert _error(answer, 422)["loc"] == ["body", "run_id"], answer.text
    # Not an id in a path either: the path's own check (no run is looked up by it).
    assert _error(api.get(f"{API}/runs/{ident}"), 422)["loc"] == ["path", "run_id"]


def test_two_served_models_of_one_name_are_refused_at_start(tmp_path):
    from huggingtweets.core.errors import HuggingtweetsError
    from huggingtweets.model.tiny import build_tiny_base

    texts = ["O Romeo, Romeo! wherefore art thou Romeo?"] * 20
    first = build_tiny_base(texts, tmp_path / "a" / "bot", vocab_size=262, n_layer=1, n_embd=16)
    second = build_tiny_base(texts, tmp_path / "b" / "bot", vocab_size=262, n_layer=1, n_embd=16)
    config = ServeConfig(runs_dir=tmp_path / "runs", models=[str(first), str(second)])
    with pytest.raises(HuggingtweetsError, match="'bot'"):
        create_app(config, ui=False)
    result = run_cli("serve", first, second, "--runs-dir", tmp_path / "runs", expect=2)
    assert "'bot'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    same = ServeConfig(runs_dir=tmp_path / "runs", models=[str(first), str(first)])
    create_app(same, ui=False)  # the same model twice: one name, one model


def test_serve_takes_the_ipv6_loopback_in_brackets(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "huggingtweets", "serve", "--host", "[::1]", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = server.stdout.readline()
        assert first.startswith("Serving huggingtweets on http://[::1]:"), (
            first or server.stderr.read()
        )
        port = int(first.split("[::1]:", 1)[1].split("/")[0])
        with socket.create_connection(("::1", port), timeout=10) as client:
            client.sendall(f"GET {API}/health HTTP/1.1\r\nHost: [::1]:{port}\r\n\r\n".encode())
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
