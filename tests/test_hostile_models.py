"""Hostile model folders, run directories and arguments for ``generate`` and ``card``.

Each is what a damaged download, a hand edit or a stranger's upload can hand us: the
command must end with one actionable line and exit 2, never a traceback (exit 1), a
hang, or a model that loads with random weights and writes noise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli

from huggingtweets.card.model_card import CardOptions, write_card
from huggingtweets.collect.registry import read_source
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.model.loading import resolve_model
from huggingtweets.model.memorization import build_guard
from huggingtweets.model.tiny import build_tiny_base

PROMPT_ARGS = ("My dream is", "-n", "2", "--seed", "1")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [p.text for p in read_source("sample:romeo").posts]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, texts) -> Path:
    model = build_tiny_base(texts, tmp_path_factory.mktemp("tiny") / "model", n_layer=1)
    build_guard(texts, model)
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir) -> Path:
    """A prepared run with the (untrained) tiny model as its model: enough for a card."""
    run = tmp_path_factory.mktemp("runs") / "romeo"
    run_cli("prepare", "sample:romeo", "--out", run)
    shutil.copytree(tiny_dir, run / "model")
    return run


def one_line_error(result, *fragments: str) -> str:
    """The command failed the way a user's mistake should: exit 2, one line, no traceback."""
    message = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.stdout, message)
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def variant(source: Path, target: Path, edit: Callable[[Path], None]) -> Path:
    shutil.copytree(source, target)
    edit(target)
    return target


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        result = change(data)
        (folder / name).write_text(json.dumps(data if result is None else result))

    return edit


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return edit


def truncate(name: str, keep: Callable[[int], int]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: keep(len(data))])

    return edit


def generate_fails(folder: Path, *fragments: str) -> str:
    return one_line_error(run_cli("generate", folder, *PROMPT_ARGS, expect=None), *fragments)


# -- weights and config.json ------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "detail"),
    [
        (lambda n: n // 2, "file not fully covered"),  # a download cut half-way
        (lambda n: 20, "invalid header length"),
        (lambda n: 0, "header too small"),  # an empty file
    ],
)
def test_truncated_weights(tiny_dir, tmp_path, keep, detail):
    model = variant(tiny_dir, tmp_path / "model", truncate("model.safetensors", keep))
    generate_fails(model, "cannot load", "damaged", detail, "download or train it again")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        # Each weight of another shape would be re-initialised at random by transformers.
        (
            lambda c: c.update(n_embd=128),
            ("config.json does not match the weights", "16 weights of another shape"),
        ),
        (
            lambda c: c.update(vocab_size=100),
            ("1 weights of another shape", "transformer.wte.weight", "[100, 256] by config.json"),
        ),
        # Two layers more than the weights hold: loaded, they would be random noise.
        (lambda c: c.update(n_layer=3), ("config.json does not match", "24 weights missing")),
        (lambda c: c.update(n_positions=-1), ("cannot load", "negative dimension")),
    ],
)
def test_config_that_does_not_match_the_weights(tiny_dir, tmp_path, change, fragments):
    model = variant(tiny_dir, tmp_path / "model", edit_json("config.json", change))
    generate_fails(model, *fragments)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[]", "config.json is not a model configuration (a JSON object)"),
        ('"gpt2"', "config.json is not a model configuration (a JSON object)"),
        ("not json", "cannot read"),
        ('{"model_type": "nonsense"}', "cannot be loaded as a causal LM"),
    ],
)
def test_config_json_that_is_no_config(tiny_dir, tmp_path, content, fragment):
    model = variant(tiny_dir, tmp_path / "model", write("config.json", content))
    message = generate_fails(model, fragment)
    assert "Hugging Face Hub" not in message


def test_folder_with_only_a_tokenizer_or_without_weights(tiny_dir, tmp_path):
    only = tmp_path / "tokenizer-only"
    only.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, only / name)
    generate_fails(only, "neither a run directory nor a model folder")
    no_weights = variant(
        tiny_dir, tmp_path / "no-weights", lambda f: os.remove(f / "model.safetensors")
    )
    generate_fails(no_weights, "has no model weights")


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("tokenizer.json", "garbage{", "Expecting value"),
        ("tokenizer.json", '{"version": "1.0", "model": 3}', "KeyError"),
        ("tokenizer.json", b"\xff\xfe\x00 binary", ""),
        ("tokenizer_config.json", "[1, 2]", "AttributeError"),
    ],
)
def test_damaged_tokenizer(tiny_dir, tmp_path, name, content, detail):
    model = variant(tiny_dir, tmp_path / "model", write(name, content))
    generate_fails(model, "cannot load the tokenizer of", detail)


