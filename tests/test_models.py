"""Loading base/trained models: local folders, the Hub cache, an unreachable or fake Hub.

The Hub's address and offline mode are read by huggingface_hub at import time, so those
cases run the real CLI in a subprocess with the environment a user would set.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from huggingtweets.collect.registry import read_source
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.loading import load_causal_lm, load_tokenizer, make_readable, resolve_model
from huggingtweets.model.memorization import build_guard
from huggingtweets.model.tiny import EOS, build_tiny_base


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    texts = [p.text for p in read_source("sample:romeo").posts]
    return build_tiny_base(texts, tmp_path_factory.mktemp("tiny") / "model", n_layer=1)


@pytest.fixture(scope="module")
def pickle_only(tiny_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pickle") / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, folder / name)
    torch.save(load_file(str(tiny_dir / "model.safetensors")), folder / "pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "romeo"
    run_cli("prepare", "sample:romeo", "--out", run)
    return run


def _cli(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "huggingtweets", *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _python(code: str, *args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _hub_cache(root: Path, repo_id: str, model_dir: Path) -> Path:
    """The Hugging Face cache layout (hub/models--o--n/{refs,snapshots}) holding a model."""
    repo = root / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    return root


class _FakeHub(BaseHTTPRequestHandler):
    """/api/models/<id> as the Hub answers it: 404 for unknown ids, the file list else."""

    repos: ClassVar[dict[str, list[str]]] = {
        "someone/pickled": ["config.json", "pytorch_model.bin"]
    }

    def do_GET(self):
        repo_id = self.path.removeprefix("/api/models/").split("?")[0]
        files = self.repos.get(repo_id)
        if files is None:
            body, status = b'{"error": "Repository not found"}', 404
        else:
            siblings = [{"rfilename": f} for f in files]
            body, status = json.dumps({"id": repo_id, "siblings": siblings}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _DownHub(BaseHTTPRequestHandler):
    """A Hub that is down: 503 to every request, each one kept. huggingface_hub retries a
    503 (hf_hub_download: 7 tries in 24 s here), so a retry shows as a request counted,
    where the clock measured the machine's load as well."""

    paths: list[str]

    def _down(self):
        self.paths.append(self.path)
        body = b'{"error": "Service Unavailable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _down

    def log_message(self, *args):
        pass


@dataclass
class DownHub:
    url: str
    paths: list[str]

    def asked(self, repo_id: str) -> list[str]:
        """The requests about ``repo_id`` (huggingface_hub asks for lists of its own)."""
        return [path for path in self.paths if f"/{repo_id}" in path]


