"""`huggingtweets push` and `train --push-to-hub` against a fake Hub on 127.0.0.1.

The real CLI runs in a subprocess with HF_ENDPOINT pointing at tests/fakes/hub.py, which
answers the calls huggingface_hub really makes (repo creation, preupload, the git-LFS
upload, the NDJSON commit, tree listing, downloads); xet is off (HF_HUB_DISABLE_XET=1).
What was pushed is downloaded into a fresh cache and loaded with transformers'
``pipeline``, and ``generate OWNER/NAME`` finds the memorization guard there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from demo_run import demo_run
from fakes.hub import FakeHub, User

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.runs import RunDir
from huggingtweets.publish.hub import PushOptions, commit_message, is_model_file, model_files

TOKEN = "hf_pushTestTokenOfAlice0123456789abcd"
BOB = "hf_pushTestTokenOfBob0123456789abcdef"
READ_ONLY = "hf_pushTestTokenReadOnly0123456789ab"
MODEL_FILES = {
    "README.md",
    "avatar-1.png",
    "avatar-2.png",
    "config.json",
    "generation_config.json",
    "loss_curve.png",
    "memorization_guard.safetensors",
    "model.safetensors",
    "preview.png",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def hub():
    users = {
        TOKEN: User("alice", ("bots",)),
        BOB: User("bob"),
        READ_ONLY: User("carol", (), "read"),
    }
    with FakeHub(users) as server:
        yield server


def _env(hub: FakeHub | str, home: Path, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(
        HF_ENDPOINT=hub.url if isinstance(hub, FakeHub) else hub,
        HF_HOME=str(home),  # no login file of the machine's: only the token given here
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def _run(*args: object, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )


def _cli(*args: object, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return _run("-m", "huggingtweets", *args, env=env, timeout=timeout)


def _fails(proc: subprocess.CompletedProcess, fragment: str) -> str:
    """Exit 2 with one error line that holds ``fragment`` (after the progress shown)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    assert fragment in errors[0], errors[0]
    return errors[0]