# -- sampling settings the model brings ----------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "detail"),
    [
        ({"num_beams": 0}, "division"),
        ({"repetition_penalty": -1.0}, "`penalty` has to be a strictly positive float"),
        ({"bad_words_ids": [[-5]]}, "bad_words_ids"),
    ],
)
def test_generation_config_with_nonsense(tiny_dir, tmp_path, settings, detail):
    model = variant(
        tiny_dir, tmp_path / "model", write("generation_config.json", json.dumps(settings))
    )
    generate_fails(model, "generation settings (generation_config.json)", detail)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"max_length": -1}, "text-generation max_length = -1, which must be >=1"),
        ({"top_p": "abc"}, "text-generation top_p = 'abc'"),
        ({"temperature": 0}, "text-generation temperature = 0"),
        ({"prefix": 5}, "prefix = 5, which is not text"),
    ],
)
def test_task_specific_params_with_nonsense(tiny_dir, tmp_path, params, fragment):
    def change(config):
        config["task_specific_params"] = {"text-generation": params}

    model = variant(tiny_dir, tmp_path / "model", edit_json("config.json", change))
    generate_fails(model, "task_specific_params", fragment)


def test_task_specific_params_of_another_shape_are_ignored(tiny_dir, tmp_path):
    model = variant(
        tiny_dir,
        tmp_path / "model",
        edit_json("config.json", lambda c: c.update(task_specific_params="x")),
    )
    out = json.loads(run_cli("generate", model, *PROMPT_ARGS, "--json").stdout)
    assert out["settings"]["top_p"] == 0.95 and len(out["samples"]) == 2  # the original's


# -- what names a model: paths and Hub ids ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _generate_in(cwd: Path, name: str) -> subprocess.CompletedProcess:
    """The real command, run where a user would type it, with the Hub out of reach."""
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}",
        "HF_HOME": str(cwd / ".hf"),
    }
    return subprocess.run(
        [sys.executable, "-m", "huggingtweets", "generate", name, "My dream is"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # runs/ exists here: "typo" is a mistyped run, not a Hub account named "runs".
        ("runs/typo", "no such folder: runs/typo (runs has no 'typo'"),
        (
            "./runs/me/modle",
            "no such folder: ./runs/me/modle (runs/me has no 'modle'; did you mean 'model'?)",
        ),
        ("runs/me/modle", "no such folder: runs/me/modle"),
        ("/nonexistent-root/models/me", "no such folder: /nonexistent-root/models/me"),
        # Nothing here is called "someone": a Hub id stays a Hub id.
        ("someone/model", "cannot reach the Hugging Face Hub"),
    ],
)
def test_mistyped_local_paths_are_no_such_folder(tmp_path, name, expected):
    (tmp_path / "runs" / "me" / "model").mkdir(parents=True)
    proc = _generate_in(tmp_path, name)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert message.startswith(f"Error: {expected}"), message
    if name != "someone/model":
        assert "cannot reach" not in message, message


@pytest.mark.parametrize(
    "name",
    [
        "bad name!!",
        "owner/na me",
        "a--b/c",
        "x" * 200,
        "owner/name.",
        "ö/x",
        "x:dril",
        "owner/..",
        "x?y/z",
    ],
)
def test_odd_hub_ids_are_refused_before_any_request(name):
    with pytest.raises(HuggingtweetsError, match="neither a model folder nor a valid"):
        resolve_model(name)


# -- card: metrics.json, stats.json, options ---------------------------------------------