@pytest.fixture
def down_hub():
    handler = type("Handler", (_DownHub,), {"paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield DownHub(f"http://127.0.0.1:{server.server_address[1]}", handler.paths)
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- local folders --------------------------------------------------------------


def test_tiny_folder_loads_like_any_base(tiny_dir):
    tokenizer = load_tokenizer(tiny_dir)
    model = load_causal_lm(str(tiny_dir))
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == EOS
    assert type(tokenizer).__name__ == "GPT2Tokenizer"
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    ids = tokenizer(EOS + "Romeo, wherefore art thou? ☃")["input_ids"]
    assert ids[0] == tokenizer.eos_token_id  # the special token, not its characters
    assert tokenizer.decode(ids) == EOS + "Romeo, wherefore art thou? ☃"  # byte-level: lossless


def test_tiny_base_is_deterministic_under_a_seed(tmp_path):
    texts = [p.text for p in read_source("sample:juliet").posts]
    a = build_tiny_base(texts, tmp_path / "a", n_layer=1, seed=3)
    b = build_tiny_base(texts, tmp_path / "b", n_layer=1, seed=3)
    c = build_tiny_base(texts, tmp_path / "c", n_layer=1, seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_tiny_base_files_are_readable_by_others(tmp_path, umask_022):
    texts = [p.text for p in read_source("sample:juliet").posts]
    model = build_tiny_base(texts, tmp_path / "model", n_layer=1)
    # safetensors writes a temporary file (0600 whatever the umask) and renames it.
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in model.iterdir()}
    assert modes["model.safetensors"] == 0o644, modes
    assert set(modes.values()) == {0o644}, modes


def test_make_readable_gives_the_umasks_permissions(tmp_path, umask_022):
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o600  # the cause
    (folder / "sub" / "script.sh").write_text("#!/bin/sh\n")
    (folder / "sub" / "script.sh").chmod(0o700)
    (folder / "sub").chmod(0o700)
    os.umask(0o027)  # a stricter umask is followed too: never more open than it allows
    make_readable(folder)
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o640
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE((folder / "sub" / "script.sh").stat().st_mode) == 0o750
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def test_missing_folder_and_bad_names(tmp_path):
    with pytest.raises(HuggingtweetsError, match="no such folder"):
        resolve_model(tmp_path / "nope")
    with pytest.raises(HuggingtweetsError, match=r"no such folder: \./nope-not-here$"):
        resolve_model("./nope-not-here")
    (tmp_path / "runs" / "me" / "model").mkdir(parents=True)
    typo = r"no such folder: .*/runs/me/modle \(.*/runs/me has no 'modle'; did you mean 'model'\?"
    with pytest.raises(HuggingtweetsError, match=typo):
        resolve_model(str(tmp_path / "runs/me/modle"))
    with pytest.raises(HuggingtweetsError, match="neither a model folder nor a valid"):
        resolve_model("bad name!!")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HuggingtweetsError, match=r"no config\.json"):
        resolve_model(tmp_path / "empty")


def test_pickle_only_folder_is_refused_unless_trusted(pickle_only):
    with pytest.raises(HuggingtweetsError, match="--trust-pickle"):
        load_causal_lm(pickle_only)
    model = load_causal_lm(pickle_only, trust_pickle=True)
    assert type(model).__name__ == "GPT2LMHeadModel"


def test_cli_refuses_pickle_only_base(run_dir, pickle_only):
    result = run_cli("train", run_dir, "--base-model", pickle_only, expect=2)
    assert "pickle" in result.stderr and "--trust-pickle" in result.stderr
    assert "Traceback" not in result.stderr


# -- the Hub: offline, unreachable, fake --------------------------------------------


def test_offline_without_cache_names_the_offline_choices(run_dir, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("train", run_dir, "--base-model", "gpt2", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "HF_HUB_OFFLINE is set" in proc.stderr and "--base-model tiny" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unreachable_hub_fails_fast_with_one_line(run_dir, tmp_path, down_hub):
    env = {"HF_ENDPOINT": down_hub.url, "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("train", run_dir, "--base-model", "gpt2", env=env)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "cannot reach the Hugging Face Hub" in message
    for choice in ("--base-model tiny", "local model folder", "HF_HUB_OFFLINE=1"):
        assert choice in message
    assert down_hub.asked("gpt2") == ["/api/models/gpt2"]  # one probe, not retried


def test_a_refused_connection_is_an_unreachable_hub_too(run_dir, tmp_path):
    """Nothing listens: the same one line (that the one probe is not retried is counted
    above, on a Hub that answers: a refused connection leaves nothing to count)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again on exit: nothing listens there
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("train", run_dir, "--base-model", "gpt2", env=env)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "cannot reach the Hugging Face Hub" in message and "Connection refused" in message


LOAD = (
    "import sys; from huggingtweets.model.loading import load_causal_lm, load_tokenizer;"
    "m = load_causal_lm(sys.argv[1]); t = load_tokenizer(sys.argv[1]);"
    "print(type(m).__name__, t.eos_token)"
)


def test_cached_model_loads_offline_and_when_the_hub_is_unreachable(tiny_dir, tmp_path, down_hub):
    hf_home = _hub_cache(tmp_path / "hf", "someone/tiny", tiny_dir)
    offline = _python(LOAD, "someone/tiny", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)})
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.split() == ["GPT2LMHeadModel", EOS]

    env = {"HF_ENDPOINT": down_hub.url, "HF_HOME": str(hf_home)}
    unreachable = _python(LOAD, "someone/tiny", env=env)
    assert unreachable.returncode == 0, unreachable.stderr
    assert unreachable.stdout.split() == ["GPT2LMHeadModel", EOS]
    # One probe for each of LOAD's two loads (model, tokenizer), then the cache: none
    # retried.
    assert down_hub.asked("someone/tiny") == ["/api/models/someone/tiny"] * 2


def test_generate_from_a_cached_hub_model_offline_uses_its_guard(tiny_dir, tmp_path):
    model = tmp_path / "published"
    shutil.copytree(tiny_dir, model)
    posts = [p.text for p in read_source("sample:romeo").posts]
    build_guard(posts, model)  # as a huggingtweets model on the Hub carries it
    hf_home = _hub_cache(tmp_path / "hf", "someone/bot", model)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    proc = _cli("generate", "someone/bot", "My dream is", "-n", 2, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["checked"] is True and len(out["samples"]) == 2


def test_unknown_id_and_pickle_only_repo_on_a_fake_hub(run_dir, tmp_path, fake_hub):
    env = {"HF_ENDPOINT": fake_hub, "HF_HOME": str(tmp_path / "hf")}
    unknown = _cli("train", run_dir, "--base-model", "someone/no-such-model", env=env)
    assert unknown.returncode == 2, unknown.stderr
    assert "no model 'someone/no-such-model' on the Hugging Face Hub" in unknown.stderr

    pickled = _cli("train", run_dir, "--base-model", "someone/pickled", env=env)
    assert pickled.returncode == 2, pickled.stderr
    assert "pytorch_model.bin" in pickled.stderr and "--trust-pickle" in pickled.stderr