def _copy_run(demo, target: Path) -> Path:
    """The demo's run (posts/, dataset/, model/ with its card) plus files that must never
    be pushed: someone's notes in model/, a pickle, a subfolder."""
    shutil.copytree(demo.run_dir, target)
    (target / "model" / "notes.txt").write_text("my private notes")
    (target / "model" / "training_args.bin").write_bytes(b"\x80\x04pickle")
    (target / "model" / "extra").mkdir()
    (target / "model" / "extra" / "config.json").write_text("{}")
    return target


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """One push of the demo's bot to alice/rj, whose card names huggingtweets/romeo-juliet."""
    run = _copy_run(demo_run(tmp_path_factory), tmp_path_factory.mktemp("push") / "rj")
    home = tmp_path_factory.mktemp("hf-home")
    before = len(hub.requests)
    proc = _cli("push", run, "--repo-id", "alice/rj", env=_env(hub, home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, proc, hub.requests[before:]


# -- what a push publishes ---------------------------------------------------------------


def test_push_publishes_the_model_files_and_nothing_else(hub, pushed):
    run, proc, _ = pushed
    files = hub.files("alice/rj")
    assert set(files) == MODEL_FILES | {".gitattributes"}
    for name in MODEL_FILES:
        assert files[name] == (run / "model" / name).read_bytes(), name
    assert f"Pushed {len(MODEL_FILES)} files to {hub.url}/alice/rj" in proc.stdout
    # Exactly one commit, saying what was trained.
    history = hub.history("alice/rj")
    assert [c.summary for c in history[:-1]] == ["initial commit"]
    commit = history[-1]
    assert commit.summary == "Bot of @romeo & @juliet: tiny fine-tuned for 1 epoch, " + (
        f"validation loss {json.loads((run / 'metrics.json').read_text())['eval_loss_after']:.4f}"
    )
    assert "posts kept" in commit.description and "huggingtweets" in commit.description


def test_posts_and_dataset_never_leave_the_machine(hub, pushed):
    run, _, requests = pushed
    sent = b"".join(r.body for r in requests)
    for private in ("posts", "dataset"):
        for path in (run / private).iterdir():
            assert path.name.encode() not in sent
    # A kept post's text is nowhere in what was sent (the card's samples are generated).
    post = json.loads((run / "dataset" / "train.jsonl").read_text().splitlines()[0])["text"]
    assert post.encode() not in sent
    assert b"my private notes" not in sent and b"pickle" not in sent


def test_weights_go_through_lfs_in_one_commit(hub, pushed):
    _, _, requests = pushed
    paths = [f"{r.method} {r.path}" for r in requests]
    assert sum(p.startswith("POST /api/models/alice/rj/commit/main") for p in paths) == 1
    assert any(p.endswith(".git/info/lfs/objects/batch") for p in paths)
    commit = next(r for r in requests if r.path.startswith("/api/models/alice/rj/commit/"))
    lines = [json.loads(line) for line in commit.body.splitlines()]
    lfs = {line["value"]["path"] for line in lines if line["key"] == "lfsFile"}
    assert {"model.safetensors", "memorization_guard.safetensors", "preview.png"} <= lfs


def test_the_card_names_the_repository_it_is_in(hub, pushed):
    run, proc, _ = pushed
    card = hub.files("alice/rj")["README.md"].decode()
    assert card == (run / "model" / "README.md").read_text()  # written again, then pushed
    assert "thumbnail: https://huggingface.co/alice/rj/resolve/main/preview.png" in card
    assert "model='alice/rj'" in card and "huggingtweets generate alice/rj" in card
    assert "https://huggingface.co/alice/rj/resolve/main/avatar-1.png" in card
    assert "huggingtweets/romeo-juliet" not in card
    assert "writing the model card for alice/rj" in proc.stderr


def test_the_token_is_never_shown_sent_in_a_body_or_written(hub, pushed):
    run, proc, requests = pushed
    assert TOKEN not in proc.stdout + proc.stderr
    for request in requests:
        assert TOKEN.encode() not in request.body, request.path
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert TOKEN not in json.dumps(headers), request.path
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in requests[:3])
    for path in run.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_what_was_pushed_loads_from_a_fresh_cache_with_pipeline(hub, pushed, tmp_path):
    code = (
        "import json, os\n"
        "from huggingface_hub import snapshot_download\n"
        "from transformers import pipeline\n"
        "folder = snapshot_download('alice/rj')\n"
        "generator = pipeline('text-generation', model='alice/rj')\n"
        "out = generator('My dream is', max_new_tokens=8, do_sample=False)\n"
        "print(json.dumps({'files': sorted(os.listdir(folder)), 'text': out[0]['generated_text']}))"
    )
    proc = _run("-c", code, env=_env(hub, tmp_path / "fresh", token=None))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["files"]) == MODEL_FILES | {".gitattributes"}
    assert out["text"].startswith("My dream is")


