"""`huggingtweets push RUN_DIR --space` against the fake Hub, then the Space's app.py
started as a Space starts it (``python app.py``) and asked for posts through Gradio's
client: it loads the pushed model from the (fake) Hub with transformers, and flags what
huggingtweets' memorization guard flags."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import yaml  # noqa: E402
from fakes.hub import FakeHub, User  # noqa: E402

from huggingtweets.model.memorization import MemorizationGuard, build_guard  # noqa: E402
from huggingtweets.model.tiny import build_tiny_base  # noqa: E402
from huggingtweets.publish.space import (  # noqa: E402
    PACKAGE,
    PACKAGE_DIR,
    app_source,
    check_space_id,
    vendored_files,
)
from huggingtweets.train.recipe import save_model  # noqa: E402

TOKEN = "hf_spaceTestTokenOfAlice0123456789abc"
PUSH = (sys.executable, "-m", "huggingtweets", "push")
TRAINING = [
    "My dream is a quiet house by the sea with a garden full of roses",
    "O Romeo, Romeo! wherefore art thou Romeo? Deny thy father and refuse thy name",
    "夢は海のそばの静かな家に住むことです",
    "ความฝันของฉันคือบ้านที่เงียบสงบริมทะเล",
]
# What the Space's check is asked about: copies, partial copies, and fresh text.
CHECKED = [
    TRAINING[0],
    "Yesterday: wherefore art thou Romeo? Deny thy father and refuse, said she",
    "夢は海のそばの静かな家に住むことです",
    "私の夢は海のそばの静かな家に住むことかな",
    "ความฝันของฉันคือบ้านที่เงียบสงบ",
    "A quiet afternoon, nothing copied here at all my friend",
]


class SpaceHub(FakeHub):
    """The fake Hub with Spaces beside models: ``/api/spaces/...`` and ``/spaces/...``
    answered as the model routes are, from a store of their own (a Space may share its
    model's OWNER/NAME, as on the Hub)."""

    def __init__(self, tokens):
        self._kind = threading.local()
        self._stores: dict[str, dict] = {"model": {}, "space": {}}
        self.created: list[dict] = []
        super().__init__(tokens)

    @property
    def repos(self):
        return self._stores["space" if getattr(self._kind, "space", False) else "model"]

    @repos.setter
    def repos(self, value):
        self._stores["model"] = value

    def _answer(self, method, path, query, headers, body):
        space = path.startswith(("/api/spaces/", "/spaces/"))
        if path == "/api/repos/create":
            data = json.loads(body)
            self.created.append(data)
            space = data.get("type") == "space"
        if path == "/api/repos/delete":
            space = json.loads(body).get("type") == "space"
        if path.startswith("/api/spaces/"):
            path = "/api/models/" + path[len("/api/spaces/") :]
        elif path.startswith("/spaces/"):
            path = path[len("/spaces") :]
        self._kind.space = space
        try:
            return super()._answer(method, path, query, headers, body)
        finally:
            self._kind.space = False

    def space_files(self, repo_id: str) -> dict[str, bytes]:
        self._kind.space = True
        try:
            return self.files(repo_id)
        finally:
            self._kind.space = False


@pytest.fixture(scope="module")
def hub():
    with SpaceHub({TOKEN: User("alice", ("bots",))}) as server:
        yield server


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with a tiny trained-like model (the original's sampling settings in its
    config), its guard, a card naming alice/bot, and the accounts' statistics."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("space") / "bot"
    model_dir = run / "model"
    build_tiny_base(TRAINING * 10, model_dir, vocab_size=300, n_layer=2, n_head=2, n_embd=32)
    save_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        AutoTokenizer.from_pretrained(model_dir),
        model_dir,
    )
    build_guard(TRAINING, model_dir)
    (model_dir / "README.md").write_text(
        "---\nthumbnail: https://huggingface.co/alice/bot/resolve/main/preview.png\n---\n# bot\n"
    )
    (run / "dataset").mkdir()
    (run / "dataset" / "stats.json").write_text(
        json.dumps({"accounts": [{"handle": "romeo", "platform": "x", "kept": 40}]})
    )
    return run