@pytest.fixture
def card_run(run_dir, tmp_path) -> Path:
    """A fresh copy of the run, for a test to damage."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    return run


def card_fails(run: Path, *args_and_fragments: str, args: tuple = ("--samples", "0")) -> str:
    return one_line_error(run_cli("card", run, *args, expect=None), *args_and_fragments)


@pytest.mark.parametrize(
    ("content", "kind"),
    [("[]", "a list"), ('"x"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_metrics_json_that_is_not_an_object(card_run, content, kind):
    (card_run / "metrics.json").write_text(content)
    card_fails(card_run, f"metrics.json holds {kind}, not a JSON object")


@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [
        ({"eval_loss_before": "abc"}, "eval_loss_before must be a number, not a string"),
        ({"best_epoch": [1]}, "best_epoch must be a number, not a list"),
        ({"train_tokens": True}, "train_tokens must be a number"),
        ({"hyperparameters": [1, 2]}, "hyperparameters must be a JSON object, not a list"),
        ({"timings": "fast"}, "timings must be a JSON object"),
    ],
)
def test_metrics_json_with_wrong_types(card_run, metrics, fragment):
    (card_run / "metrics.json").write_text(json.dumps(metrics))
    card_fails(card_run, fragment)


def test_metrics_json_with_odd_hyperparameters_still_makes_a_card(card_run):
    metrics = {
        "best_epoch": 1,
        "hyperparameters": {"max_steps": "x", "num_train_epochs": "four", "report_to": ["none"]},
        "base_model_type": 7,  # not a kind we know: decided from the name, as without it
        "base_model": "/home/someone/secret/base",
    }
    (card_run / "metrics.json").write_text(json.dumps(metrics))
    run_cli("card", card_run, "--samples", "0")
    card = (card_run / "model" / "README.md").read_text()
    assert "Best checkpoint: epoch 1\n" in card
    assert "/home/someone" not in card  # a local base is named by its folder only


def _set_account(key: str, value) -> Callable[[dict], None]:
    def change(stats: dict) -> None:
        stats["accounts"][0][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_set_account("kept", "many"), "kept must be a count of posts (got 'many')"),
        (_set_account("downloaded", -1), "downloaded must be a count of posts (got -1)"),
        (_set_account("short", 2.5), "short must be a count of posts"),
        (_set_account("platform", ["x"]), "has no platform name"),
        (lambda s: s.update(categories="kept"), "categories must be a list of names"),
        (lambda s: s.update(categories=[1, 2]), "categories must be a list of names"),
        (lambda s: s.update(accounts=[1]), "an account without a handle"),
        (lambda s: s.update(accounts={"handle": "x"}), "lists no accounts"),
    ],
)
def test_stats_json_with_wrong_types(card_run, change, fragment):
    edit_json("dataset/stats.json", change)(card_run)
    message = card_fails(card_run, fragment)
    assert "stats.json" in message


def test_dataset_rows_with_unhashable_ids_do_not_break_the_card(card_run):
    train = card_run / "dataset" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    rows[0]["id"] = ["a", "list"]
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run_cli("card", card_run, "--samples", "0")


def test_truncated_weights_in_card_without_samples(card_run):
    truncate("model.safetensors", lambda n: n // 2)(card_run / "model")
    card_fails(card_run, "model.safetensors is damaged or incomplete")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--samples", "100000000"), "samples must be >=0, <=100 (got"),
        (("--samples", "-1"), "samples must be"),
        (("--seed", str(2**64)), "must be >=0, <="),
        (("--repo-id", "not a repo"), "must be a Hugging Face model id"),
    ],
)
def test_card_options_out_of_range(run_dir, args, fragment):
    # Refused before anything is loaded or written.
    card_fails(run_dir, fragment, args=args)


def test_card_options_as_data_and_as_keywords(card_run):
    with pytest.raises(OptionError) as error:
        CardOptions(samples=10**8)
    assert error.value.name == "samples"
    with pytest.raises(OptionError) as error:
        CardOptions(repo_id="a--b/c")
    assert error.value.name == "repo_id"
    # The keyword arguments other code passes keep working, and win over the options.
    path = write_card(card_run, CardOptions(samples=3, repo_id="me/bot"), samples=0, seed=3)
    assert "model='me/bot'" in path.read_text() and "## Sample generations" not in path.read_text()
    with pytest.raises(OptionError):
        write_card(card_run, samples=101)


def test_a_config_far_larger_than_its_weights_is_refused_at_once(tiny_dir, tmp_path, monkeypatch):
    """A config.json claiming a billion layers would keep the loader (and its memory)
    busy for ever: refused before a model of its size is built, in one line. Every model
    built is seen as it starts to be (the product's own probes have one or two layers)."""
    from transformers import PreTrainedModel

    from huggingtweets.model.loading import load_causal_lm

    built: list[object] = []
    init = PreTrainedModel.__init__

    def building(self, config, *args, **kwargs):
        built.append(config.num_hidden_layers)
        if config.num_hidden_layers == 10**9:  # stopped here: it would run for ever
            raise AssertionError("the model config.json describes is being built")
        init(self, config, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "__init__", building)
    change = edit_json("config.json", lambda c: c.update(n_layer=10**9))
    model = variant(tiny_dir, tmp_path / "model", change)
    generate_fails(model, "config.json describes a model of", "its weights hold")
    with pytest.raises(HuggingtweetsError, match="describes a model of"):
        load_causal_lm(model)
    assert 10**9 not in built, built  # also had the product caught the error above