def test_generate_with_the_hub_id_finds_the_guard(hub, pushed, tmp_path):
    env = _env(hub, tmp_path / "fresh", token=None)
    proc = _cli("generate", "alice/rj", "My dream is", "-n", "2", "--seed", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["checked"] is True and len(out["samples"]) == 2
    assert any(r.path.endswith("/memorization_guard.safetensors") for r in hub.seen("GET"))


# -- pushing again -------------------------------------------------------------------------


def test_a_repush_updates_the_same_repository(hub, pushed, tmp_path):
    run, _, _ = pushed
    env = _env(hub, tmp_path / "hf")
    card = run / "model" / "README.md"
    card.write_text(card.read_text() + "\nRetrained on Sunday.\n")
    commits = len(hub.history("alice/rj"))
    uploads = len(hub.seen("PUT", "/_lfs/"))
    proc = _cli("push", run, "--repo-id", "alice/rj", env=env)
    assert proc.returncode == 0, proc.stderr
    history = hub.history("alice/rj")
    assert len(history) == commits + 1 and history[-1].parent == history[-2].oid
    assert hub.files("alice/rj")["README.md"].endswith(b"Retrained on Sunday.\n")
    assert len(hub.seen("PUT", "/_lfs/")) == uploads  # unchanged weights are not sent again
    assert "writing the model card" not in proc.stderr  # it already names alice/rj
    # Nothing changed: no empty commit, and it is said (not the library's own words).
    again = _cli("push", run, "--repo-id", "alice/rj", env=env)
    assert again.returncode == 0, again.stderr
    assert len(hub.history("alice/rj")) == commits + 1
    assert "Nothing to push: " in again.stdout and "No files have been" not in again.stderr


def test_default_repository_and_stale_model_files(hub, tmp_path_factory, tmp_path):
    """Without --repo-id: YOUR_NAME/<handles>. Model files an earlier upload left there
    that this model has not (an old shard and its index: loaded with the new weights, they
    would break it) are removed in the same commit; the owner's other files stay."""
    run = _copy_run(demo_run(tmp_path_factory), tmp_path / "rj")
    stale = {
        "model-00001-of-00002.safetensors": b"old shard",
        "model.safetensors.index.json": b"{}",
        "vocab.json": b"{}",
        "notes.md": b"the owner's own file",
    }
    hub.add_repo("alice/romeo-juliet", stale)
    proc = _cli("push", run, env=_env(hub, tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    assert "(and removed 3 left by an earlier push)" in proc.stdout
    files = hub.files("alice/romeo-juliet")
    assert set(files) == MODEL_FILES | {".gitattributes", "notes.md"}
    assert "model='alice/romeo-juliet'" in files["README.md"].decode()


def test_a_branch_and_a_private_repository(hub, pushed, tmp_path):
    run = tmp_path / "rj"
    shutil.copytree(pushed[0], run)
    run_cli("card", run, "--samples", "0", "--repo-id", "bots/secret")  # no rewrite, quicker
    env = _env(hub, tmp_path / "hf")
    # --private on an existing public repository: refused, nothing uploaded.
    commits = len(hub.history("alice/rj"))
    _fails(_cli("push", run, "--repo-id", "alice/rj", "--private", env=env), "is public")
    assert len(hub.history("alice/rj")) == commits
    # A new private repository, on a branch of its own: main keeps only its first commit.
    proc = _cli("push", run, "--repo-id", "bots/secret", "--private", "--revision", "dev", env=env)
    assert proc.returncode == 0, proc.stderr
    assert hub.repos["bots/secret"].private
    assert set(hub.files("bots/secret", "dev")) == MODEL_FILES | {".gitattributes"}
    assert set(hub.files("bots/secret", "main")) == {".gitattributes"}
    assert f"{hub.url}/bots/secret/tree/dev" in proc.stdout
    # Nobody else sees it.
    other = _run(
        "-c",
        "from huggingface_hub import model_info; model_info('bots/secret')",
        env=_env(hub, tmp_path / "bob", token=BOB),
    )
    assert other.returncode != 0 and "RepositoryNotFoundError" in other.stderr


# -- what goes wrong: one line, exit 2, the repository as it was ----------------------------


def test_no_trained_model(hub, tmp_path_factory, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run(tmp_path_factory).run_dir / "dataset", run / "dataset")
    before = len(hub.requests)
    _fails(_cli("push", run, env=_env(hub, tmp_path / "hf")), "has no trained model to push")
    assert len(hub.requests) == before  # said before the token or the network


def test_no_token_a_bad_token_and_a_read_only_one(hub, pushed, tmp_path):
    run, _, _ = pushed
    _fails(
        _cli("push", run, env=_env(hub, tmp_path / "none", token=None)),
        "no Hugging Face token: set HF_TOKEN or run `hf auth login`",
    )
    bad = "hf_notAValidToken0123456789abcdefgh"
    message = _fails(_cli("push", run, env=_env(hub, tmp_path / "bad", token=bad)), "(401")
    assert bad not in message
    _fails(_cli("push", run, env=_env(hub, tmp_path / "ro", token=READ_ONLY)), "is read-only")


def test_a_repository_the_token_cannot_write(hub, pushed, tmp_path):
    run, _, _ = pushed
    env = _env(hub, tmp_path / "hf")
    commits = len(hub.history("alice/rj"))
    # Not your namespace, nor one of your organizations: refused before any upload.
    message = _fails(_cli("push", run, "--repo-id", "bob/rj", env=env), "alice cannot write")
    assert "--repo-id alice/rj" in message
    # The Hub itself refuses (a token without write access to the org): 403, nothing sent.
    hub.fail("POST", "/api/repos/create", 403)
    message = _fails(_cli("push", run, "--repo-id", "bots/rj2", env=env), "403 Forbidden")
    assert "the repository was not changed" in message and "bots/rj2" not in hub.repos
    # The Hub refuses the upload itself: 403, the repository as it was.
    card = run / "model" / "README.md"
    card.write_text(card.read_text() + "\nA change to push.\n")
    files = hub.files("alice/rj")
    hub.fail("POST", "/api/models/alice/rj/preupload/", 403)
    message = _fails(_cli("push", run, "--repo-id", "alice/rj", env=env), "403 Forbidden")
    assert "use a token with write access to alice" in message
    assert hub.files("alice/rj") == files and len(hub.history("alice/rj")) == commits


def _model_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (run / "model").iterdir() if p.is_file()}


def test_a_failed_or_interrupted_push_leaves_no_repository_and_the_card_as_it_was(
    hub, pushed, tmp_path
):
    """A new repository made by a push that then fails (refused upload) or is stopped
    (Ctrl-C during the upload) is deleted again, and the card it rewrote to name that
    repository is put back; the next push publishes it, evaluation.png included."""
    run = tmp_path / "rj"
    shutil.copytree(pushed[0], run)
    (run / "model" / "evaluation.png").write_bytes(b"\x89PNG\r\n\x1a\n evaluation picture")
    before = _model_files(run)
    env = _env(hub, tmp_path / "hf")
    hub.fail("POST", "/api/models/alice/fresh/preupload/", 403)
    _fails(_cli("push", run, "--repo-id", "alice/fresh", env=env), "403 Forbidden")
    assert "alice/fresh" not in hub.repos and _model_files(run) == before

    hub.fail("POST", "/api/models/alice/fresh/preupload/", "hang")
    seen = len(hub.seen("POST", "/api/models/alice/fresh/preupload/"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", "push", run, "--repo-id", "alice/fresh"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(hub.seen("POST", "/api/models/alice/fresh/preupload/")) == seen:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "alice/fresh" not in hub.repos and _model_files(run) == before

    # A new branch of an existing repository: removed again too.
    hub.fail("POST", "/api/models/alice/rj/preupload/", 403)
    _fails(_cli("push", run, "--repo-id", "alice/rj", "--revision", "gone", env=env), "403")
    assert "gone" not in hub.repos["alice/rj"].branches

    proc = _cli("push", run, "--repo-id", "alice/fresh", env=env)
    assert proc.returncode == 0, proc.stderr
    files = hub.files("alice/fresh")
    assert files["evaluation.png"] == before["evaluation.png"]
    assert "model='alice/fresh'" in files["README.md"].decode()


def test_a_connection_lost_during_the_commit_leaves_the_repository_as_it_was(hub, pushed, tmp_path):
    run, _, _ = pushed
    card = run / "model" / "README.md"
    card.write_text(card.read_text() + "\nOne more line.\n")
    files, commits = hub.files("alice/rj"), len(hub.history("alice/rj"))
    hub.fail("POST", "/api/models/alice/rj/commit/", "drop")
    message = _fails(
        _cli("push", run, "--repo-id", "alice/rj", env=_env(hub, tmp_path / "hf")),
        "cannot reach the Hugging Face Hub",
    )
    assert "the repository was not changed" in message
    assert hub.files("alice/rj") == files and len(hub.history("alice/rj")) == commits


def test_an_unreachable_hub(hub, pushed, tmp_path):
    """One short whoami, no retries: a Hub that answers 503 is asked once; one that
    accepts the connection and never answers gets one connection, which times out."""
    run, _, _ = pushed
    before = len(hub.requests)
    hub.fail("GET", "/api/whoami-v2", 503)
    message = _fails(_cli("push", run, env=_env(hub, tmp_path / "hf")), "cannot reach")
    assert "HTTP 503" in message
    assert [(r.method, r.path) for r in hub.requests[before:]] == [("GET", "/api/whoami-v2")]

    with socket.create_server(("127.0.0.1", 0)) as silent, _never_answering(silent) as sent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        message = _fails(_cli("push", run, env=_env(url, tmp_path / "hf")), "cannot reach")
        # The CLI has ended: every connection it made is in, each with its request line.
        assert "timed out" in message and sent() == [b"GET /api/whoami-v2 HTTP/1.1"]


@contextlib.contextmanager
def _never_answering(listener: socket.socket) -> Iterator[Callable[[], list[bytes]]]:
    """Connections to ``listener`` accepted and held open, never answered; yields a
    function that stops accepting and returns the request line sent on each connection
    (one item a connection: how many were made), closed at the end."""
    connections: list[socket.socket] = []
    done = threading.Event()
    listener.settimeout(0.1)

    def accept() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                connections.append(listener.accept()[0])

    def request_lines() -> list[bytes]:
        done.set()
        thread.join()
        listener.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # any still waiting in the backlog
                connections.append(listener.accept()[0])
        lines = []
        for connection in connections:
            connection.settimeout(5)
            lines.append(connection.recv(65536).split(b"\r\n", 1)[0])
        return lines

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield request_lines
    finally:
        done.set()
        thread.join()
        for connection in connections:
            connection.close()


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` cannot be written: chmod a-w; as root, who ignores that, also chattr +i
    (the immutable flag, which binds root too); skipped where neither holds."""
    mode = folder.stat().st_mode
    folder.chmod(mode & ~0o222)
    immutable = False
    try:
        if _writable(folder) and shutil.which("chattr"):
            immutable = (
                subprocess.run(["chattr", "+i", folder], capture_output=True).returncode == 0
            )
        if _writable(folder):
            pytest.skip(f"cannot make a folder read-only here (user {os.getuid()}, no chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", folder], check=True)
        folder.chmod(mode)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except PermissionError:
        return False
    (folder / ".probe").unlink()
    return True


def test_a_read_only_run_folder_is_not_an_unreachable_hub(hub, pushed, tmp_path):
    """The card a push rewrites cannot be written: said as the folder, named, not as the
    Hub; a card that names the repository already needs no writing, and pushes."""
    run = tmp_path / "rj"
    shutil.copytree(pushed[0], run)
    before = _model_files(run)
    env = _env(hub, tmp_path / "hf")
    with _read_only(run / "model"):
        proc = _cli("push", run, "--repo-id", "alice/readonly", env=env)
        message = _fails(proc, f"cannot write the model card in {run / 'model'} (")
        assert "cannot reach" not in proc.stderr and "could not undo" not in proc.stderr
        assert message.endswith(
            f"): the push writes it there to name alice/readonly; make the folder writable "
            f"(chmod u+w {run / 'model'}) and push again; the repository was not changed"
        )
        assert "alice/readonly" not in hub.repos and _model_files(run) == before
        assert _cli("push", run, "--repo-id", "alice/rj", env=env).returncode == 0


@pytest.mark.parametrize("where", ["model/README.md", "model/preview.png", "metrics.json"])
def test_a_folder_where_a_card_file_goes_is_named_not_a_read_only_folder(
    hub, pushed, tmp_path, where
):
    """A folder at the card's place (or its picture's, or at metrics.json, which the card
    reads): the folder is named, not "make the folder writable (chmod u+w ...)", which
    would not help; nothing is pushed."""
    run = tmp_path / "rj"
    shutil.copytree(pushed[0], run)
    folder = run / where
    folder.unlink()
    folder.mkdir()
    proc = _cli("push", run, "--repo-id", "alice/folder-card", env=_env(hub, tmp_path / "hf"))
    message = _fails(proc, f"cannot write the model card in {run / 'model'}: {folder} is ")
    assert message.endswith(
        f"{folder} is a folder where a file belongs: move it out of the way and push "
        "again; the repository was not changed"
    )
    assert "chmod" not in message and "alice/folder-card" not in hub.repos
    assert folder.is_dir()


@pytest.mark.parametrize(
    ("code", "says", "not_says"),
    [
        (errno.ENOSPC, "(No space left on device): the push writes it there to name alice/full; "
             "free some space on the disk of {model}", "chmod"),  # ENOSPC
        (errno.EDQUOT, "free some space on the disk of {model}", "chmod"),  # EDQUOT
        (errno.EACCES, "make the folder writable (chmod u+w {model})", "free some space"),  # EACCES
        (errno.EIO, "(Input/output error): the push writes it there to name alice/full; fix that",
         "chmod"),  # EIO: the OS's words, no advice that would not help
    ],
)  # fmt: skip
def test_a_card_that_cannot_be_written_is_said_by_why(
    tmp_path, tmp_path_factory, monkeypatch, code, says, not_says
):
    """The card a push rewrites cannot be written: a full disk (or quota) says to free
    space, not "chmod u+w"; a refused write says to make the folder writable; anything
    else is said in the OS's words. The card is left as it was."""
    from huggingtweets.core.events import Reporter
    from huggingtweets.publish.hub import Pusher
    from huggingtweets.publish.hub_client import Undo

    run = shutil.copytree(demo_run(tmp_path_factory).run_dir, tmp_path / "rj")
    before = _model_files(run)

    def no_space(fd: int) -> None:  # where a full disk shows: the data reaching the disk
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", no_space)
    pusher = Pusher(PushOptions(), "alice", None, Reporter())
    with pytest.raises(HuggingtweetsError) as caught:
        pusher._rewrite_card(RunDir(run), "alice/full", Undo(pusher.reporter))
    message = str(caught.value)
    assert message.startswith(f"cannot write the model card in {run / 'model'} (")
    assert says.format(model=run / "model") in message, message
    assert not_says not in message, message
    assert message.endswith("and push again; the repository was not changed")
    monkeypatch.undo()
    assert _model_files(run) == before


def test_an_os_error_naming_a_path_is_this_machine_s_not_the_network_s():
    """A file that cannot be read or a folder that cannot be written, wherever in a push
    it happens, is not said as "cannot reach the Hub"; a refused connection is."""
    import errno

    from huggingtweets.publish.hub_client import is_transport_error

    for local in (
        PermissionError(errno.EACCES, "Permission denied", "/runs/me/model/model.safetensors"),
        OSError(errno.EROFS, "Read-only file system", "/runs/me/model/.README.md.tmp"),
    ):
        wrapped = RuntimeError("upload failed")
        wrapped.__cause__ = local
        assert not is_transport_error(local) and not is_transport_error(wrapped)
    assert is_transport_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert is_transport_error(TimeoutError("timed out"))


def test_a_password_in_hf_endpoint_is_never_shown(hub, pushed, tmp_path):
    """HF_ENDPOINT=http://user:pw@host: the line that names the Hub shows it without them."""
    run, _, _ = pushed
    password = "endpointPassw0rd"
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = f"http://hubuser:{password}@127.0.0.1:{s.getsockname()[1]}"
    proc = _cli("push", run, env=_env(closed, tmp_path / "hf"))
    message = _fails(proc, "cannot reach the Hugging Face Hub (http://127.0.0.1:")
    assert password not in proc.stdout + proc.stderr and "hubuser" not in message


def test_urls_are_shown_without_userinfo():
    from huggingtweets.core.secrets import redact, shown_url

    assert shown_url("http://u:pw@host:1/x?a=b@c") == "http://host:1/x?a=b@c"
    assert shown_url("see (https://u:p@ss@h.co/a): x") == "see (https://h.co/a): x"
    assert (
        shown_url("mail me@example.org, https://h.co/a@b")
        == "mail me@example.org, https://h.co/a@b"
    )
    assert redact("for url: http://user:secret@127.0.0.1/api") == "for url: http://127.0.0.1/api"


def test_bad_options_are_refused_before_anything(hub, pushed, tmp_path):
    run, _, _ = pushed
    env = _env(hub, tmp_path / "hf")
    before = len(hub.requests)
    _fails(_cli("push", run, "--repo-id", "a/b/c", env=env), "--repo-id 'a/b/c' is not a valid")
    _fails(_cli("push", run, "--revision", "no..good", env=env), "--revision must be a branch")
    assert len(hub.requests) == before


def test_a_token_pasted_as_the_repo_id_is_refused_and_never_shown(hub, pushed, tmp_path):
    """The id would be printed in the success line and written into the card: refused
    before anything, the token in no message, the card untouched."""
    run, _, _ = pushed
    env = _env(hub, tmp_path / "hf", token=TOKEN)
    env["X_BEARER_TOKEN"] = x_token = "AAAAAAAAAAAAAAAAAAAAXbearerOfTheTest123"
    card = (run / "model" / "README.md").read_bytes()
    before = len(hub.requests)
    for repo_id in (TOKEN, f"alice/{TOKEN}", f"alice/bot-{x_token}"):
        proc = _cli("push", run, "--repo-id", repo_id, env=env)
        message = _fails(proc, "--repo-id holds a configured secret")
        assert TOKEN not in proc.stdout + proc.stderr and x_token not in proc.stdout + proc.stderr
        assert "***" not in message  # not even masked: the id is not repeated
    assert len(hub.requests) == before
    assert (run / "model" / "README.md").read_bytes() == card


def test_the_success_lines_are_redacted(monkeypatch, tmp_path):
    """Whatever a push reports back is shown as error lines are: secrets blanked."""
    from huggingtweets.publish import hub as hub_module
    from huggingtweets.publish.hub import PushResult

    secret = "hf_successLineSecret0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", secret)
    result = PushResult(
        f"alice/{secret}", "main", f"http://hub/alice/{secret}", "c", "abcdef1", ("a",), (), False
    )
    monkeypatch.setattr(hub_module, "push_run", lambda *a, **k: result)
    out = run_cli("push", tmp_path)
    assert secret not in out.stdout and "***" in out.stdout


# -- train --push-to-hub ------------------------------------------------------------------


@pytest.mark.slow
def test_train_push_to_hub(hub, tmp_path):
    env = _env(hub, tmp_path / "hf")
    common = ("sample:romeo", "--base-model", "tiny", "--max-steps", "2", "--push-to-hub")
    # Without a token: said before anything is collected or trained.
    no_token = _env(hub, tmp_path / "none", token=None)
    _fails(
        _cli("train", *common, "--out", tmp_path / "first", env=no_token), "no Hugging Face token"
    )
    assert not (tmp_path / "first").exists()

    run = tmp_path / "romeo"
    proc = _cli("train", *common, "--hub-model-id", "romeo-bot", "--out", run, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = hub.files("alice/romeo-bot")  # NAME alone: in your namespace
    assert {"model.safetensors", "README.md", "memorization_guard.safetensors"} <= set(files)
    assert not any(p.startswith(("posts", "dataset")) for p in files)
    assert "model='alice/romeo-bot'" in files["README.md"].decode()
    assert "writing the model card for" not in proc.stderr  # written for it the first time
    assert f"Pushed to {hub.url}/alice/romeo-bot" in proc.stdout
    assert "huggingtweets generate alice/romeo-bot" in proc.stdout
    _fails(
        _cli("train", run, "--base-model", "tiny", "--private", env=env),
        "--private and --revision apply with --push-to-hub",
    )


# -- the pieces, without a Hub ------------------------------------------------------------


def test_only_model_files_are_chosen(tmp_path):
    names = [
        "config.json", "model.safetensors", "model-00001-of-00002.safetensors", "tokenizer.json",
        "README.md", "avatar-2.png", "notes.txt", "pytorch_model.bin", "training_args.bin",
        "optimizer.pt", "trainer_state.json", "stats.json", ".env",
    ]  # fmt: skip
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoints").mkdir()
    assert model_files(tmp_path) == sorted(
        ["README.md", "avatar-2.png", "config.json", "model-00001-of-00002.safetensors",
         "model.safetensors", "tokenizer.json"]
    )  # fmt: skip
    assert not is_model_file("posts/romeo.jsonl") and not is_model_file("dataset/train.jsonl")
    (tmp_path / "tokenizer_config.json").symlink_to("/etc/passwd")
    with pytest.raises(HuggingtweetsError, match="symbolic link"):
        model_files(tmp_path)


def test_push_options_are_checked():
    assert PushOptions(hub_model_id="me/bot", hub_revision="feature/x").revision == "feature/x"
    assert PushOptions().revision == "main"
    for field, value in (("hub_model_id", "a/b/c"), ("hub_model_id", ""), ("hub_revision", "a b")):
        with pytest.raises(OptionError) as error:
            PushOptions(**{field: value})
        assert error.value.name == field


def test_commit_message_without_metrics(tmp_path):
    (tmp_path / "dataset").mkdir()
    summary, description = commit_message(RunDir(tmp_path))
    assert summary == f"Bot of {tmp_path.name}" and "huggingtweets" in description