def _env(hub: FakeHub, home, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def pushed(hub, run_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("hf-home")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "huggingtweets",
            "push",
            run_dir,
            "--repo-id",
            "alice/bot",
            "--space",
        ],
        env=_env(hub, home, HF_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_push_space_commits_the_space_files(hub, pushed):
    assert f"Space: {hub.url}/spaces/alice/bot" in pushed.stdout
    files = hub.space_files("alice/bot")
    vendored = vendored_files()
    assert set(files) == {".gitattributes", "app.py", "requirements.txt", "README.md", *vendored}
    assert "model.safetensors" in hub.files("alice/bot")  # the model, pushed first
    space = [c for c in hub.created if c.get("type") == "space"]
    assert len(space) == 1 and space[0]["sdk"] == "gradio" and space[0]["name"] == "bot"
    assert sum("/api/spaces/alice/bot/commit/main" in r.path for r in hub.requests) == 1
    readme = files["README.md"].decode()
    meta = yaml.safe_load(readme.split("---\n")[1])
    import gradio

    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__
    assert meta["models"] == ["alice/bot"] and meta["title"] == "Bot of @romeo" and meta["emoji"]
    assert files["app.py"].decode() == app_source("alice/bot")
    assert b"transformers" in files["requirements.txt"]
    for name in ("numpy", "safetensors", "orjson", "msgspec"):  # what the guard's modules import
        assert name.encode() in files["requirements.txt"]
    for content in files.values():  # the token is in no file
        assert TOKEN.encode() not in content and not re.search(rb"hf_[A-Za-z0-9]{30}", content)


def test_the_space_ships_the_package_s_own_guard(hub, pushed):
    """The Space's memorization check is memorization.py itself, byte for byte, with the
    huggingtweets modules it imports: no second copy of the guard to drift apart."""
    files = hub.space_files("alice/bot")
    guard = "huggingtweets/model/memorization.py"
    assert files[guard] == (PACKAGE_DIR / "model" / "memorization.py").read_bytes()
    # and the decoding that drops the broken characters a byte-level model can write
    decoding = "huggingtweets/generate/text.py"
    assert files[decoding] == (PACKAGE_DIR / "generate" / "text.py").read_bytes()
    assert b"from huggingtweets.generate.text import PostDecoder" in files["app.py"]
    assert b"tokenizer.decode(" not in files["app.py"]
    for name, content in files.items():
        if name.startswith("huggingtweets/") and not name.endswith("__init__.py"):
            assert content == (PACKAGE_DIR.parent / name).read_bytes(), name
    imported = {"huggingtweets/core/textrules.py", "huggingtweets/core/errors.py"}
    assert imported <= set(files)
    # Only the guard's modules travel, not the whole package (its __init__ imports every stage).
    assert "huggingtweets/train/recipe.py" not in files
    assert b"import" not in files["huggingtweets/__init__.py"]
    app = files["app.py"].decode()
    assert "from huggingtweets.model.memorization import GUARD_FILE, MemorizationGuard" in app
    assert "blake2b" not in app and "class Guard" not in app


def test_a_bad_space_id_is_refused_before_any_push(hub, run_dir, tmp_path):
    before = len(hub.requests)
    proc = subprocess.run(
        [sys.executable, "-m", "huggingtweets", "push", run_dir, "--space", "no/such/space"],
        env=_env(hub, tmp_path, HF_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a valid Space id" in proc.stderr
    assert len(hub.requests) == before
    assert check_space_id("bot-demo") == "owner/bot-demo"


def test_a_space_namespace_refused_publishes_nothing(hub, run_dir, tmp_path):
    """--space in a namespace not yours: refused before the model's repository is made."""
    before = len(hub.requests)
    proc = subprocess.run(
        [*PUSH, run_dir, "--repo-id", "alice/unpushed", "--space", "bob/demo"],
        env=_env(hub, tmp_path, HF_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "alice cannot write to the Space bob/demo" in proc.stderr
    assert "alice/unpushed" not in hub.repos
    assert [r.method for r in hub.requests[before:]] == ["GET"]  # whoami, and nothing else


def test_a_failed_space_commit_leaves_no_empty_space(hub, pushed, run_dir, tmp_path):
    hub.fail("POST", "/api/spaces/alice/lost-space/commit/", 500)
    proc = subprocess.run(
        [*PUSH, run_dir, "--repo-id", "alice/bot", "--space", "lost-space"],
        env=_env(hub, tmp_path, HF_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert any(c.get("name") == "lost-space" for c in hub.created)  # it was made, then
    hub._kind.space = True
    try:
        assert "alice/lost-space" not in hub.repos  # deleted again
    finally:
        hub._kind.space = False


def test_the_space_uses_only_the_public_names_of_publish_hub():
    """space.py reaches into hub.py through its public names only (no ``_private``)."""
    import ast

    tree = ast.parse((PACKAGE_DIR / "publish" / "space.py").read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def space_folder(hub, pushed, tmp_path_factory) -> Path:
    """The Space's committed files, as a Space checks them out."""
    folder = tmp_path_factory.mktemp("space-app")
    for name, content in hub.space_files("alice/bot").items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def space_app(hub, space_folder):
    """The committed app.py, run as a Space runs it, against the fake Hub (no token: the
    model is public)."""
    folder = space_folder
    port = _free_port()
    log = open(folder / "log.txt", "w+")  # noqa: SIM115 - read back on failure
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=folder,
        env=_env(hub, folder / "hf-home", GRADIO_SERVER_PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                log.seek(0)
                assert proc.poll() is None, log.read()
                assert time.monotonic() < deadline, log.read()
                time.sleep(0.3)
        yield gradio_client.Client(url, verbose=False)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _rows(answer) -> list[list[str]]:
    return answer["data"] if isinstance(answer, dict) else answer


def test_the_space_app_writes_ten_posts_from_the_pushed_model(hub, space_app):
    rows = _rows(space_app.predict("My dream is", api_name="/generate"))
    assert len(rows) == 10
    for text, check in rows:
        assert text.startswith("My dream is") and "\n" not in text
        assert check == "ok" or check.startswith("copy: ")
    # It downloaded the model and its guard from the Hub.
    paths = {r.path for r in hub.seen("GET", "/alice/bot/resolve/")}
    assert any(p.endswith("model.safetensors") for p in paths)
    assert any(p.endswith("memorization_guard.safetensors") for p in paths)


def test_the_space_flags_what_the_guard_flags(run_dir, space_app, space_folder):
    """A prompt with a line break makes every sample its first line: so the app's check
    is asked about exactly these texts, and must answer as MemorizationGuard does."""
    guard = MemorizationGuard.load(run_dir / "model")
    # `python app.py` imports the guard shipped beside it, not this installed package.
    where = subprocess.run(
        [sys.executable, "-c", "import huggingtweets.model.memorization as m; print(m.__file__)"],
        cwd=space_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(space_folder)
    for text in CHECKED:
        expected = guard.check(text)
        rows = _rows(space_app.predict(text + "\nmore", api_name="/generate"))
        assert [r[0] for r in rows] == [text] * 10
        wanted = f"copy: {expected.describe()}" if expected else "ok"
        assert {r[1] for r in rows} == {wanted}, text
    assert sum(guard.check(t) is not None for t in CHECKED) >= 4  # copies were asked about
